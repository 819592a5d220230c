"""Apply Alembic migrations, and tell whether a database is at the latest one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from storage.database import open_database_nopool
from storage.errors import SchemaNotReady

MIGRATIONS = Path(__file__).parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def latest_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def _upgrade(connection: Connection, config: Config, revision: str = "head") -> None:
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _current(connection: Connection) -> str | None:
    current: Any = MigrationContext.configure(connection).get_current_revision()
    return str(current) if current is not None else None


async def migrate(url: str, revision: str = "head") -> str:
    """Bring the schema at `url` to `revision` (the latest by default); returns it."""
    engine = open_database_nopool(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade, _config(), revision)
    finally:
        await engine.dispose()
    return latest_revision() if revision == "head" else revision


async def current_revision(url: str) -> str | None:
    engine = open_database_nopool(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_current)
    finally:
        await engine.dispose()


async def require_latest(url: str) -> None:
    """Raise SchemaNotReady unless the schema is at the latest migration."""
    current = await current_revision(url)
    latest = latest_revision()
    if current != latest:
        raise SchemaNotReady(
            f"the database schema is at {current or 'nothing'}, the code needs {latest}: "
            "run `palimpsest migrate` with the same DATABASE_URL first"
        )
