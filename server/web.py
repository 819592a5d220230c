"""Serving the browser client (client_web/dist): `/` and `/d/{doc_id}` are its page.

The build is optional: without it these answer 503 with what to run, and the API works.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route


def _missing(dist: Path) -> Response:
    return JSONResponse(
        {"error": {"code": "client_not_built",
                   "message": f"the browser client is not built ({dist} is missing): run "
                              "`npm ci && npm run build` in client_web/"}},
        status_code=503,
    )


def client_routes(dist: Path) -> list[BaseRoute]:
    dist = dist.resolve()
    assets = dist / "assets"

    async def index(_request: Request) -> Response:
        page = dist / "index.html"
        if not page.is_file():
            return _missing(dist)
        return FileResponse(page, headers={"Cache-Control": "no-cache"})

    async def asset(request: Request) -> Response:
        if not dist.is_dir():
            return _missing(dist)
        path = (assets / request.path_params["path"]).resolve()
        if not path.is_relative_to(assets) or not path.is_file():
            return JSONResponse({"error": {"code": "not_found", "message": "no such asset"}},
                                status_code=404)
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        # Asset names carry a content hash (esbuild), so they never change.
        return FileResponse(path, media_type=media_type,
                            headers={"Cache-Control": "public, max-age=31536000, immutable"})

    return [
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/d/{doc_id:path}", index, methods=["GET", "HEAD"]),
        Route("/assets/{path:path}", asset, methods=["GET", "HEAD"]),
    ]
