"""Alembic environment: the URL comes from ``matcher.store.db.alembic_config`` (never a file)."""

from __future__ import annotations

from alembic import context

from matcher.store.db import make_engine
from matcher.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = make_engine(config.attributes["url"], immediate=True, pool_size=1)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


run_migrations_online()
