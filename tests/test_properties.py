"""Properties of the readers and the chunker for arbitrary text, checked with hypothesis.

Every offset the system hands out (passages, highlights, the document view) rests on these: chunks
are exact slices that cover the text, never exceed the model's token limit, and follow the
document's sections and pages in order.
"""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdfmaker import make_pdf
from qa.config import DEFAULT_MODEL
from qa.errors import DocumentError
from qa.indexing.embedding import HFTokenizer, load_tokenizer
from qa.reading.chunking import chunk_document
from qa.reading.documents import Document, read_document

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cache
def tokenizer() -> HFTokenizer:
    """The real model's tokenizer, loaded once: token limits are only meaningful with it."""
    return load_tokenizer(DEFAULT_MODEL)


# -- text that looks like documents, and text that does not ------------------------------------------
ODD_SPACE = st.sampled_from([" ", "  ", "\t", "\n", "\n\n", "\n \n", "\x0b", "\x0c", "\x1c", "\x85", "\xa0",
                             "\u2028", "\u3000", "\u200b"])
WORD = st.one_of(
    st.sampled_from(["trade", "alliance", "U.S.", "Japan", "e.g.", "Dr.", "1960", "APEC", "supply-chain", "§",
                     "数字貿易", "ل التجارة", "😀", "x" * 300, "naïve", "e\u0301", "\x00", "\x07", "[1]"]),
    st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12),
)
PUNCT = st.sampled_from([".", "!", "?", "。", ",", ";", ":", "…", ".\"", ".)", "?!"])
LINE_START = st.sampled_from(["", "# ", "## ", "  - ", "• ", "1. ", "12) ", "#", "    "])


@st.composite
def documentish(draw) -> str:
    """Lines of words with sentence ends, headings, list items, blank lines and odd whitespace."""
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        separator = st.one_of(st.just(" "), PUNCT.map(lambda p: p + " "), ODD_SPACE)
        words = draw(st.lists(st.tuples(WORD, separator), max_size=30))
        lines.append(draw(LINE_START) + "".join(w + sep for w, sep in words))
    return "\n".join(lines)


ANY_TEXT = st.one_of(documentish(), st.text(st.characters(exclude_categories=["Cs"]), max_size=400))


def read(text: str, suffix: str) -> Document | None:
    try:
        return read_document(Path("doc" + suffix), "doc" + suffix, text.encode("utf-8"))
    except DocumentError:
        return None  # empty, binary (NUL) or otherwise refused: refusing is allowed, crashing is not


# -- readers ------------------------------------------------------------------------------------------
def assert_sections_in_order(doc: Document) -> None:
    offsets = [offset for offset, _ in doc.sections]
    assert offsets == sorted(set(offsets)), "section offsets must increase"
    for offset, heading in doc.sections:
        assert heading and heading == heading.strip()
        assert doc.text.startswith(heading, offset), (offset, heading)


@PROPERTY_SETTINGS
@given(text=ANY_TEXT, suffix=st.sampled_from([".txt", ".md"]))
def test_text_readers_keep_sections_in_order_and_at_their_headings(text, suffix):
    doc = read(text, suffix)
    if doc is None:
        return
    assert doc.text.strip() and "\r" not in doc.text
    assert doc.title and not doc.pages
    assert_sections_in_order(doc)


BLOCK_TAG = st.sampled_from(["h1", "h2", "h3", "p", "li", "pre", "blockquote", "td"])


@PROPERTY_SETTINGS
@given(blocks=st.lists(st.tuples(BLOCK_TAG, st.text(st.characters(exclude_categories=["Cs"]), max_size=60)),
                       max_size=10))
def test_html_reader_keeps_sections_in_order_and_at_their_headings(blocks):
    page = "<html><body>" + "".join(f"<{t}>{html.escape(s)}</{t}>" for t, s in blocks) + "</body></html>"
    doc = read(page, ".html")
    if doc is None:
        return
    assert_sections_in_order(doc)
    headings = [" ".join(s.split()) for t, s in blocks if t in ("h1", "h2", "h3") and s.split()]
    assert [h for _, h in doc.sections] == headings


PDF_LINE = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=50)


@settings(max_examples=15, deadline=None)
@given(pages=st.lists(st.lists(PDF_LINE, max_size=4), min_size=1, max_size=5))
def test_pdf_reader_pages_are_in_order(pages):
    try:
        doc = read_document(Path("doc.pdf"), "doc.pdf", make_pdf(pages))
    except DocumentError:
        assert not any(line.strip() for lines in pages for line in lines)
        return
    offsets = [offset for offset, _ in doc.pages]
    numbers = [number for _, number in doc.pages]
    assert offsets == sorted(set(offsets)) and offsets[0] == 0
    assert numbers == sorted(set(numbers)) and numbers[0] >= 1 and numbers[-1] <= len(pages)


