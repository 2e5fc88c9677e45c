"""The service trusts a checked API key for ``MATCHER_SERVICE_AUTH_CACHE_S`` seconds (service/auth.py,
README "revocation delay"): a revoked key may still be accepted within that lifetime of its last
check, and is refused once it has passed. The other service tests run with a lifetime of 0."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from matcher.store import repo
from service.app import create_app
from tests.service.conftest import service_settings, wait_ready
from tests.service.databases import BACKENDS, throwaway_database

LIFETIME_S = 1.0


@pytest.fixture(scope="module", params=BACKENDS)
def cached(request, service_workspace, tmp_path_factory):
    """(client, store) of a service that trusts a checked key for ``LIFETIME_S``."""
    with throwaway_database(request.param, tmp_path_factory.mktemp(f"key-cache-{request.param}")) as url:
        app = create_app(service_settings(service_workspace.home, url, service_auth_cache_s=LIFETIME_S))
        with TestClient(app) as client:
            wait_ready(client)
            yield client, app.state.svc.store


def me(client, key: str) -> int:
    return client.get("/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code


def test_a_revoked_key_stops_working_within_the_cache_lifetime(cached):
    client, store = cached
    key, record = repo.create_key(store, "staff", name="leaving staff member")
    assert me(client, key) == 200
    checked = time.monotonic()  # the key's cache entry expires at most LIFETIME_S after this

    repo.revoke_key(store, str(record["key_id"]))

    # Within the lifetime the cached check may still let it in (that is the documented delay).
    assert me(client, key) == 200 or time.monotonic() - checked >= LIFETIME_S
    time.sleep(max(0.0, checked + LIFETIME_S + 0.05 - time.monotonic()))
    assert me(client, key) == 401
    assert me(client, key) == 401  # a refused key is not cached


def test_a_key_revoked_before_its_first_use_is_refused_at_once(cached):
    client, store = cached
    key, record = repo.create_key(store, "staff", name="never used")
    repo.revoke_key(store, record["prefix"])

    assert me(client, key) == 401


def test_a_valid_key_keeps_working_after_its_cache_entry_expires(cached):
    client, store = cached
    key, _ = repo.create_key(store, "staff", name="staff member")
    assert me(client, key) == 200

    time.sleep(LIFETIME_S + 0.05)

    assert me(client, key) == 200
