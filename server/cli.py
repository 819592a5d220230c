"""`palimpsest serve | migrate | rebuild | token`."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import sys
from dataclasses import replace

import uvicorn

from server.settings import Settings
from storage.database import is_sqlite, sqlite_path
from storage.migrate import migrate

log = logging.getLogger("palimpsest")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(args: argparse.Namespace) -> int:
    settings = replace(Settings.from_env(), host=args.host, port=args.port, role=args.role)
    if settings.secret is None and not _is_loopback(settings.host) and not settings.allow_public:
        print(
            f"refusing to listen on {settings.host}: no PALIMPSEST_SECRET is set, so anyone "
            "could read and write every document. Set PALIMPSEST_SECRET, or "
            "PALIMPSEST_ALLOW_PUBLIC=1 to serve an open server anyway.",
            file=sys.stderr,
        )
        return 2
    if settings.secret is None and not _is_loopback(settings.host):
        print("WARNING: serving WITHOUT authentication on a public address", file=sys.stderr)
    from server.app import create_app

    if is_sqlite(settings.database_url):
        path = sqlite_path(settings.database_url)
        print(f"palimpsest: event log in SQLite file {path}", flush=True)
    else:
        print("palimpsest: event log in PostgreSQL", flush=True)
    print(
        f"palimpsest: serving role '{settings.role}' at http://{settings.host}:{settings.port}",
        flush=True,
    )
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        ws_max_size=settings.limits.frame_bytes,
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_interval,
        ws_per_message_deflate=settings.ws_per_message_deflate,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1


def run_migrate(_args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    revision = asyncio.run(migrate(settings.database_url))
    print(f"palimpsest: schema at revision {revision}")
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="palimpsest")
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="run a node")
    p_serve.add_argument("--host", default="127.0.0.1")
    p_serve.add_argument("--port", type=int, default=8000)
    p_serve.add_argument("--role", choices=["all", "write", "read", "projector"], default="all")
    p_serve.set_defaults(func=serve)
    p_migrate = sub.add_parser("migrate", help="apply database migrations")
    p_migrate.set_defaults(func=run_migrate)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
