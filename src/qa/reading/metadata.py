"""Who wrote a document, who published it and when, read from the document itself.

Each value remembers where it came from: a span of `Document.text` (a byline, a copyright or date
line, a front-matter line still in the text), so an answer can cite and highlight that line, or
`METADATA` (HTML <meta>, PDF document information, front matter the reader removed), so an answer
can say it comes from the document's metadata. Unknown values are None: nothing is guessed.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

METADATA: Literal["metadata"] = "metadata"
Source = tuple[int, int] | Literal["metadata"]
FIELDS = ("authors", "publisher", "date")

# A byline or a date line sits near the top of a document; a copyright line anywhere (often last).
HEAD_LINES = 15


@dataclass(frozen=True)
class Metadata:
    title: str | None = None
    authors: list[str] | None = None
    publisher: str | None = None
    date: str | None = None  # ISO 8601 as precise as the source: "2018", "2018-05", "2018-05-14"
    sources: dict[str, Source] = field(default_factory=dict)  # field name -> span in the text or METADATA

    def to_row(self) -> dict:
        """JSON-able form for the index (spans as lists)."""
        return {
            "authors": self.authors, "publisher": self.publisher, "date": self.date,
            "sources": {k: (v if v == METADATA else list(v)) for k, v in self.sources.items()},
        }

    @classmethod
    def from_row(cls, title: str | None, row: dict) -> Metadata:
        sources = {k: (v if v == METADATA else (int(v[0]), int(v[1]))) for k, v in row.get("sources", {}).items()}
        return cls(title, row.get("authors"), row.get("publisher"), row.get("date"), sources)


# -- dates ---------------------------------------------------------------------------------------
_MONTHS = {m: i for i, m in enumerate(
    "jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)}
_MONTH = r"(?P<month>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|" \
         r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
_DATE_FORMS = [
    re.compile(r"\b(?P<year>(?:19|20)\d\d)[-/.](?P<mon>\d\d?)(?:[-/.](?P<day>\d\d?))?\b"),
    re.compile(rf"\b(?P<day>\d\d?)(?:st|nd|rd|th)?\s+{_MONTH}\s*,?\s+(?P<year>(?:19|20)\d\d)\b", re.I),
    re.compile(rf"\b{_MONTH}\s+(?P<day>\d\d?)(?:st|nd|rd|th)?\s*,?\s+(?P<year>(?:19|20)\d\d)\b", re.I),
    re.compile(rf"\b{_MONTH}\s*,?\s+(?P<year>(?:19|20)\d\d)\b", re.I),
    re.compile(r"\b(?P<year>(?:19|20)\d\d)\b"),
]


def parse_date(value: object) -> str | None:
    """ISO 8601 as precise as `value` says: "2018", "2018-05" or "2018-05-14"; None if it holds no date.

    Takes what YAML gives (date, datetime), ISO strings, "14 May 2018", "May 14, 2018", "May 2018",
    citation_publication_date's "2018/05/14" and PDF dates ("D:20180514093000Z")."""
    if isinstance(value, datetime | date):
        return value.strftime("%Y-%m-%d")
    if not isinstance(value, str | int):
        return None
    text = str(value).strip()
    pdf = re.fullmatch(r"D:((?:19|20)\d\d)(\d\d)?(\d\d)?.*", text)
    if pdf:
        return "-".join(p for p in pdf.groups() if p)
    for form in _DATE_FORMS:
        m = form.search(text)
        if not m:
            continue
        parts = m.groupdict()
        year = parts["year"]
        month = int(parts["mon"]) if parts.get("mon") else _MONTHS.get((parts.get("month") or "")[:3].lower())
        if month is None:
            return year
        if not 1 <= month <= 12:
            continue
        day = int(parts["day"]) if parts.get("day") else None
        if day is None:
            return f"{year}-{month:02d}"
        return f"{year}-{month:02d}-{day:02d}" if 1 <= day <= 31 else f"{year}-{month:02d}"
    return None


