"""The general chain leader (role ``general_leader``), the overview (`GET /v1/overview` and its
XLSX export) and chain leaders recording outcomes for their own chains — on SQLite and PostgreSQL.

The service database is shared by the session, so counts are compared before and after what a
test does, on the chain it works on."""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from matcher.store import repo
from matcher.store.models import Shortlist, ShortlistItem
from tests.service.conftest import AI, other_chain, role_keys
from tests.service.test_api import assert_error

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def keys(service) -> dict:
    return role_keys(service, "overview")


def call(service, keys, method, path, who, **kwargs):
    return service.client.request(method, path, headers={"Authorization": f"Bearer {keys[who]}"}, **kwargs)


def gap_of(service, keys, chain: str) -> str:
    return call(service, keys, "GET", f"/v1/gaps?chain={chain}", "staff").json()["gaps"][0]["gap_id"]


def new_shortlist(service, keys, chain=AI, top=3, title=None) -> dict:
    body = {"gap_id": gap_of(service, keys, chain), "top": top, **({"title": title} if title else {})}
    response = call(service, keys, "POST", "/v1/shortlists", "staff", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def fresh(service, keys, s: dict, n: int) -> list[dict]:
    """``n`` items of a shortlist whose firm has no approach recorded for the gap yet (the session
    shares the database, and a gap's top prospects are the same in every shortlist of it)."""
    items = [i for i in s["items"] if not call(service, keys, "GET", f"/v1/outcomes?gap={s['gap_id']}&enterprise={i['enterprise_id']}",
                                                "staff").json()["outcomes"]]
    assert len(items) >= n, "enough firms without a recorded approach"
    return items[:n]


def review(service, keys, s, item, who="leader", verdict="approve"):
    return call(service, keys, "POST", f"/v1/shortlists/{s['shortlist_id']}/items/{item['item_id']}/review", who,
                json={"verdict": verdict})


def outcome(service, keys, enterprise_id, gap_id, stage, when, who="leader", reason=None):
    body = {"enterprise_id": enterprise_id, "gap_id": gap_id, "stage": stage, "date": when.isoformat()}
    if reason:
        body["reason"] = reason
    return call(service, keys, "POST", "/v1/outcomes", who, json=body)


def overview(service, keys, who="general") -> dict:
    response = call(service, keys, "GET", "/v1/overview", who)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return response.json()


def row(body: dict, chain: str) -> dict:
    return next(r for r in body["chains"] if r["chain_id"] == chain)


def backdate(service, model, row_id: int, column: str, days: int) -> None:
    with service.store.write() as s:
        s.execute(sa.update(model).where(model.id == row_id).values({column: datetime.now(timezone.utc) - timedelta(days=days)}))


# --- the role -------------------------------------------------------------------------------

def test_general_leader_reads_every_chain_and_reviews_nothing(service, keys):
    me = call(service, keys, "GET", "/v1/me", "general").json()
    assert me["role"] == "general_leader" and me["chains"] == []
    assert "overview:read" in me["permissions"] and not {"shortlists:review", "shortlists:create", "outcomes:write",
                                                         "exclusions:lift", "admin"} & set(me["permissions"])
    s = new_shortlist(service, keys, chain=other_chain(service))
    sid, item = s["shortlist_id"], s["items"][0]
    # Reads every chain's shortlists, exports them ...
    assert call(service, keys, "GET", f"/v1/shortlists/{sid}", "general").status_code == 200
    assert call(service, keys, "GET", f"/v1/shortlists/{sid}/export?format=xlsx", "general").status_code == 200
    listed = call(service, keys, "GET", f"/v1/shortlists?chain={s['chain_id']}", "general").json()
    assert sid in [x["shortlist_id"] for x in listed["shortlists"]]
    # ... and writes nothing: no review, shortlist, outcome, exclusion lift or admin route.
    assert_error(review(service, keys, s, item, "general"), 403, "forbidden")
    assert_error(call(service, keys, "POST", "/v1/shortlists", "general", json={"gap_id": s["gap_id"], "top": 2}), 403, "forbidden")
    assert_error(outcome(service, keys, item["enterprise_id"], s["gap_id"], "contacted", date.today(), "general"), 403, "forbidden")
    assert_error(call(service, keys, "DELETE", f"/v1/gaps/{s['gap_id']}/exclusions/{item['enterprise_id']}", "general"),
                 403, "forbidden")
    assert_error(call(service, keys, "GET", "/v1/admin/audit", "general"), 403, "forbidden")
    stored = call(service, keys, "GET", f"/v1/shortlists/{sid}", "admin").json()
    assert stored["counts"]["pending"] == len(s["items"]) and not any(i["reviews"] for i in stored["items"])


def test_general_leader_given_a_chain_reviews_that_chain_only(service, keys):
    me = call(service, keys, "GET", "/v1/me", "general_ai").json()
    assert me["chains"] == [AI] and "shortlists:review" in me["permissions"]
    mine, theirs = new_shortlist(service, keys), new_shortlist(service, keys, chain=other_chain(service))
    assert review(service, keys, mine, mine["items"][0], "general_ai").status_code == 200
    # Another chain's shortlist is readable (so 403, not 404), and not reviewable.
    assert call(service, keys, "GET", f"/v1/shortlists/{theirs['shortlist_id']}", "general_ai").status_code == 200
    error = assert_error(review(service, keys, theirs, theirs["items"][0], "general_ai"), 403, "forbidden")
    assert AI in error["message"]
    assert_error(call(service, keys, "POST", "/v1/shortlists", "general_ai", json={"gap_id": theirs["gap_id"], "top": 2}),
                 403, "forbidden")


def test_keys_create_checks_roles_and_chains(service):
    key, record = repo.create_key(service.store, "general_leader", [AI], known_chains={AI})
    assert record["role"] == "general_leader" and record["chains"] == [AI]
    with pytest.raises(repo.InvalidInputError, match="chain"):
        repo.create_key(service.store, "staff", [AI])
    with pytest.raises(repo.InvalidInputError, match="role"):
        repo.create_key(service.store, "district_director")


# --- outcomes by chain leaders --------------------------------------------------------------

def test_chain_leader_records_outcomes_for_own_chains(service, keys):
    s = new_shortlist(service, keys, top=10)
    item = fresh(service, keys, s, 1)[0]
    created = outcome(service, keys, item["enterprise_id"], s["gap_id"], "contacted", date.today())
    assert created.status_code == 201, created.text
    assert created.json()["recorded_by"].endswith("(overview AI leader)")
    # Another chain's gap (readable by everyone): 403, and nothing is written.
    other_gap = gap_of(service, keys, other_chain(service))
    before = len(call(service, keys, "GET", f"/v1/outcomes?gap={other_gap}", "staff").json()["outcomes"])
    assert_error(outcome(service, keys, item["enterprise_id"], other_gap, "contacted", date.today()), 403, "forbidden")
    assert_error(outcome(service, keys, item["enterprise_id"], s["gap_id"], "contacted", date.today(), "other_leader"),
                 403, "forbidden")
    assert len(call(service, keys, "GET", f"/v1/outcomes?gap={other_gap}", "staff").json()["outcomes"]) == before
    # An unknown gap stays a 422 on the field; staff still record any chain's outcomes.
    assert_error(outcome(service, keys, item["enterprise_id"], "no-such.gap", "contacted", date.today()), 422,
                 "validation_error", "body.gap_id")
    assert outcome(service, keys, item["enterprise_id"], other_gap, "contacted", date.today(), "staff").status_code == 201


# --- the overview ---------------------------------------------------------------------------

def test_overview_rows_gaps_and_district(service, keys):
    body = overview(service, keys)
    chains = [c["chain_id"] for c in call(service, keys, "GET", "/v1/chains", "staff").json()["chains"]]
    assert [r["chain_id"] for r in body["chains"]] == chains
    gaps = call(service, keys, "GET", "/v1/gaps", "staff").json()["gaps"]
    for r in body["chains"]:
        severities = [g["severity"] for g in gaps if g["chain_id"] == r["chain_id"]]
        assert r["open_gaps"] == {"high": sum(s >= 0.8 for s in severities), "medium": sum(0.5 <= s < 0.8 for s in severities),
                                  "low": sum(s < 0.5 for s in severities), "total": len(severities)}
        f = r["funnel"]
        assert f["contacted"] >= f["visited"] >= f["negotiating"] >= f["signed"] >= f["landed"]
    district = body["district"]
    assert district["chain_id"] is None and district["open_gaps"]["total"] == len(gaps)
    for field in ("shortlists", "items", "funnel", "current"):
        for k, v in district[field].items():
            assert v == sum(r[field][k] for r in body["chains"]), (field, k)
    for field in ("declined", "landed_this_quarter", "stale_approved", "stale_shortlists"):
        assert district[field] == sum(r[field] for r in body["chains"])
    assert body["stale_approved_days"] == 30 and body["stale_shortlist_days"] == 14
    assert overview(service, keys, "admin")["chains"] == body["chains"]
    assert [r["chain_id"] for r in overview(service, keys, "staff")["chains"]] == chains


def test_overview_counts_reviews_and_the_funnel(service, keys):
    before = row(overview(service, keys), AI)
    s = new_shortlist(service, keys, top=12)
    gap_id = s["gap_id"]
    a, b, c, d = (i["enterprise_id"] for i in fresh(service, keys, s, 4))
    assert review(service, keys, s, s["items"][0]).status_code == 200
    assert review(service, keys, s, s["items"][1], verdict="defer").status_code == 200
    today = date.today()
    last_quarter = repo.quarter_start(today) - timedelta(days=20)
    for enterprise_id, stages in ((a, [("contacted", today), ("visited", today), ("landed", today)]),
                                  (b, [("contacted", today), ("declined", today)]),
                                  (c, [("contacted", last_quarter), ("negotiating", last_quarter), ("landed", last_quarter)]),
                                  (d, [("contacted", today), ("signed", today)])):
        for stage, when in stages:
            response = outcome(service, keys, enterprise_id, gap_id, stage, when, reason="chose another district")
            assert response.status_code == 201, response.text
    after = row(overview(service, keys), AI)

    def delta(field):
        return {k: after[field][k] - before[field][k] for k in after[field]}

    assert delta("shortlists") == {"open": 0, "in_review": 1, "reviewed": 0}
    assert delta("items") == {"pending": 10, "approved": 1, "rejected": 0, "deferred": 1}
    # a: contacted→visited→landed; b: declined; c: →negotiating→landed last quarter; d: →signed.
    assert delta("funnel") == {"contacted": 4, "visited": 3, "negotiating": 3, "signed": 3, "landed": 2}
    assert delta("current") == {"contacted": 0, "visited": 0, "negotiating": 0, "signed": 1, "landed": 2, "declined": 1, "lost": 0}
    assert after["declined"] - before["declined"] == 1
    assert after["landed_this_quarter"] - before["landed_this_quarter"] == 1
    other = other_chain(service)
    assert row(overview(service, keys), other)["funnel"] == row(overview(service, keys, "admin"), other)["funnel"]


def test_overview_stale_work(service, keys):
    s = new_shortlist(service, keys, top=12, title="=HYPERLINK(\"http://x\")")
    first, second = fresh(service, keys, s, 2)
    assert review(service, keys, s, first).status_code == 200
    before = row(overview(service, keys), AI)
    # Approved 31 days ago and nobody has contacted the firm: stale.
    backdate(service, ShortlistItem, first["item_id"], "reviewed_at", 31)
    body = overview(service, keys)
    assert row(body, AI)["stale_approved"] == before["stale_approved"] + 1
    stale = [r for r in body["stale_approved"] if r["shortlist_id"] == s["shortlist_id"]]
    assert [(r["enterprise_id"], r["gap_id"], r["days"]) for r in stale] == [(first["enterprise_id"], s["gap_id"], 31)]
    # No review for 15 days with prospects still pending: a stale shortlist.
    backdate(service, Shortlist, s["shortlist_id"], "updated_at", 15)
    body = overview(service, keys)
    assert row(body, AI)["stale_shortlists"] == before["stale_shortlists"] + 1
    idle = next(r for r in body["stale_shortlists"] if r["shortlist_id"] == s["shortlist_id"])
    assert idle["pending"] == 11 and idle["days"] == 15

    # The XLSX for the meeting: one row per chain, then the district; text stays text.
    response = call(service, keys, "GET", "/v1/overview/export", "general")
    assert response.status_code == 200 and response.content[:2] == b"PK"
    assert response.headers["cache-control"] == "no-store"
    book = load_workbook(io.BytesIO(response.content))
    sheet = list(book["overview"].iter_rows(values_only=True))
    header, cells = sheet[0], {r[0]: dict(zip(sheet[0], r)) for r in sheet[1:]}
    assert header[0] == "chain_id" and len(sheet) == 1 + len(body["chains"]) + 1
    ai = row(body, AI)
    assert cells[AI]["stale_approved"] == ai["stale_approved"] and cells[AI]["gaps_open"] == ai["open_gaps"]["total"]
    assert cells[AI]["landed"] == ai["funnel"]["landed"]
    titles = [c for c in book["stale shortlists"]["B"] if c.value == s["title"]]
    assert titles and titles[0].data_type == "s"  # a formula in a title is written as a string

    # Contacting the firm and reviewing the shortlist clear both.
    assert outcome(service, keys, first["enterprise_id"], s["gap_id"], "contacted", date.today()).status_code == 201
    assert review(service, keys, s, second, verdict="defer").status_code == 200
    after = row(overview(service, keys), AI)
    assert after["stale_approved"] == before["stale_approved"] and after["stale_shortlists"] == before["stale_shortlists"]


def test_chain_leader_sees_own_rows_only(service, keys):
    s = new_shortlist(service, keys, top=2)
    backdate(service, Shortlist, s["shortlist_id"], "updated_at", 20)
    mine = overview(service, keys, "leader")
    assert [r["chain_id"] for r in mine["chains"]] == [AI] and mine["district"] is None
    assert row(mine, AI) == row(overview(service, keys), AI)
    assert s["shortlist_id"] in [r["shortlist_id"] for r in mine["stale_shortlists"]]
    theirs = overview(service, keys, "other_leader")
    assert [r["chain_id"] for r in theirs["chains"]] == [other_chain(service)] and theirs["district"] is None
    assert all(r["chain_id"] != AI for r in theirs["stale_shortlists"] + theirs["stale_approved"])
    book = load_workbook(io.BytesIO(call(service, keys, "GET", "/v1/overview/export", "other_leader").content))
    assert [r[0] for r in book["overview"].iter_rows(min_row=2, values_only=True)] == [other_chain(service)]
    assert all(r[2] != AI for r in book["stale shortlists"].iter_rows(min_row=2, values_only=True))
    assert_error(service.client.get("/v1/overview"), 401, "unauthorized")


def test_quarter_start():
    assert repo.quarter_start(date(2025, 2, 14)) == date(2025, 1, 1)
    assert repo.quarter_start(date(2025, 6, 30)) == date(2025, 4, 1)
    assert repo.quarter_start(date(2025, 12, 1)) == date(2025, 10, 1)
