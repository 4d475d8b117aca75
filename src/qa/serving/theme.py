"""The colour theme a reader chose: system (the default, following prefers-color-scheme), light or
dark, kept in a cookie that a plain form post sets, so the choice works and lasts without JavaScript.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from qa.serving.web import error_page, templates

router = APIRouter(include_in_schema=False)

COOKIE = "theme"
THEMES = ("system", "light", "dark")
COOKIE_SECONDS = 400 * 24 * 3600  # browsers cap a cookie's life at 400 days
MAX_BACK = 4000


def theme_of(request: Request) -> str:
    """The request's theme: the cookie's if it names one, else "system"."""
    chosen = request.cookies.get(COOKIE, "")
    return chosen if chosen in THEMES else "system"


def local_path(back: str) -> str:
    """`back` if it is a path on this site ("/library?sort=size"), else "/": the form cannot send
    the reader to another site."""
    if not back.startswith("/") or back.startswith(("//", "/\\")) or len(back) > MAX_BACK:
        return "/"
    if any(ord(c) < 32 or c == "\\" for c in back):
        return "/"
    return back


@router.post("/theme")
def choose_theme(
    request: Request, theme: Annotated[str, Form()] = "", back: Annotated[str, Form()] = "/",
) -> Response:
    """Remember the theme and go back to the page the form was on; "system" forgets the choice.
    Any other value is refused and changes nothing."""
    if theme not in THEMES:
        return error_page(request, 422, f"“{theme[:40]}” is not a colour theme: choose "
                                        + ", ".join(THEMES) + ". Nothing was changed.")
    response = RedirectResponse(local_path(back), status_code=303)
    if theme in ("light", "dark"):
        response.set_cookie(COOKIE, theme, max_age=COOKIE_SECONDS, path="/", samesite="lax", httponly=True)
    else:
        response.delete_cookie(COOKIE, path="/", samesite="lax", httponly=True)
    return response


templates.env.globals["theme_of"] = theme_of
templates.env.globals["THEMES"] = THEMES
