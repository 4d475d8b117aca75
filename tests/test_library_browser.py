"""The library in a real browser (Debian's Chromium through Playwright) against a real `qa serve` with
QA_ADMIN_TOKEN set: sign in, upload a Markdown and a PDF file, watch them reach "ready", replace a
file, delete one, rebuild, sign out; forms without the CSRF token, or after sign-out, are refused.
Screenshots of each page go to test-artifacts/.
"""

from __future__ import annotations

import json
import re
import shutil

import httpx
import pytest
from playwright.sync_api import Page, expect

from axe import assert_no_axe_violations
from conftest import FIXTURES
from pdfmaker import make_pdf
from server import live_server
from test_browser import ARTIFACTS, Watched, browser  # noqa: F401 - the shared Chromium fixture

pytestmark = pytest.mark.browser

TOKEN = "browser-library-token"
MEMO = "# Harbour memo\n\nThe allies will inspect container cranes built abroad for hidden modems.\n"
MEMO_V2 = "# Harbour memo\n\nShip-to-shore cranes get new software from an allied supplier.\n"
# Long enough that its embedding takes a while, so its indexing can be watched on the page.
SURVEY_PAGES = [[f"Shipyard survey page {p}, line {n}: the yards at Kure and Norfolk share welding "
                 f"standards, crane schedules and apprenticeship plans for hull block {p * 100 + n}."
                 for n in range(40)] for p in range(1, 7)]
# The page records every state the progress list shows into sessionStorage, which survives reloads.
RECORD_STATES = """
document.addEventListener('DOMContentLoaded', () => {
  const list = document.getElementById('build-documents');
  if (!list) return;
  const record = () => {
    const seen = JSON.parse(sessionStorage.getItem('states') || '{}');
    for (const li of list.querySelectorAll('li')) {
      const state = li.querySelector('.state').textContent;
      const mine = seen[li.dataset.doc] = seen[li.dataset.doc] || [];
      if (mine[mine.length - 1] !== state) mine.push(state);
    }
    sessionStorage.setItem('states', JSON.stringify(seen));
  };
  record();
  new MutationObserver(record).observe(list, {childList: true, subtree: true, characterData: true});
});
"""


def corpus_in(root):
    (root / "corpus").mkdir()
    shutil.copy(FIXTURES / "incremental" / "joint-statement.txt", root / "corpus")
    shutil.copy(FIXTURES / "web-corpus" / "alliance-note.md", root / "corpus")
    return root / "corpus"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("library-browser")
    with live_server(corpus_in(root), root / "index", env={"QA_ADMIN_TOKEN": TOKEN}) as url:
        yield url


@pytest.fixture
def page(browser):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(60_000)
    context.add_init_script(RECORD_STATES)
    watched = Watched(context.new_page())
    yield watched.page
    assert not watched.errors and not [m for m in watched.console if "Content Security Policy" in m]
    context.close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"library-{name}.png"), full_page=True)


def sign_in(page: Page, base: str) -> None:
    page.goto(base + "/")
    page.get_by_role("link", name="Library", exact=True).click()
    expect(page).to_have_url(base + "/library")
    page.get_by_role("link", name="sign in").click()
    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(base + "/library")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def upload(page: Page, name: str, data: bytes, mime: str) -> None:
    page.set_input_files("#file", files=[{"name": name, "mimeType": mime, "buffer": data}])
    page.get_by_role("button", name="Upload", exact=True).click()


def row(page: Page, doc_id: str):
    return page.locator(f'tr[data-doc="{doc_id}"]')


def wait_ready(page: Page, doc_id: str) -> None:
    """The page updates itself (library.js), then reloads once the build is over: no manual refresh."""
    expect(row(page, doc_id).locator(".state")).to_have_text("ready", timeout=120_000)
    expect(page.locator("#build")).to_be_hidden(timeout=120_000)


def documents(base: str) -> list[str]:
    return [d["doc_id"] for d in httpx.get(base + "/documents").json()]


