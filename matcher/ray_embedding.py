"""Embedding a snapshot's profiles on a Ray cluster (issue 14): Ray Data over an actor pool, the
vectors written into the same content-addressed cache the in-process path uses.

The in-process build embeds what the cache lacks on one machine. At national scale (10M firms) that
is days, so the same work can run on a Ray cluster:

- the snapshot's ``enterprises.parquet`` is read by Ray Data (only the columns a profile text needs);
- ``map_batches`` runs :class:`EmbedProfiles` on an actor pool: each actor loads the encoder once,
  with the same model, backend and precision as the in-process encoder, so the vectors are the same
  (to bf16 rounding: cosine >= 0.9999 per profile);
- each batch skips the profiles whose vectors are cached already, embeds the rest (the encoder
  sorts a batch by length) and writes them as one shard of the cache, ``shard-r<digest>.npz``,
  named by the hashes it holds: a batch that Ray retries after an actor died writes the same shard
  again (an atomic replace), never a second copy, and a job that was killed resumes from the shards
  on disk without redoing them;
- a profile that cannot be embedded (the model raised on it) is reported by ``enterprise_id`` with
  the reason; nothing is dropped silently.

Every node must read the snapshot and write the cache at the same path: a shared filesystem
mounted at the same place on every node (NFS, CephFS, ...), see the README's scale-out section.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from matcher import schemas as S
from matcher.embedding import Encoder
from matcher.errors import ConfigError

TEXT_COLUMNS = [S.ENTERPRISE_ID, S.NAME, S.DESCRIPTION, S.TAGS, S.PROFILE_HASH]
SHARD_PREFIX = "shard-r"
logger = logging.getLogger(__name__)


@dataclass
class RayEmbedReport:
    """What a Ray embedding job did, profile by profile (unique profile texts)."""

    embedded: int = 0  # run through the model by this job
    cached: int = 0  # found in the cache (earlier jobs, or an earlier attempt of this one)
    failed: list[dict] = field(default_factory=list)  # {"enterprise_id", "profile_hash", "reason"}


def shard_name(hashes: list[str]) -> str:
    """The cache shard of a batch: named by the profile hashes it holds, so writing it twice
    (a retried batch) replaces it instead of adding a copy."""
    digest = hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest()[:24]
    return f"{SHARD_PREFIX}{digest}.npz"


def cached_hashes(directory: Path) -> set[str]:
    """The profile hashes stored in a cache directory's shards (the hashes only, not the vectors)."""
    out: set[str] = set()
    for shard in sorted(Path(directory).glob("shard-*.npz")):
        with np.load(shard) as data:
            out.update(data["hashes"].tolist())
    return out


class EmbedProfiles:
    """A Ray Data actor: loads the encoder once, embeds batches of profiles into cache shards."""

    def __init__(self, model: str, precision: str, backend: str, batch_size: int, cache_dir: str):
        self.encoder = Encoder(model, precision, batch_size, backend=backend)
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.known = cached_hashes(self.cache_dir)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        from matcher.snapshot import profile_texts

        batch = batch.drop_duplicates(S.PROFILE_HASH).reset_index(drop=True)
        hashes = batch[S.PROFILE_HASH].tolist()
        target = self.cache_dir / shard_name(hashes)
        status = np.array(["cached"] * len(batch), dtype=object)
        reasons = [""] * len(batch)
        todo = [i for i, h in enumerate(hashes) if h not in self.known]
        if todo and not target.exists():
            texts = profile_texts(batch.iloc[todo])
            vectors, failed = self._encode(texts)
            for t, reason in failed.items():
                status[todo[t]], reasons[todo[t]] = "failed", reason
            keep = [t for t in range(len(todo)) if t not in failed]
            ok = [todo[t] for t in keep]
            if ok:
                tmp = self.cache_dir / f".tmp-{os.getpid()}-{target.name}"
                with open(tmp, "wb") as handle:
                    np.savez(handle, hashes=np.array([hashes[i] for i in ok]), vectors=vectors[keep])
                os.replace(tmp, target)
                status[ok] = "embedded"
                self.known.update(hashes[i] for i in ok)
        return pd.DataFrame({S.ENTERPRISE_ID: batch[S.ENTERPRISE_ID], S.PROFILE_HASH: hashes, "status": status,
                             "reason": reasons})

    def _encode(self, texts: list[str]) -> tuple[np.ndarray, dict[int, str]]:
        """Vectors of ``texts``; when the batch fails, text by text, naming each that fails."""
        try:
            return self.encoder.encode(texts), {}
        except Exception:  # noqa: BLE001 - find which profiles the model cannot take
            vectors = np.zeros((len(texts), self.encoder.dim), dtype=np.float32)
            failed = {}
            for i, text in enumerate(texts):
                try:
                    vectors[i] = self.encoder.encode([text])[0]
                except Exception as exc:  # noqa: BLE001 - reported by id, never dropped
                    failed[i] = f"{type(exc).__name__}: {exc}"
            return vectors, failed


