"""Explanations of a prospect's rank, in English and Chinese, rendered only from the feature values
that produced the score.

For the landing model the contributions are exact SHAP values in the booster's log-odds
(``base_value + sum(contributions) == model_output``); for the cold-start score they are the
weighted components (``0 + sum == the weighted score before clipping to [0, 1]``). Every reason
states the value it rests on, where the value came from (observed in the source on a date, or
derived by the engine) and its percentile among the ranked candidates.
"""

from __future__ import annotations

import math
import re
import string

import numpy as np
import pandas as pd

from matcher import schemas as S
from matcher.features import FEATURES, eligible_policy_names
from matcher.lexical import tokenize
from matcher.ranking import WEIGHTS
from matcher.retrieval import filter_mask

# Every number an explanation carries (feature values, contributions, base value, model output,
# scores, similarities, differences) is rounded to this many decimal places, and every text is
# rendered from the rounded number: what the JSON says and what the words say never disagree, and
# two paths that compute a value a rounding error apart show the same explanation (README, JSON).
DECIMALS = 6


def rounded(value: float | None) -> float | None:
    """``value`` as an explanation carries it: rounded to :data:`DECIMALS`, None when missing."""
    if value is None:
        return None
    value = float(value)
    return None if value != value else round(value, DECIMALS) + 0.0  # + 0.0: never -0.0


def _shown(value: float) -> float:
    """The number a text states: :func:`rounded`, NaN (rendered as "not reported") when missing."""
    shown = rounded(value)
    return math.nan if shown is None else shown

# feature -> (source column observed in the data, or None when the engine derives it)
OBSERVED = {
    "revenue_growth": S.REVENUE_GROWTH, "employee_growth": S.EMPLOYEE_GROWTH, "funding_age_days": S.LAST_FUNDING_DATE,
    "patents_per_100_staff": S.PATENTS, "rd_intensity": S.RD_INTENSITY, "n_qualifications": S.QUALIFICATIONS,
    "age_years": S.FOUNDED_YEAR, "log_employees": S.EMPLOYEES, "distance_km": S.LAT, "same_metro": S.CITY,
    "nearby_province": S.PROVINCE, "n_risk_flags": S.RISK_FLAGS, "abnormal_operation": S.RISK_FLAGS,
    "shrinking_headcount": S.EMPLOYEE_GROWTH, "eligible_policies": S.QUALIFICATIONS,
}
HIGHER_IS_NOTABLE = {"distance_km": False, "funding_age_days": False, "age_years": False}

