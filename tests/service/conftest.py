"""One built workspace (the real model, 400 sample enterprises) and one running service per
database backend (SQLite file and a throwaway PostgreSQL database) for the whole session."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from matcher.settings import Settings
from matcher.store import repo
from service.app import create_app
from tests.e2e.conftest import Workspace, build_workspace, shared_model  # noqa: F401  (fixture)
from tests.service.databases import BACKENDS, throwaway_database

AI = "artificial-intelligence"


def other_chain(service) -> str:
    """A chain of the served map other than AI."""
    return next(c.id for c in service.app.state.svc.holder.current.catalog.chain_map.chains if c.id != AI)


def role_keys(service, label: str) -> dict:
    """A test module's own keys, one per role and chain scope (quotas count per key), named by
    ``label``: admin, staff, AI leader, another chain's leader, general leader, general leader
    also leading AI."""
    from matcher.store import repo

    store = service.store
    return {
        "admin": service.keys["admin"],
        "staff": repo.create_key(store, "staff", name=f"{label} staff")[0],
        "leader": repo.create_key(store, "chain_leader", [AI], name=f"{label} AI leader")[0],
        "other_leader": repo.create_key(store, "chain_leader", [other_chain(service)], name=f"{label} other leader")[0],
        "general": repo.create_key(store, "general_leader", name=f"{label} general leader")[0],
        "general_ai": repo.create_key(store, "general_leader", [AI], name=f"{label} general leader, also AI")[0],
    }


def service_settings(home, database_url: str, **overrides) -> Settings:
    values = dict(home=home, database_url=database_url, service_auth_cache_s=0, service_exclusion_poll_s=0,
                  service_warm_gaps=False, service_warm_explain_top=0, service_reload_poll_s=0.2,
                  service_log_flush_s=0.1)
    return Settings(**{**values, **overrides})


def wait_ready(client: TestClient, version: str | None = None, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/ready")
        body = response.json()
        if response.status_code == 200 and (version is None or body["version"] == version):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"service not ready (version {version}) after {timeout} s: {body}")
        time.sleep(0.05)


@dataclass
class Service:
    app: object
    client: TestClient
    keys: dict  # role name -> key
    backend: str

    @property
    def store(self):
        return self.app.state.svc.store

    def auth(self, who: str = "admin") -> dict:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def get(self, path: str, who: str = "admin", **kwargs):
        return self.client.get(path, headers={**self.auth(who), **kwargs.pop("headers", {})}, **kwargs)

    def post(self, path: str, who: str = "admin", **kwargs):
        return self.client.post(path, headers={**self.auth(who), **kwargs.pop("headers", {})}, **kwargs)

    def gap(self, chain: str = AI) -> str:
        gaps = self.get(f"/v1/gaps?chain={chain}").json()["gaps"]
        return gaps[0]["gap_id"]

    def other_chain_gap(self) -> str:
        gaps = self.get("/v1/gaps").json()["gaps"]
        return next(g["gap_id"] for g in gaps if g["chain_id"] != AI)

    def flush_log(self) -> None:
        self.app.state.svc.writer.flush()


@pytest.fixture(scope="session")
def service_workspace(tmp_path_factory, shared_model) -> Workspace:
    """Sample -> ingest -> build once; tests never change it (hot-swap tests copy it)."""
    return build_workspace(tmp_path_factory.mktemp("service-workspace"))


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def database_url(backend, tmp_path_factory):
    with throwaway_database(backend, tmp_path_factory.mktemp(f"db-{backend}")) as url:
        yield url


@pytest.fixture(scope="session")
def service(service_workspace, database_url, backend) -> Service:
    app = create_app(service_settings(service_workspace.home, database_url))
    with TestClient(app) as client:
        wait_ready(client)
        store = app.state.svc.store
        other = next(c.id for c in app.state.svc.holder.current.catalog.chain_map.chains if c.id != AI)
        keys = {
            "admin": repo.create_key(store, "admin", name="admin")[0],
            "staff": repo.create_key(store, "staff", name="staff member")[0],
            "leader": repo.create_key(store, "chain_leader", [AI], name="AI chain leader")[0],
            "other_leader": repo.create_key(store, "chain_leader", [other], name="other chain leader")[0],
        }
        yield Service(app, client, keys, backend)
