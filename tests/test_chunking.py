"""Chunking with the model's own tokenizer: limits, structure, and exact offsets."""

from pathlib import Path

import pytest

from pdfmaker import make_pdf
from qa.indexing.embedding import load_tokenizer
from qa.reading.chunking import chunk_document, split_sentences
from qa.reading.documents import read_document

REPORT = Path(__file__).resolve().parent.parent / "corpus" / "article-ii-mandate.txt"
MAX = 256


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("sentence-transformers/all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def report_chunks(tokenizer):
    doc = read_document(REPORT, REPORT.name)
    return doc, chunk_document(doc, tokenizer, 200, MAX)


def test_chunks_are_exact_slices_within_the_token_limit(report_chunks, tokenizer):
    doc, chunks = report_chunks
    assert len(chunks) > 5
    for c in chunks:
        assert c.text == doc.text[c.start : c.end]
        assert c.text.strip() == c.text and c.text
        assert tokenizer.count(c.text) <= MAX
    # Nothing but whitespace falls between chunks.
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert doc.text[before.end : after.start].strip() == ""
    assert doc.text[: chunks[0].start].strip() == "" and doc.text[chunks[-1].end :].strip() == ""


def test_a_numbered_recommendation_stays_with_its_heading(report_chunks):
    _, chunks = report_chunks
    body = "Rule-making efforts should focus on extending the disciplines agreed on in TPP"
    (chunk,) = [c for c in chunks if body in c.text]
    assert "4. Cooperate on trade liberalization and rule-making." in chunk.text
    assert chunk.section == "4. Cooperate on trade liberalization and rule-making."


def test_no_sentence_is_cut(report_chunks):
    doc, chunks = report_chunks
    for start, end in split_sentences(doc.text):
        assert any(c.start <= start and end <= c.end for c in chunks), doc.text[start:end]


def test_sentences_handle_abbreviations_and_initials():
    text = "Matthew P. Goodman wrote it. The U.S. and Japan agreed. Trade grew! Did it? Yes."
    assert [text[a:b] for a, b in split_sentences(text)] == [
        "Matthew P. Goodman wrote it.", "The U.S. and Japan agreed.", "Trade grew!", "Did it?", "Yes."
    ]


def test_an_overlong_sentence_is_split_at_token_boundaries(tokenizer, tmp_path):
    words = " ".join(f"word{i}" for i in range(600)) + "."
    doc = read_document(tmp_path / "long.txt", "long.txt", f"Title\n\n{words}\n".encode())
    chunks = chunk_document(doc, tokenizer, 200, MAX)
    assert len(chunks) >= 3
    assert all(tokenizer.count(c.text) <= MAX for c in chunks)
    assert "".join(c.text.replace(" ", "") for c in chunks).replace("Title", "") == words.replace(" ", "")


def test_pdf_chunks_carry_their_page(tokenizer, tmp_path):
    pages = [[f"Page {n} says the allies discussed topic {n}."] for n in range(1, 4)]
    doc = read_document(tmp_path / "m.pdf", "m.pdf", make_pdf(pages))
    chunks = chunk_document(doc, tokenizer, 200, MAX)
    assert [c.page for c in chunks] == [1, 2, 3]
    assert all(f"Page {c.page} says" in c.text for c in chunks)
