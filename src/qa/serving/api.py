"""The FastAPI app: JSON routes over one shared `Assistant`, plus the HTML routes from web.py."""

import asyncio
from contextlib import asynccontextmanager, suppress
from typing import Annotated

from fastapi import Depends, FastAPI, File, Header, HTTPException, Query, Request, UploadFile
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from qa.answering.answers import Answer
from qa.config import Settings, size_text
from qa.errors import (
    BuildInProgress,
    CorpusMissing,
    DocumentError,
    IndexMismatch,
    IndexMissing,
    ModelError,
    NameTaken,
    NotFound,
    QAError,
    ShardUnavailable,
)
from qa.indexing.store import StoredDocument
from qa.service import MAX_K, MAX_QUESTION_CHARS, Assistant, InvalidRequest, UnsupportedType
from qa.serving import api_docs, library, sessions, theme, web
from qa.serving.limits import DOCS_ASSETS, BodySizeLimit, HeadAsGet, SecurityHeaders
from qa.serving.mcp_http import PATH as MCP_PATH
from qa.serving.mcp_http import MCPEndpoint
from qa.serving.quick_ask import answer_response, quick_ask_route
from qa.serving.requests import MAX_DOCUMENT_FILTERS, QUESTION_RULE, QUESTION_SCHEMA, AskRequest, describe_invalid

STATUS_OF = {
    InvalidRequest: 422,
    DocumentError: 422,
    UnsupportedType: 415,
    NotFound: 404,
    BuildInProgress: 409,
    NameTaken: 409,
    IndexMissing: 503,
    CorpusMissing: 503,
    IndexMismatch: 503,
    ModelError: 503,
    ShardUnavailable: 503,
}


class Error(BaseModel):
    detail: str = Field(description="Which field or resource failed, and why.")


class DocumentMetadata(BaseModel):
    authors: list[str] | None = Field(description="Author names as the document gives them; null when unknown.")
    publisher: str | None = Field(description="Publishing organisation; null when unknown.")
    date: str | None = Field(description='ISO 8601 as precise as the document says: "2018", "2018-05" '
                                         'or "2018-05-14"; null when unknown.')


class DocumentSummary(DocumentMetadata):
    doc_id: str
    title: str
    chunks: int


class DocumentOut(DocumentMetadata):
    doc_id: str
    title: str
    text: str


class Reading(BaseModel):
    chars: int = Field(description="Characters of text the reader took from the file.")
    passages: int = Field(description="Passages (chunks) indexed from it.")
    warning: str | None = Field(description="Set when the file gave no text or under 1 character per 100 bytes.")


class Uploaded(BaseModel):
    doc_id: str
    chunks: int
    read: Reading


class TrashEntryOut(BaseModel):
    id: str
    doc_id: str
    reason: str = Field(description='"deleted" or "replaced".')
    at: str = Field(description="When it went to the trash (ISO 8601, UTC).")
    title: str = Field("", description="The document's title when it was indexed; empty when unknown.")
    size: int | None = Field(None, description="The file's size in bytes; null when it cannot be read.")
    sha256: str = Field("", description="SHA-256 of the file's bytes, in hex: tells versions of one file apart.")


class Restored(BaseModel):
    doc_id: str


ERRORS = {code: {"model": Error} for code in (404, 409, 413, 415, 422, 503)}
WRITE_ERRORS = {code: {"model": Error} for code in (400, 401, 403, 404, 409, 413, 415, 422, 429, 503)}


def _metadata(document: StoredDocument) -> dict:
    m = document.metadata
    return {"authors": m.authors, "publisher": m.publisher, "date": m.date}


async def current(request: Request) -> Assistant:
    """The app's Assistant. Async: resolved on the event loop, not in a trip to the thread pool."""
    return request.app.state.assistant


def require_admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    """403 when writes are disabled (no token configured), 401 when the bearer token is missing or wrong,
    429 while the address that sent wrong ones must wait (the sign-in form's rule, sessions.Throttle)."""
    token = request.app.state.assistant.settings.admin_token
    if not token:
        raise HTTPException(403, "writes are disabled: set QA_ADMIN_TOKEN on the server to enable them")
    refused = HTTPException(401, "authorization: a valid 'Bearer <QA_ADMIN_TOKEN>' header is required",
                            headers={"WWW-Authenticate": "Bearer"})
    if authorization is None:
        raise refused  # no token was tried: nothing to count
    client, throttle = sessions.client_of(request), request.app.state.throttle
    wait = throttle.wait_seconds(client)
    if wait > 0:  # not even checked: a guesser learns nothing by hurrying
        seconds = int(wait) + 1
        raise HTTPException(429, f"authorization: too many wrong tokens from this address; retry in {seconds} s",
                            headers={"Retry-After": str(seconds)})
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not sessions.token_matches(given, token):
        throttle.failed(client)
        raise refused
    throttle.succeeded(client)


