"""Fast, vectorised sample universe for scale tests (``matcher sample --fast``): millions of rows
in minutes, written as Parquet row group by row group, so memory does not grow with ``n``.

The rows have the columns of the normal sample's ``enterprises`` export (:mod:`matcher.sample`,
mapped by ``data/mappings/sample.yaml``), every cell the text the CSV export holds (blank cells
null), drawn from the same distributions: places and their shares, kinds of firm (normal, multi-
segment, distractor, generic), local segment gaps, founding years, size, R&D, growth,
qualifications, risk flags, statuses, funding, revenue, and about 0.2 % deliberately broken rows.
Descriptions use the same sentence patterns and vocabulary, each drawn with array operations
rather than one generator call per value. There is no ``previous`` export, outcome history or
label file: the fast sample is for ingest, build and retrieval at scale, not for training.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from matcher.chain_map import ChainMap
from matcher.sample import GENERIC_PRODUCTS, PATTERNS, SECOND_SEGMENT
from matcher.sample_outcomes import segment_gap_plan
from matcher.sample_world import PLACE_SHARES, PLACES, QUALIFICATIONS, RISK_FLAGS, STATUS, SUFFIXES_BY_COUNTRY

# The columns of the normal sample's export, in its order.
COLUMNS = (
    "uscc", "company_name", "business_scope", "keywords", "industry_code", "district", "city", "province",
    "country_code", "latitude", "longitude", "founded", "staff_count", "registered_capital_cny", "revenue_cny",
    "revenue_growth", "staff_growth", "patent_count", "rd_ratio", "last_financing", "honors", "risk_tags",
    "reg_status", "updated",
)
SCHEMA = pa.schema([(c, pa.string()) for c in COLUMNS])
GENERIC_WORDS = ("Trading", "Services", "Holdings", "Management", "Industrial")
_ID_ALPHABET = np.array(list("0123456789ABCDEFGHJKLMNPQRTUWXY"))
# Odd multipliers coprime to 31 and 10: row number -> a scattered but unique id body.
_ID_MULT_31, _ID_MULT_10 = 7_919_000_003, 982_451_653
_FINANCING_END = np.datetime64("2026-10-31")


def _distinct(lengths: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three distinct indices below ``lengths`` per row (lengths ≥ 3), from three uniforms each.
    Lists shorter than 3 repeat, as :func:`matcher.sample._describe` does with ``i % len``."""
    a = (u[:, 0] * lengths).astype(np.int64)
    b = (a + 1 + (u[:, 1] * np.maximum(lengths - 1, 1)).astype(np.int64)) % lengths
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    c = (u[:, 2] * np.maximum(lengths - 2, 1)).astype(np.int64)
    c = c + (c >= lo)
    c = c + (c >= hi)
    return a, b, np.where(lengths >= 3, c, a) % lengths


def _text(values: np.ndarray, present: np.ndarray | None = None) -> pa.Array:
    """Numbers as the text a CSV export holds; null where not ``present``."""
    arr = pc.cast(pa.array(values), pa.string())
    if present is None:
        return arr
    return pc.if_else(pa.array(present), arr, pa.scalar(None, pa.string()))


def _ids(start: int, group_cn: np.ndarray, region: np.ndarray, country: np.ndarray) -> np.ndarray:
    """Unique registry ids: ``91`` + region code + 9 characters for Chinese firms (as the normal
    sample), ``F-CC-`` + 9 digits abroad; a bijection of the row number, so no set is kept."""
    rows = np.arange(start + 1, start + 1 + len(group_cn), dtype=np.int64)
    body31 = (rows * _ID_MULT_31) % (31 ** 9)
    chars = np.empty((len(rows), 9), dtype="<U1")
    for k in range(8, -1, -1):
        chars[:, k] = _ID_ALPHABET[body31 % 31]
        body31 //= 31
    cn_body = chars.view("<U9").ravel()
    digits = np.char.zfill(((rows * _ID_MULT_10) % 10 ** 9).astype(str), 9)
    cn = np.char.add(np.char.add(np.char.add("91", region), cn_body), "0")  # 18 characters
    abroad = np.char.add(np.char.add(np.char.add("F-", country), "-"), digits)
    return np.where(group_cn, cn, abroad)


