"""The rough edges of the pages (issue 23), server-rendered: cited and other passages apart on the
page and in the Markdown export, passages without empty lines, the document view's headings and
title, the library's cells and trash, the colour theme's cookie without JavaScript, example questions
that are never a title, and ReDoc's page. Their look in Chromium is in test_browser_pages.py."""

from __future__ import annotations

import hashlib
import html
import re

import pytest
from fastapi.testclient import TestClient

from conftest import FIXTURES, indexed_assistant
from qa.answering.answers import Answer, Passage
from qa.config import size_text
from qa.serving import citations, web
from qa.serving.api import create_app
from qa.serving.api_docs import REDOC_JS, REDOC_LOGO
from qa.serving.overview import example_questions, topic
from qa.serving.theme import COOKIE

TOSHIBA = "What did the 1987 Toshiba scandal involve?"
SOURDOUGH = "How do I bake sourdough bread at home?"
TOKEN = "pages-s3cret"
REPORT_TITLE = "The Article II Mandate: Forging a Stronger Economic Alliance between the United States and Japan"


@pytest.fixture(scope="module")
def client(web_assistant):
    """A client of its own (cookies), over the shared read-only index."""
    with TestClient(create_app(assistant=web_assistant)) as c:
        yield c


def section(page: str, heading: str) -> str:
    """The HTML of the passages section under `heading` ("" if there is none)."""
    found = re.search(r'<section class="passages[^"]*"[^>]*>\s*<h2 id="[a-z]+-h">' + re.escape(heading)
                      + r"</h2>(.*?)</section>", page, re.S)
    return found.group(1) if found else ""


def ranks(fragment: str) -> list[int]:
    return [int(n) for n in re.findall(r'<li id="p(\d+)" class="passage"', fragment)]


# -- the answer page and its Markdown ----------------------------------------------------------------
def test_cited_passages_are_only_those_the_answer_cites_and_the_others_sit_apart(client):
    body = client.get("/ask", params={"q": TOSHIBA}).json()
    cited = sorted({int(n) for n in re.findall(r"\[(\d+)\]", body["answer"])})
    assert cited and len(cited) < len(body["passages"])  # the test needs both kinds
    page = client.get("/", params={"q": TOSHIBA}).text
    shown_cited, shown_others = ranks(section(page, citations.CITED)), ranks(section(page, citations.OTHERS))
    assert shown_cited == cited
    assert sorted(shown_cited + shown_others) == [p["rank"] for p in body["passages"]]
    # Only a cited passage is offered as a citation; every passage keeps its link.
    assert section(page, citations.CITED).count(">Copy citation</button>") == len(cited)
    assert "Copy citation" not in section(page, citations.OTHERS) and 'class="citation"' not in section(
        page, citations.OTHERS)
    assert section(page, citations.OTHERS).count(">Copy link</button>") == len(shown_others)


def test_the_markdown_export_splits_the_passages_as_the_page_does(client):
    page = client.get("/", params={"q": TOSHIBA}).text
    md = client.get("/", params={"q": TOSHIBA, "format": "md"}).text
    cited_part, others_part = md.split(f"## {citations.OTHERS}\n")
    assert f"## {citations.CITED}\n" in cited_part and "Answer page: <" in others_part
    listed = lambda part: [int(n) for n in re.findall(r"^(\d+)\. ", part, re.M)]  # noqa: E731
    assert listed(cited_part) == ranks(section(page, citations.CITED))
    assert listed(others_part) == ranks(section(page, citations.OTHERS))
    # A cited passage's line is its citation (the authors first); another's only says where it is from.
    assert re.search(r"^1\. Yoichi Funabashi and Matthew P\. Goodman, \*The Article II Mandate", cited_part, re.M)
    assert not re.search(r"^\d+\. Yoichi", others_part, re.M)
    assert re.search(r"^\d\. \*The Article II Mandate", others_part, re.M)
    assert all("v=" in link for link in re.findall(r"^   <(.+)>$", md, re.M))


