"""Batched background writer of the served-list log.

A request only appends to a queue (microseconds); a thread writes what accumulated every
``flush_s`` seconds (or sooner when ``batch`` rows wait) in one transaction: the ranked lists not
stored yet (each distinct list once, with the feature vector behind every score), then one row per
served page. If the queue is full the row is dropped and counted rather than slowing requests.

A list the database no longer holds — ``matcher db prune-served`` deleted it while this process
still serves it — is stored again with the batch that serves it, from the entry queued with the
page (the process remembers which lists it stored, so it would otherwise refer to a missing one).
"""

from __future__ import annotations

import logging
import queue
import threading
from datetime import datetime, timezone

from matcher.store import repo
from matcher.store.db import Store

log = logging.getLogger("service.logwriter")


class ServedLogWriter:
    def __init__(self, store: Store, flush_s: float = 0.5, batch: int = 500, max_queue: int = 100_000):
        self.store = store
        self.flush_s = flush_s
        self.batch = batch
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._known: set[str] = set()  # list versions this process has stored (or queued)
        self._known_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._flush_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.written = 0

    def log(self, ranked, route: str, offset: int, top: int, key_id: int | None, request_id: str | None) -> None:
        """Queue one served page of the list ``ranked`` (stored once per list version).

        ``ranked`` is the list's record (a dict with ``list_version``) or an object with
        ``list_version`` and a ``record`` property (a ``RankedEntry``): then the record, with every
        feature vector, is built here in the writer's thread, not in the request."""
        list_version = ranked["list_version"] if isinstance(ranked, dict) else ranked.list_version
        with self._known_lock:
            new = list_version not in self._known
            if new:
                self._known.add(list_version)
        served = {"list_version": list_version, "at": datetime.now(timezone.utc), "key_id": key_id,
                  "route": route, "offset": offset, "top": top, "request_id": request_id}
        try:
            self._queue.put_nowait((ranked, new, served))
        except queue.Full:
            self.dropped += 1
            if new:
                with self._known_lock:
                    self._known.discard(list_version)
            return
        if self._queue.qsize() >= self.batch:
            self._wake.set()

    def mark_stored(self, list_version: str) -> None:
        """A list stored by another path (a shortlist's transaction)."""
        with self._known_lock:
            self._known.add(list_version)

    def flush(self) -> int:
        """Write everything queued now; returns the number of served rows written."""
        with self._flush_lock:
            lists, served, entries = [], [], {}
            while True:
                try:
                    ranked, new, row = self._queue.get_nowait()
                except queue.Empty:
                    break
                entries.setdefault(row["list_version"], ranked)
                if new:
                    record = self._record(ranked)
                    if record is None:
                        self.dropped += 1
                        with self._known_lock:
                            self._known.discard(row["list_version"])
                        continue
                    lists.append(record)
                served.append(row)
            if not served:
                return 0

            def restore(list_version: str) -> dict | None:
                entry = entries.get(list_version)
                return None if entry is None else self._record(entry)

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
            with self._known_lock:
                for record in lists:
                    self._known.discard(record["list_version"])
            log.error("dropped %d served-list log rows after 3 failed writes", len(served))
            return 0

    @staticmethod
    def _record(ranked) -> dict | None:
        """The stored record of a queued list (built here, in the writer's thread), or None."""
        try:
            return dict(ranked if isinstance(ranked, dict) else ranked.record)
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
