"""The browser client in headless Chromium against a real server process.

Two browser contexts are two people: separate storage, separate sockets. Every wait is on a
condition with a bounded timeout; nothing sleeps and hopes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import new_sqlite_url
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.browser

from tests.e2e.conftest import ROOT  # noqa: E402

SCREENSHOTS = ROOT / "docs" / "screenshots"
# The committed screenshots change only when asked; otherwise each run writes *.tmp.png beside
# them (ignored by git), so running the tests leaves the work tree clean.
SCREENSHOT_SUFFIX = "" if os.environ.get("PALIMPSEST_UPDATE_SCREENSHOTS") == "1" else ".tmp"
TIMEOUT_MS = 15_000

import playwright.sync_api as playwright_api  # noqa: E402  (a required test dependency)

expect = playwright_api.expect
Page = playwright_api.Page


@pytest.fixture(scope="module")
def web(client_dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("browser-db")
    env = {"PALIMPSEST_CLIENT_DIST": str(client_dist)}
    with ServerProcess(new_sqlite_url(folder), env=env) as server:
        yield server


SECRET = "browser-test-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def secured(client_dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with access control on: every page needs ?token=."""
    folder = tmp_path_factory.mktemp("browser-secured-db")
    env = {"PALIMPSEST_CLIENT_DIST": str(client_dist), "PALIMPSEST_SECRET": SECRET}
    with ServerProcess(new_sqlite_url(folder), env=env) as server:
        yield server


def token(user: str, name: str, role: str) -> str:
    from server.tokens import mint

    return mint(SECRET, user, {"*": role}, 600, display_name=name)


class Person:
    """One person: a browser context with its own name, and one page in it."""

    def __init__(self, browser: Any, name: str, *, viewport: dict[str, int] | None = None) -> None:
        self.name = name
        self.context = browser.new_context(viewport=viewport or {"width": 1280, "height": 800})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.context.add_init_script(
            f"localStorage.setItem('palimpsest.name', {json.dumps(name)})"
        )
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def open(self, url: str) -> Person:
        self.page.goto(url)
        expect(self.page.get_by_test_id("conn-status")).to_have_attribute(
            "data-state", "connected", timeout=TIMEOUT_MS
        )
        self.page.wait_for_function(
            "() => window.__palimpsest && window.__palimpsest.sync.provider.synced"
        )
        return self

    def text(self) -> str:
        return str(self.page.evaluate("() => window.__palimpsest.sync.text.toString()"))

    def wait_text(self, predicate_js: str) -> None:
        """Waits until `predicate_js` (a JS expression over `t`, the text) holds."""
        script = "() => { const t = window.__palimpsest.sync.text.toString(); return %s; }"
        self.page.wait_for_function(script % predicate_js, timeout=TIMEOUT_MS)

    def wait_exact(self, expected: str) -> None:
        self.page.wait_for_function(
            "(want) => window.__palimpsest.sync.text.toString() === want",
            arg=expected,
            timeout=TIMEOUT_MS,
        )

    def click_end(self) -> None:
        self.page.locator("[data-testid=editor] .cm-content").click()
        self.page.keyboard.press("Control+End")

    def insert(self, text: str) -> None:
        """Inserts text at the cursor as one edit (as a paste would)."""
        self.page.keyboard.insert_text(text)

    def wait_saved(self) -> None:
        expect(self.page.get_by_test_id("save-status")).to_have_attribute(
            "data-state", "saved", timeout=TIMEOUT_MS
        )

    def acked_seq(self) -> int:
        """The log head the server last reported to this page in a durable ack."""
        return int(self.page.evaluate("() => window.__palimpsest.sync.headSeq"))

    def close(self) -> None:
        self.context.close()
        assert not self.errors, f"{self.name}'s page raised: {self.errors}"


@pytest.fixture
def people(browser: Any) -> Iterator[list[Person]]:
    made: list[Person] = []
    yield made
    for person in made:
        person.close()


