"""The history panel in headless Chromium, with two and three people (issue 12): working
sessions with every name, a revision's own changes by author with next/previous change,
comparing two points, the time slider (modes, markers, dragging, playback), named versions
(rename, delete, permanent URL, copy, download), a restore every person is told about with a
one-click undo, live titles and names, distinct colours; and the screenshots of it."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.test_browser import (
    SCREENSHOT_SUFFIX,
    SCREENSHOTS,
    TIMEOUT_MS,
    Person,
    expect,
    new_document,
    people,  # noqa: F401  (a fixture)
    server_text,
    wait_until,
    web,  # noqa: F401  (a fixture)
)
from tests.support.server_process import ServerProcess

CLEAR_TOASTS = "() => document.getElementById('toasts').replaceChildren()"
LONG_INTRO = "".join(f"Paragraph {i} of the report says something worth keeping.\n\n"
                     for i in range(60))


def head(web: ServerProcess, doc_id: str) -> int:  # noqa: F811
    events = httpx.get(f"{web.http_url}/api/documents/{doc_id}/events",
                       params={"limit": 500}, timeout=10).json()
    return int(events["seq"])


def settled(web: ServerProcess, doc_id: str) -> int:  # noqa: F811
    seq = head(web, doc_id)
    server_text(web, doc_id, seq)
    return seq


def test_a_session_shows_its_own_changes_by_author_and_a_restore_is_told_to_everyone(
    web: ServerProcess, browser: Any, people: list[Person]  # noqa: F811
) -> None:
    doc_id = new_document(web, "Field report")
    doc_url = f"{web.http_url}/d/{doc_id}"
    ada, grace, linus = (Person(browser, "Ada Lovelace"), Person(browser, "Grace Hopper"),
                         Person(browser, "Linus Torvalds"))
    people.extend([ada, grace, linus])
    for person in (ada, grace, linus):
        person.open(doc_url)

    ada.click_end()
    ada.insert(LONG_INTRO)
    ada.wait_saved()
    grace.wait_text("t.includes('Paragraph 59')")
    # A named version closes the first session.
    httpx.post(f"{web.http_url}/api/documents/{doc_id}/versions",
               json={"seq": settled(web, doc_id), "name": "Long intro"}, timeout=10)
    # Ada and Grace then write together, far below the top: one session with both names.
    grace.click_end()
    grace.insert("Grace writes the findings.")
    grace.wait_saved()
    ada.wait_text("t.includes('findings')")
    ada.click_end()
    ada.insert(" Ada adds the numbers.")
    ada.wait_saved()
    grace.wait_text("t.includes('numbers')")
    server_text(web, doc_id, ada.acked_seq())

    page = linus.page
    page.get_by_test_id("history-toggle").click()
    newest = page.get_by_test_id("revision-item").first
    expect(newest).to_contain_text("Grace Hopper")
    expect(newest).to_contain_text("Ada Lovelace")
    newest.click()
    view = page.get_by_test_id("history-view")
    # The first heavy read may start the server's read worker: the longer wait.
    expect(view).to_contain_text("Grace writes the findings. Ada adds the numbers.",
                                 timeout=TIMEOUT_MS)
    marks = page.locator(".chg-ins")
    expect(marks).to_have_count(2)
    # Each author's words in that author's colour, and the two colours differ.
    colours = [marks.nth(i).evaluate("e => getComputedStyle(e).getPropertyValue('--author')")
               for i in range(2)]
    assert colours[0] != colours[1], colours
    expect(page.get_by_test_id("legend")).to_contain_text("Grace Hopper")
    expect(page.get_by_test_id("legend")).to_contain_text("Ada Lovelace")
    # The changes are far below the fold: "Next" scrolls to each.
    expect(page.get_by_test_id("change-counter")).to_have_text("1 change")  # adjacent: one
    page.get_by_test_id("next-change").click()
    expect(page.get_by_test_id("change-counter")).to_have_text("Change 1 of 1")
    expect(marks.first).to_be_in_viewport()
    page.wait_for_url(f"**/d/{doc_id}?v=*")
    page.evaluate(CLEAR_TOASTS)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"history-revision{SCREENSHOT_SUFFIX}.png"))

    # Comparing the named version with now, in the page.
    page.get_by_test_id("version-item").click()
    page.get_by_test_id("compare-select").select_option("now")
    expect(page.get_by_test_id("stage-title")).to_contain_text("compared with now")
    expect(page.locator(".chg-ins")).to_have_count(2)

    # Grace restores the long intro while Ada keeps typing: every person is told, with who
    # and when, and Ada's one click undoes it.
    before_restore = ada.text()
    version_seq = int(page.get_by_test_id("version-item").get_attribute("data-seq") or 0)
    grace.page.get_by_test_id("history-toggle").click()
    grace.page.get_by_test_id("version-item").click()
    expect(grace.page.get_by_test_id("history-view")).to_contain_text("Paragraph 59")
    grace.page.get_by_test_id("restore-button").click()
    grace.page.get_by_test_id("confirm-restore").click()
    ada.wait_exact(LONG_INTRO)
    linus.wait_exact(LONG_INTRO)
    for person in (ada, linus):
        notice = person.page.get_by_test_id("restore-notice")
        expect(notice).to_contain_text("Grace Hopper restored the version of ")
        expect(notice.get_by_test_id("restore-notice-action")).to_have_text("Undo")
    expect(grace.page.get_by_test_id("restore-notice")).to_contain_text("You restored")
    linus.page.get_by_test_id("revision-item").first.click()
    linus.page.get_by_test_id("slider-mode-revision").click()
    expect(linus.page.get_by_test_id("revision-item").first).to_contain_text(
        "Grace Hopper restored the version of")
    expect(linus.page.get_by_test_id("mark-restore")).to_have_count(1)
    expect(linus.page.get_by_test_id("mark-version")).to_have_count(1)
    ada.page.screenshot(path=str(SCREENSHOTS / f"history-restore-notice{SCREENSHOT_SUFFIX}.png"))
    linus.page.evaluate(CLEAR_TOASTS)
    linus.page.screenshot(path=str(SCREENSHOTS / f"history-slider{SCREENSHOT_SUFFIX}.png"))
    ada.page.get_by_test_id("restore-notice-action").click()
    for person in (ada, grace, linus):
        person.wait_exact(before_restore)
    revisions = httpx.get(f"{web.http_url}/api/documents/{doc_id}/revisions",
                          params={"min_seq": head(web, doc_id)}, timeout=10).json()["items"]
    assert [r["kind"] for r in revisions[:2]] == ["restore", "restore"]
    assert revisions[1]["restored_from"] == version_seq
    assert revisions[0]["restored_from"] == revisions[1]["to_seq"] - 1


def test_the_slider_named_versions_and_live_names_and_titles(
    web: ServerProcess, browser: Any, people: list[Person]  # noqa: F811
) -> None:
    doc_id = new_document(web, "Minutes")
    doc_url = f"{web.http_url}/d/{doc_id}"
    ada, grace = Person(browser, "Ada Lovelace"), Person(browser, "Grace Hopper")
    people.extend([ada, grace])
    ada.open(doc_url)
    grace.open(doc_url)
    for i, words in enumerate(("First point.", " Second point.", " Third point.")):
        ada.click_end()
        ada.insert(words)
        ada.wait_saved()
        seq = settled(web, doc_id)
        httpx.post(f"{web.http_url}/api/documents/{doc_id}/versions",
                   json={"seq": seq, "name": f"Point {i + 1}"}, timeout=10)
    grace.wait_text("t.includes('Third point.')")

    page = ada.page
    page.get_by_test_id("history-toggle").click()
    expect(page.get_by_test_id("version-item")).to_have_count(3)
    expect(page.get_by_test_id("mark-version")).to_have_count(3)
    slider = page.get_by_test_id("history-slider")
    label = page.get_by_test_id("slider-label")
    # Times and names, not internal numbers.
    expect(label).to_contain_text("Ada Lovelace")
    expect(label).not_to_contain_text("change")
    # Dragging updates the text as it goes (arrow keys move it one stop at a time).
    slider.focus()
    page.keyboard.press("Home")
    view = page.get_by_test_id("history-view")
    expect(view).to_have_text("First point.", timeout=TIMEOUT_MS)
    page.keyboard.press("ArrowRight")
    expect(view).to_have_text("First point. Second point.")
    # Named versions only.
    page.get_by_test_id("slider-mode-named").click()
    page.keyboard.press("End")
    slider.focus()
    page.keyboard.press("End")
    expect(label).to_contain_text("“Point 3”")
    # Playback at the chosen speed runs to now.
    page.get_by_test_id("slider-mode-revision").click()
    page.get_by_test_id("play-speed").select_option("8")
    page.get_by_test_id("play-button").click()
    expect(label).to_contain_text("(now)", timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("play-button")).to_contain_text("Play")

    # Rename and delete a name: the history stays.
    versions = page.get_by_test_id("version-item")
    page.get_by_test_id("rename-version").first.click()
    page.get_by_test_id("rename-version-input").fill("The third point")
    page.get_by_test_id("rename-version-input").press("Enter")
    expect(versions.first).to_contain_text("The third point")
    page.get_by_test_id("delete-version").last.click()
    page.get_by_test_id("delete-version").last.click()
    expect(versions).to_have_count(2)
    expect(page.get_by_test_id("version-item").filter(has_text="Point 1")).to_have_count(0)

    # A version's URL opens it for someone else; copy and download act on it.
    versions.last.click()
    page.wait_for_url("**?v=*")
    shared = page.url
    grace.page.goto(shared)
    expect(grace.page.get_by_test_id("history-view")).to_have_text("First point. Second point.")
    with grace.page.expect_download() as download:
        grace.page.get_by_test_id("download-button").click()
    assert download.value.suggested_filename.startswith("Minutes (change ")
    grace.page.get_by_test_id("copy-button").click()
    link = grace.page.get_by_test_id("copy-link")
    expect(link).to_contain_text("Copy of Minutes")
    copy_id = (link.get_attribute("href") or "").rsplit("/", 1)[1]
    wait_until(lambda: server_text(web, copy_id)["text"] == "First point. Second point.",
               "the copy's text")
    grace.page.get_by_role("button", name="Back to editing").click()

    # A new title and a new name reach the other person at once (the feed and awareness).
    ada.page.get_by_test_id("doc-title").fill("Minutes of Monday")
    ada.page.get_by_test_id("doc-title").press("Enter")
    expect(grace.page.get_by_test_id("doc-title")).to_have_value("Minutes of Monday",
                                                                   timeout=3000)
    grace.page.get_by_test_id("name-input").fill("Grace B. Hopper")
    grace.page.get_by_test_id("name-input").press("Enter")
    expect(ada.page.get_by_test_id("people-list")).to_contain_text("Grace B. Hopper",
                                                                   timeout=3000)

    # At a phone's width the panel is a drawer over the view.
    phone = Person(browser, "Linus Torvalds", viewport={"width": 390, "height": 844})
    people.append(phone)
    phone.open(doc_url)
    phone.page.get_by_test_id("history-toggle").click()
    phone.page.get_by_test_id("revision-item").first.click()
    expect(phone.page.get_by_test_id("history-view")).to_contain_text("Third point.")
    phone.page.evaluate(CLEAR_TOASTS)
    phone.page.screenshot(path=str(SCREENSHOTS / f"history-phone{SCREENSHOT_SUFFIX}.png"))
