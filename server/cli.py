"""`palimpsest serve | migrate | rebuild | token`, and the governance commands
(`verify | compact | purge | export | import`: server.governance_cli)."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import sys
from dataclasses import replace

import uvicorn

from server.governance_cli import add_commands as add_governance_commands
from server.settings import Settings
from server.tokens import secret_problem
from storage.database import is_sqlite, sqlite_path
from storage.migrate import migrate

log = logging.getLogger("palimpsest")
GRACEFUL_SHUTDOWN_SECONDS = 5


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(args: argparse.Namespace) -> int:
    settings = replace(Settings.from_env(), host=args.host, port=args.port, role=args.role)
    problem = settings.secret and secret_problem(settings.secret)
    if problem:
        print(f"palimpsest serve: refusing to start: {problem}", file=sys.stderr)
        return 2
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
    elif settings.secret is None:
        print("palimpsest: no PALIMPSEST_SECRET: authentication is OFF (open server, "
              "loopback only)", file=sys.stderr, flush=True)
    from server.app import create_app
    from server.http.guard import header_timeout_protocol
    from server.http.lean_websocket import LeanWebSocketProtocol

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
        ws_max_queue=settings.limits.pending_unauthenticated,
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_interval,
        ws_per_message_deflate=settings.ws_per_message_deflate,
        ws=LeanWebSocketProtocol,  # uvicorn's own, with lighter per-connection state
        # h11, not httptools: h11 bounds the request line and headers; our subclass closes a
        # connection that does not finish its headers in time (server.http.guard).
        http=header_timeout_protocol(settings.header_timeout_seconds),
        h11_max_incomplete_event_size=settings.max_header_bytes,
        timeout_keep_alive=settings.keep_alive_seconds,
        # Open document feeds (server-sent events) never complete by themselves: on a stop,
        # requests still running after this long are cancelled rather than waited for.
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
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


def create_token(args: argparse.Namespace) -> int:
    """Mint a token from PALIMPSEST_SECRET; print it alone on stdout."""
    from server.tokens import mint

    settings = Settings.from_env()
    if settings.secret is None:
        print("palimpsest token create: PALIMPSEST_SECRET is not set", file=sys.stderr)
        return 2
    problem = secret_problem(settings.secret)
    if problem:
        print(f"palimpsest token create: {problem}", file=sys.stderr)
        return 2
    try:
        token = mint(settings.secret, args.user, {args.doc: args.role}, args.ttl,
                     display_name=args.name)
    except ValueError as exc:
        print(f"palimpsest token create: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


def run_rebuild(_args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from server.app import build_projector
    from server.read.insights import InsightFollower
    from server.read.rebuild import rebuild
    from storage.database import open_database
    from storage.event_store import EventStore
    from storage.migrate import require_latest
    from storage.read_model import ReadModel

    settings = Settings.from_env()

    async def go() -> int:
        if is_sqlite(settings.database_url):
            await migrate(settings.database_url)
        else:
            await require_latest(settings.database_url)
        db = open_database(settings.database_url)
        bar = tqdm(total=0, unit="event", desc="rebuild", file=sys.stderr)
        try:
            read_model = ReadModel(db)
            projector = build_projector(EventStore(db), read_model, settings)
            events = await rebuild(
                read_model, projector,
                on_total=lambda total: bar.reset(total=total), on_progress=bar.update,
            )
            # The status, activity and search read models: their own follower of the log.
            await InsightFollower(EventStore(db), db).rebuild()
            return events
        finally:
            bar.close()
            await db.dispose()

    events = asyncio.run(go())
    print(f"palimpsest: read models rebuilt from {events} events")
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
    p_rebuild = sub.add_parser("rebuild", help="drop the read models and replay the log")
    p_rebuild.set_defaults(func=run_rebuild)
    p_token = sub.add_parser("token", help="access tokens").add_subparsers(
        dest="token_command", required=True)
    p_create = p_token.add_parser("create", help="mint a token (printed alone on stdout)")
    p_create.add_argument("--user", required=True, help="user id, recorded as the actor")
    p_create.add_argument("--name", help="display name (default: the user id)")
    p_create.add_argument("--doc", required=True, help="document id or fnmatch pattern (*)")
    p_create.add_argument("--role", required=True, choices=["read", "write", "admin"])
    p_create.add_argument("--ttl", type=float, required=True, help="seconds until it expires")
    p_create.set_defaults(func=create_token)
    add_governance_commands(sub)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
