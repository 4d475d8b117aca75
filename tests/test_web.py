"""The server-rendered UI: answer page, citation links, document view, escaping (no JavaScript needed)."""

import html
import re

import pytest
from fastapi.testclient import TestClient

from qa.serving.api import create_app


@pytest.fixture(scope="module")
def client(report_assistant):
    with TestClient(create_app(assistant=report_assistant)) as c:
        yield c


def test_home_page_has_a_question_box(client):
    page = client.get("/").text
    assert '<form class="ask" action="/" method="get"' in page and 'name="q"' in page


def test_answer_page_links_each_marker_to_its_cited_passage(client):
    page = client.get("/", params={"q": "What should the allies do about corruption?"}).text
    markers = re.findall(r'<a class="cite" href="#p(\d+)">\[(\d+)\]</a>', page)
    assert markers and all(a == b for a, b in markers)
    for rank, _ in markers:
        assert f'id="p{rank}"' in page
    assert "<mark>" in page
    assert "anti-corruption" in page
    # The question stays in the box, so the page can be shared and refined.
    assert 'value="What should the allies do about corruption?"' in page


def test_document_view_opens_at_the_cited_passage_with_evidence_highlighted(client):
    page = client.get("/", params={"q": "What did the 1987 Toshiba scandal involve?"}).text
    link = html.unescape(re.search(r'class="doc-link" href="([^"]+)"', page).group(1))
    assert link.startswith("/view/article-ii-mandate.txt?start=") and link.endswith("#passage")
    view = client.get(link.split("#")[0]).text
    passage = re.search(r'<span id="passage" class="cited"[^>]*>(.*?)</span>', view, re.S).group(1)
    assert "<mark>" in passage and "Toshiba" in passage


def test_question_html_is_escaped(client):
    page = client.get("/", params={"q": '<script>alert("x")</script> trade <img src=x onerror=alert(1)>'}).text
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;" in page


def test_empty_question_gets_a_helpful_message_not_an_error(client):
    r = client.get("/", params={"q": "   "})
    assert "Please type a question" in r.text
    assert '<form class="ask"' in r.text


def test_off_topic_question_shows_the_abstention(client):
    page = client.get("/", params={"q": "Who won the 2022 football World Cup?"}).text
    assert "do not answer this question" in page
    assert 'class="cite"' not in page


def test_unknown_document_view_is_a_404_page(client):
    r = client.get("/view/missing.txt")
    assert r.status_code == 404 and "missing.txt" in r.text


def test_pages_carry_security_headers(client):
    headers = client.get("/").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
