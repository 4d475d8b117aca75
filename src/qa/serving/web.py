"""HTML routes: the question page and the document view, rendered on the server (no JavaScript needed)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from qa.answering.answers import Answer, Passage
from qa.errors import QAError
from qa.indexing import lexical
from qa.indexing.store import StoredDocument
from qa.service import MAX_K, MAX_QUESTION_CHARS, Assistant, InvalidRequest
from qa.serving import citations, document_view
from qa.serving.overview import Overview, overview

# web/ sits at the top of the repository; src/qa/assets links to it so wheels carry it as package data.
WEB_DIR = Path(str(files("qa") / "assets"))
STATIC_DIR = WEB_DIR / "static"
templates = Jinja2Templates(directory=WEB_DIR / "templates")
router = APIRouter(include_in_schema=False)

_MARKER = re.compile(r"\[(\d{1,3})\]")
# One evidence span of a /view link: "start-end" in ASCII digits, relative to the passage.
_SPAN = re.compile(r"(\d{1,9})-(\d{1,9})", re.ASCII)
MAX_SPANS = 8
# Two or more line breaks (with only blanks between) show as one blank line, and a line break inside
# a sentence (the next line starts in lower case: a hard-wrapped paragraph) as a space; CSS
# `pre-line` drops the layout indentation. Only the display changes: pieces are cut at the stored
# offsets first, so marks and links stay exact.
_BLANK_LINES = re.compile(r"[ \t\f\v\r]*\n(?:[ \t\f\v\r]*\n)+")
_WRAPPED = re.compile(r"(?<=[^\s.:;!?])[ \t\f\v\r]*\n[ \t]*(?=[a-z])")
_WORD = re.compile(r"\w+")
# The "Search in" list shows at most this many documents; more are chosen from the library.
MAX_SCOPE_CHOICES = 500


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


def readable(piece: str) -> str:
    return _WRAPPED.sub(" ", _BLANK_LINES.sub("\n\n", piece))


Pieces = list[tuple[str, bool]]


def paragraphs(pieces: Pieces) -> list[Pieces]:
    """The pieces cut into paragraphs at blank lines (a mark across a break is cut in two), without
    the blanks at a paragraph's ends: shown as <p>s, a passage has no empty line of its own."""
    out: list[Pieces] = [[]]
    for piece, marked in pieces:
        for i, part in enumerate(_BLANK_LINES.split(piece)):
            if i:
                out.append([])
            out[-1].append((part, marked))
    trimmed = []
    for para in out:
        para = [piece for piece in para if piece[0]]
        while para and not para[0][0].strip():
            para.pop(0)
        while para and not para[-1][0].strip():
            para.pop()
        if para:
            para[0] = (para[0][0].lstrip(), para[0][1])
            para[-1] = (para[-1][0].rstrip(), para[-1][1])
            trimmed.append(para)
    return trimmed


templates.env.filters["cite_links"] = cite_links
templates.env.filters["readable"] = readable
templates.env.globals.update(max_question=MAX_QUESTION_CHARS, max_k=MAX_K)


def wants_html(request: Request) -> bool:
    return request.url.path == "/" or request.url.path.startswith("/view/")


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return templates.TemplateResponse(request, "error.html", {"status": status, "message": message},
                                      status_code=status)


@dataclass(frozen=True)
class ShownPassage:
    """One passage as the answer page shows it: marked pieces, its links, citation and why it came up."""

    passage: Passage
    paragraphs: list[Pieces]  # the passage's text, its evidence marked
    cited: bool  # the answer's [n] markers name it: only then is it offered as a citation
    path: str  # the document view at the passage, with the document's short hash
    url: str  # the same, absolute: what "Copy link" copies
    citation: str
    found: list[str]  # the question's words (as typed) whose stems the passage holds
    missing: list[str]


def question_words(question: str) -> list[tuple[str, str]]:
    """(word as typed, its stem) for the question's content words, first occurrence of each stem."""
    out, seen = [], set()
    for word in _WORD.findall(question):
        for stem in lexical.terms(word):
            if stem not in seen:
                seen.add(stem)
                out.append((word, stem))
    return out


