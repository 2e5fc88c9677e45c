"""Sample step: write the synthetic sample region (enterprises, outcomes, labels).

English (the default) writes registry-style CSV files mapped by ``data/mappings/sample.yaml``;
Chinese writes the same firms as the XLSX exports a Chinese enterprise-data platform gives staff
(``enterprises-2026-11-01.xlsx``, ``previous-2025-11-01.xlsx``, headers of
``data/mappings/cn-registry.yaml``; the date in the name is the export's date), with the same
``outcomes.csv`` and ``labels.csv`` as the English sample of the same seed.
"""

from __future__ import annotations

import io
import re
import zipfile
from datetime import datetime
from pathlib import Path

import pandas as pd
import yaml

from matcher.chain_map import load_chain_map
from matcher.errors import ConfigError
from matcher.sample import generate_sample
from matcher.sample_fast import write_fast_sample
from matcher.settings import PROJECT_ROOT

VOCABULARY = PROJECT_ROOT / "data" / "generator" / "vocabulary.yaml"
VOCABULARY_ZH = PROJECT_ROOT / "data" / "generator" / "vocabulary_zh.yaml"
LANGUAGES = ("en", "zh")
# The export dates of the sample's two yearly exports (the English files carry them in a column).
EXPORT_DATES = {"enterprises": "2026-11-01", "previous": "2025-11-01"}
# Fixed timestamps inside the workbook, so the same seed writes the same bytes.
_WORKBOOK_TIME = datetime(2026, 11, 1)


def _load_vocabulary(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"{path}: generator vocabulary not found")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def write_sample(
    out_dir: Path,
    n: int,
    seed: int,
    chain_map_path: Path,
    vocabulary_path: Path = VOCABULARY,
    lang: str = "en",
    vocabulary_zh_path: Path = VOCABULARY_ZH,
) -> dict[str, Path]:
    """Generate and write the sample region; return the paths by frame name.

    ``lang="en"``: ``enterprises.csv``, ``previous.csv``, ``outcomes.csv``, ``labels.csv``.
    ``lang="zh"``: ``enterprises-2026-11-01.xlsx`` and ``previous-2025-11-01.xlsx`` (Chinese
    registry exports, every cell text) plus the same ``outcomes.csv`` and ``labels.csv``.
    """
    if lang not in LANGUAGES:
        raise ConfigError(f"sample language '{lang}' is not one of {', '.join(LANGUAGES)}")
    vocabulary = _load_vocabulary(vocabulary_path)
    vocabulary_zh = _load_vocabulary(vocabulary_zh_path) if lang == "zh" else None
    try:
        frames = generate_sample(load_chain_map(chain_map_path), vocabulary, n=n, seed=seed, lang=lang, vocabulary_zh=vocabulary_zh)
    except ValueError as exc:
        raise ConfigError(f"{vocabulary_zh_path if lang == 'zh' else vocabulary_path}: {exc}") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, frame in frames.items():
        if lang == "zh" and name in EXPORT_DATES:
            path = out_dir / f"{name}-{EXPORT_DATES[name]}.xlsx"
            data = workbook_bytes(frame)
        else:
            path = out_dir / f"{name}.csv"
            data = frame.to_csv(index=False).encode("utf-8")
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        paths[name] = path
    return paths


def write_sample_fast(out_dir: Path, n: int, seed: int, chain_map_path: Path,
                      vocabulary_path: Path = VOCABULARY) -> dict[str, Path]:
    """Write the fast scale-test sample (:mod:`matcher.sample_fast`): ``enterprises.parquet`` only,
    mapped by ``data/mappings/sample.yaml`` like the normal sample's ``enterprises.csv``."""
    vocabulary = _load_vocabulary(vocabulary_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        path = write_fast_sample(out_dir / "enterprises.parquet", load_chain_map(chain_map_path), vocabulary, n, seed)
    except ValueError as exc:
        raise ConfigError(f"{vocabulary_path}: {exc}") from None
    return {"enterprises": path}


def workbook_bytes(frame: pd.DataFrame, sheet: str = "企业列表") -> bytes:
    """``frame`` as an XLSX workbook (one sheet, header row, every cell a string), byte-for-byte
    the same for the same frame."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    book.properties.created = book.properties.modified = _WORKBOOK_TIME
    book.properties.creator = "matcher sample"
    worksheet = book.create_sheet(sheet)
    worksheet.append([str(c) for c in frame.columns])
    for row in frame.itertuples(index=False, name=None):
        worksheet.append(["" if v is None else str(v) for v in row])
    raw = io.BytesIO()
    book.save(raw)
    # openpyxl stamps the zip members and the 'modified' property with the time of saving.
    stamp = _WORKBOOK_TIME.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    fixed = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw.getvalue())) as src, zipfile.ZipFile(fixed, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)", rb"\g<1>" + stamp + rb"\g<2>", data)
            member = zipfile.ZipInfo(info.filename, date_time=_WORKBOOK_TIME.timetuple()[:6])
            member.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(member, data)
    return fixed.getvalue()
