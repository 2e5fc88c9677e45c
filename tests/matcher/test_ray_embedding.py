"""Embedding a snapshot on Ray (issue 14): a local Ray started by the test (2 CPUs) and a two-node
cluster on this machine (``ray.cluster_utils.Cluster``). The vectors equal the in-process path's,
a job whose actor is killed mid-way still ends with every profile embedded exactly once, a rerun
resumes from the shards on disk, and a profile the model cannot take is reported by id.

The two-node cluster is in ``test_ray_cluster.py``: a file of its own, so that the test workers
run it beside this one (pytest-xdist keeps a file on one worker).

Small on purpose (a 240-firm sample; the encoder is PyTorch fp32, which loads in about a second per
actor), so the whole file stays within CI time; skipped when ray is not installed."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matcher import schemas as S
from matcher.embedding import EmbeddingCache, Encoder
from matcher.ray_embedding import SHARD_PREFIX, embed_on_ray
from matcher.snapshot import profile_texts
from matcher.enterprise_table import read_enterprise_table
from tests.conftest import REPO_ROOT
from tests.e2e.conftest import cli, cli_json

ray = pytest.importorskip("ray")

SAMPLE_MAPPING = REPO_ROOT / "data" / "mappings" / "sample.yaml"
ENCODER = {"model": "all-MiniLM-L6-v2", "precision": "fp32", "backend": "torch"}


@pytest.fixture(scope="module")
def sample_home(tmp_path_factory) -> Path:
    """A workspace with a small sample's last-year export ingested (this year's is in data/samples)."""
    home = tmp_path_factory.mktemp("ray-home")
    cli("sample", "--n", 160, "--seed", 11, "--home", home)
    cli_json("ingest", home / "data" / "samples" / "previous.csv", "--mapping", SAMPLE_MAPPING, "--home", home)
    return home


@pytest.fixture(scope="module")
def snapshot(sample_home) -> Path:
    """The enterprises.parquet of the ingested export."""
    return next((sample_home / "models" / "snapshots").glob("*/enterprises.parquet"))


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder(ENCODER["model"], ENCODER["precision"], backend=ENCODER["backend"])


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2, log_to_driver=False,
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1"}})
    yield
    ray.shutdown()


def map_workers() -> list[tuple[int, int]]:
    """(pid, parent pid) of this machine's Ray Data map actors (the parent is its node's raylet);
    read from /proc, so no dashboard is needed."""
    out = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(b"ray::MapWorker"):
                out.append((int(entry.name), int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])))
        except OSError:
            continue
    return out


def own_raylet() -> int:
    """Pid of the raylet of the Ray this process started (``local_ray``): another test's Ray may
    run beside it on the same machine."""
    from ray._private import ray_constants
    from ray._private.worker import global_worker

    return global_worker.node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid


def raylet_pids() -> set[int]:
    """Pids of this machine's raylets (one per Ray node)."""
    out = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "raylet":
                out.add(int(entry.name))
        except OSError:
            continue
    return out


def shard_hashes(shards) -> set[str]:
    out: set[str] = set()
    for shard in shards:
        with np.load(shard) as data:
            out.update(data["hashes"].tolist())
    return out


def snapshot_of(home: Path, record: dict) -> Path:
    """The enterprises.parquet of the snapshot a build manifest or refresh record names."""
    snapshot_id = record["snapshot"]["snapshot_id"] if "snapshot" in record and isinstance(record["snapshot"], dict) \
        else record["snapshot_id"]
    return home / "models" / "snapshots" / snapshot_id / "enterprises.parquet"


def shard_counts(directory: Path) -> Counter:
    counts: Counter = Counter()
    for shard in directory.glob("shard-*.npz"):
        with np.load(shard) as data:
            counts.update(data["hashes"].tolist())
    return counts


def assert_same_as_in_process(directory: Path, snapshot: Path, encoder: Encoder) -> None:
    ents = pd.read_parquet(snapshot).drop_duplicates(S.PROFILE_HASH)
    stored = EmbeddingCache(directory, encoder.dim).get(ents[S.PROFILE_HASH].tolist())
    expected = encoder.encode(profile_texts(ents))
    assert np.sum(stored * expected, axis=1).min() >= 0.9999


