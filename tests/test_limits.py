"""Resource limits and security headers, through a real uvicorn on loopback.

Raw sockets, because an HTTP client would send the whole body before reading the answer: these tests
show the server answers 413 while the client is still sending, i.e. before the body is read in full.
"""

from __future__ import annotations

import json
import re
import socket

import httpx
import pytest
from fastapi.testclient import TestClient

from qa.serving.api import create_app
from qa.serving.api_docs import REDOC_JS
from server import uvicorn_thread

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def base_url(report_assistant):
    with uvicorn_thread(create_app(assistant=report_assistant)) as url:
        yield url


def open_socket(base_url: str) -> socket.socket:
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.settimeout(10)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one response; raises socket.timeout if the server never answers."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    while len(body) < int(headers.get("content-length", 0)):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, body


def send_quietly(sock: socket.socket, data: bytes) -> bool:
    """Send, reporting False once the server has closed its side (it answered and hung up)."""
    try:
        sock.sendall(data)
        return True
    except (BrokenPipeError, ConnectionResetError):
        return False


def test_a_64_kb_question_body_is_accepted(base_url):
    body = json.dumps({"question": "What does Article II ask of the allies?", "k": 2}).encode()
    body += b" " * (LIMIT - len(body))  # JSON allows trailing whitespace: exactly 64 KB
    r = httpx.post(f"{base_url}/ask", content=body, headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 200 and r.json()["passages"]


def test_a_declared_oversized_body_is_refused_before_it_is_sent(base_url):
    with open_socket(base_url) as sock:
        sock.sendall(b"POST /ask HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 10000000\r\n\r\n" + b'{"question": "')
        status, headers, body = read_response(sock)  # only 14 of the 10 MB were sent
    assert status == 413
    assert json.loads(body)["detail"].startswith("body: larger than the 64.0 KiB limit")
    assert headers["connection"] == "close"
    assert "default-src 'self'" in headers["content-security-policy"]


def test_a_streamed_oversized_body_is_cut_off_once_it_passes_the_limit(base_url):
    piece = b"x" * 4096
    with open_socket(base_url) as sock:
        sock.sendall(b"POST /ask HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        sent = 0
        # Send 2x the limit and never the final empty chunk: a server waiting for the whole body
        # would never answer, and read_response would time out.
        while sent < 2 * LIMIT and send_quietly(sock, b"%x\r\n%s\r\n" % (len(piece), piece)):
            sent += len(piece)
        status, _, body = read_response(sock)
    assert status == 413
    assert "larger than the 64.0 KiB limit" in json.loads(body)["detail"]


def test_a_non_numeric_content_length_is_refused(base_url):
    with open_socket(base_url) as sock:
        sock.sendall(b"POST /ask HTTP/1.1\r\nHost: test\r\nContent-Length: lots\r\n\r\n")
        status, _, _ = read_response(sock)
    assert status in (400, 413)  # uvicorn's parser may refuse it before the app sees it


@pytest.mark.parametrize("path", ["/", "/?q=trade", "/view/article-ii-mandate.txt", "/ask?q=trade",
                                  "/documents", "/static/app.js", "/no-such-page", "/docsx", "/ask?q="])
def test_every_response_carries_the_security_headers(base_url, path):
    headers = httpx.get(base_url + path, timeout=60).headers
    policy = headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"


def test_the_api_docs_pages_load_nothing_from_another_origin(report_assistant):
    with TestClient(create_app(assistant=report_assistant)) as client:
        for path in ("/docs", "/redoc"):
            r = client.get(path)
            assert r.status_code == 200
            policy = r.headers["content-security-policy"]
            assert "default-src 'self'" in policy and "script-src 'self' 'unsafe-inline'" in policy
            assert "http" not in policy  # no origin besides this one
            for asset in re.findall(r'(?:src|href)="([^"]+)"', r.text):
                assert asset.startswith("/docs-assets/") or asset == REDOC_JS, asset  # from installed files
                assert client.get(asset).status_code == 200


@pytest.mark.parametrize("path", ["/", "/health", "/documents", "/view/article-ii-mandate.txt"])
def test_head_answers_like_get_without_a_body(base_url, path):
    got = httpx.get(base_url + path)
    head = httpx.head(base_url + path)
    assert head.status_code == got.status_code == 200
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == str(len(got.content)) and head.content == b""


def test_unknown_paths_get_a_page_in_a_browser_and_json_elsewhere(base_url):
    page = httpx.get(base_url + "/no/such/page", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "There is no page at /no/such/page." in page.text and '<a href="/">Ask a question</a>' in page.text
    api = httpx.get(base_url + "/no/such/page")
    assert api.status_code == 404 and api.json() == {"detail": "Not Found"}


def test_an_oversized_upload_from_the_library_form_gets_a_page_not_json(base_url):
    """A browser without JavaScript posts the form whatever the file's size: it is shown a page."""
    with open_socket(base_url) as sock:
        sock.sendall(b"POST /library/upload HTTP/1.1\r\nHost: test\r\n"
                     b"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 100000000\r\n\r\n--x\r\n")
        status, headers, body = read_response(sock)
    page = body.decode()
    assert status == 413 and headers["content-type"].startswith("text/html")
    assert "larger than the 20.0 MiB upload limit" in page and "Nothing was added" in page
    assert 'href="/library"' in page
    assert "default-src 'self'" in headers["content-security-policy"]
