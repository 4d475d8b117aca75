"""Citations a reader can take away: a Chicago-style note, the link to the passage, and the answer as
Markdown. One module, so the answer page's "Copy citation" and the Markdown download say the same.

A passage's link carries a short content hash of its document (`v=`), so the document view can tell
when the document has changed since the link was made instead of marking the wrong text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote, urlencode

from qa.answering.answers import Answer, Passage

HASH_CHARS = 12  # of the document's sha256: enough to tell versions apart, short enough for a link
QUOTE_CHARS = 300  # a passage without evidence is quoted up to this many characters
_YEAR = re.compile(r"\b(\d{4})\b")
# An answer's [n] claim marker, as web.cite_links links it.
_MARKER = re.compile(r"\[(\d{1,3})\]")
CITED = "Cited passages"
OTHERS = "Other passages retrieved (not cited in the answer)"
NEAREST = "Nearest passages (not relevant enough to cite)"
_SPACE = re.compile(r"\s+")


def short_hash(sha256: str | None) -> str:
    return (sha256 or "")[:HASH_CHARS]


def view_path(passage: Passage, doc_hash: str = "") -> str:
    """The document view at the passage, its evidence marked, and the document's short hash."""
    params: dict[str, object] = {"start": passage.start, "end": passage.end}
    if passage.highlights:
        params["hl"] = ",".join(f"{a}-{b}" for a, b in passage.highlights)
    if doc_hash:
        params["v"] = doc_hash
    return f"/view/{quote(passage.doc_id)}?{urlencode(params)}#passage"


def one_line(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def quotation(passage: Passage) -> str:
    """The passage's evidence sentences, or for a passage without evidence its opening words."""
    if passage.highlights:
        return " … ".join(one_line(passage.text[a:b]) for a, b in passage.highlights)
    text = one_line(passage.text)
    if len(text) <= QUOTE_CHARS:
        return text
    return text[:QUOTE_CHARS].rsplit(" ", 1)[0] + " …"


def _authors(names: list[str] | None) -> str:
    names = [n for n in (names or []) if n and n.strip()]
    if len(names) > 3:
        return f"{names[0]} et al."
    if len(names) == 3:
        return f"{names[0]}, {names[1]}, and {names[2]}"
    return " and ".join(names)


def year_of(date: str | None) -> str:
    found = _YEAR.search(date or "")
    return found.group(1) if found else ""


def citation(passage: Passage, markdown: bool = False) -> str:
    """A Chicago-style note: authors, title (publisher, year), section, page, then the quotation.

    Authors, publisher and date are used when the document's metadata has them and left out when not."""
    publisher = passage.publisher or ""
    year = year_of(passage.date)
    title = f"*{passage.title}*" if markdown else passage.title
    imprint = ", ".join(part for part in (publisher, year) if part)
    section = one_line(passage.section or "").rstrip(".:;,")
    parts = [
        _authors(passage.authors),
        f"{title} ({imprint})" if imprint else title,
        f"“{section}”" if section and one_line(section) != one_line(passage.title) else "",
        f"p. {passage.page}" if passage.page else "",
    ]
    return ", ".join(part for part in parts if part) + f". “{quotation(passage)}”"


def cited_ranks(answer: Answer) -> set[int]:
    """The ranks the answer's [n] markers name (a bracketed number beyond the passages, such as a
    footnote quoted from a document, names none); none when the answer abstains."""
    if answer.abstained:
        return set()
    ranks = {int(m.group(1)) for m in _MARKER.finditer(answer.answer)}
    return {p.rank for p in answer.passages if p.rank in ranks}


def groups(answer: Answer) -> list[tuple[str, list[Passage], bool]]:
    """(heading, passages, cited) in page order: the passages the answer cites, then the others it
    retrieved; an abstained answer's passages are all "nearest". Empty groups are left out."""
    if answer.abstained:
        return [(NEAREST, list(answer.passages), False)] if answer.passages else []
    cited = cited_ranks(answer)
    out = [(CITED, [p for p in answer.passages if p.rank in cited], True),
           (OTHERS, [p for p in answer.passages if p.rank not in cited], False)]
    return [group for group in out if group[1]]


def source(passage: Passage) -> str:
    """Where an uncited passage comes from, in Markdown: its title, section and page, then its words."""
    section = one_line(passage.section or "").rstrip(".:;,")
    parts = [f"*{passage.title}*", f"“{section}”" if section and section != one_line(passage.title) else "",
             f"p. {passage.page}" if passage.page else ""]
    return ", ".join(part for part in parts if part) + f": “{quotation(passage)}”"


def markdown(answer: Answer, page_url: str, links: Mapping[int, str]) -> str:
    """The answer page as Markdown: the question, the answer with its [n] markers as on the page, then
    the passages numbered by rank under the page's headings: the cited ones with their citation, the
    others with their source only (they are not citations); each with its link (links: rank -> URL)."""
    lines = [f"# {one_line(answer.question)}", "", answer.answer, ""]
    for heading, passages, cited in groups(answer):
        lines += [f"## {heading}", ""]
        for p in passages:
            text = citation(p, markdown=True) if cited else source(p)
            lines += [f"{p.rank}. {text}", f"   <{links[p.rank]}>", ""]
    lines += [f"Answer page: <{page_url}>", ""]
    return "\n".join(lines)
