"""Serving the browser client (client_web/dist): `/` and `/d/{doc_id}` are its page.

The build is optional: without it these answer 503 with what to run, and the API works.

Every response from here carries a strict Content-Security-Policy (see `policy`): scripts,
styles, images and connections from this origin only, nothing inline. The one exception is
CodeMirror's generated stylesheet, a `<style>` element the editor creates at run time: each
page response gets a fresh nonce, allowed in `style-src` and written into the page as
`<meta name="csp-nonce">`, from where the client hands it to `EditorView.cspNonce`. Style
attributes stay forbidden (`style-src-attr 'none'`); the client sets styles only through
the CSSOM (`element.style`), which CSP does not govern.
"""

from __future__ import annotations

import mimetypes
import re
import secrets
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

# What client_web/index.html holds where each response's nonce goes.
NONCE_PLACEHOLDER = "__CSP_NONCE__"
# A Host header fit to be named in the policy (connect-src): a name or address, maybe a port.
# With nosniff the browser trusts these types exactly, so they do not depend on the platform's
# mime.types (which can map .js to something a browser refuses to run).
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml",
               ".map": "application/json", ".txt": "text/plain; charset=utf-8"}
_HOST = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


def policy(nonce: str | None = None, host: str | None = None, *, tls: bool = False) -> str:
    """The Content-Security-Policy of the client's responses.

    `nonce` allows the one generated stylesheet of a page; `host` adds this origin's
    WebSocket URL to connect-src (CSP 3 makes 'self' match it, older browsers need it named).
    """
    style = "'self'" + (f" 'nonce-{nonce}'" if nonce else "")
    connect = "'self'"
    if host and _HOST.match(host):
        connect += f" {'wss' if tls else 'ws'}://{host}"
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        f"style-src {style}",
        "style-src-attr 'none'",
        "img-src 'self'",
        "font-src 'self'",
        f"connect-src {connect}",
        "media-src 'none'",
        "object-src 'none'",
        "frame-src 'none'",
        "worker-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ])


def security_headers(nonce: str | None = None, request: Request | None = None) -> dict[str, str]:
    host = request.headers.get("host") if request is not None else None
    tls = request is not None and request.url.scheme == "https"
    return {
        "Content-Security-Policy": policy(nonce, host, tls=tls),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


def _missing(dist: Path) -> Response:
    return JSONResponse(
        {"error": {"code": "client_not_built",
                   "message": f"the browser client is not built ({dist} is missing): run "
                              "`npm ci && npm run build` in client_web/"}},
        status_code=503,
        headers=security_headers(),
    )


def client_routes(dist: Path) -> list[BaseRoute]:
    dist = dist.resolve()
    assets = dist / "assets"

    async def index(request: Request) -> Response:
        page = dist / "index.html"
        if not page.is_file():
            return _missing(dist)
        nonce = secrets.token_urlsafe(18)
        html = page.read_text(encoding="utf-8").replace(NONCE_PLACEHOLDER, nonce)
        # no-store: the nonce is for this response only; a cached copy would reuse it.
        headers = {"Cache-Control": "no-store", **security_headers(nonce, request)}
        return Response(html, media_type="text/html; charset=utf-8", headers=headers)

    async def asset(request: Request) -> Response:
        if not dist.is_dir():
            return _missing(dist)
        path = (assets / request.path_params["path"]).resolve()
        if not path.is_relative_to(assets) or not path.is_file():
            return JSONResponse({"error": {"code": "not_found", "message": "no such asset"}},
                                status_code=404, headers=security_headers())
        media_type = (MEDIA_TYPES.get(path.suffix)
                      or mimetypes.guess_type(path.name)[0] or "application/octet-stream")
        # Asset names carry a content hash (esbuild), so they never change.
        return FileResponse(path, media_type=media_type,
                            headers={"Cache-Control": "public, max-age=31536000, immutable",
                                     **security_headers()})

    return [
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/d/{doc_id:path}", index, methods=["GET", "HEAD"]),
        Route("/activity", index, methods=["GET", "HEAD"]),  # the activity page
        Route("/search", index, methods=["GET", "HEAD"]),  # the search page
        Route("/assets/{path:path}", asset, methods=["GET", "HEAD"]),
    ]
