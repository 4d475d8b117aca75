"""axe-core accessibility checks for the browser tests.

axe-core is the npm package pinned in tests/package.json; `make test` installs it with
`npm ci --prefix tests`. The app's Content-Security-Policy refuses inline scripts, so the page under
test must come from a browser context opened with `new_context(bypass_csp=True)`: the policy is
bypassed in the test's browser, never relaxed in the app.

    from axe import assert_no_axe_violations
    assert_no_axe_violations(page, "home page")
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from playwright.sync_api import Page

AXE_JS = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.1 A and AA plus axe's best practices (landmarks, one h1, headings in order).
RULE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


def axe_source() -> str:
    """axe.min.js; fails under CI (CI=true) and skips elsewhere when it is not installed."""
    if not AXE_JS.exists():
        message = f"axe-core is not installed at {AXE_JS}: run `npm ci --prefix tests` (make test does)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return AXE_JS.read_text(encoding="utf-8")


def axe_violations(page: Page) -> list[dict]:
    """axe-core's violations on the page as it is now (rule id, impact, help, the offending nodes)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=axe_source())
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            raise AssertionError("axe-core did not load: open the page in new_context(bypass_csp=True), "
                                 "with JavaScript enabled")
    result = page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})",
        RULE_TAGS,
    )
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [{"target": n["target"], "summary": n.get("failureSummary", "")} for n in v["nodes"]]}
        for v in result["violations"]
    ]


def assert_no_axe_violations(page: Page, name: str) -> None:
    """Fail with axe-core's own description of each violation on the page, naming the page."""
    found = axe_violations(page)
    assert not found, f"axe-core found {len(found)} violation(s) on {name} ({page.url}):\n" + json.dumps(
        found, indent=2)
