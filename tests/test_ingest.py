"""Every word of every document (issue 12): a fixture of each kind, uploaded, read back exactly, answered from.

The fixtures are small files in tests/fixtures/ingest (the PDF is typeset by tests/pdfmaker.py):
an HTML page whose text sits in <div>s, <span>s and a table; a two-page PDF with a running header,
page numbers, a heading per page and paragraphs that wrap; Markdown with front matter, emphasis,
links and lists; and a Latin-1 text file.
"""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient

from conftest import FIXTURES, make_settings
from pdfmaker import make_review_pdf
from qa.reading.documents import read_document
from qa.service import Assistant
from qa.serving.api import create_app

INGEST = FIXTURES / "ingest"
TOKEN = "ingest-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

HTML_TEXT = """Currency brief

The Plaza Accord and the yen

In September 1985 five finance ministers met at the Plaza Hotel in New York. They agreed to push the \
dollar down against the yen and the mark.

The yen rose by almost half within two years.

Exporters in Japan called this the endaka shock.

Exchange rates

Average exchange rate by year

Year | Yen per dollar
1985 | 238
1986 | 168
1987 | 145

The Bank of Japan cut its discount rate five times in 1986 and 1987."""

PDF_TEXT = """Shipbuilding Cooperation

The shipbuilding pact covers twelve destroyers per year, built in yards on both sides of the Pacific. \
Each yard trains welders and engineers from the other country, and the first hulls are due to be launched \
in the spring of 2028.

Inspectors from both navies sign off every hull.

Semiconductor Supply

The two governments fund a shared stockpile of legacy chips so that a single factory fire can no longer \
halt car production in either country for months at a time."""

MARKDOWN_TEXT = """Digital trade after 2019

The U.S.-Japan Digital Trade Agreement was signed in October 2019. It bans customs duties on electronic \
transmissions, as the agreement text says.

What it covers

Source code cannot be demanded as a condition of market access.

Data may flow across borders for business purposes.

1. Review the agreement every two years.

2. Extend it to payment services.

See Article 11 for the details."""

LATIN1_TEXT = """Notes from the café meeting

The délégation from Tokyo arrived on Monday. The ministers discussed the résumé of each expert before \
the session on semiconductors.

An agreement on naïve tariff schedules was not reached.
"""

# (upload name, bytes, exact text, question, a sentence of the text the answer must quote whole)
CASES = [
    ("yen-table.html", (INGEST / "yen-table.html").read_bytes(), HTML_TEXT,
     "Who met at the Plaza Hotel in September 1985?",
     "In September 1985 five finance ministers met at the Plaza Hotel in New York."),
    ("alliance-review.pdf", make_review_pdf(), PDF_TEXT,
     "How many destroyers does the shipbuilding pact cover?",
     "The shipbuilding pact covers twelve destroyers per year, built in yards on both sides of the Pacific."),
    ("trade-memo.md", (INGEST / "trade-memo.md").read_bytes(), MARKDOWN_TEXT,
     "When was the Digital Trade Agreement signed?",
     "The U.S.-Japan Digital Trade Agreement was signed in October 2019."),
    ("latin1-notes.txt", (INGEST / "latin1-notes.txt").read_bytes(), LATIN1_TEXT,
     "When did the delegation from Tokyo arrive?",
     "The délégation from Tokyo arrived on Monday."),
]


@pytest.fixture(scope="module")
def client(tmp_path_factory, encoder):
    root = tmp_path_factory.mktemp("ingest")
    (root / "corpus").mkdir()
    assistant = Assistant(make_settings(root, admin_token=TOKEN), encoder=encoder)
    with TestClient(create_app(assistant=assistant)) as c:
        for name, data, *_ in CASES:
            r = c.post("/documents", files={"file": (name, data)}, headers=AUTH)
            assert r.status_code == 201, r.text
        yield c


