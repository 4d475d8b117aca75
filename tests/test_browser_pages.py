"""The rough edges of the pages (issue 23) in a real browser (Debian's Chromium through Playwright):
the answer page's cited and other passages, the document view's headings and the room above the
cited passage, the library's rows, dates and trash, "Try asking" and "Search in" on the home page,
ReDoc with no request leaving the machine, and the colour theme chosen without JavaScript. Each
page is checked with axe-core in light and dark, and photographed into test-artifacts/pages-*.png.
"""

from __future__ import annotations

import re
import shutil

import httpx
import pytest
from playwright.sync_api import Page, expect

from axe import assert_no_axe_violations
from conftest import FIXTURES, REPORT
from server import live_server
from test_browser import ARTIFACTS, OFF_TOPIC, ON_TOPIC, browser  # noqa: F401 - browser is a fixture

pytestmark = pytest.mark.browser

TOKEN = "browser-pages-token"
REPORT_TITLE = "The Article II Mandate: Forging a Stronger Economic Alliance between the United States and Japan"
MEMO_V1 = b"# Harbour memo\n\nThe allies will inspect container cranes built abroad for hidden modems.\n"
MEMO_V2 = b"# Harbour memo\n\nShip-to-shore cranes get new software from an allied supplier.\n"
SCHEMES = ["light", "dark"]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    """A live `qa serve` over the web fixtures and the report, with two versions of one upload in
    the trash (the second replaced the first, then was deleted)."""
    root = tmp_path_factory.mktemp("pages-browser")
    shutil.copytree(FIXTURES / "web-corpus", root / "corpus")
    shutil.copy(REPORT, root / "corpus" / REPORT.name)
    with live_server(root / "corpus", root / "index", env={"QA_ADMIN_TOKEN": TOKEN}) as url:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        for data, query in ((MEMO_V1, ""), (MEMO_V2, "?replace=true")):
            r = httpx.post(f"{url}/documents{query}", files={"file": ("memo.md", data)}, headers=auth, timeout=120)
            assert r.status_code == 201, r.text
        assert httpx.delete(f"{url}/documents/uploads/memo.md", headers=auth, timeout=120).status_code == 204
        yield url


def open_page(browser, scheme: str = "light", **options) -> Page:  # noqa: F811 - browser is the fixture's value
    context = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True, color_scheme=scheme,
                                  **options)
    context.set_default_timeout(30_000)
    return context.new_page()


def shot(page: Page, name: str, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"pages-{name}.png"), full_page=full_page)


def is_dark(page: Page) -> bool:
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    return sum(int(c) for c in re.findall(r"\d+", background)[:3]) < 3 * 80


def sign_in(page: Page, base_url: str) -> None:
    page.goto(base_url + "/library/sign-in")
    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


# -- the answer page ---------------------------------------------------------------------------------
# How far apart a passage's paragraphs stand, against the height of one line of its text.
PARAGRAPH_GAPS = """() => [...document.querySelectorAll('li.passage blockquote')].map(q => {
    const line = parseFloat(getComputedStyle(q).lineHeight);
    const ps = [...q.querySelectorAll(':scope > p')];
    const gaps = ps.slice(1).map((p, i) => p.getBoundingClientRect().top - ps[i].getBoundingClientRect().bottom);
    return {line, gaps, empty: ps.filter(p => !p.textContent.trim()).length};
})"""


