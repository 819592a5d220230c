"""Errors raised by the storage layer.

    StorageError
    ├── SchemaNotReady      the database schema is missing or behind the code's migrations
    ├── DocumentNotFound    no document with that id
    └── StorageUnavailable  the database could not be reached or the transaction failed
"""


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