def test_an_abstained_answer_lists_its_nearest_passages_without_citations(client):
    page = client.get("/", params={"q": SOURDOUGH}).text
    assert 'class="answer abstained' in page and ranks(section(page, citations.NEAREST))
    assert citations.CITED not in page and citations.OTHERS not in page and "Copy citation" not in page
    md = client.get("/", params={"q": SOURDOUGH, "format": "md"}).text
    assert f"## {citations.NEAREST}" in md and citations.CITED not in md and "Funabashi" not in md


def test_a_bracketed_number_beyond_the_passages_cites_nothing():
    passage = Passage(1, "a.txt", "A", None, None, 0, 4, "Text", 1.0)
    answer = Answer("q", "As footnote [12] says [1].", False, 0.9, 1.0, [passage, Passage(
        2, "a.txt", "A", None, None, 5, 9, "More", 0.5)])
    assert citations.cited_ranks(answer) == {1}
    assert [(heading, [p.rank for p in ps]) for heading, ps, _ in citations.groups(answer)] == [
        (citations.CITED, [1]), (citations.OTHERS, [2])]


def test_a_passage_is_shown_as_paragraphs_without_empty_lines():
    text = "\n\nKey findings include the following:\n\n  • Ports\n  • Cables\n\n\nThe end.\n"
    pieces = web.segments(text, [(15, 45)])  # a mark across the first paragraph break
    paragraphs = web.paragraphs(pieces)
    assert ["".join(p for p, _ in para) for para in paragraphs] == [
        "Key findings include the following:", "• Ports\n  • Cables", "The end."]
    assert all(piece.strip() for para in paragraphs for piece, _ in para)
    assert [[(piece, marked) for piece, marked in para] for para in paragraphs[:2]] == [
        [("Key findings ", False), ("include the following:", True)], [("• Po", True), ("rts\n  • Cables", False)]]


def test_the_answer_page_has_no_empty_paragraph_or_blank_line_in_a_passage(client):
    page = client.get("/", params={"q": "What were the key findings of the project?"}).text
    quotes = re.findall(r"<blockquote>(.*?)</blockquote>", page, re.S)
    assert quotes and any(q.count("<p>") > 1 for q in quotes)
    for quote in quotes:
        for para in re.findall(r"<p>(.*?)</p>", quote, re.S):
            text = html.unescape(re.sub(r"<[^>]+>", "", para))
            assert text.strip() and text == text.strip() and "\n\n" not in text


# -- "Search in" and "Try asking" ---------------------------------------------------------------------
def test_search_in_keeps_the_documents_in_their_order_when_one_is_ticked(client):
    listed = lambda page: re.findall(r'name="doc" value="([^"]+)"', page)  # noqa: E731
    everything = listed(client.get("/").text)
    last = everything[-1]
    page = client.get("/", params={"q": "digital trade", "doc": last}).text
    assert listed(page) == everything
    assert re.search(rf'value="{re.escape(last)}" checked>', page)


def test_example_questions_never_come_from_a_title():
    headings = [
        ("a.pdf", "Harbour Security Review 2026", ["HARBOUR SECURITY REVIEW", "Cranes", "Port scanners"]),
        ("b.html", "Harbour Security Review 2026 | Ports Weekly", ["Harbour Security Review 2026", "Tariffs"]),
        ("c.md", "Report", ["Harbour security review", "Report overview"]),
    ]
    asked = [e.question for e in example_questions(headings, limit=10)]
    assert asked == ["What does the section “Cranes” say?", "What does the section “Tariffs” say?",
                     "What does the section “Report overview” say?", "What does the section “Port scanners” say?"]
    assert topic(REPORT_TITLE.rsplit(" ", 1)[0], REPORT_TITLE) is None  # a title line the reader cut short


