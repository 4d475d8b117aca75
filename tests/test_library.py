"""The library's sign-in, session cookie, CSRF token and throttle, and its writes, through TestClient.

Every refused write is checked to have changed nothing: the published generation and every corpus
file stay as they were. The browser-level flows are in test_library_browser.py.
"""

from __future__ import annotations

import re
import shutil

import pytest
from fastapi.testclient import TestClient

from conftest import FIXTURES, indexed_assistant, make_settings
from qa.indexing.generations import ProgressFile, read_last_build
from qa.indexing.store import StoredDocument
from qa.service import Assistant
from qa.serving.api import create_app
from qa.serving.sessions import COOKIE, FREE_FAILURES, Throttle
from test_writes_api import snapshot

DOCS = FIXTURES / "incremental"
TOKEN = "library-s3cret"
MEMO = b"# Harbour memo\n\nThe allies will inspect container cranes built abroad for hidden modems.\n"


@pytest.fixture
def assistant(tmp_path, encoder) -> Assistant:
    files = [DOCS / "joint-statement.txt", DOCS / "trade-fact-sheet.md"]
    return indexed_assistant(tmp_path, encoder, files, admin_token=TOKEN)


@pytest.fixture
def client(assistant):
    with TestClient(create_app(assistant=assistant)) as c:
        yield c


def sign_in(client: TestClient, token: str = TOKEN):
    return client.post("/library/sign-in", data={"token": token}, follow_redirects=False)


def csrf_of(client: TestClient) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/library").text)
    assert found, "no CSRF field on the signed-in library page"
    return found.group(1)


def finish_jobs(client: TestClient) -> None:
    assert client.app.state.library_jobs.wait_idle(120)


def writes(csrf: str | None) -> list[tuple[str, dict, dict | None]]:
    """(path, form fields, files) of every write form, with `csrf` (None = field left out)."""
    token = {} if csrf is None else {"csrf": csrf}
    return [
        ("/library/upload", token, {"file": ("memo.md", MEMO)}),
        ("/library/delete", {**token, "doc": "joint-statement.txt"}, None),
        ("/library/rebuild", token, None),
        ("/library/restore", {**token, "entry": "1"}, None),
    ]


def assert_all_refused(client: TestClient, assistant: Assistant, csrf: str | None) -> None:
    before = snapshot(assistant)
    for path, data, files in writes(csrf):
        r = client.post(path, data=data, files=files, follow_redirects=False)
        assert r.status_code == 403, (path, r.status_code)
        assert "Nothing was changed" in r.text
    assert client.app.state.__dict__.get("library_jobs") is None or not client.app.state.library_jobs.active()
    assert snapshot(assistant) == before


def test_the_right_token_sets_a_signed_http_only_strict_session_cookie(client):
    assert "Upload" not in client.get("/library").text
    r = sign_in(client)
    assert r.status_code == 303 and r.headers["location"] == "/library"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" not in cookie  # plain http: a Secure cookie would never come back
    assert TOKEN not in cookie
    page = client.get("/library").text
    assert 'type="file"' in page and ">Upload</button>" in page and "Rebuild index" in page
    assert "Sign out" in page


def test_over_https_the_cookie_is_secure(assistant):
    with TestClient(create_app(assistant=assistant), base_url="https://testserver") as c:
        assert "Secure" in sign_in(c).headers["set-cookie"]


def test_a_wrong_token_is_refused_and_signs_nobody_in(client):
    r = sign_in(client, "guess")
    assert r.status_code == 401 and "not the admin token" in r.text and "set-cookie" not in r.headers
    assert "Upload" not in client.get("/library").text


@pytest.mark.parametrize("csrf", [None, "", "forged-token"], ids=["missing", "empty", "wrong"])
def test_a_write_without_the_sessions_csrf_token_is_403_and_changes_nothing(client, assistant, csrf):
    sign_in(client)
    assert_all_refused(client, assistant, csrf)


def test_another_sessions_csrf_token_is_refused(client, assistant):
    other = TestClient(client.app)
    sign_in(other)
    their_token = csrf_of(other)
    sign_in(client)
    assert csrf_of(client) != their_token
    assert_all_refused(client, assistant, their_token)


