"""The refreshed version: embed only new and changed profiles, update the index in place (or
rebuild it), analyse the chains, stage and publish, carrying the published models forward."""

from __future__ import annotations

import gc
import json
import os
import time
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from matcher import artifacts, catalog as C, schemas as S
from matcher.chain_map import load_chain_map
from matcher.chains import chain_words
from matcher.embedding import EmbeddingCache, Encoder, encode_cached, text_hashes
from matcher.enterprise_table import read_enterprise_table, stage_enterprise_table
from matcher.index import (
    VectorSearcher, build_index, can_replace, choose_factory, enterprise_faiss_ids, is_approximate, load_index,
    recall_at_k, refresh_factory, removes_in_place, tombstone_count, update_index,
)
from matcher.lexical import LexicalIndex, chinese_share
from matcher.mapped import passes, release
from matcher.refresh import SnapshotDiff, enterprise_keys, index_plan, previous_rows
from matcher.snapshot import ProfileTexts, SnapshotInfo, profile_texts
from pipelines import build_index as B, version_files as V
from pipelines.refresh_config import RefreshConfig
from pipelines.refresh_records import Run, checkpoint

MODEL_FILES = (C.RANKER_FILE, C.OUTCOMES_FILE, "model_card.json", "model_card.md", "growth_model.joblib")
RECALL_QUERIES = 200
SMALL_BATCH = 256  # fewer profiles to embed than this: the PyTorch backend (starts faster)
COPY_CHUNK_ROWS = 65_536  # parent vectors copied into the staged file this many rows at a time (~100 MB)
GROWTH_CHUNK_ROWS = 500_000  # rows rescored by the growth model at a time (its text feature is per row)