# -- names -----------------------------------------------------------------------------------------
# A person's name: two to four capitalised words, initials ("P.") and particles ("van", "de") allowed.
_NAME_WORD = r"(?:[A-Z][\w'’-]+|[A-Z]\.)"
_PERSON = re.compile(rf"{_NAME_WORD}(?:\s+(?:(?:van|von|de|da|del|der|di|le|la|bin)\s+)?{_NAME_WORD}){{1,3}}")
_NAME_SEPARATORS = re.compile(r"\s*(?:;|,|&|\band\b)\s*")


def split_names(value: object) -> list[str]:
    """Author names from a string ("A; B", "A, B and C", "A & B") or a list; "Goodman, Matthew P." stays one."""
    items = value if isinstance(value, list | tuple) else [value]
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            continue
        parts = [p.strip() for p in _NAME_SEPARATORS.split(item) if p and p.strip()]
        if len(parts) == 2 and " " not in parts[0] and ";" not in item and "and" not in item.split():
            parts = [f"{parts[1]} {parts[0]}"]  # "Goodman, Matthew P." -> "Matthew P. Goodman"
        names += [" ".join(p.split()) for p in parts]
    return list(dict.fromkeys(n for n in names if n)) or []


def _people(text: str) -> list[str] | None:
    """The names of `text` if it is nothing but a list of person names, else None."""
    parts = [p for p in _NAME_SEPARATORS.split(text.strip().rstrip(".")) if p]
    if parts and all(_PERSON.fullmatch(p.strip()) for p in parts):
        return [" ".join(p.split()) for p in parts]
    return None


# -- lines of plain text -----------------------------------------------------------------------------
_BY = re.compile(r"^(?:written\s+)?by[:\s]\s*(?P<rest>.+)$", re.I)
_BYLINE_SPLIT = re.compile(r"\s+[|–—·]\s+|\s+-\s+")
_ORGANISATION = re.compile(r"^[A-Z&][\w&'’.,()-]*(?:\s+[\w&'’.,()-]+){0,12}$")
_COPYRIGHT = re.compile(r"(?:©|\(c\)|copyright)\s*(?:©\s*)?(?P<year>(?:19|20)\d\d)(?:\s*[-–]\s*(?:19|20)\d\d)?", re.I)
_DATE_LINE = re.compile(
    r"^(?:published|date|dated|released|issued|written|first published|publication date)\b"
    r"\s*(?:on|in)?\s*:?\s*(?P<rest>.+)$",
    re.I,
)


def byline(line: str) -> tuple[list[str], str | None] | None:
    """(authors, organisation) when `line` is a byline: "Name, Name | Organisation", "By Name and Name"."""
    text = " ".join(line.split())
    if not text or len(text) > 200 or text.endswith((".", "?", "!", ":")) and not text.endswith(" Inc."):
        return None
    by = _BY.match(text)
    if by:
        text = by.group("rest")
    parts = _BYLINE_SPLIT.split(text, maxsplit=1)
    people = _people(parts[0])
    if people is None:
        return None
    organisation = parts[1].strip() if len(parts) == 2 else None
    if organisation is not None and not _ORGANISATION.match(organisation):
        return None
    if not by and organisation is None:
        return None  # a bare list of capitalised words ("United States, Japan") is not a byline
    return people, organisation


def is_byline(line: str) -> bool:
    return byline(line) is not None


def _lines(text: str) -> list[tuple[int, int, str]]:
    """(start, end, stripped text) of every non-blank line, offsets of the stripped text."""
    out, pos = [], 0
    for raw in text.split("\n"):
        stripped = raw.strip()
        if stripped:
            start = pos + len(raw) - len(raw.lstrip())
            out.append((start, start + len(stripped), stripped))
        pos += len(raw) + 1
    return out


