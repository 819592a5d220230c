"""Configuration, read once from the environment and the command line."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

from storage.database import default_database_url


def _int(env: dict[str, str], name: str, default: int) -> int:
    return int(env.get(name, default))


def _float(env: dict[str, str], name: str, default: float) -> float:
    return float(env.get(name, default))


def _optional_float(env: dict[str, str], name: str, default: float) -> float | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    return None if raw.strip().lower() in ("never", "none", "off") else float(raw)


def _list(env: dict[str, str], name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


def default_read_workers() -> int:
    """One worker per core beyond the first (the event loop's), one at least, four at most."""
    return max(1, min(4, (os.cpu_count() or 1) - 1))


@dataclass(frozen=True)
class Limits:
    """Per-connection and per-document limits; crossing one closes that connection."""

    frame_bytes: int = 8 * 1024 * 1024
    update_bytes: int = 4 * 1024 * 1024
    document_bytes: int = 64 * 1024 * 1024
    messages_per_second: int = 2000
    bytes_per_second: int = 16 * 1024 * 1024
    # 1,200: a room of 1,000 stock observers with presence and their writers, measured served
    # whole (bench/observers.py), with room for reconnects that hold a slot until the server
    # sees the old socket close (docs/protocol.md, "The connection caps, deliberately"). Past
    # it, 4503: stock clients retry with backoff; a bigger audience needs more nodes.
    connections_per_document: int = 1200
    connections_per_address: int = 1000
    connections_per_user: int = 20  # one user's connections to one document (per node)
    pending_unauthenticated: int = 32
    decode_ms: float = 500.0
    outbound_queue: int = 10_000
    outbound_queue_bytes: int = 8 * 1024 * 1024  # bytes queued for one connection
    send_timeout: float = 10.0  # seconds a send may make no progress before the socket is cut
    awareness_clients: int = 16  # awareness client ids one connection may introduce
    awareness_state_bytes: int = 8 * 1024  # one client's awareness state (JSON text)
    awareness_bytes: int = 32 * 1024  # the states of every client one connection introduced


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    role: str = "all"
    database_url: str = field(default_factory=default_database_url)
    redis_url: str | None = None
    redis_prefix: str = "palimpsest"
    room_sweep_seconds: float = 2.0  # how often open rooms compare their seq with the log
    test_bus_faults: str | None = None  # a test seam only: see server/realtime/bus_faults.py
    secret: str | None = None
    allow_public: bool = False
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()  # Host names besides loopback and the bound host
    max_body_bytes: int = 64 * 1024  # any HTTP request body (server.http.guard)
    max_header_bytes: int = 16 * 1024  # request line and headers (h11)
    header_timeout_seconds: float = 5.0  # to finish sending a request's headers
    keep_alive_seconds: int = 5  # an idle HTTP connection between requests
    room_grace_seconds: float = 5.0
    snapshot_every: int = 1000
    projector_coalesce_seconds: float = 0.05
    # The writers hand the projector and the insight follower in the same process their own
    # text deltas (server.write.fanout.Tee, server.read.offers): neither reads the log nor
    # applies each event to a Doc of its own. `PALIMPSEST_PROJECTOR_SAME_PROCESS=0` turns it off.
    projector_same_process: bool = True
    projector_lease_seconds: float = 3.0  # renewed every third of it while in use
    commit_retry_seconds: float = 30.0  # a failing commit is retried this long before 1013
    health_stall_seconds: float = 10.0  # /healthz fails once progress has stopped this long
    read_wait_seconds: float = 5.0  # how long ?min_seq= (and reads of a past seq) may wait
    max_batch: int = 512
    ws_ping_interval: float = 20.0
    ws_per_message_deflate: bool = False
    client_dist: str | None = None
    # Governance (docs/operations.md): the default retention policy (None: compact nothing
    # unless a document has its own), how long a deleted document stays restorable, and how
    # often the server compacts and purges on its own (0: never).
    keep_days: float | None = 30.0
    deleted_retention_days: float = 30.0
    maintenance_interval_seconds: float = 0.0
    limits: Limits = field(default_factory=Limits)
    # Heavy reads (text at a seq, diffs): where they run and how many (server/read/workers.py)
    read_pool: str = "process"  # process | thread | off (on the event loop)
    read_workers: int = field(default_factory=lambda: default_read_workers())
    read_queue: int = 16  # heavy reads waiting for a worker, past which 503
    read_queue_seconds: float = 5.0  # how long one may wait for a worker, past which 503
    # Events one diff may span, past which 413; 0: no limit (a word diff costs the same
    # whatever the span: two texts at seqs, server.read.queries).
    max_diff_events: int = 0
    revocation_refresh_seconds: float = 5.0  # how often revocations are re-read from the log

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        env = dict(os.environ if env is None else env)
        limits = Limits(
            frame_bytes=_int(env, "PALIMPSEST_MAX_FRAME_BYTES", Limits.frame_bytes),
            update_bytes=_int(env, "PALIMPSEST_MAX_UPDATE_BYTES", Limits.update_bytes),
            document_bytes=_int(env, "PALIMPSEST_MAX_DOCUMENT_BYTES", Limits.document_bytes),
            messages_per_second=_int(env, "PALIMPSEST_MAX_MESSAGES_PER_SECOND",
                                     Limits.messages_per_second),
            bytes_per_second=_int(env, "PALIMPSEST_MAX_BYTES_PER_SECOND", Limits.bytes_per_second),
            connections_per_document=_int(env, "PALIMPSEST_MAX_CONNECTIONS_PER_DOCUMENT",
                                          Limits.connections_per_document),
            connections_per_address=_int(env, "PALIMPSEST_MAX_CONNECTIONS_PER_ADDRESS",
                                         Limits.connections_per_address),
            connections_per_user=_int(env, "PALIMPSEST_MAX_CONNECTIONS_PER_USER",
                                      Limits.connections_per_user),
            pending_unauthenticated=_int(env, "PALIMPSEST_MAX_PENDING_UNAUTHENTICATED",
                                         Limits.pending_unauthenticated),
            decode_ms=_float(env, "PALIMPSEST_MAX_DECODE_MS", Limits.decode_ms),
            outbound_queue=_int(env, "PALIMPSEST_OUTBOUND_QUEUE", Limits.outbound_queue),
            outbound_queue_bytes=_int(env, "PALIMPSEST_OUTBOUND_QUEUE_BYTES",
                                      Limits.outbound_queue_bytes),
            send_timeout=_float(env, "PALIMPSEST_SEND_TIMEOUT_SECONDS", Limits.send_timeout),
            awareness_clients=_int(env, "PALIMPSEST_MAX_AWARENESS_CLIENTS",
                                   Limits.awareness_clients),
            awareness_state_bytes=_int(env, "PALIMPSEST_MAX_AWARENESS_STATE_BYTES",
                                       Limits.awareness_state_bytes),
            awareness_bytes=_int(env, "PALIMPSEST_MAX_AWARENESS_BYTES",
                                 Limits.awareness_bytes),
        )
        origins = _list(env, "PALIMPSEST_ALLOWED_ORIGINS")
        settings = cls(
            database_url=env.get("DATABASE_URL") or default_database_url(),
            redis_url=env.get("REDIS_URL") or None,
            redis_prefix=env.get("PALIMPSEST_REDIS_PREFIX", "palimpsest"),
            room_sweep_seconds=_float(env, "PALIMPSEST_ROOM_SWEEP_SECONDS", 2.0),
            test_bus_faults=env.get("PALIMPSEST_TEST_BUS_FAULTS") or None,
            secret=env.get("PALIMPSEST_SECRET") or None,
            allow_public=env.get("PALIMPSEST_ALLOW_PUBLIC", "") in ("1", "true", "yes"),
            allowed_origins=origins,
            allowed_hosts=_list(env, "PALIMPSEST_ALLOWED_HOSTS"),
            max_body_bytes=_int(env, "PALIMPSEST_MAX_BODY_BYTES", 64 * 1024),
            max_header_bytes=_int(env, "PALIMPSEST_MAX_HEADER_BYTES", 16 * 1024),
            header_timeout_seconds=_float(env, "PALIMPSEST_HEADER_TIMEOUT_SECONDS", 5.0),
            keep_alive_seconds=_int(env, "PALIMPSEST_KEEP_ALIVE_SECONDS", 5),
            room_grace_seconds=_float(env, "PALIMPSEST_ROOM_GRACE_SECONDS", 5.0),
            snapshot_every=_int(env, "PALIMPSEST_SNAPSHOT_EVERY", 1000),
            projector_coalesce_seconds=_float(env, "PALIMPSEST_PROJECTOR_COALESCE_SECONDS", 0.05),
            projector_same_process=env.get("PALIMPSEST_PROJECTOR_SAME_PROCESS", "1") != "0",
            projector_lease_seconds=_float(env, "PALIMPSEST_PROJECTOR_LEASE_SECONDS", 3.0),
            commit_retry_seconds=_float(env, "PALIMPSEST_COMMIT_RETRY_SECONDS", 30.0),
            health_stall_seconds=_float(env, "PALIMPSEST_HEALTH_STALL_SECONDS", 10.0),
            read_wait_seconds=_float(env, "PALIMPSEST_READ_WAIT_SECONDS", 5.0),
            max_batch=_int(env, "PALIMPSEST_MAX_BATCH", 512),
            ws_ping_interval=_float(env, "PALIMPSEST_WS_PING_INTERVAL", 20.0),
            ws_per_message_deflate=env.get("PALIMPSEST_WS_DEFLATE", "") in ("1", "true", "yes"),
            client_dist=env.get("PALIMPSEST_CLIENT_DIST") or None,
            keep_days=_optional_float(env, "PALIMPSEST_KEEP_DAYS", 30.0),
            deleted_retention_days=_float(env, "PALIMPSEST_DELETED_RETENTION_DAYS", 30.0),
            maintenance_interval_seconds=_float(env, "PALIMPSEST_MAINTENANCE_INTERVAL_SECONDS",
                                                0.0),
            limits=limits,
            read_pool=env.get("PALIMPSEST_READ_POOL", "process"),
            read_workers=_int(env, "PALIMPSEST_READ_WORKERS", default_read_workers()),
            read_queue=_int(env, "PALIMPSEST_READ_QUEUE", 16),
            read_queue_seconds=_float(env, "PALIMPSEST_READ_QUEUE_SECONDS", 5.0),
            max_diff_events=_int(env, "PALIMPSEST_MAX_DIFF_EVENTS", 0),
            revocation_refresh_seconds=_float(env, "PALIMPSEST_REVOCATION_REFRESH_SECONDS",
                                              5.0),
        )
        return replace(settings, **overrides)