def build_refreshed_version(run: Run, config: RefreshConfig, snapshot: SnapshotInfo, parent: dict, parent_dir: Path,
                            diff: SnapshotDiff, inputs_same: bool, encoder, progress, now) -> str:
    """Embed, index, analyse, stage and publish the refreshed version; returns its name.

    As a build does, the enterprise table is staged from the snapshot's Parquet and the vectors
    written into the staged ``vectors.npy``, both used memory-mapped from there: unchanged
    profiles' vectors are copied from the parent's file a chunk at a time, new and changed ones
    come from the embedding cache or the encoder. A refresh writes its snapshot in the order the
    in-place index update leaves the rows (``refresh_run``), so the staged files are already in
    live order; a snapshot ingested outside a refresh is rewritten in it (:func:`write_in_order`).
    """
    bc = config.build
    rec = run.record
    started = time.perf_counter()
    timings: dict[str, float] = {}
    if not inputs_same:
        # A new chain map or embedding model changes every derived vector: a full build (the
        # embedding cache still spares every profile embedded before).
        with run.step("build") as entry:
            entry["reason"] = "chain map or embedding model changed: full build"
            version, manifest = B.build(bc, snapshot.snapshot_id, encoder=encoder, progress=progress, now=now)
            rec["counts"].update(embedded=manifest["counts"]["embedded"], reused_vectors=manifest["counts"]["reused_vectors"])
            rec["index"] = {"mode": "rebuild", "reason": entry["reason"], "factory": manifest["index"]["factory"]}
        return version

    encoder_box: dict = {"encoder": encoder, "todo": 0}

    def get_encoder() -> Encoder:
        if encoder_box["encoder"] is None:
            # Through the build module, so whoever provides the build's encoder provides this one.
            # A few hundred profiles: PyTorch starts in a fraction of the time OpenVINO spends
            # compiling (same vectors to cosine 0.9999; the cache key does not include the backend).
            # A big batch: the backend this machine's calibration chose (measured now if none yet).
            backend = "torch" if encoder_box["todo"] < SMALL_BATCH else B.embedding_backend(
                bc, lambda: B.calibration_texts(encoder_box["texts"]), encoder_box["todo"], progress)[0]
            encoder_box["encoder"] = B.Encoder(bc.embedding_model, bc.embedding_precision, bc.embedding_batch_size,
                                               backend=backend)
        return encoder_box["encoder"]

    with run.step("embed") as entry:
        t = time.perf_counter()
        factory = refreshed_factory(config, parent, diff.after)
        version = V.new_version_name(bc, now, snapshot, parent["embedding"]["key"], factory)
        staged = artifacts.staging_dir(bc.artifacts_dir, version)
        rec["staging"].append(str(staged))
        run.save()
        after = stage_enterprise_table(snapshot.enterprises_path, staged / C.ENTERPRISES_FILE)
        ids = enterprise_keys(staged / C.ENTERPRISES_FILE, (S.ENTERPRISE_ID,))[S.ENTERPRISE_ID]
        old_ids = enterprise_keys(parent_dir / C.ENTERPRISES_FILE, (S.ENTERPRISE_ID,))[S.ENTERPRISE_ID]
        old_row = previous_rows(old_ids, ids)
        changed = pc.is_in(ids, value_set=pa.array(diff.changed_text, ids.type)).to_numpy(zero_copy_only=False)
        del ids, old_ids
        fresh = np.flatnonzero((old_row < 0) | changed)
        dim = int(parent["embedding"]["dim"])
        vectors = np.lib.format.open_memmap(staged / C.VECTORS_FILE, mode="w+", dtype=np.float32,
                                            shape=(len(after), dim))
        copy_vectors(np.load(parent_dir / C.VECTORS_FILE, mmap_mode="r"), old_row, vectors, skip=fresh)
        embedded = 0
        if len(fresh):
            cache = EmbeddingCache(bc.cache_dir / "embeddings" / parent["embedding"]["key"], dim)
            hashes = after[S.PROFILE_HASH].take(fresh).tolist()
            todo = len({hashes[i] for i in cache.missing(hashes)})
            texts = profile_texts(after.iloc[fresh])
            encoder_box.update(todo=todo, texts=texts)
            if todo and bc.ray_address:
                cache, embedded = B.embed_on_cluster(bc, snapshot.enterprises_path, cache, get_encoder(), todo, progress)
                vectors[fresh] = cache.get(hashes)
            elif todo:
                vectors[fresh], embedded = encode_cached(get_encoder(), cache, texts, hashes,
                                                         progress=progress("embedding new and changed profiles", todo))
            else:
                vectors[fresh] = cache.get(hashes)
            entry["cache_hits"] = len(fresh) - todo
        vectors.flush()
        if encoder is None:  # made here: freed for the steps ahead (made again if a new gap text needs it)
            encoder_box["encoder"] = None
        rec["counts"].update(embedded=embedded, reused_vectors=len(after) - embedded, profiles_to_embed=int(len(fresh)))
        entry.update(embedded=embedded, profiles=int(len(fresh)))
        timings["embed_s"] = time.perf_counter() - t

    with run.step("index") as entry:
        t = time.perf_counter()
        index, table, table_vectors, info = update_or_rebuild_index(config, parent, parent_dir, staged, after, vectors,
                                                                    diff)
        del after, vectors
        index = V.stage_index(index, staged, bc.hnsw_ef_search)
        release(table_vectors)  # the recall guard's exact search read every row (~6 GB left mapped at 10M)
        rec["index"] = info
        entry.update(info)
        timings["index_s"] = time.perf_counter() - t

    chain_map = load_chain_map(bc.chain_map)
    with run.step("lexical"):
        t = time.perf_counter()
        lexical = LexicalIndex.build(ProfileTexts(table), words=chain_words(chain_map))  # as a full build
        timings["lexical_s"] = time.perf_counter() - t

    with run.step("chains") as entry:
        t = time.perf_counter()
        segment_vectors = np.load(parent_dir / C.SEGMENT_VECTORS_FILE)
        keyword_vectors = np.load(parent_dir / C.KEYWORD_VECTORS_FILE)
        old_gaps = json.loads((parent_dir / C.GAPS_FILE).read_text())
        old_gap_vectors = np.load(parent_dir / C.GAP_VECTORS_FILE)
        known = {g["text"]: old_gap_vectors[i] for i, g in enumerate(old_gaps) if g["segment_id"] is None}

        def encode_texts(texts: list[str]) -> np.ndarray:
            if all(t in known for t in texts):
                return np.stack([known[t] for t in texts])
            # New gap texts go through the embedding cache, as a full build's do.
            cache = EmbeddingCache(bc.cache_dir / "embeddings" / parent["embedding"]["key"], int(parent["embedding"]["dim"]))
            hashes = text_hashes(texts)
            return cache.get(hashes) if not cache.missing(hashes) else encode_cached(get_encoder(), cache, texts, hashes)[0]

        gap_rows = V.stored_gap_rows(bc.database_url)  # the service's gaps, as a full build publishes them
        analysis, gap_vectors = B.analyse(bc, chain_map, table, table_vectors, segment_vectors, encode_texts, lexical,
                                          gap_rows=gap_rows)
        entry["gaps"] = len(analysis.gaps)
        timings["chains_s"] = time.perf_counter() - t

    with run.step("stage") as entry:
        V.write_version_files(bc, staged, index=index, vectors=table_vectors, enterprises=table, lexical=lexical,
                              analysis=analysis, gap_vectors=gap_vectors, segment_vectors=segment_vectors,
                              keyword_vectors=keyword_vectors)
        models = carry_models(parent_dir, staged, parent, table)
        rec["models_carried"] = models
        manifest = V.base_manifest(bc, now, snapshot, chain_map, parent["embedding"], info["factory"], index, table,
                                   analysis, embedded=rec["counts"]["embedded"], reused=rec["counts"]["reused_vectors"],
                                   gap_rows=gap_rows)
        manifest["index"].update({k: info[k] for k in ("mode", "reason", "recall_at_10") if k in info})
        manifest["lexical"] = {"tokenizer": lexical.tokenizer, "words": len(lexical.words)}
        chinese = chinese_share(table[S.DESCRIPTION].fillna(""))  # gaps are matched in their firms' language
        manifest["languages"] = {"chinese_share": round(chinese, 4), "note": B.language_note(bc.embedding_model, chinese)}
        for key in ("ranker", "growth"):
            if key in parent:
                manifest[key] = parent[key]
        manifest["parent_version"] = parent["version"]
        manifest["refresh"] = {"run_id": rec["run_id"], "diff": diff.counts(), "index_mode": info["mode"]}
        # finish_version loads the staged version to rank and check it: let go of what this run
        # built first, as a build does (at 10M the index codes, BM25 postings, the table's columns
        # and the encoder are GBs).
        del index, lexical, table, table_vectors, analysis
        encoder_box.clear()
        gc.collect()
        manifest = V.finish_version(bc, staged, version, manifest, timings, started)
        entry["version"] = version
        checkpoint("staged")  # a complete staged version, not yet published
    with run.step("publish"):
        artifacts.publish(bc.artifacts_dir, staged, version, bc.keep_versions)
        rec["staging"].remove(str(staged))
        rec["published_base"] = version
        run.save()
    return version