def from_text(text: str) -> Metadata:
    """Byline and date line among the first lines, copyright line anywhere: all with their spans."""
    values: dict = {}
    sources: dict[str, Source] = {}
    lines = _lines(text)
    for start, end, line in lines[:HEAD_LINES]:
        found = byline(line) if "authors" not in values else None
        if found:
            values["authors"], sources["authors"] = found[0], (start, end)
            if found[1]:
                values["publisher"], sources["publisher"] = found[1], (start, end)
            continue
        dated = _DATE_LINE.match(line)
        if dated and "date" not in values and len(dated.group("rest")) <= 40 and parse_date(dated.group("rest")):
            values["date"], sources["date"] = parse_date(dated.group("rest")), (start, end)
    for start, end, line in lines:
        m = _COPYRIGHT.search(line)
        if not m:
            continue
        if "date" not in values:
            values["date"], sources["date"] = m.group("year"), (start, end)
        if "publisher" not in values:
            holder = _copyright_holder(line, m)
            if holder:
                values["publisher"], sources["publisher"] = holder, (start, end)
        break
    return Metadata(None, values.get("authors"), values.get("publisher"), values.get("date"), sources)


def _copyright_holder(line: str, m: re.Match) -> str | None:
    """"© 2018 Org. All rights reserved." or "Org, All content © 2018." -> "Org"."""
    after = re.split(r"[.;]\s|\.$|,?\s+all rights", line[m.end():].strip(" ,"), maxsplit=1, flags=re.I)[0].strip()
    before = re.split(r",|\ball\b|\bcontent\b", line[: m.start()], maxsplit=1, flags=re.I)[0].strip(" ,")
    for candidate in (after, before):
        if candidate and _ORGANISATION.match(candidate) and not candidate.lower().startswith("all "):
            return candidate
    return None