def test_after_sign_out_the_old_form_is_refused(client, assistant):
    sign_in(client)
    csrf = csrf_of(client)
    r = client.post("/library/sign-out", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303 and 'qa_session=""' in r.headers["set-cookie"]
    assert "Sign out" not in client.get("/library").text
    assert_all_refused(client, assistant, csrf)


def put_cookie(client: TestClient, value: str) -> None:
    client.cookies.clear()
    client.cookies.set(COOKIE, value)


def test_a_tampered_or_foreign_cookie_is_not_a_session(client, assistant):
    sign_in(client)
    csrf = csrf_of(client)
    value = client.cookies[COOKIE]
    put_cookie(client, value)
    assert csrf_of(client) == csrf  # the same cookie, set by hand, is still the session
    put_cookie(client, value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert_all_refused(client, assistant, csrf)
    # A cookie signed under another admin token (the server's token changed) is refused too.
    foreign = Assistant(make_settings(assistant.settings.corpus_dir.parent, admin_token="other"),
                        encoder=assistant.encoder)
    with TestClient(create_app(assistant=foreign)) as c:
        sign_in(c, "other")
        put_cookie(client, c.cookies[COOKIE])
    assert_all_refused(client, assistant, csrf)


def test_repeated_wrong_tokens_are_slowed_down_even_for_the_right_one(client, tmp_path):
    now = [1000.0]
    client.app.state.throttle = Throttle(tmp_path / "failures.sqlite", clock=lambda: now[0])
    for _ in range(FREE_FAILURES):
        assert sign_in(client, "guess").status_code == 401
    waited = sign_in(client, "guess")
    assert waited.status_code == 429 and int(waited.headers["retry-after"]) >= 1
    assert "wait" in waited.text
    assert sign_in(client).status_code == 429  # not even checked while it must wait
    now[0] += 3
    assert sign_in(client, "guess").status_code == 401  # checked again, and wrong again
    delays = []
    for _ in range(3):  # each further wrong token doubles the wait
        r = sign_in(client, "guess")
        delays.append(int(r.headers["retry-after"]))
        now[0] += delays[-1]
        sign_in(client, "guess")
    assert delays == sorted(delays) and delays[-1] > delays[0]
    now[0] += 1000
    assert sign_in(client).status_code == 303  # the right token, once the wait is over
    assert sign_in(client, "guess").status_code == 401  # and success starts the count again


def test_without_a_token_the_library_is_read_only_and_says_how_to_enable_writes(tmp_path, encoder):
    a = indexed_assistant(tmp_path, encoder, [DOCS / "joint-statement.txt"])
    before = snapshot(a)
    with TestClient(create_app(assistant=a)) as c:
        page = c.get("/library").text
        assert "Read-only" in page and "QA_ADMIN_TOKEN" in page and 'type="file"' not in page
        assert "joint-statement.txt" in page
        assert "QA_ADMIN_TOKEN" in c.get("/library/sign-in").text
        assert sign_in(c, "").status_code == 403
        for path, data, files in writes("anything"):
            r = c.post(path, data=data, files=files)
            assert r.status_code == 403 and "QA_ADMIN_TOKEN" in r.text
    assert snapshot(a) == before


def test_the_table_sorts_and_filters_on_the_server(client):
    def titles(query: str) -> list[str]:
        page = client.get("/library" + query).text
        return re.findall(r'<td class="title"><a href="/view/[^"]+">([^<]+)</a>', page)

    every = titles("")
    assert len(every) == 2 and every == sorted(every, key=str.casefold)
    assert titles("?sort=title&order=desc") == every[::-1]
    by_size = re.findall(r'<tr data-doc="([^"]+)">', client.get("/library?sort=size&order=asc").text)
    assert by_size == sorted(by_size, key=lambda name: (DOCS / name).stat().st_size)
    assert titles("?sort=size&order=desc") == titles("?sort=size&order=asc")[::-1]
    one = every[0]
    word = one.split()[-1]
    assert titles(f"?q={word.upper()}") == [t for t in every if word.casefold() in t.casefold()]
    assert "No document title contains" in client.get("/library?q=zzzz-no-such").text
    assert titles("?sort=bogus&order=sideways") == every  # unknown values fall back, not fail


def test_an_upload_answers_at_once_and_its_indexing_shows_until_ready(client, assistant):
    sign_in(client)
    csrf = csrf_of(client)
    r = client.post("/library/upload", data={"csrf": csrf}, files={"file": ("memo.md", MEMO)},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/library?received=uploads%2Fmemo.md"
    received = client.get(r.headers["location"]).text  # the page says the upload was received
    assert 'class="received" role="status">Received “uploads/memo.md”' in received
    finish_jobs(client)
    page = client.get("/library").text
    row = page[page.index('<tr data-doc="uploads/memo.md">'):]
    row = row[:row.index("</tr>")]
    assert "Harbour memo" in row and "state-ready" in row and "MD" in row
    assert (assistant.settings.corpus_dir / "uploads" / "memo.md").read_bytes() == MEMO
    last = read_last_build(assistant.settings.index_dir)
    assert last["documents"]["uploads/memo.md"] == {"state": "ready"}


def test_a_taken_name_asks_before_it_replaces(client, assistant):
    sign_in(client)
    csrf = csrf_of(client)
    client.post("/library/upload", data={"csrf": csrf}, files={"file": ("memo.md", MEMO)})
    finish_jobs(client)
    newer = MEMO.replace(b"hidden modems", b"new software")
    asked = client.post("/library/upload", data={"csrf": csrf}, files={"file": ("memo.md", newer)})
    assert asked.status_code == 409 and "Replace uploads/memo.md?" in asked.text
    finish_jobs(client)
    assert (assistant.settings.corpus_dir / "uploads" / "memo.md").read_bytes() == MEMO  # not yet
    staged = re.search(r'name="staged" value="([^"]+)"', asked.text).group(1)
    # The confirmation is a write too: without the CSRF token it changes nothing.
    assert client.post("/library/upload", data={"staged": staged, "replace": "true"}).status_code == 403
    r = client.post("/library/upload", data={"csrf": csrf, "staged": staged, "replace": "true"},
                    follow_redirects=False)
    assert r.status_code == 303
    finish_jobs(client)
    assert (assistant.settings.corpus_dir / "uploads" / "memo.md").read_bytes() == newer
    assert "new software" in assistant.document("uploads/memo.md").text
    again = client.post("/library/upload", data={"csrf": csrf, "staged": staged, "replace": "true"})
    assert again.status_code == 410  # a staged upload is used once


def test_an_unreadable_upload_changes_nothing_and_the_library_says_why(client, assistant):
    sign_in(client)
    before = snapshot(assistant)
    r = client.post("/library/upload", data={"csrf": csrf_of(client)}, files={"file": ("memo.docx", MEMO)})
    assert r.status_code == 415 and "not supported" in r.text  # known from the name: refused at once
    r = client.post("/library/upload", data={"csrf": csrf_of(client)},
                    files={"file": ("report.pdf", (DOCS / "corrupt.pdf").read_bytes())}, follow_redirects=False)
    assert r.status_code == 303  # reading it is the background job's work
    finish_jobs(client)
    page = client.get("/library").text
    problems = page[page.index("Could not be indexed"):]
    assert "uploads/report.pdf" in problems and "not a readable PDF" in problems
    assert snapshot(assistant) == before


def test_delete_asks_first_then_removes_the_document(client, assistant):
    assert client.get("/library/delete?doc=joint-statement.txt", follow_redirects=False).status_code == 303
    sign_in(client)
    confirm = client.get("/library/delete?doc=joint-statement.txt")
    assert confirm.status_code == 200 and ">Delete</button>" in confirm.text and "Cancel" in confirm.text
    assert "joint-statement.txt" in [d.doc_id for d in assistant.documents()]  # asking deletes nothing
    r = client.post("/library/delete", data={"csrf": csrf_of(client), "doc": "joint-statement.txt"},
                    follow_redirects=False)
    assert r.status_code == 303
    finish_jobs(client)
    assert [d.doc_id for d in assistant.documents()] == ["trade-fact-sheet.md"]


def test_rebuild_runs_in_the_background_and_publishes_a_new_generation(client, assistant):
    sign_in(client)
    before = snapshot(assistant)[0]
    assert client.post("/library/rebuild", data={"csrf": csrf_of(client)}, follow_redirects=False).status_code == 303
    finish_jobs(client)
    after = snapshot(assistant)[0]
    assert after != before and len(assistant.documents()) == 2


def test_a_build_reports_each_documents_state_while_it_runs_and_after(tmp_path, encoder):
    (tmp_path / "corpus").mkdir()
    for name in ("joint-statement.txt", "corrupt.pdf"):
        shutil.copy(DOCS / name, tmp_path / "corpus")
    a = Assistant(make_settings(tmp_path), encoder=encoder)
    seen: list[str] = []  # joint-statement.txt's state, as another process reading the file sees it

    def watch(phase: str, done: int, total: int) -> None:
        state = a.build_state.documents.get("joint-statement.txt", {}).get("state")
        if state and (not seen or seen[-1] != state):
            seen.append(state)

    from qa.indexing.build import build_index
    build_index(a.settings, lambda: encoder, progress=watch)
    order = ["queued", "read", "chunked", "embedded", "ready"]
    assert seen == sorted(seen, key=order.index) and {"queued", "chunked"} <= set(seen), seen
    last = read_last_build(a.settings.index_dir)["documents"]
    assert last["joint-statement.txt"] == {"state": "ready"}
    assert last["corrupt.pdf"]["state"] == "failed" and "corrupt.pdf" in last["corrupt.pdf"]["reason"]
    assert a.build_state.running is False


def test_a_build_that_stops_marks_its_unfinished_documents_failed(tmp_path):
    report = ProgressFile(tmp_path, lambda *_: None)
    report.mark(["a.txt", "b.txt"], "queued")
    report.mark(["a.txt"], "ready")
    report.finish(KeyboardInterrupt())
    last = read_last_build(tmp_path)["documents"]
    assert last["a.txt"] == {"state": "ready"}
    assert last["b.txt"]["state"] == "failed" and "stopped" in last["b.txt"]["reason"]


def test_the_progress_endpoint_and_the_page_show_a_running_build(client, assistant):
    report = ProgressFile(assistant.settings.index_dir, lambda *_: None)  # as a `qa index` elsewhere would
    report.mark(["uploads/new.pdf"], "chunked")
    report("embedding", 50, 100)
    try:
        body = client.get("/library/progress").json()
        assert body["running"] and body["phase"] == "embedding"
        assert body["documents"] == {"uploads/new.pdf": {"state": "chunked"}}
        assert 30 < body["percent"] < 95
        page = client.get("/library").text
        assert f'<progress id="build-bar" max="100" value="{body["percent"]}">' in page
        assert 'http-equiv="refresh"' in page and "uploads/new.pdf" in page and "chunked" in page
    finally:
        report.clear()
    assert not client.get("/library/progress").json()["running"]
    assert 'http-equiv="refresh"' not in client.get("/library").text


def test_a_deleted_document_is_listed_in_the_trash_and_restored_from_it(client, assistant):
    sign_in(client)
    client.post("/library/delete", data={"csrf": csrf_of(client), "doc": "joint-statement.txt"})
    finish_jobs(client)
    page = client.get("/library").text
    trash = page[page.index('aria-label="Trash"'):]
    assert "joint-statement.txt" in trash and "deleted" in trash and ">Restore</button>" in trash
    entry = re.search(r'name="entry" value="([^"]+)"', trash).group(1)
    assert client.post("/library/restore", data={"entry": entry}).status_code == 403  # no CSRF token
    r = client.post("/library/restore", data={"csrf": csrf_of(client), "entry": entry}, follow_redirects=False)
    assert r.status_code == 303
    finish_jobs(client)
    assert "joint-statement.txt" in [d.doc_id for d in assistant.documents()]
    assert assistant.trash() == []


def test_restoring_over_a_name_now_taken_asks_first(client, assistant):
    sign_in(client)
    csrf = csrf_of(client)
    client.post("/library/upload", data={"csrf": csrf}, files={"file": ("memo.md", MEMO)})
    finish_jobs(client)
    client.post("/library/delete", data={"csrf": csrf, "doc": "uploads/memo.md"})
    finish_jobs(client)
    newer = MEMO.replace(b"hidden modems", b"new software")
    client.post("/library/upload", data={"csrf": csrf}, files={"file": ("memo.md", newer)})
    finish_jobs(client)
    entry = assistant.trash()[0].id
    asked = client.post("/library/restore", data={"csrf": csrf, "entry": entry})
    assert asked.status_code == 409 and "Replace uploads/memo.md?" in asked.text
    assert (assistant.settings.corpus_dir / "uploads" / "memo.md").read_bytes() == newer  # not yet
    client.post("/library/restore", data={"csrf": csrf, "entry": entry, "replace": "true"})
    finish_jobs(client)
    assert (assistant.settings.corpus_dir / "uploads" / "memo.md").read_bytes() == MEMO
    assert [e.reason for e in assistant.trash()] == ["replaced"]  # the newer one waits in the trash


@pytest.mark.skipif("metadata" not in StoredDocument.__dataclass_fields__,
                    reason="document metadata arrives with the metadata issue (i11)")
def test_authors_publisher_and_date_are_listed_once_known(client):
    sign_in(client)
    memo = b"---\ntitle: Harbour memo\nauthor: Kenji Sato\ndate: 2019-10-07\n---\n# Harbour memo\n\n" + MEMO[16:]
    client.post("/library/upload", data={"csrf": csrf_of(client)}, files={"file": ("memo.md", memo)})
    finish_jobs(client)
    page = client.get("/library?sort=authors&order=asc").text
    row = page[page.index('<tr data-doc="uploads/memo.md">'):]
    row = row[:row.index("</tr>")]
    assert "Kenji Sato" in row and "2019-10-07" in row
    assert page.index('data-doc="uploads/memo.md"') < page.index('data-doc="joint-statement.txt"')  # known first
