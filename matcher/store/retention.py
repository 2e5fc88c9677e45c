"""Retention of the served-list log, shared by ``matcher db prune-served`` and the nightly refresh."""

from __future__ import annotations

from matcher.features import FEATURES
from matcher.store import repo
from matcher.store.db import Store, upgrade


def prune_served_log(database_url: str, older_than_days: int, dry_run: bool = False, actor: repo.Actor = repo.CLI_ACTOR) -> dict:
    """Prune the served-list log of the database at ``database_url`` (see ``repo.prune_served``);
    the lists training reads are judged with the current ``FEATURES``."""
    upgrade(database_url)
    store = Store(database_url, pool_size=1)
    try:
        return repo.prune_served(store, older_than_days, dry_run=dry_run, feature_names=list(FEATURES), actor=actor)
    finally:
        store.dispose()
