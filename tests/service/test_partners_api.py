"""``GET /v1/enterprises/{id}/partners`` (issue 13): the suppliers and customers ``matcher partners``
finds for a local firm, paginated like a gap's prospects, explained in English and Chinese, with
the prospect filters; an outside firm is a 422 naming why, an unknown one a 404."""

from __future__ import annotations

import re

import pytest

from matcher import schemas as S
from matcher.partners import CUSTOMER, SUPPLIER, neighbour_segments, partners
from matcher.retrieval import Filters, records

pytestmark = pytest.mark.e2e

CJK = re.compile("[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def catalog(service):
    return service.app.state.svc.holder.current.catalog


@pytest.fixture(scope="module")
def firm(catalog) -> str:
    """A local firm whose segments have both suppliers and customers on the chain map."""
    for enterprise_id in sorted(catalog.context.partner_segments):
        if {n["relation"] for n in neighbour_segments(catalog, enterprise_id)} == {SUPPLIER, CUSTOMER}:
            return enterprise_id
    raise AssertionError("no local firm of the sample has both suppliers and customers")


def test_partners_are_the_cli_s_ranked_explained_and_paginated(service, catalog, firm):
    expected = records(partners(catalog, firm, 12, Filters(), explain=True, lang="en"))
    page = service.get(f"/v1/enterprises/{firm}/partners?top=12&explain=true", "staff")
    assert page.status_code == 200, page.text
    body = page.json()

    assert body["enterprise_id"] == firm and body["segments"] == catalog.context.partner_segments[firm]
    names = {s.id: s.name for _, s in catalog.chain_map.segments()}
    assert [(s["segment_id"], s["name"]) for s in body["firm_segments"]] == [(s, names[s]) for s in body["segments"]]
    neighbours = {n["segment_id"]: n for n in body["neighbours"]}
    assert {n["relation"] for n in body["neighbours"]} == {SUPPLIER, CUSTOMER}
    assert body["total"] >= len(body["results"]) > 0 and body["offset"] == 0 and body["lang"] == "en"
    results = body["results"]
    assert [r["enterprise_id"] for r in results] == [e["enterprise_id"] for e in expected]
    assert [r["score"] for r in results] == [e["score"] for e in expected]
    assert [r["rank"] for r in results] == list(range(1, len(results) + 1))
    local = catalog.enterprises.set_index(S.ENTERPRISE_ID)[S.IS_LOCAL]
    for r, e in zip(results, expected):
        assert not local[r["enterprise_id"]] and r["enterprise_id"] != firm
        assert r["relation"] == neighbours[r["partner_segment_id"]]["relation"] == e["relation"]
        assert r["partner_segment_id"] in r["partner_segments"] and r["via"] in body["segments"]
        # Explained as prospects: the same reasons and explanation as the library's, evidence and distance included.
        assert r["reasons"] == e["explanation"]["reasons"] and (r["reasons"]["positive"] or r["reasons"]["negative"])
        assert r["explanation"]["rank"] == r["rank"] and r["explanation"]["evidence"] == e["explanation"]["evidence"]
        stated = [c["text"] for c in r["explanation"]["contributions"]] + r["explanation"]["facts"]
        assert any(" km from the district" in t for t in stated), stated  # distance, as a reason or a fact
        assert r["firm_similarity"] == pytest.approx(e["firm_similarity"], abs=1e-6)

    later = service.get(f"/v1/enterprises/{firm}/partners?top=4&offset=3", "staff").json()
    assert [r["enterprise_id"] for r in later["results"]] == [r["enterprise_id"] for r in results[3:7]]
    assert [r["rank"] for r in later["results"]] == [4, 5, 6, 7] and later["total"] == body["total"]
    assert all(r["explanation"] is None for r in later["results"])  # only with explain=true


def test_partners_in_chinese(service, firm):
    en = service.get(f"/v1/enterprises/{firm}/partners?top=5", "leader").json()
    zh = service.get(f"/v1/enterprises/{firm}/partners?top=5&lang=zh&explain=true", "leader").json()
    assert zh["lang"] == "zh"
    assert [r["enterprise_id"] for r in zh["results"]] == [r["enterprise_id"] for r in en["results"]]
    for r in zh["results"]:
        texts = r["reasons"]["positive"] + r["reasons"]["negative"]
        assert texts and all(CJK.search(t) for t in texts), texts
        assert r["explanation"]["lang"] == "zh"
    assert any(n["name_zh"] for n in zh["neighbours"])


def test_partners_take_the_prospect_filters(service, firm):
    everyone = service.get(f"/v1/enterprises/{firm}/partners?top=50", "staff").json()
    countries = [r["country"] for r in everyone["results"]]
    country = min(set(countries), key=countries.count)  # the rarest: filtering it out changes the list
    only = service.get(f"/v1/enterprises/{firm}/partners?top=50&country={country}", "staff").json()
    assert only["filters"]["country"] == [country] and only["results"] and only["total"] < everyone["total"]
    assert all(r["country"] == country for r in only["results"])
    small = service.get(f"/v1/enterprises/{firm}/partners?top=50&max_employees=100", "staff").json()["results"]
    assert all(r["employees"] is not None and r["employees"] <= 100 for r in small)

    bad = service.get(f"/v1/enterprises/{firm}/partners?founded_after=5", "staff")
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["field"] == "query.founded_after"
    assert service.get(f"/v1/enterprises/{firm}/partners?top=0", "staff").status_code == 422


def test_an_outside_or_unknown_firm_is_a_clear_error(service, catalog):
    outside = catalog.enterprises.loc[~catalog.enterprises[S.IS_LOCAL].astype(bool), S.ENTERPRISE_ID].iloc[0]
    answer = service.get(f"/v1/enterprises/{outside}/partners", "staff")
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "validation_error" and error["fields"][0]["field"] == "enterprise_id"
    assert "is not a local firm" in error["fields"][0]["reason"] and outside in error["message"]

    unknown = service.get("/v1/enterprises/no-such-firm/partners", "staff")
    assert unknown.status_code == 404 and "no-such-firm" in unknown.json()["error"]["message"]
    assert service.client.get(f"/v1/enterprises/{outside}/partners").status_code == 401