def create_app(settings: Settings | None = None, assistant: Assistant | None = None) -> FastAPI:
    """Build the app. Tests pass a ready `assistant`; `qa serve` lets the app build its own."""
    assistant = assistant or Assistant(settings or Settings())
    mcp = MCPEndpoint(assistant)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        serving = app.state.assistant  # the one the routes use; a test may swap it in before start-up
        _ = serving.encoder  # load the model before the first request, not during it
        with suppress(QAError):  # /health says why; /ask answers 503 until an index is published
            serving.generation()
        mcp.assistant = serving
        async with mcp.running():  # the MCP tools at /mcp
            yield
        await asyncio.to_thread(serving.stop_merging)  # a background merge must not hold up the shutdown

    app = FastAPIOffline(  # FastAPI with /docs served from installed files, no CDN; /redoc from api_docs.py
        static_url=DOCS_ASSETS,
        redoc_url=None,
        title="alliance-qa",
        summary="Answers questions about the U.S.–Japan economic alliance with cited passages.",
        lifespan=lifespan,
    )
    app.state.assistant = assistant
    app.state.throttle = sessions.Throttle(assistant.settings.index_dir / sessions.THROTTLE_FILE)
    app.add_middleware(BodySizeLimit, ask_limit=assistant.settings.max_body_bytes,
                       upload_limit=assistant.settings.max_upload_bytes)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(HeadAsGet)

    @app.exception_handler(QAError)
    async def _domain_error(request: Request, exc: QAError) -> Response:
        status = next((code for cls, code in STATUS_OF.items() if isinstance(exc, cls)), 500)
        if web.wants_html(request):
            return web.error_page(request, status, str(exc))
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        detail = describe_invalid(exc.errors())
        if web.wants_html(request):
            return web.error_page(request, 422, detail)
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
            detail = f"body: not UTF-8 text (byte {exc.__cause__.start}); send a JSON object in UTF-8"
            return JSONResponse({"detail": detail}, status_code=422)
        if exc.status_code == 404 and "text/html" in request.headers.get("accept", ""):
            return web.error_page(request, 404, f"There is no page at {request.url.path}.")  # a browser
        if exc.status_code != 405:
            return await http_exception_handler(request, exc)
        # Starlette names only the methods of the first route that matched the path; list them all.
        routes = [r for r in request.app.router.routes if r.matches(request.scope)[0] != Match.NONE]
        allowed = sorted({method for route in routes for method in getattr(route, "methods", None) or ()})
        return JSONResponse({"detail": f"method: {request.method} is not allowed on {request.url.path}; "
                                       f"use {', '.join(allowed)}"},
                            status_code=405, headers={"Allow": ", ".join(allowed)})

    @app.post("/ask", response_model=Answer, responses=ERRORS, tags=["questions"])
    def ask(body: AskRequest, a: Annotated[Assistant, Depends(current)]) -> Response:
        """Answer a question with cited passages; `answer` marks each claim with [rank]."""
        return answer_response(a.ask(body.question, body.k, body.documents))

    # A valid POST /ask is answered by a lighter route first; it hands everything else to `ask` above.
    app.router.routes.insert(0, quick_ask_route(next(r for r in app.routes if getattr(r, "endpoint", None) is ask)))

    @app.get("/ask", response_model=Answer, responses=ERRORS, tags=["questions"])
    def ask_get(
        a: Annotated[Assistant, Depends(current)],
        q: Annotated[str, Query(description=f"The question: {QUESTION_RULE}", max_length=MAX_QUESTION_CHARS,
                                json_schema_extra=QUESTION_SCHEMA)],
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 5,
        documents: Annotated[list[str] | None, Query(
            max_length=MAX_DOCUMENT_FILTERS, description="Only search these doc_ids (repeat the parameter).")] = None,
    ) -> Response:
        """The same as POST /ask, for links and quick calls."""
        return answer_response(a.ask(q, k, documents))

    @app.get("/health", tags=["service"], responses={503: {"description": "No index loaded yet"}})
    def health(a: Annotated[Assistant, Depends(current)]) -> JSONResponse:
        build = vars(a.build_state).copy()
        del build["documents"]  # each document's state is the library's (/library/progress)
        try:
            gen = a.generation()
        except QAError as exc:
            status = "building" if a.build_state.running else "no index"
            return JSONResponse({"status": status, "detail": str(exc), "build": build}, status_code=503)
        return JSONResponse({"status": "ok", "documents": gen.document_count, "chunks": gen.chunk_count,
                             "model": a.settings.model, "build": build})

    @app.get("/documents", response_model=list[DocumentSummary], responses=ERRORS, tags=["documents"])
    def list_documents(a: Annotated[Assistant, Depends(current)]) -> list[dict]:
        return [{"doc_id": d.doc_id, "title": d.title, "chunks": d.chunks, **_metadata(d)} for d in a.documents()]

    @app.get("/documents/{doc_id:path}", response_model=DocumentOut, responses=ERRORS, tags=["documents"])
    def get_document(doc_id: str, a: Annotated[Assistant, Depends(current)]) -> dict:
        """The document text that every passage's start/end offsets refer to."""
        d = a.document(doc_id)
        return {"doc_id": d.doc_id, "title": d.title, "text": d.text, **_metadata(d)}

    @app.post("/documents", response_model=Uploaded, status_code=201, responses=WRITE_ERRORS, tags=["documents"],
              dependencies=[Depends(require_admin)])
    def upload(
        file: Annotated[UploadFile, File()], a: Annotated[Assistant, Depends(current)],
        replace: Annotated[bool, Query(description="Replace a different file of the same name; "
                                                   "its old version goes to the trash.")] = False,
    ) -> Response:
        """Add uploads/<file name>; answers once the document is live in answers. A different file
        under a name already taken is refused (409) unless `replace=true`."""
        data = file.file.read(a.settings.max_upload_bytes + 1)
        if len(data) > a.settings.max_upload_bytes:
            raise HTTPException(413, f"file: larger than the {size_text(a.settings.max_upload_bytes)} upload limit")
        try:
            doc_id, chunks, changed = a.add_document(file.filename or "", data, replace=replace)
        except InvalidRequest as exc:
            raise HTTPException(400, str(exc)) from exc
        return JSONResponse({"doc_id": doc_id, "chunks": chunks, "read": a.reading(doc_id)},
                            status_code=201 if changed else 200)

    @app.delete("/documents/{doc_id:path}", status_code=204, responses=WRITE_ERRORS, tags=["documents"],
                dependencies=[Depends(require_admin)])
    def delete(doc_id: str, a: Annotated[Assistant, Depends(current)]) -> Response:
        a.delete_document(doc_id)
        return Response(status_code=204)

    @app.get("/trash", response_model=list[TrashEntryOut], responses=WRITE_ERRORS, tags=["documents"],
             dependencies=[Depends(require_admin)])
    def trash(a: Annotated[Assistant, Depends(current)]) -> list[dict]:
        """Deleted files and replaced versions, newest first; each can be restored."""
        return [entry.to_dict() for entry in a.trash()]

    @app.post("/trash/{entry_id}/restore", response_model=Restored, responses=WRITE_ERRORS, tags=["documents"],
              dependencies=[Depends(require_admin)])
    def restore(
        entry_id: str, a: Annotated[Assistant, Depends(current)],
        replace: Annotated[bool, Query(description="Replace a file now holding the name; it goes to the trash.")]
        = False,
    ) -> dict:
        """Put the file back under its doc_id and index it (409 when the name is taken, unless replace=true)."""
        return {"doc_id": a.restore(entry_id, replace=replace)}

    @app.post("/reindex", responses=WRITE_ERRORS, tags=["documents"], dependencies=[Depends(require_admin)])
    def reindex(a: Annotated[Assistant, Depends(current)]) -> dict:
        """Bring the index in line with the corpus folder, like `qa index`."""
        return a.reindex().to_dict()

    # Not an API route: MCP's own protocol, kept out of the OpenAPI description.
    app.add_route(MCP_PATH, mcp, include_in_schema=False)
    app.include_router(web.router)
    app.include_router(library.router)
    app.include_router(theme.router)
    app.include_router(api_docs.router)
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn (`uvicorn --factory qa.serving.api:app_from_env`): settings from QA_* variables."""
    return create_app(Settings())