def test_a_killed_actor_still_ends_with_every_profile_embedded_exactly_once(local_ray, snapshot, encoder, tmp_path):
    cache = tmp_path / "cache" / encoder.key
    result: dict = {}
    done: list[int] = []
    job = threading.Thread(target=lambda: result.update(report=embed_on_ray(
        "local", snapshot, cache, encoder, actors=2, rows_per_batch=8, progress=done.append)))
    job.start()
    killed = None
    deadline = time.monotonic() + 120
    while job.is_alive() and killed is None and time.monotonic() < deadline:
        if len(list(cache.glob(f"{SHARD_PREFIX}*.npz"))) >= 2:  # mid-way: some batches done
            workers = [w for w in map_workers() if w[1] == own_raylet()]  # this job's actors
            if workers:
                killed = workers[0][0]
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    job.join(timeout=300)

    assert killed is not None, "the job ended before an actor could be killed"
    profiles = pd.read_parquet(snapshot)[S.PROFILE_HASH].nunique()
    report = result["report"]
    assert report.failed == [] and report.embedded + report.cached == profiles
    counts = shard_counts(cache)
    assert len(counts) == profiles and set(counts.values()) == {1}
    assert sum(done) >= report.embedded  # progress was reported as batches finished
    assert_same_as_in_process(cache, snapshot, encoder)  # the same vectors as in-process

    again = embed_on_ray("local", snapshot, cache, encoder, actors=2, rows_per_batch=64)

    assert again.embedded == 0 and again.cached == profiles  # a rerun resumes from the shards on disk
    assert set(shard_counts(cache).values()) == {1}


def test_build_and_refresh_embed_on_ray_with_the_option(local_ray, sample_home, encoder, monkeypatch):
    """``matcher build --ray-address`` and ``matcher refresh --ray-address``: the cluster embeds
    what the cache lacks (all of it, then only the new and changed profiles), the version holds the
    same vectors the in-process path makes."""
    from matcher import artifacts

    monkeypatch.setenv("MATCHER_EMBEDDING_PRECISION", ENCODER["precision"])
    monkeypatch.setenv("MATCHER_EMBEDDING_BACKEND", ENCODER["backend"])
    built = cli_json("build", "--ray-address", "local", "--home", sample_home)

    cache = sample_home / "models" / "cache" / "embeddings" / built["embedding"]["key"]
    shards = set(cache.glob(f"{SHARD_PREFIX}*.npz"))
    profiles = set(pd.read_parquet(snapshot_of(sample_home, built))[S.PROFILE_HASH])
    assert shards and built["counts"]["embedded"] == len(profiles) and profiles <= shard_hashes(shards)
    version = artifacts.version_dir(sample_home / "models" / "matcher")
    ents, vectors = read_enterprise_table(version / "enterprises.arrow"), np.load(version / "vectors.npy")
    assert np.sum(vectors * encoder.encode(profile_texts(ents)), axis=1).min() >= 0.9999

    export = pd.read_csv(sample_home / "data" / "samples" / "enterprises.csv", dtype=str, keep_default_na=False)
    export.loc[:2, "business_scope"] += " It has also started a drone inspection service."  # three new texts
    export.to_csv(sample_home / "this-year.csv", index=False)
    record = cli_json("refresh", sample_home / "this-year.csv", "--mapping", SAMPLE_MAPPING,
                      "--ray-address", "local", "--home", sample_home)

    assert record["status"] == "published", record
    new_shards = set(cache.glob(f"{SHARD_PREFIX}*.npz")) - shards
    changed = set(pd.read_parquet(snapshot_of(sample_home, record))[S.PROFILE_HASH]) - profiles
    # The new and changed profiles, embedded on the cluster, and nothing else.
    assert record["counts"]["embedded"] == len(changed) > 0 and shard_hashes(new_shards) == changed