def refreshed_factory(config: RefreshConfig, parent: dict, n: int) -> str:
    """The index factory of the refreshed version: an IVF keeps its trained lists while the size
    drifts (:func:`matcher.index.refresh_factory`)."""
    bc = config.build
    chosen = choose_factory(n, bc.exact_index_max, bc.index_factory, bc.hnsw_index_max)
    return refresh_factory(parent["index"]["factory"], chosen)


def copy_vectors(source: np.ndarray, rows: np.ndarray, out: np.ndarray, skip: np.ndarray,
                 chunk_rows: int = COPY_CHUNK_ROWS) -> None:
    """``out[i] = source[rows[i]]`` for every row ``i`` not in ``skip`` (nor new: ``rows[i] < 0``),
    ``chunk_rows`` at a time: both may be memory-mapped 15 GB files.

    Parameters
    ----------
    source : ndarray of shape (m, dim), float32
    rows : ndarray of shape (n,), int64
    out : ndarray of shape (n, dim), float32
    skip : ndarray of int
        Rows of ``out`` left as they are (the profiles embedded again).
    """
    keep = rows >= 0
    keep[skip] = False
    for start in range(0, len(out), chunk_rows):
        stop = min(start + chunk_rows, len(out))
        kept = np.flatnonzero(keep[start:stop])
        if len(kept) == stop - start:
            out[start:stop] = source[rows[start:stop]]
        elif len(kept):
            out[start + kept] = source[rows[start + kept]]
        if len(kept):  # both files' pages leave this process once copied (the page cache keeps them)
            read = rows[start + kept]
            release(source, int(read.min()), int(read.max()) + 1)
        release(out, start, stop)


