"""Deterministic synthetic enterprise universe for the sample region (Yangpu District, Shanghai).

``generate_sample(chain_map, vocabulary, n, seed)`` returns three frames:

- ``enterprises``: a registry-style export (its own column names, mapped by
  ``data/mappings/sample.yaml``) of local firms (Yangpu), the rest of Shanghai, the Yangtze River
  Delta, other Chinese cities and abroad. Descriptions mix several sentence patterns, synonyms,
  firms spanning 2-3 segments, generic boilerplate, generic firms and distractors that share a
  segment's keywords but do something else. A few rows are deliberately broken, as real exports
  are, so the quarantine path is always exercised.
- ``outcomes``: past outreach (a prospect contacted for a gap -> landed or declined), drawn from a
  hidden process of fit, growth and regional links. The process lives only in this module; the
  pipeline learns from the outcomes, never from the process.
- ``labels``: each firm's true segments and kind, for calibration benchmarks and tests only.

Local firms leave some segments empty and others thin on purpose, so the chain map has real gaps.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass

import numpy as np
import pandas as pd

from matcher.chains import ChainMap

QUALIFICATIONS = (
    ("high-tech enterprise", 0.22),
    ("specialised and sophisticated SME", 0.08),
    ("little giant enterprise", 0.015),
    ("technology-based SME", 0.15),
    ("green factory certification", 0.03),
    ("university spin-off", 0.03),
)
RISK_FLAGS = ("abnormal operation", "administrative penalty", "equity freeze", "court enforcement", "tax arrears")
STATUS = (("存续", 0.86), ("注销", 0.06), ("吊销", 0.02), ("acquired", 0.02), ("listed", 0.04))


@dataclass(frozen=True)
class Place:
    district: str
    city: str
    province: str
    country: str
    lat: float
    lon: float
    region_code: str  # first digits of a unified social credit code


PLACES = {
    "local": [Place("Yangpu", "Shanghai", "Shanghai", "CN", 31.2595, 121.5260, "310110")],
    "shanghai": [
        Place("Pudong", "Shanghai", "Shanghai", "CN", 31.2215, 121.5447, "310115"),
        Place("Minhang", "Shanghai", "Shanghai", "CN", 31.1129, 121.3816, "310112"),
        Place("Xuhui", "Shanghai", "Shanghai", "CN", 31.1885, 121.4365, "310104"),
        Place("Jiading", "Shanghai", "Shanghai", "CN", 31.3747, 121.2655, "310114"),
        Place("Songjiang", "Shanghai", "Shanghai", "CN", 31.0323, 121.2277, "310117"),
    ],
    "yrd": [
        Place("Gusu", "Suzhou", "Jiangsu", "CN", 31.2990, 120.5853, "320508"),
        Place("Xuanwu", "Nanjing", "Jiangsu", "CN", 32.0603, 118.7969, "320102"),
        Place("Binhu", "Wuxi", "Jiangsu", "CN", 31.5500, 120.2700, "320211"),
        Place("Xihu", "Hangzhou", "Zhejiang", "CN", 30.2741, 120.1551, "330106"),
        Place("Yinzhou", "Ningbo", "Zhejiang", "CN", 29.8170, 121.5470, "330212"),
        Place("Shushan", "Hefei", "Anhui", "CN", 31.8206, 117.2272, "340104"),
    ],
    "china": [
        Place("Haidian", "Beijing", "Beijing", "CN", 39.9593, 116.2981, "110108"),
        Place("Nanshan", "Shenzhen", "Guangdong", "CN", 22.5333, 113.9304, "440305"),
        Place("Tianhe", "Guangzhou", "Guangdong", "CN", 23.1246, 113.3612, "440106"),
        Place("Wuhou", "Chengdu", "Sichuan", "CN", 30.6420, 104.0430, "510107"),
        Place("Hongshan", "Wuhan", "Hubei", "CN", 30.5050, 114.4000, "420111"),
        Place("Yanta", "Xi'an", "Shaanxi", "CN", 34.2130, 108.9470, "610113"),
        Place("Siming", "Xiamen", "Fujian", "CN", 24.4450, 118.0820, "350203"),
    ],
    "abroad": [
        Place("", "Singapore", "Singapore", "SG", 1.3521, 103.8198, ""),
        Place("", "Munich", "Bavaria", "DE", 48.1351, 11.5820, ""),
        Place("", "San Jose", "California", "US", 37.3382, -121.8863, ""),
        Place("", "Boston", "Massachusetts", "US", 42.3601, -71.0589, ""),
        Place("", "Tokyo", "Tokyo", "JP", 35.6762, 139.6503, ""),
        Place("", "Seoul", "Seoul", "KR", 37.5665, 126.9780, ""),
        Place("", "London", "England", "GB", 51.5072, -0.1276, ""),
        Place("", "Tel Aviv", "Tel Aviv", "IL", 32.0853, 34.7818, ""),
    ],
}
# Legal-form suffixes that fit each country.
SUFFIXES_BY_COUNTRY = {
    "US": ("Inc.", "Corp.", "LLC"), "DE": ("GmbH", "AG"), "GB": ("Ltd.", "PLC"), "SG": ("Pte. Ltd.",),
    "JP": ("K.K.", "Co., Ltd."), "KR": ("Co., Ltd.", "Inc."), "IL": ("Ltd.",),
}
PLACE_SHARES = {"local": 0.10, "shanghai": 0.14, "yrd": 0.26, "china": 0.34, "abroad": 0.16}

PATTERNS = (
    "{name} {verb} {p0} and {p1} for {c0}.",
    "Founded in {year}, the company focuses on {p0}, serving {c0} and {c1}.",
    "Main business: {p0}; {p1}; {p2}; technical services and consulting related to the above.",
    "We help {c0} with {p0}, and also offer {p1}.",
    "The company {verb} {p0}. Its products include {p1} and {p2}, used by {c0}.",
    "A supplier of {p0} to {c0}; core offerings are {p1} and {p2}.",
    "{name} is a team of engineers building {p0}. Customers include {c0} and {c1}.",
)
SECOND_SEGMENT = (
    "It has also expanded into {p0} for {c0}.",
    "A second business line provides {p0}.",
    "In recent years the company has added {p0} and {p1}.",
)
GENERIC_PRODUCTS = (
    "general trading of daily necessities", "business information consulting", "property management services",
    "conference and exhibition services", "enterprise management consulting", "office supplies wholesale",
    "human resources outsourcing", "catering management", "building cleaning services",
)


def _segment_gap_plan(chain_map: ChainMap, rng: np.random.Generator) -> dict[str, float]:
    """Weight of each segment among local firms: per chain one empty, one or two thin ones."""
    plan = {}
    for chain in chain_map.chains:
        ids = [s.id for s in chain.segments]
        order = rng.permutation(len(ids))
        for rank, i in enumerate(order):
            plan[ids[i]] = 0.0 if rank == 0 else (0.04 if rank in (1, 2) else 1.0)
    return plan


def _uscc(rng: np.random.Generator, place: Place, seen: set[str]) -> str:
    alphabet = string.digits + "ABCDEFGHJKLMNPQRTUWXY"
    while True:
        if place.country == "CN":
            body = "".join(rng.choice(list(alphabet), 9))
            code = f"91{place.region_code}{body}"[:18].ljust(18, "0")
        else:
            code = f"F-{place.country}-" + "".join(rng.choice(list(string.digits), 9))
        if code not in seen:
            seen.add(code)
            return code


def _pick(rng: np.random.Generator, items, k: int = 1):
    idx = rng.choice(len(items), size=min(k, len(items)), replace=False)
    return [items[i] for i in idx]


def _describe(rng, name: str, year: int, voc: dict, extra_segments: list[dict], boilerplate: list[str]) -> str:
    products = _pick(rng, voc["products"], 3)
    customers = _pick(rng, voc["customers"], 2)
    pattern = PATTERNS[rng.integers(len(PATTERNS))]
    sentences = [
        pattern.format(
            name=name, verb=_pick(rng, voc["verbs"])[0], year=year,
            p0=products[0], p1=products[1 % len(products)], p2=products[2 % len(products)],
            c0=customers[0], c1=customers[1 % len(customers)],
        )
    ]
    for other in extra_segments:
        p = _pick(rng, other["products"], 2)
        c = _pick(rng, other["customers"], 1)
        sentences.append(SECOND_SEGMENT[rng.integers(len(SECOND_SEGMENT))].format(p0=p[0], p1=p[1 % len(p)], c0=c[0]))
    for line in _pick(rng, boilerplate, int(rng.integers(0, 3))):
        sentences.insert(int(rng.integers(0, len(sentences) + 1)), line)
    return " ".join(sentences)


def generate_sample(chain_map: ChainMap, vocabulary: dict, n: int, seed: int) -> dict[str, pd.DataFrame]:
    """Generate the sample universe (see module docstring). Same arguments, same frames."""
    rng = np.random.default_rng(seed)
    segments = [s for _, s in chain_map.segments()]
    chain_of = {s.id: c.id for c, s in chain_map.segments()}
    segment_ids = [s.id for s in segments]
    by_chain = {c.id: [s.id for s in c.segments] for c in chain_map.chains}
    voc = vocabulary["segments"]
    missing_voc = sorted(set(segment_ids) - set(voc))
    if missing_voc:
        raise ValueError(f"vocabulary has no entry for segments {missing_voc}")
    local_plan = _segment_gap_plan(chain_map, rng)
    prefixes = vocabulary["name_prefixes"]
    suffixes = vocabulary["company_suffixes"]
    boilerplate = vocabulary["boilerplate"]
    distractors = vocabulary["distractors"]

    groups = list(PLACE_SHARES)
    group_of = rng.choice(len(groups), size=n, p=list(PLACE_SHARES.values()))
    seen: set[str] = set()
    rows, labels = [], []
    local_weights = np.array([local_plan[s] for s in segment_ids])
    local_weights = local_weights / local_weights.sum()
    for i in range(n):
        group = groups[group_of[i]]
        place = PLACES[group][rng.integers(len(PLACES[group]))]
        is_local = group == "local"
        roll = rng.random()
        kind = "normal" if roll < 0.74 else "multi" if roll < 0.88 else "distractor" if roll < 0.95 else "generic"
        year = int(np.clip(2024 - rng.gamma(2.0, 4.0), 1988, 2025))
        age = 2026 - year
        if kind in ("normal", "multi"):
            primary = segment_ids[rng.choice(len(segment_ids), p=local_weights)] if is_local else segment_ids[rng.integers(len(segment_ids))]
            own = [primary]
            if kind == "multi":
                siblings = [s for s in by_chain[chain_of[primary]] if s != primary and (not is_local or local_plan[s] > 0)]
                own += _pick(rng, siblings, int(rng.integers(1, 3)))
            v = voc[primary]
            name_word = _pick(rng, v["name_words"])[0]
            description_voc, extra = v, [voc[s] for s in own[1:]]
        elif kind == "distractor":
            d = distractors[rng.integers(len(distractors))]
            own, name_word = [], _pick(rng, d.get("name_words") or ["Trading"])[0]
        else:
            own, name_word = [], _pick(rng, ["Trading", "Services", "Holdings", "Management", "Industrial"])[0]
        prefix = _pick(rng, prefixes)[0]
        if place.country == "CN":
            name = f"{place.city} {prefix} {name_word} {_pick(rng, suffixes['cn'])[0]}"
        else:
            name = f"{prefix} {name_word} {_pick(rng, SUFFIXES_BY_COUNTRY[place.country])[0]}"
        if kind in ("normal", "multi"):
            description = _describe(rng, f"{prefix} {name_word}", year, description_voc, extra, boilerplate)
            tags = _pick(rng, description_voc["products"], int(rng.integers(0, 3)))
        elif kind == "distractor":
            lines = [d["text"]] + _pick(rng, boilerplate, int(rng.integers(0, 2)))
            description = " ".join(lines)
            tags = []
        else:
            description = f"Main business: {'; '.join(_pick(rng, GENERIC_PRODUCTS, 3))}. " + " ".join(_pick(rng, boilerplate, 2))
            tags = []

        employees = int(max(1, round(math.exp(rng.normal(2.3 + 0.12 * min(age, 15), 1.1)))))
        rd_intensity = float(np.clip(rng.gamma(2.0, 0.035), 0, 0.9)) if kind in ("normal", "multi") else float(np.clip(rng.gamma(1.0, 0.01), 0, 0.2))
        growth = rng.normal(0.08 + 0.25 * rd_intensity + (0.15 if age < 6 else 0.0), 0.25)
        quals = [q for q, share in QUALIFICATIONS if rng.random() < share * (1.6 if rd_intensity > 0.08 else 0.6)]
        risk = _pick(rng, RISK_FLAGS, 1) if rng.random() < 0.06 else []
        status = STATUS[rng.choice(len(STATUS), p=[p for _, p in STATUS])][0]
        funded = rng.random() < (0.45 if age < 8 else 0.15)
        revenue = employees * math.exp(rng.normal(13.0, 0.8)) if rng.random() > 0.3 else None
        rows.append(
            {
                "uscc": _uscc(rng, place, seen),
                "company_name": name,
                "business_scope": description,
                "keywords": ";".join(tags),
                "industry_code": f"I{rng.integers(63, 66)}" if chain_of.get(own[0] if own else "", "") in ("artificial-intelligence", "technology-services") else "",
                "district": place.district,
                "city": place.city,
                "province": place.province,
                "country_code": place.country,
                "latitude": round(place.lat + rng.normal(0, 0.03), 5),
                "longitude": round(place.lon + rng.normal(0, 0.03), 5),
                "founded": year,
                "staff_count": employees if rng.random() > 0.08 else "",
                "registered_capital_cny": round(math.exp(rng.normal(15.5, 1.2)), -3),
                "revenue_cny": round(revenue, -3) if revenue else "",
                "revenue_growth": round(growth + rng.normal(0, 0.1), 3) if revenue else "",
                "staff_growth": round(growth, 3) if rng.random() > 0.2 else "",
                "patent_count": int(rng.poisson(max(0.2, rd_intensity * employees * 0.8))),
                "rd_ratio": round(rd_intensity, 4) if rng.random() > 0.25 else "",
                "last_financing": str(pd.Timestamp("2026-10-31") - pd.Timedelta(days=int(rng.integers(20, 1500))))[:10] if funded else "",
                "honors": ";".join(quals),
                "risk_tags": ";".join(risk),
                "reg_status": status,
                "updated": "2026-11-01",
            }
        )
        labels.append({"enterprise_id": rows[-1]["uscc"], "kind": kind, "segments": ";".join(own), "is_local": is_local})

    enterprises = pd.DataFrame(rows).astype(object)
    labels_frame = pd.DataFrame(labels)
    outcomes = _outcomes(rng, enterprises, labels_frame, chain_map, local_plan)
    previous = _previous_snapshot(rng, enterprises)
    _break_some_rows(rng, enterprises)
    return {"enterprises": enterprises, "previous": previous, "outcomes": outcomes, "labels": labels_frame}


def _previous_snapshot(rng: np.random.Generator, current: pd.DataFrame) -> pd.DataFrame:
    """The same universe a year earlier (2025-11-01): the snapshot history the growth model learns
    from. Firms founded since are absent; headcount and revenue are rolled back by their growth;
    firms closed, acquired or listed since were still operating; the growth fields then reported
    are an earlier year's, correlated with (not equal to) the growth that followed."""
    prev = current[current["founded"].astype(int) <= 2024].copy()
    for value, rate in (("staff_count", "staff_growth"), ("revenue_cny", "revenue_growth")):
        known = (prev[value] != "") & (prev[rate] != "")
        rolled = prev.loc[known, value].astype(float) / (1 + prev.loc[known, rate].astype(float).clip(lower=-0.9))
        prev.loc[known, value] = rolled.round(-3 if value == "revenue_cny" else 0).clip(lower=1).astype(int)
    for rate in ("staff_growth", "revenue_growth"):
        known = prev[rate] != ""
        earlier = 0.5 * prev.loc[known, rate].astype(float) + rng.normal(0.03, 0.2, int(known.sum()))
        prev.loc[known, rate] = earlier.round(3)
    changed = prev["reg_status"].isin(["注销", "吊销", "acquired", "listed"]) & (rng.random(len(prev)) < 0.8)
    prev.loc[changed, "reg_status"] = "存续"
    recent = prev["last_financing"].astype(str) > "2025-11-01"
    prev.loc[recent, "last_financing"] = ""
    prev["updated"] = "2025-11-01"
    return prev.reset_index(drop=True)


