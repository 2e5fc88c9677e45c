"""What a running service holds: settings, database, the artifact holder, the served-list log
writer, metrics, the key cache and the review exclusions this worker knows of."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from matcher.retrieval import Filters
from matcher.settings import Settings
from matcher.store import repo
from matcher.store.db import Store
from service.auth import KeyCache
from service.errors import NotReadyError
from service.holder import ArtifactHolder, Loaded
from service.logwriter import ServedLogWriter
from service.metrics import Metrics


@dataclass
class ServiceState:
    settings: Settings
    store: Store
    holder: ArtifactHolder
    writer: ServedLogWriter
    metrics: Metrics
    keys: KeyCache
    exclusions: dict = field(default_factory=dict)  # gap_id -> frozenset of enterprise ids
    exclusion_revision: int = -1
    _checked: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def loaded(self) -> Loaded:
        """The version this request is served by (taken once per request)."""
        current = self.holder.current
        if current is None:
            raise NotReadyError(self.holder.last_error or "artifacts are still loading; retry in a few seconds (GET /ready)")
        return current

    def refresh_exclusions(self, force: bool = False) -> None:
        """Re-read the exclusions when their revision moved (checked at most every
        ``service_exclusion_poll_s``; at once after this worker changed them)."""
        now = time.monotonic()
        if not force and now - self._checked < self.settings.service_exclusion_poll_s:
            return
        with self._lock:
            if not force and now - self._checked < self.settings.service_exclusion_poll_s:
                return
            revision = repo.exclusion_revision(self.store)
            if revision != self.exclusion_revision:
                before = self.exclusions
                self.exclusion_revision, self.exclusions = repo.active_exclusions(self.store)
                changed = {g for g in set(before) | set(self.exclusions) if before.get(g) != self.exclusions.get(g)}
                if changed and self.settings.service_warm_gaps:
                    self.rewarm(changed)
            self._checked = time.monotonic()

    def rewarm(self, gap_ids: set[str]) -> threading.Thread | None:
        """Rank (and explain the top of) the unfiltered lists of gaps whose exclusions changed, in
        the background, so the next request finds them ready. Returns the thread (None when no
        version is loaded)."""
        loaded, exclusions = self.holder.current, dict(self.exclusions)
        if loaded is None:
            return None

        def run() -> None:
            for gap_id in sorted(gap_ids):
                try:
                    entry = loaded.gap_list(gap_id, Filters(exclude_ids=tuple(sorted(exclusions.get(gap_id, ())))))
                    top = list(range(min(self.settings.service_warm_explain_top, entry.total)))
                    if top:
                        entry.explanations(loaded.catalog, top, "en")
                except Exception:  # noqa: BLE001 - a gap of another version, or gone: the request path reports it
                    continue

        thread = threading.Thread(target=run, name="exclusion-rewarm", daemon=True)
        thread.start()
        return thread

    def exclusions_due(self) -> bool:
        return time.monotonic() - self._checked >= self.settings.service_exclusion_poll_s

    def excluded(self, gap_id: str) -> frozenset:
        self.refresh_exclusions()
        return self.exclusions.get(gap_id, frozenset())

    def all_exclusions(self) -> dict:
        self.refresh_exclusions(force=True)
        return dict(self.exclusions)