def write_in_order(staged: Path, order: np.ndarray, vectors: np.ndarray,
                   chunk_rows: int = COPY_CHUNK_ROWS) -> tuple[pd.DataFrame, np.ndarray]:
    """Rewrite the staged enterprise table and vectors (snapshot order) with row ``i`` their row
    ``order[i]``; returns both read back memory-mapped. Readers of the old files keep them until
    they let go. The table is taken in Arrow (as the build stages it), the vectors a chunk at a
    time.

    Parameters
    ----------
    order : ndarray of shape (n,), int64
    vectors : ndarray of shape (n, dim), float32
        The staged vectors, in snapshot order.
    """
    path = staged / C.ENTERPRISES_FILE
    table = ipc.open_file(pa.memory_map(str(path))).read_all().take(pa.array(order))
    partial = path.with_name(path.name + ".partial")
    with pa.OSFile(str(partial), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table.combine_chunks(), max_chunksize=max(1, table.num_rows))
    del table
    pa.default_memory_pool().release_unused()
    os.replace(partial, path)
    partial = staged / (C.VECTORS_FILE + ".partial.npy")
    out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=vectors.shape)
    for start, rows in passes(out, chunk_rows):
        rows[:] = vectors[order[start:start + len(rows)]]
    release(vectors)
    out.flush()
    del out
    os.replace(partial, staged / C.VECTORS_FILE)
    return read_enterprise_table(path), np.load(staged / C.VECTORS_FILE, mmap_mode="r")


def update_or_rebuild_index(config: RefreshConfig, parent: dict, parent_dir: Path, staged: Path, after: pd.DataFrame,
                            vectors: np.ndarray, diff: SnapshotDiff) -> tuple[faiss.Index, pd.DataFrame, np.ndarray, dict]:
    """The refreshed index with its enterprise table and vectors in row (live position) order.

    ``after`` and ``vectors`` are the staged table and vectors (memory-mapped, snapshot order);
    they are returned as they are when the live positions follow them, else rewritten in live
    order (:func:`write_in_order`).
    """
    bc = config.build
    factory = refreshed_factory(config, parent, len(after))
    old_index = load_index(parent_dir / C.INDEX_FILE, bc.hnsw_ef_search)
    tombstones = tombstone_count(old_index)
    mode, reason = index_plan(diff, parent["index"]["factory"], factory, int(old_index.ntotal), tombstones, config.policy)
    if mode == "in-place" and not removes_in_place(old_index):
        mode, reason = "rebuild", f"a fast-scan IVF index ({factory}) cannot remove vectors in place"
    info = {"mode": mode, "reason": reason, "factory": factory}
    ids = after[S.FAISS_ID].to_numpy()
    if mode == "in-place":
        index = old_index
        row_of = RowLookup(ids)
        changed = enterprise_faiss_ids(diff.changed_text)
        added = enterprise_faiss_ids(diff.added)
        removed = enterprise_faiss_ids(diff.removed)
        if can_replace(index):
            how = update_index(index, removed, vectors[row_of.rows(added)], added,
                               replace_ids=changed, replace_vectors=vectors[row_of.rows(changed)])
        else:
            # Re-added in the new table's row order: a refresh's snapshot has these rows last
            # (refresh_run's order), so the live positions stay the snapshot's.
            appended_rows = np.sort(row_of.rows(np.concatenate([changed, added])))
            how = update_index(index, np.concatenate([removed, changed]), vectors[appended_rows], ids[appended_rows])
        live_ids = faiss.vector_to_array(index.id_map)
        live_ids = live_ids[live_ids >= 0]
        same_order = bool(np.array_equal(live_ids, ids))
        if not same_order:  # a snapshot ingested outside a refresh (source order)
            after, vectors = write_in_order(staged, row_of.rows(live_ids), vectors)
            ids = after[S.FAISS_ID].to_numpy()
        del row_of
        info.update(removal=how, tombstones=tombstone_count(index), ntotal=int(index.ntotal),
                    same_order_as_snapshot=same_order)
        if is_approximate(factory):
            recall = index_recall(index, vectors, parent_dir)
            info["recall_at_10"] = round(recall, 4)
            if recall < config.policy.min_recall:
                info.update(mode="rebuild", reason=f"recall@10 {recall:.3f} after the in-place update is below "
                                                   f"{config.policy.min_recall}", in_place_recall_at_10=round(recall, 4))
                mode = "rebuild"
        if mode == "in-place":
            return index, after, vectors, info
    index = build_index(vectors, ids, factory, bc.hnsw_ef_search)
    info.update(tombstones=0, ntotal=int(index.ntotal))
    if is_approximate(factory):
        info["recall_at_10"] = round(index_recall(index, vectors, parent_dir), 4)
    return index, after, vectors, info