# -- chunker ------------------------------------------------------------------------------------------
def assert_chunks_are_sound(doc: Document, max_tokens: int, target_tokens: int) -> None:
    chunks = chunk_document(doc, tokenizer(), target_tokens, max_tokens)
    text = doc.text
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    position = 0
    for chunk in chunks:
        assert chunk.text == text[chunk.start : chunk.end]
        assert chunk.text.strip(), "empty chunk"
        assert tokenizer().count(chunk.text) <= max_tokens, (chunk.start, chunk.end)
        gap = text[position : chunk.start]
        assert not gap.strip(), f"text lost between chunks at {position}: {gap!r}"
        position = chunk.end
        for a, b in chunk.sentences:
            assert chunk.start <= a < b <= chunk.end
        assert list(chunk.sentences) == sorted(chunk.sentences)
    assert not text[position:].strip(), f"text lost after the last chunk: {text[position:]!r}"
    if not chunks:
        assert not text.strip()

    # Sections: the chunks name the document's headings, in document order.
    named = [c.section for c in chunks if c.section is not None]
    distinct = [s for i, s in enumerate(named) if i == 0 or s != named[i - 1]]
    headings = iter(h for _, h in doc.sections)
    assert all(any(h == s for h in headings) for s in distinct), "sections out of document order"

    # Pages: never decrease, and a chunk never straddles the start of a page.
    pages = [c.page for c in chunks]
    if doc.pages:
        assert pages == sorted(pages)
        starts = [offset for offset, _ in doc.pages]
        for chunk in chunks:
            assert not any(chunk.start < s < chunk.end for s in starts), (chunk.start, chunk.end)
    else:
        assert set(pages) <= {None}


@PROPERTY_SETTINGS
@given(text=ANY_TEXT, suffix=st.sampled_from([".txt", ".md"]),
       limits=st.sampled_from([(16, 16), (40, 24), (256, 200)]))
def test_chunks_cover_the_text_within_the_token_limit(text, suffix, limits):
    doc = read(text, suffix)
    if doc is not None:
        assert_chunks_are_sound(doc, *limits)


@PROPERTY_SETTINGS
@given(text=documentish(), data=st.data(), limits=st.sampled_from([(16, 16), (40, 24)]))
def test_chunks_follow_pages_in_order(text, data, limits):
    if not text.strip():
        return
    starts = sorted({0, *data.draw(st.lists(st.integers(1, max(1, len(text) - 1)), max_size=4))})
    pages = [(offset, number) for number, offset in enumerate(starts, start=1)]
    doc = Document("doc.pdf", "doc", text, "0" * 64, [], pages)
    assert_chunks_are_sound(doc, *limits)


def test_a_long_markdown_heading_is_split_to_fit_the_model():
    doc = read("# " + "alliance " * 400 + "\n\nA body sentence under the long heading.", ".md")
    assert_chunks_are_sound(doc, 256, 200)


@pytest.mark.parametrize("suffix", [".txt", ".md"])
def test_the_properties_hold_for_the_report(suffix):
    text = (Path(__file__).resolve().parent.parent / "corpus" / "article-ii-mandate.txt").read_text()
    assert_chunks_are_sound(read(text, suffix), 256, 200)


# -- every visible word, in reading order (issue 12) ---------------------------------------------------
PLAIN_WORD = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzéü数字"), min_size=1, max_size=8)
CONTAINERS = ["div", "span", "p", "b", "em", "section", "a", "li", "h2", "blockquote", "strong"]


@st.composite
def html_tree(draw, depth: int = 0) -> tuple[str, list[str]]:
    """(markup, its words in order): words nested in blocks and inline elements, siblings spaced."""
    parts, words = [], []
    for _ in range(draw(st.integers(1, 4))):
        if depth < 4 and draw(st.booleans()):
            tag = draw(st.sampled_from(CONTAINERS))
            inner, inner_words = draw(html_tree(depth + 1))
            parts.append(f"<{tag}>{inner}</{tag}>")
            words += inner_words
        else:
            word = draw(PLAIN_WORD)
            parts.append(word)
            words.append(word)
    return " ".join(parts), words


@PROPERTY_SETTINGS
@given(html_tree())
def test_html_reader_keeps_every_visible_word_in_order(tree):
    markup, words = tree
    page = f"<html><head><title>t</title><script>var hidden=1</script></head><body>{markup}</body></html>"
    doc = read_document(Path("p.html"), "p.html", page.encode())
    assert doc.text.split() == words


@PROPERTY_SETTINGS
@given(st.lists(st.tuples(st.sampled_from(["", "# ", "## ", "- ", "1. ", "> "]),
                          st.lists(st.tuples(st.sampled_from(["", "*", "**", "`"]), PLAIN_WORD), min_size=1,
                                   max_size=6)), min_size=1, max_size=8))
def test_markdown_reader_keeps_every_word_without_its_markup(blocks):
    source, words = [], []
    for marker, run in blocks:
        source.append(marker + " ".join(f"{m}{w}{m}" for m, w in run))
        words += [w for _, w in run]
    doc = read_document(Path("m.md"), "m.md", "\n\n".join(source).encode())
    numbers = {"1."}  # an ordered list item keeps its number
    assert [w for w in doc.text.split() if w not in numbers] == words
    assert not any(ch in doc.text for ch in "*`#>")
