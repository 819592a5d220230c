"""Errors raised by the storage layer, and the one place driver errors are translated.

    StorageError
    ├── SchemaNotReady      the database schema is missing or behind the code's migrations
    ├── DocumentNotFound    no document with that id
    └── StorageUnavailable  the database could not be reached or the transaction failed
"""


from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# What "the database is unreachable or failed the operation" looks like. asyncpg reports a
# refused or dropped connection (Postgres restarting) as a plain OSError that SQLAlchemy does
# not wrap, and raw driver calls raise asyncpg's own errors. A pool with no connection free for
# its timeout (thousands of documents opening at once) is the same for the caller: retry later.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OperationalError, DBAPIError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError,
    PoolTimeout,
)


class StorageError(Exception):
    """Base of every storage error."""


class SchemaNotReady(StorageError):
    """The schema is not at the latest migration; run `palimpsest migrate`."""


class DocumentNotFound(StorageError):
    def __init__(self, doc_id: str) -> None:
        super().__init__(f"document {doc_id!r} does not exist")
        self.doc_id = doc_id


class StorageUnavailable(StorageError):
    """The database refused or lost the operation; the caller may retry."""


@contextmanager
def translated() -> Iterator[None]:
    """Turn any driver error raised inside into StorageUnavailable (storage.database's
    connections wrap every transaction in it, so callers only ever see StorageError)."""
    try:
        yield
    except UNAVAILABLE as exc:
        raise StorageUnavailable(str(exc) or type(exc).__name__) from exc
