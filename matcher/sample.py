"""Deterministic synthetic enterprise universe for the sample region (Yangpu District, Shanghai).

``generate_sample(chain_map, vocabulary, n, seed)`` returns four frames:

- ``enterprises``: a registry-style export (its own column names, mapped by
  ``data/mappings/sample.yaml``) of local firms (Yangpu), the rest of Shanghai, the Yangtze River
  Delta, other Chinese cities and abroad. Descriptions mix several sentence patterns, synonyms,
  firms spanning 2-3 segments, generic boilerplate, generic firms and distractors that share a
  segment's keywords but do something else. A few rows are deliberately broken, as real exports
  are, so the quarantine path is always exercised. ``previous`` is the same export a year earlier.
- ``outcomes``: past outreach (a prospect contacted for a gap -> landed or declined), drawn from a
  hidden process of fit, growth and regional links. The process lives only in this module; the
  pipeline learns from the outcomes, never from the process.
- ``labels``: each firm's true segments and kind, for calibration benchmarks and tests only.

Local firms leave some segments empty and others thin on purpose, so the chain map has real gaps.

``lang="zh"`` swaps only the language layer: the same firms, places, sizes, growth, labels and
outcomes, written as a Chinese enterprise-data export (headers of ``data/mappings/cn-registry.yaml``:
企业名称 such as 上海恒锐机器人有限公司, 经营范围 in the registry's wording with its 一般项目/许可项目
clauses, 注册资本 such as 500万元人民币, 国标行业 codes drawn from the firm's true segment with some
noise, Chinese statuses and places, qualification flags), from ``data/generator/vocabulary_zh.yaml``.
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


def generate_sample(
    chain_map: ChainMap, vocabulary: dict, n: int, seed: int, lang: str = "en", vocabulary_zh: dict | None = None
) -> dict[str, pd.DataFrame]:
    """Generate the sample universe (see module docstring). Same arguments, same frames.

    Parameters
    ----------
    vocabulary : dict
        ``data/generator/vocabulary.yaml``: it draws the structure in both languages.
    lang : {"en", "zh"}
        ``"zh"`` writes the same firms as a Chinese registry export (see :func:`chinese_export`):
        the labels and outcomes are those of the English sample of the same seed.
    vocabulary_zh : dict, optional
        ``data/generator/vocabulary_zh.yaml``; required when ``lang == "zh"``.
    """
    if lang not in ("en", "zh"):
        raise ValueError(f"unknown sample language '{lang}'; use en or zh")
    if lang == "zh":
        if vocabulary_zh is None:
            raise ValueError("a Chinese sample needs the Chinese vocabulary (data/generator/vocabulary_zh.yaml)")
        _check_vocabulary_zh(chain_map, vocabulary_zh)
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
    rows, labels, distractor_of = [], [], []
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
        distractor_of.append(d["shares_with"] if kind == "distractor" else "")

    enterprises = pd.DataFrame(rows).astype(object)
    labels_frame = pd.DataFrame(labels)
    outcomes = _outcomes(rng, enterprises, labels_frame, chain_map, local_plan)
    previous = _previous_snapshot(rng, enterprises)
    if lang == "zh":
        current_zh, previous_zh = chinese_export(
            enterprises, previous, labels_frame, distractor_of, vocabulary_zh, np.random.default_rng([seed, 86])
        )
        _break_some_rows_zh(rng, current_zh)
        return {"enterprises": current_zh, "previous": previous_zh, "outcomes": outcomes, "labels": labels_frame}
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


# ------------------------------------------------------------------------ Chinese language layer

# The column headers of a Chinese enterprise-data export (data/mappings/cn-registry.yaml).
CN_REGISTRY_COLUMNS = (
    "企业名称", "统一社会信用代码", "登记状态", "成立日期", "注册资本", "实缴资本", "法定代表人", "企业类型",
    "所属省份", "所属城市", "所属区县", "注册地址", "国标行业门类", "国标行业大类", "国标行业中类", "国标行业小类",
    "参保人数", "企业规模", "融资轮次", "最近融资时间", "经营范围", "资质荣誉",
    "高新技术企业", "专精特新", '专精特新"小巨人"', "科技型中小企业", "瞪羚", "独角兽",
)
FLAG_COLUMNS = ("高新技术企业", "专精特新", '专精特新"小巨人"', "科技型中小企业", "瞪羚", "独角兽")
MUNICIPALITIES = ("上海市", "北京市", "天津市", "重庆市")


def _check_vocabulary_zh(chain_map: ChainMap, voc: dict) -> None:
    """The Chinese vocabulary covers every segment, and each segment's industry classes lie
    within the chain map's ``industry_codes`` of that segment and have names."""
    segments = {s.id: s for _, s in chain_map.segments()}
    missing = sorted(set(segments) - set(voc["segments"]))
    if missing:
        raise ValueError(f"Chinese vocabulary has no entry for segments {missing}")
    names = voc["industry_names"]
    for segment_id, entry in voc["segments"].items():
        codes = segments[segment_id].industry_codes if segment_id in segments else []
        for code in entry["industry_classes"]:
            if codes and not any(code.startswith(c) for c in codes):
                raise ValueError(f"Chinese vocabulary: {segment_id} class {code} is not within its industry_codes {codes}")
    classes = [c for e in voc["segments"].values() for c in e["industry_classes"]]
    classes += [d["industry_class"] for d in voc["distractors"].values()]
    classes += voc["generic_industry_classes"] + voc["noise_industry_classes"]
    unnamed = sorted({p for c in classes for p in (c, c[:4], c[:3], c[0])} - set(names))
    if unnamed:
        raise ValueError(f"Chinese vocabulary: industry_names lacks {unnamed}")


