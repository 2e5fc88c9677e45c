"""The build step end to end on factory data with the stand-in encoder (fast; the real model is
exercised in tests/e2e): publish, manifest, reuse of vectors, failures publish nothing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
import yaml

from matcher import artifacts
from matcher import schemas as S
from matcher.catalog import Catalog, id_order
from matcher.enterprise_table import FIRM_ARRAYS_DIR, read_enterprise_table
from matcher.errors import ArtifactCorruptError, ArtifactNotFoundError, ConfigError
from matcher.retrieval import Filters
from matcher.snapshot import ingest
from pipelines.build_config import BuildConfig
from pipelines.build_index import build
from tests.factories import TOPICS, HashingEncoder, make_enterprises, make_mapping, write_source

NOW = datetime(2026, 11, 27, 2, 0, tzinfo=timezone.utc)
DESCRIPTION = "Firms making {}. Customers include manufacturers, hospitals and consumers nationwide."


def chain_map_data():
    segments = [
        {"id": topic, "name": TOPICS[topic][0], "stage": "midstream",
         "description": DESCRIPTION.format(TOPICS[topic][1]), "keywords": TOPICS[topic][2]}
        for topic in TOPICS
    ]
    segments.append({"id": "quantum", "name": "Quantum computing", "stage": "upstream",
                     "description": DESCRIPTION.format("superconducting qubits and quantum control electronics")})
    return {
        "region": {"id": "yangpu", "name": "Yangpu", "city": "Shanghai", "province": "Shanghai", "country": "CN",
                   "lat": 31.26, "lon": 121.53},
        "chains": [
            {"id": "tech", "name": "Tech", "kind": "pillar", "leader": "Mayor", "segments": segments,
             "gaps": [{"id": "tech-declared-lidar", "segment": "lidar", "priority": "high"},
                      {"id": "tech-free", "text": "Gene sequencing labs. Oncology panels and genomic diagnostics.",
                       "priority": "medium"}]},
        ],
    }


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    (home / "chains.yaml").parent.mkdir(parents=True)
    (home / "chains.yaml").write_text(yaml.safe_dump(chain_map_data()))
    return home


def config_for(home, **overrides) -> BuildConfig:
    return BuildConfig(
        snapshots_dir=home / "models" / "snapshots",
        artifacts_dir=home / "models" / "matcher",
        cache_dir=home / "models" / "cache",
        chain_map=home / "chains.yaml",
        **overrides,
    )


def ingest_factory(home, n=60, seed=0, change=None, now=NOW):
    raw = make_enterprises(n=n, seed=seed)
    if change is not None:
        change(raw)
    source = write_source(raw, home / f"firms-{seed}.csv")
    return ingest(source, make_mapping(), home / "models" / "snapshots", 0.05, now=now)


@pytest.fixture
def built(home):
    ingest_factory(home)
    encoder = HashingEncoder(dim=64)
    version, manifest = build(config_for(home), encoder=encoder, now=NOW)
    return home, version, manifest, encoder


def test_build_publishes_a_current_version_with_every_artifact(built):
    home, version, manifest, _ = built
    artifacts_dir = home / "models" / "matcher"

    assert artifacts.current_version(artifacts_dir) == version
    assert artifacts.verify(artifacts_dir / version)["version"] == version
    assert manifest["counts"]["enterprises"] == 60
    assert manifest["counts"]["local"] == 12
    assert manifest["counts"]["embedded"] == 60 and manifest["counts"]["reused_vectors"] == 0
    assert manifest["index"]["ntotal"] == 60
    assert manifest["index"]["factory"] == "IDMap2,Flat" and manifest["index"]["exact"] is True
    assert manifest["embedding"]["dim"] == 64 and manifest["embedding"]["key"] == "hashing-64"
    assert manifest["chain_map"]["sha256"] and manifest["snapshot"]["data_sha256"]
    assert {"index.faiss", "vectors.npy", "enterprises.arrow", "gaps.json", "chain_map.yaml"} <= set(manifest["files"])


def test_published_version_loads_into_a_consistent_catalog(built):
    home, version, manifest, _ = built

    catalog = Catalog.load(home / "models" / "matcher" / version)

    assert catalog.version == version
    assert len(catalog.enterprises) == catalog.searcher.index.ntotal == 60
    assert len(catalog.gaps) == len(catalog.gap_vectors) == manifest["counts"]["gaps"]
    assert catalog.enterprises[S.FAISS_ID].is_unique
    vectors = np.asarray(catalog.searcher.vectors)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_gap_list_includes_declared_and_free_text_gaps(built):
    home, version, _, _ = built

    gaps = json.loads((home / "models" / "matcher" / version / "gaps.json").read_text())

    ids = {g["gap_id"] for g in gaps}
    assert {"tech.lidar", "tech.tech-free", "tech.quantum"} <= ids  # quantum: no local firm at all
    assert {g["kind"] for g in gaps} <= {"missing", "weak", "declared"}
    assert next(g for g in gaps if g["gap_id"] == "tech.quantum")["kind"] == "missing"


def test_prospects_for_a_gap_are_outside_firms_of_that_topic(built):
    home, version, _, _ = built
    catalog = Catalog.load(home / "models" / "matcher" / version)

    results = catalog.prospects("tech.lidar", 5, Filters())

    assert len(results) == 5
    assert not results[S.IS_LOCAL].any()
    assert all("Lidar" in name for name in results[S.NAME])


def test_reloaded_catalog_answers_identically(built):
    home, version, _, _ = built
    path = home / "models" / "matcher" / version

    first = Catalog.load(path).prospects("tech.tech-free", 10, Filters(countries=("CN",)))
    second = Catalog.load(path).prospects("tech.tech-free", 10, Filters(countries=("CN",)))

    assert first.equals(second)


def test_stored_firm_arrays_answer_as_computing_them_would(built):
    # A version saves the per-firm feature and filter arrays its workers would otherwise compute
    # from every row at start-up; loaded from disk they must give the very same lists.
    home, version, manifest, _ = built
    path = home / "models" / "matcher" / version
    assert any(name.startswith(f"{FIRM_ARRAYS_DIR}/") for name in manifest["files"])
    stored = Catalog.load(path)
    computed = Catalog.load(path)
    computed.firm_arrays = None
    assert stored.firm_arrays is not None

    for gap_id, filters in (("tech.tech-free", Filters()), (stored.gaps[0]["gap_id"], Filters(countries=("CN",), min_employees=20)),
                            (stored.gaps[-1]["gap_id"], Filters(provinces=("zhejiang",), include_local=True))):
        a = stored.prospects(gap_id, 15, filters, explain=True)
        b = computed.prospects(gap_id, 15, filters, explain=True)
        assert len(a) and a.equals(b)
    np.testing.assert_array_equal(stored.allowed(Filters(countries=("US",))), computed.allowed(Filters(countries=("US",))))
    assert stored.context.as_of == computed.context.as_of
    assert list(stored.context.divisions) == list(computed.context.divisions)
    ids = stored.enterprises[S.ENTERPRISE_ID].tolist()
    np.testing.assert_array_equal(stored.rows_of(ids[::-1] + ["not-an-id", ""]), list(range(len(ids)))[::-1] + [-1, -1])
    # list cells come from the codes saved with the version: the same lists as grouping the rows
    plain = read_enterprise_table(path / "enterprises.arrow")
    for column in S.LIST_COLUMNS:
        assert f"list.{column}" in stored.firm_arrays[0]
        assert stored.enterprises[column].tolist() == plain[column].tolist()
        assert len({id(cell) for cell in stored.enterprises[column]}) == len({tuple(cell) for cell in plain[column]})


def test_enterprise_id_order_is_python_string_order():
    # Catalog.rows_of binary-searches the ids in the order Arrow sorts them: it must be the order
    # Python compares strings in, for registry codes, Chinese ids and mixed case alike.
    ids = pd.Series(["91310110MA1G8", "b-2", "B-2", "中芯国际", "é-1", "a", "91310110MA1G80", "Ｚ"], dtype="str")
    order = id_order(ids)
    assert ids.iloc[order].tolist() == sorted(ids)


def test_rebuild_of_unchanged_data_embeds_nothing(built):
    home, first_version, _, _ = built
    encoder = HashingEncoder(dim=64)

    version, manifest = build(config_for(home), encoder=encoder, now=NOW + timedelta(minutes=5))

    assert manifest["counts"]["embedded"] == 0
    assert manifest["counts"]["reused_vectors"] == 60
    names = set(Catalog.load(home / "models" / "matcher" / version).enterprises[S.NAME])
    assert not [t for t in encoder.encoded if any(t.startswith(n) for n in names)]  # segment texts only
    assert version != first_version
    assert artifacts.current_version(home / "models" / "matcher") == version
    old = np.load(home / "models" / "matcher" / first_version / "vectors.npy")
    new = np.load(home / "models" / "matcher" / version / "vectors.npy")
    np.testing.assert_array_equal(old, new)


def test_changed_profile_is_the_only_one_embedded_again(built):
    home, *_ = built

    def change(raw):
        raw.loc[7, "details"] = "now builds quantum control electronics"
        raw.loc[8, "headcount"] = "12345"  # numbers only: the profile text is unchanged

    ingest_factory(home, change=change, now=NOW + timedelta(minutes=1))
    encoder = HashingEncoder(dim=64)

    _, manifest = build(config_for(home), encoder=encoder, now=NOW + timedelta(minutes=5))

    assert manifest["counts"]["embedded"] == 1
    assert any("quantum control electronics" in text for text in encoder.encoded)


def test_same_second_builds_get_distinct_versions(built):
    home, first_version, _, _ = built

    version, _ = build(config_for(home), encoder=HashingEncoder(dim=64), now=NOW)

    assert version != first_version
    assert artifacts.list_versions(home / "models" / "matcher") == sorted([first_version, version])


def test_old_versions_are_pruned_to_keep_versions(built):
    home, *_ = built
    versions = [build(config_for(home, keep_versions=2), encoder=HashingEncoder(dim=64),
                      now=NOW + timedelta(hours=i))[0] for i in range(1, 4)]

    assert artifacts.list_versions(home / "models" / "matcher") == versions[-2:]


def test_build_from_a_named_snapshot(built):
    home, *_ = built
    older = sorted((home / "models" / "snapshots").iterdir())[0].name
    ingest_factory(home, n=20, seed=9, now=NOW + timedelta(minutes=1))

    _, manifest = build(config_for(home), snapshot_id=older, encoder=HashingEncoder(dim=64),
                        now=NOW + timedelta(minutes=5))

    assert manifest["snapshot"]["snapshot_id"] == older
    assert manifest["counts"]["enterprises"] == 60


def test_index_factory_override_builds_an_approximate_index(built):
    home, *_ = built

    version, manifest = build(config_for(home, index_factory="HNSW16,Flat"), encoder=HashingEncoder(dim=64),
                              now=NOW + timedelta(minutes=5))

    assert manifest["index"]["factory"] == "IDMap2,HNSW16,Flat" and manifest["index"]["exact"] is False
    catalog = Catalog.load(home / "models" / "matcher" / version)
    assert len(catalog.prospects("tech.lidar", 7, Filters(countries=("DE",)))) == min(
        7, int(((catalog.enterprises[S.COUNTRY] == "DE") & ~catalog.enterprises[S.IS_LOCAL]
                & (catalog.enterprises[S.STATUS_CLASS] != "closed")).sum())
    )


def test_build_without_a_snapshot_says_to_ingest_first(home):
    with pytest.raises(ArtifactNotFoundError, match="matcher ingest"):
        build(config_for(home), encoder=HashingEncoder())
    assert artifacts.list_versions(home / "models" / "matcher") == []


def test_invalid_chain_map_fails_and_publishes_nothing(built):
    home, version, _, _ = built
    data = chain_map_data()
    data["chains"][0]["segments"][0]["supplies"] = ["nowhere"]
    (home / "chains.yaml").write_text(yaml.safe_dump(data))

    with pytest.raises(ConfigError, match="chains.yaml"):
        build(config_for(home), encoder=HashingEncoder(dim=64), now=NOW + timedelta(minutes=5))

    assert artifacts.current_version(home / "models" / "matcher") == version
    assert artifacts.list_versions(home / "models" / "matcher") == [version]


def test_invalid_index_factory_fails_and_leaves_no_staging_directory(built):
    home, version, _, _ = built

    with pytest.raises(ConfigError, match="Bogus"):
        build(config_for(home, index_factory="Bogus"), encoder=HashingEncoder(dim=64), now=NOW + timedelta(minutes=5))

    artifacts_dir = home / "models" / "matcher"
    assert artifacts.current_version(artifacts_dir) == version
    assert not [p for p in artifacts_dir.iterdir() if p.name.startswith(".tmp")]


def test_tampered_published_file_is_refused_on_load(built):
    home, version, _, _ = built
    path = home / "models" / "matcher" / version
    with open(path / "gaps.json", "a") as handle:
        handle.write(" ")

    with pytest.raises(ArtifactCorruptError, match="gaps.json"):
        Catalog.load(path)


def test_ranking_then_releasing_the_mapped_pages_leaves_the_vectors_unmapped_and_the_answers_equal(built):
    # What keeps a build's standing lists of a 10M universe from mapping most of its vectors file.
    from tests.factories import resident_kb

    home, version, _, _ = built
    path = home / "models" / "matcher" / version
    catalog = Catalog.load(path)
    gap = catalog.gaps[0]["gap_id"]
    first = catalog.prospects(gap, 10, Filters())
    assert resident_kb(path / "vectors.npy") > 0

    catalog.release_mapped_pages()

    assert resident_kb(path / "vectors.npy") == 0
    pd.testing.assert_frame_equal(catalog.prospects(gap, 10, Filters()), first)
