"""Why a run cannot start or go on (the CLI prints these and exits 1)."""


class CoordinatorError(Exception):
    """The coordinator cannot start (lock held, bad device, store problem)."""


class StoreLost(CoordinatorError):
    """The SQLite file was deleted or replaced during the run: nothing more may be written to that path."""
