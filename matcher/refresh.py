"""What a refresh changes: snapshot diffs, index-update and retrain policies, standing prospect
lists and the change report staff read in the morning.

A refresh compares the new snapshot with the one the published version was built from, by
``enterprise_id`` and content hash:

- *added*: ids that are new; *removed*: ids that are gone;
- *changed_text*: the embedded profile text (name, description, tags) changed — only these and
  the added ones are embedded again;
- *changed_other*: only other fields changed (head count, funding, status ...) — the vector is
  reused.

The change report compares the standing prospect lists (top ``N`` outside prospects per gap,
stored with every version) before and after: who entered or left the top 20, the biggest score
moves with their cause read from the field deltas, and segments whose local strength changed
(a gap that closed or opened).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from matcher import schemas as S
from matcher.retrieval import Filters
from matcher.settings import default

PROSPECTS_FILE = "prospects.parquet"  # standing prospect lists of a version
STANDING_COLUMNS = ("gap_id", "rank", S.ENTERPRISE_ID, S.NAME, "score", "fit_score", "growth_score", "regional_score",
                    "similarity", "ranker", "ranked_in")


# ----------------------------------------------------------------------------------------- diff


@dataclass(frozen=True)
class SnapshotDiff:
    """Enterprise ids by kind of change between two enterprise tables."""

    added: list[str]
    removed: list[str]
    changed_text: list[str]
    changed_other: list[str]
    unchanged: int
    before: int
    after: int

    @property
    def changed(self) -> int:
        return len(self.added) + len(self.removed) + len(self.changed_text) + len(self.changed_other)

    @property
    def removed_share(self) -> float:
        return len(self.removed) / self.before if self.before else 0.0

    def counts(self) -> dict[str, int]:
        return {
            "before": self.before, "after": self.after, "added": len(self.added), "removed": len(self.removed),
            "changed_text": len(self.changed_text), "changed_other": len(self.changed_other), "unchanged": self.unchanged,
        }


KEY_COLUMNS = (S.ENTERPRISE_ID, S.PROFILE_HASH, S.CONTENT_HASH)


def enterprise_keys(path: Path, columns: tuple[str, ...] = KEY_COLUMNS) -> pa.Table:
    """The id and hash columns of an enterprise table, as Arrow: a version's table
    (``enterprises.arrow``, memory-mapped) or a snapshot's Parquet (only these columns read).

    A refresh compares two 10M-row universes through these columns only (~1 GB), never their
    whole tables in pandas (~17 GB each)."""
    path = Path(path)
    if path.suffix == ".parquet":
        return pq.read_table(path, columns=list(columns))
    return ipc.open_file(pa.memory_map(str(path))).read_all().select(list(columns))


def _strings(column) -> pa.Array:
    """One Arrow array of 64-bit-offset strings (a version's table and a snapshot's Parquet
    type their text columns differently)."""
    if isinstance(column, pa.ChunkedArray):  # one chunk (a version's table): no copy
        column = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    return column if column.type == pa.large_string() else column.cast(pa.large_string())


def previous_rows(previous_ids, ids) -> np.ndarray:
    """Row of each of ``ids`` in ``previous_ids`` (Arrow arrays or lists of strings), -1 where it
    is new: int64 array of shape (len(ids),)."""
    previous_ids = _strings(pa.array(previous_ids) if isinstance(previous_ids, (list, np.ndarray)) else previous_ids)
    ids = _strings(pa.array(ids) if isinstance(ids, (list, np.ndarray)) else ids)
    found = pc.index_in(ids, value_set=previous_ids)
    return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _keys(frame: pd.DataFrame) -> pa.Table:
    return pa.table({c: pa.array(frame[c].to_numpy(dtype=object), type=pa.large_string()) for c in KEY_COLUMNS})


def diff_enterprises(before: pd.DataFrame, after: pd.DataFrame) -> SnapshotDiff:
    """Compare two enterprise tables (each with ``enterprise_id``, ``profile_hash``, ``content_hash``).

    Lists keep the order of ``after`` (added, changed) and of ``before`` (removed).
    """
    return diff_keys(_keys(before), _keys(after))


def diff_keys(before: pa.Table, after: pa.Table) -> SnapshotDiff:
    """:func:`diff_enterprises` on the key columns only (:func:`enterprise_keys`), by Arrow and
    numpy: bounded by the ids and hashes, not the tables."""
    old_ids, new_ids = _strings(before[S.ENTERPRISE_ID]), _strings(after[S.ENTERPRISE_ID])
    old_row = previous_rows(old_ids, new_ids)
    present = old_row >= 0
    gone = pc.invert(pc.is_in(old_ids, value_set=new_ids))
    common = pa.array(old_row[present])
    present_mask = pa.array(present)

    def differs(column: str) -> np.ndarray:
        old = _strings(before[column]).take(common)
        new = _strings(after[column]).filter(present_mask)
        unequal = pc.or_(pc.fill_null(pc.not_equal(old, new), False), pc.xor(pc.is_null(old), pc.is_null(new)))
        return unequal.to_numpy(zero_copy_only=False)

    text = differs(S.PROFILE_HASH)
    other = ~text & differs(S.CONTENT_HASH)
    common_ids = new_ids.filter(present_mask)
    return SnapshotDiff(
        added=new_ids.filter(pa.array(~present)).to_pylist(), removed=old_ids.filter(gone).to_pylist(),
        changed_text=common_ids.filter(pa.array(text)).to_pylist(),
        changed_other=common_ids.filter(pa.array(other)).to_pylist(),
        unchanged=int((~text & ~other).sum()), before=len(old_ids), after=len(new_ids),
    )


def refresh_order(previous_ids: pd.Series, enterprises: pd.DataFrame, moved_ids: set[str] = frozenset()) -> pd.DataFrame:
    """Rows of a new snapshot in the order an in-place index update leaves them.

    Enterprises of the previous table keep their relative order; ``moved_ids`` (profiles whose
    vector the index cannot replace in place) and new enterprises follow in source order. A
    full build of the resulting snapshot therefore has the same row order as the refreshed
    version, which is what makes their results identical.
    """
    ids = enterprises[S.ENTERPRISE_ID].to_numpy(dtype=object)
    moved = np.isin(ids, np.array(sorted(moved_ids), dtype=object)) if moved_ids else None
    positions = refresh_positions(previous_rows(list(previous_ids), list(ids)), moved)
    return enterprises.iloc[positions].reset_index(drop=True)


def refresh_positions(previous_row: np.ndarray, moved: np.ndarray | None = None) -> np.ndarray:
    """:func:`refresh_order` as positions: rows with a ``previous_row`` (:func:`previous_rows`)
    in that order, then the new ones (-1) and the ``moved`` ones (a mask) in their own order.

    Returns
    -------
    positions : ndarray of shape (n,), int64
        ``rows.take(positions)`` is the refreshed order.
    """
    tail = previous_row < 0
    if moved is not None:
        tail = tail | moved
    key = np.where(tail, np.max(previous_row, initial=-1) + 1 + np.arange(len(previous_row)), previous_row)
    return np.argsort(key, kind="stable").astype(np.int64)


# ------------------------------------------------------------------------------------- policies


@dataclass(frozen=True)
class RefreshPolicy:
    """When a refresh stops, rebuilds the index or retrains (values from Settings).

    Attributes
    ----------
    max_shrink_share : float
        More than this share of the enterprises gone stops the refresh before publishing
        (a truncated export must not wipe the universe) unless shrinking is allowed.
    rebuild_change_share : float
        Index changes (removed + re-embedded + added) above this share of the index: rebuild it
        instead of updating it in place.
    max_tombstone_share : float
        HNSW keeps removed vectors as tombstones; above this share of dead positions it is rebuilt.
    min_recall : float
        An updated approximate index whose recall@10 against exact search falls below this is
        rebuilt.
    retrain : {"auto", "always", "never"}
    retrain_min_new_outcomes : int
        With ``auto``: this many more labelled outcomes than the published model learned from
        justify retraining.
    """

    max_shrink_share: float = default("refresh_max_shrink_share")
    rebuild_change_share: float = default("refresh_rebuild_change_share")
    max_tombstone_share: float = default("refresh_max_tombstone_share")
    min_recall: float = default("refresh_min_recall")
    retrain: str = default("refresh_retrain")
    retrain_min_new_outcomes: int = default("refresh_retrain_min_new_outcomes")


def index_plan(diff: SnapshotDiff, old_factory: str, new_factory: str, ntotal: int, tombstones: int,
               policy: RefreshPolicy) -> tuple[str, str]:
    """``("in-place" | "rebuild", reason)`` for the index of the refreshed version."""
    if old_factory != new_factory:
        return "rebuild", f"index type changes from {old_factory} to {new_factory}"
    touched = len(diff.removed) + len(diff.changed_text) + len(diff.added)
    share = touched / max(ntotal, 1)
    if share > policy.rebuild_change_share:
        return "rebuild", f"{touched} index changes are {share:.1%} of the index (above {policy.rebuild_change_share:.0%})"
    if "HNSW" in new_factory and "IVF" not in new_factory:  # an IVF over an HNSW quantizer deletes for real
        dead = tombstones + len(diff.removed) + len(diff.changed_text)
        dead_share = dead / max(ntotal + len(diff.changed_text) + len(diff.added), 1)
        if dead_share > policy.max_tombstone_share:
            return "rebuild", f"{dead_share:.1%} of the HNSW positions would be tombstones (above {policy.max_tombstone_share:.0%})"
    return "in-place", f"{touched} index changes ({share:.2%} of the index)"


def retrain_plan(policy: RefreshPolicy, model_card: dict | None, snapshot_id: str, outcome_rows: int | None) -> tuple[bool, str]:
    """Whether the refreshed version's models should be retrained, and why (or why not).

    Parameters
    ----------
    model_card : dict or None
        The published version's model card (None: never trained).
    snapshot_id : str
        The snapshot the refreshed version serves.
    outcome_rows : int or None
        Labelled outcomes available for training (None: no outcome source).
    """
    if policy.retrain == "never":
        return False, "retrain policy is 'never'"
    trained_on = (model_card or {}).get("data", {})
    if policy.retrain == "always":
        return True, "retrain policy is 'always'"
    if model_card is None and outcome_rows is None:
        return False, "the published version was never trained and no outcomes were given"
    used = int(trained_on.get("outcomes_used") or 0)
    if used and outcome_rows is None:
        return False, (f"the landing model learned from {used} outcomes but their files are gone; "
                       "give --outcomes to retrain (models carried forward)")
    if trained_on.get("snapshot_id") != snapshot_id:
        return True, f"new snapshot pair ({trained_on.get('snapshot_id') or 'none'} -> {snapshot_id})"
    if outcome_rows is not None and outcome_rows - used >= policy.retrain_min_new_outcomes:
        return True, f"{outcome_rows - used} new labelled outcomes (at least {policy.retrain_min_new_outcomes})"
    return False, "models are up to date with this snapshot and the outcomes"


# ---------------------------------------------------------------------------- standing lists


def standing_prospects(catalog, top: int = 50) -> pd.DataFrame:
    """The top ``top`` outside, non-closed prospects of every gap, as ``matcher prospects`` ranks
    them (columns ``STANDING_COLUMNS``; ``ranked_in`` is the version that ranked them, so a copy
    carried into another version is recognised as stale)."""
    frames = []
    for gap in catalog.gaps:
        ranked = catalog.prospects(gap["gap_id"], top, Filters())
        catalog.release_mapped_pages()  # bounded: not most of a 15 GB vectors file by the last gap
        if len(ranked):
            frames.append(ranked.assign(gap_id=gap["gap_id"], ranked_in=catalog.version)[list(STANDING_COLUMNS)])
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in STANDING_COLUMNS})
    standing = pd.concat(frames, ignore_index=True)
    standing["rank"] = standing["rank"].astype(int)
    return standing


# ------------------------------------------------------------------------------ change report


def _value(row: pd.Series | None, column: str):
    if row is None or column not in row.index:
        return None
    value = row[column]
    if isinstance(value, (list, np.ndarray)):
        return list(value)
    return None if pd.isna(value) else value


def _text(value) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, pd.Timestamp):
        return str(value.date())
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def field_causes(before: pd.Series | None, after: pd.Series | None) -> list[str]:
    """Plain-language changes of one enterprise between two snapshots, most telling first."""
    if before is None:
        return ["new in the source"]
    if after is None:
        return ["gone from the source"]
    causes = []
    fb, fa = _value(before, S.LAST_FUNDING_DATE), _value(after, S.LAST_FUNDING_DATE)
    if fa is not None and (fb is None or pd.Timestamp(fa) > pd.Timestamp(fb)):
        causes.append(f"new funding ({_text(fb)} -> {_text(fa)})")
    eb, ea = _value(before, S.EMPLOYEES), _value(after, S.EMPLOYEES)
    if eb is not None and ea is not None and ea != eb:
        causes.append(f"{'grown' if ea > eb else 'shrunk'} headcount ({int(eb)} -> {int(ea)})")
    elif ea is not None and eb is None:
        causes.append(f"headcount now reported ({int(ea)})")
    for column, label in ((S.REVENUE, "revenue"), (S.REVENUE_GROWTH, "revenue growth"), (S.EMPLOYEE_GROWTH, "headcount growth"),
                          (S.PATENTS, "patents"), (S.RD_INTENSITY, "R&D intensity")):
        vb, va = _value(before, column), _value(after, column)
        if vb != va and not (vb is None and va is None):
            direction = "" if vb is None or va is None else (" up" if va > vb else " down")
            causes.append(f"{label}{direction} ({_text(vb)} -> {_text(va)})")
    if _value(before, S.PROFILE_HASH) != _value(after, S.PROFILE_HASH):
        causes.append("changed business text")
    sb, sa = _value(before, S.STATUS_CLASS), _value(after, S.STATUS_CLASS)
    if sb != sa:
        causes.append(f"status {_text(sb)} -> {_text(sa)}")
    for column, label in ((S.QUALIFICATIONS, "qualification"), (S.RISK_FLAGS, "risk flag")):
        qb, qa = set(_value(before, column) or []), set(_value(after, column) or [])
        causes += [f"{label} gained: {q}" for q in sorted(qa - qb)] + [f"{label} lost: {q}" for q in sorted(qb - qa)]
    cb, ca = _value(before, S.CITY), _value(after, S.CITY)
    if cb != ca:
        causes.append(f"moved ({_text(cb)} -> {_text(ca)})")
    return causes


def _component_causes(before: pd.Series, after: pd.Series) -> list[str]:
    parts = []
    for column, label in (("fit_score", "fit"), ("growth_score", "growth"), ("regional_score", "regional fit")):
        delta = float(after[column]) - float(before[column])
        if abs(delta) >= 0.01:
            parts.append(f"{label} {delta:+.2f}")
    return parts


@dataclass
class ReportInputs:
    """Both sides of a refresh, for :func:`change_report`."""

    standing_before: pd.DataFrame
    standing_after: pd.DataFrame
    enterprises_before: pd.DataFrame
    enterprises_after: pd.DataFrame
    gaps_before: list[dict]
    gaps_after: list[dict]
    segments_before: pd.DataFrame
    segments_after: pd.DataFrame
    assignments_before: pd.DataFrame
    assignments_after: pd.DataFrame
    ranker_before: str = ""
    ranker_after: str = ""
    top: int = 20
    moves: int = 5
    min_move: float = 0.005
    notes: list[str] = field(default_factory=list)


def change_report(inputs: ReportInputs) -> dict:
    """Per gap: prospects that entered / left the top ``top``, the biggest score moves with their
    causes; per segment: local strength changes with the local enterprises behind them.

    Returns ``{"gaps": [...], "segments": [...], "gaps_opened": [...], "gaps_closed": [...]}``.
    """
    r = inputs
    old_rows = r.enterprises_before.set_index(S.ENTERPRISE_ID)
    new_rows = r.enterprises_after.set_index(S.ENTERPRISE_ID)

    def row(frame: pd.DataFrame, eid: str) -> pd.Series | None:
        return frame.loc[eid] if eid in frame.index else None

    def causes_of(eid: str) -> list[str]:
        return field_causes(row(old_rows, eid), row(new_rows, eid))

    model_changed = r.ranker_before != r.ranker_after
    gap_before = {g["gap_id"]: g for g in r.gaps_before}
    gap_after = {g["gap_id"]: g for g in r.gaps_after}
    gaps = []
    for gap_id in list(gap_after) + [g for g in gap_before if g not in gap_after]:
        before = r.standing_before[r.standing_before["gap_id"] == gap_id].set_index(S.ENTERPRISE_ID)
        after = r.standing_after[r.standing_after["gap_id"] == gap_id].set_index(S.ENTERPRISE_ID)
        top_before = before[before["rank"] <= r.top]
        top_after = after[after["rank"] <= r.top]
        entered, left, moves = [], [], []
        for eid, item in top_after.iterrows():
            if eid in top_before.index:
                continue
            was = int(before.loc[eid, "rank"]) if eid in before.index else None
            causes = causes_of(eid)
            if was is not None and not causes:
                causes = _component_causes(before.loc[eid], item) or ["others moved"]
            entered.append({"enterprise_id": eid, "name": item[S.NAME], "rank": int(item["rank"]), "score": float(item["score"]),
                            "previous_rank": was, "causes": causes})
        for eid, item in top_before.iterrows():
            if eid in top_after.index:
                continue
            now = int(after.loc[eid, "rank"]) if eid in after.index else None
            causes = causes_of(eid)
            if eid in new_rows.index and new_rows.loc[eid, S.STATUS_CLASS] in S.NOT_PROSPECTS:
                causes = [c for c in causes if c.startswith("status")] or ["closed"]
            if now is not None and not causes:
                causes = _component_causes(item, after.loc[eid]) or ["others moved ahead"]
            elif not causes:
                causes = ["fell below the standing list"]
            left.append({"enterprise_id": eid, "name": item[S.NAME], "previous_rank": int(item["rank"]), "rank": now,
                         "causes": causes})
        both = before.index.intersection(after.index)
        if len(both):
            delta = after.loc[both, "score"].astype(float) - before.loc[both, "score"].astype(float)
            for eid in delta.abs().sort_values(ascending=False, kind="stable").index[: r.moves]:
                if abs(delta[eid]) < r.min_move:
                    break
                causes = causes_of(eid)
                components = _component_causes(before.loc[eid], after.loc[eid])
                if not causes:
                    causes = ["ranking model retrained"] if model_changed else ["other enterprises changed (relative scores)"]
                moves.append({"enterprise_id": eid, "name": after.loc[eid, S.NAME], "score_before": float(before.loc[eid, "score"]),
                              "score_after": float(after.loc[eid, "score"]), "delta": round(float(delta[eid]), 6),
                              "rank_before": int(before.loc[eid, "rank"]), "rank_after": int(after.loc[eid, "rank"]),
                              "causes": causes, "components": components})
        g = gap_after.get(gap_id) or gap_before[gap_id]
        status = "open" if gap_id in gap_after and gap_id in gap_before else ("opened" if gap_id in gap_after else "closed")
        gaps.append({"gap_id": gap_id, "title": g.get("title"), "status": status,
                     "kind_before": gap_before.get(gap_id, {}).get("kind"), "kind_after": gap_after.get(gap_id, {}).get("kind"),
                     "entered": entered, "left": left, "moves": moves})

    segments = []
    sb = r.segments_before.set_index("segment_id")
    sa = r.segments_after.set_index("segment_id")
    for segment_id in sa.index:
        if segment_id not in sb.index:
            continue
        s0, s1 = int(sb.loc[segment_id, "strength"]), int(sa.loc[segment_id, "strength"])
        st0, st1 = str(sb.loc[segment_id, "status"]), str(sa.loc[segment_id, "status"])
        if s0 == s1 and st0 == st1:
            continue
        members_before = set(r.assignments_before.loc[r.assignments_before["segment_id"] == segment_id, S.ENTERPRISE_ID])
        members_after = set(r.assignments_after.loc[r.assignments_after["segment_id"] == segment_id, S.ENTERPRISE_ID])

        def described(ids: set[str]) -> list[dict]:
            out = []
            for eid in sorted(ids):
                frame = new_rows if eid in new_rows.index else old_rows
                out.append({"enterprise_id": eid, "name": frame.loc[eid, S.NAME] if eid in frame.index else eid,
                            "causes": causes_of(eid) or ["others changed the segment's similarity scale"]})
            return out

        segments.append({"chain_id": str(sa.loc[segment_id, "chain_id"]), "segment_id": segment_id,
                         "name": str(sa.loc[segment_id, "name"]), "strength_before": s0, "strength_after": s1,
                         "status_before": st0, "status_after": st1,
                         "joined": described(members_after - members_before), "left": described(members_before - members_after)})
    return {
        "gaps": gaps,
        "segments": segments,
        "gaps_opened": [g for g in gap_after if g not in gap_before],
        "gaps_closed": [g for g in gap_before if g not in gap_after],
        "ranker_before": r.ranker_before,
        "ranker_after": r.ranker_after,
        "notes": r.notes,
    }
