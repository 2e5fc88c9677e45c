"""The loaded artifact version and its ranked-list cache, swapped atomically on reload.

A request takes ``holder.current`` once and uses that :class:`Loaded` for everything it does, so
it is served entirely by one version even when a reload swaps the reference meanwhile. A reload
loads the new version completely (and ranks every gap, so the first requests are fast) before the
swap; the old version is freed when its last request finishes.

A ranked list is deterministic for (version, gap or need, filters, excluded enterprises): it is
computed once, cached, and paginated from the cache. A page needs only its rows' short reasons
(computed alone, without evidence, partners or look-alikes); full explanations are computed for
the explanation route and shortlists. Both are made on first use and cached with the list. The
list version is a digest of the list's raw numbers; the record the served-list log stores (every
feature vector) is built by the log writer's thread, not by the request.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from matcher import artifacts
from matcher.catalog import Catalog
from matcher.features import FEATURES
from matcher.retrieval import Filters, records
from matcher.settings import default
from service.errors import database_unavailable, public_message

log = logging.getLogger("service.holder")


def filters_dict(filters: Filters) -> dict:
    """The user-visible filters (API field names), without the review exclusions."""
    return {
        "country": list(filters.countries), "province": list(filters.provinces),
        "min_employees": filters.min_employees, "max_employees": filters.max_employees,
        "founded_after": filters.founded_after, "qualification": list(filters.qualifications),
        "include_local": filters.include_local, "include_closed": filters.include_closed,
    }


def _vector_rows(features: pd.DataFrame) -> list[list[float | None]]:
    """Each row's feature vector rounded to 6 decimals, missing values as None (JSON null)."""
    matrix = np.round(features[list(FEATURES)].to_numpy(dtype=float), 6)
    rows = matrix.astype(object)  # Python floats, as tolist() gives
    rows[np.isnan(matrix)] = None
    return rows.tolist()


@dataclass
class RankedEntry:
    """One ranked list: every ranked candidate, their features, the list version and record."""

    gap: dict
    filters: Filters
    ranked: pd.DataFrame
    features: pd.DataFrame
    list_version: str
    artifact_version: str = ""
    ranker: str = ""
    _record: dict | None = field(default=None, repr=False)
    _rows: dict = field(default_factory=dict, repr=False)  # position -> JSON-ready row, made on first use
    _explanations: dict = field(default_factory=dict, repr=False)  # (lang, position) -> dict
    _reasons: dict = field(default_factory=dict, repr=False)  # (lang, position) -> {"positive", "negative"}
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def total(self) -> int:
        return len(self.ranked)

    def rows_at(self, positions: list[int]) -> list[dict]:
        """JSON-ready rows at ``positions`` (made once each: a page needs 20 of 300)."""
        missing = [p for p in positions if p not in self._rows]
        if missing:
            for p, row in zip(missing, records(self.ranked.iloc[missing])):
                self._rows.setdefault(p, row)
        return [self._rows[p] for p in positions]

    @property
    def rows(self) -> list[dict]:
        """Every ranked row, JSON-ready."""
        return self.rows_at(list(range(self.total)))

    @property
    def record_built(self) -> bool:
        """Whether :attr:`record` was built already (the log writer builds it, off the request path)."""
        return self._record is not None

    @property
    def record(self) -> dict:
        """What the served-list log stores once (every item with the feature vector behind its
        score); built on first use, normally by the log writer's thread, not by the request."""
        record = self._record
        if record is None:
            # From the columns, not the JSON-ready rows: those cost ~10 ms for 300 candidates.
            ranked = self.ranked
            items = [{"enterprise_id": e, "rank": r, "score": s, "features": v} for e, r, s, v in zip(
                ranked["enterprise_id"].astype(str).tolist(), ranked["rank"].astype(int).tolist(),
                ranked["score"].astype(float).tolist(), _vector_rows(self.features) if len(self.features) else [])]
            record = {"list_version": self.list_version, "artifact_version": self.artifact_version, "ranker": self.ranker,
                      "gap_id": self.gap.get("gap_id"), "query_text": self.gap["text"], "filters": filters_dict(self.filters),
                      "excluded": sorted(self.filters.exclude_ids), "feature_names": list(FEATURES), "items": items,
                      "n_items": len(items)}
            self._record = record  # the same content whichever thread builds it first
        return record

    def position_of(self, enterprise_id: str) -> int | None:
        if not self.total:
            return None
        found = np.flatnonzero(self.ranked["enterprise_id"].to_numpy(dtype=object) == enterprise_id)
        return int(found[0]) if len(found) else None

    def feature_vector(self, position: int) -> dict:
        return dict(zip(self.record["feature_names"], self.record["items"][position]["features"]))

    def explained(self, positions: list[int], lang: str) -> bool:
        """Whether the rows at ``positions`` have their short reasons already (a page of them
        needs no computing)."""
        return all((lang, p) in self._reasons or (lang, p) in self._explanations for p in positions)

    def explanations(self, catalog: Catalog, positions: list[int], lang: str) -> list[dict]:
        """Full explanations of rows at ``positions`` (computed once per row and language)."""
        from matcher.explain import explain_ranked

        with self._lock:
            missing = [p for p in positions if (lang, p) not in self._explanations]
            if missing:
                done = explain_ranked(catalog.explain_inputs(self.gap), self.gap, self.ranked.iloc[missing],
                                      self.features.iloc[missing], self.features, lang)
                for p, explanation in zip(missing, done):
                    self._explanations[(lang, p)] = explanation
            return [self._explanations[(lang, p)] for p in positions]

    def reasons(self, catalog: Catalog, positions: list[int], lang: str) -> list[dict]:
        """The short reasons of rows at ``positions`` (what a page shows): from the full
        explanation when it is there, else only the reasons are computed (once per row and language)."""
        from matcher.explain import explain_reasons

        with self._lock:
            missing = [p for p in positions if (lang, p) not in self._reasons and (lang, p) not in self._explanations]
            if missing:
                done = explain_reasons(catalog.explain_inputs(self.gap), self.gap, self.ranked.iloc[missing],
                                       self.features.iloc[missing], self.features, lang)
                for p, reasons in zip(missing, done):
                    self._reasons[(lang, p)] = reasons
            return [self._reasons[(lang, p)] if (lang, p) in self._reasons else self._explanations[(lang, p)]["reasons"]
                    for p in positions]


