"""The web UI in a real browser: headless Chromium (Debian's) driven by Playwright against `qa serve`.

The corpus is tests/fixtures/web-corpus (a note on the alliance, a digital-trade brief, and two
hostile documents full of markup) plus the report from corpus/. Without Chromium these tests skip,
except in CI (CI=true), where a missing browser is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, sync_playwright

from conftest import FIXTURES, REPORT, ROOT
from server import live_server

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
ARTIFACTS = ROOT / "test-artifacts"

ON_TOPIC = "What did the 1987 Toshiba scandal involve?"
OFF_TOPIC = "How do I bake sourdough bread at home?"
HOSTILE_QUESTION = "<script>window.__pwned='question'</script><img src=x onerror=\"window.__pwned='q img'\">"
ABOUT_HOSTILE_DOCUMENTS = "What does a phishing message hide, and what is in the suspicious invoice notice?"


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    shutil.copytree(FIXTURES / "web-corpus", root / "corpus")
    shutil.copy(REPORT, root / "corpus" / REPORT.name)
    with live_server(root / "corpus", root / "index") as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        message = f"Chromium is not installed at {CHROMIUM}: apt-get install -y chromium (.ci/run does)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Watched:
    """A page plus everything that would show a script ran or was refused: dialogs, errors, console."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.console: list[str] = []
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))

    def assert_no_script_ran(self) -> None:
        assert self.page.evaluate("typeof window.__pwned") == "undefined"
        assert not self.dialogs and not self.errors
        # A CSP refusal would mean markup reached the DOM and only the policy stopped it.
        assert not [m for m in self.console if "Content Security Policy" in m or m.startswith("error")]


@pytest.fixture
def watched(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    context.set_default_timeout(20_000)
    yield Watched(context.new_page())
    context.close()


@pytest.fixture
def page(watched):
    yield watched.page
    watched.assert_no_script_ran()


def ask(page: Page, base_url: str, question: str) -> None:
    """Type the question into the box and submit it with Enter, as a user does."""
    page.goto(base_url + "/")
    page.fill("#q", question)
    with page.expect_navigation():
        page.press("#q", "Enter")


def in_viewport(page: Page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    height = page.viewport_size["height"]
    return box is not None and 0 <= box["y"] < height and box["y"] + min(box["height"], height) > 0


def squash(text: str) -> str:
    return " ".join(text.split())


def test_answer_has_markers_that_land_on_the_highlighted_cited_passage(page, base_url):
    ask(page, base_url, ON_TOPIC)
    assert page.input_value("#q") == ON_TOPIC  # the question stays in the box
    assert parse_qs(urlsplit(page.url).query)["q"] == [ON_TOPIC]  # and the URL can be shared
    markers = page.locator("#answer-text a.cite")
    assert markers.count() >= 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "answer-page.png"), full_page=True)

    answer = page.inner_text("#answer-text")
    claims = re.findall(r"(.+?) \[(\d+)\]", answer)
    assert "Toshiba" in answer and len(claims) == markers.count()
    sentence, rank = claims[-1]
    markers.nth(len(claims) - 1).click()
    assert page.url.endswith(f"#p{rank}")
    assert page.evaluate("document.querySelector(':target').id") == f"p{rank}"
    assert in_viewport(page, f"#p{rank}")
    evidence = [squash(t) for t in page.locator(f"#p{rank} mark").all_inner_texts()]
    assert squash(sentence) in evidence


def test_a_shared_answer_link_shows_the_same_answer(page, watched, base_url):
    ask(page, base_url, ON_TOPIC)
    answer, url = page.inner_text("#answer-text"), page.url
    other = watched.page.context.browser.new_page()
    other.goto(url)
    assert other.inner_text("#answer-text") == answer and other.input_value("#q") == ON_TOPIC
    other.close()


def test_a_passage_opens_in_the_document_view_at_its_place_with_evidence_marked(page, base_url):
    ask(page, base_url, ON_TOPIC)
    expected = page.request.get(f"{base_url}/ask", params={"q": ON_TOPIC, "k": "5"}).json()["passages"][0]
    with page.expect_navigation():
        page.click("#p1 a.doc-link")
    assert urlsplit(page.url).path == "/view/" + expected["doc_id"] and page.url.endswith("#passage")
    assert page.inner_text("#passage") == expected["text"]
    marked = [expected["text"][a:b] for a, b in expected["highlights"]]
    assert page.locator("#passage mark").all_inner_texts() == marked and marked
    assert expected["start"] > 500 and page.evaluate("window.scrollY") > 0  # scrolled down to it
    assert in_viewport(page, "#passage")
    # The whole document, its title said once, as the page's heading, not again as the text's first line.
    assert page.inner_text("h1").startswith("The Article II Mandate")
    assert page.inner_text(".doc-text").startswith("Yoichi Funabashi")


