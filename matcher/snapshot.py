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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from matcher import schemas as S
from matcher.artifacts import file_sha256
from matcher.errors import ArtifactNotFoundError, UnknownEntityError, ValidationFailedError
from matcher.export import safe_frame
from matcher.mapping import Mapping
from matcher.mapped import release_text
from matcher.mapping_apply import apply_mapping
from matcher.settings import default
from matcher.sources import SourceFormat, read_source, read_source_chunks
from matcher.validation import QUARANTINE_COLUMNS, ValidationResult, find_duplicates, validate_enterprises

ENTERPRISES_FILE = "enterprises.parquet"
QUARANTINE_FILE = "quarantine.csv"
REPAIRS_FILE = "repairs.csv"
MANIFEST_FILE = "manifest.json"
REJECTED_DIR = "rejected"
ORDERING_FILE = "ordering.arrow"  # the rows being reordered (an ingest with ``order``), removed after
ORDER_CHUNK_ROWS = 262_144


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


class ProfileTexts(Sequence[str]):
    """The profile texts of an enterprise table, made when read, one or a slice at a time: the
    build reads them in chunks (lexical index) and a few at random (the profiles to embed, the
    backend calibration); a list of 10M texts would be ~3.5 GB."""

    def __init__(self, enterprises: pd.DataFrame):
        self._enterprises = enterprises

    def __len__(self) -> int:
        return len(self._enterprises)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return profile_texts(self._enterprises.iloc[i])
        frame, i = self._enterprises, int(i)
        tags = frame[S.TAGS].iat[i]
        return profile_text(frame[S.NAME].iat[i], frame[S.DESCRIPTION].iat[i], list(tags) if tags is not None else None)

    def release(self, start: int, stop: int) -> None:
        """Done with rows ``[start, stop)``: their name and description pages, when memory-mapped
        from the version's table, leave the resident set (a pass over 10M profiles otherwise
        keeps ~4 GB of the table's pages mapped for the rest of the build)."""
        for column in (S.NAME, S.DESCRIPTION):
            release_text(self._enterprises[column], start, stop)


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
    order: Callable[[pa.Table], np.ndarray] | None = None,
    sheet: str | None = None,
    chunk_rows: int | None = None,
) -> SnapshotInfo:
    """Validate a source through its mapping and write a new snapshot.

    ``sheet`` names the workbook sheet to read (over the mapping's ``sheet:``; the first sheet
    when neither names one).

    ``order`` may reorder the validated rows before they are written (a refresh keeps the
    previous table's order, so a full build of the snapshot matches the refreshed version): it
    is given their ``enterprise_id`` and ``profile_hash`` columns (an Arrow table) and returns
    the row positions in the order to write. The rows are then taken in that order from an
    uncompressed Arrow copy, memory-mapped, a chunk at a time: never the whole table in memory.

    The source is streamed in chunks of ``chunk_rows`` rows (default: the ``ingest_chunk_rows``
    setting): each chunk is mapped, validated, hashed and staged as Parquet, and only the ids
    (to find duplicates across chunks) and the quarantine stay in memory, so peak memory does
    not grow with the source. The snapshot is the same as one validated whole.

    Raises
    ------
    ValidationFailedError
        When the share of quarantined rows exceeds ``max_bad_row_share``. The quarantine is
        kept under ``snapshots/rejected/`` for inspection; no snapshot is written.
    """
    source = Path(source)
    now = now or datetime.now(timezone.utc)
    fmt, chunks = read_source_chunks(source, chunk_rows or default("ingest_chunk_rows"), sheet=sheet or mapping.sheet,
                                     encoding=mapping.encoding, header_row=mapping.header_row)
    # A workbook's rows are named with their sheet, as Excel writes it: file.xlsx[sheet].
    source_name = f"{source.name}[{fmt.sheet}]" if fmt.sheet else source.name
    source_sha = file_sha256(source)
    snapshots_dir.mkdir(parents=True, exist_ok=True)
    snapshot_id = _new_snapshot_id(snapshots_dir, source_sha, now)
    tmp = snapshots_dir / f".tmp-{snapshot_id}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        staged = _stage(chunks, mapping, source_name, tmp / "parts")
        if staged.rows_in == 0:
            raise ValidationFailedError(f"{fmt.where(source)}: the source has no data rows; nothing was published")
        dropped, duplicates = find_duplicates(pd.concat(staged.keys, ignore_index=True), source_name)
        quarantine = _concat([*staged.problems, duplicates])
        rows_quarantined = staged.rows_quarantined + len(dropped)
        bad_share = rows_quarantined / staged.rows_in
        if bad_share > max_bad_row_share:
            rejected = snapshots_dir / REJECTED_DIR / f"{snapshot_id}-{QUARANTINE_FILE}"
            rejected.parent.mkdir(parents=True, exist_ok=True)
            safe_frame(quarantine).to_csv(rejected, index=False)  # opened in Excel: values are data
            top = quarantine.groupby(["column", "reason"]).size().sort_values(ascending=False)
            worst = "; ".join(f"{c}: {r} ({n})" for (c, r), n in top.head(3).items())
            raise ValidationFailedError(
                f"{fmt.where(source)}: {rows_quarantined} of {staged.rows_in} rows "
                f"({bad_share:.1%}) failed validation, above the limit of "
                f"{max_bad_row_share:.1%}; most common: {worst}; details in {rejected}; "
                "nothing was published"
            )
        repairs = _concat(staged.repairs)
        written = _write_enterprises(staged.parts, dropped, tmp / ENTERPRISES_FILE, order)
        shutil.rmtree(tmp / "parts")
        manifest = {
            "snapshot_id": snapshot_id,
            "created_at": now.isoformat(timespec="microseconds"),
            # Ingest order, independent of clocks: 'newest' is the last ingested.
            "sequence": 1 + max((i.manifest.get("sequence", 0) for i in list_snapshots(snapshots_dir)), default=0),
            "source": {"path": str(source.resolve()), "sha256": source_sha, "name": source.name,
                       "format": fmt.kind, "encoding": fmt.encoding, "sheet": fmt.sheet, "header_row": fmt.header_row},
            "mapping": {"name": mapping.name, "path": str(mapping_path) if mapping_path else None},
            "counts": {
                "rows_in": staged.rows_in,
                "enterprises": written.rows,
                "local": written.local,
                "quarantined_rows": rows_quarantined,
                "quarantine_records": len(quarantine),
                "repaired_values": len(repairs),
            },
            "as_of": str(written.as_of.date()) if written.as_of is not None else None,
            "data_sha256": written.data_sha256,
            "extra_columns": [c for c in written.columns if c not in S.CANONICAL_COLUMNS
                              and c not in (S.SOURCE_ROW, S.STATUS_CLASS, S.CONTENT_HASH, S.PROFILE_HASH)],
        }
        # Staff open these in Excel: a source value like "=HYPERLINK(...)" must stay text.
        safe_frame(quarantine).to_csv(tmp / QUARANTINE_FILE, index=False)
        safe_frame(repairs).to_csv(tmp / REPAIRS_FILE, index=False)
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
        os.rename(tmp, snapshots_dir / snapshot_id)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SnapshotInfo(snapshot_id, snapshots_dir / snapshot_id, manifest)