def test_sign_in_upload_watch_replace_delete_rebuild_sign_out(page, server):
    page.goto(server + "/library")
    expect(page.locator("text=Read-only until you")).to_be_visible()
    expect(page.get_by_role("button", name="Upload")).to_have_count(0)
    shot(page, "signed-out")
    page.goto(server + "/library/sign-in")
    shot(page, "sign-in")
    sign_in(page, server)
    shot(page, "signed-in")

    # A Markdown file and a PDF through the form; each answer comes back at once to the library.
    upload(page, "harbour-memo.md", MEMO.encode(), "text/markdown")
    expect(page).to_have_url(server + "/library?received=uploads%2Fharbour-memo.md")
    expect(page.locator(".received")).to_have_text(re.compile("^Received “uploads/harbour-memo.md”"))
    wait_ready(page, "uploads/harbour-memo.md")
    upload(page, "shipyard-survey.pdf", make_pdf(SURVEY_PAGES), "application/pdf")
    expect(page).to_have_url(server + "/library?received=uploads%2Fshipyard-survey.pdf")
    expect(page.locator("#build progress")).to_be_visible()
    expect(page.locator("#build-phase")).not_to_have_text(re.compile("^(waiting|scanning)"))  # under way
    shot(page, "indexing")
    # Another tab (or a reload) shows the same build, read from the server.
    other = page.context.new_page()
    other.goto(server + "/library")
    expect(other.locator("#build")).to_be_visible()
    expect(other.locator('#build-documents li[data-doc="uploads/shipyard-survey.pdf"]')).to_be_visible()
    other.close()
    wait_ready(page, "uploads/shipyard-survey.pdf")
    states = json.loads(page.evaluate("sessionStorage.getItem('states')"))["uploads/shipyard-survey.pdf"]
    order = ["queued", "read", "chunked", "embedded", "ready"]
    assert states == sorted(states, key=order.index) and len(states) >= 2, states
    survey = row(page, "uploads/shipyard-survey.pdf")
    expect(survey.locator("td").nth(4)).to_have_text("PDF")
    expect(survey.locator("td").nth(5)).to_have_text("6")  # pages
    memo = row(page, "uploads/harbour-memo.md")
    expect(memo.get_by_role("link", name="Harbour memo", exact=True)).to_have_attribute(
        "href", "/view/uploads/harbour-memo.md")
    expect(memo.get_by_role("link", name="Ask this document")).to_have_attribute(
        "href", "/?doc=uploads/harbour-memo.md")
    shot(page, "ready")

    # Sorting and filtering by title work from the headings and the filter box.
    page.get_by_label("Filter by title").fill("survey")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    page.get_by_role("link", name="Show all").click()
    page.get_by_role("link", name="Title").click()  # already ascending: now descending
    titles = page.locator("td.title > a").all_inner_texts()
    assert titles == sorted(titles, key=str.casefold, reverse=True) and len(titles) == 4

    # The same name with other content asks before it replaces.
    page.goto(server + "/library")
    upload(page, "harbour-memo.md", MEMO_V2.encode(), "text/markdown")
    expect(page.get_by_role("heading", name="Replace uploads/harbour-memo.md?")).to_be_visible()
    assert "modems" in httpx.get(server + "/documents/uploads/harbour-memo.md").json()["text"]  # not yet
    shot(page, "replace")
    page.get_by_role("button", name="Replace").click()
    expect(page).to_have_url(server + "/library?received=uploads%2Fharbour-memo.md")
    page.wait_for_function("() => !document.querySelector('#build') || document.querySelector('#build').hidden")
    wait_ready(page, "uploads/harbour-memo.md")
    assert "new software" in httpx.get(server + "/documents/uploads/harbour-memo.md").json()["text"]

    # Delete, behind a confirmation.
    row(page, "uploads/harbour-memo.md").get_by_role("button", name="Delete").click()
    expect(page.get_by_role("heading", name="Delete “Harbour memo”?")).to_be_visible()
    shot(page, "delete")
    assert "uploads/harbour-memo.md" in documents(server)  # asking deleted nothing
    page.get_by_role("button", name="Delete").click()
    expect(row(page, "uploads/harbour-memo.md")).to_have_count(0, timeout=120_000)
    expect(page.locator("#build")).to_be_hidden(timeout=120_000)
    assert "uploads/harbour-memo.md" not in documents(server)

    # Rebuild: every document is indexed again, and the library ends up as it was.
    before = httpx.get(server + "/health").json()
    page.get_by_role("button", name="Rebuild index").click()
    expect(page).to_have_url(server + "/library")
    expect(page.locator("#build")).to_be_hidden(timeout=180_000)
    expect(page.locator("tbody tr")).to_have_count(3)
    after = httpx.get(server + "/health").json()
    assert (after["documents"], after["chunks"]) == (before["documents"], before["chunks"])

    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("text=Read-only until you")).to_be_visible()
    expect(page.get_by_role("button", name="Upload")).to_have_count(0)


