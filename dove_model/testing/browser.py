"""The search page in a real headless Chromium (Debian's, driven by Playwright; nothing is
downloaded), allowed to reach the service and nothing else."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from playwright.sync_api import Page, Route, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@contextlib.contextmanager
def service_page(base_url: str, page_url: str, width: int = 1200) -> Iterator[Page]:
    """A tab on ``page_url``; a request to any host but ``base_url`` is aborted and fails the
    block when it ends."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport={"width": width, "height": 900})
            outside: list[str] = []

            def guard(route: Route) -> None:
                url = route.request.url
                if url.startswith(base_url):
                    route.continue_()
                else:
                    outside.append(url)
                    route.abort()

            context.route("**/*", guard)
            tab = context.new_page()
            tab.goto(page_url)
            yield tab
            assert not outside, f"the page tried to reach {outside}"
        finally:
            browser.close()


def keep_screenshot(tab: Page, tmp_path: Path, name: str, keep_dir: Path) -> Path:
    """A full-page screenshot in ``tmp_path``, copied to ``keep_dir`` (a test artifact)."""
    shot = tmp_path / name
    tab.screenshot(path=str(shot), full_page=True)
    keep_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(shot, keep_dir / name)
    return shot