def explain_page(entry: RankedEntry, catalog: Catalog, positions: list[int], lang: str) -> list[dict]:
    """The short reasons of a page of ``entry`` (benchmarks call the same path as the routes)."""
    return entry.reasons(catalog, positions, lang)


def list_version_of(catalog: Catalog, gap: dict, filters: Filters, ranked: pd.DataFrame, features: pd.DataFrame) -> str:
    """A digest of everything that makes a ranked list: version, ranker, query, filters,
    exclusions, and every candidate's id, rank, score and feature vector (the raw float64 bytes of
    the rounded matrix, not its JSON: ~0.1 ms for 300 candidates instead of ~20)."""
    digest = hashlib.blake2b(digest_size=16)
    header = {"artifact_version": catalog.version, "ranker": catalog.ranker_name, "gap_id": gap.get("gap_id"),
              "query_text": gap["text"], "filters": filters_dict(filters), "excluded": sorted(filters.exclude_ids),
              "feature_names": list(FEATURES), "n_items": len(ranked)}
    digest.update(json.dumps(header, sort_keys=True, ensure_ascii=False).encode())
    if len(ranked):
        digest.update("\x00".join(map(str, ranked["enterprise_id"].tolist())).encode())
        digest.update(np.ascontiguousarray(ranked["rank"].to_numpy(dtype=np.int64)).tobytes())
        digest.update(np.ascontiguousarray(ranked["score"].to_numpy(dtype=np.float64)).tobytes())
        matrix = np.round(features[list(FEATURES)].to_numpy(dtype=np.float64), 6)
        nan = np.isnan(matrix)
        digest.update(np.packbits(nan).tobytes())
        digest.update(np.ascontiguousarray(np.where(nan, 0.0, matrix)).tobytes())
    return digest.hexdigest()


def make_entry(catalog: Catalog, gap: dict, filters: Filters, ranked: pd.DataFrame, features: pd.DataFrame) -> RankedEntry:
    return RankedEntry(gap=gap, filters=filters, ranked=ranked, features=features,
                       list_version=list_version_of(catalog, gap, filters, ranked, features),
                       artifact_version=catalog.version, ranker=catalog.ranker_name)


