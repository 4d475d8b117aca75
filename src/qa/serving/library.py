"""The library in the browser: what is indexed, and (signed in with the admin token) uploads,
replacements, deletes, restores from the trash and rebuilds, with each document's indexing shown.

Every page works without JavaScript; library.js only refreshes the progress in place. Writes are
form posts that carry the session's CSRF token (sessions.py) and run in the background
(library_jobs.py): each answers 303 back to /library at once, where the build's progress shows.
"""

from __future__ import annotations

import secrets
import shutil
import time
from datetime import datetime
from pathlib import PurePosixPath
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from markupsafe import Markup, escape

from qa.config import size_text
from qa.errors import QAError
from qa.indexing.generations import read_last_build
from qa.service import UPLOADS, Assistant, InvalidRequest, UnsupportedType, corpus_path, sanitise_filename
from qa.serving import sessions
from qa.serving.citations import short_hash
from qa.serving.library_jobs import Jobs
from qa.serving.web import templates

router = APIRouter(include_in_schema=False)

SORTS = ("title", "authors", "publisher", "date", "format", "pages", "passages", "size", "indexed", "status")
# Share of the overall bar each build phase covers (embedding is where the time goes).
PHASES = {"scanning": (0.0, 0.05), "reading": (0.05, 0.2), "chunking": (0.2, 0.3),
          "embedding": (0.3, 0.95), "writing": (0.95, 1.0)}
STAGED = ".staged-uploads"  # under the index dir: uploads waiting for "replace?" to be answered
STAGED_SECONDS = 3600
ENABLE_WRITES = ("Writes from the browser are disabled: start the server with QA_ADMIN_TOKEN set "
                 "(e.g. QA_ADMIN_TOKEN=secret qa serve) to upload, replace, delete and rebuild here.")


# -- shared state ------------------------------------------------------------------------------
def _assistant(request: Request) -> Assistant:
    return request.app.state.assistant


def _jobs(request: Request) -> Jobs:
    state = request.app.state
    if getattr(state, "library_jobs", None) is None:
        state.library_jobs = Jobs()
    return state.library_jobs


def _throttle(request: Request) -> sessions.Throttle:
    return request.app.state.throttle  # the same one the bearer API counts wrong tokens in (api.py)


def _token(request: Request) -> str | None:
    return _assistant(request).settings.admin_token


def _refuse(request: Request, status: int, message: str) -> HTMLResponse:
    return templates.TemplateResponse(request, "library_error.html", {"status": status, "message": message},
                                      status_code=status)


def _check_write(request: Request, csrf: str | None) -> HTMLResponse | None:
    """None when this is a signed-in browser's own form; otherwise the 403 page, before anything changes."""
    if not _token(request):
        return _refuse(request, 403, ENABLE_WRITES)
    if not sessions.csrf_valid(request, _token(request), csrf):
        return _refuse(request, 403, "This form is not from your signed-in session (missing or stale "
                                     "security token, or you have signed out): sign in at /library/sign-in "
                                     "and try again. Nothing was changed.")
    return None


def _back_to_library(received: str = "") -> RedirectResponse:
    """303 to the library; `received` names an upload the page then says it received."""
    return RedirectResponse("/library" + (f"?{urlencode({'received': received})}" if received else ""),
                            status_code=303)


# -- reading -----------------------------------------------------------------------------------
def build_progress(request: Request) -> dict:
    """The running build (from the index directory's progress file, so every process and tab agrees)
    plus this server's queued browser writes."""
    a = _assistant(request)
    state = a.build_state
    lo, hi = PHASES.get(state.phase, (0.0, 0.0))
    fraction = lo + (hi - lo) * (state.done / state.total if state.total else 0.0) if state.running else 0.0
    documents = {doc_id: dict(entry) for doc_id, entry in state.documents.items()}
    pending = [job for job in _jobs(request).active()]
    for job in pending:
        if job.doc_id and (job.doc_id not in documents or job.state == "queued"):
            documents[job.doc_id] = {"state": "queued"}
    return {
        "running": state.running or bool(pending),
        "phase": state.phase or ("waiting for its turn" if pending else ""),
        "done": state.done, "total": state.total, "percent": round(100 * fraction),
        "documents": documents,
        "pending": [{"action": job.action, "doc_id": job.doc_id, "state": job.state} for job in pending],
    }


