"""Readers: every format gives text whose offsets the rest of the system can trust."""

import os
from pathlib import Path

import pytest

from pdfmaker import make_pdf
from qa.errors import DocumentError
from qa.reading.documents import iter_corpus_files, read_document


def test_report_is_read_unchanged_with_its_title_and_recommendation_headings():
    path = Path(__file__).resolve().parent.parent / "corpus" / "article-ii-mandate.txt"
    doc = read_document(path, "article-ii-mandate.txt")
    assert doc.text == path.read_text(encoding="utf-8")
    assert doc.title.startswith("The Article II Mandate")
    headings = [h for _, h in doc.sections]
    assert "4. Cooperate on trade liberalization and rule-making." in headings
    numbered = [h for h in headings if h.split(".")[0].isdigit()]
    assert [int(h.split(".")[0]) for h in numbered] == list(range(1, 11))  # all ten recommendations
    for offset, heading in doc.sections:
        assert doc.text[offset : offset + len(heading)] == heading


def test_markdown_title_and_sections(tmp_path):
    doc = read_document(tmp_path / "n.md", "n.md", b"# Trade memo\n\nIntro text.\n\n## Digital rules\n\nBody.\n")
    assert doc.title == "Trade memo"
    assert [h for _, h in doc.sections] == ["Trade memo", "Digital rules"]


def test_html_visible_text_title_and_headings_without_scripts(tmp_path):
    html = (b"<html><head><title>Joint statement</title><script>var secret=1;</script></head>"
            b"<body><h1>Leaders meet</h1><p>The leaders agreed <b>new</b> rules.</p>"
            b"<style>p{}</style><h2>Energy</h2><ul><li>LNG exports</li></ul></body></html>")
    doc = read_document(tmp_path / "s.html", "s.html", html)
    assert doc.title == "Joint statement"
    assert "secret" not in doc.text and "p{}" not in doc.text
    assert "The leaders agreed new rules." in doc.text
    assert [h for _, h in doc.sections] == ["Leaders meet", "Energy"]
    for offset, heading in doc.sections:
        assert doc.text[offset:].startswith(heading)


def test_pdf_keeps_page_numbers(tmp_path):
    data = make_pdf([["Memo on energy"], ["Page two talks about LNG."], ["Page three about chips."]])
    doc = read_document(tmp_path / "m.pdf", "m.pdf", data)
    assert [n for _, n in doc.pages] == [1, 2, 3]
    second = dict((n, o) for o, n in doc.pages)[2]
    assert doc.text[second:].startswith("Page two")


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("bad.pdf", b"%PDF-1.4 this is not really a pdf", "not a readable PDF"),
        ("junk.txt", b"\x00\x01\x02binary", "binary"),
        ("empty.md", b"  \n\n ", "no text"),
        ("slides.pptx", b"PK", "unsupported"),
    ],
)
def test_unreadable_files_raise_an_error_naming_the_file(tmp_path, name, data, message):
    with pytest.raises(DocumentError) as info:
        read_document(tmp_path / name, f"uploads/{name}", data)
    assert f"uploads/{name}" in str(info.value) and message in str(info.value)


def test_corpus_scan_is_recursive_and_skips_hidden_files_and_outside_links(tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "uploads" / "deep").mkdir(parents=True)
    (corpus / "a.txt").write_text("A")
    (corpus / "uploads" / "deep" / "b.md").write_text("B")
    (corpus / ".hidden.txt").write_text("H")
    (corpus / ".git").mkdir()
    (corpus / ".git" / "c.txt").write_text("C")
    (corpus / "notes.docx").write_text("D")
    outside = tmp_path / "secret.txt"
    outside.write_text("S")
    os.symlink(outside, corpus / "link-out.txt")
    os.symlink(corpus / "a.txt", corpus / "link-in.txt")
    assert [doc_id for doc_id, _ in iter_corpus_files(corpus)] == ["a.txt", "link-in.txt", "uploads/deep/b.md"]