class Loaded:
    """One loaded artifact version with its caches (dropped with it on reload)."""

    def __init__(self, catalog: Catalog, max_lists: int = default("service_cache_lists")):
        self.catalog = catalog
        self.version = catalog.version
        self.loaded_at = datetime.now(timezone.utc)
        self.max_lists = max_lists
        self._lists: OrderedDict = OrderedDict()
        self._lists_lock = threading.Lock()
        self._inflight: dict = {}
        self.hits = 0
        self.misses = 0

    @property
    def created_at(self) -> datetime | None:
        value = self.catalog.manifest.get("created_at")
        try:
            created = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
        return created if created.tzinfo else created.replace(tzinfo=timezone.utc)

    def warm(self, exclusions: dict[str, frozenset], explain_top: int = default("service_warm_explain_top"),
             rank_gaps: bool = default("service_warm_gaps")) -> None:
        """Everything lazy in the catalog, then the unfiltered list of every gap (with the top
        rows explained), so the first requests after a swap are as fast as the rest."""
        c = self.catalog
        _ = c.context, c.dense_sample, c.filter_columns, c.landed()
        c.encoder.encode(["warm-up"])  # the first free-text query does not pay for loading the model
        if not rank_gaps:
            return
        for gap in c.gaps:
            entry = self.gap_list(gap["gap_id"], Filters(exclude_ids=tuple(sorted(exclusions.get(gap["gap_id"], ())))))
            if explain_top:
                entry.explanations(c, list(range(min(explain_top, entry.total))), "en")

    def _cached(self, key: tuple, compute: Callable[[], RankedEntry]) -> RankedEntry:
        with self._lists_lock:
            entry = self._lists.get(key)
            if entry is not None:
                self._lists.move_to_end(key)
                self.hits += 1
                return entry
            lock = self._inflight.setdefault(key, threading.Lock())
        with lock:  # one computation per key, however many requests ask at once
            with self._lists_lock:
                entry = self._lists.get(key)
            if entry is None:
                try:
                    entry = compute()
                finally:
                    with self._lists_lock:
                        self._inflight.pop(key, None)
                with self._lists_lock:
                    self.misses += 1
                    self._lists[key] = entry
                    while len(self._lists) > self.max_lists:
                        self._lists.popitem(last=False)
            return entry

    def peek(self, key: tuple) -> RankedEntry | None:
        """A cached list, or None (never computes)."""
        with self._lists_lock:
            entry = self._lists.get(key)
            if entry is not None:
                self.hits += 1
            return entry

    def forget(self, key: tuple) -> None:
        """Drop a cached list: the next request for it ranks it again."""
        with self._lists_lock:
            self._lists.pop(key, None)

    def forget_gap(self, gap_id: str) -> None:
        """Drop every cached list of a gap (its text, kind or severity changed in the service)."""
        with self._lists_lock:
            for key in [k for k in self._lists if k[0] == "gap" and k[1] == gap_id]:
                del self._lists[key]

    def gap_list(self, gap_id: str, filters: Filters) -> RankedEntry:
        """The ranked list of a gap (raises UnknownEntityError for an unknown gap); a gap declared in
        the service is ranked like the published ones (a free-text one embedded on first use)."""
        gap, vector = self.catalog.gap(gap_id)

        def compute() -> RankedEntry:
            ranked, features = self.catalog.rank_pool(gap, vector, 1, filters)
            return make_entry(self.catalog, gap, filters, ranked, features)

        return self._cached(("gap", gap_id, filters), compute)

    def search_list(self, text: str, filters: Filters) -> RankedEntry:
        def compute() -> RankedEntry:
            vector = self.catalog.encoder.encode([text])[0]
            gap = self.catalog.need_as_gap(text, vector)
            ranked, features = self.catalog.rank_pool(gap, vector, 1, filters)
            return make_entry(self.catalog, gap, filters, ranked, features)

        return self._cached(("search", text, filters), compute)

    @property
    def cached_lists(self) -> int:
        return len(self._lists)


