"""Per-API-key quotas: a key over its limit gets 429 in the error shape with ``Retry-After``; other
keys are not affected and admin keys are not limited; counts kept in Redis are shared by every
worker, and a worker whose Redis is unreachable keeps counting in its own memory.

Quotas do not touch the service database, so the HTTP test runs on SQLite only.
"""

from __future__ import annotations

import asyncio
import socket
import uuid

import pytest
from fastapi.testclient import TestClient

from matcher.errors import ConfigError
from matcher.store import repo
from service.app import create_app
from service.quotas import Quotas, RateLimitedError
from tests.service.conftest import service_settings, wait_ready
from tests.service.databases import throwaway_database

REDIS = ("127.0.0.1", 6379)


@pytest.fixture(scope="module")
def limited(service_workspace, tmp_path_factory):
    """(client, keys) of a service allowing 3 requests a minute per key."""
    with throwaway_database("sqlite", tmp_path_factory.mktemp("quotas")) as url:
        app = create_app(service_settings(service_workspace.home, url, service_rate_limit="3/minute"))
        with TestClient(app) as client:
            wait_ready(client)
            store = app.state.svc.store
            keys = {"staff": repo.create_key(store, "staff")[0], "other": repo.create_key(store, "staff")[0],
                    "leader": repo.create_key(store, "chain_leader", ["artificial-intelligence"])[0],
                    "admin": repo.create_key(store, "admin")[0]}
            yield client, keys


def get(client, key: str, path: str = "/v1/me"):
    return client.get(path, headers={"Authorization": f"Bearer {key}"})


def test_a_key_over_its_quota_gets_429_with_retry_after_and_others_do_not(limited):
    client, keys = limited
    assert [get(client, keys["staff"]).status_code for _ in range(3)] == [200, 200, 200]

    refused = get(client, keys["staff"], "/v1/gaps")

    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "too_many_requests" and "3 per 1 minute" in error["message"]
    assert error["request_id"] == refused.headers["x-request-id"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert get(client, keys["other"]).status_code == 200  # quotas are per key
    assert [get(client, keys["leader"]).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert {get(client, keys["admin"]).status_code for _ in range(10)} == {200}  # admin keys are not limited
    assert client.get("/health").status_code == 200  # nor is what needs no key
    assert get(client, "cmk_unknown").status_code == 401  # an unknown key is refused before it is counted


def test_a_bad_limit_fails_at_start_naming_the_setting():
    with pytest.raises(ConfigError, match="MATCHER_SERVICE_RATE_LIMIT: 'lots' is not a rate limit"):
        Quotas("lots")
    with pytest.raises(ConfigError, match="MATCHER_SERVICE_RATE_LIMIT_STORAGE"):
        Quotas("10/minute", "memcached://127.0.0.1:11211")
    assert Quotas("off").items == []


def actor(role: str = "staff") -> repo.Actor:
    """A key no other test run shares (its random prefix is part of the count's name)."""
    return repo.Actor(key_id=1, prefix=f"cmk_{uuid.uuid4().hex[:8]}", role=role)


async def hits(quotas: Quotas, who: repo.Actor, n: int) -> list[bool]:
    allowed = []
    for _ in range(n):
        try:
            await quotas.check(who)
            allowed.append(True)
        except RateLimitedError as exc:
            assert int(exc.headers["Retry-After"]) >= 1
            allowed.append(False)
    return allowed


def redis_up() -> bool:
    try:
        socket.create_connection(REDIS, timeout=1).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not redis_up(), reason="Redis not running on 127.0.0.1:6379 (setup.sh installs it)")
def test_workers_counting_in_redis_share_a_key_s_quota():
    first, second = Quotas("4/minute", "redis://127.0.0.1:6379/0"), Quotas("4/minute", "redis://127.0.0.1:6379/0")
    who = actor()

    async def run():
        return await hits(first, who, 2) + await hits(second, who, 2) + await hits(first, who, 1) + await hits(second, who, 1)

    assert asyncio.run(run()) == [True, True, True, True, False, False]


def test_a_worker_whose_redis_is_unreachable_counts_in_its_memory():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # nothing listens once it is closed
    quotas = Quotas("3/minute", f"redis://127.0.0.1:{port}/0")
    who = actor()
    assert asyncio.run(hits(quotas, who, 5)) == [True, True, True, False, False]
