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


@dataclass(frozen=True)
class Limits:
    """Per-connection and per-document limits; crossing one closes that connection."""

    frame_bytes: int = 8 * 1024 * 1024
    update_bytes: int = 4 * 1024 * 1024
    document_bytes: int = 64 * 1024 * 1024
    messages_per_second: int = 2000
    bytes_per_second: int = 16 * 1024 * 1024
    connections_per_document: int = 500
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
    room_grace_seconds: float = 5.0
    snapshot_every: int = 1000
    projector_coalesce_seconds: float = 0.05
    read_wait_seconds: float = 5.0  # how long ?min_seq= (and reads of a past seq) may wait
    max_batch: int = 512
    ws_ping_interval: float = 20.0
    ws_per_message_deflate: bool = False
    client_dist: str | None = None
    limits: Limits = field(default_factory=Limits)

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
        origins = tuple(o.strip() for o in env.get("PALIMPSEST_ALLOWED_ORIGINS", "").split(",")
                        if o.strip())
        settings = cls(
            database_url=env.get("DATABASE_URL") or default_database_url(),
            redis_url=env.get("REDIS_URL") or None,
            redis_prefix=env.get("PALIMPSEST_REDIS_PREFIX", "palimpsest"),
            room_sweep_seconds=_float(env, "PALIMPSEST_ROOM_SWEEP_SECONDS", 2.0),
            test_bus_faults=env.get("PALIMPSEST_TEST_BUS_FAULTS") or None,
            secret=env.get("PALIMPSEST_SECRET") or None,
            allow_public=env.get("PALIMPSEST_ALLOW_PUBLIC", "") in ("1", "true", "yes"),
            allowed_origins=origins,
            room_grace_seconds=_float(env, "PALIMPSEST_ROOM_GRACE_SECONDS", 5.0),
            snapshot_every=_int(env, "PALIMPSEST_SNAPSHOT_EVERY", 1000),
            projector_coalesce_seconds=_float(env, "PALIMPSEST_PROJECTOR_COALESCE_SECONDS", 0.05),
            read_wait_seconds=_float(env, "PALIMPSEST_READ_WAIT_SECONDS", 5.0),
            max_batch=_int(env, "PALIMPSEST_MAX_BATCH", 512),
            ws_ping_interval=_float(env, "PALIMPSEST_WS_PING_INTERVAL", 20.0),
            ws_per_message_deflate=env.get("PALIMPSEST_WS_DEFLATE", "") in ("1", "true", "yes"),
            client_dist=env.get("PALIMPSEST_CLIENT_DIST") or None,
            limits=limits,
        )
        return replace(settings, **overrides)