# -- structured sources --------------------------------------------------------------------------------
_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\n(?P<body>.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_AUTHOR_KEYS = ("authors", "author", "creator", "creators")
_PUBLISHER_KEYS = ("publisher", "organization", "organisation", "institution")
_DATE_KEYS = ("date", "published", "publication_date", "publish_date", "pubdate", "created")


def from_front_matter(source: str) -> tuple[Metadata, dict[str, str]]:
    """Markdown front matter (YAML between --- lines) -> (values, the source line of each value)."""
    import yaml

    m = _FRONT_MATTER.match(source)
    if not m:
        return Metadata(), {}
    try:
        data = yaml.safe_load(m.group("body"))
    except (yaml.YAMLError, ValueError, TypeError, RecursionError):  # "date: 2019-13-45" is a ValueError
        return Metadata(), {}
    if not isinstance(data, dict):
        return Metadata(), {}
    data = {str(k).lower(): v for k, v in data.items()}
    raw_lines = _front_matter_lines(m.group("body"))
    title = data.get("title") if isinstance(data.get("title"), str) else None
    authors = next((split_names(data[k]) for k in _AUTHOR_KEYS if data.get(k)), None) or None
    publisher = next((str(data[k]).strip() for k in _PUBLISHER_KEYS if data.get(k)), None)
    when = next((parse_date(data[k]) for k in _DATE_KEYS if data.get(k)), None)
    lines = {}
    for name, keys in (("authors", _AUTHOR_KEYS), ("publisher", _PUBLISHER_KEYS), ("date", _DATE_KEYS)):
        key = next((k for k in keys if data.get(k)), None)
        if key and key in raw_lines:
            lines[name] = raw_lines[key]
    return Metadata(title, authors, publisher, when), lines


def _front_matter_lines(body: str) -> dict[str, str]:
    """key -> its lines as written: the "key:" line and the indented or "- " lines that continue it."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in body.splitlines():
        if current is not None and line.startswith((" ", "\t", "-")) and line.strip():
            current.append(line)
        elif ":" in line and not line.startswith((" ", "\t")):
            current = blocks.setdefault(line.split(":", 1)[0].strip().lower(), [line])
        else:
            current = None
    return {key: "\n".join(lines) for key, lines in blocks.items()}


_META_AUTHOR = ("citation_author", "dc.creator", "dcterms.creator", "author", "article:author")
_META_PUBLISHER = ("citation_publisher", "dc.publisher", "dcterms.publisher", "publisher", "og:site_name")
_META_DATE = ("citation_publication_date", "citation_date", "dc.date", "dcterms.issued", "dcterms.date",
              "article:published_time", "date", "pubdate")


def from_html(html: str) -> Metadata:
    """<title> and <meta name|property=...> (author, citation_*, dc.*, date) of an HTML page."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    metas: dict[str, list[str]] = {}
    for tag in soup.find_all("meta"):
        key = (tag.get("name") or tag.get("property") or "").strip().lower()
        content = (tag.get("content") or "").strip()
        if key and content:
            metas.setdefault(key, []).append(content)
    title_tag = soup.find("title")
    title = " ".join(title_tag.get_text(" ").split()) if title_tag else None
    authors = next((split_names(metas[k]) for k in _META_AUTHOR if k in metas), None) or None
    publisher = next((metas[k][0] for k in _META_PUBLISHER if k in metas), None)
    when = next((d for k in _META_DATE if k in metas for d in [parse_date(metas[k][0])] if d), None)
    return Metadata(title or None, authors, publisher, when)


# A PDF /Title that only names the file it was made from is no title.
_FILE_TITLE = re.compile(r"(?:^microsoft \w+ - |\.(?:docx?|pdf|odt|rtf|pptx?|tex)$|^untitled)", re.I)


def from_pdf(data: bytes) -> Metadata:
    """PDF document information: /Title, /Author, /CreationDate, and /Publisher or /Company if set."""
    from pypdf import PdfReader

    try:
        info = PdfReader(io.BytesIO(data)).metadata or {}
    except Exception:  # noqa: BLE001 - the text reader already reported an unreadable PDF; metadata is optional
        return Metadata()

    def get(key: str) -> str | None:
        value = info.get(key)
        return " ".join(str(value).split()) or None if value is not None else None

    title = get("/Title")
    if title and _FILE_TITLE.search(title):
        title = None
    authors = split_names(get("/Author")) if get("/Author") else None
    publisher = get("/Publisher") or get("/Company")
    when = parse_date(get("/CreationDate") or "")
    return Metadata(title, authors or None, publisher, when)


# -- one document ----------------------------------------------------------------------------------
def read_metadata(suffix: str, data: bytes, text: str) -> Metadata:
    """Metadata of a document from its file bytes and the text the reader made of them.

    What the text says (a byline, a date or copyright line) comes first, because an answer can
    cite it; structured metadata fills what the text does not say, and its values are located in
    the text's first lines when written there too (a front-matter line, a name under the title)."""
    found = from_text(text)
    structured, raw_lines = Metadata(), {}
    if suffix == ".md":
        structured, raw_lines = from_front_matter(data.decode("utf-8-sig", "replace").replace("\r\n", "\n"))
    elif suffix in (".html", ".htm"):
        structured = from_html(data.decode("utf-8-sig", "replace"))
    elif suffix == ".pdf":
        structured = from_pdf(data)
    values = {name: getattr(found, name) for name in FIELDS}
    sources = dict(found.sources)
    for name in FIELDS:
        value = getattr(structured, name)
        if values[name] is not None or not value:
            continue
        values[name] = value
        sources[name] = _locate(text, raw_lines.get(name), value) or METADATA
    return Metadata(structured.title, values["authors"], values["publisher"], values["date"], sources)


def _locate(text: str, raw_line: str | None, value: object) -> tuple[int, int] | None:
    """Span of the line that states `value` in the text's first lines: the front-matter line itself,
    or a line holding every author name, the publisher or the date as written."""
    if raw_line and raw_line.strip():
        at = text.find(raw_line.strip())
        if at >= 0:
            return at, at + len(raw_line.strip())
    for start, end, line in _lines(text)[:HEAD_LINES]:
        if isinstance(value, list) and all(name in line for name in value) and len(line) < 200:
            return start, end
        if isinstance(value, str) and value in line and len(line) < 200 and not _DATE_FORMS[-1].fullmatch(value):
            return start, end
    return None
