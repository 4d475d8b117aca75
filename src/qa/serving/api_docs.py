"""ReDoc at /redoc, served so that no request leaves the machine and the schema reads in words.

fastapi-offline serves ReDoc's script from the installed package, but that script draws the
"API docs by Redocly" logo from cdn.redoc.ly (the page's CSP blocks it, and the browser reports the
attempt). Here the same script is served with that one address replaced by an empty data: URL: the
image then fails at once and ReDoc leaves it out. The page also sets ReDoc's `hide-schema-pattern`
option, so a field's rule is read in its description rather than as a raw regular expression.
"""

from __future__ import annotations

import html
from functools import cache
from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from qa.serving.limits import DOCS_ASSETS

router = APIRouter(include_in_schema=False)

REDOC_JS = "/api-docs/redoc.standalone.js"  # not under DOCS_ASSETS: fastapi-offline's mount owns that path
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - ReDoc</title>
<link rel="icon" href="{favicon}">
<style>body {{ margin: 0; padding: 0; }}</style>
</head>
<body>
<noscript>ReDoc needs JavaScript; the same description is at /openapi.json and, as Swagger UI, at /docs.</noscript>
<redoc spec-url="{openapi}" hide-schema-pattern="true"></redoc>
<script src="{script}"></script>
</body>
</html>
"""


@cache
def redoc_script() -> bytes:
    """fastapi-offline's redoc.standalone.js, its one off-site address (the logo) made an empty data: URL."""
    source = (files("fastapi_offline") / "static" / "redoc.standalone.js").read_text(encoding="utf-8")
    return source.replace(REDOC_LOGO, "data:,").encode()


@router.get("/redoc", response_class=HTMLResponse)
def redoc(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return HTMLResponse(PAGE.format(title=html.escape(request.app.title), favicon=f"{root}{DOCS_ASSETS}/favicon.png",
                                    openapi=f"{root}{request.app.openapi_url}", script=f"{root}{REDOC_JS}"))


@router.get(REDOC_JS)
def redoc_js() -> Response:
    return Response(redoc_script(), media_type="text/javascript; charset=utf-8",
                    headers={"Cache-Control": "public, max-age=86400"})
