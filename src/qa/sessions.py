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
import threading
import time
from collections.abc import Callable

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "qa_session"
SESSION_SECONDS = 8 * 3600
FREE_FAILURES = 3  # wrong tokens before a client has to wait
MAX_DELAY = 300.0  # seconds: the longest a client is made to wait between guesses


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
    """Wrong sign-in tokens per client: after FREE_FAILURES, each further try must wait twice as long
    as the last (2 s, 4 s, ... up to MAX_DELAY). Kept in memory: a restart forgets, which is fine for
    slowing a guesser from millions of tries to a handful an hour."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._failures: dict[str, tuple[int, float]] = {}  # client -> (count, earliest next try)
        self._lock = threading.Lock()

    def wait_seconds(self, client: str) -> float:
        """How long `client` must still wait before its next try is even checked (0 = go ahead)."""
        with self._lock:
            count, not_before = self._failures.get(client, (0, 0.0))
        return max(0.0, not_before - self.clock()) if count > FREE_FAILURES - 1 else 0.0

    def failed(self, client: str) -> None:
        with self._lock:
            count = self._failures.get(client, (0, 0.0))[0] + 1
            delay = min(MAX_DELAY, 2.0 ** (count - FREE_FAILURES + 1)) if count >= FREE_FAILURES else 0.0
            self._failures[client] = (count, self.clock() + delay)
            if len(self._failures) > 10_000:  # a flood of addresses must not grow memory without end
                oldest = min(self._failures, key=lambda c: self._failures[c][1])
                del self._failures[oldest]

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"
