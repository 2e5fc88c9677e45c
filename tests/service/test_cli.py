"""``matcher keys`` and ``matcher db upgrade`` on both backends; ``matcher serve --help``."""

from __future__ import annotations

import json

import pytest

from matcher.store import Store, head_revision, repo
from tests.service.databases import BACKENDS, throwaway_database


@pytest.fixture(params=BACKENDS)
def url(request, tmp_path):
    with throwaway_database(request.param, tmp_path) as url:
        yield url


def test_keys_are_shown_once_listed_without_secrets_and_revoked(run_main, url, tmp_path):
    code, out, err = run_main(["db", "upgrade", "--home", tmp_path, "--database-url", url, "--json"])
    assert code == 0 and json.loads(out)["after"] == head_revision()
    code, out, _ = run_main(["keys", "create", "--role", "chain_leader", "--chain", "artificial-intelligence",
                             "--name", "AI lead", "--home", tmp_path, "--database-url", url, "--json"])
    created = json.loads(out)
    assert code == 0 and created["key"].startswith(created["prefix"]) and created["chains"] == ["artificial-intelligence"]
    store = Store(url)
    try:
        assert repo.authenticate(store, created["key"]).role == "chain_leader"
        code, out, _ = run_main(["keys", "list", "--home", tmp_path, "--database-url", url, "--json"])
        assert code == 0 and created["key"] not in out and json.loads(out)[0]["prefix"] == created["prefix"]
        code, out, _ = run_main(["keys", "revoke", created["prefix"], "--home", tmp_path, "--database-url", url])
        assert code == 0 and repo.authenticate(store, created["key"]) is None
    finally:
        store.dispose()


@pytest.mark.parametrize("args, says", [
    (["--role", "chain_leader"], "needs at least one --chain"),
    (["--role", "chain_leader", "--chain", "no-such-chain"], "unknown chain"),
    (["--role", "boss"], "not a role"),
    (["--role", "staff", "--chain", "artificial-intelligence"], "chain_leader keys only"),
])
def test_bad_key_requests_exit_non_zero_with_one_line(run_main, tmp_path, args, says):
    code, out, err = run_main(["keys", "create", *args, "--home", tmp_path])
    assert code != 0 and out == "" and err.startswith("error: ") and says in err and len(err.strip().splitlines()) == 1


def test_unreachable_database_is_one_line(run_main, tmp_path):
    code, _, err = run_main(["db", "upgrade", "--home", tmp_path, "--database-url", "postgresql://postgres@127.0.0.1:1/x"])
    assert code != 0 and err.startswith("error: database") and len(err.strip().splitlines()) == 1


def test_serve_and_keys_have_help(run_main):
    for command in (["serve", "--help"], ["keys", "create", "--help"], ["db", "upgrade", "--help"]):
        code, out, _ = run_main(command)
        assert code == 0 and "Usage" in out