def new_document(web: ServerProcess, title: str) -> str:
    response = httpx.post(f"{web.http_url}/api/documents", json={"title": title}, timeout=10)
    response.raise_for_status()
    return str(response.json()["id"])


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def listed_titles(web: ServerProcess) -> list[str]:
    response = httpx.get(f"{web.http_url}/api/documents", timeout=10)
    response.raise_for_status()
    return [str(item["title"]) for item in response.json()["items"]]


def server_text(web: ServerProcess, doc_id: str, min_seq: int | None = None) -> dict[str, Any]:
    params = {"min_seq": str(min_seq)} if min_seq else {}
    response = httpx.get(f"{web.http_url}/api/documents/{doc_id}", params=params, timeout=10)
    response.raise_for_status()
    return dict(response.json())


def test_the_document_list_creates_opens_and_renames_documents(
    web: ServerProcess, browser: Any, people: list[Person]
) -> None:
    ada = Person(browser, "Ada Lovelace")
    people.append(ada)
    page = ada.page
    page.goto(web.http_url + "/")
    page.get_by_test_id("new-doc-title").fill("Launch checklist")
    page.get_by_test_id("create-doc").click()
    page.wait_for_url("**/d/**")
    expect(page.get_by_test_id("conn-status")).to_have_attribute("data-state", "connected")
    expect(page.get_by_test_id("doc-title")).to_have_value("Launch checklist")
    ada.click_end()
    ada.insert("Book the venue.")
    ada.wait_saved()

    # The list is a read model: wait until it has caught up with the new document.
    wait_until(lambda: "Launch checklist" in listed_titles(web), "the document in the list")
    page.goto(web.http_url + "/")
    item = page.get_by_test_id("doc-item").filter(has_text="Launch checklist")
    expect(item).to_have_count(1)
    item.get_by_test_id("rename-doc").click()
    page.get_by_test_id("rename-input").fill("Launch checklist v2")
    page.get_by_test_id("rename-input").press("Enter")
    expect(page.get_by_test_id("doc-list")).to_contain_text("Launch checklist v2")
    wait_until(lambda: "Launch checklist v2" in listed_titles(web), "the new title in the list")
    page.reload()
    expect(page.get_by_test_id("doc-item").filter(has_text="Launch checklist v2")).to_have_count(1)
    page.get_by_role("link", name="Launch checklist v2").click()
    page.wait_for_url("**/d/**")
    ada.wait_exact("Book the venue.")


def test_two_people_edit_at_once_see_each_other_and_converge(
    web: ServerProcess, browser: Any, people: list[Person]
) -> None:
    doc_url = f"{web.http_url}/d/{new_document(web, 'Design notes')}"
    ada = Person(browser, "Ada Lovelace")
    grace = Person(browser, "Grace Hopper")
    people.extend([ada, grace])
    ada.open(doc_url)
    grace.open(doc_url)

    ada.click_end()
    ada.insert("Hello from Ada.")
    grace.wait_text("t.includes('Hello from Ada.')")
    # Both type at the same time at opposite ends; the CRDT merges the keystrokes.
    grace.click_end()
    ada.page.keyboard.press("Control+Home")
    for a, g in zip("AAAA", "gggg", strict=True):
        ada.page.keyboard.type(a)
        grace.page.keyboard.type(g)
    ada.wait_exact("AAAAHello from Ada.gggg")
    grace.wait_exact("AAAAHello from Ada.gggg")
    ada.wait_saved()
    grace.wait_saved()
    # "Saved" means committed: the read side, asked for at least the acknowledged seq, agrees.
    acked = max(ada.acked_seq(), grace.acked_seq())
    assert server_text(web, doc_url.rsplit("/", 1)[1], acked)["text"] == "AAAAHello from Ada.gggg"

    # Each sees the other in the people list and the other's named cursor in the editor.
    expect(ada.page.get_by_test_id("people-list")).to_contain_text("Grace Hopper")
    expect(grace.page.get_by_test_id("people-list")).to_contain_text("Ada Lovelace")
    expect(ada.page.locator(".cm-ySelectionInfo", has_text="Grace Hopper")).to_be_visible()
    expect(grace.page.locator(".cm-ySelectionInfo", has_text="Ada Lovelace")).to_be_visible()

    # The preview renders the shared Markdown.
    ada.click_end()
    ada.insert("\n\n## Goals\n\n- Write together, **live**\n- Keep every change\n")
    grace.wait_text("t.includes('Keep every change')")
    grace.page.get_by_test_id("mode-split").click()
    expect(grace.page.get_by_test_id("preview").locator("h2")).to_have_text("Goals")
    expect(grace.page.get_by_test_id("preview").locator("strong")).to_have_text("live")