LABELS = {
    "en": {
        "gap_similarity": "profile matches the gap description (similarity {v:.2f})",
        "keyword_similarity": "profile matches the segment's keywords (similarity {v:.2f})",
        "lexical_z": "shares the gap's key terms (term score {v:.1f} SD above average)",
        "chain_segments": "active in {v:.0f} segment(s) of this chain",
        "revenue_growth": "revenue grew {pct:+.0f}% last year",
        "employee_growth": "employees grew {pct:+.0f}% last year",
        "funding_age_days": "last funding round {v:.0f} days ago",
        "patents_per_100_staff": "{v:.1f} patents per 100 employees",
        "rd_intensity": "R&D spend is {pct:.0f}% of revenue",
        "n_qualifications": "holds {v:.0f} qualification(s)",
        "age_years": "founded {v:.0f} years ago",
        "log_employees": "{emp:,.0f} employees",
        "growth_score": "growth model gives {pct:.0f}% chance of strong growth",
        "local_partners": "{v:.0f} local firms upstream/downstream to link with",
        "partner_affinity": "close to its local partners' business (similarity {v:.2f})",
        "local_competitors": "{v:.0f} local firms already in this segment",
        "distance_km": "{v:,.0f} km from the district",
        "same_metro": "{yes_no} in the district's metro area",
        "nearby_province": "{yes_no} in the region or a neighbouring province",
        "eligible_policies": "eligible for {v:.0f} district polic(ies)",
        "n_risk_flags": "{v:.0f} risk flag(s) on record",
        "abnormal_operation": "{yes_no} listed for abnormal operation",
        "shrinking_headcount": "headcount {shrink}",
        "strength_before": "segment has {v:.0f} local firm(s) now",
        "strength_gain": "{joins} the segment's local strength",
        "other_gaps_filled": "would also fill {v:.0f} other open gap(s)",
        "segment_margin": "the gap's segment stands out among the segments its profile matches ({v:.1f} SD above the next)",
        "segment_margin_side": "the gap's segment is a side line for it: its profile matches another segment {neg:.1f} SD better",
        "keyword_margin": "the gap segment's keywords fit it best of all segments' ({v:.1f} SD above the next)",
        "keyword_margin_side": "another segment's keywords fit it {neg:.1f} SD better than the gap segment's",
        "industry_code_match": "industry code{firm} {code}",
        "industry_code_match_search": "industry code{firm}: its division holds {pct:.0f}% of the need's best text matches",
        "code_match": "matches this segment's industry codes", "code_division": "is in the division of this segment's industry codes",
        "code_none": "is outside this segment's industry codes",
        "fit": "gap fit score {v:.2f} (weight {w})", "growth": "growth score {v:.2f} (weight {w}, scaled by fit)",
        "regional": "regional fit score {v:.2f} (weight {w}, scaled by fit)", "risk": "risk penalty {v:.2f}",
        "missing": "{name}: not reported",
        "top": "top {p}% of candidates", "bottom": "bottom {p}% of candidates",
        "raises": "raises the score", "lowers": "lowers the score",
        "yes": "is", "no": "is not", "shrinks": "shrank", "grows": "did not shrink",
        "joins": "would add 1 to", "no_join": "would not add to",
        "observed": "observed in the source, updated {date}", "derived": "derived by Chain Matcher",
    },
    "zh": {
        "gap_similarity": "企业简介与缺口描述匹配（相似度 {v:.2f}）",
        "keyword_similarity": "企业简介与环节关键词匹配（相似度 {v:.2f}）",
        "lexical_z": "包含缺口的关键术语（词项得分高于平均 {v:.1f} 个标准差）",
        "chain_segments": "覆盖本产业链 {v:.0f} 个环节",
        "revenue_growth": "去年营收增长 {pct:+.0f}%",
        "employee_growth": "去年员工人数增长 {pct:+.0f}%",
        "funding_age_days": "最近一轮融资在 {v:.0f} 天前",
        "patents_per_100_staff": "每百名员工拥有专利 {v:.1f} 件",
        "rd_intensity": "研发投入占营收 {pct:.0f}%",
        "n_qualifications": "拥有 {v:.0f} 项资质",
        "age_years": "成立 {v:.0f} 年",
        "log_employees": "员工 {emp:,.0f} 人",
        "growth_score": "成长模型预测高速成长概率 {pct:.0f}%",
        "local_partners": "上下游有 {v:.0f} 家本地企业可对接",
        "partner_affinity": "与本地上下游伙伴业务相近（相似度 {v:.2f}）",
        "local_competitors": "本环节已有 {v:.0f} 家本地企业",
        "distance_km": "距本区 {v:,.0f} 公里",
        "same_metro": "{yes_no}位于本区所在都市圈",
        "nearby_province": "{yes_no}位于本地或邻近省份",
        "eligible_policies": "符合 {v:.0f} 项区级政策条件",
        "n_risk_flags": "有 {v:.0f} 条风险记录",
        "abnormal_operation": "{yes_no}被列入经营异常名录",
        "shrinking_headcount": "员工人数{shrink}",
        "strength_before": "该环节目前有 {v:.0f} 家本地企业",
        "strength_gain": "{joins}该环节的本地实力",
        "other_gaps_filled": "还可填补另外 {v:.0f} 个开放缺口",
        "segment_margin": "缺口所在环节在其简介匹配的各环节中最突出（高出次匹配环节 {v:.1f} 个标准差）",
        "segment_margin_side": "缺口所在环节只是其副业：其简介与另一环节的匹配高出 {neg:.1f} 个标准差",
        "keyword_margin": "缺口环节的关键词在所有环节中与其最匹配（高出次匹配环节 {v:.1f} 个标准差）",
        "keyword_margin_side": "另一环节的关键词与其匹配度比缺口环节高 {neg:.1f} 个标准差",
        "industry_code_match": "国标行业代码{firm}{code}",
        "industry_code_match_search": "国标行业代码{firm}所属大类占该需求最佳文本匹配的 {pct:.0f}%",
        "code_match": "与该环节的行业代码相符", "code_division": "与该环节的行业代码同属一个大类",
        "code_none": "不在该环节的行业代码范围内",
        "fit": "缺口匹配得分 {v:.2f}（权重 {w}）", "growth": "成长得分 {v:.2f}（权重 {w}，按匹配度折算）",
        "regional": "区域适配得分 {v:.2f}（权重 {w}，按匹配度折算）", "risk": "风险扣分 {v:.2f}",
        "missing": "{name}：未披露",
        "top": "位居候选企业前 {p}%", "bottom": "位居候选企业后 {p}%",
        "raises": "提升得分", "lowers": "降低得分",
        "yes": "", "no": "不", "shrinks": "减少", "grows": "未减少",
        "joins": "将使", "no_join": "不会提升",
        "observed": "来源数据，更新于 {date}", "derived": "由 Chain Matcher 计算",
    },
}
FEATURE_NAMES_EN = {
    "funding_age_days": "last funding date", "patents_per_100_staff": "patents", "rd_intensity": "R&D spend",
    "age_years": "founding year", "log_employees": "headcount", "growth_score": "growth model score",
    "distance_km": "location", "partner_affinity": "similarity to local partners", "keyword_similarity": "keyword match",
    "revenue_growth": "revenue growth", "employee_growth": "employee growth", "shrinking_headcount": "headcount trend",
    "segment_margin": "main-business margin", "keyword_margin": "main-business keyword margin",
    "industry_code_match": "industry code",
}
FEATURE_NAMES_ZH = {
    "revenue_growth": "营收增长", "employee_growth": "员工增长", "funding_age_days": "融资", "patents_per_100_staff": "专利",
    "rd_intensity": "研发投入", "age_years": "成立年份", "log_employees": "员工人数", "growth_score": "成长模型",
    "distance_km": "位置", "partner_affinity": "上下游相似度", "keyword_similarity": "关键词匹配",
    "shrinking_headcount": "员工人数变化",
    "segment_margin": "主营环节差距", "keyword_margin": "主营关键词差距",
    "industry_code_match": "国标行业代码",
}
# Features worded by sign: a negative value reads from LABELS[lang][feature + "_side"] ({neg}: -value).
SIGNED = {"segment_margin", "keyword_margin"}


