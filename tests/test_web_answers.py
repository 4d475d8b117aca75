"""The answer page's take-away parts, server-rendered: scoped questions, citations, the Markdown
download, links that notice a changed document, the home page's overview, readable passages."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from qa.answering.answers import Passage
from qa.serving import citations, web
from qa.serving.api import create_app
from qa.serving.overview import example_questions, topic

TOSHIBA = "What did the 1987 Toshiba scandal involve?"
NOTE = "alliance-note.md"


@pytest.fixture(scope="module")
def client(web_assistant):
    """A client of its own (cookies), over the shared read-only index."""
    with TestClient(create_app(assistant=web_assistant)) as c:
        yield c


def passage_docs(page: str) -> list[str]:
    return re.findall(r'<li id="p\d+" class="passage"[^>]*data-doc="([^"]+)"', page)


def test_a_question_scoped_to_one_document_cites_only_that_document(client):
    everywhere = client.get("/", params={"q": "What do the allies finance together?"}).text
    assert len(set(passage_docs(everywhere))) > 1
    scoped = client.get("/", params={"q": "What do the allies finance together?", "doc": NOTE}).text
    assert passage_docs(scoped) and set(passage_docs(scoped)) == {NOTE}
    # The choice shows in the form, so the page says where it searched and can be refined.
    assert re.search(rf'name="doc" value="{re.escape(NOTE)}" checked', scoped)
    assert "Search in: A short note on the U.S.–Japan economic alliance" in scoped


def test_an_unknown_document_is_a_clear_message_not_an_error(client):
    r = client.get("/", params={"q": "supply chains", "doc": ["missing.txt", NOTE]})
    assert r.status_code == 422
    assert "No indexed document is called “missing.txt”" in r.text and 'role="alert"' in r.text
    assert client.get("/", params={"q": "x", "doc": "missing.txt", "format": "md"}).status_code == 422


def test_markdown_download_has_the_answer_and_each_passage_with_quotation_and_link(client):
    page = client.get("/", params={"q": TOSHIBA}).text
    href = html.unescape(re.search(r'<a href="([^"]+)" download', page).group(1))
    assert parse_qs(urlsplit(href).query) == {"q": [TOSHIBA], "k": ["5"], "format": ["md"]} or \
        parse_qs(urlsplit(href).query) == {"q": [TOSHIBA], "format": ["md"]}
    r = client.get(href)
    assert r.status_code == 200 and r.headers["content-type"] == "text/markdown; charset=utf-8"
    answer = client.get("/ask", params={"q": TOSHIBA}).json()
    md = r.text
    assert md.startswith(f"# {TOSHIBA}\n\n{answer['answer']}\n")  # the answer with its [n] markers
    for p in answer["passages"]:
        item = re.search(rf"^{p['rank']}\. (.+)\n   <(http://testserver/view/[^>]+)>$", md, re.M)
        assert item, f"passage {p['rank']} missing from:\n{md}"
        citation, link = item.groups()
        assert f"*{p['title']}*" in citation
        for a, b in p["highlights"]:
            assert " ".join(p["text"][a:b].split()) in citation  # the quoted evidence
        query = parse_qs(urlsplit(link).query)
        assert query["start"] == [str(p["start"])] and len(query["v"][0]) == citations.HASH_CHARS


def test_answer_page_shows_citation_and_link_for_copying_by_hand(client):
    page = client.get("/", params={"q": TOSHIBA}).text
    cite = html.unescape(re.search(r'<p class="citation" id="cite-1">(.*?)</p>', page, re.S).group(1))
    assert cite.startswith("Yoichi Funabashi and Matthew P. Goodman, The Article II Mandate")
    assert "Toshiba radio" in cite
    assert "(Centre for Strategic and International Studies, 2018)" in cite  # the report's own metadata
    link = html.unescape(re.search(r'id="link-1" href="([^"]+)"', page).group(1))
    assert link.startswith("http://testserver/view/article-ii-mandate.txt?start=")
    assert "Copy citation" in page and "Copy link" in page
    why = re.search(r'<details class="why">(.*?)</details>', page, re.S).group(1)
    assert "Toshiba" in why and "scandal" in why and re.search(r"0\.\d\d \(cosine", why)


def test_home_page_says_what_is_indexed_with_examples_from_headings(client):
    page = client.get("/").text
    assert re.search(r"5 documents, \d+ passages, indexed \d{1,2} \w+ \d{4}, \d\d:\d\d UTC", page)
    listed = re.search(r'<ul class="examples">(.*?)</ul>', page, re.S).group(1)
    examples = [html.unescape(href) for href in re.findall(r'href="([^"]+)"', listed)]
    assert len(examples) == 4
    answer = client.get(examples[0]).text
    assert 'class="answer ' in answer and "abstained" not in answer.split('class="answer ')[1][:20]


def test_example_questions_come_from_headings_in_turn_across_documents():
    headings = [
        ("a.md", "Report A", ["Report A", "Key findings include the following:", "1. Supply chains.",
                              "Authors | Publisher", "2. Development finance", "A heading that runs on far too long "
                              "to be a topic of its own"]),
        ("b.md", "Note B", ["Note B", "What to watch"]),
    ]
    got = [(e.doc_id, e.question) for e in example_questions(headings, limit=3)]
    assert got == [("a.md", "What does the section “Supply chains” say?"),
                   ("b.md", "What does the section “What to watch” say?"),
                   ("a.md", "What does the section “Development finance” say?")]
    assert topic("IV. Trade", "x") == "Trade" and topic("2018", "x") is None


@dataclass
class PassageWithMetadata(Passage):
    authors: list[str] | None = None
    publisher: str | None = None
    date: str | None = None


def test_citation_is_chicago_style_with_metadata_when_known():
    text = "Intro words. The allies should co-finance ports. More."
    base = dict(rank=1, doc_id="r.pdf", title="The Report", section="2. Finance.", page=7, start=0,
                end=len(text), text=text, score=0.5, highlights=[(13, 48)])
    full = PassageWithMetadata(**base, authors=["Yoichi Funabashi", "Matthew P. Goodman"],
                               publisher="CSIS", date="2018-05-01")
    assert citations.citation(full) == ("Yoichi Funabashi and Matthew P. Goodman, The Report (CSIS, 2018), "
                                        "“2. Finance”, p. 7. “The allies should co-finance ports.”")
    bare = Passage(**{**base, "section": None, "page": None})
    assert citations.citation(bare, markdown=True) == "*The Report*. “The allies should co-finance ports.”"
    three = PassageWithMetadata(**base, authors=["A", "B", "C"], date="circa 1999")
    assert citations.citation(three).startswith("A, B, and C, The Report (1999), ")


def test_passages_display_folded_blank_lines_and_hard_wraps_with_offsets_untouched():
    text = "One.\n\n\n   \n  Two.\n    Three."
    pieces = web.segments(text, [(13, 17)])
    assert "".join(p for p, _ in pieces) == text and pieces[1] == ("Two.", True)
    assert [web.readable(p) for p, _ in pieces] == ["One.\n\n  ", "Two.", "\n    Three."]
    # A hard-wrapped paragraph reads as one; a list keeps its lines.
    assert web.readable("fund new chip plants\nat home and abroad.\n• Ports\n• cables") == \
        "fund new chip plants at home and abroad.\n• Ports\n• cables"


def test_a_link_to_a_changed_document_says_so_instead_of_marking_text(fresh_assistant):
    corpus = fresh_assistant.settings.corpus_dir
    (corpus / "memo.txt").write_text("Memo\n\nThe ferry to Sado leaves at nine. Tickets cost ten dollars.\n")
    fresh_assistant.reindex()
    with TestClient(create_app(assistant=fresh_assistant)) as c:
        page = c.get("/", params={"q": "When does the ferry to Sado leave?"}).text
        link = html.unescape(re.search(r'class="doc-link" href="([^"]+)"', page).group(1)).split("#")[0]
        before = c.get(link).text
        assert "<mark>" in before and "has changed since" not in before
        (corpus / "memo.txt").write_text("Memo\n\nA new first line moves everything.\n\n"
                                         "The ferry to Sado leaves at nine. Tickets cost ten dollars.\n")
        fresh_assistant.reindex()
        after = c.get(link)
        assert after.status_code == 200
        assert "This document has changed since the link was made" in after.text
        assert "<mark>" not in after.text and 'id="passage"' not in after.text
        assert "A new first line" in after.text  # the current version is shown
        # A link without a hash (made before links had one) still marks the passage as before.
        legacy = re.sub(r"&v=[0-9a-f]+", "", link)
        assert "has changed since" not in c.get(legacy).text
