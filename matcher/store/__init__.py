"""Persistence of what users enter: API keys, shortlists, reviews, outcomes, the audit log, and
the log of served ranked lists (SQLAlchemy 2; schema by Alembic migrations)."""

from matcher.store.db import Store, current_revision, head_revision, sqlite_url, upgrade  # noqa: F401