def model_features(ranker) -> list[str]:
    """The feature names ``ranker``'s contributions are in, in order: those its landing model was
    fitted on (an older model reads fewer than FEATURES); FEATURES without a ranker."""
    if ranker is not None and hasattr(ranker, "feature_names"):
        return ranker.feature_names()
    return list(FEATURES)


def sorted_population(pool: pd.DataFrame, names=FEATURES) -> dict[str, np.ndarray]:
    """Each feature's known values among the candidates, sorted (for percentile phrases)."""
    out = {}
    for name in names:
        values = pool[name].to_numpy(dtype=float)
        out[name] = np.sort(values[~np.isnan(values)])
    return out


def percentile_phrase(value: float, population: np.ndarray, feature: str, lang: str, presorted: bool = False) -> str:
    """'top 8% of candidates' (or bottom) for where ``value`` stands among ``population``."""
    known = population if presorted else np.sort(population[~np.isnan(population)])
    if np.isnan(value) or len(known) < 2:
        return ""
    n = len(known)
    lo, hi = np.searchsorted(known, value, "left"), np.searchsorted(known, value, "right")
    below, equal, above = lo / n, (hi - lo) / n, (n - hi) / n
    if not HIGHER_IS_NOTABLE.get(feature, True):
        above, below = below, above
    if equal > 0.999:
        return ""  # every candidate has this value: a percentile says nothing
    # Ties count on both sides: a value most candidates share is "bottom 61%", not "top 39%".
    if above + equal / 2 < 0.5:
        return LABELS[lang]["top"].format(p=max(1, math.ceil(round((above + equal) * 100, 6))))
    return LABELS[lang]["bottom"].format(p=max(1, math.ceil(round((below + equal) * 100, 6))))


_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {}


def _fields(lang: str, feature: str) -> tuple[str, ...]:
    key = (lang, feature)
    if key not in _FIELDS:
        _FIELDS[key] = tuple(f for _, f, _, _ in string.Formatter().parse(LABELS[lang][feature]) if f)
    return _FIELDS[key]


def industry_label(code, name) -> str | None:
    """A firm's industry as its explanation quotes it: ``I6513 应用软件开发`` (the code, then the
    source's name for it without a repeated code), the code alone, or None when it has no code."""
    if code is None or code != code or not str(code).strip():
        return None
    code = str(code).strip()
    if name is None or name != name:
        return code
    name = str(name).strip()
    if name.upper().startswith(code.upper()):
        name = name[len(code):].strip()
    return f"{code} {name}" if name else code


def industry_text(value: float, lang: str, industry: str | None, search: bool) -> str:
    """``industry_code_match``'s reason, quoting the firm's own code and name. For a gap the value
    is 1 / 0.5 / 0 (within / same division as / outside the segment's codes); for a free-text need
    it is the share of the need's best text matches in the firm's division."""
    L = LABELS[lang]
    firm = "" if not industry else f" {industry}" if lang == "en" else f" {industry} "
    if search:
        return L["industry_code_match_search"].format(firm=firm, pct=value * 100)
    code = L["code_match"] if value >= 0.75 else L["code_division"] if value > 0 else L["code_none"]
    return L["industry_code_match"].format(firm=firm, code=code)


def reason_text(feature: str, value: float, lang: str, industry: str | None = None, search: bool = False) -> str:
    """Plain-language statement of one feature value (never more than the value shows).

    ``industry`` (the firm's :func:`industry_label`) and ``search`` (a free-text need rather than
    a chain gap) only word ``industry_code_match``."""
    L = LABELS[lang]
    if value is None or value != value:  # missing (NaN)
        names = FEATURE_NAMES_ZH if lang == "zh" else FEATURE_NAMES_EN
        return L["missing"].format(name=names.get(feature, feature.replace("_", " ")))
    if feature == "industry_code_match":
        return industry_text(value, lang, industry, search)
    if feature in SIGNED and value < 0:
        return L[feature + "_side"].format(neg=-value)
    fields = _fields(lang, feature)
    if fields == ("v",):
        return L[feature].format(v=value)
    values = {}
    for name in fields:
        if name == "v":
            values[name] = value
        elif name == "pct":
            values[name] = value * 100
        elif name == "emp":
            values[name] = math.expm1(value) if feature == "log_employees" else value
        elif name == "yes_no":
            values[name] = L["yes"] if value >= 0.5 else L["no"]
        elif name == "shrink":
            values[name] = L["shrinks"] if value >= 0.5 else L["grows"]
        elif name == "joins":
            values[name] = L["joins"] if value >= 0.5 else L["no_join"]
        else:
            values[name] = ""
    return L[feature].format(**values)


