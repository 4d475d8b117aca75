"""Serving: the FastAPI app (JSON routes, limits and security headers), the HTML pages and the
library with its sign-in, all over the one `Assistant` of qa.service."""