def test_history_lists_revisions_shows_old_text_and_restores_for_everyone(
    web: ServerProcess, browser: Any, people: list[Person]
) -> None:
    doc_id = new_document(web, "History demo")
    doc_url = f"{web.http_url}/d/{doc_id}"
    ada = Person(browser, "Ada Lovelace")
    grace = Person(browser, "Grace Hopper")
    people.extend([ada, grace])
    ada.open(doc_url)
    grace.open(doc_url)

    ada.click_end()
    ada.insert("The first draft.")
    ada.wait_saved()
    grace.wait_exact("The first draft.")
    grace.click_end()
    grace.insert(" Grace adds a second sentence.")
    grace.wait_saved()
    ada.wait_exact("The first draft. Grace adds a second sentence.")

    page = grace.page
    page.get_by_test_id("history-toggle").click()
    # Writing together is one working session: one revision with both names.
    revisions = page.get_by_test_id("revision-item")
    expect(revisions).to_have_count(1)
    expect(revisions.first).to_contain_text("Ada Lovelace")
    expect(revisions.first).to_contain_text("Grace Hopper")

    # The revision shows the document at its end with its own changes marked.
    revisions.first.click()
    view = page.get_by_test_id("history-view")
    expect(view).to_have_text("The first draft. Grace adds a second sentence.",
                              timeout=TIMEOUT_MS)
    expect(page.locator(".chg-ins")).to_have_count(2)

    # On demand the slider reaches every event: the first is the document's creation
    # (empty), the second Ada's sentence.
    page.get_by_test_id("slider-mode-event").click()
    slider = page.get_by_test_id("history-slider")
    slider.focus()
    page.keyboard.press("Home")
    expect(slider).to_have_value("1")
    expect(view).to_have_text("")
    page.keyboard.press("ArrowRight")
    expect(slider).to_have_value("2")
    expect(view).to_have_text("The first draft.")
    page.wait_for_url("**?v=2")

    page.get_by_test_id("name-version-input").fill("Ada's draft")
    page.get_by_test_id("name-version-button").click()
    expect(page.get_by_test_id("version-item")).to_have_count(1)
    expect(page.get_by_test_id("version-item")).to_contain_text("Ada's draft")

    page.get_by_test_id("restore-button").click()
    page.get_by_test_id("confirm-restore").click()
    ada.wait_exact("The first draft.")
    grace.wait_exact("The first draft.")
    expect(page.get_by_test_id("editor")).to_be_visible()
    # History is kept: the restore is a new event on top, not a rewrite.
    wait_until(lambda: server_text(web, doc_id)["text"] == "The first draft.", "the read side")
    head = server_text(web, doc_id)["seq"]
    before = httpx.get(f"{web.http_url}/api/documents/{doc_id}", params={"at": str(head - 1)},
                       timeout=10).json()
    assert before["text"] == "The first draft. Grace adds a second sentence."


