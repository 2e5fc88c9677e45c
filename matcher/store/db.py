"""Database connection and schema migrations.

Embedded default: a SQLite file in WAL mode (readers never wait for the writer); production:
PostgreSQL through a ``postgresql://`` URL (driven by psycopg 3). Write transactions on SQLite
start with ``BEGIN IMMEDIATE`` so two writers queue for the lock instead of failing halfway.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from matcher.errors import ConfigError
from matcher.store.errors import DatabaseUnavailableError, SchemaOutOfDateError
from matcher.store.models import strip_nul

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def normalise_url(url: str) -> str:
    """``postgresql://`` / ``postgres://`` URLs use psycopg 3 (the driver we ship)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def describe(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    try:
        return sa.engine.make_url(normalise_url(url)).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is reported by make_engine
        return "<unparsable database URL>"


def make_engine(url: str, *, immediate: bool = False, pool_size: int = 10) -> sa.Engine:
    """An engine for ``url``; with ``immediate`` SQLite transactions take the write lock at BEGIN."""
    try:
        parsed = sa.engine.make_url(normalise_url(url))
    except sa.exc.ArgumentError as exc:
        raise ConfigError(f"DATABASE_URL: {exc}; expected e.g. postgresql://user@host/db or sqlite:///path") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not Path(parsed.database).parent.is_dir():
            # A typo in the path would otherwise start a service on a new, empty database (no keys).
            raise ConfigError(f"DATABASE_URL: directory {Path(parsed.database).parent} does not exist; create it or "
                              "correct the path")
        engine = sa.create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=pool_size,
                                  json_serializer=dump_json)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record):
            dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection):
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    if parsed.get_backend_name() != "postgresql":
        raise ConfigError(f"DATABASE_URL: backend '{parsed.get_backend_name()}' is not supported; use postgresql:// or sqlite:///")
    # connect_timeout: a partitioned database answers 503 within seconds instead of hanging requests.
    return sa.create_engine(parsed, pool_size=pool_size, max_overflow=20, pool_pre_ping=True, json_serializer=dump_json,
                            connect_args={"connect_timeout": 5})


def dump_json(value) -> str:
    """JSON columns as text, never with a NUL (``\\u0000``: PostgreSQL's JSONB and text functions refuse
    it; see :func:`matcher.store.models.strip_nul`). The check is one substring search; only a value
    that has the escape is walked and cleaned."""
    text = json.dumps(value)
    return json.dumps(strip_nul(value)) if "\\u0000" in text else text


def alembic_config(url: str):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["url"] = normalise_url(url)
    return config


def upgrade(url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Apply the migrations up to ``revision``; returns (revision before, revision after)."""
    from alembic import command

    try:
        before = current_revision(url)
        command.upgrade(alembic_config(url), revision)
        return before, current_revision(url)
    except sa.exc.OperationalError as exc:
        raise DatabaseUnavailableError(f"database {describe(url)}: {str(exc.orig or exc).splitlines()[0]}") from None


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


class Store:
    """Engines and sessions of one database. ``read()`` for queries, ``write()`` for one atomic
    change (committed on success, rolled back on any exception)."""

    def __init__(self, url: str, pool_size: int = 10):
        self.url = normalise_url(url)
        self.backend = sa.engine.make_url(self.url).get_backend_name()
        self.engine = make_engine(self.url, pool_size=pool_size)
        self.write_engine = make_engine(self.url, immediate=True, pool_size=pool_size) if self.backend == "sqlite" else self.engine
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self.write_engine, expire_on_commit=False)

    def check_schema(self) -> None:
        """Fail unless the database is at the head migration."""
        head = head_revision()
        with self.engine.connect() as connection:
            from alembic.runtime.migration import MigrationContext

            found = MigrationContext.configure(connection).get_current_revision()
        if found != head:
            raise SchemaOutOfDateError(
                f"database {describe(self.url)} is at schema revision {found or 'none'}, the code needs {head}; "
                "run 'matcher db upgrade'"
            )

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self._write.begin() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
        if self.write_engine is not self.engine:
            self.write_engine.dispose()
