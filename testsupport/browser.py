"""A real browser for tests: Debian's Chromium driven by Playwright, watching what a page does.

Playwright's own browser download is not used (it cannot be fetched here): `launch_chromium()`
starts the `chromium` on PATH (`scripts/test` installs Debian's package) with flags that keep it
from calling home. `PageWatch` opens pages in a fresh browser context and records everything a
test asserts is absent: console errors, uncaught page errors, Content-Security-Policy violations
(the `securitypolicyviolation` event, reported from every document the page loads), failed
requests and requests to any host other than the server under test. Screenshots go to
`artifacts/screenshots/` (git-ignored).

The fixtures `browser` and `page_watch` in the root conftest wrap these.
"""

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Browser, BrowserContext, Page, Playwright

from testsupport.servers import ROOT

SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Runs in every document before its own scripts (Playwright injects it outside the page's CSP).
_REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__reportCspViolation(
    `${event.effectiveDirective} blocked ${event.blockedURI || "inline"} ` +
    `(${event.sourceFile || location.href}:${event.lineNumber})`
  );
});
"""


def launch_chromium(playwright: Playwright) -> Browser:
    executable = shutil.which("chromium")
    if executable is None:
        raise RuntimeError(
            "No `chromium` on PATH: the browser tests drive Debian's Chromium "
            "(scripts/test installs it: apt-get install chromium)."
        )
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)


@dataclass
class PageWatch:
    """Pages of one browser context on `base_url`, and what went wrong on them."""

    browser: Browser
    base_url: str
    name: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    screenshots: list[Path] = field(default_factory=list)
    context: BrowserContext | None = None
    page: Page | None = None

    def open(self) -> Page:
        self.context = self.browser.new_context(base_url=self.base_url, viewport=VIEWPORT)
        self.context.expose_function("__reportCspViolation", self._on_csp_violation)
        self.context.add_init_script(_REPORT_VIOLATIONS)
        self.page = self.context.new_page()
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        self.page.on("request", self._on_request)
        self.page.on(
            "requestfailed", lambda r: self.failed_requests.append(f"{r.url}: {r.failure}")
        )
        return self.page

    def close(self) -> None:
        if self.context is not None:
            self.context.close()

    def settle(self) -> None:
        """Wait until the page has made its requests (late ones, such as images, included)."""
        self.page.wait_for_load_state("networkidle")
        self.page.wait_for_timeout(300)

    def problems(self) -> dict[str, list[str]]:
        """Everything that went wrong so far, by kind (empty lists when the pages were clean)."""
        return {
            "console errors": self.console_errors,
            "page errors": self.page_errors,
            "CSP violations": self.csp_violations,
            "requests to other hosts": self.foreign_requests,
            "failed requests": self.failed_requests,
        }

    def screenshot(self, label: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{_slug(self.name)}-{_slug(label)}.png"
        self.page.screenshot(path=str(path), full_page=False)
        self.screenshots.append(path)
        print(f"screenshot: {path}")
        return path

    def _on_csp_violation(self, report: str) -> None:
        self.csp_violations.append(report)

    def _on_console(self, message) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} ({message.location.get('url')})")
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.csp_violations.append(message.text)

    def _on_request(self, request) -> None:
        url = urlsplit(request.url)
        if url.scheme in ("data", "blob", "about"):
            return
        if f"{url.scheme}://{url.netloc}" != self.base_url:
            self.foreign_requests.append(request.url)


VIEWPORT = {"width": 1280, "height": 800}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:80]
