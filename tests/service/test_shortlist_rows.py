"""What a shortlist row tells its reader (issue 13 and 12): each prospect's current outreach stage
(the latest outcome recorded for that enterprise and the shortlist's gap, read with the items in
one query), and whether the calling key may export the shortlist (staff: those their key made)."""

from __future__ import annotations

import contextlib

import pytest
import sqlalchemy as sa

from matcher.store import repo
from tests.service.conftest import AI

pytestmark = pytest.mark.e2e


def make_shortlist(service, who: str, top: int) -> dict:
    response = service.post("/v1/shortlists", who, json={"gap_id": service.gap(), "top": top})
    assert response.status_code == 201, response.text
    return response.json()


def record(service, enterprise_id: str, gap_id: str, stage: str, date: str, who: str = "staff") -> None:
    response = service.post("/v1/outcomes", who, json={"enterprise_id": enterprise_id, "gap_id": gap_id, "stage": stage, "date": date})
    assert response.status_code == 201, response.text


@contextlib.contextmanager
def counted(store):
    """The SQL statements the store's read engine runs meanwhile."""
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)


def untouched(service, s: dict) -> list[str]:
    """The shortlist's enterprises with no outcome recorded for its gap yet (the service is shared)."""
    recorded = {o["enterprise_id"] for o in service.get(f"/v1/outcomes?gap={s['gap_id']}").json()["outcomes"]}
    return [i["enterprise_id"] for i in s["items"] if i["enterprise_id"] not in recorded]


def test_a_prospect_s_outreach_stage_shows_on_its_row(service):
    s = make_shortlist(service, "staff", 30)
    gap = s["gap_id"]
    first, second, third = untouched(service, s)[:3]
    assert all(i["outreach_stage"] is None for i in s["items"] if i["enterprise_id"] in (first, second, third))
    other_gap = service.other_chain_gap()
    record(service, first, gap, "contacted", "2025-03-01")
    record(service, first, gap, "visited", "2025-03-20", who="leader")  # chain leaders record their chain's outcomes
    record(service, second, other_gap, "negotiating", "2025-03-02")  # another gap's approach is not this row's

    detail = service.get(f"/v1/shortlists/{s['shortlist_id']}", "leader").json()
    stages = {i["enterprise_id"]: (i["outreach_stage"], i["outreach_date"]) for i in detail["items"]}
    assert stages[first] == ("visited", "2025-03-20")
    assert stages[second] == (None, None) and stages[third] == (None, None)

    # A review answers with the item as the shortlist shows it, stage included.
    item = next(i for i in detail["items"] if i["enterprise_id"] == first)
    reviewed = service.post(f"/v1/shortlists/{s['shortlist_id']}/items/{item['item_id']}/review", "leader",
                            json={"verdict": "approve"})
    assert reviewed.status_code == 200, reviewed.text
    assert reviewed.json()["item"]["outreach_stage"] == "visited"


def test_outreach_stages_are_read_with_the_items_not_one_query_each(service):
    small, large = make_shortlist(service, "staff", 2), make_shortlist(service, "staff", 12)
    for enterprise_id in untouched(service, large)[:6]:
        record(service, enterprise_id, large["gap_id"], "contacted", "2025-04-01")
    assert sum(i["outreach_stage"] is not None for i in service.get(f"/v1/shortlists/{large['shortlist_id']}").json()["items"]) >= 6
    queries = []
    for s in (small, large):
        with counted(service.store) as statements:
            repo.get_shortlist(service.store, s["shortlist_id"])
        queries.append(len(statements))
    assert queries[0] == queries[1], queries  # 2 or 12 items: the same statements


def test_can_export_says_what_the_export_route_allows(service):
    mine = make_shortlist(service, "staff", 2)
    assert mine["can_export"] is True
    colleague = repo.create_key(service.store, "staff", name="a colleague")[0]
    service.keys["colleague"] = colleague
    sid = mine["shortlist_id"]

    assert service.get(f"/v1/shortlists/{sid}", "colleague").json()["can_export"] is False
    assert service.get(f"/v1/shortlists/{sid}/export", "colleague").status_code == 403
    assert service.get(f"/v1/shortlists/{sid}", "leader").json()["can_export"] is True
    assert service.get(f"/v1/shortlists/{sid}/export", "leader").status_code == 200
    listed = {s["shortlist_id"]: s["can_export"] for s in service.get(f"/v1/shortlists?chain={AI}", "colleague").json()["shortlists"]}
    assert listed[sid] is False
    listed = {s["shortlist_id"]: s["can_export"] for s in service.get(f"/v1/shortlists?chain={AI}", "staff").json()["shortlists"]}
    assert listed[sid] is True
