"""The migrations build exactly the schema the ORM models declare: Alembic's autogenerate, run
against a database upgraded to head, finds nothing to add, drop or alter. A model changed without
a migration (or a migration that drifts from the models) fails here, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from matcher.store.db import head_revision, make_engine, upgrade
from matcher.store.models import Base
from tests.service.databases import BACKENDS, throwaway_database


@pytest.mark.parametrize("backend", BACKENDS)
def test_database_upgraded_to_head_matches_the_models(backend, tmp_path):
    with throwaway_database(backend, tmp_path) as url:
        assert upgrade(url) == (None, head_revision())
        engine = make_engine(url, pool_size=1)
        try:
            with engine.connect() as connection:
                differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        finally:
            engine.dispose()

    assert differences == []
