"""Rendering one value at a time: a feature value as a plain-language reason, how it compares
with the other ranked candidates' values, a firm's industry label, and the sentences of a
description quoted as evidence. Pure functions of the values given."""

from __future__ import annotations

import math
import re
import string

import numpy as np
import pandas as pd

from matcher import schemas as S
from matcher.explain.labels import (
    COMPARE, COMPARISON, FEATURE_NAMES_EN, FEATURE_NAMES_ZH, LABELS, OBSERVED, SIGNED, rounded, stated,
)
from matcher.features import FEATURES
from matcher.lexical import tokenize


def sorted_population(pool: pd.DataFrame, names=FEATURES) -> dict[str, np.ndarray]:
    """Each feature's known values among the candidates, sorted (for percentile phrases)."""
    out = {}
    for name in names:
        values = pool[name].to_numpy(dtype=float)
        out[name] = np.sort(values[~np.isnan(values)])
    return out


def percentile_phrase(value: float, population: np.ndarray, feature: str, lang: str, presorted: bool = False) -> str:
    """How ``value`` compares with the candidates' values ``population``, in words: "more than 90%
    of candidates", "fewer than most candidates", "like 12% of candidates" (yes/no features).

    The side with more candidates wins: a value above those of a share ``p`` of the candidates
    (strictly) and below fewer of them reads "<higher> than p%"; otherwise "<lower> than p%" with
    ``p`` the share strictly above it. ``p`` is rounded down (the statement stays true); a share
    between half and three quarters reads "most candidates". Empty when the value is missing,
    every candidate shares it, or fewer than 2 candidates are known.
    """
    known = population if presorted else np.sort(population[~np.isnan(population)])
    if np.isnan(value) or len(known) < 2:
        return ""
    n = len(known)
    lo, hi = np.searchsorted(known, value, "left"), np.searchsorted(known, value, "right")
    return _phrase(lang, COMPARISON.get(feature, "level"), lo / n, (hi - lo) / n, (n - hi) / n)


_PHRASES: dict[tuple[str, str], tuple[list[str], list[str], str, str]] = {}


def _phrases(lang: str, kind: str) -> tuple[list[str], list[str], str, str]:
    """The phrases of one comparison kind for p in 0..100, above and below, and their "most"
    forms, rendered once per language (explanations phrase ~1,300 cells for a top 50)."""
    key = (lang, kind)
    if key not in _PHRASES:
        C = COMPARE[lang]
        if kind == "shared":
            same = [C["shared"].format(p=p) for p in range(101)]
            _PHRASES[key] = (same, same, "", "")
        else:
            high, low = C[kind]
            _PHRASES[key] = ([C["share"].format(cmp=high, p=p) for p in range(101)],
                             [C["share"].format(cmp=low, p=p) for p in range(101)],
                             C["most"].format(cmp=high), C["most"].format(cmp=low))
    return _PHRASES[key]


def _phrase(lang: str, kind: str, below: float, equal: float, above: float) -> str:
    """:func:`percentile_phrase` from the shares of candidates below, equal to and above a value."""
    if equal > 0.999:
        return ""  # every candidate has this value: a comparison says nothing
    highs, lows, most_high, most_low = _phrases(lang, kind)
    if kind == "shared":
        return highs[max(1, math.floor(round(equal * 100, 6)))]
    higher = below >= above
    share = below if higher else above
    p = math.floor(round(share * 100, 6))
    if p < 1:
        return ""
    if 50 < p < 75:
        return most_high if higher else most_low
    return highs[p] if higher else lows[p]


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


def percentile_phrases(matrix: np.ndarray, population: dict[str, np.ndarray], lang: str, names=FEATURES) -> list[list[str]]:
    """:func:`percentile_phrase` of every cell of ``matrix`` (rows x ``names``), column by column."""
    out = [[""] * len(names) for _ in range(len(matrix))]
    for j, name in enumerate(names):
        known = population[name]
        n = len(known)
        if n < 2:
            continue
        column = matrix[:, j]
        # Python floats from here: per-cell numpy scalar arithmetic costs ~10x more.
        lo = (np.searchsorted(known, column, "left") / n).tolist()
        hi = (np.searchsorted(known, column, "right") / n).tolist()
        kind = COMPARISON.get(name, "level")
        for i in np.flatnonzero(~np.isnan(column)).tolist():
            out[i][j] = _phrase(lang, kind, lo[i], hi[i] - lo[i], 1.0 - hi[i])
    return out


def contribution_text(name: str, value: float, contribution: float, where: str, lang: str,
                      industry: str | None = None, search: bool = False) -> str:
    """A feature's reason as :func:`contribution_rows` words it: the value, then how it compares
    with the other candidates' ("36 local partner firms — fewer than most candidates"), which is
    why it raises or lowers the score (``contribution``: the reason is listed for or against
    by its sign, the words need not say it again)."""
    text = reason_text(name, value, lang, industry, search)
    if where:
        text += (" — " if lang == "en" else "，") + where
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
        text = contribution_text(name, stated(value), contribution, where, lang, industry, search)
        source = OBSERVED.get(name)
        rows.append({
            "feature": name,
            "value": value,
            "contribution": contribution,
            "text": text,
            "source": {"kind": "observed", "column": source, "updated_at": updated_at} if source else {"kind": "derived"},
        })
    return rows


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
