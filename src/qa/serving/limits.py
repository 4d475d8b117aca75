"""ASGI middleware at the edge: request body limits, security headers, HEAD requests.

Plain ASGI rather than BaseHTTPMiddleware so an oversized body is refused before it is read in full.
"""

from __future__ import annotations

import html
import json

from qa.config import size_text

SECURITY_HEADERS = [
    # Scripts and styles only from this origin: no inline script can run, whatever a document contains.
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
     b"base-uri 'none'; frame-ancestors 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
# The OpenAPI pages start Swagger UI and ReDoc with an inline script, so they get a policy of their
# own: inline script and style allowed, and, as everywhere, nothing loaded from another origin.
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")
DOCS_ASSETS = "/docs-assets"  # Swagger UI's and ReDoc's files, from the fastapi-offline package
DOCS_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
     b"img-src 'self' data:; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"),
    *(h for h in SECURITY_HEADERS if h[0] != b"content-security-policy"),
]


# Forms a browser posts: an oversized one gets a page, not JSON the user would see raw. The library
# page checks a file's size before sending it (library.js); this is for browsers without JavaScript.
BROWSER_FORMS = ("/library/upload",)
TOO_LARGE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>File too large - alliance-qa</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body><main><h1>File too large</h1>
<p class="problem" role="alert">The file is larger than the {limit} upload limit. Nothing was added.</p>
<p><a href="/library">Back to the library</a></p></main></body></html>
"""


class BodySizeLimit:
    """413 for a body over the limit: at once from Content-Length, or as soon as the stream passes it."""

    def __init__(self, app, ask_limit: int, upload_limit: int) -> None:
        self.app = app
        self.ask_limit = ask_limit
        self.upload_limit = upload_limit

    def _limit(self, scope) -> tuple[int, str]:
        """The body limit in bytes, and how a 413 names it (the upload limit users set, not the
        envelope added to it)."""
        if scope["method"] == "POST" and scope["path"] in ("/documents", "/library/upload"):
            # room for the multipart envelope
            return self.upload_limit + 64 * 1024, f"{size_text(self.upload_limit)} upload limit"
        return self.ask_limit, f"{size_text(self.ask_limit)} limit"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return await self.app(scope, receive, send)
        limit, named = self._limit(scope)
        length = dict(scope["headers"]).get(b"content-length")
        form_limit = self.upload_limit if scope["path"] in BROWSER_FORMS else None
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await _too_large(send, named, form_limit)
        received = 0
        rejected = False

        async def limited_receive():
            nonlocal received, rejected
            if rejected:  # the app keeps reading: the rest of the body is never handed over
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit and not rejected:
                    # Answer now; whatever the app makes of the cut-off body is dropped below.
                    rejected = True
                    await _too_large(send, named, form_limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not rejected:
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not rejected:
                raise


async def _too_large(send, named: str, form_limit: int | None = None) -> None:
    """JSON naming the limit (`named`) for the API; for a browser's form, a page that states the
    form's file limit (`form_limit`, bytes) and leads back."""
    if form_limit is not None:
        body = TOO_LARGE_PAGE.format(limit=html.escape(size_text(form_limit))).encode()
        kind = b"text/html; charset=utf-8"
    else:
        body = json.dumps({"detail": f"body: larger than the {named}; send a smaller request"}).encode()
        kind = b"application/json"
    headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = DOCS_HEADERS if scope["path"] in DOCS_PATHS else SECURITY_HEADERS

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + headers
            await send(message)

        await self.app(scope, receive, with_headers)


class HeadAsGet:
    """HEAD answers what GET would, headers only. FastAPI routes declare GET alone, so without this
    `curl -I` and uptime monitors get 405 from pages that exist."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return await self.app(scope, receive, send)

        async def headers_only(message):
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)
