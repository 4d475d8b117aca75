"""Path handling: a doc_id never leads outside the corpus directory, however it is spelled.

Requests go through a real uvicorn (raw request targets, so no client normalises `..` away), and an
audit hook records every file the process opens while they are served.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, make_settings
from qa.service import Assistant
from qa.serving.api import create_app
from server import uvicorn_thread

SECRET = "OUTSIDE-THE-CORPUS-7f3a"


@pytest.fixture(scope="module")
def site(tmp_path_factory, encoder):
    """A corpus with symlinks out of it (file and folder), one inside it, and a secret file beside it."""
    root = tmp_path_factory.mktemp("paths")
    shutil.copytree(FIXTURES / "web-corpus", root / "corpus")
    outside = root / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(f"The password is {SECRET}. Tell nobody about the alliance.\n")
    (root / "corpus" / "leak.txt").symlink_to(outside / "secret.txt")
    (root / "corpus" / "linked-folder").symlink_to(outside, target_is_directory=True)
    (root / "corpus" / "relative-leak.md").symlink_to(Path("..") / "outside" / "secret.txt")
    (root / "corpus" / "same-note.md").symlink_to("alliance-note.md")  # inside: allowed
    assistant = Assistant(make_settings(root), encoder=encoder)
    assistant.reindex()
    with uvicorn_thread(create_app(assistant=assistant)) as url:
        yield url, root


class OpenedFiles:
    """Files opened by this process while `watching`; an audit hook cannot be removed, so it idles."""

    watching = False
    paths: list[str] = []

    @classmethod
    def hook(cls, event: str, args: tuple) -> None:
        if cls.watching and event == "open" and isinstance(args[0], str | bytes | os.PathLike):
            cls.paths.append(os.fsdecode(args[0]))


sys.addaudithook(OpenedFiles.hook)


def raw_get(base_url: str, target: str) -> tuple[int, str]:
    """GET with the request target sent exactly as written."""
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest("GET", target, skip_accept_encoding=True)
    conn.endheaders()
    response = conn.getresponse()
    body = response.read().decode("utf-8", "replace")
    conn.close()
    return response.status, body


def escapes(root: Path) -> list[str]:
    return [
        "../outside/secret.txt",
        "../../outside/secret.txt",
        "..%2Foutside%2Fsecret.txt",
        "%2e%2e/outside/secret.txt",
        "%2e%2e%2foutside%2fsecret.txt",
        "%2E%2E%2F%2E%2E%2Foutside%2Fsecret.txt",
        "..%5Coutside%5Csecret.txt",
        "....//outside/secret.txt",
        "%252e%252e%252foutside%252fsecret.txt",
        str(root / "outside" / "secret.txt"),  # absolute: /tmp/.../outside/secret.txt
        "/" + str(root / "outside" / "secret.txt"),
        "%2F" + str(root / "outside" / "secret.txt").lstrip("/").replace("/", "%2F"),
        "/etc/passwd",
        "%2Fetc%2Fpasswd",
        "leak.txt",
        "relative-leak.md",
        "linked-folder/secret.txt",
        "linked-folder%2Fsecret.txt",
        "alliance-note.md/../../outside/secret.txt",
        "alliance-note.md%00.txt",
    ]


@pytest.mark.parametrize("route", ["/documents/", "/view/"])
def test_escaping_paths_get_404_and_nothing_outside_is_read(site, route):
    base_url, root = site
    OpenedFiles.paths.clear()
    OpenedFiles.watching = True
    try:
        answers = {spelling: raw_get(base_url, route + spelling) for spelling in escapes(root)}
        (root / "outside" / "secret.txt").read_bytes()  # proves the hook sees a read of the secret
    finally:
        OpenedFiles.watching = False
    for spelling, (status, body) in answers.items():
        assert status == 404, (spelling, status, body[:200])
        assert SECRET not in body and "root:x:" not in body
    outside = (str(root / "outside"), "/etc/passwd")
    read_outside = [p for p in OpenedFiles.paths if os.path.realpath(p).startswith(outside)]
    assert read_outside == [str(root / "outside" / "secret.txt")]  # only the test's own read


def test_the_scanner_skips_symlinks_that_leave_the_corpus(site):
    base_url, _ = site
    status, body = raw_get(base_url, "/documents")
    doc_ids = {d["doc_id"] for d in json.loads(body)}
    assert status == 200
    assert doc_ids == {"alliance-note.md", "hostile.html", "hostile.txt", "notes/digital-trade.txt",
                       "same-note.md"}
    status, body = raw_get(base_url, "/ask?q=What%20is%20the%20password%3F&k=20")
    assert status == 200 and SECRET not in body


def test_a_real_subfolder_document_is_found_with_a_plain_or_encoded_slash(site):
    base_url, _ = site
    for spelling in ("notes/digital-trade.txt", "notes%2Fdigital-trade.txt"):
        status, body = raw_get(base_url, "/documents/" + spelling)
        assert status == 200 and "Digital Trade Agreement" in body
        status, body = raw_get(base_url, "/view/" + spelling)
        assert status == 200 and "Digital Trade Agreement" in body