@pytest.mark.parametrize("scheme", SCHEMES)
def test_cited_passages_are_the_cited_ones_and_the_others_have_their_own_heading(browser, base_url, scheme):  # noqa: F811
    page = open_page(browser, scheme)
    page.goto(base_url + "/?q=" + ON_TOPIC)
    cited = sorted({int(n) for n in re.findall(r"\[(\d+)\]", page.inner_text("#answer-text"))})
    assert page.locator(".passages h2").all_inner_texts() == [
        "Cited passages", "Other passages retrieved (not cited in the answer)"]
    in_cited = page.locator(".passages-cited li.passage").evaluate_all("items => items.map(li => li.id)")
    assert in_cited == [f"p{n}" for n in cited]
    assert page.locator(".passages-others li.passage").count() >= 1
    # "Copy citation" only where there is a citation; "Copy link" on every passage.
    expect(page.locator(".passages-cited button", has_text="Copy citation")).to_have_count(len(cited))
    expect(page.locator(".passages-others button", has_text="Copy citation")).to_have_count(0)
    expect(page.locator(".passages-others button", has_text="Copy link")).to_have_count(
        page.locator(".passages-others li.passage").count())
    for n in cited:  # each marker still lands on its passage
        page.click(f"#answer-text a.cite[href='#p{n}']")
        assert page.evaluate("document.querySelector(':target').closest('section').className").endswith("cited")
    other = page.locator(".passages-others li.passage").first
    other.locator("details.take-away summary").click()
    assert other.locator(".citation").count() == 0 and other.locator("a.passage-url").is_visible()
    assert is_dark(page) == (scheme == "dark")
    assert_no_axe_violations(page, f"the answer page ({scheme})")
    shot(page, f"answer-{scheme}")
    page.context.close()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_passage_has_no_blank_line_of_its_own(browser, base_url, scheme):  # noqa: F811
    page = open_page(browser, scheme)
    page.goto(base_url + "/?q=" + "What were the key findings of the project?")
    found = page.evaluate(PARAGRAPH_GAPS)
    assert any(f["gaps"] for f in found)  # a passage of several paragraphs is shown
    for f in found:
        assert f["empty"] == 0
        assert all(0 < gap < f["line"] for gap in f["gaps"]), f  # a small gap, never an empty line
    assert_no_axe_violations(page, f"an answer with lists in its passages ({scheme})")
    shot(page, f"answer-paragraphs-{scheme}")
    page.context.close()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_an_abstained_answer_shows_its_nearest_passages_without_citations(browser, base_url, scheme):  # noqa: F811
    page = open_page(browser, scheme)
    page.goto(base_url + "/?q=" + OFF_TOPIC)
    assert page.locator(".passages h2").all_inner_texts() == ["Nearest passages (not relevant enough to cite)"]
    expect(page.locator("button", has_text="Copy citation")).to_have_count(0)
    expect(page.locator("li.passage button", has_text="Copy link")).to_have_count(
        page.locator("li.passage").count())
    assert_no_axe_violations(page, f"the abstained answer ({scheme})")
    shot(page, f"abstained-{scheme}")
    page.context.close()


# -- the document view --------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", SCHEMES)
def test_the_document_view_opens_the_cited_passage_with_room_above_and_shows_headings(browser, base_url, scheme):  # noqa: F811
    page = open_page(browser, scheme)
    page.goto(base_url + "/?q=" + "What does the report recommend on digital trade?")
    link = page.locator("li.passage[data-doc='article-ii-mandate.txt'] a.doc-link").first
    with page.expect_navigation():
        link.click()
    assert page.url.endswith("#passage") and page.evaluate("window.scrollY") > 0
    top = page.locator("#passage").bounding_box()["y"]
    line = page.evaluate("parseFloat(getComputedStyle(document.querySelector('.doc-text')).lineHeight)")
    assert 2 * line <= top < 800 / 2, top  # below the top edge by two lines or more, in the upper half
    shot(page, f"document-cited-{scheme}", full_page=False)

    headings = page.get_by_role("heading", level=2).all_inner_texts()
    assert [h.split(".", 1)[0] for h in headings] == [str(n) for n in range(1, 11)], headings
    assert page.inner_text("h1") == REPORT_TITLE
    assert not page.inner_text(".doc-text").startswith("The Article II Mandate")  # not said twice
    heading = page.locator(".doc-heading").first
    assert heading.evaluate("h => getComputedStyle(h).display") == "block"
    assert float(heading.evaluate("h => getComputedStyle(h).fontWeight")) >= 600
    assert_no_axe_violations(page, f"the document view at a cited passage ({scheme})")
    shot(page, f"document-{scheme}")
    page.context.close()


