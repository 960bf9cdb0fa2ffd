"""The search page in a real headless Chromium (Debian's, driven by Playwright; nothing is
downloaded): text search shows a grid of thumbnails with scores, an upload lists captions,
and a bad query shows the server's message. A screenshot is kept as a test artifact."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from dove_model.serving.launch import ServiceProcess
from dove_model.testing.browser import CHROMIUM, service_page
from dove_model.testing.browser import keep_screenshot as keep
from dove_model.testing.deployment import DemoDeployment, serving

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "reports" / "screenshots"


@pytest.fixture(scope="module")
def deployment(synthetic_deployment: DemoDeployment) -> DemoDeployment:
    return synthetic_deployment


@pytest.fixture(scope="module")
def service(
    deployment: DemoDeployment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    with serving(deployment, tmp_path_factory.mktemp("logs") / "serve.log") as proc:
        yield proc


@pytest.fixture(scope="module")
def page(service: ServiceProcess) -> Iterator[Page]:
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not installed (run `make system-deps`)")
    with service_page(service.url, service.page_url) as tab:
        yield tab


def keep_screenshot(tab: Page, tmp_path: Path, name: str) -> Path:
    return keep(tab, tmp_path, name, SCREENSHOTS)


def test_page_shows_model_info(page: Page) -> None:
    expect(page.locator("#info")).to_contain_text("24 images", timeout=15_000)
    expect(page.locator("#info")).to_contain_text("DOVE)")  # the family of the champion


def test_text_search_shows_a_grid_of_scored_thumbnails(page: Page, tmp_path: Path) -> None:
    page.fill("#query", "a blue lake surrounded by land")
    page.fill("#k", "8")
    page.click("#text-form button")
    cards = page.locator("[data-testid=result]")
    expect(cards).to_have_count(8, timeout=15_000)
    expect(cards.first).to_contain_text("score")
    page.wait_for_function(
        "[...document.querySelectorAll('#results img')]"
        ".every(i => i.complete && i.naturalWidth > 0)",
        timeout=15_000,
    )
    shot = keep_screenshot(page, tmp_path, "search_page.png")
    assert shot.stat().st_size > 5_000


def test_upload_lists_captions(page: Page, deployment: DemoDeployment) -> None:
    page.set_input_files("#upload", str(deployment.dataset_dir / "images" / "desert_1.png"))
    page.click("#image-form button")
    captions = page.locator("[data-testid=caption]")
    expect(captions).to_have_count(5, timeout=15_000)
    assert captions.first.inner_text().strip()


def test_an_error_is_shown_not_swallowed(page: Page, tmp_path: Path) -> None:
    page.fill("#k", "5")
    # the input's maxlength stops a typist; a script can still send more, the server says no
    page.eval_on_selector("#query", "el => el.removeAttribute('maxlength')")
    page.fill("#query", "x " * 300)
    page.click("#text-form button")
    expect(page.locator("#text-status")).to_contain_text("maximum is 500", timeout=15_000)
    keep_screenshot(page, tmp_path, "search_page_error.png")


def test_unknown_query_words_are_shown(page: Page) -> None:
    page.fill("#k", "3")
    page.fill("#query", "a blue zzqx lake")
    page.click("#text-form button")
    expect(page.locator("#text-status")).to_contain_text(
        "words the model does not know (ignored): zzqx", timeout=15_000
    )