@dataclass
class _Staged:
    """What the chunks left: their staged Parquet files, the keys that find duplicates across
    chunks, and their quarantine and repair records."""

    parts: list[Path] = field(default_factory=list)
    keys: list[pd.DataFrame] = field(default_factory=list)
    problems: list[pd.DataFrame] = field(default_factory=list)
    repairs: list[pd.DataFrame] = field(default_factory=list)
    rows_in: int = 0
    rows_quarantined: int = 0


def _stage(chunks: Iterator[pd.DataFrame], mapping: Mapping, source_name: str, parts_dir: Path) -> _Staged:
    """Map, validate (without de-duplicating) and hash each chunk; stage the valid rows."""
    parts_dir.mkdir()
    staged = _Staged()
    for raw in chunks:
        if len(raw) == 0:
            continue
        mapped = apply_mapping(raw, mapping, source_name, first_row=staged.rows_in + 1)
        del raw
        result = validate_enterprises(mapped, source_name, mapping.status_map, dedupe=False)
        del mapped
        staged.rows_in += result.rows_in
        staged.rows_quarantined += result.rows_quarantined
        if len(result.quarantine):
            staged.problems.append(result.quarantine)
        if len(result.repairs):
            staged.repairs.append(result.repairs)
        if len(result.enterprises) == 0:
            continue
        enterprises = add_hashes(result.enterprises)
        # Ids as Arrow strings: a tenth of the memory of Python strings at 10M rows.
        staged.keys.append(pd.DataFrame({
            S.ENTERPRISE_ID: pd.array(enterprises[S.ENTERPRISE_ID].to_numpy(dtype=object), dtype="string[pyarrow]"),
            S.UPDATED_AT: enterprises[S.UPDATED_AT].to_numpy(),
            S.SOURCE_ROW: enterprises[S.SOURCE_ROW].to_numpy(),
        }))
        part = parts_dir / f"part-{len(staged.parts):06d}.parquet"
        pq.write_table(pa.Table.from_pandas(enterprises, preserve_index=False), part)
        staged.parts.append(part)
    return staged


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=QUARANTINE_COLUMNS)
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class _Written:
    rows: int
    local: int
    as_of: pd.Timestamp | None
    data_sha256: str
    columns: list[str]