# -- the library ------------------------------------------------------------------------------------------
# Each row's cells against the row: top, bottom and bottom border of every cell.
ROW_CELLS = """() => [...document.querySelectorAll('table.documents tbody tr')].map(tr => {
    const row = tr.getBoundingClientRect();
    return [...tr.cells].map(td => {
        const box = td.getBoundingClientRect(), style = getComputedStyle(td);
        return {cls: td.className, top: box.top - row.top, bottom: row.bottom - box.bottom,
                border: style.borderBottomStyle + ' ' + style.borderBottomWidth, display: style.display};
    });
})"""
# How many lines each ISO date (2026-12-02, 2018-05) in a date cell takes, whatever the markup.
DATE_LINES = """() => [...document.querySelectorAll('table.documents td.when, table.documents td.date, .trash .when')]
    .map(el => {
        const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
        let node;
        while ((node = walker.nextNode()) && !/\\d{4}/.test(node.textContent));
        if (!node) return null;
        const start = node.textContent.search(/\\d{4}/);
        const date = node.textContent.slice(start).match(/^[\\d-]+/)[0];
        const range = document.createRange();
        range.setStart(node, start);
        range.setEnd(node, start + date.length);
        return {date, lines: new Set([...range.getClientRects()].map(r => Math.round(r.top))).size};
    }).filter(Boolean)"""


@pytest.mark.parametrize("scheme", SCHEMES)
def test_the_library_rows_line_up_and_the_trash_tells_versions_apart(browser, base_url, scheme):  # noqa: F811
    page = open_page(browser, scheme)
    sign_in(page, base_url)
    page.goto(base_url + "/library")
    for row in page.evaluate(ROW_CELLS):
        for cell in row:
            assert cell["display"] == "table-cell", cell
            assert abs(cell["top"]) < 1 and abs(cell["bottom"]) < 1, cell  # as tall as its row
            assert cell["border"] == "solid 1px", cell  # the row's line runs under every cell
    dates = page.evaluate(DATE_LINES)
    assert any(len(d["date"]) == 10 for d in dates)
    assert all(d["lines"] == 1 for d in dates), dates
    pages = page.locator('tr[data-doc="alliance-note.md"] td.num').first  # a Markdown file has no pages
    expect(pages.locator("[aria-hidden=true]")).to_have_text("—")
    assert pages.locator(".visually-hidden").inner_text() == "none"  # what a screen reader says

    trash = page.locator(".trash li")
    expect(trash).to_have_count(2)
    texts = [" ".join(t.split()) for t in trash.all_inner_texts()]
    hashes = [re.search(r"sha256 ([0-9a-f]{12})", t).group(1) for t in texts]
    times = [re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", t).group(1) for t in texts]
    assert all(t.startswith("Harbour memo uploads/memo.md · ") for t in texts), texts
    assert len(set(hashes)) == 2 and all(times), texts  # two versions of one file, told apart
    assert "deleted" in texts[0] and "replaced" in texts[1]
    # At 1280 pixels the whole table fits: titles and authors wrap between words, not inside them.
    assert page.evaluate("(w => w.scrollWidth <= w.clientWidth)(document.querySelector('.table-wrap'))")
    assert_no_axe_violations(page, f"the signed-in library with its trash ({scheme})")
    shot(page, f"library-{scheme}")
    page.context.close()


def test_an_upload_says_it_was_received(browser, base_url):  # noqa: F811
    page = open_page(browser)
    sign_in(page, base_url)
    page.set_input_files("#file", files=[{"name": "ferry.txt", "mimeType": "text/plain",
                                          "buffer": b"Ferry timetable\n\nThe ferry to Sado leaves Niigata at nine.\n"}])
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.locator(".received")).to_have_text(re.compile(r"^Received “uploads/ferry\.txt”"))
    assert page.locator(".received").get_attribute("role") == "status"  # read out by screen readers
    # The page reloads itself once indexing is over (library.js): the message stays until then.
    expect(page.locator('tr[data-doc="uploads/ferry.txt"] .state')).to_have_text("ready", timeout=120_000)
    expect(page.locator("#build")).to_be_hidden(timeout=120_000)
    page.wait_for_load_state()
    expect(page.locator(".received")).to_be_visible()
    shot(page, "library-received")
    page.context.close()


# -- the home page ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", SCHEMES)
def test_try_asking_suggests_sections_never_titles(browser, base_url, scheme):  # noqa: F811
    page = open_page(browser, scheme)
    page.goto(base_url + "/")
    page.click("details.scope summary")
    titles = [t.casefold() for t in page.locator("details.scope label").evaluate_all(
        "labels => labels.map(l => l.childNodes[1].textContent.trim())")]
    asked = [re.search(r"“(.+)”", q).group(1).casefold() for q in page.locator(".examples a").all_inner_texts()]
    assert asked and REPORT_TITLE.casefold() in titles
    assert not [(q, t) for q in asked for t in titles if q in t or t in q]
    assert_no_axe_violations(page, f"the home page ({scheme})")
    shot(page, f"home-{scheme}")
    page.context.close()