def evidence_sentences(description: str, gap_text: str, n: int = 2) -> list[str]:
    """The description's sentences that share the most (stemmed) terms with the gap text."""
    return evidence_for([description], gap_text, n)[0]


# A sentence ends after . ! ? followed by white space, or after a Chinese full stop, semicolon or
# exclamation / question mark (Chinese runs on without spaces): evidence then quotes one clause of
# a 经营范围, not the whole scope.
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|(?<=[。；！？])\s*")
_CJK_TEXT = re.compile("[\u3400-\u9fff]")


def split_sentences(description: str) -> list[str]:
    """The sentences / clauses of a description worth quoting, each a substring of it: longer
    than 15 characters, or 6 when it contains Chinese (denser per character)."""
    out = []
    for part in _SENTENCE_END.split(description):
        part = part.strip()
        if len(part) > 15 or (len(part) >= 6 and _CJK_TEXT.search(part)):
            out.append(part)
    return out


def evidence_for(descriptions: list[str], gap_text: str, n: int = 2) -> list[list[str]]:
    """:func:`evidence_sentences` for many descriptions, tokenised in one pass."""
    split = [split_sentences(d) for d in descriptions]
    flat = [s for sentences in split for s in sentences]
    gap_terms = set(tokenize([gap_text])[0])
    tokens = iter(tokenize(flat) if flat else [])
    out = []
    for sentences in split:
        scores = [len(gap_terms & set(t)) / math.sqrt(len(set(t)) + 1) for t in (next(tokens) for _ in sentences)]
        order = sorted(range(len(sentences)), key=lambda i: (-scores[i], i))
        out.append([sentences[i] for i in order[:n] if scores[i] > 0])
    return out


_PERCENT_TEXTS: dict[str, tuple[list[str], list[str]]] = {}


def _percent_texts(lang: str) -> tuple[list[str], list[str]]:
    """'top p%' and 'bottom p%' for p in 0..100, rendered once per language."""
    if lang not in _PERCENT_TEXTS:
        L = LABELS[lang]
        _PERCENT_TEXTS[lang] = ([L["top"].format(p=p) for p in range(101)], [L["bottom"].format(p=p) for p in range(101)])
    return _PERCENT_TEXTS[lang]


def percentile_phrases(matrix: np.ndarray, population: dict[str, np.ndarray], lang: str, names=FEATURES) -> list[list[str]]:
    """:func:`percentile_phrase` of every cell of ``matrix`` (rows x ``names``), column by column."""
    out = [[""] * len(names) for _ in range(len(matrix))]
    tops, bottoms = _percent_texts(lang)
    for j, name in enumerate(names):
        known = population[name]
        n = len(known)
        if n < 2:
            continue
        column = matrix[:, j]
        lo = np.searchsorted(known, column, "left") / n
        hi = np.searchsorted(known, column, "right") / n
        below, equal, above = lo, hi - lo, 1.0 - hi
        if not HIGHER_IS_NOTABLE.get(name, True):
            above, below = below, above
        top = above + equal / 2 < 0.5
        # Python floats from here: per-cell numpy scalar arithmetic costs ~10x more.
        share = np.where(top, above + equal, below + equal).tolist()
        top = top.tolist()
        for i in np.flatnonzero(~(np.isnan(column) | (equal > 0.999))).tolist():
            p = max(1, math.ceil(round(share[i] * 100, 6)))
            out[i][j] = tops[p] if top[i] else bottoms[p]
    return out


def contribution_text(name: str, value: float, contribution: float, where: str, lang: str,
                      industry: str | None = None, search: bool = False) -> str:
    """A feature's reason as :func:`contribution_rows` words it: value, percentile phrase, and
    whether it raises or lowers the score."""
    text = reason_text(name, value, lang, industry, search)
    if where:
        text += (" — " if lang == "en" else "，") + where
    if contribution:  # rounded (see rounded()): what the JSON shows as 0.0 neither raises nor lowers
        L = LABELS[lang]
        if lang == "en":
            text += f" ({L['raises']})" if contribution > 0 else f" ({L['lowers']})"
        else:
            text += f"（{L['raises']}）" if contribution > 0 else f"（{L['lowers']}）"
    return text


def contribution_rows(
    features: np.ndarray, contributions: np.ndarray, phrases: list[str], updated_at: str, lang: str, names=FEATURES,
    industry: str | None = None, search: bool = False,
) -> list[dict]:
    """One entry per feature (``features`` in ``names`` order, the model's features): value,
    contribution, text (with its percentile phrase from :func:`percentile_phrases`) and where it
    came from."""
    rows = []
    # Python floats: per-cell numpy scalar arithmetic costs ~10x more (1,300 cells for a top 50).
    for name, value, contribution, where in zip(names, np.asarray(features, float).tolist(),
                                                np.asarray(contributions, float).tolist(), phrases):
        value, contribution = rounded(value), rounded(contribution)
        text = contribution_text(name, _shown(value), contribution, where, lang, industry, search)
        source = OBSERVED.get(name)
        rows.append({
            "feature": name,
            "value": value,
            "contribution": contribution,
            "text": text,
            "source": {"kind": "observed", "column": source, "updated_at": updated_at} if source else {"kind": "derived"},
        })
    return rows


