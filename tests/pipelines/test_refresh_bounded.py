"""The refresh in bounded memory (issue 14): the diff from the id and hash columns, the new
snapshot reordered from a memory-mapped copy a chunk at a time, the staged table and vectors
(parent vectors copied a chunk at a time), the change report from the rows it names, the growth
rescoring in chunks, and an in-place IVF update that keeps the snapshot's row order, so the
refreshed version's table and vectors are a full build's."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from matcher import artifacts, catalog as C, schemas as S, snapshot as snapshot_module
from matcher.catalog import Catalog
from matcher.enterprise_table import read_enterprise_table, write_enterprise_table
from matcher.refresh import KEY_COLUMNS, ReportInputs, SnapshotDiff, change_report, diff_keys, enterprise_keys
from matcher.snapshot import add_hashes, find_snapshot, ingest, load_enterprises
from pipelines import refresh_version
from pipelines.build_config import BuildConfig
from pipelines.build_index import build
from pipelines.refresh_report import VersionView, standing_lists, version_change_report
from tests.factories import HashingEncoder, make_enterprises, make_mapping, make_validated, write_source
from tests.pipelines import test_refresh as R
from tests.pipelines.test_refresh import base_home, home  # noqa: F401 (fixtures)

IVF = "IVF8,SQ8"


def pandas_diff(before: pd.DataFrame, after: pd.DataFrame) -> SnapshotDiff:
    """The diff as it was made before issue 14 (both tables in pandas), the reference."""
    old = before.set_index(S.ENTERPRISE_ID)[[S.PROFILE_HASH, S.CONTENT_HASH]]
    new = after.set_index(S.ENTERPRISE_ID)[[S.PROFILE_HASH, S.CONTENT_HASH]]
    in_old = new.index.isin(old.index)
    common = new.index[in_old]
    text = old.loc[common, S.PROFILE_HASH].to_numpy() != new.loc[common, S.PROFILE_HASH].to_numpy()
    other = ~text & (old.loc[common, S.CONTENT_HASH].to_numpy() != new.loc[common, S.CONTENT_HASH].to_numpy())
    return SnapshotDiff(added=new.index[~in_old].tolist(), removed=old.index[~old.index.isin(new.index)].tolist(),
                        changed_text=common[text].tolist(), changed_other=common[other].tolist(),
                        unchanged=int((~text & ~other).sum()), before=len(old), after=len(new))


def test_diff_of_a_version_table_and_a_snapshot_parquet_equals_the_pandas_diff(tmp_path):
    before = add_hashes(make_validated(120, seed=0))
    after = before.drop(columns=[S.PROFILE_HASH, S.CONTENT_HASH]).copy()
    after.loc[[3, 40, 77], S.DESCRIPTION] = ["Now makes quantum sensors.", "Robots for dairy farms.",
                                             "Solid-state batteries."]
    after.loc[[5, 6, 90], S.EMPLOYEES] = [900, 901, 902]
    after = add_hashes(after).drop(index=[10, 11, 12, 60])
    after = pd.concat([after, add_hashes(make_validated(5, seed=9))], ignore_index=True).sample(frac=1.0, random_state=2)
    write_enterprise_table(before.assign(**{S.FAISS_ID: np.arange(len(before))}), tmp_path / "enterprises.arrow")
    after.to_parquet(tmp_path / "enterprises.parquet", index=False)

    diff = diff_keys(enterprise_keys(tmp_path / "enterprises.arrow"), enterprise_keys(tmp_path / "enterprises.parquet"))

    assert diff == pandas_diff(before, after)
    assert (len(diff.added), len(diff.removed), len(diff.changed_text), len(diff.changed_other)) == (5, 4, 3, 3)
    assert enterprise_keys(tmp_path / "enterprises.arrow").column_names == list(KEY_COLUMNS)


def test_ingest_in_a_given_order_writes_the_rows_a_chunk_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setattr(snapshot_module, "ORDER_CHUNK_ROWS", 7)
    source = write_source(make_enterprises(60, seed=0), tmp_path / "firms.csv")
    plain = ingest(source, make_mapping(), tmp_path / "plain", 0.05, now=R.NOW, chunk_rows=16)
    positions = np.random.default_rng(0).permutation(60)
    seen = {}

    def order(keys: pa.Table) -> np.ndarray:
        seen["columns"], seen["ids"] = keys.column_names, keys[S.ENTERPRISE_ID].to_pylist()
        return positions

    ordered = ingest(source, make_mapping(), tmp_path / "ordered", 0.05, now=R.NOW, chunk_rows=16, order=order)

    expected = load_enterprises(plain)
    assert seen == {"columns": [S.ENTERPRISE_ID, S.PROFILE_HASH], "ids": expected[S.ENTERPRISE_ID].tolist()}
    pd.testing.assert_frame_equal(load_enterprises(ordered), expected.iloc[positions].reset_index(drop=True))
    assert ordered.manifest["counts"] == plain.manifest["counts"]
    assert sorted(p.name for p in ordered.path.iterdir()) == sorted(p.name for p in plain.path.iterdir())

    with pytest.raises(ValueError, match="not a permutation"):
        ingest(source, make_mapping(), tmp_path / "bad", 0.05, now=R.NOW, order=lambda keys: np.zeros(60, np.int64))
    assert not [p for p in (tmp_path / "bad").iterdir() if p.name != "rejected"]


def test_copy_vectors_a_chunk_at_a_time_skips_new_and_changed_rows():
    source = np.arange(40, dtype=np.float32).reshape(10, 4)
    rows = np.array([0, 1, -1, 3, 4, 5, 9, 8, -1, 2, 6])
    out = np.full((11, 4), -7.0, dtype=np.float32)

    refresh_version.copy_vectors(source, rows, out, skip=np.array([4]), chunk_rows=3)

    keep = (rows >= 0) & (np.arange(11) != 4)
    assert np.array_equal(out[keep], source[rows[keep]]) and (out[~keep] == -7.0).all()


def scratch_build(home, tmp_path, snapshot_id, **overrides):
    """A full build of one snapshot in an empty workspace (every profile embedded)."""
    scratch = tmp_path / "scratch"
    (scratch / "models" / "snapshots").mkdir(parents=True)
    shutil.copytree(home / "models" / "snapshots" / snapshot_id, scratch / "models" / "snapshots" / snapshot_id)
    config = R.config_for(home, **overrides).build
    config = BuildConfig(**{**config.__dict__, "snapshots_dir": scratch / "models" / "snapshots",
                            "artifacts_dir": scratch / "models" / "matcher", "cache_dir": scratch / "models" / "cache"})
    version, _ = build(config, encoder=HashingEncoder(dim=64), now=R.NOW)
    return Catalog.load(scratch / "models" / "matcher" / version)


def test_ivf_refresh_keeps_the_snapshot_order_so_table_and_vectors_are_a_full_builds(tmp_path):
    home = R.make_home(tmp_path / "ivf", index_factory=IVF)

    record = R.refresh(home, R.next_export(home), config=R.config_for(home, index_factory=IVF))

    index = record["index"]
    assert index["mode"] == "in-place" and index["removal"] == "removed" and index["same_order_as_snapshot"]
    refreshed = Catalog.load(home / "models" / "matcher" / record["version"])
    rebuilt = scratch_build(home, tmp_path, record["snapshot_id"], index_factory=IVF)
    pd.testing.assert_frame_equal(refreshed.enterprises, rebuilt.enterprises)
    assert np.array_equal(refreshed.searcher.vectors, rebuilt.searcher.vectors)
    assert refreshed.enterprises[S.ENTERPRISE_ID].tolist() == load_enterprises(
        find_snapshot(home / "models" / "snapshots", record["snapshot_id"]))[S.ENTERPRISE_ID].tolist()


def test_a_snapshot_not_in_refresh_order_is_rewritten_in_live_order(tmp_path):
    home = R.make_home(tmp_path / "ivf", index_factory=IVF)
    source = R.next_export(home)
    # Ingested by hand first (source order): the refresh reuses it; its changed profiles are
    # not last, where the IVF update re-adds them.
    ingest(source, make_mapping(), home / "models" / "snapshots", 0.05, now=R.NOW)

    record = R.refresh(home, source, config=R.config_for(home, index_factory=IVF))

    assert record["steps"][0]["snapshot"].startswith("reused")
    assert record["index"]["mode"] == "in-place" and not record["index"]["same_order_as_snapshot"]
    path = home / "models" / "matcher" / record["version"]
    artifacts.verify(path)
    refreshed = Catalog.load(path)
    rebuilt = scratch_build(home, tmp_path, record["snapshot_id"], index_factory=IVF)
    # The changed profiles were re-added with the new ones, after every unchanged one.
    changed = make_enterprises(R.N, seed=0).loc[[1, 2], "firm_id"].tolist()
    assert refreshed.enterprises[S.ENTERPRISE_ID].tolist()[-5:-3] == changed
    by_id = dict(zip(rebuilt.enterprises[S.ENTERPRISE_ID], rebuilt.searcher.vectors))
    for eid, vector in zip(refreshed.enterprises[S.ENTERPRISE_ID], refreshed.searcher.vectors):
        assert np.array_equal(vector, by_id[eid])
    pd.testing.assert_frame_equal(refreshed.enterprises.set_index(S.ENTERPRISE_ID).sort_index(),
                                  rebuilt.enterprises.set_index(S.ENTERPRISE_ID).sort_index())


def test_change_report_from_the_rows_it_names_equals_one_from_whole_tables(home):  # noqa: F811
    parent = R.current(home)
    record = R.refresh(home, R.next_export(home))
    config = R.config_for(home)
    old = VersionView.load(home / "models" / "matcher" / parent)
    new = VersionView.load(home / "models" / "matcher" / record["version"])

    whole = change_report(ReportInputs(
        standing_before=standing_lists(old, config), standing_after=standing_lists(new, config),
        enterprises_before=read_enterprise_table(old.path / "enterprises.arrow"),
        enterprises_after=read_enterprise_table(new.path / "enterprises.arrow"),
        gaps_before=old.gaps, gaps_after=new.gaps, segments_before=old.segments, segments_after=new.segments,
        assignments_before=old.assignments, assignments_after=new.assignments,
        ranker_before=old.ranker_name, ranker_after=new.ranker_name,
    ))

    assert version_change_report(config, old.path, record["version"]) == whole == record["report"]
    assert any(g["entered"] or g["left"] or g["moves"] for g in whole["gaps"])
    eid = make_enterprises(R.N, seed=0).loc[7, "firm_id"]
    rows = new.enterprise_rows({eid, "nobody"})
    assert rows[S.ENTERPRISE_ID].tolist() == [eid]
    full = read_enterprise_table(new.path / "enterprises.arrow")
    pd.testing.assert_frame_equal(rows, full[full[S.ENTERPRISE_ID] == eid].reset_index(drop=True))


def test_growth_rescoring_a_chunk_at_a_time_gives_the_whole_tables_scores(tmp_path, monkeypatch):
    import joblib

    from matcher.growth import growth_features, make_growth_model, usable_numeric

    table = add_hashes(make_validated(120, seed=0))
    features = growth_features(table, pd.to_datetime(table[S.UPDATED_AT]).max())
    model = make_growth_model(usable_numeric(features)).fit(features, np.arange(len(table)) % 3 == 0)
    parent = tmp_path / "parent"
    parent.mkdir()
    joblib.dump(model, parent / "growth_model.joblib")
    scores = {}
    for chunk_rows in (7, 1000):
        staged = tmp_path / f"staged-{chunk_rows}"
        staged.mkdir()
        monkeypatch.setattr(refresh_version, "GROWTH_CHUNK_ROWS", chunk_rows)
        carried = refresh_version.carry_models(parent, staged, {}, table)
        assert carried[C.GROWTH_SCORES_FILE].startswith("rescored")
        scores[chunk_rows] = np.load(staged / C.GROWTH_SCORES_FILE)

    assert np.array_equal(scores[7], scores[1000])
    assert np.array_equal(scores[1000], model.predict_proba(features)[:, 1].astype(np.float32))