@dataclass(frozen=True)
class PassageGroup:
    """A heading of the answer page and the passages under it: "Cited passages", the others, or the
    nearest ones of an abstained answer."""

    id: str
    heading: str
    passages: list[ShownPassage]


def shown_passages(answer: Answer, paths: dict[int, str], base_url: str) -> list[PassageGroup]:
    words = question_words(answer.question)
    groups = []
    for heading, passages, cited in citations.groups(answer):
        shown = []
        for p in passages:
            path = paths[p.rank]
            stems = set(lexical.terms(p.text))
            shown.append(ShownPassage(
                p, paragraphs(segments(p.text, p.highlights)), cited, path, base_url + path,
                citations.citation(p), [w for w, s in words if s in stems], [w for w, s in words if s not in stems],
            ))
        kind = "cited" if heading == citations.CITED else "others" if heading == citations.OTHERS else "nearest"
        groups.append(PassageGroup(kind, heading, shown))
    return groups


@dataclass(frozen=True)
class Shelf:
    """What the question page shows of the index besides answers: the overview and the documents."""

    overview: Overview | None
    documents: list[StoredDocument]


_shelf_cache: dict[str, Shelf] = {}


def shelf(assistant: Assistant) -> Shelf:
    """Computed once per published generation: listing documents counts every chunk (a full scan)."""
    try:
        gen = assistant.generation()
    except QAError:
        return Shelf(None, [])
    key = str(gen.path)
    if key not in _shelf_cache:
        _shelf_cache.clear()
        _shelf_cache[key] = Shelf(overview(gen), gen.documents())
    return _shelf_cache[key]


_headings_cache: dict[str, dict[str, list[str]]] = {}


def section_headings(assistant: Assistant, doc_id: str) -> list[str]:
    """The document's section headings in reading order, as its reader found them; read once per
    published generation (the store keeps them for every document in one column)."""
    gen = assistant.generation()
    key = str(gen.path)
    if key not in _headings_cache:
        _headings_cache.clear()
        _headings_cache[key] = {found: heads for found, _, heads in gen.headings(gen.document_count)}
    return _headings_cache[key].get(doc_id, [])


def answer_href(request: Request, fmt: str | None = None) -> str:
    """This answer page's own link (relative), in `fmt` if given: the question, k and the chosen documents."""
    params = [(key, value) for key, value in request.query_params.multi_items() if key != "format"]
    return "/?" + urlencode(params + ([("format", fmt)] if fmt else []))


@router.get("/", response_class=HTMLResponse)
def home(
    request: Request, q: str | None = None, k: str = "5",
    doc: Annotated[list[str], Query()] = (), format: str = "html",
) -> Response:
    """The question box; with ?q= it is also the shareable answer page for that question, limited to
    the documents named by ?doc= (repeated) if any, and with &format=md the same answer as Markdown."""
    assistant: Assistant = request.app.state.assistant
    chosen = list(dict.fromkeys(doc))
    here = shelf(assistant)
    picked = [d for d in here.documents if d.doc_id in chosen]
    # In their own order, ticked or not (a ticked box does not jump to the top); a long list is cut at
    # MAX_SCOPE_CHOICES, but a chosen document past the cut is still listed, ticked.
    listed = [d for i, d in enumerate(here.documents) if i < MAX_SCOPE_CHOICES or d.doc_id in chosen]
    context: dict = {"question": q or "", "k": k, "answer": None, "problem": None, "chosen": chosen,
                     "documents": listed, "overview": here.overview,
                     "chosen_titles": [d.title for d in picked]}
    if q is None:
        return templates.TemplateResponse(request, "index.html", context)
    problem, status = _check(k, chosen, {d.doc_id for d in here.documents})
    answer = None
    if problem is None:
        try:
            answer = assistant.ask(q, int(k), chosen or None)
        except InvalidRequest as exc:
            problem = _friendly(exc)
            status = 200 if not q.strip() else 422  # an empty box is a prompt to type, not a failure
    if format == "md":
        if answer is None:
            return Response(f"{problem}\n", status_code=status, media_type="text/plain; charset=utf-8")
        return _markdown(request, assistant, answer)
    if answer is None:
        context["problem"] = problem
        return templates.TemplateResponse(request, "index.html", context, status_code=status)
    context.update(answer=answer, markdown_href=answer_href(request, "md"),
                   groups=shown_passages(answer, passage_paths(assistant, answer), _base(request)))
    return templates.TemplateResponse(request, "index.html", context)