def test_edits_made_offline_sync_when_back_online(
    web: ServerProcess, browser: Any, people: list[Person]
) -> None:
    doc_id = new_document(web, "Offline")
    doc_url = f"{web.http_url}/d/{doc_id}"
    ada = Person(browser, "Ada Lovelace")
    grace = Person(browser, "Grace Hopper")
    people.extend([ada, grace])
    ada.open(doc_url)
    grace.open(doc_url)
    ada.click_end()
    ada.insert("Online words.")
    grace.wait_exact("Online words.")

    ada.context.set_offline(True)
    expect(ada.page.get_by_test_id("conn-status")).to_have_attribute("data-state", "offline")
    ada.click_end()
    ada.insert(" Offline words.")
    expect(ada.page.get_by_test_id("save-status")).to_have_attribute("data-state", "unsaved")
    # Grace keeps editing meanwhile; both changes survive.
    grace.click_end()
    grace.page.keyboard.press("Control+Home")
    grace.insert("Grace: ")
    ada.wait_exact("Online words. Offline words.")

    ada.context.set_offline(False)
    expect(ada.page.get_by_test_id("conn-status")).to_have_attribute("data-state", "connected")
    ada.wait_saved()
    grace.wait_exact("Grace: Online words. Offline words.")
    ada.wait_exact("Grace: Online words. Offline words.")
    acked = max(ada.acked_seq(), grace.acked_seq())
    assert server_text(web, doc_id, acked)["text"] == "Grace: Online words. Offline words."


def test_a_closed_socket_reconnects_and_resends(
    web: ServerProcess, browser: Any, people: list[Person]
) -> None:
    doc_id = new_document(web, "Dropped socket")
    doc_url = f"{web.http_url}/d/{doc_id}"
    ada = Person(browser, "Ada Lovelace")
    grace = Person(browser, "Grace Hopper")
    people.extend([ada, grace])
    ada.open(doc_url)
    grace.open(doc_url)
    ada.click_end()
    ada.insert("Before the drop.")
    grace.wait_exact("Before the drop.")
    # Close Ada's socket from the page, as a network blip would; she keeps typing.
    ada.page.evaluate("() => window.__palimpsest.sync.provider.ws.close()")
    ada.insert(" After.")
    ada.wait_saved()
    grace.wait_exact("Before the drop. After.")


HANDBOOK_INTRO = """# Team handbook

How we work together: short, honest, and kept up to date by everyone.
"""

HANDBOOK_MEETINGS = """
## Meetings

- Every meeting has an agenda, shared a day before.
- Notes go in this document, not in private files.
"""

HANDBOOK_REVIEWS = """
## Reviews

Every change is read by a second person before it ships.
"""


def test_screenshots_of_the_editor_and_the_history(
    web: ServerProcess, browser: Any, people: list[Person]
) -> None:
    """Writes docs/screenshots/editor.png and history.png from a real session (with
    PALIMPSEST_UPDATE_SCREENSHOTS=1; otherwise *.tmp.png)."""
    doc_url = f"{web.http_url}/d/{new_document(web, 'Team handbook')}"
    ada = Person(browser, "Ada Lovelace")
    grace = Person(browser, "Grace Hopper")
    people.extend([ada, grace])
    ada.open(doc_url)
    grace.open(doc_url)

    ada.click_end()
    ada.insert(HANDBOOK_INTRO)
    ada.wait_saved()
    grace.wait_text("t.includes('kept up to date')")
    grace.click_end()
    grace.insert(HANDBOOK_MEETINGS)
    grace.wait_saved()
    ada.wait_text("t.includes('not in private files')")
    grace.page.get_by_test_id("history-toggle").click()
    grace.page.get_by_test_id("name-version-input").fill("First outline")
    grace.page.get_by_test_id("name-version-button").click()
    expect(grace.page.get_by_test_id("version-item")).to_have_count(1)
    grace.page.get_by_role("button", name="Close history").click()

    ada.click_end()
    ada.insert(HANDBOOK_REVIEWS)
    # Ada rewrites a phrase, then leaves a word selected: Grace sees her selection.
    ada.page.keyboard.press("Control+Home")
    for _ in range(2):
        ada.page.keyboard.press("ArrowDown")
    ada.page.keyboard.press("End")
    for _ in range(len("kept up to date by everyone.")):
        ada.page.keyboard.press("Shift+ArrowLeft")
    ada.insert("improved by anyone who spots a gap.")
    ada.wait_saved()
    grace.wait_text("t.includes('spots a gap') && t.includes('second person')")
    ada.page.keyboard.press("Home")
    for _ in range(len("How we work together: short, ")):
        ada.page.keyboard.press("ArrowRight")
    for _ in range(len("honest")):
        ada.page.keyboard.press("Shift+ArrowRight")
    expect(grace.page.locator(".cm-ySelection").first).to_be_visible()
    grace.click_end()
    grace.page.get_by_test_id("mode-split").click()
    expect(grace.page.get_by_test_id("preview").locator("h2")).to_have_count(2)
    clear_toasts = "() => document.getElementById('toasts').replaceChildren()"
    grace.page.evaluate(clear_toasts)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    grace.page.screenshot(path=str(SCREENSHOTS / f"editor{SCREENSHOT_SUFFIX}.png"))

    # History is the read side: let it catch up with Ada's last acknowledged edit first.
    server_text(web, doc_url.rsplit("/", 1)[1], ada.acked_seq())
    grace.page.get_by_test_id("history-toggle").click()
    grace.page.get_by_test_id("version-item").click()
    grace.page.get_by_test_id("compare-select").select_option("now")
    view = grace.page.get_by_test_id("history-view")
    expect(view).to_contain_text("improved by anyone who spots a gap.")
    expect(grace.page.locator(".chg-del").first).to_contain_text("kept up to date")
    expect(grace.page.locator(".chg-del")).not_to_have_count(0)
    expect(grace.page.locator(".chg-ins")).not_to_have_count(0)
    grace.page.evaluate(clear_toasts)
    grace.page.screenshot(path=str(SCREENSHOTS / f"history{SCREENSHOT_SUFFIX}.png"))