class RowLookup:
    """Rows of FAISS ids in a table's id column, by binary search (a hash index over 10M ids
    would be ~0.5 GB)."""

    def __init__(self, ids: np.ndarray):
        self.ids = ids
        self.sorter = np.argsort(ids, kind="stable")

    def rows(self, wanted: np.ndarray) -> np.ndarray:
        wanted = np.asarray(wanted, dtype=np.int64)
        at = np.searchsorted(self.ids, wanted, sorter=self.sorter)
        rows = self.sorter[np.minimum(at, len(self.ids) - 1)] if len(self.ids) else np.zeros(len(wanted), np.int64)
        if len(wanted) and not np.array_equal(self.ids[rows], wanted):
            raise ValueError(f"{int((self.ids[rows] != wanted).sum())} ids are not in the enterprise table")
        return rows


def index_recall(index: faiss.Index, vectors: np.ndarray, parent_dir: Path) -> float:
    """recall@10 against exact search: the gap vectors plus a seeded sample of profiles as queries."""
    rng = np.random.default_rng(0)
    sample = vectors[rng.choice(len(vectors), size=min(RECALL_QUERIES, len(vectors)), replace=False)]
    queries = np.concatenate([np.load(parent_dir / C.GAP_VECTORS_FILE), sample])
    with_one_thread = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return recall_at_k(VectorSearcher(index, vectors), queries, 10)
    finally:
        faiss.omp_set_num_threads(with_one_thread)


def carry_models(parent_dir: Path, staged: Path, parent: dict, table: pd.DataFrame) -> dict:
    """Carry the published ranking models into the refreshed version: the landing model applies
    to any version (it scores pair features); growth scores are per enterprise, so the growth model
    scores the new table again."""
    carried = {}
    for name in MODEL_FILES:
        if (parent_dir / name).is_file():
            os.link(parent_dir / name, staged / name)
            carried[name] = "carried forward"
    if (parent_dir / "growth_model.joblib").is_file():
        import joblib

        from matcher.growth import growth_features

        model = joblib.load(parent_dir / "growth_model.joblib")
        as_of = pd.to_datetime(table[S.UPDATED_AT]).max()
        # A chunk at a time: the features hold a name-and-description string per row (~3.5 GB at 10M).
        scores = np.empty(len(table), dtype=np.float32)
        for start in range(0, len(table), GROWTH_CHUNK_ROWS):
            part = table.iloc[start:start + GROWTH_CHUNK_ROWS]
            scores[start:start + len(part)] = model.predict_proba(growth_features(part, as_of))[:, 1]
        np.save(staged / C.GROWTH_SCORES_FILE, scores)
        carried[C.GROWTH_SCORES_FILE] = "rescored with the published growth model"
    return carried
