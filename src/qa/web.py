"""HTML routes: the question page and the document view, rendered on the server (no JavaScript needed)."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from .errors import QAError
from .service import MAX_K, MAX_QUESTION_CHARS, InvalidRequest

# web/ sits at the top of the repository; src/qa/assets links to it so wheels carry it as package data.
WEB_DIR = Path(str(files("qa") / "assets"))
STATIC_DIR = WEB_DIR / "static"
templates = Jinja2Templates(directory=WEB_DIR / "templates")
router = APIRouter(include_in_schema=False)

_MARKER = re.compile(r"\[(\d{1,3})\]")
# One evidence span of a /view link: "start-end" in ASCII digits, relative to the passage.
_SPAN = re.compile(r"(\d{1,9})-(\d{1,9})", re.ASCII)
MAX_SPANS = 8


def cite_links(answer: str, passages: int) -> Markup:
    """Escape the answer, then turn each [n] that names one of the passages into a link to it
    (a bracketed number quoted from a document, such as a footnote "[12]", stays text)."""

    def link(m: re.Match) -> str:
        n = int(m.group(1))
        return f'<a class="cite" href="#p{n}">[{n}]</a>' if 1 <= n <= passages else m.group()

    return Markup(_MARKER.sub(link, str(escape(answer))))


def segments(text: str, marks: list[tuple[int, int]]) -> list[tuple[str, bool]]:
    """Split text into (piece, is_marked) so the template can escape each piece and wrap marked ones."""
    out, pos = [], 0
    for start, end in sorted(marks):
        start, end = max(start, pos), min(end, len(text))
        if start >= end:
            continue
        out += [(text[pos:start], False), (text[start:end], True)]
        pos = end
    out.append((text[pos:], False))
    return [piece for piece in out if piece[0]]


templates.env.filters["cite_links"] = cite_links
templates.env.globals.update(max_question=MAX_QUESTION_CHARS, max_k=MAX_K)


def wants_html(request: Request) -> bool:
    return request.url.path == "/" or request.url.path.startswith("/view/")


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return templates.TemplateResponse(request, "error.html", {"status": status, "message": message},
                                      status_code=status)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, q: str | None = None, k: str = "5") -> HTMLResponse:
    """The question box; with ?q= it is also the shareable answer page for that question."""
    assistant = request.app.state.assistant
    context: dict = {"question": q or "", "k": k, "answer": None, "problem": None}
    if q is not None:
        try:
            k_value = int(k)
            if not 1 <= k_value <= MAX_K:
                raise ValueError
        except ValueError:
            context["problem"] = f"Number of passages must be a whole number from 1 to {MAX_K}."
            return templates.TemplateResponse(request, "index.html", context, status_code=422)
        try:
            answer = assistant.ask(q, k_value)
        except InvalidRequest as exc:
            context["problem"] = _friendly(exc)
            # An empty box is a prompt to type something, not a failed request.
            status = 200 if not q.strip() else 422
            return templates.TemplateResponse(request, "index.html", context, status_code=status)
        context["answer"] = answer
        context["passages"] = [(p, segments(p.text, p.highlights)) for p in answer.passages]
    return templates.TemplateResponse(request, "index.html", context)


def _friendly(exc: InvalidRequest) -> str:
    if exc.field == "question" and "empty" in str(exc):
        return "Please type a question first, for example: What does the report recommend on digital trade?"
    return str(exc).split(": ", 1)[-1].capitalize() + "."


@router.get("/view/{doc_id:path}", response_class=HTMLResponse)
def view_document(request: Request, doc_id: str, start: int = 0, end: int = 0, hl: str = "") -> HTMLResponse:
    """A document with the cited passage (start..end) marked and scrolled to, its evidence highlighted."""
    assistant = request.app.state.assistant
    try:
        doc = assistant.document(doc_id)
    except QAError as exc:
        return error_page(request, 404, str(exc))
    text = doc.text
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    # hl comes from a link anyone can edit: malformed spans are ignored, not an error.
    spans = (_SPAN.fullmatch(pair) for pair in hl.split(",")[:MAX_SPANS])
    evidence = [(start + int(m.group(1)), start + int(m.group(2))) for m in spans if m]
    if end <= start:  # no passage named: the whole document, unmarked
        start = end = len(text)
    context = {
        "doc": doc,
        "before": text[:start],
        "passage": segments(text[start:end], [(a - start, b - start) for a, b in evidence]),
        "after": text[end:],
    }
    return templates.TemplateResponse(request, "document.html", context)
