"""The HTTP API against a real workspace, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import threading

import pytest
from openpyxl import load_workbook

from matcher.explain import DECIMALS
from matcher.retrieval import Filters, records
from matcher.store import repo
from tests.service.conftest import AI

pytestmark = pytest.mark.e2e


def assert_error(response, status: int, code: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and error["request_id"] == response.headers["x-request-id"]
    if field is not None:
        assert field in [f["field"] for f in error["fields"]], error
    return error


def shortlist(service, who="staff", top=4, **body) -> dict:
    response = service.post("/v1/shortlists", who, json={"gap_id": service.gap(), "top": top, **body})
    assert response.status_code == 201, response.text
    return response.json()


def review(service, s, item, who="leader", headers=None, **body):
    return service.post(f"/v1/shortlists/{s['shortlist_id']}/items/{item['item_id']}/review", who, json=body,
                        headers=headers or {})


# --- operations, access control, errors -------------------------------------------------------

def test_health_ready_metrics_and_docs(service):
    assert service.client.get("/health").json() == {"status": "ok"}
    ready = service.client.get("/ready").json()
    assert ready["ready"] and ready["version"] and ready["ranker"] == "cold-start"
    service.get(f"/v1/gaps/{service.gap()}/prospects?top=3")
    metrics = service.get("/metrics", "admin").text  # an admin key (MATCHER_SERVICE_METRICS_PUBLIC is off)
    assert 'matcher_http_requests_total{method="GET",route="/v1/gaps/{gap_id}/prospects",status="200"}' in metrics
    assert "matcher_http_request_duration_seconds_bucket" in metrics
    assert f'matcher_artifact_loaded{{ranker="cold-start",version="{ready["version"]}"}} 1.0' in metrics
    assert "matcher_model_age_seconds" in metrics
    schema = service.client.get("/openapi.json").json()
    assert "/v1/shortlists/{shortlist_id}/items/{item_id}/review" in schema["paths"]
    assert service.client.get("/docs").status_code == 200
    assert service.client.get("/ui").status_code == 200


def test_keys_roles_and_chains(service):
    assert_error(service.client.get("/v1/gaps"), 401, "unauthorized")
    assert_error(service.client.get("/v1/gaps", headers={"Authorization": "Bearer cmk_not-a-key"}), 401, "unauthorized")
    me = service.get("/v1/me", "leader").json()
    assert me["role"] == "chain_leader" and me["chains"] == [AI] and "shortlists:review" in me["permissions"]
    reasons = {r["code"]: r for r in service.get("/v1/review-reasons", "leader").json()["reasons"]}
    assert reasons["not_chain_fit"]["excludes"] and reasons["not_chain_fit"]["label_zh"]

    s = shortlist(service)  # an AI-chain shortlist, created by staff
    item = s["items"][0]
    assert_error(review(service, s, item, "staff", verdict="approve"), 403, "forbidden")  # staff do not review
    # Another chain's shortlist is answered as an unknown one (404), so ids tell nothing.
    assert_error(review(service, s, item, "other_leader", verdict="approve"), 404, "not_found")
    assert_error(service.get(f"/v1/shortlists/{s['shortlist_id']}", "other_leader"), 404, "not_found")
    assert_error(service.get(f"/v1/shortlists/{s['shortlist_id']}/export", "other_leader"), 404, "not_found")
    assert_error(service.get(f"/v1/shortlists?chain={AI}", "other_leader"), 403, "forbidden")
    listed = service.get("/v1/shortlists", "other_leader").json()
    assert all(x["chain_id"] != AI for x in listed["shortlists"])
    assert review(service, s, item, "leader", verdict="approve").status_code == 200
    assert_error(service.get("/v1/admin/versions", "leader"), 403, "forbidden")

    key, record = repo.create_key(service.store, "staff", name="leaver")
    assert service.get("/v1/me", headers={"Authorization": f"Bearer {key}"}, who="staff").json()["key_id"] == record["key_id"]
    repo.revoke_key(service.store, str(record["key_id"]))
    assert_error(service.client.get("/v1/me", headers={"Authorization": f"Bearer {key}"}), 401, "unauthorized")


def test_staff_export_the_shortlists_they_created(service):
    assert "shortlists:export" in service.get("/v1/me", "staff").json()["permissions"]
    own = shortlist(service, top=3)  # created with the fixture's staff key
    exported = service.get(f"/v1/shortlists/{own['shortlist_id']}/export?format=csv", "staff")
    assert exported.status_code == 200, exported.text
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert [r[1] for r in rows[1:]] == [i["enterprise_id"] for i in own["items"]]

    colleague, _ = repo.create_key(service.store, "staff", name="colleague")
    theirs = service.get(f"/v1/shortlists/{own['shortlist_id']}/export", headers={"Authorization": f"Bearer {colleague}"},
                         who="staff")
    error = assert_error(theirs, 403, "forbidden")
    assert f"shortlist {own['shortlist_id']}" in error["message"]
    assert service.get(f"/v1/shortlists/{own['shortlist_id']}", headers={"Authorization": f"Bearer {colleague}"},
                       who="staff").status_code == 200  # they still read it
    assert service.get(f"/v1/shortlists/{own['shortlist_id']}/export", "leader").status_code == 200


def test_keys_never_logged(service, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "cmk_" + "x" * 43
    service.client.get("/v1/gaps", headers={"Authorization": f"Bearer {wrong}"})
    s = shortlist(service)
    review(service, s, s["items"][0], verdict="defer", comment="later")
    service.get(f"/v1/gaps/{service.gap()}/prospects?top=2", "staff")
    logged = "\n".join(r.getMessage() + repr(r.args) for r in caplog.records)
    audit = repr(repo.list_audit(service.store, limit=1000))
    for key in [*service.keys.values(), wrong]:
        assert key not in logged and key not in audit


def test_bad_input_is_4xx_with_the_field(service):
    gap = service.gap()
    assert_error(service.get(f"/v1/gaps/{gap}/prospects?top=201"), 422, "validation_error", "query.top")
    assert_error(service.get(f"/v1/gaps/{gap}/prospects?offset=-1"), 422, "validation_error", "query.offset")
    assert_error(service.get(f"/v1/gaps/{gap}/prospects?lang=fr"), 422, "validation_error", "query.lang")
    assert_error(service.get("/v1/gaps/no-such-gap/prospects"), 404, "not_found")
    assert_error(service.get("/v1/enterprises/nobody"), 404, "not_found")
    assert_error(service.get("/v1/shortlists/99999999"), 404, "not_found")
    assert_error(service.get("/v1/shortlists/99999999999"), 422, "validation_error", "path.shortlist_id")
    assert_error(service.post("/v1/shortlists", json={"gap_id": gap, "top": 0}), 422, "validation_error", "body.top")
    assert_error(service.post("/v1/shortlists", json={"gap_id": gap, "topp": 3}), 422, "validation_error", "body.topp")
    assert_error(service.post("/v1/shortlists", content=b"{not json", headers={"Content-Type": "application/json"}),
                 422, "validation_error")
    assert_error(service.post("/v1/prospects/search", json={"text": "x" * 2_000_000}), 413, "payload_too_large")
    chunks = (b'{"text": "' + b"x" * 100_000 for _ in range(20))  # no Content-Length: counted while read
    assert_error(service.post("/v1/prospects/search", content=chunks, headers={"Content-Type": "application/json"}),
                 413, "payload_too_large")
    s = shortlist(service, top=1)
    item = s["items"][0]
    assert_error(review(service, s, item, verdict="reject"), 422, "validation_error", "body.reason_code")
    assert_error(review(service, s, item, verdict="approve", reason_code="not_chain_fit"), 422, "validation_error", "body.reason_code")
    assert_error(review(service, s, item, verdict="approve", comment="a\x00b"), 422, "validation_error", "body.comment")
    assert_error(service.post(f"/v1/shortlists/{s['shortlist_id']}/items/999999/review", json={"verdict": "approve"}), 404, "not_found")


# --- prospects --------------------------------------------------------------------------------

def test_prospects_are_the_cli_ranking_paginated_and_logged(service):
    gap = service.gap()
    catalog = service.app.state.svc.holder.current.catalog
    expected = records(catalog.prospects(gap, 30, Filters()))
    first = service.get(f"/v1/gaps/{gap}/prospects?top=20", "staff").json()
    second = service.get(f"/v1/gaps/{gap}/prospects?top=10&offset=20", "staff").json()
    got = first["results"] + second["results"]
    assert [r["enterprise_id"] for r in got] == [r["enterprise_id"] for r in expected]
    assert [r["score"] for r in got] == [r["score"] for r in expected]
    assert [r["rank"] for r in got] == list(range(1, 31))
    assert first["list_version"] == second["list_version"] and first["total"] == second["total"] >= 30
    assert all(r["reasons"]["positive"] or r["reasons"]["negative"] for r in got)

    service.flush_log()
    stored = repo.get_ranked_list(service.store, first["list_version"])
    assert stored["artifact_version"] == first["version"] and stored["gap_id"] == gap
    assert [i["enterprise_id"] for i in stored["items"][:30]] == [r["enterprise_id"] for r in got]
    rows = [catalog.row_of(r["enterprise_id"]) for r in got[:3]]
    features = catalog.features(catalog.gap(gap)[0], catalog.gap(gap)[1], rows)
    for item, (_, feature_row) in zip(stored["items"], features.iterrows()):
        vector = dict(zip(stored["feature_names"], item["features"]))
        assert vector["gap_similarity"] == pytest.approx(feature_row["gap_similarity"], abs=1e-6)
    assert repo.served_count(service.store, first["list_version"]) >= 2

    filtered = service.get(f"/v1/gaps/{gap}/prospects?top=50&country=CN&min_employees=50", "staff").json()
    assert filtered["results"] and all(r["country"] == "CN" and r["employees"] >= 50 for r in filtered["results"])
    assert filtered["list_version"] != first["list_version"]


def test_explanation_why_not_enterprise_search(service):
    gap = service.gap()
    top = service.get(f"/v1/gaps/{gap}/prospects?top=25").json()["results"]
    first, last = top[0]["enterprise_id"], top[-1]["enterprise_id"]
    e = service.get(f"/v1/gaps/{gap}/prospects/{first}/explanation?lang=zh", "leader").json()["explanation"]
    assert e["lang"] == "zh" and e["rank"] == 1 and e["contributions"]
    # Each number rounded to the explanation's DECIMALS: the sum is within n half-steps of the output.
    slack = (len(e["contributions"]) + 2) * 10.0 ** -DECIMALS / 2
    assert e["base_value"] + sum(c["contribution"] for c in e["contributions"]) == pytest.approx(e["model_output"], abs=slack)
    why = service.get(f"/v1/gaps/{gap}/why-not/{last}?shortlist=10", "leader").json()
    assert why["rank"] == 25 and why["last_shortlisted"]["rank"] == 10 and why["holding_it_back"]
    ent = service.get(f"/v1/enterprises/{first}", "staff").json()
    assert ent["enterprise_id"] == first and ent["name"] == top[0]["name"]
    found = service.post("/v1/prospects/search", "staff", json={"text": "GPU accelerator chip design", "top": 5}).json()
    assert len(found["results"]) == 5 and found["query"]["gap_id"] is None


# --- shortlists and reviews -------------------------------------------------------------------

def test_shortlist_freezes_items_and_status_follows_reviews(service):
    s = shortlist(service, top=3, title="AI chips, first look")
    ready = service.client.get("/ready").json()
    assert s["status"] == "open" and s["title"] == "AI chips, first look" and len(s["items"]) == 3
    for item in s["items"]:
        assert item["data_version"] == ready["version"] and item["model_version"] == "cold-start"
        assert item["list_version"] == s["list_version"] and item["explanation"]["enterprise_id"] == item["enterprise_id"]
        assert item["status"] == "pending" and item["version"] == 0
    zh = service.get(f"/v1/shortlists/{s['shortlist_id']}?lang=zh", "leader").json()
    assert zh["items"][0]["explanation"]["lang"] == "zh" and zh["items"][0]["score"] == s["items"][0]["score"]

    a, b, c = s["items"]
    r = review(service, s, a, verdict="approve", reason_code="strong_fit", comment="visit in Q1").json()
    assert r["shortlist_status"] == "in_review" and r["item"]["status"] == "approved" and r["item"]["version"] == 1
    assert r["review"]["reviewer"].endswith("(AI chain leader)") and r["review"]["role"] == "chain_leader"
    review(service, s, b, verdict="defer", reason_code="needs_more_info")
    assert review(service, s, c, verdict="reject", reason_code="risk").json()["shortlist_status"] == "in_review"
    assert review(service, s, b, verdict="approve").json()["shortlist_status"] == "reviewed"
    detail = service.get(f"/v1/shortlists/{s['shortlist_id']}", "leader").json()
    assert detail["counts"] == {"pending": 0, "approved": 2, "rejected": 1, "deferred": 0}
    assert [x["verdict"] for x in next(i for i in detail["items"] if i["item_id"] == b["item_id"])["reviews"]] == ["defer", "approve"]
    listed = service.get(f"/v1/shortlists?chain={AI}&status=reviewed", "leader").json()["shortlists"]
    assert s["shortlist_id"] in [x["shortlist_id"] for x in listed]

    text = service.get(f"/v1/shortlists/{s['shortlist_id']}/export?format=csv", "leader").content.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["enterprise_id"] for r in rows] == [i["enterprise_id"] for i in s["items"]]
    assert rows[0]["status"] == "approved" and rows[0]["comment"] == "visit in Q1" and rows[2]["reason_code"] == "risk"
    xlsx = service.get(f"/v1/shortlists/{s['shortlist_id']}/export?format=xlsx&lang=zh", "leader")
    sheet = load_workbook(io.BytesIO(xlsx.content))["shortlist"]
    assert sheet.cell(2, 2).value == a["enterprise_id"] and sheet.cell(2, 5).value == "approved"


def test_not_chain_fit_excludes_until_undone(service):
    gap = service.gap()
    s = shortlist(service, top=2)
    item = s["items"][0]
    eid = item["enterprise_id"]
    review(service, s, item, verdict="reject", reason_code="not_chain_fit", comment="they make consumer apps")
    listed = service.get(f"/v1/gaps/{gap}/prospects?top=50", "staff").json()
    assert eid not in [r["enterprise_id"] for r in listed["results"]] and listed["excluded"] >= 1
    assert service.get(f"/v1/gaps/{gap}/prospects/{eid}/explanation").status_code == 404
    why = service.get(f"/v1/gaps/{gap}/why-not/{eid}").json()
    assert any("not a chain fit" in reason for reason in why["excluded_by"])
    assert eid in [x["enterprise_id"] for x in service.get(f"/v1/gaps/{gap}/exclusions").json()["exclusions"] if x["active"]]
    fresh = shortlist(service, top=5)
    assert eid not in [i["enterprise_id"] for i in fresh["items"]]

    state = service.app.state.svc  # what a worker does when exclusions change (with warming on):
    key = ("gap", gap, Filters(exclude_ids=tuple(sorted(state.exclusions[gap]))))
    state.holder.current.forget(key)
    state.rewarm({gap}).join()
    assert state.holder.current.peek(key) is not None  # ranked again before anyone asks

    review(service, s, item, verdict="defer", comment="second thoughts")  # a later verdict undoes it
    assert eid in [r["enterprise_id"] for r in service.get(f"/v1/gaps/{gap}/prospects?top=50").json()["results"]]
    review(service, s, item, verdict="reject", reason_code="not_chain_fit")
    assert service.client.delete(f"/v1/gaps/{gap}/exclusions/{eid}", headers=service.auth("other_leader")).status_code == 404
    lifted = service.client.delete(f"/v1/gaps/{gap}/exclusions/{eid}", headers=service.auth("leader"))
    assert lifted.status_code == 200 and not lifted.json()["active"]
    assert eid in [r["enterprise_id"] for r in service.get(f"/v1/gaps/{gap}/prospects?top=50").json()["results"]]


def test_concurrent_reviews_lose_nothing(service):
    s = shortlist(service, top=1)
    item = s["items"][0]
    # Both reviewers saw version 0: exactly one wins, the other gets 409 with the current state.
    results = []

    def go(verdict, reason):
        results.append(review(service, s, item, verdict=verdict, reason_code=reason, expected_version=0))

    threads = [threading.Thread(target=go, args=a) for a in (("approve", None), ("reject", "risk"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 409], [r.text for r in results]
    conflict = next(r for r in results if r.status_code == 409).json()["error"]
    assert conflict["code"] == "conflict" and conflict["current"]["version"] == 1
    # Without expected_version both verdicts are recorded, in order.
    review(service, s, item, verdict="defer")
    detail = service.get(f"/v1/shortlists/{s['shortlist_id']}").json()["items"][0]
    assert detail["version"] == 2 and len(detail["reviews"]) == 2 and detail["status"] == "deferred"
    # The same Idempotency-Key records one review, however often it is sent.
    for _ in range(2):
        again = review(service, s, item, verdict="approve", headers={"Idempotency-Key": f"retry-{service.backend}-1"})
        assert again.status_code == 200
    assert again.json()["replayed"] and again.json()["item"]["version"] == 3


# --- outcomes ---------------------------------------------------------------------------------

def test_outcomes_move_forward(service):
    gap = service.gap()
    eid = service.get(f"/v1/gaps/{gap}/prospects?top=1").json()["results"][0]["enterprise_id"]
    body = {"enterprise_id": eid, "gap_id": gap}
    assert service.post("/v1/outcomes", "staff", json={**body, "stage": "contacted", "date": "2026-10-01"}).status_code == 201
    visited = service.post("/v1/outcomes", "staff", json={**body, "stage": "negotiating", "date": "2026-10-20", "note": "site visit"})
    assert visited.json()["previous_stage"] == "contacted"
    assert_error(service.post("/v1/outcomes", "staff", json={**body, "stage": "visited", "date": "2026-10-21"}), 409, "conflict")
    assert_error(service.post("/v1/outcomes", "staff", json={**body, "stage": "lost", "date": "2026-10-22"}), 422,
                 "validation_error", "body.reason")
    assert service.post("/v1/outcomes", "staff", json={**body, "stage": "lost", "date": "2026-10-22", "reason": "chose Suzhou"}).status_code == 201
    assert_error(service.post("/v1/outcomes", "staff", json={**body, "stage": "landed", "date": "2026-11-01"}), 409, "conflict")
    assert_error(service.post("/v1/outcomes", "staff", json={**body, "enterprise_id": "nobody", "stage": "contacted",
                                                             "date": "2026-11-01"}), 422, "validation_error", "body.enterprise_id")
    # Chain leaders record outcomes for their own chains only.
    assert_error(service.post("/v1/outcomes", "other_leader", json={**body, "stage": "contacted", "date": "2026-11-01"}), 403, "forbidden")
    stages = [o["stage"] for o in service.get(f"/v1/outcomes?gap={gap}", "leader").json()["outcomes"] if o["enterprise_id"] == eid]
    assert stages == ["contacted", "negotiating", "lost"]


def test_too_many_filter_values_is_422_naming_the_field(service):
    gap = service.gap()
    enterprise = service.get(f"/v1/gaps/{gap}/prospects?top=1").json()["results"][0]["enterprise_id"]
    many = "&".join(f"qualification=q{i}" for i in range(21))
    for path in (f"/v1/gaps/{gap}/prospects?{many}", f"/v1/gaps/{gap}/prospects/{enterprise}/explanation?{many}"):
        error = assert_error(service.get(path), 422, "validation_error", "query.qualification")
        assert "at most 20" in error["fields"][0]["reason"]
    twenty = "&".join(f"qualification=q{i}" for i in range(20))
    assert service.get(f"/v1/gaps/{gap}/prospects?{twenty}").status_code == 200
    assert_error(service.get(f"/v1/gaps/{gap}/prospects?" + "&".join(f"country=c{i}" for i in range(51))),
                 422, "validation_error", "query.country")


def test_model_validation_error_in_a_handler_is_422(service):
    from pydantic import ValidationError

    from service import errors, schemas as api

    try:
        api.ProspectFilters(qualification=[f"q{i}" for i in range(21)])
    except ValidationError as exc:
        response = asyncio.run(errors.on_model_validation_error(_request(), exc))
    assert response.status_code == 422
    body = json.loads(response.body)
    assert body["error"]["code"] == "validation_error" and body["error"]["fields"][0]["field"] == "qualification"


def _request():
    from starlette.requests import Request

    return Request({"type": "http", "method": "GET", "path": "/", "headers": [], "state": {"request_id": "r1"}})


def test_security_headers_on_the_review_page_and_api(service):
    for path in ("/ui", "/ui/static/app.js", "/ui/static/app.css", "/health"):
        response = service.client.get(path)
        assert response.status_code == 200, path
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp, path
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert service.client.head("/ui").status_code == 200
    assert service.client.head("/ui/static/app.js").status_code == 200
    assert service.get(f"/v1/gaps/{service.gap()}/prospects?top=1").headers["x-frame-options"] == "DENY"
    docs = service.client.get("/docs")
    assert docs.status_code == 200 and "frame-ancestors 'none'" in docs.headers["content-security-policy"]
    page = service.client.get("/ui").text
    assert "<script>" not in page and " style=" not in page  # the strict policy needs no inline code
