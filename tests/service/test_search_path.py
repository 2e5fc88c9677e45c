"""The free-text search path: a page's short reasons are the full explanation's, the list
version is a digest of the list, and the stored record is built off the request."""

from __future__ import annotations

import copy

import numpy as np

from matcher.explain import explain_ranked, explain_reasons
from matcher.features import FEATURES
from matcher.retrieval import Filters, records
from service.holder import make_entry


class LinearRanker:
    """Stands in for the landing model's SHAP output: a contribution per feature and row."""

    def explain(self, features, margins: bool = True):
        matrix = np.nan_to_num(features[list(FEATURES)].to_numpy(dtype=float))
        weights = np.linspace(-1.0, 1.0, len(FEATURES))
        values = matrix * weights
        return 0.1, values, 0.1 + values.sum(axis=1) if margins else None

    def predict_proba(self, features):
        p = 1 / (1 + np.exp(-np.clip(self.explain(features)[2], -30, 30)))
        return np.column_stack([1 - p, p])


def _search(catalog, text: str):
    vector = catalog.encoder.encode([text])[0]
    gap = catalog.need_as_gap(text, vector)
    ranked, features = catalog.rank_pool(gap, vector, 1, Filters())
    return gap, ranked, features


def test_short_reasons_are_the_full_explanations(service):
    cold = service.app.state.svc.holder.current.catalog
    model = copy.copy(cold)
    model.ranker = LinearRanker()
    model.manifest = {**cold.manifest, "ranker": {"trained_in": "test"}}
    for catalog in (cold, model):
        gap, ranked, features = _search(catalog, "battery cell materials and recycling")
        positions = [0, 1, 5, 19]
        for lang in ("en", "zh"):
            inputs = catalog.explain_inputs(gap)
            full = explain_ranked(inputs, gap, ranked.iloc[positions], features.iloc[positions], features, lang)
            short = explain_reasons(inputs, gap, ranked.iloc[positions], features.iloc[positions], features, lang)
            assert short == [e["reasons"] for e in full]
            assert all(r["positive"] or r["negative"] for r in short)


def test_search_page_matches_the_library_and_logs_the_list(service):
    catalog = service.app.state.svc.holder.current.catalog
    text = "industrial robot arms and machine vision"
    page = service.post("/v1/prospects/search", "staff", json={"text": text, "top": 7, "offset": 3}).json()
    expected = records(catalog.search(text, 10, Filters(), explain=True))[3:10]
    assert [r["enterprise_id"] for r in page["results"]] == [e["enterprise_id"] for e in expected]
    assert [r["reasons"] for r in page["results"]] == [e["explanation"]["reasons"] for e in expected]
    again = service.post("/v1/prospects/search", "staff", json={"text": text, "top": 3}).json()
    assert again["list_version"] == page["list_version"]
    service.flush_log()
    from matcher.store import repo

    stored = repo.get_ranked_list(service.store, page["list_version"])
    # Stored down to the deepest page served (here the first 10), not all candidates.
    assert stored["query_text"] == text and stored["n_items"] == page["total"]
    assert stored["n_stored"] == len(stored["items"]) == 10
    assert [i["enterprise_id"] for i in stored["items"][3:10]] == [r["enterprise_id"] for r in page["results"]]
    assert all(len(i["features"]) == len(FEATURES) for i in stored["items"])


def test_list_version_is_a_digest_of_the_list(service):
    catalog = service.app.state.svc.holder.current.catalog
    gap, ranked, features = _search(catalog, "cold chain logistics for vaccines")
    first = make_entry(catalog, gap, Filters(), ranked, features)
    assert make_entry(catalog, gap, Filters(), ranked.copy(), features.copy()).list_version == first.list_version
    assert len(first.list_version) == 32 and not first.record_built  # the record waits for the log writer
    changed = features.copy()
    changed.loc[changed.index[-1], FEATURES[0]] += 0.5
    assert make_entry(catalog, gap, Filters(), ranked, changed).list_version != first.list_version
    assert make_entry(catalog, gap, Filters(include_local=True), ranked, features).list_version != first.list_version
    assert make_entry(catalog, gap, Filters(exclude_ids=("x",)), ranked, features).list_version != first.list_version
    record = first.record
    assert record["list_version"] == first.list_version and record["feature_names"] == list(FEATURES)
    assert [i["enterprise_id"] for i in record["items"]] == ranked["enterprise_id"].tolist()
    assert first.position_of(ranked["enterprise_id"].iloc[4]) == 4 and first.position_of("nobody") is None
    assert first.rows_at([2]) == records(ranked.iloc[[2]])
