"""POST /ask for a valid JSON request, without FastAPI's per-request machinery (issue 22).

FastAPI's route costs about 0.4 ms more than the question itself on the event loop (its dependency
solving, body field handling, telemetry hooks and endpoint context, run on caches the encoder has just
evicted), which is a third of what the issue allows HTTP to add. This Starlette route, placed before the
documented one, reads the body, validates it with the same `AskRequest`, asks, and sends the answer
serialised once. It asks on the event loop itself when the assistant answers without waiting
(`Assistant.answers_without_waiting`: model loaded, index open, nothing remote): a question is a few
milliseconds of CPU under the GIL, which a worker thread would not run any sooner, and the trip there and
back cost about 0.4 ms a request (HTTP less the server's own time: 0.73-0.82 ms against 1.12-1.24 in
alternated runs; 32 clients got no fewer answers a second, though their p95 rose as questions queue on
the loop: docs/benchmarks.md). Otherwise (the first question, which loads the
model; a RayAssistant, which waits on its shards) it asks in the thread pool, and the loop serves others.

Anything it does not take as valid (another content type, malformed JSON, a field the model refuses) goes
to the documented FastAPI route with the body replayed, so every refusal keeps its status and words.
Exceptions of `Assistant.ask` reach the app's handlers as they do from the documented route. The OpenAPI
schema is the documented route's: this one is left out.
"""

from __future__ import annotations

import json

from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Message, Receive, Scope, Send

from qa.answering.answers import Answer
from qa.serving.requests import AskRequest

# Serialises an Answer by its schema (pydantic-core, as FastAPI serialises a response_model).
ANSWER_JSON = TypeAdapter(Answer)


def answer_response(answer: Answer) -> Response:
    """The answer as the JSON body FastAPI sends for `response_model=Answer`, serialised once from the
    dataclass: the code built it, so it is not validated again (the OpenAPI schema still says Answer)."""
    return Response(ANSWER_JSON.dump_json(answer), media_type="application/json")


def valid_request(content_type: str | None, body: bytes) -> AskRequest | None:
    """The request when FastAPI would accept it as it stands (a JSON object under `application/json`
    that `AskRequest` validates), else None: the documented route then says what is wrong."""
    if content_type is None or content_type.partition(";")[0].strip().lower() != "application/json":
        return None
    try:
        data = json.loads(body)  # as Starlette's Request.json(), which FastAPI calls
        return AskRequest.model_validate(data) if isinstance(data, dict) else None
    except (ValueError, ValidationError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None


class QuickAsk:
    """The ASGI app of the quick POST /ask route; `documented` is FastAPI's route for the same path."""

    def __init__(self, documented: Route) -> None:
        self.documented = documented

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = await request.body()
        asked = valid_request(request.headers.get("content-type"), body)
        if asked is None:
            await self._documented(scope, receive, send, body)
            return
        assistant = request.app.state.assistant
        if assistant.answers_without_waiting:
            answer = assistant.ask(asked.question, asked.k, asked.documents)
        else:
            answer = await run_in_threadpool(assistant.ask, asked.question, asked.k, asked.documents)
        await answer_response(answer)(scope, receive, send)

    async def _documented(self, scope: Scope, receive: Receive, send: Send, body: bytes) -> None:
        """Hand the request, its body already read, to the documented route."""
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        match, child = self.documented.matches(scope)
        assert match == Match.FULL, "the documented route takes what the quick one does"
        await self.documented.handle({**scope, **child}, replay, send)


def quick_ask_route(documented: Route) -> Route:
    """A POST route at `documented`'s path, kept out of the OpenAPI schema; put it before `documented`."""
    return Route(documented.path, QuickAsk(documented), methods=["POST"], include_in_schema=False)
