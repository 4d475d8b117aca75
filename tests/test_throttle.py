"""Wrong admin tokens slow down the address that sent them, on the bearer API and the sign-in form
alike, in every worker of `qa serve --workers 2`; a right token from another address always gets in.

A real server on loopback; clients bind distinct loopback addresses (127.0.0.2, ...), which is what
distinct machines look like to the server.
"""

from __future__ import annotations

import shutil

import httpx
import pytest

from conftest import FIXTURES
from qa.serving.sessions import FREE_FAILURES
from server import live_server

TOKEN = "throttle-test-token"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("throttle")
    (root / "corpus").mkdir()
    shutil.copy(FIXTURES / "incremental" / "joint-statement.txt", root / "corpus")
    with live_server(root / "corpus", root / "index", "--workers", "2", env={"QA_ADMIN_TOKEN": TOKEN}) as url:
        yield url


def client_at(address: str, base: str) -> httpx.Client:
    """A client whose connections come from `address`, a new connection per request, so that
    consecutive requests land on either worker."""
    return httpx.Client(base_url=base, transport=httpx.HTTPTransport(local_address=address),
                        headers={"connection": "close"}, follow_redirects=False, timeout=30)


def bearer(token: str) -> dict:
    return {"authorization": f"Bearer {token}"}


def test_wrong_bearer_tokens_slow_down_that_address_only(base):
    with client_at("127.0.0.2", base) as guesser, client_at("127.0.0.3", base) as admin:
        for _ in range(FREE_FAILURES):
            assert guesser.get("/trash", headers=bearer("guess")).status_code == 401
        waited = guesser.get("/trash", headers=bearer("guess"))
        assert waited.status_code == 429, waited.text
        assert int(waited.headers["retry-after"]) >= 1 and "too many wrong tokens" in waited.json()["detail"]
        assert guesser.get("/trash", headers=bearer(TOKEN)).status_code == 429  # not even checked meanwhile
        assert admin.get("/trash", headers=bearer(TOKEN)).status_code == 200  # another address gets in
        form = admin.post("/library/sign-in", data={"token": TOKEN})
        assert form.status_code == 303 and "qa_session" in form.headers["set-cookie"]
        assert guesser.get("/trash").status_code == 401  # no token at all is not a guess, and not throttled


def test_wrong_tokens_on_the_form_count_for_the_api_too(base):
    with client_at("127.0.0.4", base) as guesser, client_at("127.0.0.5", base) as admin:
        for _ in range(FREE_FAILURES):
            assert guesser.post("/library/sign-in", data={"token": "guess"}).status_code == 401
        waited = guesser.post("/library/sign-in", data={"token": TOKEN})
        assert waited.status_code == 429 and int(waited.headers["retry-after"]) >= 1
        assert "wait" in waited.text
        assert guesser.get("/trash", headers=bearer(TOKEN)).status_code == 429  # one rule for both doors
        assert admin.post("/library/sign-in", data={"token": TOKEN}).status_code == 303


def test_a_forwarding_header_is_not_trusted_unless_the_proxy_is_configured(base):
    with client_at("127.0.0.6", base) as guesser:
        for _ in range(FREE_FAILURES):
            guesser.get("/trash", headers=bearer("guess"))
        spoofed = guesser.get("/trash", headers={**bearer(TOKEN), "x-forwarded-for": "203.0.113.9"})
        assert spoofed.status_code == 429  # still 127.0.0.6: it cannot pick a fresh address
