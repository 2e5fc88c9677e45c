"""Small, seeded test data: a registry-style source frame, its mapping, canonical frames and a
deterministic stand-in encoder.

``make_enterprises(n=30, seed=0)`` returns a *raw* source frame with the source's own column
names; ``SOURCE_MAPPING`` / ``make_mapping()`` map it onto the canonical columns. Structure is fixed
by row position so every frame of ten or more rows has local firms, closed firms, firms with
unknown employees and several countries, whatever the seed; the values come from the seed.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from matcher import schemas as S
from matcher.mapping import Mapping
from matcher.mapping_apply import apply_mapping
from matcher.validation import validate_enterprises

# Distinct vocabularies, so a bag-of-words encoder separates the topics.
TOPICS = {
    "lidar": (
        "LiDAR sensors and laser radar modules for autonomous driving",
        "solid-state lidar, point cloud perception and obstacle detection for robotaxis and delivery robots",
        ["lidar", "laser radar", "autonomous driving"],
    ),
    "payments": (
        "online payment gateway and digital wallets for merchants",
        "cross-border settlement, card acquiring and anti-fraud risk control for e-commerce sellers",
        ["payments", "fintech", "wallet"],
    ),
    "genomics": (
        "gene sequencing instruments and genomic diagnostics",
        "next-generation sequencing reagents, oncology panels and bioinformatics for hospitals",
        ["sequencing", "genomics", "diagnostics"],
    ),
    "games": (
        "mobile game development studio",
        "casual puzzle games, role-playing games and live operations for players worldwide",
        ["games", "mobile games"],
    ),
    "batteries": (
        "lithium battery cells and energy storage systems",
        "battery packs, battery management systems and grid storage for electric vehicles",
        ["battery", "energy storage"],
    ),
    "edtech": (
        "online courses and language learning apps",
        "virtual classrooms, vocational training and AI tutoring for students and parents",
        ["edtech", "online education"],
    ),
}
PLACES = (
    # district, city, province, country
    ("Yangpu", "Shanghai", "Shanghai", "CN"),
    ("Pudong", "Shanghai", "Shanghai", "CN"),
    ("Gusu", "Suzhou", "Jiangsu", "CN"),
    ("Xihu", "Hangzhou", "Zhejiang", "CN"),
    ("Nanshan", "Shenzhen", "Guangdong", "CN"),
    ("", "Munich", "Bavaria", "DE"),
    ("", "Boston", "Massachusetts", "US"),
    ("", "Singapore", "Singapore", "SG"),
)
HONORS = ("high-tech enterprise", "technology-based SME", "university spin-off")
LOCAL_DISTRICT = "Yangpu"

SOURCE_MAPPING: dict[str, Any] = {
    "name": "factory",
    "description": "Registry-style export made by tests/factories.py",
    "columns": {
        "enterprise_id": "firm_id",
        "name": "firm_name",
        "description": {"concat": ["summary", "details"]},
        "tags": {"column": "keywords", "list": ";"},
        "city": "city",
        "province": "province",
        "country": "country",
        "founded_year": "founded",
        "employees": "headcount",
        "revenue": "revenue",
        "qualifications": {"column": "honors", "list": ";"},
        "status": "state",
        "updated_at": "last_update",
    },
    "extra": {"district": "district"},
    "is_local": {"column": "district", "in": [LOCAL_DISTRICT]},
}


def topic_of(i: int) -> str:
    """The topic of row ``i`` of :func:`make_enterprises` (fixed by position)."""
    return list(TOPICS)[i % len(TOPICS)]


def make_enterprises(n: int = 30, seed: int = 0) -> pd.DataFrame:
    """A raw source frame (all cells strings, as read from a CSV) of ``n`` distinct enterprises.

    By position: every 5th row (0, 5, ...) is local (district Yangpu), rows with ``i % 7 == 3``
    are closed, rows with ``i % 6 == 4`` have no head count, and outside rows cycle through the
    places (CN provinces, DE, US, SG).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        topic = topic_of(i)
        summary, details, keywords = TOPICS[topic]
        if i % 5 == 0:
            place = PLACES[0]
        else:
            place = PLACES[1 + (i // 5 + i) % (len(PLACES) - 1)]
        district, city, province, country = place
        employees = "" if i % 6 == 4 else str(int(rng.integers(1, 2000)))
        honors = [h for h in HONORS if rng.random() < 0.35]
        rows.append(
            {
                "firm_id": f"E{seed:02d}{i:04d}",
                "firm_name": f"{city} {topic.title()} Works {i} Co., Ltd.",
                "summary": f"{summary} ({rng.choice(['pilot', 'mass production', 'research'])})",
                "details": details,
                "keywords": ";".join(keywords[: int(rng.integers(0, len(keywords) + 1))]),
                "district": district,
                "city": city,
                "province": province,
                "country": country,
                "founded": str(int(rng.integers(1995, 2025))),
                "headcount": employees,
                "revenue": "" if rng.random() < 0.3 else f"{rng.uniform(1e5, 1e9):.0f}",
                "honors": ";".join(honors),
                "state": "注销" if i % 7 == 3 else str(rng.choice(["存续", "active", "listed"])),
                "last_update": f"2026-{int(rng.integers(1, 12)):02d}-{int(rng.integers(1, 28)):02d}",
            }
        )
    return pd.DataFrame(rows, dtype=object)


def mapping_dict(**overrides: Any) -> dict[str, Any]:
    """A deep copy of :data:`SOURCE_MAPPING` with top-level keys replaced."""
    data = copy.deepcopy(SOURCE_MAPPING)
    data.update(overrides)
    return data


def make_mapping(**overrides: Any) -> Mapping:
    """The validated mapping of :func:`make_enterprises` frames."""
    return Mapping.model_validate(mapping_dict(**overrides))


def write_mapping(path: Path, data: dict[str, Any] | None = None) -> Path:
    path.write_text(yaml.safe_dump(data if data is not None else mapping_dict(), allow_unicode=True))
    return path


def write_source(frame: pd.DataFrame, path: Path) -> Path:
    """Write a raw frame as CSV, Parquet or JSONL, chosen by the suffix of ``path``."""
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        raise ValueError(path)
    return path


def make_validated(n: int = 30, seed: int = 0) -> pd.DataFrame:
    """Canonical, validated enterprises (the frame a snapshot holds, without hashes)."""
    raw = make_enterprises(n, seed)
    result = validate_enterprises(apply_mapping(raw, make_mapping(), "factory.csv"), "factory.csv")
    assert len(result.quarantine) == 0, result.quarantine
    return result.enterprises


def make_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """A canonical enterprise frame from a few hand-written rows (unspecified fields defaulted)."""
    defaults = {
        S.NAME: "Firm",
        S.DESCRIPTION: "does things",
        S.COUNTRY: "CN",
        S.PROVINCE: "Jiangsu",
        S.CITY: "Suzhou",
        S.EMPLOYEES: None,
        S.FOUNDED_YEAR: None,
        S.QUALIFICATIONS: [],
        S.TAGS: [],
        S.IS_LOCAL: False,
        S.STATUS: "存续",
        S.STATUS_CLASS: "operating",
    }
    records = [{S.ENTERPRISE_ID: f"F{i}", **defaults, **row} for i, row in enumerate(rows)]
    frame = pd.DataFrame(records)
    frame[S.EMPLOYEES] = pd.array(frame[S.EMPLOYEES].tolist(), dtype="Int64")
    frame[S.FOUNDED_YEAR] = pd.array(frame[S.FOUNDED_YEAR].tolist(), dtype="Int64")
    frame[S.IS_LOCAL] = frame[S.IS_LOCAL].astype(bool)
    return frame


_TOKEN = re.compile(r"[a-z0-9]+")


class HashingEncoder:
    """A deterministic bag-of-words stand-in for :class:`matcher.embedding.Encoder`.

    Same interface (``model_name``, ``model_path``, ``precision``, ``batch_size``, ``dim``, ``key``,
    ``encode``); texts sharing words get similar vectors. Counts what it is asked to embed, for
    cache tests. Use only where the test is not about the embedding model.
    """

    def __init__(self, dim: int = 64):
        self.dim = dim
        self.model_name = "hashing-test-encoder"
        self.model_path = Path("/nonexistent/hashing-test-encoder")
        self.precision = "fp32"
        self.batch_size = 64
        self.calls = 0
        self.encoded: list[str] = []

    @property
    def key(self) -> str:
        return f"hashing-{self.dim}"

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        self.calls += 1
        self.encoded.extend(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in _TOKEN.findall(text.lower()):
                if len(token) < 3:
                    continue
                digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
                out[row, int.from_bytes(digest[:4], "little") % self.dim] += 1.0 if digest[4] & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        if progress is not None:
            progress(len(texts))
        return out / np.maximum(norms, 1e-12)


def unit_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """``n`` random L2-normalised float32 vectors."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def resident_kb(path: Path) -> int:
    """Resident kB of this process's mappings of ``path``."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and not head[0].endswith(":"):
            inside = head[-1] == str(path)
        elif inside and line.startswith("Rss:"):
            total += int(head[1])
    return total
