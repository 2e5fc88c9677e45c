"""Explanations read naturally (issue 13): a reason says how its value compares with the other
candidates' ("36 local partner firms — fewer than most candidates", "高于 90% 的候选企业"), and
those words follow the value's percentile among the ranked pool, for reasons that raise the
score and reasons that lower it, in English and Chinese."""

from __future__ import annotations

import math
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from matcher.explain import (
    COMPARE, COMPARISON, contribution_rows, contribution_text, explain_reasons, percentile_phrase, percentile_phrases,
    reason_text, sorted_population,
)
from matcher.features import FEATURES
from matcher.ranking import LandingModel
from tests.matcher.test_ranking import make_pairs

LANGS = ("en", "zh")
OLD_WORDS = ("raises the score", "lowers the score", "提升得分", "降低得分", "top ", "bottom ", "前 ", "后 ")


def test_the_example_sentences():
    partners = np.arange(100, dtype=float)  # 36 has 36% of candidates below it, 63% above
    phrase_en = percentile_phrase(36.0, partners, "local_partners", "en")
    phrase_zh = percentile_phrase(36.0, partners, "local_partners", "zh")
    assert contribution_text("local_partners", 36.0, -0.2, phrase_en, "en") == \
        "36 local partner firms upstream or downstream — fewer than most candidates"
    assert contribution_text("local_partners", 36.0, -0.2, phrase_zh, "zh") == "上下游有 36 家本地配套企业，少于多数候选企业"
    growth = np.linspace(-0.5, 0.5, 100)
    assert percentile_phrase(float(growth[91]), growth, "revenue_growth", "en") == "higher than 91% of candidates"
    assert percentile_phrase(float(growth[91]), growth, "revenue_growth", "zh") == "高于 91% 的候选企业"
    assert percentile_phrase(float(growth[20]), growth, "revenue_growth", "en") == "lower than 79% of candidates"
    assert percentile_phrase(10.0, np.arange(100.0), "distance_km", "en") == "closer than 89% of candidates"
    assert percentile_phrase(10.0, np.arange(100.0), "distance_km", "zh") == "近于 89% 的候选企业"
    # A value most candidates share: 0 qualifications, as 61 of 100; 39 hold more.
    ties = np.array([0.0] * 61 + list(range(1, 40)), dtype=float)
    assert percentile_phrase(0.0, ties, "n_qualifications", "en") == "fewer than 39% of candidates"
    assert percentile_phrase(1.0, np.array([0.0] * 88 + [1.0] * 12), "same_metro", "en") == "like 12% of candidates"
    assert percentile_phrase(1.0, np.array([0.0] * 88 + [1.0] * 12), "same_metro", "zh") == "与 12% 的候选企业相同"
    assert percentile_phrase(5.0, np.full(10, 5.0), "local_partners", "en") == ""  # all equal: nothing to compare
    assert percentile_phrase(float("nan"), np.arange(10.0), "local_partners", "en") == ""


def parse(phrase: str, lang: str, feature: str) -> tuple[str, int | None]:
    """(side, p) of a phrase: side "high" / "low" / "shared", p the percentage or None for "most"."""
    C = COMPARE[lang]
    kind = COMPARISON.get(feature, "level")
    if kind == "shared":
        found = re.fullmatch(C["shared"].replace("{p}", r"(\d+)"), phrase)
        return "shared", int(found.group(1))
    for side, words in zip(("high", "low"), C[kind]):
        if phrase == C["most"].format(cmp=words):
            return side, None
        found = re.fullmatch(re.escape(C["share"].format(cmp=words, p="\x00")).replace("\x00", r"(\d+)"), phrase)
        if found:
            return side, int(found.group(1))
    raise AssertionError(f"unexpected phrase {phrase!r} for {feature}")


def check_phrase(phrase: str, value: float, population: np.ndarray, feature: str, lang: str) -> None:
    """The words say where ``value`` stands among ``population``: the side holding more
    candidates, the share rounded down, "most" between half and three quarters."""
    known = population[~np.isnan(population)]
    below, equal, above = (known < value).mean(), (known == value).mean(), (known > value).mean()
    if np.isnan(value) or equal > 0.999:
        assert phrase == ""
        return
    side, p = parse(phrase, lang, feature)
    if side == "shared":
        assert p == max(1, math.floor(round(equal * 100, 6)))
        return
    share = below if side == "high" else above
    assert (side == "high") == (below >= above)
    if p is None:
        assert 0.5 < share < 0.75
    else:
        assert p == math.floor(round(share * 100, 6)) and not 50 < p < 75