def test_an_off_topic_question_shows_the_abstention(page, base_url):
    ask(page, base_url, OFF_TOPIC)
    assert page.locator(".answer.abstained").is_visible()
    assert page.inner_text("#answer-text") == "The indexed documents do not answer this question."
    assert page.locator("a.cite").count() == 0
    assert "not relevant enough to cite" in page.inner_text(".passages h2")


@pytest.mark.parametrize("question", ["", "   "], ids=["empty", "spaces"])
def test_an_empty_question_gets_a_helpful_message_not_an_error_page(page, base_url, question):
    page.goto(base_url + "/")
    page.fill("#q", question)
    with page.expect_navigation() as navigation:
        page.press("#q", "Enter")
    assert navigation.value.status == 200
    assert "Please type a question first" in page.inner_text("[role=alert]")
    assert page.locator("form.ask #q").is_visible() and page.locator(".answer").count() == 0
    assert "Sorry" not in page.inner_text("main")


# Playwright cannot look into a page while its navigation is held, so the page itself records what
# the user sees during the wait into sessionStorage, which the answer page can still read.
RECORD_THE_WAIT = """() => {
    const form = document.querySelector('form.ask'), button = form.querySelector('button');
    form.addEventListener('submit', () => setTimeout(() => sessionStorage.setItem('wait', JSON.stringify({
        disabled: button.disabled, label: button.textContent, progress: !form.querySelector('.status').hidden,
    })), 100));
}"""


