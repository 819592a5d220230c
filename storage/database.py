"""Engines for SQLite and Postgres behind one interface.

SQLite allows one writer at a time. Appends run in `BEGIN IMMEDIATE` transactions on a
dedicated writer engine, so the write lock is taken up front instead of failing with
SQLITE_BUSY on upgrade; reads use a separate engine with ordinary deferred transactions,
which WAL lets run beside the writer.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from storage.errors import translated

DEFAULT_SQLITE_PATH = Path("data") / "palimpsest.sqlite3"


def default_database_url() -> str:
    return f"sqlite+aiosqlite:///{DEFAULT_SQLITE_PATH.resolve()}"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    database = make_url(url).database
    return Path(database) if database and database != ":memory:" else None


@dataclass
class Database:
    """The engines of one database. Build with `open_database`, close with `dispose`."""

    url: str
    writer: AsyncEngine
    reader: AsyncEngine

    @property
    def dialect(self) -> str:
        return self.writer.dialect.name

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed on normal exit, rolled back on error. Driver errors,
        in the body or at commit, come out as StorageUnavailable."""
        with translated():
            async with self.writer.begin() as conn:
                yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        with translated():
            async with self.reader.connect() as conn:
                yield conn

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[AsyncConnection]:
        """A read whose statements all see one snapshot of the database: the log's two tables
        (storage.packed_log) read together. SQLite: a read transaction already is one (WAL);
        PostgreSQL: REPEATABLE READ (at read committed each statement has its own)."""
        with translated():
            async with self.reader.connect() as conn:
                if self.dialect == "postgresql":
                    conn = await conn.execution_options(isolation_level="REPEATABLE READ")
                async with conn.begin():
                    yield conn

    async def dispose(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()


def _ensure_sqlite_folder(url: str) -> None:
    path = sqlite_path(url) if is_sqlite(url) else None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def _sqlite_engine(url: str, *, immediate: bool) -> AsyncEngine:
    _ensure_sqlite_folder(url)
    engine = create_async_engine(
        url,
        connect_args={"timeout": 30},
        # One connection each: SQLite serialises writers anyway, and a pool of readers
        # would only multiply file handles. NullPool for :memory: is never used here.
        pool_size=1 if immediate else 4,
        max_overflow=0 if immediate else 4,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take over transaction control from the driver so BEGIN is ours to choose.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before we broadcast it (durable before visible).
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def open_database(url: str, *, pool_size: int | None = None) -> Database:
    """Create the engines for `url` (nothing connects until first use)."""
    if is_sqlite(url):
        writer = _sqlite_engine(url, immediate=True)
        return Database(url, writer, _sqlite_engine(url, immediate=False))
    size = pool_size or int(os.environ.get("PALIMPSEST_DB_POOL", "10"))
    engine = create_async_engine(url, pool_size=size, max_overflow=size)
    return Database(url, engine, engine)


def open_database_nopool(url: str) -> AsyncEngine:
    """A throwaway engine for one-off tasks (migrations) that must not keep connections."""
    _ensure_sqlite_folder(url)
    return create_async_engine(url, poolclass=NullPool)
