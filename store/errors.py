"""Exceptions raised by the store package."""


class StoreError(Exception):
    """Base class for store errors."""


class DiskFullError(StoreError):
    """The disk holding the store filled up during a write; what was committed before is kept."""


class WriterBusyError(StoreError):
    """Another process already holds the store's single writer lock."""


class NoSnapshotError(StoreError):
    """No read snapshot has been published yet (build the demo or run the engine)."""


class ImportRowError(StoreError):
    """A row of an imported file could not be used (carried in the error report, never fatal)."""


class SchemaError(StoreError):
    """The database schema is newer than this software or a migration failed."""


class QueryTimeoutError(StoreError):
    """A read took longer than the reader's time limit and was interrupted."""


class WithdrawnError(StoreError):
    """The participant withdrew from UK Biobank: nothing of theirs may be stored again."""


class ExportError(StoreError):
    """An export cannot go where it was asked to: onto an input, over files that are no earlier export
    of that name (without ``force``), onto or under something that is not a folder, or somewhere unwritable."""