def test_the_home_page_suggests_no_title(client):
    page = client.get("/").text
    titles = [html.unescape(t) for t in re.findall(r'name="doc" value="[^"]+"[^>]*> (.*?) <span', page)]
    asked = [html.unescape(q) for q in re.findall(r"What does the section “(.*?)” say\?", page)]
    assert asked and titles
    assert not [q for q in asked for t in titles if q.casefold() in t.casefold() or t.casefold() in q.casefold()]


# -- the document view ----------------------------------------------------------------------------------
def test_the_document_view_shows_section_headings_and_not_the_title_again(client):
    page = client.get("/view/article-ii-mandate.txt", params={"start": 4310, "end": 4748}).text
    text = page[page.index('<div class="doc-text">'):]
    headings = [html.unescape(h) for h in re.findall(r'<span class="doc-heading" role="heading" aria-level="2">'
                                                     r"(.*?)</span>", text)]
    assert headings[0].startswith("1. Resolve bilateral trade tensions") and len(headings) == 10
    assert headings[-1] == "10. Collaborate on anti-corruption efforts."
    assert "Key findings from the project included the following:" not in headings  # a lead-in stays text
    assert f"<h1>{REPORT_TITLE}</h1>" in page and REPORT_TITLE not in text  # said once, as the page's title
    assert text.startswith('<div class="doc-text">Yoichi Funabashi')
    # The cited passage is marked as before, its heading inside it.
    assert '<span id="passage" class="cited" tabindex="-1"><span class="doc-heading"' in text


def test_a_passage_that_holds_the_title_line_shows_it(client):
    page = client.get("/view/article-ii-mandate.txt", params={"start": 0, "end": 300}).text
    text = page[page.index('<div class="doc-text">'):]
    cited = text[text.index('<span id="passage"'):]
    assert re.sub(r"<[^>]+>", "", cited).startswith(REPORT_TITLE)


