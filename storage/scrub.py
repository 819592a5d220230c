"""Making removed bytes unrecoverable from the database files, after an erasure.

Rewriting or deleting a row leaves its old bytes behind: in SQLite, in free pages and cells of
the database file and in the frames of the write-ahead log; in PostgreSQL, in dead row
versions until VACUUM reuses them (and in its WAL and archives). On SQLite `scrub` runs VACUUM
(which rewrites the whole file from the live rows only) and then a TRUNCATE checkpoint (which
empties the WAL): afterwards no byte of a removed value is left in either file. It holds the
write lock meanwhile, so appends wait: it costs about the time to copy the database once.
On PostgreSQL it does nothing: see docs/operations.md (VACUUM FULL, backups).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from storage.database import Database

log = logging.getLogger(__name__)
CHECKPOINT_ATTEMPTS = 10


async def scrub(db: Database) -> bool:
    """Remove leftover bytes of rewritten and deleted rows; False on PostgreSQL, or if the
    write-ahead log could not be emptied."""
    if db.dialect != "sqlite":
        return False
    async with db.writer.connect() as conn:
        # Outside any transaction (VACUUM refuses to run in one): straight on the driver.
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        await driver.execute("VACUUM")
        # The checkpoint waits (busy timeout) for readers on older snapshots; if one still
        # holds on, frames stay in the WAL: try again a few times, then say so.
        for _ in range(CHECKPOINT_ATTEMPTS):
            cursor = await driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            busy, _frames, _copied = await cursor.fetchone()
            await cursor.close()
            if not busy:
                return True
            await asyncio.sleep(0.2)
    log.warning("the write-ahead log could not be emptied: readers held it; run "
                "`PRAGMA wal_checkpoint(TRUNCATE)` when the server is idle")
    return False