def test_forms_without_the_csrf_token_or_after_sign_out_are_refused(page, server):
    sign_in(page, server)
    listed = documents(server)
    # A request from this signed-in browser that lacks the form's token (as a forged one would).
    r = page.request.post(server + "/library/delete", form={"doc": "joint-statement.txt"})
    assert r.status == 403
    r = page.request.post(server + "/library/upload", multipart={
        "file": {"name": "forged.md", "mimeType": "text/markdown", "buffer": MEMO.encode()}})
    assert r.status == 403

    # A form left open in one tab, after signing out in another.
    row(page, "joint-statement.txt").get_by_role("button", name="Delete").click()
    other = page.context.new_page()
    other.goto(server + "/library")
    other.get_by_role("button", name="Sign out").click()  # left open: the context closes it
    with page.expect_navigation() as refused:
        page.get_by_role("button", name="Delete").click()
    assert refused.value.status == 403
    expect(page.locator("[role=alert]")).to_contain_text("Nothing was changed")
    shot(page, "refused")
    page.wait_for_timeout(500)
    assert documents(server) == listed


def test_a_file_over_the_upload_limit_is_refused_before_it_is_sent(browser, server):  # noqa: F811
    # axe-core is injected into the page, so this test's browser (never the app) bypasses the CSP
    context = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    context.set_default_timeout(60_000)
    page = context.new_page()
    sign_in(page, server)
    before = documents(server)
    posted = []
    page.on("request", lambda r: posted.append(r.url) if r.method == "POST" else None)
    too_big = b"x" * (20 * 1024 * 1024 + 1)  # the default limit, 20 MiB, and one byte
    upload(page, "census.txt", too_big, "text/plain")
    alert = page.locator("#file-problem")
    expect(alert).to_be_visible()
    expect(alert).to_have_text("census.txt is larger than the 20.0 MiB upload limit: choose a smaller file.")
    expect(page).to_have_url(server + "/library")
    assert posted == [] and documents(server) == before
    assert_no_axe_violations(page, "the signed-in library refusing a file")
    shot(page, "upload-too-large")
    page.set_input_files("#file", files=[{"name": "note.md", "mimeType": "text/markdown", "buffer": b"# Note\n"}])
    expect(alert).to_be_hidden()
    context.close()


def test_without_a_token_the_library_is_read_only(page, tmp_path):
    with live_server(corpus_in(tmp_path), tmp_path / "index") as base:
        page.goto(base + "/library")
        expect(page.locator(".read-only")).to_contain_text("QA_ADMIN_TOKEN")
        expect(page.get_by_role("button", name="Upload")).to_have_count(0)
        expect(page.locator("tbody tr")).to_have_count(2)
        shot(page, "read-only")
        page.goto(base + "/library/sign-in")
        expect(page.get_by_label("Admin token")).to_have_count(0)
        expect(page.locator(".read-only")).to_contain_text("QA_ADMIN_TOKEN")


def test_a_deleted_document_is_restored_from_the_trash(page, server):
    sign_in(page, server)
    row(page, "alliance-note.md").get_by_role("button", name="Delete").click()
    page.get_by_role("button", name="Delete").click()
    expect(row(page, "alliance-note.md")).to_have_count(0, timeout=120_000)
    trash = page.locator(".trash li", has_text="alliance-note.md")
    expect(trash).to_be_visible()
    shot(page, "trash")
    trash.get_by_role("button", name="Restore").click()
    wait_ready(page, "alliance-note.md")
    assert "alliance-note.md" in documents(server)


def test_the_library_fits_a_phone_without_scrolling_the_page_sideways(browser, server):  # noqa: F811
    context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    phone = context.new_page()
    sign_in(phone, server)
    for path in ("/library", "/library/sign-in", "/library/delete?doc=joint-statement.txt"):
        phone.goto(server + path)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 360, path
    phone.goto(server + "/library")
    shot(phone, "phone")
    context.close()