def pump(page: Page, seconds: float) -> None:
    """Let time pass while Playwright delivers events (its sync API only does so inside its own calls)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        page.context.cookies()
        time.sleep(0.05)


def test_progress_is_shown_and_the_form_cannot_be_submitted_twice(page, base_url):
    page.goto(base_url + "/")
    held, sent = [], []
    page.route(re.compile(r"/\?q="), lambda route: held.append(route))  # the answer waits until released
    page.on("request", lambda r: sent.append(r.url) if "?q=" in r.url else None)
    page.evaluate(RECORD_THE_WAIT)
    button = page.locator("form.ask button").bounding_box()
    page.fill("#q", ON_TOPIC)
    page.focus("#q")
    page.keyboard.press("Enter")
    pump(page, 0.5)
    page.keyboard.press("Enter")  # an impatient user submits again, by key and by click
    page.mouse.click(button["x"] + button["width"] / 2, button["y"] + button["height"] / 2)
    pump(page, 0.5)
    assert len(sent) == 1, sent
    with page.expect_navigation():
        for route in held:
            route.continue_()
    assert json.loads(page.evaluate("sessionStorage.getItem('wait')")) == {
        "disabled": True, "label": "Searching…", "progress": True}
    assert page.locator("#answer-text a.cite").count() >= 1 and page.input_value("#q") == ON_TOPIC
    page.go_back()  # coming back (maybe from the back/forward cache) finds a usable form
    assert page.locator("form.ask button").is_enabled() and page.inner_text("form.ask button") == "Ask"
    assert not page.locator("form.ask .status").is_visible()


def test_everything_works_from_the_keyboard_alone(page, base_url):
    page.goto(base_url + "/")
    assert page.evaluate("document.activeElement.id") == "q"  # the box has focus on arrival
    for _ in range(6):  # back past the header's three theme buttons, Library and home links
        page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    assert page.locator("a.skip").bounding_box()["x"] >= 0  # the skip link shows when focused

    for _ in range(6):
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type(ON_TOPIC)
    with page.expect_navigation():
        page.keyboard.press("Enter")

    def tab_to(selector: str) -> None:
        for _ in range(15):
            page.keyboard.press("Tab")
            if page.evaluate(f"document.activeElement.matches({selector!r})"):
                outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
                assert outline != "none", f"{selector} has no visible focus"
                return
        raise AssertionError(f"Tab never reached {selector}")

    tab_to("a.cite")
    rank = page.evaluate("document.activeElement.textContent").strip("[]")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == f"p{rank}"  # focus moved to the passage
    tab_to(f"#p{rank} a.doc-link")  # and the next Tab is that passage's document link
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith("#passage") and in_viewport(page, "#passage")


@pytest.mark.parametrize("path", [
    "/",
    "/?q=" + "Where is the full text of the digital trade agreement?",
    "/?q=" + "x" * 2000,
    "/view/notes/digital-trade.txt",
    "/?q=" + ABOUT_HOSTILE_DOCUMENTS,
], ids=["home", "answer with a long URL", "2000-character question", "document view", "hostile passages"])
def test_a_phone_width_viewport_needs_no_horizontal_scrolling(browser, base_url, path):
    context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    phone = context.new_page()
    phone.goto(base_url + path)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    assert phone.evaluate("document.querySelector('main').getBoundingClientRect().right") <= 360
    assert float(phone.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")) >= 16
    context.close()


def assert_markup_stayed_text(page: Page) -> None:
    """Nothing from a document or question became an element, attribute or link."""
    assert page.evaluate("[...document.scripts].map(s => new URL(s.src).pathname)") == ["/static/app.js"]
    assert page.locator("main img, main svg, main iframe, main object, main embed").count() == 0
    assert page.locator("a[href^='javascript:' i]").count() == 0
    handlers = page.evaluate(
        "[...document.querySelectorAll('*')].flatMap(e => [...e.attributes].map(a => a.name))"
        ".filter(n => n.startsWith('on'))"
    )
    assert handlers == []


def test_hostile_documents_are_shown_as_text_and_nothing_runs(page, base_url):
    ask(page, base_url, ABOUT_HOSTILE_DOCUMENTS)
    shown = "\n".join(page.locator(".passages").all_inner_texts())  # the cited and the other passages
    assert '<script>window.__pwned = "script tag in text"</script>' in shown  # the .txt, verbatim
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt; or &amp;lt;b&amp;gt;" in shown
    assert "{{ 7 * 7 }}" in shown and "{% raw %}" in shown
    assert "<img src=x onerror=window.__pwned=1>" in shown  # the .html's entities, decoded once
    assert_markup_stayed_text(page)

    links = [page.locator(f"a.doc-link[href^='/view/{doc_id}?']").first.get_attribute("href")
             for doc_id in ("hostile.txt", "hostile.html")]
    for link in links:
        page.goto(base_url + link)
        assert "window.__pwned" in page.inner_text("#passage")
        assert_markup_stayed_text(page)


def test_a_hostile_question_is_shown_as_text_and_nothing_runs(page, base_url):
    ask(page, base_url, HOSTILE_QUESTION)
    assert page.input_value("#q") == HOSTILE_QUESTION
    assert page.title().startswith(HOSTILE_QUESTION)
    assert_markup_stayed_text(page)


def test_the_content_security_policy_blocks_inline_script_in_the_browser(watched, base_url):
    page = watched.page
    page.goto(base_url + "/")
    # Suppose markup did get into the page: the policy still refuses to run it.
    page.evaluate("""() => {
        const s = document.createElement('script');
        s.textContent = "window.__pwned = 'inline'";
        document.body.append(s);
        const img = document.createElement('img');
        img.setAttribute('onerror', "window.__pwned = 'handler'");
        img.src = 'data:,broken';
        document.body.append(img);
    }""")
    page.wait_for_timeout(300)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert any("Content Security Policy" in m for m in watched.console)


@pytest.mark.parametrize(("path", "rendered"), [("/docs", ".swagger-ui .opblock"), ("/redoc", "[data-section-id]")])
def test_the_api_docs_render_with_no_request_leaving_the_machine(watched, base_url, path, rendered):
    """Swagger UI and ReDoc come from the installed package: offline, /docs is not a blank page."""
    page = watched.page
    requested: list[str] = []
    leaving: list[str] = []

    def route(r):
        url = r.request.url
        requested.append(url)
        host = urlsplit(url).hostname
        if host in ("127.0.0.1", "localhost", "::1") or url.startswith(("data:", "blob:")):
            r.continue_()
        else:
            leaving.append(url)
            r.abort()

    page.context.route("**/*", route)
    page.goto(base_url + path)
    page.wait_for_selector(rendered)
    text = page.inner_text("body")
    assert "alliance-qa" in text and "/ask" in text
    assert leaving == [] and any("/docs-assets/" in u for u in requested)
    assert not watched.errors