def _rows(request: Request, progress: dict) -> tuple[list[dict], str]:
    a = _assistant(request)
    try:
        gen = a.generation()
        docs = gen.documents()
    except QAError as exc:
        return [], str(exc)
    pages = gen.page_counts()
    indexed = gen.manifest.get("indexed", {})
    rows = []
    for d in docs:
        path = corpus_path(a.settings.corpus_dir, d.doc_id)
        meta = d.metadata
        state = progress["documents"].get(d.doc_id, {})
        rows.append({
            "doc_id": d.doc_id, "title": d.title, "authors": ", ".join(meta.authors or []),
            "publisher": meta.publisher or "", "date": meta.date or "",
            "format": PurePosixPath(d.doc_id).suffix.lstrip(".").upper(),
            "pages": pages.get(d.doc_id), "passages": d.chunks,
            "size": path.stat().st_size if path and path.is_file() else None,
            "indexed": indexed.get(d.doc_id) or gen.manifest.get("created", ""),
            "status": state.get("state", "ready"), "reason": state.get("reason", ""),
        })
    return rows, ""


def _sorted(rows: list[dict], sort: str, order: str) -> list[dict]:
    def key(row: dict):
        value = row[sort]
        if isinstance(value, str):
            value = value.casefold()
        return (value in (None, ""), value if value not in (None, "") else 0, row["title"].casefold())

    present = sorted((r for r in rows if r[sort] not in (None, "")), key=key, reverse=order == "desc")
    return present + sorted((r for r in rows if r[sort] in (None, "")), key=key)  # unknowns last


def _trash(a: Assistant) -> list[dict]:
    """Deleted files and replaced versions, newest first: [{"id", "doc_id", "reason", "at"}]."""
    return [entry.to_dict() for entry in a.trash()]


def _failures(request: Request) -> list[dict]:
    """What went wrong lately: documents the last build could not index, and browser writes that failed."""
    last = read_last_build(_assistant(request).settings.index_dir) or {}
    out = [{"doc_id": doc_id, "reason": entry.get("reason", ""), "at": last.get("finished", "")}
           for doc_id, entry in last.get("documents", {}).items() if entry.get("state") == "failed"]
    out += [{"doc_id": job.doc_id or "(rebuild)", "reason": f"{job.action}: {job.reason}", "at": job.at}
            for job in _jobs(request).finished() if job.state == "failed"]
    return out


def _received(request: Request, doc_id: str, rows: list[dict]) -> str:
    """doc_id if it names an upload this server took or a document it lists, else "": a link cannot
    make the page claim to have received anything else."""
    jobs = _jobs(request)
    known = {job.doc_id for job in [*jobs.active(), *jobs.finished()]} | {r["doc_id"] for r in rows}
    return doc_id if doc_id and doc_id in known else ""


def _library_page(request: Request, problem: str = "", status: int = 200, sort: str = "title",
                  order: str = "asc", q: str = "", received: str = "") -> HTMLResponse:
    token = _token(request)
    csrf = sessions.session_csrf(request, token)
    progress = build_progress(request)
    rows, index_problem = _rows(request, progress)
    shown = [r for r in rows if q.casefold() in r["title"].casefold()] if q else rows
    context = {
        "rows": _sorted(shown, sort, order), "total": len(rows), "q": q, "sort": sort, "order": order,
        "writes_enabled": bool(token), "signed_in": csrf is not None, "csrf": csrf or "",
        "progress": progress, "failures": _failures(request), "problem": problem,
        "index_problem": index_problem, "enable_writes": ENABLE_WRITES,
        "trash": _trash(_assistant(request)) if csrf else [],
        "max_upload": _assistant(request).settings.max_upload_bytes,
        "received": _received(request, received, rows),
        "segments": _segments(_assistant(request)),
    }
    return templates.TemplateResponse(request, "library.html", context, status_code=status)


def _segments(a: Assistant) -> str:
    """"3 segments (1,204, 10 and 8 passages; 5.2 MiB), merging", or "" without a segmented index."""
    try:
        state = a.segments
    except (OSError, ValueError, KeyError):
        return ""
    return state.describe() if state.sizes else ""


