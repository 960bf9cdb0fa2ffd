"""Relevance feedback on the search page in a real headless Chromium: each result card gets
"relevant" / "not relevant" buttons; a click posts /feedback with the search's query id and
the card shows the service's answer (and the mark is in the query log)."""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

import dove_model.config  # noqa: F401  (first: testing.deployment alone has an import cycle)
from dove_model.feedback.files import FileStore
from dove_model.loop_params import QueryLogParams
from dove_model.serving.launch import ServiceProcess, running_service
from dove_model.testing.deployment import DemoDeployment
from dove_model.testing.feedback import feedback_env

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
# the search page's Chromium fixture ("page", guarded: nothing outside the service is reached),
# here on this module's service
page = importlib.import_module("test_browser").page


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("querylog")


@pytest.fixture(scope="module")
def service(
    synthetic_deployment: DemoDeployment, tmp_path_factory: pytest.TempPathFactory, log_dir: Path
) -> Iterator[ServiceProcess]:
    log = tmp_path_factory.mktemp("logs") / "serve.log"
    with running_service(feedback_env(synthetic_deployment, log_dir), log_file=log) as proc:
        yield proc


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
