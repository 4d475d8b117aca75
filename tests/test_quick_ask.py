"""POST /ask's quick route (serving/quick_ask.py) answers exactly as the documented FastAPI route does:
the same bytes for a valid request (took_ms aside), the same status and body for every other one; and
the OpenAPI schema is the one recorded before the quick route existed."""

import asyncio
import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from qa.service import Assistant
from qa.serving.api import create_app
from qa.serving.quick_ask import QuickAsk

SCHEMA = Path(__file__).resolve().parent / "data" / "openapi.json"
QUESTION = "Why did members of Congress smash a Toshiba radio?"
TOOK = re.compile(rb',?"took_ms":-?[0-9.eE+-]+')
JSON = {"content-type": "application/json"}


def quick_route(app):
    return next(r for r in app.router.routes if isinstance(getattr(r, "app", None), QuickAsk))


@pytest.fixture(scope="module")
def apps(report_assistant):
    """(the app as served, the same app without its quick route, how often the quick one handed over)."""
    quick, documented = create_app(assistant=report_assistant), create_app(assistant=report_assistant)
    documented.router.routes.remove(quick_route(documented))
    handed = []
    route = quick_route(quick).app.documented
    handle = route.handle

    async def counted(scope, receive, send):
        handed.append(scope["path"])
        await handle(scope, receive, send)

    route.handle = counted
    with TestClient(quick) as q, TestClient(documented) as d:
        yield q, d, handed


VALID = {
    "question only": {"json": {"question": QUESTION}},
    "k and a document filter": {"json": {"question": QUESTION, "k": 3, "documents": ["article-ii-mandate.txt"]}},
    "padded question, k 2.0, an unknown field": {"json": {"question": "  What is Article II?  ", "k": 2.0, "x": 1}},
    "charset parameter": {"content": json.dumps({"question": QUESTION}).encode(),
                          "headers": {"content-type": "application/json; charset=utf-8"}},
    "content type in capitals": {"content": b'{"question": "Who wrote the report?"}',
                                 "headers": {"content-type": "Application/JSON"}},
    "off-topic question": {"json": {"question": "How do I bake sourdough bread at home?"}},
    # valid as a request, refused by Assistant.ask: the app's error handler answers, as for the documented route
    "unknown document": {"json": {"question": QUESTION, "documents": ["other.txt"]}},
}
HANDED_OVER = {
    "k true": {"json": {"question": "ok", "k": True}},
    "k as text": {"json": {"question": "ok", "k": "5"}},
    "k 5.5": {"json": {"question": "ok", "k": 5.5}},
    "k 0": {"json": {"question": "ok", "k": 0}},
    "empty question": {"json": {"question": ""}},
    "blank question": {"json": {"question": " \n\t "}},
    "2001 characters": {"json": {"question": "x" * 2001}},
    "no question": {"json": {"k": 3}},
    "a list": {"content": b"[]", "headers": JSON},
    "null": {"content": b"null", "headers": JSON},
    "a string": {"content": b'"a question"', "headers": JSON},
    "malformed JSON": {"content": b'{"question": "x",', "headers": JSON},
    "empty body": {"content": b"", "headers": JSON},
    "not UTF-8": {"content": b'{"question": "caf\xe9"}', "headers": JSON},
    "lone surrogate": {"content": b'{"question": "a \\ud800 b"}', "headers": JSON},
    "lone surrogate in a filter": {"content": b'{"question": "ok", "documents": ["\\udc00"]}', "headers": JSON},
    "text/plain": {"content": b'{"question": "What is Article II?"}', "headers": {"content-type": "text/plain"}},
    "no content type": {"content": b'{"question": "What is Article II?"}'},
    "a +json type": {"content": b'{"question": "What is Article II?"}',
                     "headers": {"content-type": "application/vnd.api+json"}},
    "a browser's form": {"data": {"question": "What is Article II?"}, "headers": {"accept": "text/html"}},
}


@pytest.mark.parametrize("request_", [*VALID.values(), *HANDED_OVER.values()], ids=[*VALID, *HANDED_OVER])
def test_quick_route_answers_as_the_documented_route(apps, request_):
    quick, documented, handed = apps
    handed.clear()
    got, expected = quick.post("/ask", **request_), documented.post("/ask", **request_)
    assert (got.status_code, got.headers["content-type"]) == (expected.status_code, expected.headers["content-type"])
    assert TOOK.sub(b"", got.content) == TOOK.sub(b"", expected.content)
    # a valid request is answered by the quick route; every other one by the documented route
    assert handed == ([] if request_ in VALID.values() else ["/ask"])


def test_get_ask_and_other_methods_are_the_documented_routes(apps):
    quick, documented, _ = apps
    for method, path in (("GET", "/ask?q=What+is+Article+II%3F"), ("PUT", "/ask"), ("DELETE", "/ask")):
        got, expected = quick.request(method, path), documented.request(method, path)
        assert got.status_code == expected.status_code and got.headers.get("allow") == expected.headers.get("allow")
        assert TOOK.sub(b"", got.content) == TOOK.sub(b"", expected.content)


def test_openapi_schema_is_unchanged(apps):
    """The schema recorded in tests/data/openapi.json before the quick route: a deliberate change of the
    API updates that file in the same commit."""
    quick, _, _ = apps
    assert quick.get("/openapi.json").json() == json.loads(SCHEMA.read_text(encoding="utf-8"))


def test_a_question_is_asked_on_the_event_loop_only_when_nothing_must_load_first(apps, report_assistant, monkeypatch):
    """A valid POST /ask is answered on the event loop (no trip to the thread pool, about 0.4 ms a request)
    once the model is loaded and an index open; an assistant that must load something first, or that
    waits on others (a RayAssistant's shards), is asked in a worker thread, so the loop keeps serving."""
    fresh = Assistant(report_assistant.settings, encoder=report_assistant.encoder)
    assert not fresh.answers_without_waiting, "no index open yet: the first question opens it"
    fresh.ask(QUESTION)
    assert fresh.answers_without_waiting

    quick, _, _ = apps
    on_loop = []
    ask = Assistant.ask

    def noting_the_thread(self, *args, **kwargs):
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:  # a worker thread runs no event loop
            on_loop.append(False)
        return ask(self, *args, **kwargs)

    monkeypatch.setattr(Assistant, "ask", noting_the_thread)
    report_assistant.ask(QUESTION)  # as any served question before: the index is open
    on_loop.clear()
    assert quick.post("/ask", json={"question": QUESTION}).status_code == 200
    monkeypatch.setattr(Assistant, "answers_without_waiting", property(lambda self: False))
    assert quick.post("/ask", json={"question": QUESTION}).status_code == 200
    assert on_loop == [True, False]
