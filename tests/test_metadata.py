"""Metadata read from each kind of document, with the place each value came from."""

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import REPORT
from pdfmaker import make_pdf
from qa.reading.documents import read_document
from qa.reading.metadata import METADATA, byline, parse_date, read_metadata, split_names

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "metadata"
CHIPS_INFO = {
    "Title": "Semiconductor Supply Chains in East Asia", "Author": "Kenji Sato; Maria Lopez",
    "Publisher": "East Asia Chip Observatory", "CreationDate": "D:20210607120000Z",
}
CHIPS_PAGES = [[
    "Semiconductor Supply Chains in East Asia", "",
    "Foundries in Taiwan and Korea make most of the advanced chips that carmakers need.",
    "A drought or a blockade would stop the assembly lines of every carmaker within weeks.",
]]


def chips_pdf() -> bytes:
    return make_pdf(CHIPS_PAGES, CHIPS_INFO)


def stated(doc, field: str) -> str:
    start, end = doc.metadata.sources[field]
    return doc.text[start:end]


def test_the_report_byline_and_copyright_line():
    doc = read_document(REPORT, REPORT.name)
    m = doc.metadata
    assert m.authors == ["Yoichi Funabashi", "Matthew P. Goodman"]
    assert m.publisher == "Centre for Strategic and International Studies"
    assert m.date == "2018"
    assert stated(doc, "authors") == stated(doc, "publisher") == (
        "Yoichi Funabashi, Matthew P. Goodman | Centre for Strategic and International Studies")
    assert stated(doc, "date") == (
        "Centre for Strategic and International Studies, All content © 2018. All rights reserved.")
    # The byline is metadata, not a section: the first passage's section stays the title.
    assert all("Funabashi" not in heading for _, heading in doc.sections)
    assert doc.sections[0][1].startswith("The Article II Mandate")


def test_plain_text_byline_and_date_line():
    doc = read_document(FIXTURES / "harbour-logistics.txt", "harbour-logistics.txt")
    m = doc.metadata
    assert (m.authors, m.publisher, m.date) == (["Aiko Mori", "Daniel Reyes"], "Pacific Freight Council", "2021-03-03")
    assert stated(doc, "authors") == "By Aiko Mori and Daniel Reyes | Pacific Freight Council"
    assert stated(doc, "date") == "Published: 3 March 2021"
    assert [h for _, h in doc.sections] == ["Harbour Logistics in the Pacific Rim"]


def test_markdown_front_matter_with_its_lines():
    doc = read_document(FIXTURES / "fisheries-cooperation.md", "fisheries-cooperation.md")
    m = doc.metadata
    assert doc.title == "Fisheries Cooperation in the North Pacific"
    assert (m.authors, m.publisher, m.date) == (["Sofia Lindqvist", "Kenta Oda"], "Northern Seas Institute", "2019-09")
    for field, words in (("authors", "Sofia Lindqvist"), ("publisher", "Northern Seas Institute"), ("date", "2019-09")):
        source = m.sources[field]
        # The front matter is written in the text (cite its line), or, if a reader drops it, metadata.
        assert source == METADATA or words in doc.text[source[0]:source[1]]


def test_html_meta_tags_are_metadata_not_text():
    doc = read_document(FIXTURES / "energy-security.html", "energy-security.html")
    m = doc.metadata
    assert doc.title == "Energy Security and LNG Trade"
    assert m.authors == ["Grace Okafor", "Lars Henriksen"]
    assert (m.publisher, m.date) == ("Atlantic Energy Forum", "2017-11-02")
    assert m.sources == {"authors": METADATA, "publisher": METADATA, "date": METADATA}


def test_pdf_document_information():
    doc = read_document(Path("chips.pdf"), "chips.pdf", chips_pdf())
    m = doc.metadata
    assert doc.title == "Semiconductor Supply Chains in East Asia"
    assert m.authors == ["Kenji Sato", "Maria Lopez"]
    assert (m.publisher, m.date) == ("East Asia Chip Observatory", "2021-06-07")
    assert m.sources == {"authors": METADATA, "publisher": METADATA, "date": METADATA}


def test_front_matter_that_is_not_valid_yaml_is_ignored():
    data = b"---\ndate: 2019-13-45\nauthor: [unclosed\n---\n# Notes\n\nBody text.\n"
    doc = read_document(Path("n.md"), "n.md", data)
    assert doc.title == "Notes" and doc.metadata.authors is None


def test_unknown_values_are_null():
    doc = read_document(Path("plain.txt"), "plain.txt", b"Trade notes\n\nTariffs rose in 2019 on steel.\n")
    m = doc.metadata
    assert (m.authors, m.publisher, m.date) == (None, None, None) and m.sources == {}


def test_a_pdf_title_that_names_a_file_is_not_a_title():
    data = make_pdf([["Minutes of the board"]], {"Title": "Microsoft Word - minutes.docx"})
    assert read_document(Path("m.pdf"), "m.pdf", data).title == "Minutes of the board"


@pytest.mark.parametrize(("given", "iso"), [
    ("2018", "2018"), ("May 2018", "2018-05"), ("14 May 2018", "2018-05-14"), ("May 14, 2018", "2018-05-14"),
    ("2018/05/14", "2018-05-14"), ("2018-05", "2018-05"), ("D:20180514093000+09'00'", "2018-05-14"),
    ("D:2018", "2018"), ("no date here", None),
])
def test_dates_keep_the_precision_the_source_gives(given, iso):
    assert parse_date(given) == iso


def test_author_lists_in_their_usual_forms():
    assert split_names("Goodman, Matthew P.") == ["Matthew P. Goodman"]
    assert split_names("A. Smith; B. Jones") == ["A. Smith", "B. Jones"]
    assert split_names("Jane Doe, John Roe and Mary Major") == ["Jane Doe", "John Roe", "Mary Major"]


@pytest.mark.parametrize("line", [
    "Key findings from the project included the following:",
    "Japan, China and Korea",
    "10. Collaborate on anti-corruption efforts.",
    "The Article II Mandate: Forging a Stronger Economic Alliance between the United States and Japan",
])
def test_headings_and_lists_of_places_are_not_bylines(line):
    assert byline(line) is None


_LINE = st.sampled_from([
    "---", "title: T", "author:", "  - Jane Doe", "date: 2019-13-45", "By Jane Doe | Org", "© 2018 Org.",
    "Published: May 2020", "<meta name='author' content='A, B'>", "<title>x</title>", "publisher: [1, 2]",
    "date: {a: 1}", "", "Copyright 1999-2004 X", "Name, Name | ", "|", "By", "author: !!python/object:os.system",
])


@settings(max_examples=120, deadline=None)
@given(lines=st.lists(st.one_of(_LINE, st.text(max_size=40)), max_size=12),
       suffix=st.sampled_from([".txt", ".md", ".html"]), front_matter=st.booleans())
def test_metadata_never_fails_and_every_span_is_in_the_text(lines, suffix, front_matter):
    text = "\n".join(["---", *lines, "---", "Body."] if front_matter else lines)
    meta = read_metadata(suffix, text.encode("utf-8", "surrogatepass"), text)
    for field, source in meta.sources.items():
        assert getattr(meta, field)  # a source only for a value that is known
        assert source == METADATA or 0 <= source[0] < source[1] <= len(text)
    assert meta.date is None or re.fullmatch(r"\d{4}(-\d\d(-\d\d)?)?", meta.date)
    assert meta.authors is None or all(isinstance(a, str) and a for a in meta.authors)
