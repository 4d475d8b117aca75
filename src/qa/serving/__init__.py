"""Serving: the FastAPI app (JSON routes, limits and security headers), the HTML pages and the
library with its sign-in, and the MCP tools (stdio for `qa mcp`, /mcp in the app), all over the one
`Assistant` of qa.service."""