def _industry_columns(code: str | None, names: dict) -> dict[str, str]:
    """The four 国标行业 cells (门类/大类/中类/小类), each "code name", for a four-digit class."""
    if not code:
        return dict.fromkeys(("国标行业门类", "国标行业大类", "国标行业中类", "国标行业小类"), "-")
    return {
        "国标行业门类": f"{code[0]} {names[code[0]]}",
        "国标行业大类": f"{code[:3]} {names[code[:3]]}",
        "国标行业中类": f"{code[:4]} {names[code[:4]]}",
        "国标行业小类": f"{code} {names[code]}",
    }


def _capital(amount_cny: float, currency: tuple[str, float] | None, rng: np.random.Generator) -> str:
    """A registered-capital string as exports write it: ``1000万元人民币``, ``1.2亿元人民币``,
    ``500万美元``; amounts are rounded to one or two significant figures, as firms register them."""
    if currency is not None:
        word, rate = currency
        amount, unit_word = amount_cny / rate, word
    else:
        amount, unit_word = amount_cny, None
    wan = max(amount / 1e4, 1.0)
    digits = 1 if rng.random() < 0.5 else 2
    wan = float(f"{wan:.{digits}g}")
    if unit_word is not None:
        return f"{wan:g}万{unit_word}"
    if wan >= 10_000 and rng.random() < 0.5:
        return f"{wan / 1e4:g}亿元人民币"
    return f"{wan:g}" + ("万元人民币" if rng.random() < 0.8 else "万人民币" if rng.random() < 0.5 else "万元")


def _scope_zh(rng, items: list[str], licensed: list[str], field: str | None, voc: dict) -> str:
    """A 经营范围 in one of the registry's layouts, from segment items (and licensed items), among
    as many generic items as real scopes carry (2 to 6)."""
    boiler = _pick(rng, voc["boilerplate"], int(rng.integers(2, 7)))
    general = list(items)
    for line in boiler:
        general.insert(int(rng.integers(0, len(general) + 1)), line)
    layout = rng.random()
    if field and layout < 0.2:
        field = field if field.endswith(("技术", "科技")) else f"{field}科技"
        head = f"从事{field}领域内的技术开发、技术咨询、技术服务、技术转让"
        return "；".join([head] + general + licensed) + "。" + voc["old_clause"]
    if layout < 0.35:
        return "；".join(general + licensed) + "。（依法须经批准的项目，经相关部门批准后方可开展经营活动）"
    general_part = "一般项目：" + "；".join(general) + voc["general_clause"]
    if not licensed:
        return general_part
    licensed_part = "许可项目：" + "；".join(licensed) + voc["licensed_clause"]
    return licensed_part + general_part if layout < 0.7 else general_part + licensed_part


