"""The review status on the document page, the activity page and the search page, in Chromium.

Screenshots: docs/screenshots/status.png, activity.png, search.png (with
PALIMPSEST_UPDATE_SCREENSHOTS=1; otherwise *.tmp.png beside them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import new_sqlite_url
from tests.e2e.test_browser import (
    SCREENSHOT_SUFFIX,
    SCREENSHOTS,
    SECRET,
    TIMEOUT_MS,
    Person,
    expect,
    token,
)
from tests.support.server_process import ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def site(client_dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"PALIMPSEST_CLIENT_DIST": str(client_dist), "PALIMPSEST_SECRET": SECRET}
    with ServerProcess(new_sqlite_url(tmp_path_factory.mktemp("insight-pages")),
                       env=env) as server:
        yield server


def shot(person: Person, name: str) -> None:
    person.page.evaluate("() => document.getElementById('toasts')?.replaceChildren()")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    person.page.screenshot(path=str(SCREENSHOTS / f"{name}{SCREENSHOT_SUFFIX}.png"))


def test_status_transitions_activity_and_search_in_the_browser(
        site: ServerProcess, browser: Any) -> None:
    ada_token = token("ada", "Ada Lovelace", "admin")
    grace_token = token("grace", "Grace Hopper", "write")
    doc = httpx.post(f"{site.http_url}/api/documents", json={"title": "Field guide to whales"},
                     headers={"Authorization": f"Bearer {grace_token}"}).json()["id"]
    grace = Person(browser, "Grace Hopper")
    ada = Person(browser, "Ada Lovelace")
    try:
        grace.open(f"{site.http_url}/d/{doc}?token={grace_token}")
        grace.click_end()
        grace.insert("The blue whale is the largest animal ever known.\n\n"
                     "Humpback whales sing long songs in winter.\n")
        grace.wait_saved()
        # A writer may submit, not publish.
        badge = grace.page.get_by_test_id("status-badge")
        expect(badge).to_have_text("Draft")
        expect(grace.page.get_by_test_id("status-to-published")).to_have_count(0)
        grace.page.get_by_test_id("status-note").fill("First full draft")
        grace.page.get_by_test_id("status-to-in_review").click()
        expect(badge).to_have_text("In review")
        expect(grace.page.get_by_test_id("status-to-published")).to_have_count(0)

        # The admin publishes; the writer's page learns it live and goes read-only.
        ada.open(f"{site.http_url}/d/{doc}?token={ada_token}")
        expect(ada.page.get_by_test_id("status-badge")).to_have_text("In review")
        ada.click_end()
        ada.insert("Sperm whales dive deepest.\n")
        ada.wait_saved()
        ada.page.get_by_test_id("status-to-published").click()
        expect(ada.page.get_by_test_id("status-badge")).to_have_text("Published")
        expect(badge).to_have_text("Published", timeout=TIMEOUT_MS)
        expect(grace.page.get_by_test_id("save-status")).to_have_attribute(
            "data-state", "readonly")
        grace.page.locator("summary", has_text="Review").click()
        expect(grace.page.get_by_test_id("status-history").locator("li")).to_have_count(2)
        shot(grace, "status")

        # Reopened, the writer edits again.
        grace.page.get_by_test_id("status-to-draft").click()
        expect(badge).to_have_text("Draft")
        grace.click_end()
        grace.insert("Orcas are dolphins.\n")
        grace.wait_saved()
        assert not grace.errors and not ada.errors

        # The activity page: charts and totals from the activity read model.
        grace.page.goto(f"{site.http_url}/activity")
        expect(grace.page.locator(".activity-chart canvas")).to_have_count(3)
        grace.page.get_by_test_id("activity-bucket").select_option("minute")
        expect(grace.page.get_by_test_id("activity-totals")).to_contain_text("ada")
        expect(grace.page.get_by_test_id("activity-totals")).to_contain_text("grace")
        expect(grace.page.get_by_test_id("activity-presence")).to_contain_text(doc)
        shot(grace, "activity")

        # Search: the current text, then the history of one document.
        grace.page.goto(f"{site.http_url}/search?q=whales+songs")
        hits = grace.page.get_by_test_id("search-hit")
        expect(hits).to_have_count(1)
        expect(hits.locator("mark").first).to_be_visible()
        grace.page.goto(f"{site.http_url}/search?doc={doc}&q=orcas")
        expect(grace.page.get_by_test_id("search-hit")).to_have_count(1)
        expect(grace.page.get_by_test_id("search-hit")).to_contain_text("Appeared")
        with grace.page.expect_navigation():
            grace.page.get_by_test_id("search-hit").locator("a").click()
        expect(grace.page.locator("#history-panel")).to_be_visible()
        grace.page.goto(f"{site.http_url}/search?q=whales+songs")
        expect(hits).to_have_count(1)
        shot(grace, "search")
        assert not grace.errors
    finally:
        grace.context.close()
        ada.context.close()
