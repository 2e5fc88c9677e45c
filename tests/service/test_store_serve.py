"""``matcher serve`` and CLI papercuts, on real processes: a SIGKILLed worker is replaced within
seconds however busy it was; a SQLite URL in a missing directory is refused in one line (no
directory, no empty database, no service without keys); a mapping with a YAML syntax error is one
line naming where."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import REPO_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def matcher(*args, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines", *map(str, args)], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env)


def service_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATCHER_") and k != "DATABASE_URL"}
    return {**env, "MATCHER_SERVICE_WARM_GAPS": "false"}


def workers_of(master: int) -> set[int]:
    """Pids of the worker processes ``master`` spawned (not its resource tracker)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == master and b"spawn_main" in cmdline:
            found.add(int(entry.name))
    return found


def wait_for(condition, timeout: float, what: str, log=lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not within {timeout} s\n{log()}")


def health(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_worker_killed_while_busy_is_replaced_within_seconds(tmp_path):
    """The worker is stopped first (as a worker busy in a long computation does not answer the
    supervisor's health ping at once), then killed with a ping outstanding: uvicorn's own
    supervisor waited for the health-check timeout (120 s) before replacing it."""
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log_file:
        server = subprocess.Popen([sys.executable, "-m", "pipelines", "serve", "--home", home, "--port", str(port),
                                   "--workers", "2", "--no-access-log"], cwd=REPO_ROOT, env=service_env(),
                                  stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    log = lambda: log_path.read_text(errors="replace")[-3000:]  # noqa: E731
    stopped: list[int] = []
    try:
        wait_for(lambda: log().count("Application startup complete") >= 2 and len(workers_of(server.pid)) == 2,
                 240, "two workers started", log)
        first, second = sorted(workers_of(server.pid))
        assert health(url)

        os.kill(first, signal.SIGSTOP)
        stopped.append(first)
        time.sleep(2)  # the supervisor pings every 0.5 s: one ping to it is now waiting for an answer
        os.kill(first, signal.SIGKILL)
        stopped.remove(first)
        killed_at = time.monotonic()

        replacement = wait_for(lambda: workers_of(server.pid) - {first, second}, 10, "a new worker", log).pop()
        assert time.monotonic() - killed_at < 10 and first not in workers_of(server.pid)
        assert f"Child process [{first}] died" in log()

        # Only the new worker can answer once the other original one is stopped.
        os.kill(second, signal.SIGSTOP)
        stopped.append(second)
        wait_for(lambda: health(url), 180, f"the new worker {replacement} serving", log)
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)


def test_serve_refuses_a_sqlite_database_in_a_missing_directory(tmp_path):
    missing = tmp_path / "nonexistent" / "dir"
    home = tmp_path / "home"
    home.mkdir()

    result = matcher("serve", "--home", home, "--port", free_port(), "--database-url", f"sqlite:///{missing / 'x.db'}",
                     env=service_env())

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"directory {missing} does not exist" in lines[0], result.stderr
    assert not missing.parent.exists()


def test_a_mapping_with_a_yaml_syntax_error_is_one_line(tmp_path):
    source = tmp_path / "enterprises.csv"
    source.write_text("id,name\n1,Acme\n")
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("source: test\ncolumns:\n  enterprise_id: [id\n  name: name\n")

    result = matcher("ingest", source, "--mapping", mapping, "--home", tmp_path / "home", env=service_env())

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{mapping}: not valid YAML: line 4, column 7" in lines[0]