class FastSample:
    """Draws the sample's rows chunk by chunk (see module docstring)."""

    def __init__(self, chain_map: ChainMap, vocabulary: dict, seed: int) -> None:
        self.rng = np.random.default_rng([seed, 1_000_003])
        segments = [s for _, s in chain_map.segments()]
        self.segment_ids = [s.id for s in segments]
        chain_of = {s.id: c.id for c, s in chain_map.segments()}
        voc = vocabulary["segments"]
        missing = sorted(set(self.segment_ids) - set(voc))
        if missing:
            raise ValueError(f"vocabulary has no entry for segments {missing}")
        self.voc = [voc[s] for s in self.segment_ids]
        plan = segment_gap_plan(chain_map, np.random.default_rng(seed))
        weights = np.array([plan[s] for s in self.segment_ids])
        self.local_weights = weights / weights.sum()
        index = {s: i for i, s in enumerate(self.segment_ids)}
        by_chain = {c.id: [s.id for s in c.segments] for c in chain_map.chains}
        self.siblings = [[index[x] for x in by_chain[chain_of[s]] if x != s] for s in self.segment_ids]
        self.local_siblings = [[i for i in sib if plan[self.segment_ids[i]] > 0] for sib in self.siblings]
        self.coded = np.array([chain_of[s] in ("artificial-intelligence", "technology-services") for s in self.segment_ids])
        self.prefixes = vocabulary["name_prefixes"]
        self.suffixes_cn = vocabulary["company_suffixes"]["cn"]
        self.boilerplate = vocabulary["boilerplate"]
        self.distractors = vocabulary["distractors"]
        self.groups = list(PLACE_SHARES)
        self.places = [p for g in self.groups for p in PLACES[g]]
        self.group_start = np.cumsum([0] + [len(PLACES[g]) for g in self.groups])[:-1]
        self.group_size = np.array([len(PLACES[g]) for g in self.groups])

    def chunks(self, n: int, chunk_rows: int) -> Iterator[pa.Table]:
        """``n`` rows as tables of at most ``chunk_rows`` rows."""
        breaks = self.rng.choice(n, size=min(n, max(4, n // 500)), replace=False)
        for start in range(0, n, chunk_rows):
            size = min(chunk_rows, n - start)
            mine = np.sort(breaks[(breaks >= start) & (breaks < start + size)])
            yield self._chunk(start, size, mine - start, np.searchsorted(np.sort(breaks), mine))

    def _chunk(self, start: int, n: int, broken_rows: np.ndarray, broken_kind: np.ndarray) -> pa.Table:
        rng = self.rng
        group = rng.choice(len(self.groups), size=n, p=list(PLACE_SHARES.values()))
        place = self.group_start[group] + (rng.random(n) * self.group_size[group]).astype(np.int64)
        is_local = group == self.groups.index("local")
        roll = rng.random(n)
        kind = np.select([roll < 0.74, roll < 0.88, roll < 0.95], [0, 1, 2], 3)  # normal multi distractor generic
        year = np.clip(2024 - rng.gamma(2.0, 4.0, n), 1988, 2025).astype(np.int64)
        age = 2026 - year
        primary = np.where(is_local, rng.choice(len(self.segment_ids), size=n, p=self.local_weights),
                           rng.integers(len(self.segment_ids), size=n))
        segmented = kind <= 1
        distractor = rng.integers(len(self.distractors), size=n)
        u = rng.random((n, 16))
        n_extra = rng.integers(1, 3, size=n)
        n_boiler = rng.integers(0, 3, size=n)
        pattern = rng.integers(len(PATTERNS), size=n)
        second = rng.integers(len(SECOND_SEGMENT), size=n)
        n_tags = rng.integers(0, 3, size=n)
        prefix = rng.integers(len(self.prefixes), size=n)

        n_products = np.array([len(v["products"]) for v in self.voc])[primary]
        n_customers = np.array([len(v["customers"]) for v in self.voc])[primary]
        p0, p1, p2 = _distinct(n_products, u[:, 0:3])
        c0, c1, _ = _distinct(np.maximum(n_customers, 1), np.column_stack([u[:, 3], u[:, 4], u[:, 4]]))
        t0, t1, _ = _distinct(n_products, u[:, 5:8])
        b0, b1, _ = _distinct(np.full(n, len(self.boilerplate)), u[:, 8:11])
        g0, g1, g2 = _distinct(np.full(n, len(GENERIC_PRODUCTS)), u[:, 11:14])
        front = u[:, 14] < 0.5

        names, texts, tags = [], [], []
        for i in range(n):
            pl = self.places[place[i]]
            k = kind[i]
            boiler = [self.boilerplate[b0[i]], self.boilerplate[b1[i]]]
            if k <= 1:
                v = self.voc[primary[i]]
                word = v["name_words"][int(u[i, 15] * len(v["name_words"]))]
            elif k == 2:
                d = self.distractors[distractor[i]]
                choices = d.get("name_words") or ["Trading"]
                word = choices[int(u[i, 15] * len(choices))]
            else:
                word = GENERIC_WORDS[int(u[i, 15] * len(GENERIC_WORDS))]
            short = f"{self.prefixes[prefix[i]]} {word}"
            if pl.country == "CN":
                names.append(f"{pl.city} {short} {self.suffixes_cn[int(u[i, 13] * len(self.suffixes_cn))]}")
            else:
                own = SUFFIXES_BY_COUNTRY[pl.country]
                names.append(f"{short} {own[int(u[i, 13] * len(own))]}")
            if k <= 1:
                products, customers = v["products"], v["customers"]
                sentences = [PATTERNS[pattern[i]].format(
                    name=short, verb=v["verbs"][int(u[i, 12] * len(v["verbs"]))], year=year[i],
                    p0=products[p0[i]], p1=products[p1[i]], p2=products[p2[i]],
                    c0=customers[c0[i]], c1=customers[c1[i]])]
                if k == 1:
                    pool = self.local_siblings[primary[i]] if is_local[i] else self.siblings[primary[i]]
                    for j in range(min(n_extra[i], len(pool))):
                        other = self.voc[pool[(int(u[i, 9] * len(pool)) + j) % len(pool)]]
                        op, oc = other["products"], other["customers"]
                        sentences.append(SECOND_SEGMENT[second[i]].format(
                            p0=op[p1[i] % len(op)], p1=op[p2[i] % len(op)], c0=oc[c1[i] % len(oc)]))
                lines = boiler[: n_boiler[i]]
                sentences = lines + sentences if front[i] else sentences + lines
                texts.append(" ".join(sentences))
                tags.append(";".join([products[t0[i]], products[t1[i]]][: n_tags[i]]))
            elif k == 2:
                texts.append(" ".join([d["text"], *boiler[: n_boiler[i] % 2]]))
                tags.append("")
            else:
                generic = "; ".join((GENERIC_PRODUCTS[g0[i]], GENERIC_PRODUCTS[g1[i]], GENERIC_PRODUCTS[g2[i]]))
                texts.append(f"Main business: {generic}. " + " ".join(boiler))
                tags.append("")

        employees = np.maximum(1, np.round(np.exp(rng.normal(2.3 + 0.12 * np.minimum(age, 15), 1.1)))).astype(np.int64)
        rd = np.where(segmented, np.clip(rng.gamma(2.0, 0.035, n), 0, 0.9), np.clip(rng.gamma(1.0, 0.01, n), 0, 0.2))
        growth = rng.normal(0.08 + 0.25 * rd + np.where(age < 6, 0.15, 0.0), 0.25)
        boost = np.where(rd > 0.08, 1.6, 0.6)
        held = [rng.random(n) < share * boost for _, share in QUALIFICATIONS]
        quals = [";".join(q for (q, _), h in zip(QUALIFICATIONS, row) if h) for row in zip(*held)]
        risky = rng.random(n) < 0.06
        risk = np.where(risky, np.array(RISK_FLAGS, dtype=object)[rng.integers(len(RISK_FLAGS), size=n)], "")
        status = np.array([s for s, _ in STATUS], dtype=object)[rng.choice(len(STATUS), size=n, p=[p for _, p in STATUS])]
        funded = rng.random(n) < np.where(age < 8, 0.45, 0.15)
        has_revenue = rng.random(n) > 0.3
        revenue = np.round(employees * np.exp(rng.normal(13.0, 0.8, n)), -3)
        geo = np.array([(p.lat, p.lon) for p in self.places])[place]
        region = np.array([p.region_code for p in self.places])[place]
        country = np.array([p.country for p in self.places])[place]
        financing = (_FINANCING_END - rng.integers(20, 1500, size=n).astype("timedelta64[D]")).astype(str)
        industry = np.where(segmented & self.coded[primary], np.char.add("I", rng.integers(63, 66, size=n).astype(str)), "")

        columns = {
            "uscc": pa.array(_ids(start, country == "CN", region, country)),
            "company_name": pa.array(names, pa.string()),
            "business_scope": pa.array(texts, pa.string()),
            "keywords": pa.array(tags, pa.string()),
            "industry_code": pa.array(industry),
            "district": pa.array([p.district for p in self.places], pa.string()).take(pa.array(place)),
            "city": pa.array([p.city for p in self.places], pa.string()).take(pa.array(place)),
            "province": pa.array([p.province for p in self.places], pa.string()).take(pa.array(place)),
            "country_code": pa.array(country),
            "latitude": _text(np.round(geo[:, 0] + rng.normal(0, 0.03, n), 5)),
            "longitude": _text(np.round(geo[:, 1] + rng.normal(0, 0.03, n), 5)),
            "founded": _text(year),
            "staff_count": _text(employees, rng.random(n) > 0.08),
            "registered_capital_cny": _text(np.round(np.exp(rng.normal(15.5, 1.2, n)), -3)),
            "revenue_cny": _text(revenue, has_revenue),
            "revenue_growth": _text(np.round(growth + rng.normal(0, 0.1, n), 3), has_revenue),
            "staff_growth": _text(np.round(growth, 3), rng.random(n) > 0.2),
            "patent_count": _text(rng.poisson(np.maximum(0.2, rd * employees * 0.8))),
            "rd_ratio": _text(np.round(rd, 4), rng.random(n) > 0.25),
            "last_financing": pc.if_else(pa.array(funded), pa.array(financing), pa.scalar(None, pa.string())),
            "honors": pa.array(quals, pa.string()),
            "risk_tags": pa.array(risk.astype(str)),
            "reg_status": pa.array(status.astype(str)),
            "updated": pa.array(np.full(n, "2026-11-01")),
        }
        # Blank text cells are null, as a CSV export read back has them.
        for name in ("keywords", "industry_code", "district", "honors", "risk_tags"):
            column = columns[name]
            columns[name] = pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)
        table = pa.table(columns, schema=SCHEMA)
        return _break_rows(table, broken_rows, broken_kind)


def _break_rows(table: pa.Table, rows: np.ndarray, kinds: np.ndarray) -> pa.Table:
    """The normal sample's four kinds of broken row, in turn (about 0.2 % of rows)."""
    if len(rows) == 0:
        return table
    for problem, (column, value) in enumerate(
        (("staff_count", "-5"), ("company_name", None), ("last_financing", "last spring"), ("founded", "unknown"))
    ):
        hit = rows[kinds % 4 == problem]
        if len(hit) == 0:
            continue
        mask = np.zeros(table.num_rows, dtype=bool)
        mask[hit] = True
        index = table.schema.get_field_index(column)
        fixed = pc.if_else(pa.array(mask), pa.scalar(value, pa.string()), table.column(index))
        table = table.set_column(index, column, fixed)
    return table


def write_fast_sample(path: Path, chain_map: ChainMap, vocabulary: dict, n: int, seed: int,
                      chunk_rows: int = 250_000) -> Path:
    """Write ``n`` rows to ``path`` (Parquet, one row group per chunk) and return it.

    The file is written under a temporary name and renamed into place."""
    generator = FastSample(chain_map, vocabulary, seed)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with pq.ParquetWriter(tmp, SCHEMA, compression="zstd") as writer:
            for table in generator.chunks(n, chunk_rows):
                writer.write_table(table, row_group_size=chunk_rows)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