def _check(k: str, chosen: list[str], known: set[str]) -> tuple[str | None, int]:
    """A message for a k or a document choice the page cannot use, with its status; (None, 200) if fine."""
    try:
        if not 1 <= int(k) <= MAX_K:
            raise ValueError
    except ValueError:
        return f"Number of passages must be a whole number from 1 to {MAX_K}.", 422
    unknown = [d for d in chosen if d not in known]
    if unknown:
        names = ", ".join(f"“{d}”" for d in unknown)
        return (f"No indexed document is called {names}. Choose documents under “Search in”, "
                "or leave them all unticked to search every document."), 422
    return None, 200


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def passage_paths(assistant: Assistant, answer: Answer) -> dict[int, str]:
    """rank -> the document view at that passage, carrying its document's short hash."""
    hashes = assistant.generation().manifest["documents"]
    return {p.rank: citations.view_path(p, citations.short_hash(hashes.get(p.doc_id))) for p in answer.passages}


def _markdown(request: Request, assistant: Assistant, answer: Answer) -> Response:
    base = _base(request)
    links = {rank: base + path for rank, path in passage_paths(assistant, answer).items()}
    body = citations.markdown(answer, base + answer_href(request), links)
    return Response(body, media_type="text/markdown; charset=utf-8",
                    headers={"content-disposition": 'attachment; filename="answer.md"'})


def _friendly(exc: InvalidRequest) -> str:
    if exc.field == "question" and "empty" in str(exc):
        return "Please type a question first, for example: What does the report recommend on digital trade?"
    return str(exc).split(": ", 1)[-1].capitalize() + "."


@router.get("/view/{doc_id:path}", response_class=HTMLResponse)
def view_document(
    request: Request, doc_id: str, start: int = 0, end: int = 0, hl: str = "", v: str = "",
) -> HTMLResponse:
    """A document with the cited passage (start..end) marked and scrolled to, its evidence highlighted.

    `v` is the document's short hash when the link was made: if the document has changed since, the
    offsets may point at other text, so the page says so and marks nothing."""
    assistant: Assistant = request.app.state.assistant
    try:
        doc = assistant.document(doc_id)
    except QAError:
        return error_page(request, 404, f"No document called “{doc_id}” is indexed: it may have been removed or "
                                        "renamed. The library lists what is indexed now.")
    text = doc.text
    current = citations.short_hash(assistant.generation().manifest["documents"].get(doc_id))
    changed = bool(v) and v != current
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    # hl comes from a link anyone can edit: malformed spans are ignored, not an error.
    spans = (_SPAN.fullmatch(pair) for pair in hl.split(",")[:MAX_SPANS])
    evidence = [(start + int(m.group(1)), start + int(m.group(2))) for m in spans if m]
    if end <= start or changed:  # no passage named, or not one we can trust: the whole document, unmarked
        start = end = len(text)
    headings = document_view.heading_spans(text, section_headings(assistant, doc_id))
    # The title is the page's <h1>: the text's own title line is not shown again, unless it is cited.
    skip = document_view.title_end(text, doc.title, headings)
    skip = skip if skip <= start else 0
    context = {
        "doc": doc,
        "changed": changed,
        "before": document_view.pieces(text, skip, start, [], headings),
        "passage": document_view.pieces(text, start, end, evidence, headings),
        "after": document_view.pieces(text, end, len(text), [], headings),
    }
    if skip and context["before"]:
        first = context["before"][0]
        context["before"][0] = document_view.Piece(first.text.lstrip(), first.marked, first.heading)
    return templates.TemplateResponse(request, "document.html", context)