# -- the theme, without JavaScript -------------------------------------------------------------------------
def test_the_theme_is_a_cookie_set_by_a_plain_form(client):
    home = client.get("/library?sort=size").text
    assert '<html lang="en" data-theme="system">' in home and '<meta name="color-scheme" content="light dark">' in home
    assert re.search(r'<form class="theme" action="/theme" method="post"', home)
    assert 'name="back" value="/library?sort=size"' in home
    assert 'value="system" aria-pressed="true"' in home

    r = client.post("/theme", data={"theme": "dark", "back": "/library?sort=size"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/library?sort=size"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=dark;") and "HttpOnly" in cookie and "Max-Age=" in cookie
    for path in ("/", "/library", "/view/alliance-note.md", "/?q=supply+chains"):  # remembered everywhere
        page = client.get(path).text
        assert '<html lang="en" data-theme="dark">' in page and '<meta name="color-scheme" content="dark">' in page
        assert 'value="dark" aria-pressed="true"' in page and 'value="system" aria-pressed="false"' in page

    r = client.post("/theme", data={"theme": "system", "back": "/"}, follow_redirects=False)
    assert r.status_code == 303 and f'{COOKIE}=""' in r.headers["set-cookie"] and "Max-Age=0" in r.headers["set-cookie"]
    assert 'data-theme="system"' in client.get("/").text


@pytest.mark.parametrize("back", ["//evil.example/", "https://evil.example/", "/\\evil.example", "library", ""])
def test_the_theme_form_only_leads_back_to_this_site(client, back):
    r = client.post("/theme", data={"theme": "light", "back": back}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    client.cookies.clear()


def test_an_unknown_theme_is_refused_and_changes_nothing(client):
    client.cookies.clear()
    r = client.post("/theme", data={"theme": "sepia", "back": "/"}, follow_redirects=False)
    assert r.status_code == 422 and "set-cookie" not in r.headers
    assert "“sepia” is not a colour theme" in html.unescape(r.text) and "Nothing was changed" in r.text
    client.cookies.set(COOKIE, "sepia")  # a cookie edited by hand is the system's theme
    assert 'data-theme="system"' in client.get("/").text
    client.cookies.clear()


# -- ReDoc ---------------------------------------------------------------------------------------------------
def test_redoc_loads_nothing_from_elsewhere_and_describes_the_question_in_words(client):
    page = client.get("/redoc")
    assert page.status_code == 200 and "'unsafe-inline'" in page.headers["content-security-policy"]
    assert f'<script src="{REDOC_JS}"></script>' in page.text and 'hide-schema-pattern="true"' in page.text
    assert not re.search(r"(src|href)=\"https?:", page.text)
    script = client.get(REDOC_JS)
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert REDOC_LOGO not in script.text and "cdn.redoc.ly" not in script.text and "API docs by Redocly" in script.text
    question = client.get("/openapi.json").json()["components"]["schemas"]["AskRequest"]["properties"]["question"]
    assert "at least one of them not blank" in question["description"]
    assert question["pattern"]  # still there for tools that check requests against the schema
    assert client.post("/ask", json={"question": " \t\n"}).status_code == 422  # and still enforced


# -- the library --------------------------------------------------------------------------------------------
@pytest.fixture
def library(tmp_path, encoder):
    files = [FIXTURES / "incremental" / "joint-statement.txt", FIXTURES / "web-corpus" / "alliance-note.md"]
    assistant = indexed_assistant(tmp_path, encoder, files, admin_token=TOKEN)
    with TestClient(create_app(assistant=assistant)) as c:
        yield c, assistant


def test_an_empty_pages_cell_says_so_and_dates_are_one_unbroken_cell(library):
    client, _ = library
    page = client.get("/library").text
    row = re.search(r'<tr data-doc="alliance-note.md">(.*?)</tr>', page, re.S).group(1)
    assert '<td class="num"><span aria-hidden="true">—</span><span class="visually-hidden">none</span></td>' in row
    assert '<td class="when">' in row and '<td class="date">' in row and '<td class="actions">' in row


MEMO_V1 = b"# Harbour memo\n\nThe allies will inspect container cranes built abroad for hidden modems.\n"
MEMO_V2 = b"# Harbour memo, revised\n\nShip-to-shore cranes get new software from an allied supplier.\n"


def test_trash_entries_tell_two_versions_of_one_file_apart(library):
    client, assistant = library
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.post("/documents", files={"file": ("memo.md", MEMO_V1)}, headers=auth).status_code == 201
    assert client.post("/documents?replace=true", files={"file": ("memo.md", MEMO_V2)}, headers=auth).status_code == 201
    assert client.delete("/documents/uploads/memo.md", headers=auth).status_code == 204

    entries = client.get("/trash", headers=auth).json()
    assert [(e["doc_id"], e["reason"]) for e in entries] == [("uploads/memo.md", "deleted"),
                                                            ("uploads/memo.md", "replaced")]
    assert [(e["title"], e["size"], e["sha256"]) for e in entries] == [
        ("Harbour memo, revised", len(MEMO_V2), hashlib.sha256(MEMO_V2).hexdigest()),
        ("Harbour memo", len(MEMO_V1), hashlib.sha256(MEMO_V1).hexdigest())]
    assert set(entries[0]) == {"id", "doc_id", "reason", "at", "title", "size", "sha256"}

    client.post("/library/sign-in", data={"token": TOKEN})
    page = client.get("/library").text
    trash = page[page.index('<section class="trash"'):]
    items = re.findall(r"<li>(.*?)</li>", trash, re.S)
    assert len(items) == 2
    for item, entry, size in zip(items, entries, (size_text(len(MEMO_V2)), size_text(len(MEMO_V1))), strict=True):
        text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", item)).split())
        at = entry["at"].replace("T", " ").replace("+00:00", " UTC")  # to the second
        assert text.startswith(f"{entry['title']} uploads/memo.md · {size} · sha256 {entry['sha256'][:12]} · "
                               f"{entry['reason']} {at}"), text