def test_a_reader_sees_live_edits_but_cannot_change_the_document(
    secured: ServerProcess, browser: Any, people: list[Person]
) -> None:
    admin, writer, reader = (token("ada", "Ada Lovelace", "admin"),
                             token("grace", "Grace Hopper", "write"),
                             token("linus", "Linus Reader", "read"))
    response = httpx.post(f"{secured.http_url}/api/documents", json={"title": "Secured"},
                          headers={"Authorization": f"Bearer {admin}"}, timeout=10)
    response.raise_for_status()
    doc_url = f"{secured.http_url}/d/{response.json()['id']}"
    grace = Person(browser, "ignored: the token names her")
    linus = Person(browser, "ignored too")
    people.extend([grace, linus])
    grace.open(f"{doc_url}?token={writer}")
    linus.open(f"{doc_url}?token={reader}")
    expect(grace.page.get_by_test_id("name-input")).to_have_value("Grace Hopper")
    expect(linus.page.get_by_test_id("save-status")).to_have_attribute("data-state", "readonly")

    grace.click_end()
    grace.insert("Written by a writer.")
    grace.wait_saved()
    linus.wait_exact("Written by a writer.")
    expect(linus.page.get_by_test_id("people-list")).to_contain_text("Grace Hopper")

    # The reader's keystrokes go nowhere, locally or on the server.
    linus.click_end()
    linus.page.keyboard.type("vandalism")
    grace.click_end()
    grace.insert(" More.")
    linus.wait_exact("Written by a writer. More.")
    assert "vandalism" not in grace.text()

    # Restoring is a write (the API requires write): the writer may, the reader sees the
    # button disabled, and why.
    grace.page.get_by_test_id("history-toggle").click()
    grace.page.get_by_test_id("revision-item").last.click()
    expect(grace.page.get_by_test_id("history-view")).to_be_visible()
    expect(grace.page.get_by_test_id("history-panel")).not_to_contain_text(
        "Only people who may edit")
    linus.page.get_by_test_id("history-toggle").click()
    linus.page.get_by_test_id("revision-item").last.click()
    expect(linus.page.get_by_test_id("history-view")).to_be_visible()
    expect(linus.page.get_by_test_id("restore-button")).to_be_disabled()
    expect(linus.page.get_by_test_id("history-panel")).to_contain_text("Only people who may edit")