def _write_enterprises(parts: list[Path], dropped: np.ndarray, path: Path,
                       order: Callable[[pa.Table], np.ndarray] | None) -> _Written:
    """Write the staged rows but the ``dropped`` duplicates to one Parquet file, part by part
    (a column that is empty in one part takes the type it has in the others)."""
    if not parts:
        raise ValidationFailedError(f"{path.parent}: every row failed validation; nothing was published")
    schema = pa.unify_schemas([pq.read_schema(p) for p in parts], promote_options="permissive")
    drop = pa.array(dropped, pa.int64())

    def tables() -> Iterator[pa.Table]:
        for part in parts:
            table = pq.read_table(part).cast(schema)
            if len(drop):
                table = table.filter(pc.invert(pc.is_in(table[S.SOURCE_ROW], value_set=drop)))
            yield table

    batches = tables() if order is None else _in_order(tables(), order, path.with_name(ORDERING_FILE))
    rows = local = 0
    as_of = None
    digest = hashlib.sha256()
    with pq.ParquetWriter(path, schema) as writer:
        for table in batches:
            writer.write_table(table)
            rows += table.num_rows
            local += int(pc.sum(table[S.IS_LOCAL]).as_py() or 0)
            newest = pc.max(table[S.UPDATED_AT]).as_py()
            if newest is not None:
                as_of = max(as_of, pd.Timestamp(newest)) if as_of is not None else pd.Timestamp(newest)
            for chunk in table[S.CONTENT_HASH].chunks:
                digest.update("".join(chunk.to_pylist()).encode())
    return _Written(rows, local, as_of, digest.hexdigest(), schema.names)


def _in_order(tables: Iterator[pa.Table], order: Callable[[pa.Table], np.ndarray], scratch: Path) -> Iterator[pa.Table]:
    """The rows of ``tables`` in the order ``order`` gives, ``ORDER_CHUNK_ROWS`` at a time.

    The rows are staged in ``scratch`` (uncompressed Arrow, one record batch per table) and taken
    from it memory-mapped, batch by batch: a 10M-row snapshot is ~17 GB in pandas."""
    schema = None
    with pa.OSFile(str(scratch), "wb") as sink:
        writer = None
        for table in tables:
            if writer is None:
                schema = table.schema
                writer = ipc.new_file(sink, schema)
            for batch in table.to_batches():
                writer.write_batch(batch)
        if writer is not None:
            writer.close()
    try:
        reader = ipc.open_file(pa.memory_map(str(scratch)))
        batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
        starts = np.cumsum([0] + [b.num_rows for b in batches])
        keys = pa.Table.from_batches([b.select([S.ENTERPRISE_ID, S.PROFILE_HASH]) for b in batches],
                                     schema=pa.schema([schema.field(S.ENTERPRISE_ID), schema.field(S.PROFILE_HASH)]))
        positions = np.asarray(order(keys), dtype=np.int64)
        del keys
        n = int(starts[-1])
        if len(positions) != n or (n and (positions.min() < 0 or not (np.bincount(positions, minlength=n) == 1).all())):
            raise ValueError(f"{scratch.parent}: the order is not a permutation of the {n} rows")
        for start in range(0, len(positions), ORDER_CHUNK_ROWS):
            chunk = positions[start:start + ORDER_CHUNK_ROWS]
            batch_of = np.searchsorted(starts, chunk, side="right") - 1
            pieces, where = [], []
            for b in np.unique(batch_of):
                picked = np.flatnonzero(batch_of == b)
                pieces.append(batches[b].take(pa.array(chunk[picked] - starts[b])))
                where.append(picked)
            rows = pa.Table.from_batches(pieces, schema=schema).combine_chunks()
            yield rows.take(pa.array(np.argsort(np.concatenate(where), kind="stable")))
    finally:
        scratch.unlink(missing_ok=True)


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


def snapshot_rows(info: SnapshotInfo) -> int:
    """How many enterprises a snapshot holds (from its Parquet footer)."""
    return pq.ParquetFile(info.enterprises_path).metadata.num_rows


def load_enterprises(info: SnapshotInfo) -> pd.DataFrame:
    """The validated enterprises of a snapshot (list columns as Python lists)."""
    frame = pd.read_parquet(info.enterprises_path)
    for column in S.LIST_COLUMNS:
        frame[column] = frame[column].map(lambda v: [] if v is None else list(v))
    return frame


def iter_enterprises(info: SnapshotInfo, columns: list[str] | None = None,
                     batch_rows: int | None = None) -> Iterator[pd.DataFrame]:
    """The snapshot's enterprises in frames of at most ``batch_rows`` rows (default: the
    ``ingest_chunk_rows`` setting), only ``columns`` when given, list columns as Python lists:
    :func:`load_enterprises` in bounded memory (a whole 10M-row snapshot is ~17 GB in pandas)."""
    parquet = pq.ParquetFile(info.enterprises_path)
    for batch in parquet.iter_batches(batch_size=batch_rows or default("ingest_chunk_rows"), columns=columns):
        frame = batch.to_pandas()
        for column in S.LIST_COLUMNS:
            if column in frame.columns:
                frame[column] = frame[column].map(lambda v: [] if v is None else list(v))
        yield frame
