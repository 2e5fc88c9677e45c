"""Batched background writer of the served-list log.

A request only appends to a queue (microseconds); a thread writes what accumulated every
``flush_s`` seconds (or sooner when ``batch`` rows wait) in one transaction: the ranked lists not
stored yet, then one row per served page. If the queue is full the row is dropped and counted
rather than slowing requests.

A list is stored once, and only as far down as it was served: its candidates from the top to the
end of the deepest page served (each with the feature vector behind its score), extended when a
later page goes further. A page of 20 from a list of 300 stores 20 candidates, not 300, so
requests with ever new filter values add a page's worth each (``benchmarks/bench_db_growth.py``).
An empty list (nothing passes the filters) is stored and logged like any other.

A list the database no longer holds — ``matcher db prune-served`` deleted it while this process
still serves it — is stored again with the batch that serves it, from the entry queued with the
page (the process remembers which lists it stored, so it would otherwise refer to a missing one).
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from datetime import datetime, timezone

from matcher.features import FEATURES
from matcher.store import repo
from matcher.store.db import Store
from service.holder import filters_dict

log = logging.getLogger("service.logwriter")


class ServedLogWriter:
    def __init__(self, store: Store, flush_s: float = 0.5, batch: int = 500, max_queue: int = 100_000):
        self.store = store
        self.flush_s = flush_s
        self.batch = batch
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._known: dict[str, int] = {}  # list version -> candidates this process has stored (or queued) of it
        self._known_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._flush_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.written = 0

    def log(self, ranked, route: str, offset: int, top: int, key_id: int | None, request_id: str | None) -> None:
        """Queue one served page of the list ``ranked`` (stored once per list version, down to the
        deepest page served).

        ``ranked`` is the list's record (a dict with ``list_version`` and ``items``) or an object
        with ``list_version``, ``total`` and a ``record`` property (a ``RankedEntry``): then the
        record, with the feature vectors, is built here in the writer's thread, not in the request."""
        list_version = ranked["list_version"] if isinstance(ranked, dict) else ranked.list_version
        total = len(ranked["items"]) if isinstance(ranked, dict) else ranked.total
        depth = max(0, min(offset + top, total))
        with self._known_lock:
            extend = depth > self._known.get(list_version, -1)  # -1: an empty list is stored once too
            if extend:
                self._known[list_version] = depth
        served = {"list_version": list_version, "at": datetime.now(timezone.utc), "key_id": key_id,
                  "route": route, "offset": offset, "top": top, "request_id": request_id}
        try:
            self._queue.put_nowait((ranked, depth if extend else None, served))
        except queue.Full:
            self.dropped += 1
            if extend:
                self._forget([list_version])
            return
        if self._queue.qsize() >= self.batch:
            self._wake.set()

    def mark_stored(self, list_version: str) -> None:
        """A list stored whole by another path (a shortlist's transaction)."""
        with self._known_lock:
            self._known[list_version] = sys.maxsize

    def _forget(self, list_versions) -> None:
        """Lists whose storing failed: the next page served stores them again."""
        with self._known_lock:
            for list_version in list_versions:
                self._known.pop(list_version, None)

    def flush(self) -> int:
        """Write everything queued now; returns the number of served rows written."""
        with self._flush_lock:
            served, entries, depths = [], {}, {}
            while True:
                try:
                    ranked, depth, row = self._queue.get_nowait()
                except queue.Empty:
                    break
                version = row["list_version"]
                entries.setdefault(version, ranked)
                if depth is not None:
                    depths[version] = max(depth, depths.get(version, 0))
                served.append(row)
            if not served:
                return 0
            lists = []
            for version, depth in depths.items():
                record = self._record(entries[version], depth)
                if record is None:
                    self._forget([version])
                    kept = [r for r in served if r["list_version"] != version]
                    self.dropped += len(served) - len(kept)
                    served = kept
                    continue
                lists.append(record)
            if not served:
                return 0

            def restore(list_version: str) -> dict | None:
                entry = entries.get(list_version)
                with self._known_lock:
                    known = self._known.get(list_version, 0)
                deepest = max([known] + [r["offset"] + r["top"] for r in served if r["list_version"] == list_version])
                return None if entry is None else self._record(entry, deepest)

            for attempt in range(3):
                try:
                    written = repo.log_served(self.store, lists, served, restore=restore)
                    self.written += written
                    self.dropped += len(served) - written
                    return written
                except Exception as exc:  # noqa: BLE001 - the log must never take the service down
                    log.warning("served-list log write failed (attempt %d of 3): %s", attempt + 1, exc)
                    self._stop.wait(0.2 * (attempt + 1))
            self.dropped += len(served)
            self._forget(record["list_version"] for record in lists)
            log.error("dropped %d served-list log rows after 3 failed writes", len(served))
            return 0

    @staticmethod
    def _record(ranked, depth: int) -> dict | None:
        """The stored record of a queued list with its first ``depth`` candidates (built here, in
        the writer's thread), or None."""
        try:
            if isinstance(ranked, dict):
                record = ranked
            elif ranked.total == 0:
                record = _empty_record(ranked)
            else:
                record = ranked.record
            return {**record, "items": list(record["items"][:depth])}
        except Exception:  # noqa: BLE001 - the log must never take the service down
            log.exception("served-list record could not be built; its rows are dropped")
            return None

    def start(self) -> None:
        def run() -> None:
            while not self._stop.is_set():
                self._wake.wait(self.flush_s)
                self._wake.clear()
                self.flush()
            self.flush()

        self._thread = threading.Thread(target=run, name="served-log-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()

    @property
    def pending(self) -> int:
        return self._queue.qsize()


def _empty_record(entry) -> dict:
    """The record of a list nothing passed the filters of (its frame has no columns to read)."""
    return {"list_version": entry.list_version, "artifact_version": entry.artifact_version, "ranker": entry.ranker,
            "gap_id": entry.gap.get("gap_id"), "query_text": entry.gap["text"], "filters": filters_dict(entry.filters),
            "excluded": sorted(entry.filters.exclude_ids), "feature_names": list(FEATURES), "items": [], "n_items": 0}