@pytest.mark.parametrize("lang", LANGS)
def test_the_words_follow_the_percentile_for_every_value(lang):
    rng = np.random.default_rng(3)
    features = ["local_partners", "revenue_growth", "distance_km", "age_years", "funding_age_days", "same_metro",
                "n_qualifications"]
    for feature in features:
        if feature == "same_metro":
            population = (rng.random(80) < 0.3).astype(float)
        elif feature in ("local_partners", "n_qualifications"):
            population = rng.integers(0, 12, 80).astype(float)
        else:
            population = rng.normal(size=80)
        population[rng.random(80) < 0.1] = np.nan
        for value in list(population[:40]) + [population[~np.isnan(population)].min(), np.nanmax(population)]:
            check_phrase(percentile_phrase(float(value), population, feature, lang), float(value), population, feature, lang)


@pytest.mark.parametrize("lang", LANGS)
def test_raising_and_lowering_reasons_read_the_same_comparison(lang):
    pool = pd.DataFrame({"local_partners": np.arange(100.0), "distance_km": np.arange(100.0) * 10})
    names = ["local_partners", "distance_km"]
    matrix = pool[names].to_numpy()[[5, 36, 95]]
    phrases = percentile_phrases(matrix, sorted_population(pool, names), lang, names)
    for sign in (1.0, -1.0):
        for i, row in enumerate(matrix):
            rows = contribution_rows(row, np.array([sign * 0.3, -sign * 0.1]), phrases[i], "2025-01-01", lang, names)
            for r, value, name in zip(rows, row, names):
                # The value, then how it compares: the same words whether it raised or lowered the score.
                assert r["text"].startswith(reason_text(name, value, lang))
                tail = r["text"][len(reason_text(name, value, lang)):].removeprefix(" — " if lang == "en" else "，")
                check_phrase(tail, value, pool[name].to_numpy(), name, lang)
                assert not any(w in r["text"] for w in OLD_WORDS), r["text"]


def test_vectorised_phrases_equal_one_at_a_time():
    X, _ = make_pairs(300, seed=1)
    names = list(FEATURES)
    population = sorted_population(X, names)
    matrix = X[names].to_numpy(dtype=float)[:60]
    for lang in LANGS:
        table = percentile_phrases(matrix, population, lang, names)
        for i in range(len(matrix)):
            assert table[i] == [percentile_phrase(matrix[i, j], population[n], n, lang, presorted=True)
                                for j, n in enumerate(names)]


@pytest.mark.parametrize("lang", LANGS)
def test_a_model_s_reasons_for_and_against_follow_the_pool(lang):
    X, y = make_pairs(400)
    model = LandingModel(max_iter=40).fit(X, y)
    pool = X.head(120).reset_index(drop=True)
    rows = pool.head(25).assign(_row=np.arange(25))
    inputs = SimpleNamespace(ranker=model, enterprises=pd.DataFrame({"enterprise_id": [f"e{i}" for i in range(120)]}))
    reasons = explain_reasons(inputs, {}, rows, pool.head(25), pool, lang)
    checked = {"positive": 0, "negative": 0}
    for i, r in enumerate(reasons):
        for side in ("positive", "negative"):
            for text in r[side]:
                # Which feature and value the reason states: the one whose reason text begins it.
                matches = [n for n in FEATURES if not np.isnan(pool.at[i, n])
                           and text.startswith(reason_text(n, round(float(pool.at[i, n]), 6), lang) + (" — " if lang == "en" else "，"))]
                if not matches:
                    continue  # a value every candidate shares has no comparison to check
                name = matches[0]
                value = round(float(pool.at[i, name]), 6)
                tail = text[len(reason_text(name, value, lang)) + (3 if lang == "en" else 1):]
                check_phrase(tail, value, np.round(pool[name].to_numpy(dtype=float), 6), name, lang)
                assert not any(w in text for w in OLD_WORDS), text
                checked[side] += 1
    assert checked["positive"] > 5 and checked["negative"] > 5, checked
