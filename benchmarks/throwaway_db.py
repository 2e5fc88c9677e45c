"""A throwaway PostgreSQL database for the benchmarks that measure the service on PostgreSQL
(created and dropped through the server's ``postgres`` database). The tests have their own in
``tests/service/databases.py``: the suite never imports benchmarks."""

from __future__ import annotations

import uuid
from contextlib import contextmanager

import sqlalchemy as sa


@contextmanager
def postgres_database(server: str, prefix: str = "matcher_bench"):
    """Yields the URL of a new database on ``server`` (``postgresql+psycopg://user@host:port``),
    dropped afterwards even if connections are still open."""
    admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
        yield f"{server}/{name}"
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()