@router.get("/library", response_class=HTMLResponse)
def library(request: Request, sort: str = "title", order: str = "asc", q: str = "", received: str = "") -> HTMLResponse:
    """Every indexed document; ?q= filters by title, ?sort= and ?order= sort (links in the headings);
    ?received= names the upload just received (the upload form's redirect)."""
    sort = sort if sort in SORTS else "title"
    order = "desc" if order == "desc" else "asc"
    return _library_page(request, sort=sort, order=order, q=q.strip()[:200], received=received[:300])


@router.get("/library/progress")
def progress(request: Request) -> JSONResponse:
    """The build's state for library.js: {"running", "phase", "percent", "documents": {doc_id: {state}}}."""
    return JSONResponse(build_progress(request), headers={"Cache-Control": "no-store"})


# -- signing in --------------------------------------------------------------------------------
def _sign_in_page(request: Request, problem: str = "", status: int = 200, headers=None) -> HTMLResponse:
    context = {"writes_enabled": bool(_token(request)), "problem": problem, "enable_writes": ENABLE_WRITES,
               "signed_in": sessions.session_csrf(request, _token(request)) is not None}
    return templates.TemplateResponse(request, "sign_in.html", context, status_code=status, headers=headers)


@router.get("/library/sign-in", response_class=HTMLResponse)
def sign_in_form(request: Request) -> HTMLResponse:
    return _sign_in_page(request)


@router.post("/library/sign-in", response_class=HTMLResponse)
def sign_in(request: Request, token: Annotated[str, Form()] = "") -> Response:
    admin_token = _token(request)
    if not admin_token:
        return _sign_in_page(request, ENABLE_WRITES, 403)
    client, throttle = sessions.client_of(request), _throttle(request)
    wait = throttle.wait_seconds(client)
    if wait > 0:  # not even checked: a guesser learns nothing by hurrying
        seconds = int(wait) + 1
        return _sign_in_page(request, f"Too many wrong tokens: wait {seconds} seconds, then try again.", 429,
                             headers={"Retry-After": str(seconds)})
    if not sessions.token_matches(token, admin_token):
        throttle.failed(client)
        return _sign_in_page(request, "That is not the admin token (QA_ADMIN_TOKEN on the server). "
                                      "Check it and try again.", 401)
    throttle.succeeded(client)
    response = _back_to_library()
    sessions.start_session(response, request, admin_token)
    return response


@router.post("/library/sign-out")
def sign_out(request: Request) -> Response:
    # Always honoured, valid form or not: ending a session can do no harm.
    response = _back_to_library()
    sessions.end_session(response, request)
    return response


# -- writing -----------------------------------------------------------------------------------
def _stage(request: Request, name: str, data: bytes) -> str:
    """Keep an upload that would replace a file until the user answers; returns its id."""
    root = _assistant(request).settings.index_dir / STAGED
    for old in root.glob("*") if root.is_dir() else []:
        if time.time() - old.stat().st_mtime > STAGED_SECONDS:
            shutil.rmtree(old, ignore_errors=True)
    staged_id = secrets.token_urlsafe(16)
    folder = root / staged_id
    folder.mkdir(parents=True)
    (folder / name).write_bytes(data)
    return staged_id


def _unstage(request: Request, staged_id: str) -> tuple[str, bytes] | None:
    if not staged_id.replace("-", "").replace("_", "").isalnum():
        return None
    folder = _assistant(request).settings.index_dir / STAGED / staged_id
    files = list(folder.glob("*")) if folder.is_dir() else []
    if len(files) != 1:
        return None
    name, data = files[0].name, files[0].read_bytes()
    shutil.rmtree(folder, ignore_errors=True)
    return name, data


