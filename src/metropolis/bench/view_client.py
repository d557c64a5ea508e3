"""The browser of `metropolis bench view`: headless chromium, driven by Playwright, following a live view.

Run as its own process (`python -m metropolis.bench.view_client URL`) so that Playwright's Python side does not
share the measured run's interpreter: it prints `ready` once the page is up, then, when the run has ended and the
page has drawn its last frame, one JSON line with what the page saw. Debian's `chromium` is used, since
`playwright install` cannot download browsers here.
"""

from __future__ import annotations

import json
import shutil
import sys
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"


def follow(url: str, timeout_s: float = 600.0) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1500, "height": 1050})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        page.wait_for_function("window.viewer && window.viewer.ready", timeout=60_000)
        print("ready", flush=True)
        # Polled twice a second: Playwright's default polls on every animation frame, which keeps chromium drawing
        # 60 times a second and would be measured as the view's cost.
        page.wait_for_function("window.viewer.finished === true", timeout=timeout_s * 1000, polling=500)
        last = int(page.evaluate("window.viewer.history.slice(-1)[0] || 0"))
        page.wait_for_function(f"window.viewer.shown === {last - 1}", timeout=60_000)
        seen = {
            "events": len(page.evaluate("window.viewer.history")),
            "shown": int(page.evaluate("window.viewer.shown")),
            "errors": errors + list(page.evaluate("window.viewer.errors")),
        }
        browser.close()
    return seen


def main() -> None:
    print(json.dumps(follow(sys.argv[1])), flush=True)


if __name__ == "__main__":
    main()
