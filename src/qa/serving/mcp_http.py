"""/mcp in the FastAPI app: the MCP tools over streamable HTTP, stateless, for clients on other machines.

Stateless (every POST carries a whole exchange, answered as JSON), so any `--workers` process can answer
any request. Read-only and without a token, like /ask. Browsers are kept out by the Origin header, as the
MCP specification asks (below).
"""

from __future__ import annotations

import ipaddress
import json
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from qa.service import Assistant

PATH = "/mcp"


def allowed_origin(origin: str | None, host: str | None) -> bool:
    """Whether a request with this Origin header may use /mcp.

    No Origin: not a browser (MCP clients, curl), allowed. Otherwise only this server's own address,
    written as an IP address or `localhost`: a web page elsewhere must not drive the tools from a visitor's
    browser, and a name is refused too, since a DNS-rebinding page has its Origin equal to its Host."""
    if origin is None:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname or not host or parts.netloc != host:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        ipaddress.ip_address(parts.hostname)
    except ValueError:
        return False
    return True


class MCPEndpoint:
    """The ASGI app behind /mcp. `running()` belongs in the app's lifespan: each start gets a new MCP
    session manager (the SDK runs one only once), so a test may start the same app twice."""

    def __init__(self, assistant: Assistant) -> None:
        self.assistant = assistant
        self._handler = None

    @asynccontextmanager
    async def running(self):
        # Imported here: the SDK takes about a second to import, which `import qa.serving.api` need not pay.
        from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
        from mcp.server.transport_security import TransportSecuritySettings

        from qa.serving.mcp_tools import build_server

        server = build_server(self.assistant)
        # The SDK's own Host/Origin check only takes fixed lists (it would refuse a client that reaches
        # `qa serve --host 0.0.0.0` by the machine's name); allowed_origin above is the check instead.
        server.streamable_http_app(
            streamable_http_path=PATH, stateless_http=True, json_response=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        async with server.session_manager.run():
            self._handler = StreamableHTTPASGIApp(server.session_manager)
            try:
                yield
            finally:
                self._handler = None

    async def __call__(self, scope, receive, send) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin")
        if not allowed_origin(origin, headers.get("host")):
            return await _json(send, 403, f"origin: requests from {origin} are refused; /mcp answers MCP clients "
                                          "(which send no Origin header) and pages of this server only")
        if self._handler is None:
            return await _json(send, 503, "mcp: the server is starting or stopping; retry")
        await self._handler(scope, receive, send)


async def _json(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
