"""Dated, immutable snapshots of validated enterprise data.

Layout (under ``<home>/models/snapshots/``)::

    20261127T101500Z-3f2a9c1b/
      enterprises.parquet    validated, de-duplicated, with content_hash and profile_hash
      quarantine.csv         every rejected row: file, row, enterprise_id, column, value, reason
      repairs.csv            values kept after a repair (control characters removed), same columns
      manifest.json          source (with encoding, sheet, header row), mapping, counts, hashes

A snapshot directory is written under a temporary name and renamed into place, so a reader never
sees half of one, and an existing snapshot is never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from matcher import schemas as S
from matcher.artifacts import file_sha256
from matcher.errors import ArtifactNotFoundError, UnknownEntityError, ValidationFailedError
from matcher.export import safe_frame
from matcher.mapping import Mapping
from matcher.mapping_apply import apply_mapping
from matcher.sources import SourceFormat, read_source
from matcher.validation import ValidationResult, validate_enterprises

ENTERPRISES_FILE = "enterprises.parquet"
QUARANTINE_FILE = "quarantine.csv"
REPAIRS_FILE = "repairs.csv"
MANIFEST_FILE = "manifest.json"
REJECTED_DIR = "rejected"


@dataclass(frozen=True)
class SnapshotInfo:
    """Where a snapshot lives and what its manifest says."""

    snapshot_id: str
    path: Path
    manifest: dict

    @property
    def enterprises_path(self) -> Path:
        return self.path / ENTERPRISES_FILE


def profile_text(name: str, description: str, tags: list[str] | None) -> str:
    """The text that is embedded and lexically indexed for one enterprise.

    Only name, description and the canonical ``tags`` go in; extra source columns never do.
    """
    text = f"{name.strip()}. {description.strip()}"
    if tags:
        text += " Tags: " + ", ".join(tags) + "."
    return text


def profile_texts(enterprises: pd.DataFrame) -> list[str]:
    return [
        profile_text(n, d, list(t) if t is not None else None)
        for n, d, t in zip(enterprises[S.NAME], enterprises[S.DESCRIPTION], enterprises[S.TAGS])
    ]


def _sha(texts: pd.Series) -> list[str]:
    return [hashlib.sha256(t.encode("utf-8")).hexdigest()[:32] for t in texts]


def add_hashes(enterprises: pd.DataFrame) -> pd.DataFrame:
    """Add ``profile_hash`` (of the embedded text) and ``content_hash`` (of every canonical field
    but ``updated_at``), so a refresh can tell a changed text from changed numbers."""
    out = enterprises.copy()
    out[S.PROFILE_HASH] = _sha(pd.Series(profile_texts(out)))
    content_cols = [c for c in S.CANONICAL_COLUMNS if c != S.UPDATED_AT]
    records = out[content_cols].astype(object).where(out[content_cols].notna(), None)
    lines = records.to_json(orient="records", lines=True, date_format="iso", force_ascii=False)
    out[S.CONTENT_HASH] = _sha(pd.Series(lines.rstrip("\n").split("\n")))
    return out


def _new_snapshot_id(snapshots_dir: Path, source_sha: str, now: datetime) -> str:
    # Microseconds keep ids in ingest order even for several ingests within one second.
    base = f"{now:%Y%m%dT%H%M%S%fZ}-{source_sha[:8]}"
    candidate, n = base, 1
    while (snapshots_dir / candidate).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def read_mapped_source(
    source: Path, mapping: Mapping, sheet: str | None = None
) -> tuple[pd.DataFrame, SourceFormat, str]:
    """Read a source as its mapping says (encoding, header row, sheet; ``sheet`` overrides the
    mapping's) and map it: (mapped frame, how it was read, the name quarantine records use)."""
    source = Path(source)
    raw = read_source(source, sheet=sheet or mapping.sheet, encoding=mapping.encoding, header_row=mapping.header_row)
    fmt: SourceFormat = raw.attrs["source_format"]
    # A workbook's rows are named with their sheet, as Excel writes it: file.xlsx[sheet].
    source_name = f"{source.name}[{fmt.sheet}]" if fmt.sheet else source.name
    if len(raw) == 0:
        return raw, fmt, source_name
    return apply_mapping(raw, mapping, source_name), fmt, source_name


def validate_source(source: Path, mapping: Mapping, sheet: str | None = None) -> ValidationResult:
    """Read a source through its mapping and validate it, without writing anything.

    Raises ``ValidationFailedError`` for a source with headers and no data rows, as :func:`ingest`
    does (an empty table is never mapped, so it cannot be validated).
    """
    mapped, fmt, source_name = read_mapped_source(source, mapping, sheet)
    if len(mapped) == 0:
        raise ValidationFailedError(f"{fmt.where(source)}: the source has no data rows")
    return validate_enterprises(mapped, source_name, mapping.status_map)


def ingest(
    source: Path,
    mapping: Mapping,
    snapshots_dir: Path,
    max_bad_row_share: float,
    mapping_path: Path | None = None,
    now: datetime | None = None,
    order: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    sheet: str | None = None,
) -> SnapshotInfo:
    """Validate a source through its mapping and write a new snapshot.

    ``sheet`` names the workbook sheet to read (over the mapping's ``sheet:``; the first sheet
    when neither names one).

    ``order`` may reorder the validated rows before they are written (a refresh keeps the
    previous table's order, so a full build of the snapshot matches the refreshed version).

    Raises
    ------
    ValidationFailedError
        When the share of quarantined rows exceeds ``max_bad_row_share``. The quarantine is
        kept under ``snapshots/rejected/`` for inspection; no snapshot is written.
    """
    source = Path(source)
    now = now or datetime.now(timezone.utc)
    mapped, fmt, source_name = read_mapped_source(source, mapping, sheet)
    if len(mapped) == 0:
        raise ValidationFailedError(f"{fmt.where(source)}: the source has no data rows; nothing was published")
    result = validate_enterprises(mapped, source_name, mapping.status_map)
    source_sha = file_sha256(source)
    snapshots_dir.mkdir(parents=True, exist_ok=True)
    snapshot_id = _new_snapshot_id(snapshots_dir, source_sha, now)

    if result.rows_in == 0:
        raise ValidationFailedError(f"{source}: the source has no data rows")
    if result.bad_share > max_bad_row_share:
        rejected = snapshots_dir / REJECTED_DIR / f"{snapshot_id}-{QUARANTINE_FILE}"
        rejected.parent.mkdir(parents=True, exist_ok=True)
        safe_frame(result.quarantine).to_csv(rejected, index=False)  # opened in Excel: values are data
        top = result.quarantine.groupby(["column", "reason"]).size().sort_values(ascending=False)
        worst = "; ".join(f"{c}: {r} ({n})" for (c, r), n in top.head(3).items())
        raise ValidationFailedError(
            f"{fmt.where(source)}: {result.rows_quarantined} of {result.rows_in} rows "
            f"({result.bad_share:.1%}) failed validation, above the limit of "
            f"{max_bad_row_share:.1%}; most common: {worst}; details in {rejected}; "
            "nothing was published"
        )

    enterprises = add_hashes(result.enterprises)
    if order is not None:
        enterprises = order(enterprises)
    manifest = {
        "snapshot_id": snapshot_id,
        "created_at": now.isoformat(timespec="microseconds"),
        # Ingest order, independent of clocks: 'newest' is the last ingested.
        "sequence": 1 + max((i.manifest.get("sequence", 0) for i in list_snapshots(snapshots_dir)), default=0),
        "source": {"path": str(source.resolve()), "sha256": source_sha, "name": source.name,
                   "format": fmt.kind, "encoding": fmt.encoding, "sheet": fmt.sheet, "header_row": fmt.header_row},
        "mapping": {"name": mapping.name, "path": str(mapping_path) if mapping_path else None},
        "counts": {
            "rows_in": result.rows_in,
            "enterprises": len(enterprises),
            "local": int(enterprises[S.IS_LOCAL].sum()),
            "quarantined_rows": result.rows_quarantined,
            "quarantine_records": len(result.quarantine),
            "repaired_values": len(result.repairs),
        },
        "as_of": str(enterprises[S.UPDATED_AT].max().date()) if enterprises[S.UPDATED_AT].notna().any() else None,
        "data_sha256": hashlib.sha256("".join(enterprises[S.CONTENT_HASH]).encode()).hexdigest(),
        "extra_columns": [c for c in enterprises.columns if c not in S.CANONICAL_COLUMNS
                          and c not in (S.SOURCE_ROW, S.STATUS_CLASS, S.CONTENT_HASH, S.PROFILE_HASH)],
    }
    tmp = snapshots_dir / f".tmp-{snapshot_id}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        enterprises.to_parquet(tmp / ENTERPRISES_FILE, index=False)
        # Staff open these in Excel: a source value like "=HYPERLINK(...)" must stay text.
        safe_frame(result.quarantine).to_csv(tmp / QUARANTINE_FILE, index=False)
        safe_frame(result.repairs).to_csv(tmp / REPAIRS_FILE, index=False)
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
        os.rename(tmp, snapshots_dir / snapshot_id)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SnapshotInfo(snapshot_id, snapshots_dir / snapshot_id, manifest)


def list_snapshots(snapshots_dir: Path) -> list[SnapshotInfo]:
    """All complete snapshots, oldest first."""
    if not snapshots_dir.is_dir():
        return []
    found = []
    for path in sorted(snapshots_dir.iterdir()):
        manifest_path = path / MANIFEST_FILE
        if path.name.startswith(".") or not manifest_path.is_file():
            continue
        found.append(SnapshotInfo(path.name, path, json.loads(manifest_path.read_text())))
    return sorted(found, key=lambda info: (info.manifest.get("sequence", 0), info.manifest.get("created_at", ""), info.snapshot_id))


def find_snapshot(snapshots_dir: Path, snapshot_id: str | None = None) -> SnapshotInfo:
    """The named snapshot, or the newest one."""
    snapshots = list_snapshots(snapshots_dir)
    if not snapshots:
        raise ArtifactNotFoundError(
            f"{snapshots_dir}: no snapshots yet; run 'matcher ingest SOURCE --mapping M.yaml' first"
        )
    if snapshot_id is None:
        return snapshots[-1]
    for info in snapshots:
        if info.snapshot_id == snapshot_id:
            return info
    raise UnknownEntityError(f"snapshot '{snapshot_id}' not found in {snapshots_dir}")


def load_enterprises(info: SnapshotInfo) -> pd.DataFrame:
    """The validated enterprises of a snapshot (list columns as Python lists)."""
    frame = pd.read_parquet(info.enterprises_path)
    for column in S.LIST_COLUMNS:
        frame[column] = frame[column].map(lambda v: [] if v is None else list(v))
    return frame
