"""Browser sign-in for the library: a signed session cookie, a CSRF token, and slowing down guessers.

The cookie holds {"csrf": random} signed with a key derived from QA_ADMIN_TOKEN (itsdangerous), so
every `qa serve --workers N` process accepts it without shared state, and changing the token signs
everyone out. A write form carries the same CSRF token in a hidden field; a request is a write from
a signed-in browser only when cookie and field agree. SameSite=Strict keeps the cookie off requests
from other sites anyway; the token is the second lock.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "qa_session"
SESSION_SECONDS = 8 * 3600
FREE_FAILURES = 3  # wrong tokens before a client has to wait
MAX_DELAY = 300.0  # seconds: the longest a client is made to wait between guesses
MAX_CLIENTS = 10_000  # addresses remembered at most
THROTTLE_FILE = ".admin-failures.sqlite"  # in the index folder, shared by every worker


def _serializer(admin_token: str) -> URLSafeTimedSerializer:
    # A key derived from the token, not the token itself: the cookie never carries a usable secret.
    key = hashlib.sha256(b"alliance-qa session\0" + admin_token.encode()).hexdigest()
    return URLSafeTimedSerializer(key, salt="qa-library-session")


def token_matches(given: str, admin_token: str | None) -> bool:
    return bool(admin_token) and secrets.compare_digest(given.strip().encode(), admin_token.encode())


def start_session(response: Response, request: Request, admin_token: str) -> str:
    """Set the session cookie on `response`; returns the new session's CSRF token."""
    csrf = secrets.token_urlsafe(32)
    response.set_cookie(
        COOKIE, _serializer(admin_token).dumps({"csrf": csrf}), max_age=SESSION_SECONDS, path="/",
        httponly=True, samesite="strict", secure=request.url.scheme == "https",
    )
    return csrf


def end_session(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")


def session_csrf(request: Request, admin_token: str | None) -> str | None:
    """The CSRF token of a valid, unexpired session cookie; None when not signed in."""
    cookie = request.cookies.get(COOKIE)
    if not admin_token or not cookie:
        return None
    try:
        data = _serializer(admin_token).loads(cookie, max_age=SESSION_SECONDS)
    except BadSignature:  # also SignatureExpired
        return None
    csrf = data.get("csrf") if isinstance(data, dict) else None
    return csrf if isinstance(csrf, str) and csrf else None


def csrf_valid(request: Request, admin_token: str | None, given: str | None) -> bool:
    """True only for a signed-in browser whose form carries its session's CSRF token."""
    expected = session_csrf(request, admin_token)
    return bool(expected and given) and secrets.compare_digest(expected.encode(), given.encode())


class Throttle:
    """Wrong admin tokens per client address, on the sign-in form and the bearer API alike: after
    FREE_FAILURES, each further try must wait twice as long as the last (2 s, 4 s, ... up to
    MAX_DELAY). Only the address that made the failures waits; a right token from any other address
    is never refused.

    The counts live in a small SQLite file (in the index folder), so every `qa serve --workers N`
    process sees the same ones; a guesser gains nothing by landing on another worker."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS failures "
                       "(client TEXT PRIMARY KEY, count INTEGER NOT NULL, not_before REAL NOT NULL)")
            self._local.db = db
        return db

    def wait_seconds(self, client: str) -> float:
        """How long `client` must still wait before its next try is even checked (0 = go ahead)."""
        row = self._db().execute("SELECT count, not_before FROM failures WHERE client = ?", (client,)).fetchone()
        if row is None or row[0] < FREE_FAILURES:
            return 0.0
        return min(MAX_DELAY, max(0.0, row[1] - self.clock()))

    def failed(self, client: str) -> None:
        db = self._db()
        with db:  # one transaction: two workers counting the same client's failures add up
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT count FROM failures WHERE client = ?", (client,)).fetchone()
            count = (row[0] if row else 0) + 1
            delay = min(MAX_DELAY, 2.0 ** (count - FREE_FAILURES + 1)) if count >= FREE_FAILURES else 0.0
            db.execute("INSERT OR REPLACE INTO failures VALUES (?, ?, ?)", (client, count, self.clock() + delay))
            # A flood of addresses must not grow the file without end: forget the longest-waited ones.
            db.execute("DELETE FROM failures WHERE client IN (SELECT client FROM failures "
                       "ORDER BY not_before DESC LIMIT -1 OFFSET ?)", (MAX_CLIENTS,))

    def succeeded(self, client: str) -> None:
        self._db().execute("DELETE FROM failures WHERE client = ?", (client,))


def client_of(request: Request) -> str:
    """The address that connected; behind a reverse proxy, the one its forwarding header names, but
    only when `qa serve --forwarded-allow-ips` trusts that proxy (uvicorn rewrites request.client)."""
    return request.client.host if request.client else "unknown"