def cold_start_contributions(components: pd.Series, weights: dict[str, float] = WEIGHTS) -> tuple[float, dict[str, float]]:
    """Additive parts of the cold-start score (base 0): see :func:`matcher.ranking.cold_start_parts`."""
    from matcher.ranking import cold_start_parts

    parts = cold_start_parts(components.to_frame().T.astype(float), weights).iloc[0]
    return 0.0, {k: float(v) for k, v in parts.items()}


def top_positions(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest scores, best first, ties by position: exactly
    ``np.argsort(-scores, kind="stable")[:k]`` without sorting all of them."""
    if len(scores) <= k:
        return np.argsort(-scores, kind="stable")
    threshold = np.partition(scores, len(scores) - k)[len(scores) - k]
    candidates = np.flatnonzero(scores >= threshold)
    return candidates[np.argsort(-scores[candidates], kind="stable")][:k]


def industry_labels(enterprises: pd.DataFrame, rows) -> list[str | None]:
    """:func:`industry_label` of some rows: the code, and the name the source gave it (``industry``
    from a registry export, ``industry_name`` from the listed-company export) when there is one."""
    rows = np.asarray(rows, dtype=int)
    if S.INDUSTRY_CODE not in enterprises.columns:
        return [None] * len(rows)
    codes = enterprises[S.INDUSTRY_CODE].array.take(rows)
    name_column = next((c for c in ("industry", "industry_name") if c in enterprises.columns), None)
    names = enterprises[name_column].array.take(rows) if name_column else [None] * len(rows)
    return [industry_label(c, n) for c, n in zip(codes, names)]


def _status(strength: float, weak_below: float) -> str:
    return "missing" if strength <= 0 else "weak" if strength < weak_below else "strong"


def explain_ranked(catalog, gap: dict, ranked: pd.DataFrame, features: pd.DataFrame, pool: pd.DataFrame, lang: str = "en") -> list[dict]:
    """Explanations of ranked prospects (rows of ``ranked`` / ``features``), percentiles among ``pool``.

    ``catalog`` is a :class:`matcher.catalog.Catalog`, read for its tables and models (it never
    ranks here: ``ranked`` and ``pool`` are its ranking); deterministic: the same inputs give the
    same explanation.
    """
    from matcher.ranking import SEARCH_WEIGHTS, cold_start_weights, component_scores

    L = LABELS[lang]
    weights = cold_start_weights(gap)
    ctx = catalog.context
    rows = ranked["_row"].to_numpy()
    feature_names = model_features(catalog.ranker)
    matrix = features[feature_names].to_numpy(dtype=float)
    phrases = percentile_phrases(matrix, sorted_population(pool, feature_names), lang, feature_names)
    if catalog.ranker is not None:
        base, values, margins = catalog.ranker.explain(features)
        space = "log-odds of the landing model's gradient-boosted trees (score = calibrated probability, a monotone function of it)"
    else:
        components = component_scores(pool)  # growth percentiles need the whole pool
        index = pool.index.get_indexer(features.index)
        base, values, margins = 0.0, None, None
        space = ("cold-start score of a search before clipping to [0, 1]: fit - risk penalty" if weights is SEARCH_WEIGHTS
                 else "cold-start score before clipping to [0, 1]: fit * (0.6 + 0.25 growth + 0.15 regional) - risk penalty")
    segment_id = gap.get("segment_id")
    weak_below = float(catalog.segments.set_index("segment_id").loc[segment_id, "weak_below"]) if segment_id else None
    landed_rows, landed_gap = catalog.landed()
    partner_rows = ctx.partner_rows.get(segment_id, np.zeros(0, int)) if segment_id else np.zeros(0, int)
    partner_rows = partner_rows[partner_rows >= 0]
    neighbours = set(ctx.neighbours.get(segment_id, [])) if segment_id else set()
    vectors = ctx.vectors
    columns = [S.ENTERPRISE_ID, S.NAME, S.DESCRIPTION, S.UPDATED_AT, S.RISK_FLAGS, S.QUALIFICATIONS]
    # Column by column: taking 50 rows of the whole frame copies every column of each.
    taken = [catalog.enterprises[c].iloc[rows].tolist() for c in columns]
    ents = [dict(zip(columns, values)) for values in zip(*taken)]
    industries = industry_labels(catalog.enterprises, rows)
    search = not segment_id
    ranks, scores = ranked["rank"].to_numpy().tolist(), ranked["score"].to_numpy(dtype=float).tolist()
    evidence = evidence_for([e[S.DESCRIPTION] for e in ents], catalog.match_text(gap))
    # Only the partner and landed rows are named: converting whole columns is O(universe).
    needed = np.union1d(partner_rows, landed_rows[landed_rows >= 0]).astype(int)
    names = dict(zip(needed.tolist(), catalog.enterprises[S.NAME].array.take(needed).to_numpy()))
    ids = dict(zip(needed.tolist(), catalog.enterprises[S.ENTERPRISE_ID].array.take(needed).to_numpy()))
    prospect_vectors = np.ascontiguousarray(vectors[rows])
    partner_sims = prospect_vectors @ vectors[partner_rows].T if len(partner_rows) else None
    others_all = landed_rows[landed_rows >= 0]
    landed_sims = prospect_vectors @ catalog.landed_vectors().T if len(others_all) else None
    snapshot = catalog.manifest["snapshot"]["snapshot_id"]

    out = []
    for i, row in enumerate(rows):
        ent = ents[i]
        updated = str(pd.Timestamp(ent[S.UPDATED_AT]).date()) if pd.notna(ent[S.UPDATED_AT]) else "unknown"
        if values is not None:
            contributions = contribution_rows(matrix[i], values[i], phrases[i], updated, lang, feature_names,
                                              industries[i], search)
            model_output = float(margins[i])
            facts = []
        else:
            comp = components.iloc[index[i]]
            _, parts = cold_start_contributions(comp, weights)
            contributions = []
            for g, c in parts.items():
                v = rounded(comp["risk_penalty"] if g == "risk" else comp[f"{g}_score"])
                contributions.append({"feature": g, "value": v, "contribution": rounded(c),
                                      "text": L[g].format(v=v, w=weights.get(g, "")), "source": {"kind": "derived"}})
            model_output = float(sum(parts.values()))
            facts = [c["text"] for c in contribution_rows(matrix[i], np.zeros(len(feature_names)), phrases[i], updated, lang,
                                                          feature_names, industries[i], search)]
        ordered = sorted(contributions, key=lambda c: (-abs(c["contribution"]), c["feature"]))
        closure = None
        if segment_id:
            before = matrix[i, feature_names.index("strength_before")]
            gain = matrix[i, feature_names.index("strength_gain")]
            gain = 0.0 if np.isnan(gain) else gain
            closure = {"segment_id": segment_id, "strength_before": int(before), "strength_after": int(before + gain),
                       "status_before": _status(before, weak_below), "status_after": _status(before + gain, weak_below)}
        partners = []
        if partner_sims is not None:
            for j in top_positions(partner_sims[i], 5):
                pid = ids[int(partner_rows[j])]
                segs = [s for s in ctx.partner_segments.get(pid, []) if s in neighbours]
                partners.append({"enterprise_id": pid, "name": names[int(partner_rows[j])], "segment_id": segs[0] if segs else None,
                                 "similarity": rounded(partner_sims[i, j])})
        similar = []
        if landed_sims is not None:
            sims = np.where(others_all == row, -np.inf, landed_sims[i])
            for j in top_positions(sims, 3):
                if np.isfinite(sims[j]):
                    eid = ids[int(others_all[j])]
                    similar.append({"enterprise_id": eid, "name": names[int(others_all[j])], "landed_for": landed_gap.get(eid),
                                    "similarity": rounded(sims[j])})
        out.append({
            "enterprise_id": ent[S.ENTERPRISE_ID], "name": ent[S.NAME], "gap_id": gap.get("gap_id"),
            "rank": int(ranks[i]), "score": rounded(scores[i]), "ranker": catalog.ranker_name,
            "lang": lang, "output_space": space, "base_value": rounded(base), "model_output": rounded(model_output),
            "contributions": ordered,
            "reasons": {
                "positive": [c["text"] for c in ordered if c["contribution"] > 0][:3],
                "negative": [c["text"] for c in ordered if c["contribution"] < 0][:3],
            },
            "facts": facts,
            "gap_closure": closure,
            "evidence": evidence[i],
            "local_partners": partners,
            "similar_landed": similar,
            "risk_flags": list(ent[S.RISK_FLAGS]),
            "eligible_policies": eligible_policy_names(ctx, list(ent[S.QUALIFICATIONS]), gap["chain_id"]),
            "freshness": {"source_updated_at": updated, "snapshot_id": snapshot, "version": catalog.version},
        })
    return out


def explain_reasons(catalog, gap: dict, ranked: pd.DataFrame, features: pd.DataFrame, pool: pd.DataFrame, lang: str = "en") -> list[dict]:
    """Only the short reasons of :func:`explain_ranked` (``{"positive": [...], "negative": [...]}``
    per row, the same texts), without evidence, partners, look-alikes or policies: what a page of
    ranked prospects shows. The full explanation is :func:`explain_ranked`."""
    from matcher.ranking import cold_start_weights, component_scores

    L = LABELS[lang]
    weights = cold_start_weights(gap)
    if catalog.ranker is not None:
        names = model_features(catalog.ranker)
        matrix = features[names].to_numpy(dtype=float)
        phrases = percentile_phrases(matrix, sorted_population(pool, names), lang, names)
        _, values, _ = catalog.ranker.explain(features, margins=False)
        industries = (industry_labels(catalog.enterprises, ranked["_row"].to_numpy()) if "industry_code_match" in names
                      else [None] * len(features))  # a model fitted before the feature never words it
        search = not gap.get("segment_id")
        rows = []
        for i in range(len(features)):
            contributions = [rounded(c) for c in np.asarray(values[i], float).tolist()]
            # Only the features a reason can show: the 3 largest each way (ties by name, as explain_ranked).
            order = sorted(range(len(names)), key=lambda j: (-abs(contributions[j]), names[j]))
            shown = ([j for j in order if contributions[j] > 0][:3] + [j for j in order if contributions[j] < 0][:3])
            rows.append([{"feature": names[j], "contribution": contributions[j],
                          "text": contribution_text(names[j], _shown(matrix[i, j]), contributions[j], phrases[i][j], lang,
                                                    industries[i], search)}
                         for j in shown])
    else:
        components = component_scores(pool)
        index = pool.index.get_indexer(features.index)
        rows = []
        for i in range(len(features)):
            comp = components.iloc[index[i]]
            _, parts = cold_start_contributions(comp, weights)
            rows.append([{"feature": g, "contribution": rounded(c),
                          "text": L[g].format(v=rounded(comp["risk_penalty"] if g == "risk" else comp[f"{g}_score"]),
                                              w=weights.get(g, ""))} for g, c in parts.items()])
    out = []
    for contributions in rows:
        ordered = sorted(contributions, key=lambda c: (-abs(c["contribution"]), c["feature"]))
        out.append({"positive": [c["text"] for c in ordered if c["contribution"] > 0][:3],
                    "negative": [c["text"] for c in ordered if c["contribution"] < 0][:3]})
    return out


def factor_scores(ranker, pool: pd.DataFrame, rows_features: pd.DataFrame, pool_positions: list[int | None] | None = None) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Per-factor contributions of some rows, in the ranker's own additive space (``ranker``: the
    catalog's landing model, None for cold start).

    ``pool_positions[i]`` is row i's position in ``pool`` when it is one of the ranked
    candidates: its cold-start components are then exactly those of the list.

    Returns (contributions (n, n_factors), factor names, scores in [0, 1]).
    """
    from matcher.ranking import cold_start_score, component_scores

    if ranker is not None:
        _, values, _ = ranker.explain(rows_features)
        return values, model_features(ranker), ranker.predict_proba(rows_features)[:, 1]
    pool_components = component_scores(pool)
    rows = []
    for i in range(len(rows_features)):
        at = None if pool_positions is None else pool_positions[i]
        if at is not None:
            rows.append(pool_components.iloc[at])
        else:  # not in the list: place it among the candidates
            both = pd.concat([pool, rows_features.iloc[[i]]], ignore_index=True)
            rows.append(component_scores(both).iloc[-1])
    comp = pd.DataFrame(rows).reset_index(drop=True)
    parts = [cold_start_contributions(comp.iloc[i])[1] for i in range(len(comp))]
    names = list(parts[0])
    return np.array([[p[n] for n in names] for p in parts]), names, cold_start_score(comp)


def compare_factors(names: list[str], a: np.ndarray, b: np.ndarray, fa: pd.Series | None, fb: pd.Series | None, lang: str,
                    industries: tuple[str | None, str | None] = (None, None), search: bool = False) -> list[dict]:
    """Factor-by-factor difference A - B, largest in A's favour first (``industries``: A's and B's
    :func:`industry_label`)."""
    out = []
    for j, name in enumerate(names):
        entry = {"factor": name, "a_contribution": rounded(a[j]), "b_contribution": rounded(b[j]), "difference": rounded(a[j] - b[j])}
        if fa is not None and name in fa.index:
            # Equal values can still contribute differently (tree interactions); such a factor
            # is not a reason, and is flagged so it is not presented as one.
            entry["same_value"] = bool(np.isclose(fa[name], fb[name], equal_nan=True))
            entry["a_value"], entry["b_value"] = rounded(fa[name]), rounded(fb[name])
            entry["a_text"] = reason_text(name, _shown(fa[name]), lang, industries[0], search)
            entry["b_text"] = reason_text(name, _shown(fb[name]), lang, industries[1], search)
        out.append(entry)
    return sorted(out, key=lambda e: (-e["difference"], e["factor"]))


def _positions(ranked: pd.DataFrame, rows: np.ndarray) -> list[int | None]:
    where = {int(r): i for i, r in enumerate(ranked["_row"].to_numpy())}
    return [where.get(int(r)) for r in rows]


def _factors(ranker, ranked: pd.DataFrame, pool: pd.DataFrame, rows: np.ndarray, features: pd.DataFrame,
             industries: list[str | None], search: bool, lang: str) -> tuple[np.ndarray, list[dict]]:
    """Scores of two rows and :func:`compare_factors` of the first against the second."""
    values, names, scores = factor_scores(ranker, pool, features, _positions(ranked, rows))
    shown = ranker is not None  # cold-start factors are components, not feature values
    factors = compare_factors(names, values[0], values[1], features.iloc[0] if shown else None,
                              features.iloc[1] if shown else None, lang, tuple(industries), search)
    return scores, factors


def compare_report(gap: dict, a_id: str, b_id: str, ranked: pd.DataFrame, pool: pd.DataFrame, rows: np.ndarray,
                   features: pd.DataFrame, industries: list[str | None], ranker, ranker_name: str,
                   lang: str = "en") -> dict:
    """Why A ranks above (or below) B for a gap, factor by factor, from a ranking already made.

    ``ranked`` / ``pool``: the gap's ranked candidates and their features
    (:meth:`matcher.catalog.Catalog.rank_pool`); ``rows``, ``features``, ``industries``: A's and
    B's enterprise rows, features and :func:`industry_label`; ``ranker``: the landing model, None
    for cold start.
    """
    scores, factors = _factors(ranker, ranked, pool, rows, features, industries, not gap.get("segment_id"), lang)
    ranks = dict(zip(ranked["enterprise_id"], ranked["rank"]))
    return {
        "gap_id": gap["gap_id"], "ranker": ranker_name,
        "a": {"enterprise_id": a_id, "score": rounded(scores[0]), "rank": ranks.get(a_id)},
        "b": {"enterprise_id": b_id, "score": rounded(scores[1]), "rank": ranks.get(b_id)},
        "higher": a_id if scores[0] >= scores[1] else b_id,
        "factors": factors,
    }


def why_not_report(gap: dict, enterprise: pd.DataFrame, similarity: float, shortlist: int, filters,
                   ranked: pd.DataFrame, pool: pd.DataFrame, rows: np.ndarray, features: pd.DataFrame | None,
                   industries: list[str | None], ranker, ranker_name: str, lang: str = "en") -> dict:
    """Where an enterprise stands for a gap and what keeps it below the last shortlisted prospect,
    from a ranking already made.

    ``enterprise``: its row of the enterprise table (a one-row frame); ``similarity``: its
    embedding similarity to the gap; ``ranked`` / ``pool``: the gap's ranked candidates under
    ``filters`` and their features. ``rows``, ``features``, ``industries``: the enterprise's and
    the last shortlisted prospect's (``ranked`` row ``shortlist``) table rows, features and
    :func:`industry_label`; ``features`` is None when fewer than ``shortlist`` were ranked.
    """
    enterprise_id = enterprise[S.ENTERPRISE_ID].iloc[0]
    excluded = []
    if not filter_mask(enterprise, filters)[0]:
        if bool(enterprise[S.IS_LOCAL].iloc[0]) and not filters.include_local:
            excluded.append("local enterprise (prospect lists are of outside enterprises unless --include-local)")
        if enterprise[S.STATUS_CLASS].iloc[0] in S.NOT_PROSPECTS and not filters.include_closed:
            excluded.append(f"status '{enterprise[S.STATUS].iloc[0]}' (closed enterprises are excluded)")
        if not excluded:
            excluded.append("does not pass the filters given")
    in_pool = ranked.index[ranked["enterprise_id"] == enterprise_id]
    report = {
        "gap_id": gap["gap_id"], "enterprise_id": enterprise_id, "name": enterprise[S.NAME].iloc[0], "ranker": ranker_name,
        "shortlist_size": shortlist, "similarity": rounded(similarity), "excluded_by": excluded,
        "retrieved": bool(len(in_pool)), "rank": int(ranked.loc[in_pool[0], "rank"]) if len(in_pool) else None,
        "candidates_ranked": len(ranked),
    }
    if not len(in_pool):
        last_sim = float(ranked["similarity"].min()) if len(ranked) else float("nan")
        report["retrieval"] = (f"retrieval did not reach it: similarity {similarity:.3f} to the gap, while the "
                               f"{len(ranked)} retrieved candidates reach down to {last_sim:.3f}")
    if features is None:
        return report
    last = ranked.iloc[shortlist - 1]
    scores, factors = _factors(ranker, ranked, pool, rows, features, industries, not gap.get("segment_id"), lang)
    report["score"] = rounded(scores[0])
    report["last_shortlisted"] = {"enterprise_id": last["enterprise_id"], "name": last["name"], "rank": int(last["rank"]), "score": rounded(scores[1])}
    reasons = [f for f in factors if not f.get("same_value", False)]
    report["holding_it_back"] = [f for f in sorted(reasons, key=lambda e: e["difference"]) if f["difference"] < 0][:5]
    report["in_its_favour"] = [f for f in reasons if f["difference"] > 0][:3]
    report["interactions"] = rounded(sum(f["difference"] for f in factors if f.get("same_value", False)))
    return report


def compare(catalog, gap_id: str, a_id: str, b_id: str, filters, lang: str = "en") -> dict:
    """:meth:`matcher.catalog.Catalog.compare` (which ranks, then calls :func:`compare_report`)."""
    return catalog.compare(gap_id, a_id, b_id, filters, lang)


def why_not(catalog, gap_id: str, enterprise_id: str, shortlist: int, filters, lang: str = "en") -> dict:
    """:meth:`matcher.catalog.Catalog.why_not` (which ranks, then calls :func:`why_not_report`)."""
    return catalog.why_not(gap_id, enterprise_id, shortlist, filters, lang)