def embed_on_ray(
    address: str,
    snapshot_parquet: Path,
    cache_dir: Path,
    encoder: Encoder,
    actors: int | None = None,
    rows_per_batch: int = 512,
    progress: Callable[[int], None] | None = None,
    attempts: int = 3,
) -> RayEmbedReport:
    """Embed every profile of ``snapshot_parquet`` that ``cache_dir`` lacks, on the Ray cluster at
    ``address`` (``auto``, ``ray://host:port``, or ``local`` for a Ray started in this process).

    ``encoder`` names the model, backend and precision the actors load (its ``key`` is the cache
    directory's name, as in-process). ``actors``: the actor pool's size (default: one per CPU of
    the cluster but one, at most 16). ``progress`` is called with the number of profiles done. When Ray's
    own retries cannot save a job (an actor's death can lose the blocks it held), the job runs
    again, up to ``attempts`` times, and embeds only what the cache still lacks.
    """
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray-address needs the package ray: pip install 'ray[data]'") from None

    if not ray.is_initialized():
        try:
            ray.init(address=address, log_to_driver=False,
                     runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}})
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"cannot reach the Ray cluster at '{address}': {exc}") from None
    cpus = float(ray.cluster_resources().get("CPU", 1))
    if actors is None:
        actors = max(1, min(16, int(cpus) - 1))
    # The actors leave a whole CPU to the tasks that list and read the Parquet files, or those
    # never start (a pool holding every CPU waits forever for blocks); they are spread over nodes.
    actor_cpus = min(1.0, max(0.25, (cpus - 1) / actors))
    cache_dir = Path(cache_dir).resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    rows = pq.ParquetFile(snapshot_parquet).metadata.num_rows
    # Blocks of at most ~20k profiles and at least four per actor, so every actor has work and a
    # retried block (after an actor died) is small.
    blocks = max(actors * 4, -(-rows // 20_000))
    # Reading is light next to embedding: its tasks ask for a quarter CPU, so they still start on
    # nodes whose CPUs the actors hold (a read waiting for a whole CPU would wait forever).
    dataset = ray.data.read_parquet(str(Path(snapshot_parquet).resolve()), columns=TEXT_COLUMNS,
                                    override_num_blocks=blocks, ray_remote_args={"num_cpus": 0.25})
    if pq.ParquetFile(snapshot_parquet).metadata.num_row_groups < blocks:
        # A file is read in row groups: one written as a single group arrives as one block, which
        # one actor would embed alone. Split it (no shuffle) so the whole pool works.
        dataset = dataset.repartition(blocks, shuffle=False)
    kwargs = {"model": encoder.model_name, "precision": encoder.precision, "backend": encoder.backend,
              "batch_size": encoder.batch_size, "cache_dir": str(cache_dir)}
    before = cached_hashes(cache_dir)
    for attempt in range(1, attempts + 1):
        failed: dict[str, dict] = {}
        try:
            results = dataset.map_batches(
                EmbedProfiles, fn_constructor_kwargs=kwargs, batch_size=rows_per_batch, batch_format="pandas",
                concurrency=actors, num_cpus=actor_cpus, scheduling_strategy="SPREAD", max_restarts=-1,
                max_task_retries=-1,
            )
            for batch in results.iter_batches(batch_format="pandas", batch_size=None):
                for eid, profile_hash, reason in batch.loc[batch["status"] == "failed",
                                                           [S.ENTERPRISE_ID, S.PROFILE_HASH, "reason"]].itertuples(index=False):
                    failed[profile_hash] = {S.ENTERPRISE_ID: eid, S.PROFILE_HASH: profile_hash, "reason": reason}
                if progress is not None:
                    progress(len(batch))
            break
        except Exception as exc:  # noqa: BLE001 - Ray's own retries could not save the job: run it again
            if attempt == attempts:
                raise
            # The shards written so far stay: the next attempt embeds only what is still missing.
            logger.warning("Ray embedding attempt %d of %d failed (%s); resuming from the cache's shards",
                           attempt, attempts, exc)
    # Counted from the cache itself, so a batch Ray retried (or an attempt run again) counts once.
    after = cached_hashes(cache_dir)
    wanted = set(pq.read_table(snapshot_parquet, columns=[S.PROFILE_HASH]).column(0).to_pylist())
    report = RayEmbedReport(embedded=len((after - before) & wanted), cached=len(before & wanted),
                            failed=[f for h, f in failed.items() if h not in after])
    missing = wanted - after - set(failed)
    if missing:  # never silently: a profile neither embedded nor reported as failed is an error
        raise RuntimeError(f"{len(missing)} profiles were neither embedded nor reported (e.g. {sorted(missing)[:3]})")
    return report
