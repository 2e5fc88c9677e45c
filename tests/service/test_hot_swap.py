"""Artifact hot swap: a published version is picked up without restart, requests in flight are
each served by one version, and an admin can roll back."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from datetime import datetime, timezone

import pytest
from fastapi.testclient import TestClient

from matcher import artifacts
from service.app import create_app
from tests.service.conftest import service_settings, wait_ready

pytestmark = pytest.mark.e2e


def publish_copy(artifacts_dir, version: str) -> str:
    """Publish a new version with the same content as ``version`` (as a refresh would)."""
    new = artifacts.new_version(datetime(2999, 1, 1, tzinfo=timezone.utc), "c0ffee0")
    staged = artifacts.staging_dir(artifacts_dir, new)
    shutil.copytree(artifacts_dir / version, staged, dirs_exist_ok=True, copy_function=os.link)
    manifest = json.loads((staged / artifacts.MANIFEST).read_text())
    artifacts.write_manifest(staged, new, {k: v for k, v in manifest.items() if k not in ("version", "files")})
    artifacts.publish(artifacts_dir, staged, new, keep=5)
    return new


def test_publish_is_picked_up_without_mixing_versions_and_rollback(service, service_workspace, database_url, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(service_workspace.home, home, ignore=shutil.ignore_patterns("matcher.db*"))
    app = create_app(service_settings(home, database_url))
    headers = service.auth("staff")
    with TestClient(app) as client:
        first = wait_ready(client)["version"]
        gap = client.get("/v1/gaps", headers=headers).json()["gaps"][0]["gap_id"]
        seen, stop = [], threading.Event()

        def hammer():
            while not stop.is_set():
                r = client.get(f"/v1/gaps/{gap}/prospects?top=5", headers=headers)
                seen.append((r.status_code, r.json().get("version"), r.json().get("list_version")))

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        second = publish_copy(home / "models" / "matcher", first)
        wait_ready(client, second, timeout=60)  # the poller found CURRENT changed, loaded, warmed, swapped
        deadline = time.monotonic() + 30
        while sum(1 for s in seen if s[1] == second) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        for t in threads:
            t.join()
        assert {s[0] for s in seen} == {200}
        lists = {}
        for _, version, list_version in seen:
            lists.setdefault(version, set()).add(list_version)
        assert set(lists) == {first, second}
        assert all(len(v) == 1 for v in lists.values()) and lists[first] != lists[second]  # never a mixed list

        admin = service.auth("admin")
        versions = client.get("/v1/admin/versions", headers=admin).json()
        assert versions["current"] == versions["loaded"] == second
        rolled = client.post("/v1/admin/reload", headers=admin, json={"version": first}).json()
        assert rolled == {**rolled, "loaded": first, "previous": second, "changed": True}
        assert artifacts.current_version(home / "models" / "matcher") == first
        assert client.get("/ready").json()["version"] == first
        assert client.post("/v1/admin/reload", headers=admin, json={"version": "nope"}).status_code == 404
        assert client.post("/v1/admin/reload", headers=admin).json()["changed"] is False
        assert client.post("/v1/admin/reload", headers=service.auth("staff")).status_code == 403


def test_not_ready_until_a_version_is_published(service, service_workspace, database_url, tmp_path):
    home = tmp_path / "empty"
    app = create_app(service_settings(home, database_url))
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        ready = client.get("/ready")
        assert ready.status_code == 503 and not ready.json()["ready"]
        error = client.get("/v1/gaps", headers=service.auth("staff")).json()["error"]
        assert error["code"] == "not_ready" and "matcher build" in error["message"]
        shutil.copytree(service_workspace.home / "models" / "matcher", home / "models" / "matcher")
        assert wait_ready(client)["version"] == service_workspace.manifest["version"]
