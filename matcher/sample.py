"""Deterministic synthetic enterprise universe for the sample region (Yangpu District, Shanghai).

``generate_sample(chain_map, vocabulary, n, seed)`` returns four frames:

- ``enterprises``: a registry-style export (its own column names, mapped by
  ``data/mappings/sample.yaml``) of local firms (Yangpu), the rest of Shanghai, the Yangtze River
  Delta, other Chinese cities and abroad. Descriptions mix several sentence patterns, synonyms,
  firms spanning 2-3 segments, generic boilerplate, generic firms and distractors that share a
  segment's keywords but do something else. A few rows are deliberately broken, as real exports
  are, so the quarantine path is always exercised. ``previous`` is the same export a year earlier.
- ``outcomes``: past outreach (a prospect contacted for a gap -> landed or declined), drawn from a
  hidden process of fit, growth and regional links (:mod:`matcher.sample_outcomes`); the pipeline
  learns from the outcomes, never from the process.
- ``labels``: each firm's true segments and kind, for calibration benchmarks and tests only.

Local firms leave some segments empty and others thin on purpose, so the chain map has real gaps.

``lang="zh"`` swaps only the language layer (:mod:`matcher.sample_zh`): the same firms, places, sizes, growth, labels and
outcomes, written as a Chinese enterprise-data export (headers of ``data/mappings/cn-registry.yaml``:
企业名称 such as 上海恒锐机器人有限公司, 经营范围 in the registry's wording with its 一般项目/许可项目
clauses, 注册资本 such as 500万元人民币, 国标行业 codes drawn from the firm's true segment with some
noise, Chinese statuses and places, qualification flags), from ``data/generator/vocabulary_zh.yaml``.
"""


from __future__ import annotations

import math
import string

import numpy as np
import pandas as pd

from matcher.chain_map import ChainMap
from matcher.sample_outcomes import draw_outcomes, segment_gap_plan
from matcher.sample_world import PLACE_SHARES, PLACES, QUALIFICATIONS, RISK_FLAGS, STATUS, SUFFIXES_BY_COUNTRY, Place, pick
from matcher.sample_zh import break_some_rows_zh, check_vocabulary_zh, chinese_export

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


def _describe(rng, name: str, year: int, voc: dict, extra_segments: list[dict], boilerplate: list[str]) -> str:
    products = pick(rng, voc["products"], 3)
    customers = pick(rng, voc["customers"], 2)
    pattern = PATTERNS[rng.integers(len(PATTERNS))]
    sentences = [
        pattern.format(
            name=name, verb=pick(rng, voc["verbs"])[0], year=year,
            p0=products[0], p1=products[1 % len(products)], p2=products[2 % len(products)],
            c0=customers[0], c1=customers[1 % len(customers)],
        )
    ]
    for other in extra_segments:
        p = pick(rng, other["products"], 2)
        c = pick(rng, other["customers"], 1)
        sentences.append(SECOND_SEGMENT[rng.integers(len(SECOND_SEGMENT))].format(p0=p[0], p1=p[1 % len(p)], c0=c[0]))
    for line in pick(rng, boilerplate, int(rng.integers(0, 3))):
        sentences.insert(int(rng.integers(0, len(sentences) + 1)), line)
    return " ".join(sentences)


def generate_sample(
    chain_map: ChainMap,
    vocabulary: dict,
    n: int,
    seed: int,
    lang: str = "en",
    vocabulary_zh: dict | None = None,
    landing_logits: list[float] | None = None,
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
    landing_logits : list, optional
        Receives the hidden landing logit of each outreach (see
        :func:`matcher.sample_outcomes.draw_outcomes`); for benchmarks only.
    """
    if lang not in ("en", "zh"):
        raise ValueError(f"unknown sample language '{lang}'; use en or zh")
    if lang == "zh":
        if vocabulary_zh is None:
            raise ValueError("a Chinese sample needs the Chinese vocabulary (data/generator/vocabulary_zh.yaml)")
        check_vocabulary_zh(chain_map, vocabulary_zh)
    rng = np.random.default_rng(seed)
    segments = [s for _, s in chain_map.segments()]
    chain_of = {s.id: c.id for c, s in chain_map.segments()}
    segment_ids = [s.id for s in segments]
    by_chain = {c.id: [s.id for s in c.segments] for c in chain_map.chains}
    voc = vocabulary["segments"]
    missing_voc = sorted(set(segment_ids) - set(voc))
    if missing_voc:
        raise ValueError(f"vocabulary has no entry for segments {missing_voc}")
    local_plan = segment_gap_plan(chain_map, rng)
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
                own += pick(rng, siblings, int(rng.integers(1, 3)))
            v = voc[primary]
            name_word = pick(rng, v["name_words"])[0]
            description_voc, extra = v, [voc[s] for s in own[1:]]
        elif kind == "distractor":
            d = distractors[rng.integers(len(distractors))]
            own, name_word = [], pick(rng, d.get("name_words") or ["Trading"])[0]
        else:
            own, name_word = [], pick(rng, ["Trading", "Services", "Holdings", "Management", "Industrial"])[0]
        prefix = pick(rng, prefixes)[0]
        if place.country == "CN":
            name = f"{place.city} {prefix} {name_word} {pick(rng, suffixes['cn'])[0]}"
        else:
            name = f"{prefix} {name_word} {pick(rng, SUFFIXES_BY_COUNTRY[place.country])[0]}"
        if kind in ("normal", "multi"):
            description = _describe(rng, f"{prefix} {name_word}", year, description_voc, extra, boilerplate)
            tags = pick(rng, description_voc["products"], int(rng.integers(0, 3)))
        elif kind == "distractor":
            lines = [d["text"]] + pick(rng, boilerplate, int(rng.integers(0, 2)))
            description = " ".join(lines)
            tags = []
        else:
            description = f"Main business: {'; '.join(pick(rng, GENERIC_PRODUCTS, 3))}. " + " ".join(pick(rng, boilerplate, 2))
            tags = []

        employees = int(max(1, round(math.exp(rng.normal(2.3 + 0.12 * min(age, 15), 1.1)))))
        rd_intensity = float(np.clip(rng.gamma(2.0, 0.035), 0, 0.9)) if kind in ("normal", "multi") else float(np.clip(rng.gamma(1.0, 0.01), 0, 0.2))
        growth = rng.normal(0.08 + 0.25 * rd_intensity + (0.15 if age < 6 else 0.0), 0.25)
        quals = [q for q, share in QUALIFICATIONS if rng.random() < share * (1.6 if rd_intensity > 0.08 else 0.6)]
        risk = pick(rng, RISK_FLAGS, 1) if rng.random() < 0.06 else []
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
    outcomes = draw_outcomes(rng, enterprises, labels_frame, chain_map, local_plan, landing_logits)
    previous = _previous_snapshot(rng, enterprises)
    if lang == "zh":
        current_zh, previous_zh = chinese_export(
            enterprises, previous, labels_frame, distractor_of, vocabulary_zh, np.random.default_rng([seed, 86])
        )
        break_some_rows_zh(rng, current_zh)
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
