"""Throwaway databases for the store and service tests: a SQLite file, and a uniquely named
PostgreSQL database (created through the ``postgres`` database, dropped afterwards).

The PostgreSQL server is ``MATCHER_TEST_POSTGRES``. When it does not answer, its tests skip on a
developer's machine, and fail with ``MATCHER_TEST_REQUIRE_POSTGRES=1`` (set by ``.ci/run``), so CI
cannot go green without the PostgreSQL half of the suite.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

BACKENDS = ["sqlite", "postgresql"]
PG_SERVER = os.environ.get("MATCHER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")
REQUIRE_POSTGRES = os.environ.get("MATCHER_TEST_REQUIRE_POSTGRES", "0") == "1"


@contextmanager
def throwaway_database(backend: str, directory: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'matcher.db'}"
        return
    import sqlalchemy as sa

    admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    name = f"matcher_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
        unreachable = None
    except sa.exc.OperationalError as exc:
        admin.dispose()
        unreachable = f"PostgreSQL not reachable at {PG_SERVER} ({str(exc.orig).splitlines()[0]})"
    if unreachable:  # outside the except: one line, not the driver's traceback
        if REQUIRE_POSTGRES:
            pytest.fail(f"{unreachable}; MATCHER_TEST_REQUIRE_POSTGRES=1 requires it", pytrace=False)
        pytest.skip(f"{unreachable}; CI runs these against it")
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()