@pytest.mark.parametrize(("name", "data", "text", "question", "sentence"), CASES, ids=[c[0] for c in CASES])
def test_the_document_text_is_every_visible_word_and_answers_quote_whole_sentences(
    client, name, data, text, question, sentence
):
    doc = client.get(f"/documents/uploads/{name}").json()
    assert doc["text"] == text
    body = client.post("/ask", json={"question": question, "k": 3, "documents": [f"uploads/{name}"]}).json()
    assert not body["abstained"], body
    assert sentence in body["answer"]
    for p in body["passages"]:  # offsets refer to the text GET /documents returns
        assert doc["text"][p["start"] : p["end"]] == p["text"]


def test_the_upload_response_reports_what_was_read(client):
    name, data, text, *_ = CASES[0]
    r = client.post("/documents", files={"file": (name, data)}, headers=AUTH)
    assert r.status_code == 200  # the same content again changes nothing
    read = r.json()["read"]
    assert read["chars"] == len(text) and read["passages"] == r.json()["chunks"] >= 1
    assert read["warning"] is None


def test_structure_survives_reading(tmp_path):
    pdf = read_document(tmp_path / "r.pdf", "r.pdf", make_review_pdf())
    assert [h for _, h in pdf.sections] == ["Shipbuilding Cooperation", "Semiconductor Supply"]
    second_page = dict((n, o) for o, n in pdf.pages)[2]
    assert pdf.text[second_page:].startswith("Semiconductor Supply")
    assert "Alliance Review Quarterly" not in pdf.text and "Page 1" not in pdf.text  # furniture, not text
    md = read_document(tmp_path / "m.md", "m.md", (INGEST / "trade-memo.md").read_bytes())
    assert md.title == "Trade memo"  # the front matter's title; its first heading stays a section
    assert [h for _, h in md.sections] == ["Digital trade after 2019", "What it covers"]
    html = read_document(tmp_path / "p.html", "p.html", (INGEST / "yen-table.html").read_bytes())
    assert [h for _, h in html.sections] == ["The Plaza Accord and the yen", "Exchange rates"]
    for doc in (pdf, md, html):
        for offset, heading in doc.sections:
            assert doc.text[offset : offset + len(heading)] == heading
    assert "hidden" not in html.text and "JavaScript" not in html.text and "tracking" not in html.text


def test_a_file_that_yields_little_text_is_flagged_in_the_reading_report(fresh_assistant):
    corpus = fresh_assistant.settings.corpus_dir
    (corpus / "widgets.html").write_text("<div class='x'>" * 400 + "Sparse." + "</div>" * 400)
    (corpus / "blank.md").write_text("<!-- nothing here -->\n")
    summary = fresh_assistant.reindex()
    sparse = summary.read["widgets.html"]
    assert sparse["chars"] == len("Sparse.") and sparse["passages"] == 1
    assert "only 7 characters of text came out of" in sparse["warning"]
    assert summary.read["blank.md"]["chars"] == 0 and "no text" in summary.read["blank.md"]["warning"]
    report = summary.describe()
    assert "read: widgets.html: 7 characters, 1 passage\n" in report
    assert "warning: widgets.html: only 7 characters" in report


def test_pdf_library_warnings_name_the_file(tmp_path, caplog):
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    from qa.reading.readers.pdf import pdf_warnings_named

    cut = make_review_pdf()[:-6]  # the %%EOF marker is gone: pypdf warns, PDFium reads it all the same
    with caplog.at_level("WARNING"), pdf_warnings_named("uploads/w.pdf"), pytest.raises(PdfReadError):
        PdfReader(io.BytesIO(cut))  # pypdf warns, then gives up on this file
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warned and all(m.startswith("uploads/w.pdf: ") for m in warned), warned
    assert read_document(tmp_path / "w.pdf", "w.pdf", cut).text == PDF_TEXT


def test_a_pdf_title_in_body_type_is_not_glued_to_the_first_sentence(tmp_path):
    data = (FIXTURES / "incremental" / "export-controls.pdf").read_bytes()  # one font, one size, no gaps
    doc = read_document(tmp_path / "e.pdf", "e.pdf", data)
    assert doc.text.startswith("Semiconductor Export Controls Briefing\n\nThe allies will align export controls")
    assert [h for _, h in doc.sections] == ["Semiconductor Export Controls Briefing"]
