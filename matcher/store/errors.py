"""Errors of the persistence layer (mapped to HTTP statuses in ``service/errors.py``)."""

from __future__ import annotations

from matcher.errors import MatcherError


class InvalidInputError(MatcherError):
    """A value a user entered is not acceptable (422 with the field and reason)."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


class ConflictError(MatcherError):
    """A write lost a race or breaks a rule of the current state (409 with that state)."""

    def __init__(self, message: str, current: dict | None = None):
        super().__init__(message)
        self.current = current


class StaleWriteError(ConflictError):
    """The item changed since the version the writer saw."""


class SchemaOutOfDateError(MatcherError):
    """The database schema is behind the code; run 'matcher db upgrade'."""


class DatabaseUnavailableError(MatcherError):
    """The database cannot be reached."""
