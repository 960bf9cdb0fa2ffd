"""Relevance feedback on the search page in a real headless Chromium: each result card gets
"relevant" / "not relevant" buttons; a click posts /feedback with the search's query id and
the card shows the service's answer (and the mark is in the query log)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, Route, expect, sync_playwright

from dove_model.feedback.files import FileStore
from dove_model.loop_params import QueryLogParams
from dove_model.serving.launch import ServiceProcess, running_service, serving_env
from dove_model.testing.deployment import DemoDeployment

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("querylog")


@pytest.fixture(scope="module")
def service(
    synthetic_deployment: DemoDeployment, tmp_path_factory: pytest.TempPathFactory, log_dir: Path
) -> Iterator[ServiceProcess]:
    env = serving_env(
        model_tag=synthetic_deployment.model_tag,
        index_dir=synthetic_deployment.index_dir,
        bentoml_home=synthetic_deployment.bentoml_home,
    )
    for name in ("DOVE_MODEL_DIR", "DOVE_API_KEY"):
        env.pop(name, None)
    env["DOVE_QUERYLOG_DIR"] = str(log_dir)
    log = tmp_path_factory.mktemp("logs") / "serve.log"
    with running_service(env, log_file=log) as proc:
        yield proc


@pytest.fixture(scope="module")
def page(service: ServiceProcess) -> Iterator[Page]:
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not installed (run `make system-deps`)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            outside: list[str] = []

            def guard(route: Route) -> None:
                if route.request.url.startswith(service.url):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            context = browser.new_context(viewport={"width": 1200, "height": 900})
            context.route("**/*", guard)
            tab = context.new_page()
            tab.goto(service.page_url)
            yield tab
            assert not outside, f"the page tried to reach {outside}"
        finally:
            browser.close()


def test_marking_results_posts_feedback_that_reaches_the_log(page: Page, log_dir: Path) -> None:
    page.fill("#query", "a blue lake surrounded by land")
    page.fill("#k", "4")
    page.click("#text-form button")
    cards = page.locator("[data-testid=result]")
    expect(cards).to_have_count(4, timeout=15_000)
    expect(page.locator("[data-testid=mark-relevant]")).to_have_count(4)
    first, second = cards.nth(0), cards.nth(1)
    first.locator("[data-testid=mark-relevant]").click()
    expect(first.locator("[data-testid=feedback-status]")).to_have_text("marked relevant")
    expect(first).to_have_attribute("data-feedback", "relevant")
    second.locator("[data-testid=mark-not-relevant]").click()
    expect(second.locator("[data-testid=feedback-status]")).to_have_text("marked not relevant")
    query_id = page.locator("#results").get_attribute("data-query-id")
    ids = [first.locator("img").get_attribute("alt"), second.locator("img").get_attribute("alt")]
    store = FileStore(log_dir, QueryLogParams())
    for _ in range(100):
        marks = [(f.image_id, f.relevant) for f in store.feedback() if f.query_id == query_id]
        if len(marks) == 2:
            break
        time.sleep(0.1)
    assert marks == [(ids[0], True), (ids[1], False)]


def test_a_refused_mark_shows_the_service_message(page: Page) -> None:
    page.fill("#query", "green farmland")
    page.fill("#k", "2")
    page.click("#text-form button")
    cards = page.locator("[data-testid=result]")
    expect(cards).to_have_count(2, timeout=15_000)
    expect(cards.first.locator("[data-testid=mark-relevant]")).to_have_count(1)
    page.eval_on_selector("#results", "el => { el.dataset.queryId = '0'.repeat(32); }")
    cards.first.locator("[data-testid=mark-relevant]").click()
    status = cards.first.locator("[data-testid=feedback-status]")
    expect(status).to_contain_text("unknown or expired query_id")
    expect(status).to_have_class("feedback-status error")
