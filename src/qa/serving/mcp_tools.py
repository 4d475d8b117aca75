"""The MCP server: /ask, passages, the document list and document text as tools an AI assistant calls.

The same `Assistant` the CLI and the API use answers; `qa mcp` serves these tools over stdio and `qa serve`
mounts them at /mcp (mcp_http.py). A bad argument is a tool result with `is_error` whose text is the API's
422/404 `detail`, word for word, so a model reads the same correction a script would.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from mcp.types import Resource as ResourceInfo
from pydantic import BaseModel, Field

from qa.answering.answers import Answer, Passage
from qa.errors import NotFound, QAError
from qa.service import MAX_K, Assistant, InvalidRequest
from qa.serving.requests import MAX_DOCUMENT_FILTERS, QUESTION_SCHEMA, ask_request

RESOURCE_PREFIX = "qa://documents/"
# `{+doc_id}`: reserved expansion, so a doc_id's "/" (uploads/memo.pdf) stays one parameter.
RESOURCE_TEMPLATE = RESOURCE_PREFIX + "{+doc_id}"
READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)

INSTRUCTIONS = """\
Answers questions from the user's own documents (a local corpus) with cited passages.
Call `ask` for an answer: each claim in it ends with a [n] marker naming passage n, whose `highlights`
are the sentences that support it; quote those and cite the document (title, doc_id, page). When
`abstained` is true the documents do not answer the question: say so instead of answering from memory.
Call `search` for passages only, `list_documents` to see what is indexed, and `read_document` with a
passage's `start` and `end` to read the cited text (or around it) in its document."""

# The bounds are the API's; they are documented in the schema but checked by `ask_request`, so that
# a question, k or documents out of range is refused with the API's own message.
Question = Annotated[str, Field(description="The question, in natural language (1 to 2,000 characters).",
                                json_schema_extra=QUESTION_SCHEMA)]
Documents = Annotated[list[str] | None, Field(
    description="Only search these doc_ids (as list_documents gives them); null searches every document.",
    json_schema_extra={"minItems": 1, "maxItems": MAX_DOCUMENT_FILTERS})]
K_RANGE = {"minimum": 1, "maximum": MAX_K}
AskK = Annotated[int, Field(description=f"How many passages to cite (1 to {MAX_K}).", json_schema_extra=K_RANGE)]
SearchK = Annotated[int, Field(description=f"How many passages to return (1 to {MAX_K}).", json_schema_extra=K_RANGE)]


class Passages(BaseModel):
    query: str
    passages: list[Passage] = Field(description="Best first; start/end are offsets into the document's text.")


class DocumentInfo(BaseModel):
    doc_id: str = Field(description="The file's path in the corpus; pass it to read_document or documents=.")
    title: str
    authors: list[str] | None = Field(description="As the document gives them; null when unknown.")
    publisher: str | None
    date: str | None = Field(description="ISO 8601 as precise as the document says (2018, 2018-05, 2018-05-14).")
    passages: int = Field(description="Passages indexed from it.")


class DocumentList(BaseModel):
    documents: list[DocumentInfo]


class DocumentText(BaseModel):
    doc_id: str
    title: str
    authors: list[str] | None
    publisher: str | None
    date: str | None
    chars: int = Field(description="Length of the whole text.")
    start: int = Field(description="Offset of `text` in the whole text.")
    end: int
    text: str = Field(description="The document's text from start to end: what passages' offsets point into.")


def resource_uri(doc_id: str) -> str:
    """The document's resource address: every character percent-encoded except "/"."""
    return RESOURCE_PREFIX + quote(doc_id, safe="/")


def _refused(exc: QAError) -> CallToolResult:
    return CallToolResult(content=[TextContent(text=str(exc))], is_error=True)


def _metadata(document) -> dict:
    m = document.metadata
    return {"authors": m.authors, "publisher": m.publisher, "date": m.date}


def passage_text(p: Passage) -> str:
    """A passage as a model reads it: where it is, then its text with the evidence sentences in **bold**."""
    where = ", ".join(x for x in (p.doc_id, p.section and f"section {p.section}", p.page and f"page {p.page}",
                                  f"characters {p.start}-{p.end}") if x)
    text = p.text
    for a, b in sorted(p.highlights, reverse=True):
        text = f"{text[:a]}**{text[a:b]}**{text[b:]}"
    return f"[{p.rank}] {p.title} ({where})\n{' '.join(text.split())}"


def answer_text(answer: Answer) -> str:
    state = "abstained: the documents do not answer this" if answer.abstained else "answered"
    head = f"{answer.answer}\n\n({state}; confidence {answer.confidence:.2f})"
    return "\n\n".join([head, *map(passage_text, answer.passages)])


class DocumentServer(MCPServer):
    """MCPServer whose resource list is the index's documents as they are now, not a list fixed at start."""

    def __init__(self, assistant: Assistant, **kwargs) -> None:
        super().__init__(**kwargs)
        self.assistant = assistant

    async def list_resources(self) -> list[ResourceInfo]:
        try:
            documents = self.assistant.documents()
        except QAError:  # no index yet: nothing to attach, and reading says why
            documents = []
        return [ResourceInfo(uri=resource_uri(d.doc_id), name=d.doc_id, title=d.title, mime_type="text/plain",
                             description=f"The text of {d.title!r}, which passages' start/end offsets point into.")
                for d in documents]


