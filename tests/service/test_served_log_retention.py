"""Retention of the served-list log on SQLite and PostgreSQL: ``matcher db prune-served`` deletes
old served pages and ranked lists but never a list a shortlist, review or outcome refers to; the
log writer stores a pruned list again when it is served again; a published refresh prunes."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from matcher.features import FEATURES
from matcher.store import Store, repo, upgrade
from matcher.store.models import AuditEntry, RankedList, ServedList
from service.logwriter import ServedLogWriter
from tests.e2e.conftest import cli
from tests.service.databases import BACKENDS, throwaway_database

NOW = datetime.now(timezone.utc)
OLD = NOW - timedelta(days=200)
RECENT = NOW - timedelta(days=5)
ACTOR = repo.Actor(key_id=None, prefix="test", role="staff")


@pytest.fixture(params=BACKENDS)
def url(request, tmp_path):
    with throwaway_database(request.param, tmp_path) as url:
        upgrade(url)
        yield url


@pytest.fixture
def store(url):
    store = Store(url)
    yield store
    store.dispose()


def ranked_list(version: str, gap_id: str, enterprises: list[str], created_at: datetime, value: float = 0.5) -> dict:
    items = [{"enterprise_id": e, "rank": i + 1, "score": 0.9 - i / 100, "features": [value] * len(FEATURES)}
             for i, e in enumerate(enterprises)]
    return {"list_version": version, "artifact_version": "v1", "ranker": "cold-start", "gap_id": gap_id, "query_text": gap_id,
            "filters": {}, "excluded": [], "feature_names": list(FEATURES), "n_items": len(items), "items": items,
            "created_at": created_at}


def served(version: str, at: datetime) -> dict:
    return {"list_version": version, "at": at, "key_id": None, "route": "/v1/gaps/{gap_id}/prospects", "offset": 0, "top": 20,
            "request_id": None}


def fill_log(store: Store) -> None:
    """Old and recent lists: see the expectations in the test below."""
    repo.log_served(store, [
        ranked_list("old-unreferenced", "c.g1", ["E1", "E2"], OLD),
        ranked_list("old-served-since", "c.g1", ["E1", "E2"], OLD),
        ranked_list("old-outcome-earlier", "c.g2", ["E9"], OLD - timedelta(days=10)),
        ranked_list("old-outcome-latest", "c.g2", ["E9", "E1"], OLD),
        ranked_list("recent", "c.g1", ["E1"], RECENT),
    ], [served("old-unreferenced", OLD), served("old-unreferenced", OLD + timedelta(hours=1)),
        served("old-served-since", OLD), served("old-served-since", RECENT),
        served("old-outcome-earlier", OLD - timedelta(days=10)), served("old-outcome-latest", OLD),
        served("recent", RECENT)])
    repo.create_shortlist(store, ACTOR, gap_id="c.g3", chain_id="c", title="t", filters={}, top=1, data_version="v1",
                          model_version="cold-start", snapshot_id="s1",
                          ranked_list=ranked_list("old-shortlisted", "c.g3", ["E5"], OLD),
                          items=[{"rank": 1, "enterprise_id": "E5", "name": "E5", "score": 0.5, "features": {},
                                  "explanation_en": {}, "explanation_zh": {}}])
    repo.log_served(store, [], [served("old-shortlisted", OLD)])
    repo.record_outcome(store, ACTOR, "E9", "c.g2", "contacted", date(2026, 1, 5))  # its latest list: old-outcome-latest


def table(store: Store) -> tuple[set[str], int, int]:
    with store.read() as s:
        lists = set(s.scalars(sa.select(RankedList.list_version)))
        n_served = int(s.scalar(sa.select(sa.func.count(ServedList.id))))
        n_audit = int(s.scalar(sa.select(sa.func.count(AuditEntry.id)).where(AuditEntry.action == "served_log.prune")))
    return lists, n_served, n_audit


def test_prune_deletes_old_log_rows_but_never_a_list_shortlists_reviews_or_outcomes_refer_to(store):
    fill_log(store)
    before = table(store)
    expected = {"served_deleted": 4, "lists_deleted": 2, "lists_protected": 2, "lists_kept_served": 1}

    dry = repo.prune_served(store, 180, dry_run=True, feature_names=list(FEATURES))

    assert {k: dry[k] for k in expected} == expected and dry["dry_run"]
    assert table(store) == before  # nothing deleted, no audit entry

    result = repo.prune_served(store, 180, feature_names=list(FEATURES))

    assert {k: result[k] for k in expected} == expected
    lists, n_served, n_audit = table(store)
    assert lists == {"old-served-since", "old-outcome-latest", "old-shortlisted", "recent"}
    assert n_served == before[1] - 4 and n_audit == 1
    with store.read() as s:
        kept = {(v, at.date()) for v, at in s.execute(sa.select(ServedList.list_version, ServedList.at))}
    assert ("old-shortlisted", OLD.date()) in kept and ("old-outcome-latest", OLD.date()) in kept  # sources keep their pages
    assert ("old-served-since", OLD.date()) not in kept and ("old-served-since", RECENT.date()) in kept
    entry = repo.list_audit(store, limit=1)[0]
    assert entry["action"] == "served_log.prune" and entry["detail"]["lists_deleted"] == 2
    assert entry["detail"]["served_deleted"] == 4 and entry["detail"]["older_than_days"] == 180

    again = repo.prune_served(store, 180, feature_names=list(FEATURES))
    assert (again["served_deleted"], again["lists_deleted"]) == (0, 0)


def test_a_list_a_verdict_refers_to_is_kept_even_after_its_shortlist_rows_are_its_only_reference(store):
    version = "reviewed"
    sid = repo.create_shortlist(store, ACTOR, gap_id="c.g4", chain_id="c", title="t", filters={}, top=1, data_version="v1",
                                model_version="cold-start", snapshot_id="s1",
                                ranked_list=ranked_list(version, "c.g4", ["E7"], OLD),
                                items=[{"rank": 1, "enterprise_id": "E7", "name": "E7", "score": 0.5, "features": {},
                                        "explanation_en": {}, "explanation_zh": {}}])
    item = repo.get_shortlist(store, sid)["items"][0]
    repo.review_item(store, repo.Actor(key_id=None, prefix="lead", role="chain_leader"), sid, item["item_id"], "approve", None)

    repo.prune_served(store, 30, feature_names=list(FEATURES))

    assert version in table(store)[0]


def test_the_log_writer_stores_a_pruned_list_again_when_it_is_served_again(store):
    record = {k: v for k, v in ranked_list("pruned-then-served", "c.g1", ["E1"], OLD).items()}
    writer = ServedLogWriter(store)
    writer.log(record, "/v1/gaps/{gap_id}/prospects", 0, 20, None, "r1")
    assert writer.flush() == 1
    with store.write() as s:
        s.execute(sa.update(ServedList).values(at=OLD))
    assert repo.prune_served(store, 180)["lists_deleted"] == 1
    assert "pruned-then-served" not in table(store)[0]

    writer.log(record, "/v1/gaps/{gap_id}/prospects", 20, 20, None, "r2")  # the writer believes it is stored

    assert writer.flush() == 1 and writer.dropped == 0
    assert "pruned-then-served" in table(store)[0]
    assert repo.served_count(store, "pruned-then-served") == 1
    assert repo.get_ranked_list(store, "pruned-then-served")["items"] == record["items"]


def test_prune_command_counts_deletes_and_refuses_a_retention_of_zero(url, store, tmp_path, monkeypatch):
    fill_log(store)
    home = tmp_path / "home"

    dry = json.loads(cli("db", "prune-served", "--dry-run", "--home", home, "--database-url", url, "--json").stdout)
    line = cli("db", "prune-served", "--older-than", "180", "--home", home, "--database-url", url).stdout

    assert dry["dry_run"] and dry["older_than_days"] == 180 and (dry["served_deleted"], dry["lists_deleted"]) == (4, 2)
    assert "deleted 4 served pages and 2 ranked lists" in line and "kept 2 older lists" in line
    assert table(store)[0] == {"old-served-since", "old-outcome-latest", "old-shortlisted", "recent"}
    short = json.loads(cli("db", "prune-served", "--older-than", "1", "--home", home, "--database-url", url, "--json").stdout)
    assert short["lists_deleted"] == 2 and table(store)[0] == {"old-outcome-latest", "old-shortlisted"}  # the sources

    monkeypatch.setenv("MATCHER_SERVED_LOG_RETENTION_DAYS", "0")
    off = cli("db", "prune-served", "--home", home, "--database-url", url, expect=2)
    assert "MATCHER_SERVED_LOG_RETENTION_DAYS=0" in off.stderr and "--older-than" in off.stderr
    assert cli("db", "prune-served", "--older-than", "0", "--home", home, "--database-url", url, expect=2).exit_code == 2


# --- the nightly refresh prunes after it publishes ------------------------------------------------


@pytest.fixture
def refresh_home(tmp_path):
    from tests.pipelines.test_refresh import make_home

    return make_home(tmp_path / "refresh-home")


def test_a_published_refresh_prunes_the_log_and_a_failed_prune_does_not_fail_it(refresh_home, url, store, monkeypatch):
    from matcher.store import retention
    from matcher.settings import Settings
    from pipelines.refresh_config import refresh_config
    from tests.pipelines.test_refresh import config_for, next_export, refresh

    fill_log(store)
    # The refresh keeps the log as long as the service's setting says, by default (180 days).
    config = replace(config_for(refresh_home), database_url=url)
    assert config.served_log_retention_days == Settings().served_log_retention_days == 180

    record = refresh(refresh_home, next_export(refresh_home), config=config)

    assert record["status"] == "published"
    step = next(s for s in record["steps"] if s["step"] == "prune-served")
    assert (step["served_deleted"], step["lists_deleted"], step["lists_protected"]) == (4, 2, 2)
    assert "old-unreferenced" not in table(store)[0]

    def broken(*_args, **_kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(retention, "prune_served_log", broken)
    second = refresh(refresh_home, next_export(refresh_home, "firms-2.csv", shrink_to=55), config=replace(config, allow_shrink=True))

    assert second["status"] == "published"
    assert next(s for s in second["steps"] if s["step"] == "prune-served")["error"] == "RuntimeError: database went away"
    assert refresh_config(Settings(home=refresh_home)).served_log_retention_days == 180
    assert refresh_config(Settings(home=refresh_home, served_log_retention_days=30)).served_log_retention_days == 30
    # 0 keeps everything: a published refresh then has no prune step.
    third = refresh(refresh_home, next_export(refresh_home, "firms-3.csv", shrink_to=50),
                    config=replace(config, allow_shrink=True, served_log_retention_days=0))
    assert third["status"] == "published" and "prune-served" not in [s["step"] for s in third["steps"]]
