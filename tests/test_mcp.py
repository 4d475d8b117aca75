"""MCP: `qa mcp` over stdio and /mcp on a live `qa serve --workers 2`, each driven by the SDK's own client.

One stdio server (it builds the index, as `qa serve` would) and one live server for the module; every
tool and resource test runs over both transports and compares with what the HTTP API answers.
"""

from __future__ import annotations

import os
import shutil
import sys
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest
from anyio.from_thread import start_blocking_portal
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError

from conftest import FIXTURES
from qa.serving.mcp_http import allowed_origin
from qa.serving.mcp_tools import build_server
from server import live_server

QUESTIONS = [
    "What does the 2019 digital trade agreement ban?",
    "Where do the two countries co-finance ports and undersea cables?",
    "How do I bake sourdough bread at home?",
]
IN_FOLDER = "notes/digital-trade.txt"
TOOLS = {"ask", "search", "list_documents", "read_document"}


class Session:
    """An SDK `Client` used from synchronous tests: it lives in one task of a blocking portal's loop."""

    def __init__(self, portal, client: Client) -> None:
        self.portal, self.client = portal, client

    def call(self, tool: str, **arguments):
        return self.portal.call(self.client.call_tool, tool, arguments)

    def __getattr__(self, name: str):
        method = getattr(self.client, name)
        return lambda *args: self.portal.call(method, *args)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A small corpus with a document in a subfolder, and no index yet."""
    root = tmp_path_factory.mktemp("mcp")
    (root / "corpus" / "notes").mkdir(parents=True)
    shutil.copy(FIXTURES / "web-corpus" / "alliance-note.md", root / "corpus")
    shutil.copy(FIXTURES / "web-corpus" / IN_FOLDER, root / "corpus" / "notes")
    shutil.copy(FIXTURES / "metadata" / "harbour-logistics.txt", root / "corpus")
    return root


@pytest.fixture(scope="module")
def stdio(root):
    """`qa mcp` as a child process, as Claude Desktop starts it; yields (session, stray stdout, stderr file)."""
    stray: list = []  # lines of stdout the client could not read as MCP

    async def keep_stray(message) -> None:
        if isinstance(message, Exception):
            stray.append(message)

    params = StdioServerParameters(command=sys.executable, args=[
        "-m", "qa.cli", "mcp", "--corpus", str(root / "corpus"), "--index", str(root / "index")], env=dict(os.environ))
    stderr_path = root / "mcp-stderr.log"
    with ExitStack() as stack:
        stderr = stack.enter_context(open(stderr_path, "w"))
        portal = stack.enter_context(start_blocking_portal())

        @asynccontextmanager
        async def connected():
            async with Client(stdio_client(params, errlog=stderr), message_handler=keep_stray) as client:
                yield client

        client = stack.enter_context(portal.wrap_async_context_manager(connected()))
        yield Session(portal, client), stray, stderr_path


@pytest.fixture(scope="module")
def live(root, stdio):
    """`qa serve --workers 2` on the index `qa mcp` built: stateless /mcp requests land on either worker."""
    with live_server(root / "corpus", root / "index", "--workers", "2") as base:
        yield base


@pytest.fixture(scope="module")
def http(live):
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(Client(f"{live}/mcp")) as client:
        yield Session(portal, client)


@pytest.fixture(params=["stdio", "http"])
def mcp(request) -> Session:
    session = request.getfixturevalue(request.param)
    return session[0] if request.param == "stdio" else session


@pytest.fixture(scope="module")
def api(live):
    with httpx.Client(base_url=live, timeout=60) as client:
        yield client


def without_time(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "took_ms"}


def test_the_four_tools_are_listed_with_descriptions_and_typed_parameters(mcp):
    tools = {t.name: t for t in mcp.list_tools().tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert len(tool.description) > 80 and tool.output_schema
        assert tool.annotations.read_only_hint is True
    ask = tools["ask"].input_schema
    assert ask["required"] == ["question"] and ask["properties"]["question"]["type"] == "string"
    k = ask["properties"]["k"]
    assert (k["type"], k["default"], k["minimum"], k["maximum"]) == ("integer", 5, 1, 20)
    assert tools["search"].input_schema["properties"]["k"]["default"] == 10
    assert set(tools["read_document"].input_schema["properties"]) == {"doc_id", "start", "end"}
    assert "[n]" in tools["ask"].description and "abstained" in tools["ask"].description


@pytest.mark.parametrize("question", QUESTIONS)
def test_ask_answers_exactly_as_post_ask_does(mcp, api, question):
    result = mcp.call("ask", question=question, k=3)
    body = api.post("/ask", json={"question": question, "k": 3}).json()
    assert not result.is_error
    assert without_time(result.structured_content) == without_time(body)
    text = result.content[0].text  # the readable form a model reads: the answer, then each cited passage
    assert text.startswith(body["answer"]) and all(f"[{p['rank']}] {p['title']}" in text for p in body["passages"])


def test_ask_within_documents_and_search_give_the_passages_the_api_does(mcp, api):
    question = QUESTIONS[0]
    only = mcp.call("ask", question=question, documents=[IN_FOLDER]).structured_content
    assert {p["doc_id"] for p in only["passages"]} == {IN_FOLDER}
    assert without_time(only) == without_time(
        api.post("/ask", json={"question": question, "documents": [IN_FOLDER]}).json())
    found = mcp.call("search", query=question, k=4)
    assert not found.is_error and found.structured_content["query"] == question
    assert found.structured_content["passages"] == api.post("/ask", json={"question": question, "k": 4}).json()[
        "passages"]


def test_documents_are_listed_and_read_whole_or_by_a_citation_s_range(mcp, api):
    listed = mcp.call("list_documents").structured_content["documents"]
    expected = [{"doc_id": d["doc_id"], "title": d["title"], "authors": d["authors"], "publisher": d["publisher"],
                 "date": d["date"], "passages": d["chunks"]} for d in api.get("/documents").json()]
    assert listed == expected and IN_FOLDER in {d["doc_id"] for d in listed}
    harbour = next(d for d in listed if d["doc_id"] == "harbour-logistics.txt")
    assert harbour["authors"] == ["Aiko Mori", "Daniel Reyes"] and harbour["date"] == "2021-03-03"

    cited = mcp.call("ask", question=QUESTIONS[0]).structured_content["passages"][0]
    part = mcp.call("read_document", doc_id=cited["doc_id"], start=cited["start"], end=cited["end"])
    assert part.structured_content["text"] == cited["text"] == part.content[0].text
    whole = mcp.call("read_document", doc_id=IN_FOLDER).structured_content
    document = api.get(f"/documents/{IN_FOLDER}").json()
    assert whole["text"] == document["text"] and (whole["start"], whole["end"]) == (0, len(document["text"]))


@pytest.mark.parametrize(("tool", "arguments", "request_"), [
    ("ask", {"question": ""}, {"question": ""}),
    ("ask", {"question": " \n\t"}, {"question": " \n\t"}),
    ("ask", {"question": "x" * 2001}, {"question": "x" * 2001}),
    ("ask", {"question": "trade", "k": 0}, {"question": "trade", "k": 0}),
    ("ask", {"question": "trade", "k": 21}, {"question": "trade", "k": 21}),
    ("ask", {"question": "trade", "documents": ["no-such.txt"]}, {"question": "trade", "documents": ["no-such.txt"]}),
    ("ask", {"question": "trade", "documents": []}, {"question": "trade", "documents": []}),
    ("search", {"query": "trade", "k": 21}, {"question": "trade", "k": 21}),
])
def test_bad_input_is_a_tool_error_with_the_api_s_message_and_the_server_keeps_serving(mcp, api, tool, arguments,
                                                                                       request_):
    result = mcp.call(tool, **arguments)
    response = api.post("/ask", json=request_)
    assert response.status_code == 422
    assert result.is_error and result.content[0].text == response.json()["detail"]
    assert result.structured_content is None
    assert not mcp.call("ask", question=QUESTIONS[0]).is_error  # still serving


def test_bad_document_arguments_are_tool_errors_naming_what_to_fix(mcp, api):
    search = mcp.call("search", query="   ")
    assert search.is_error and search.content[0].text == "query: must not be empty"
    unknown = mcp.call("read_document", doc_id="no-such.txt")
    assert unknown.is_error and unknown.content[0].text == api.get("/documents/no-such.txt").json()["detail"]
    length = len(api.get(f"/documents/{IN_FOLDER}").json()["text"])
    for start, end, named in [(-1, None, "start"), (length + 1, None, "start"), (10, 5, "end"),
                              (0, length + 1, "end")]:
        result = mcp.call("read_document", doc_id=IN_FOLDER, start=start, end=end)
        assert result.is_error and result.content[0].text.startswith(f"{named}: must be between")
        assert str(length) in result.content[0].text
    assert not mcp.call("list_documents").is_error


def test_each_document_is_a_resource_and_a_doc_id_with_a_folder_reads(mcp, api):
    uris = {str(r.uri): r for r in mcp.list_resources().resources}
    assert set(uris) == {f"qa://documents/{d['doc_id']}" for d in api.get("/documents").json()}
    assert uris[f"qa://documents/{IN_FOLDER}"].mime_type == "text/plain"
    (content,) = mcp.read_resource(f"qa://documents/{IN_FOLDER}").contents
    assert content.text == api.get(f"/documents/{IN_FOLDER}").json()["text"]
    [template] = mcp.list_resource_templates().resource_templates
    assert template.uri_template == "qa://documents/{+doc_id}"
    with pytest.raises(MCPError, match="no document 'notes/none.txt' in the index"):
        mcp.read_resource("qa://documents/notes/none.txt")
    assert not mcp.call("list_documents").is_error


def test_qa_mcp_built_the_index_on_stderr_and_wrote_nothing_but_mcp_on_stdout(stdio):
    session, stray, stderr = stdio
    session.call("ask", question=QUESTIONS[1])  # the model has loaded: whatever it prints has been printed
    assert stray == []
    log = stderr.read_text()
    assert "building the index" in log and "3 added" in log


def test_mcp_refuses_a_page_of_another_origin(live, api):
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"accept": "application/json, text/event-stream"}
    foreign = api.post("/mcp", json=listing, headers={**headers, "origin": "https://attacker.example"})
    assert foreign.status_code == 403 and "origin" in foreign.json()["detail"]
    assert "tools" not in foreign.text
    for origin in (None, live):  # an MCP client sends no Origin; a page of this server is its own origin
        sent = headers if origin is None else {**headers, "origin": origin}
        listed = api.post("/mcp", json=listing, headers=sent)
        assert listed.status_code == 200 and {t["name"] for t in listed.json()["result"]["tools"]} == TOOLS
    assert "/mcp" not in api.get("/openapi.json").json()["paths"]
    assert "x-content-type-options" in foreign.headers  # the app's security headers cover /mcp too


@pytest.mark.parametrize(("origin", "host", "allowed"), [
    (None, "127.0.0.1:8000", True),
    ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
    ("http://localhost:8000", "localhost:8000", True),
    ("http://[::1]:8000", "[::1]:8000", True),
    ("http://192.168.1.20:8000", "192.168.1.20:8000", True),
    ("http://127.0.0.1:3000", "127.0.0.1:8000", False),  # another local web app
    ("http://evil.example:8000", "evil.example:8000", False),  # DNS rebinding: Origin and Host agree
    ("null", "127.0.0.1:8000", False),
    ("http://127.0.0.1:8000", None, False),
])
def test_origin_rule(origin, host, allowed):
    assert allowed_origin(origin, host) is allowed


def test_without_an_index_every_tool_and_resource_says_how_to_build_one(fresh_assistant):
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(
            Client(build_server(fresh_assistant))) as client:
        session = Session(portal, client)
        for tool, arguments in [("ask", {"question": "trade"}), ("search", {"query": "trade"}),
                                ("list_documents", {}), ("read_document", {"doc_id": "a.txt"})]:
            result = session.call(tool, **arguments)
            assert result.is_error and "run `qa index`" in result.content[0].text
        assert session.list_resources().resources == []
        with pytest.raises(MCPError, match="run `qa index`"):
            session.read_resource("qa://documents/a.txt")