def build_server(assistant: Assistant, lifespan=None) -> MCPServer:
    """The tools and resources over `assistant`; read-only (writes stay behind the API's admin token).
    `lifespan(server)`, an async context manager, runs while the server serves."""
    server = DocumentServer(assistant, name="alliance-qa", title="alliance-qa: cited answers from your documents",
                            instructions=INSTRUCTIONS, version=_version(), log_level="WARNING", lifespan=lifespan)

    @server.tool(annotations=READ_ONLY)
    def ask(question: Question, k: AskK = 5,
            documents: Documents = None) -> Annotated[CallToolResult, Answer]:
        """Answer a question from the indexed documents, citing passages.

        Returns `answer` with a [n] marker after each claim (n = a passage's `rank`), `abstained` (true when
        the documents do not answer it: then say so rather than answering from elsewhere), `confidence`
        (0 to 1) and the `passages`: doc_id, title, section, page, start/end (offsets into the document's
        text), text, highlights (offsets within `text` of the sentences that support the answer), authors,
        publisher and date. The same as the HTTP API's POST /ask."""
        try:
            request = ask_request(question, k, documents)
            answer = assistant.ask(request.question, request.k, request.documents)
        except QAError as exc:
            return _refused(exc)
        return CallToolResult(content=[TextContent(text=answer_text(answer))], structured_content=answer.to_dict())

    @server.tool(annotations=READ_ONLY)
    def search(query: Question, k: SearchK = 10,
               documents: Documents = None) -> Annotated[CallToolResult, Passages]:
        """Find the passages that best match a query, without composing an answer: for writing your own.

        Passages come best first, the ones `ask` would cite for the same question, with doc_id, title,
        section, page, start/end (offsets into the document's text), text and highlights (the sentences that
        answer it; none when the documents do not)."""
        try:
            request = ask_request(query, k, documents, question_field="query")
            answer = assistant.ask(request.question, request.k, request.documents)
        except QAError as exc:
            return _refused(exc)
        found = Passages(query=answer.question, passages=answer.passages)
        text = "\n\n".join(map(passage_text, answer.passages)) or "No passages."
        return CallToolResult(content=[TextContent(text=text)], structured_content=found.model_dump(mode="json"))

    @server.tool(annotations=READ_ONLY)
    def list_documents() -> Annotated[CallToolResult, DocumentList]:
        """List the indexed documents: doc_id, title, authors, publisher, date and passages (how many).

        Use a doc_id in `documents` to ask within some documents only, or in read_document."""
        try:
            found = DocumentList(documents=[
                DocumentInfo(doc_id=d.doc_id, title=d.title, passages=d.chunks, **_metadata(d))
                for d in assistant.documents()])
        except QAError as exc:
            return _refused(exc)
        lines = [f"{d.doc_id}: {d.title}" + "".join(f" · {x}" for x in (
            d.authors and "by " + ", ".join(d.authors), d.publisher, d.date) if x) for d in found.documents]
        return CallToolResult(content=[TextContent(text="\n".join(lines) or "No documents are indexed.")],
                              structured_content=found.model_dump(mode="json"))

    @server.tool(annotations=READ_ONLY)
    def read_document(
        doc_id: Annotated[str, Field(description="The document, as a passage or list_documents names it.")],
        start: Annotated[int | None, Field(description="First character to return (a passage's `start`); "
                                                       "default the beginning.")] = None,
        end: Annotated[int | None, Field(description="Character after the last one (a passage's `end`); "
                                                     "default the end of the text.")] = None,
    ) -> Annotated[CallToolResult, DocumentText]:
        """Read a document's text, whole or from `start` to `end`: the text a citation's offsets point into.

        Widen a passage's range to read around it (e.g. start - 1000, end + 1000)."""
        try:
            document = assistant.document(doc_id)
            first, last = text_range(len(document.text), start, end)
        except QAError as exc:
            return _refused(exc)
        found = DocumentText(doc_id=document.doc_id, title=document.title, chars=len(document.text), start=first,
                             end=last, text=document.text[first:last], **_metadata(document))
        return CallToolResult(content=[TextContent(text=found.text)], structured_content=found.model_dump(mode="json"))

    @server.resource(RESOURCE_TEMPLATE, name="document", mime_type="text/plain",
                     description="A document's text (the text passages' start/end offsets point into).")
    def document(doc_id: str) -> str:
        try:
            return assistant.document(doc_id).text
        except NotFound as exc:
            raise ResourceNotFoundError(str(exc)) from exc
        except QAError as exc:  # no index yet, or one built with other settings: say which
            raise ResourceError(str(exc)) from exc

    return server


def text_range(length: int, start: int | None, end: int | None) -> tuple[int, int]:
    """[start, end) within a text of `length` characters, or InvalidRequest saying which bound is wrong."""
    first = 0 if start is None else start
    last = length if end is None else end
    if not 0 <= first <= length:
        raise InvalidRequest("start", f"must be between 0 and {length} (the document's length), got {first}")
    if not first <= last <= length:
        raise InvalidRequest("end", f"must be between start ({first}) and {length} (the document's length), "
                             f"got {last}")
    return first, last


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("alliance-qa")
    except PackageNotFoundError:
        return "0"
