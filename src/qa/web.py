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

_MARKER = re.compile(r"\[(\d+)\]")


def cite_links(answer: str) -> Markup:
    """Escape the answer, then turn each [n] into a link to passage n."""
    return Markup(_MARKER.sub(r'<a class="cite" href="#p\1">[\1]</a>', str(escape(answer))))


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
            return templates.TemplateResponse(request, "index.html", context, status_code=422)
        context["answer"] = answer
        context["passages"] = [(p, segments(p.text, p.highlights)) for p in answer.passages]
    return templates.TemplateResponse(request, "index.html", context)


def _friendly(exc: InvalidRequest) -> str:
    if exc.field == "question" and "empty" in str(exc):
        return "Please type a question first, for example: What does the report recommend on digital trade?"
    return str(exc).split(": ", 1)[-1].capitalize() + "."


@router.get("/view/{doc_id:path}", response_class=HTMLResponse)
def view_document(request: Request, doc_id: str, start: int = 0, end: int = 0, hl: str = "") -> HTMLResponse:
    """A document with the cited passage (start..end) marked and scrolled to, evidence sentences highlighted."""
    assistant = request.app.state.assistant
    try:
        doc = assistant.document(doc_id)
    except QAError as exc:
        return error_page(request, 404, str(exc))
    text = doc.text
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    evidence = []
    for pair in filter(None, hl.split(",")):
        a, _, b = pair.partition("-")
        if a.isdigit() and b.isdigit():
            evidence.append((start + int(a), start + int(b)))
    context = {
        "doc": doc,
        "before": text[:start] if end > start else text,
        "passage": segments(text[start:end], [(a - start, b - start) for a, b in evidence]) if end > start else [],
        "after": text[end:] if end > start else "",
    }
    return templates.TemplateResponse(request, "document.html", context)