@router.post("/library/upload", response_class=HTMLResponse)
def upload(
    request: Request,
    csrf: Annotated[str, Form()] = "",
    file: Annotated[UploadFile | None, File()] = None,
    staged: Annotated[str, Form()] = "",
    replace: Annotated[str, Form()] = "",
) -> Response:
    """Store the file and index it in the background; a name already taken by other content asks first."""
    refused = _check_write(request, csrf)
    if refused:
        return refused
    a = _assistant(request)
    limit = a.settings.max_upload_bytes
    if staged:
        found = _unstage(request, staged)
        if found is None:
            return _library_page(request, "That upload has expired: choose the file again.", 410)
        name, data = found
    else:
        if file is None or not file.filename:
            return _library_page(request, "Choose a file to upload first.", 400)
        data = file.file.read(limit + 1)
        if len(data) > limit:
            return _library_page(request, f"{file.filename} is larger than the {limit:,} byte upload limit.", 413)
        try:
            name = sanitise_filename(file.filename)
        except InvalidRequest as exc:
            return _library_page(request, str(exc).split(": ", 1)[-1], 400)
        except UnsupportedType as exc:
            return _library_page(request, f"{file.filename}: {exc}", 415)
    doc_id = f"{UPLOADS}/{name}"
    # Reading the file (slow for a long PDF) is left to the background job: a file that cannot be read
    # shows in the library as failed, with the reason, and changes nothing.
    target = a.settings.corpus_dir / UPLOADS / name
    taken = target.is_file() and target.read_bytes() != data
    if taken and replace != "true":
        context = {"csrf": csrf, "doc_id": doc_id, "staged": _stage(request, name, data), "size": len(data)}
        return templates.TemplateResponse(request, "library_replace.html", context, status_code=409)
    _jobs(request).submit("replace" if taken else "upload", doc_id, lambda: a.add_document(name, data, replace=taken))
    return _back_to_library(received=doc_id)


@router.get("/library/delete", response_class=HTMLResponse)
def confirm_delete(request: Request, doc: str = "") -> Response:
    csrf = sessions.session_csrf(request, _token(request))
    if csrf is None:
        return RedirectResponse("/library/sign-in", status_code=303)
    try:
        found = _assistant(request).document(doc)
    except QAError as exc:
        return _refuse(request, 404, str(exc))
    context = {"csrf": csrf, "doc_id": found.doc_id, "title": found.title}
    return templates.TemplateResponse(request, "library_delete.html", context)


@router.post("/library/delete", response_class=HTMLResponse)
def delete(request: Request, csrf: Annotated[str, Form()] = "", doc: Annotated[str, Form()] = "") -> Response:
    refused = _check_write(request, csrf)
    if refused:
        return refused
    a = _assistant(request)
    try:
        a.document(doc)
    except QAError as exc:
        return _refuse(request, 404, str(exc))
    _jobs(request).submit("delete", doc, lambda: a.delete_document(doc))
    return _back_to_library()


@router.post("/library/restore", response_class=HTMLResponse)
def restore(request: Request, csrf: Annotated[str, Form()] = "", entry: Annotated[str, Form()] = "",
            replace: Annotated[str, Form()] = "") -> Response:
    """Put a trashed file back; if its name now holds another file, ask before that one goes to the trash."""
    refused = _check_write(request, csrf)
    if refused:
        return refused
    a = _assistant(request)
    found = [e for e in _trash(a) if e["id"] == entry]
    if not found:
        return _refuse(request, 404, f"There is no trash entry {entry!r}: it may have been restored already.")
    doc_id = found[0]["doc_id"]
    target = corpus_path(a.settings.corpus_dir, doc_id)
    taken = target is not None and target.exists()
    if taken and replace != "true":
        context = {"csrf": csrf, "doc_id": doc_id, "entry": entry}
        return templates.TemplateResponse(request, "library_replace.html", context, status_code=409)
    _jobs(request).submit("restore", doc_id, lambda: a.restore(entry, replace=taken))
    return _back_to_library()


@router.post("/library/rebuild", response_class=HTMLResponse)
def rebuild(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    refused = _check_write(request, csrf)
    if refused:
        return refused
    a = _assistant(request)
    _jobs(request).submit("rebuild", "", lambda: a.reindex(rebuild=True))
    return _back_to_library()


def when_text(value: str, seconds: bool = False) -> str:
    """An ISO time as "2026-11-29 14:55 UTC" for the table (with seconds, "14:55:07", where two
    moments must be told apart, as two versions in the trash)."""
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")
    except (TypeError, ValueError):
        return value or ""


def when(value: str, seconds: bool = False) -> Markup:
    """when_text as HTML, its day in a span that never wraps at the hyphens (the time may go below)."""
    text = when_text(value, seconds)
    day, sep, rest = text.partition(" ")
    if not sep or len(day) != 10:
        return escape(text)
    return Markup('<span class="day">{}</span> {}').format(day, rest)


def size(value: int | None) -> str:
    return "" if value is None else size_text(value)


templates.env.filters["when"] = when
templates.env.filters["when_text"] = when_text
templates.env.filters["size"] = size
templates.env.filters["short_hash"] = short_hash
