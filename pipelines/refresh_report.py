"""What a refresh changed: the per-gap change report between two versions (standing prospect
lists, gaps, segments) and the one-screen summary of a run record."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from matcher import artifacts, catalog as C, schemas as S
from matcher.catalog import Catalog
from matcher.enterprise_table import list_cells
from matcher.refresh import PROSPECTS_FILE, ReportInputs, change_report, standing_prospects
from pipelines.refresh_config import RefreshConfig


@dataclass
class VersionView:
    """What the change report reads of a version (no index or BM25 loaded; of the enterprise
    table only the rows asked for)."""

    path: Path
    version: str
    gaps: list[dict]
    segments: pd.DataFrame
    assignments: pd.DataFrame
    ranker_name: str

    @classmethod
    def load(cls, path: Path) -> "VersionView":
        manifest = json.loads((path / artifacts.MANIFEST).read_text())
        ranker = ("cold-start" if not (path / C.RANKER_FILE).is_file()
                  else f"landing-model@{manifest.get('ranker', {}).get('trained_in')}")
        return cls(path, manifest["version"], json.loads((path / C.GAPS_FILE).read_text()),
                   pd.read_parquet(path / C.SEGMENTS_FILE), pd.read_parquet(path / C.ASSIGNMENTS_FILE), ranker)

    def _table(self) -> pa.Table:
        return ipc.open_file(pa.memory_map(str(self.path / C.ENTERPRISES_FILE))).read_all()

    def enterprise_ids(self) -> set[str]:
        """Every enterprise id of the version."""
        return set(self._table().column(S.ENTERPRISE_ID).to_pylist())

    def enterprise_rows(self, ids) -> pd.DataFrame:
        """The rows of the enterprise table whose id is in ``ids``, in table order, with the
        columns and dtypes of :func:`matcher.enterprise_table.read_enterprise_table` (list cells
        as lists): a change report describes a few hundred firms of a 10M-row universe."""
        table = self._table()
        wanted = pa.array(sorted(set(ids)), type=table.schema.field(S.ENTERPRISE_ID).type)
        rows = table.filter(pc.is_in(table.column(S.ENTERPRISE_ID), value_set=wanted))
        lists = [c for c in S.LIST_COLUMNS if c in rows.column_names]
        frame = rows.drop_columns(lists).to_pandas()
        for column in lists:
            frame.insert(rows.column_names.index(column), column, list_cells(rows.column(column)))
        return frame


def standing_lists(view: VersionView, config: RefreshConfig) -> pd.DataFrame:
    """A version's standing prospect lists: the stored ones when the version itself ranked them,
    else ranked now (a version trained after it was built carries its parent's lists)."""
    stored = view.path / PROSPECTS_FILE
    if stored.is_file():
        standing = pd.read_parquet(stored)
        # Lists written before they carried their version are trusted when the ranker matches.
        same = standing["ranked_in"] == view.version if "ranked_in" in standing else standing["ranker"] == view.ranker_name
        if len(standing) and same.all():
            return standing
    bc = config.build
    catalog = Catalog.load(view.path, ef_search=bc.hnsw_ef_search, depth=bc.retrieval_depth, dense_weight=bc.dense_weight,
                           dense_weight_zh=bc.dense_weight_zh, check=False)
    return standing_prospects(catalog, bc.standing_top)


def reported_ids(standing_before: pd.DataFrame, standing_after: pd.DataFrame, assignments_before: pd.DataFrame,
                 assignments_after: pd.DataFrame) -> set[str]:
    """The enterprises a change report can describe: those on either side's standing lists and
    those that joined or left a segment."""
    def pairs(assignments: pd.DataFrame) -> set[tuple]:
        return set(zip(assignments["segment_id"], assignments[S.ENTERPRISE_ID]))

    moved = pairs(assignments_before) ^ pairs(assignments_after)
    return set(standing_before[S.ENTERPRISE_ID]) | set(standing_after[S.ENTERPRISE_ID]) | {eid for _, eid in moved}


def version_change_report(config: RefreshConfig, parent_dir: Path, version: str) -> dict:
    old = VersionView.load(parent_dir)
    new = VersionView.load(config.build.artifacts_dir / version)
    standing_before, standing_after = standing_lists(old, config), standing_lists(new, config)
    # Only the rows of the enterprises the report can name (not two 10M-row tables in pandas).
    ids = reported_ids(standing_before, standing_after, old.assignments, new.assignments)
    return change_report(ReportInputs(
        standing_before=standing_before, standing_after=standing_after,
        enterprises_before=old.enterprise_rows(ids), enterprises_after=new.enterprise_rows(ids),
        gaps_before=old.gaps, gaps_after=new.gaps, segments_before=old.segments, segments_after=new.segments,
        assignments_before=old.assignments, assignments_after=new.assignments,
        ranker_before=old.ranker_name, ranker_after=new.ranker_name,
    ))


def summary_text(record: dict, width: int = 100) -> str:
    """One screen for a person: what happened, the counts, and what changed for the gaps."""
    c = record.get("counts", {})
    lines = [f"refresh {record['run_id']}: {record['status'].upper()}"
             + (f" -> version {record['version']}" if record.get("version") else "")
             + (f" (parent {record['parent_version']})" if record.get("parent_version") else "")]
    if record.get("error"):
        e = record["error"]
        lines.append(f"  error in step '{e.get('step')}': {e.get('message')}"[:width * 2])
    if record.get("reason"):
        lines.append(f"  {record['reason']}")
    lines.append(f"  source {Path(record['source']['path']).name} -> snapshot {record.get('snapshot_id')}")
    lines.append(f"  enterprises {c.get('enterprises_before', '?')} -> {c.get('enterprises', '?')}: +{c.get('added', 0)} added, "
                 f"-{c.get('removed', 0)} removed, {c.get('changed_text', 0)} changed text, {c.get('changed_other', 0)} changed "
                 f"other fields; {c.get('embedded', 0)} embedded, {c.get('quarantined', 0)} rows quarantined")
    q = record.get("quarantine") or {}
    if q.get("reasons"):
        lines.append("  quarantine: " + "; ".join(f"{k} ({v})" for k, v in list(q["reasons"].items())[:3]))
    if record.get("index"):
        i = record["index"]
        lines.append(f"  index {i.get('factory')}: {i.get('mode')} ({i.get('reason')})"
                     + (f", recall@10 {i['recall_at_10']:.3f}" if "recall_at_10" in i else ""))
    if record.get("models"):
        m = record["models"]
        lines.append(f"  models: {'retrained: ' + str(m.get('status')) if m.get('retrain_due') else 'kept'} — {m.get('reason')}")
    if record.get("timings"):
        lines.append("  timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in record["timings"].items())
                     + f"; total {record.get('seconds', 0):.1f}s")
    report = record.get("report") or {}
    if report.get("error"):
        lines.append(f"  change report failed: {report['error']}")
    for gap_id in report.get("gaps_opened", []):
        lines.append(f"  gap opened: {gap_id}")
    for gap_id in report.get("gaps_closed", []):
        lines.append(f"  gap closed: {gap_id}")
    for s in report.get("segments", [])[:5]:
        joined = ", ".join(j["name"] for j in s["joined"][:2])
        lines.append(f"  segment {s['chain_id']}.{s['segment_id']}: strength {s['strength_before']} -> {s['strength_after']} "
                     f"({s['status_before']} -> {s['status_after']})" + (f"; joined: {joined}" if joined else ""))
    changed = [g for g in report.get("gaps", []) if g["entered"] or g["left"] or g["moves"]]
    if report.get("gaps") is not None:
        lines.append(f"  {len(changed)} of {len(report.get('gaps', []))} gaps changed their top 20:")
    for g in changed[:8]:
        line = f"    {g['gap_id']}: +{len(g['entered'])} entered, -{len(g['left'])} left"
        if g["entered"]:
            e = g["entered"][0]
            line += f"; new #{e['rank']} {e['name']} ({', '.join(e['causes'][:2])})"
        elif g["moves"]:
            m = g["moves"][0]
            line += f"; {m['name']} {m['score_before']:.3f} -> {m['score_after']:.3f} ({', '.join(m['causes'][:2])})"
        lines.append(line[: width + 40])
    if len(changed) > 8:
        lines.append(f"    ... {len(changed) - 8} more (matcher report {record['run_id']} --json)")
    return "\n".join(lines) + "\n"