def settle_heap() -> None:
    """Exempt the loaded version's objects from Python's cyclic garbage collector.

    A 200k-enterprise version is ~1.3 million Python objects (its tables' strings and lists).
    Each full collection walked all of them: ~230 ms, every few dozen searches, which doubled the
    mean CPU time of a search (benchmarks/RESULTS.md). ``gc.freeze()`` moves every object alive now
    to a permanent generation the collector skips; reference counting still frees them. Done on
    every swap after unfreezing and collecting, so cyclic garbage of a replaced version (frozen
    while requests still held it) is reclaimed at the next swap at the latest.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class ArtifactHolder:
    """Holds the current :class:`Loaded` version; reloads on request or when ``CURRENT`` changes."""

    def __init__(self, artifacts_dir: Path, load: Callable[[str | None], Catalog], *,
                 exclusions: Callable[[], dict[str, frozenset]] = dict, poll_s: float = default("service_reload_poll_s"),
                 explain_top: int = default("service_warm_explain_top"), warm_gaps: bool = default("service_warm_gaps"),
                 max_lists: int = default("service_cache_lists"), on_swap: Callable[[Loaded], None] | None = None):
        self.artifacts_dir = artifacts_dir
        self._load = load
        self._exclusions = exclusions
        self.poll_s = poll_s
        self.explain_top = explain_top
        self.warm_gaps = warm_gaps
        self.max_lists = max_lists
        self.on_swap = on_swap
        self.current: Loaded | None = None
        self.last_error: str | None = None
        self._reload_lock = threading.Lock()
        self._failed: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.first_check = threading.Event()  # set once the first load has succeeded or failed

    def published(self) -> str | None:
        try:
            return artifacts.current_version(self.artifacts_dir)
        except Exception:  # noqa: BLE001 - nothing published yet
            return None

    def reload(self, version: str | None = None, force: bool = False) -> tuple[Loaded, str | None, bool, float]:
        """Load ``version`` (or what ``CURRENT`` names), warm it, make it current, swap.

        Returns (now loaded, previous version, whether it changed, seconds). A version that fails
        to load changes nothing: ``CURRENT`` and the served version stay as they were.
        """
        started = time.perf_counter()
        with self._reload_lock:
            previous = self.current
            target = version or artifacts.current_version(self.artifacts_dir)
            if previous is not None and previous.version == target and not force:
                if version is not None and self.published() != version:
                    artifacts.set_current(self.artifacts_dir, version)
                return previous, previous.version, False, time.perf_counter() - started
            loaded = Loaded(self._load(target), self.max_lists)
            loaded.warm(self._exclusions(), self.explain_top, self.warm_gaps)
            if version is not None and self.published() != version:
                artifacts.set_current(self.artifacts_dir, version)  # rollback: every worker follows CURRENT
            self.current = loaded  # atomic: requests already running keep the old one
            settle_heap()
            self.last_error, self._failed = None, None
            if self.on_swap:
                self.on_swap(loaded)
            seconds = time.perf_counter() - started
            log.info("serving artifact version %s (previous %s, %.1f s to load and warm)", loaded.version,
                     previous.version if previous else None, seconds)
            return loaded, previous.version if previous else None, True, seconds

    def check(self) -> None:
        """Reload if ``CURRENT`` names another version than the one served (once per failure)."""
        published = self.published()
        # last_error is shown on /ready and in 503s: which version and why, never a path (the log has them).
        if published is None and self.current is None:
            self.last_error = "no published artifact version yet; run 'matcher build' (or the nightly refresh)"
            log.warning("%s: no published artifact version yet", self.artifacts_dir)
        if published is None or (self.current is not None and published == self.current.version) or published == self._failed:
            return
        try:
            self.reload()
        except Exception as exc:  # noqa: BLE001 - keep serving the old version; report on /ready
            if database_unavailable(exc):  # warming reads the review exclusions: try again at the next poll
                self.last_error = f"version {published} waits for the database to load"
            else:
                self._failed = published
                self.last_error = f"version {published} failed to load: {public_message(str(exc))}"
            log.error("artifact version %s failed to load; still serving %s: %s", published,
                      self.current.version if self.current else None, exc)

    def start(self) -> None:
        """Load the current version in the background, then poll ``CURRENT`` every ``poll_s``."""
        def run() -> None:
            while not self._stop.is_set():
                self.check()
                self.first_check.set()
                self._stop.wait(self.poll_s)

        self._thread = threading.Thread(target=run, name="artifact-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