def test_search_in_keeps_the_documents_in_their_order_when_one_is_ticked(browser, base_url):  # noqa: F811
    page = open_page(browser)
    page.goto(base_url + "/")
    page.click("details.scope summary")
    boxes = page.locator("details.scope input[name=doc]")
    before = boxes.evaluate_all("inputs => inputs.map(i => i.value)")
    boxes.nth(len(before) - 1).check()
    page.fill("#q", "What is the ferry timetable?")
    with page.expect_navigation():
        page.press("#q", "Enter")
    after = boxes.evaluate_all("inputs => inputs.map(i => [i.value, i.checked])")
    assert [value for value, _ in after] == before
    assert [checked for _, checked in after] == [False] * (len(before) - 1) + [True]
    shot(page, "search-in-ticked")
    page.context.close()


# -- ReDoc --------------------------------------------------------------------------------------------------
def test_redoc_asks_nothing_of_another_site_and_states_the_question_rule_in_words(browser, base_url):  # noqa: F811
    page = open_page(browser)
    page.context.close()
    # Without bypass_csp: the app's own policy applies, as for a user, and any refusal would show.
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    requested, console = [], []
    page.on("request", lambda r: requested.append(r.url))
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.goto(base_url + "/redoc")
    page.wait_for_selector("[data-section-id]")
    page.get_by_text("API docs by Redocly").scroll_into_view_if_needed()
    page.wait_for_timeout(500)  # the side menu's logo is drawn after the first render
    elsewhere = [u for u in requested if not u.startswith((base_url, "data:", "blob:"))]
    assert elsewhere == [] and not [m for m in console if "Content Security Policy" in m], (elsewhere, console)
    body = page.inner_text("body")
    assert "at least one of them not blank" in body
    assert "\\s" not in body and "[^" not in body  # no raw regular expression shown
    page.get_by_text("at least one of them not blank").first.scroll_into_view_if_needed()
    shot(page, "redoc", full_page=False)
    context.close()


# -- the theme ------------------------------------------------------------------------------------------------
def choose(page: Page, theme: str) -> None:
    with page.expect_navigation():
        page.locator("form.theme").get_by_role("button", name=theme, exact=True).click()


@pytest.mark.parametrize("system", SCHEMES)
def test_the_theme_is_chosen_and_remembered_without_javascript(browser, base_url, system):  # noqa: F811
    page = open_page(browser, system, java_script_enabled=False)
    page.goto(base_url + "/library?sort=size")
    assert is_dark(page) == (system == "dark")  # no choice yet: the system's
    assert page.locator("form.theme [aria-pressed=true]").inner_text() == "System"
    other = "Light" if system == "dark" else "Dark"
    choose(page, other)
    assert page.url == base_url + "/library?sort=size"  # back where the form was
    assert is_dark(page) == (other == "Dark")
    assert page.locator("form.theme [aria-pressed=true]").inner_text() == other
    shot(page, f"theme-{other.lower()}-on-{system}-system")
    page.goto(base_url + "/?q=" + ON_TOPIC)  # remembered on the next page, and the next visit
    assert is_dark(page) == (other == "Dark")
    fresh = page.context.new_page()
    fresh.goto(base_url + "/view/alliance-note.md")
    assert is_dark(fresh) == (other == "Dark")
    choose(fresh, "System")
    assert is_dark(fresh) == (system == "dark") and not page.context.cookies()
    page.context.close()


@pytest.mark.parametrize("system", SCHEMES)
def test_a_chosen_theme_passes_axe_on_the_answer_page(browser, base_url, system):  # noqa: F811
    page = open_page(browser, system)
    page.goto(base_url + "/")
    other = "Light" if system == "dark" else "Dark"
    choose(page, other)
    page.goto(base_url + "/?q=" + ON_TOPIC)
    assert is_dark(page) == (other == "Dark")
    page.locator("#p1 details.why summary").click()
    assert_no_axe_violations(page, f"the answer page, {other.lower()} chosen on a {system} system")
    shot(page, f"answer-{other.lower()}-chosen-on-{system}-system")
    page.context.close()