def _firm_zh(rng, row: dict, label: dict, distractor: str, voc: dict) -> dict:
    """The attributes of one firm that do not change between two yearly exports."""
    segments = [s for s in str(label["segments"]).split(";") if s]
    kind = label["kind"]
    if segments:
        entry = voc["segments"][segments[0]]
        # As hard as the English sample: a quarter of the firms describe their segment in one or
        # two items only (the rest of the scope is generic), the others in two to four.
        vague = rng.random() < 0.25
        items = _pick(rng, entry["scope"], int(rng.integers(1, 3)) if vague else int(rng.integers(2, 5)))
        for other in segments[1:]:
            items += _pick(rng, voc["segments"][other]["scope"], int(rng.integers(1, 3)))
        licensed = _pick(rng, entry["licensed"], int(rng.integers(1, 3))) if entry["licensed"] and rng.random() < 0.5 else []
        description = _scope_zh(rng, items, licensed, entry["field"], voc)
        word = _pick(rng, entry["name_words"])[0]
        # Many firms register under a catch-all class (科技推广和应用服务 and the like) or none.
        roll = rng.random()
        if roll < 0.55:
            code = _pick(rng, entry["industry_classes"])[0]
        else:
            code = _pick(rng, voc["noise_industry_classes"])[0] if roll < 0.85 else None
    elif kind == "distractor":
        entry = voc["distractors"][distractor]
        items = _pick(rng, entry["scope"], len(entry["scope"]))
        items += _pick(rng, voc["boilerplate"], int(rng.integers(0, 3)))
        description = "一般项目：" + "；".join(items) + voc["general_clause"]
        word = _pick(rng, entry["name_words"])[0]
        code = entry["industry_class"] if rng.random() < 0.85 else _pick(rng, voc["noise_industry_classes"])[0]
    else:
        items = _pick(rng, voc["generic_scope"], int(rng.integers(3, 6)))
        description = "一般项目：" + "；".join(items + _pick(rng, voc["boilerplate"], 2)) + voc["general_clause"]
        word = _pick(rng, voc["generic_name_words"])[0]
        code = _pick(rng, voc["generic_industry_classes"])[0]

    country = row["country_code"]
    brand = _pick(rng, voc["brands"])[0]
    city = voc["cities"][row["city"]]
    if country == "CN":
        kind_row = voc["company_types"][rng.choice(len(voc["company_types"]), p=[t[2] for t in voc["company_types"]])]
        company_type, suffix = kind_row[0], kind_row[1]
        short_city = city.removesuffix("市")
        name = f"{short_city}{brand}{word}{suffix}" if rng.random() < 0.8 else f"{brand}（{short_city}）{word}{suffix}"
        province, district = voc["provinces"][row["province"]], voc["districts"][row["district"]]
        roads = voc["local_roads"] if row["district"] == "Yangpu" else voc["roads"]
        region = province if province in MUNICIPALITIES else province + city
        road, number = _pick(rng, roads)[0], int(rng.integers(1, 1500))
        building, room = int(rng.integers(1, 12)), int(rng.integers(101, 2400))
        address = f"{region}{district}{road}{number}号{building}幢{room}室"
        currency = _pick(rng, [("美元", 7.1), ("港元", 0.91)])[0] if "外商投资" in company_type else None
    else:
        company_type = voc["foreign_company_type"]
        province, district = voc["countries"][country], "-"
        name = f"{brand}{word}（{province}）有限公司"
        address = f"{province}{city}"
        code = None  # Chinese platforms carry no 国标行业 for firms registered abroad
        currency = tuple(voc["foreign_currencies"][country])
    capital = float(row["registered_capital_cny"])
    paid = _capital(capital * rng.uniform(0.2, 1.0), currency, rng) if rng.random() < 0.5 else "-"
    surname, given = _pick(rng, voc["surnames"])[0], _pick(rng, voc["given_names"])[0]
    year = int(row["founded"])
    honors = [voc["other_honors"][i] for i in range(len(voc["other_honors"])) if rng.random() < 0.04]
    growth = float(row["staff_growth"]) if row["staff_growth"] != "" else 0.0
    employees = int(row["staff_count"]) if row["staff_count"] != "" else 0
    return {
        "name": name, "description": description, "code": code, "company_type": company_type,
        "province": province, "city": city, "district": district, "address": address,
        "capital": _capital(capital, currency, rng), "paid": paid, "legal_rep": surname + given,
        "founded": f"{year}-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}",
        "status_roll": float(rng.random()), "round_roll": float(rng.random()),
        "missing_word": "-" if rng.random() < 0.7 else "未公开",
        "honors": honors,
        "gazelle": 2026 - year <= 10 and growth > 0.25 and rng.random() < 0.5,
        "unicorn": 2026 - year <= 12 and employees > 300 and row["last_financing"] != "" and rng.random() < 0.1,
    }


def _size_word(employees: int) -> str:
    return "微型" if employees < 10 else "小型" if employees < 100 else "中型" if employees < 1000 else "大型"


