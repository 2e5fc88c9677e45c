"""Kill the service in the middle of a burst of review writes, restart it on the same database:
every review the service acknowledged (2xx) is there, and no review is there twice.

The service runs as a real ``matcher serve`` subprocess with two workers in its own process group;
the whole group gets SIGKILL (no shutdown hooks, no flush), as in a power cut or an OOM kill.
Each review carries a unique comment (to find it) and an ``Idempotency-Key``; after the restart the
writes that were never acknowledged are sent again with the same key, and must end up recorded
exactly once too (replayed when the first attempt had committed before the kill).

Runs on SQLite, and on PostgreSQL (a throwaway database on 127.0.0.1:5432, dropped afterwards)
when one is reachable.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.conftest import EMBEDDING_PATH_SETTINGS, REPO_ROOT
from tests.e2e.conftest import cli
from tests.service.databases import BACKENDS, throwaway_database

pytestmark = pytest.mark.e2e

THREADS = 6
PER_THREAD = 40  # upper bound; the kill normally lands well before
KILL_AFTER_ACKS = 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_key(home: Path, env: dict, role: str, *chains: str) -> str:
    """``matcher keys create`` (in-process) on the database the service will use."""
    chain_args = [a for c in chains for a in ("--chain", c)]
    result = cli("keys", "create", "--role", role, *chain_args, "--json", "--home", home, "--database-url", env["DATABASE_URL"])
    return json.loads(result.stdout)["key"]


class Service:
    """``matcher serve`` in its own process group."""

    def __init__(self, home: Path, env: dict, log_path: Path, workers: int = 2):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipelines", "serve", "--home", str(home), "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", str(workers)],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT, start_new_session=True,
        )

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"matcher serve exited {self.process.returncode}:\n{self.log()}"
            try:
                if httpx.get(self.url + "/ready", timeout=2).json().get("ready"):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"service not ready after {timeout} s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL the whole process group (server and workers) at once."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self._log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if not self._log.closed:
            self._log.close()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]


@pytest.fixture(params=BACKENDS)
def database_env(request, tmp_path):
    """Environment for the service, with its ``DATABASE_URL`` (also given to the CLI): a SQLite
    file of the test, or a throwaway PostgreSQL database (skipped when none is reachable)."""
    # The child embeds on the run's embedding path (the workspace's vectors were made on it).
    env = {k: v for k, v in os.environ.items() if (not k.startswith("MATCHER_") or k in EMBEDDING_PATH_SETTINGS) and k != "DATABASE_URL"}
    # No warm-up ranking of every gap at start: this test is about writes, and starts twice.
    # No quota: the burst of reviews is the test's load, not a caller to slow down.
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MATCHER_SERVICE_WARM_GAPS": "false",
                "MATCHER_SERVICE_WARM_EXPLAIN_TOP": "0", "MATCHER_SERVICE_RATE_LIMIT": "off"})
    with throwaway_database(request.param, tmp_path) as url:
        env["DATABASE_URL"] = url
        yield env


def test_acknowledged_reviews_survive_a_kill_exactly_once(workspace_copy, database_env, tmp_path):
    home, env = workspace_copy.home, database_env
    gap = json.loads((workspace_copy.version_dir / "gaps.json").read_text())[0]
    staff = create_key(home, env, "staff")
    leader = create_key(home, env, "chain_leader", gap["chain_id"])
    log_path = tmp_path / "serve.log"

    service = Service(home, env, log_path)
    try:
        service.wait_ready()
        created = httpx.post(service.url + "/v1/shortlists", json={"gap_id": gap["gap_id"], "top": 20},
                             headers={"Authorization": f"Bearer {staff}"}, timeout=60)
        assert created.status_code in (200, 201), created.text
        shortlist = created.json()
        shortlist_id, item_ids = shortlist["shortlist_id"], [i["item_id"] for i in shortlist["items"]]
        assert len(item_ids) >= 4

        acked: dict[str, dict] = {}  # comment -> request, acknowledged with a 2xx
        sent: dict[str, dict] = {}  # comment -> request, every request that left this process
        lock = threading.Lock()
        enough = threading.Event()
        unexpected: list[str] = []
        verdicts = [("approve", None), ("reject", "risk"), ("defer", None), ("reject", "already_in_contact")]

        def burst(thread: int) -> None:
            with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {leader}"}, timeout=30) as client:
                for i in range(PER_THREAD):
                    verdict, reason = verdicts[(thread + i) % len(verdicts)]
                    comment = f"burst t{thread} #{i} {uuid.uuid4().hex[:8]}"
                    body = {"verdict": verdict, "comment": comment, **({"reason_code": reason} if reason else {})}
                    request = {"item_id": item_ids[(thread * 3 + i) % len(item_ids)], "body": body, "key": uuid.uuid4().hex}
                    with lock:
                        sent[comment] = request
                    try:
                        response = client.post(f"/v1/shortlists/{shortlist_id}/items/{request['item_id']}/review",
                                               json=body, headers={"Idempotency-Key": request["key"]})
                    except httpx.HTTPError:
                        return  # the server died under us: this one is unacknowledged
                    if 200 <= response.status_code < 300:
                        with lock:
                            acked[comment] = request
                            if len(acked) >= KILL_AFTER_ACKS:
                                enough.set()
                    else:  # a valid review is never refused; only the kill may cut it short
                        with lock:
                            unexpected.append(f"{response.status_code}: {response.text[:300]}")

        threads = [threading.Thread(target=burst, args=(t,)) for t in range(THREADS)]
        for t in threads:
            t.start()
        enough.wait(timeout=60)
        service.kill()
        for t in threads:
            t.join(timeout=60)
        print(f"{len(acked)} reviews acknowledged, {len(sent) - len(acked)} in flight or refused when the service was killed")
        assert not unexpected, unexpected[:5]
        assert acked, f"no review was acknowledged before the kill:\n{service.log()}"
        assert len(sent) > len(acked) or len(sent) == THREADS * PER_THREAD
    finally:
        service.stop()

    restarted = Service(home, env, log_path)
    try:
        restarted.wait_ready()
        with httpx.Client(base_url=restarted.url, headers={"Authorization": f"Bearer {leader}"}, timeout=30) as client:
            def recorded() -> Counter:
                detail = client.get(f"/v1/shortlists/{shortlist_id}")
                assert detail.status_code == 200, detail.text
                items = detail.json()["items"]
                for item in items:  # an item's status is the projection of its last review, never half-written
                    reviews = sorted(item["reviews"], key=lambda r: r["review_id"])
                    expected = {"approve": "approved", "reject": "rejected", "defer": "deferred"}[reviews[-1]["verdict"]] if reviews else "pending"
                    assert item["status"] == expected, item
                return Counter(r["comment"] for item in items for r in item["reviews"])

            after_restart = recorded()
            missing = [c for c in acked if after_restart[c] == 0]
            assert not missing, f"{len(missing)} of {len(acked)} acknowledged reviews lost: {missing[:5]}"
            assert not [c for c, n in after_restart.items() if n > 1], "a review recorded twice"
            assert set(after_restart) <= set(sent), "a review nobody sent"

            # Retry what was never acknowledged with the same idempotency key: recorded exactly once.
            for comment, request in sent.items():
                if comment in acked:
                    continue
                response = client.post(f"/v1/shortlists/{shortlist_id}/items/{request['item_id']}/review",
                                       json=request["body"], headers={"Idempotency-Key": request["key"]})
                assert response.status_code in (200, 201), response.text
                assert response.json()["replayed"] == (after_restart[comment] == 1), (comment, response.json())
            final = recorded()
            assert set(final) == set(sent)
            assert max(final.values()) == 1, "a retried review recorded twice"
    finally:
        restarted.stop()
