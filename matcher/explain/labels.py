"""The words and numbers of explanations: English and Chinese reason templates, feature names,
which features are observed in the source data, and the one rounding every number goes through."""

from __future__ import annotations

import math

from matcher import schemas as S

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


def stated(value: float) -> float:
    """The number a text states: :func:`rounded`, NaN (rendered as "not reported") when missing."""
    value = rounded(value)
    return math.nan if value is None else value


# feature -> (source column observed in the data, or None when the engine derives it)
OBSERVED = {
    "revenue_growth": S.REVENUE_GROWTH, "employee_growth": S.EMPLOYEE_GROWTH, "funding_age_days": S.LAST_FUNDING_DATE,
    "patents_per_100_staff": S.PATENTS, "rd_intensity": S.RD_INTENSITY, "n_qualifications": S.QUALIFICATIONS,
    "age_years": S.FOUNDED_YEAR, "log_employees": S.EMPLOYEES, "distance_km": S.LAT, "same_metro": S.CITY,
    "nearby_province": S.PROVINCE, "n_risk_flags": S.RISK_FLAGS, "abnormal_operation": S.RISK_FLAGS,
    "shrinking_headcount": S.EMPLOYEE_GROWTH, "eligible_policies": S.QUALIFICATIONS,
}
# How a value is compared with the other candidates' (render.percentile_phrase): the kind of
# comparison a feature reads as; a feature not named compares as a level ("higher than").
COUNTS = ("local_partners", "local_competitors", "chain_segments", "n_qualifications", "eligible_policies",
          "n_risk_flags", "other_gaps_filled", "strength_before", "patents_per_100_staff", "log_employees")
# Yes/no (and three-level) features: how many candidates share the value, not more or less.
SHARED = ("same_metro", "nearby_province", "abnormal_operation", "shrinking_headcount", "strength_gain",
          "industry_code_match")
COMPARISON = {
    **{f: "count" for f in COUNTS}, **{f: "shared" for f in SHARED},
    "distance_km": "distance", "age_years": "age", "funding_age_days": "recency",
}
# Per language and kind: the words for a value above and below the others'. "{p}" is a share of
# the candidates: "more than 90% of candidates" (the value exceeds theirs), "fewer than most
# candidates" (between half and three quarters have more).
COMPARE = {
    "en": {
        "level": ("higher than", "lower than"), "count": ("more than", "fewer than"),
        "distance": ("farther than", "closer than"), "age": ("older than", "younger than"),
        "recency": ("longer ago than for", "more recently than for"),
        "share": "{cmp} {p}% of candidates", "most": "{cmp} most candidates", "shared": "like {p}% of candidates",
    },
    "zh": {
        "level": ("高于", "低于"), "count": ("多于", "少于"), "distance": ("远于", "近于"), "age": ("早于", "晚于"),
        "recency": ("早于", "晚于"),
        "share": "{cmp} {p}% 的候选企业", "most": "{cmp}多数候选企业", "shared": "与 {p}% 的候选企业相同",
    },
}

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
        "local_partners": "{v:.0f} local partner firms upstream or downstream",
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
        "local_partners": "上下游有 {v:.0f} 家本地配套企业",
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