def _break_some_rows(rng: np.random.Generator, enterprises: pd.DataFrame) -> None:
    """Real exports have a few bad rows; so does the sample (about 0.2 %)."""
    n = len(enterprises)
    k = max(4, n // 500)
    picks = rng.choice(n, size=k, replace=False)
    for j, i in enumerate(picks):
        problem = j % 4
        if problem == 0:
            enterprises.at[i, "staff_count"] = -5
        elif problem == 1:
            enterprises.at[i, "company_name"] = ""
        elif problem == 2:
            enterprises.at[i, "last_financing"] = "last spring"
        else:
            enterprises.at[i, "founded"] = "unknown"


def _outcomes(rng, enterprises: pd.DataFrame, labels: pd.DataFrame, chain_map: ChainMap, local_plan: dict) -> pd.DataFrame:
    """Past outreach for the district's thin segments, landed with a hidden probability."""
    chain_of = {s.id: c.id for c, s in chain_map.segments()}
    partners = {}
    for chain in chain_map.chains:
        for s in chain.segments:
            upstream = [u.id for u in chain.segments if s.id in u.supplies]
            partners[s.id] = sum(local_plan[x] for x in s.supplies + upstream)
    gap_segments = [s for s, w in local_plan.items() if w < 1.0]
    outside = labels.index[~labels["is_local"].to_numpy()]
    member = labels["segments"].str.split(";")
    members_of: dict[str, list[int]] = {}
    for i in outside:
        for segment in member.iloc[i]:
            if segment:
                members_of.setdefault(segment, []).append(int(i))
    contacted = []
    n_out = max(50, len(enterprises) // 10)
    for _ in range(n_out):
        segment = gap_segments[rng.integers(len(gap_segments))]
        # Staff mostly approach firms of the segment, sometimes a loosely related one.
        pool = members_of.get(segment, []) if rng.random() < 0.7 else []
        i = pool[rng.integers(len(pool))] if pool else int(outside[rng.integers(len(outside))])
        contacted.append((segment, i))
    records = []
    for k, (segment, i) in enumerate(contacted):
        row = enterprises.iloc[i]
        segs = member.iloc[i]
        fit = 1.0 if segs and segs[0] == segment else 0.6 if segment in segs else 0.0
        growth = float(row["staff_growth"]) if row["staff_growth"] != "" else 0.05
        funded = 1.0 if row["last_financing"] else 0.0
        near = {"Shanghai": 1.0, "Jiangsu": 0.6, "Zhejiang": 0.6, "Anhui": 0.5}.get(row["province"], 0.1)
        risky = 1.0 if row["risk_tags"] else 0.0
        logit = -3.3 + 2.2 * fit + 2.0 * growth + 0.5 * funded + 0.9 * near + 0.35 * partners[segment] - 1.5 * risky
        landed = rng.random() < 1 / (1 + math.exp(-logit))
        day = pd.Timestamp("2023-01-01") + pd.Timedelta(days=int(rng.integers(0, 1400)))
        records.append(
            {
                "outcome_id": f"o{k:06d}",
                "enterprise_id": row["uscc"],
                "gap_id": f"{chain_of[segment]}.{segment}",
                "contacted_at": str(day)[:10],
                "outcome": "landed" if landed else "declined",
            }
        )
    return pd.DataFrame(records).sort_values("contacted_at", kind="stable").reset_index(drop=True)
