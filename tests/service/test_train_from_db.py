"""``matcher train`` learns from outcomes and review verdicts recorded through the service."""

from __future__ import annotations

import json
import shutil
from datetime import date

import pytest

from matcher.store import Store, repo, upgrade
from tests.e2e.conftest import cli
from tests.service.databases import throwaway_database

pytestmark = pytest.mark.e2e


def test_train_reads_database_outcomes_and_verdicts(service_workspace, backend, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(service_workspace.home, home, ignore=shutil.ignore_patterns("matcher.db*"))
    version_dir = sorted((home / "models" / "matcher").glob("2*"))[-1]
    gaps = [g["gap_id"] for g in json.loads((version_dir / "gaps.json").read_text())]
    import pandas as pd

    ids = pd.read_parquet(version_dir / "enterprises.parquet")["enterprise_id"].tolist()
    with throwaway_database(backend, tmp_path) as url:
        upgrade(url)
        store = Store(url)
        actor = repo.Actor(key_id=None, prefix="test", role="staff")
        repo.record_outcome(store, actor, ids[0], gaps[0], "contacted", date(2026, 3, 1))
        repo.record_outcome(store, actor, ids[0], gaps[0], "landed", date(2026, 6, 1))
        repo.record_outcome(store, actor, ids[1], gaps[0], "declined", date(2026, 4, 1), reason="moved to Suzhou")
        repo.record_outcome(store, actor, ids[2], gaps[1], "visited", date(2026, 5, 1))  # still open: not a label
        ranked = {"list_version": "l1", "artifact_version": "v", "ranker": "cold-start", "gap_id": gaps[1], "query_text": "t",
                  "filters": {}, "excluded": [], "feature_names": [], "n_items": 0, "items": []}
        sid = repo.create_shortlist(store, actor, gap_id=gaps[1], chain_id="c", title="t", filters={}, top=3, data_version="v",
                                    model_version="cold-start", snapshot_id="s", ranked_list=ranked,
                                    items=[{"rank": i + 1, "enterprise_id": ids[3 + i], "name": "n", "score": 0.5, "features": {},
                                            "explanation_en": {}, "explanation_zh": {}} for i in range(3)])
        items = repo.get_shortlist(store, sid)["items"]
        leader = repo.Actor(key_id=None, prefix="lead", role="chain_leader")
        repo.review_item(store, leader, sid, items[0]["item_id"], "reject", "not_chain_fit")
        repo.review_item(store, leader, sid, items[1]["item_id"], "approve", None)
        repo.review_item(store, leader, sid, items[2]["item_id"], "reject", "risk")
        store.dispose()

        report = json.loads(cli("train", "--home", home, "--database-url", url, "--json", expect=None).stdout)
        outcomes = report["outcomes"]
        assert outcomes["sources"] == {"files": 0, "database": 2, "reviews": 1}
        assert outcomes["reviews"] == {"verdicts": 3, "used_as_negative": 1, "not_used": 2}
        assert outcomes["usable"] == 3 and outcomes["rejected_reasons"] == {"still open (no final outcome yet)": 1}
        assert report["status"] == "published" and report["ranker"] == "cold-start"  # 3 labels: too few for a model

        files = cli("train", "--home", home, "--no-database", expect=None)
        assert files.exit_code != 0 and "--outcomes" in files.stderr