def _export_row_zh(row: dict, firm: dict, voc: dict) -> dict:
    """One row of a yearly Chinese export: the firm's fixed attributes plus that year's values."""
    status_words = voc["statuses"][row["reg_status"]]
    cumulative, status = 0.0, status_words[-1][0]
    for word, weight in status_words:
        cumulative += weight
        if firm["status_roll"] < cumulative:
            status = word
            break
    staff = row["staff_count"]
    age = 2026 - int(row["founded"])
    funded = row["last_financing"] != ""
    stage = "young" if age < 4 else "growing" if age < 9 else "mature"
    rounds = voc["funding_rounds"][stage]
    quals = [voc["qualifications"][q] for q in str(row["honors"]).split(";") if q]
    flags = {column: "否" for column in FLAG_COLUMNS}
    for _, flag in quals:
        if flag:
            flags[flag] = "是"
    if firm["gazelle"]:
        flags["瞪羚"] = "是"
    if firm["unicorn"]:
        flags["独角兽"] = "是"
    honors = [zh for zh, _ in quals] + firm["honors"]
    honors += ["瞪羚企业"] * (flags["瞪羚"] == "是") + ["独角兽企业"] * (flags["独角兽"] == "是")
    out = {
        "企业名称": firm["name"],
        "统一社会信用代码": row["uscc"],
        "登记状态": status,
        "成立日期": firm["founded"],
        "注册资本": firm["capital"],
        "实缴资本": firm["paid"],
        "法定代表人": firm["legal_rep"],
        "企业类型": voc["listed_company_type"] if row["reg_status"] == "listed" else firm["company_type"],
        "所属省份": firm["province"],
        "所属城市": firm["city"],
        "所属区县": firm["district"],
        "注册地址": firm["address"],
        **_industry_columns(firm["code"], voc["industry_names"]),
        "参保人数": str(staff) if staff != "" else firm["missing_word"],
        "企业规模": _size_word(int(staff)) if staff != "" else "-",
        "融资轮次": rounds[int(firm["round_roll"] * len(rounds))] if funded else "-",
        "最近融资时间": row["last_financing"] if funded else "-",
        "经营范围": firm["description"],
        "资质荣誉": "；".join(honors) if honors else "-",
        **flags,
    }
    return out


def chinese_export(
    enterprises: pd.DataFrame,
    previous: pd.DataFrame,
    labels: pd.DataFrame,
    distractor_of: list[str],
    vocabulary_zh: dict,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """This year's and last year's export of the sample's firms as a Chinese enterprise-data
    platform writes them (the columns of :data:`CN_REGISTRY_COLUMNS`, every cell a string).

    Only the language layer changes: the same firms (same ``统一社会信用代码``), places, founding
    years, headcounts, funding dates, qualifications and statuses as the English frames; names,
    business scopes (经营范围) and 国标行业 codes come from the firm's true segments through
    ``vocabulary_zh``. A firm's fixed attributes (name, scope, founding date, capital) are the
    same in both years.
    """
    records = enterprises.to_dict("records")
    label_records = labels.to_dict("records")
    firms = {
        row["uscc"]: _firm_zh(rng, row, label, distractor, vocabulary_zh)
        for row, label, distractor in zip(records, label_records, distractor_of)
    }
    columns = list(CN_REGISTRY_COLUMNS)
    current = pd.DataFrame([_export_row_zh(r, firms[r["uscc"]], vocabulary_zh) for r in records], columns=columns)
    earlier = pd.DataFrame(
        [_export_row_zh(r, firms[r["uscc"]], vocabulary_zh) for r in previous.to_dict("records")], columns=columns
    )
    return current.astype(object), earlier.astype(object)


def _break_some_rows_zh(rng: np.random.Generator, export: pd.DataFrame) -> None:
    """The Chinese export's bad rows (about 0.2 %): a negative headcount, an empty name, an
    unreadable funding date, an impossible founding date, capital in a currency without a
    conversion rate, and a status word no status table knows."""
    n = len(export)
    picks = rng.choice(n, size=min(n, max(6, n // 500)), replace=False)
    problems = (
        ("参保人数", "-5"),
        ("企业名称", ""),
        ("最近融资时间", "去年春天"),
        ("成立日期", "2015年13月32日"),
        ("注册资本", "500万卢布"),
        ("登记状态", "正常经营中"),
    )
    for j, i in enumerate(picks):
        column, value = problems[j % len(problems)]
        export.at[i, column] = value
