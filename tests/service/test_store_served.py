"""What the served-list log stores, on SQLite and PostgreSQL: a ranked list down to the deepest page
served (a request with new filter values adds a page's worth, not the whole list), the whole list
once it is shortlisted, and an empty list (nothing passes the filters) logged like any other —
without a traceback and without counting as a dropped record."""

from __future__ import annotations

import logging

from matcher.store import repo
from tests.service.conftest import AI


def test_a_served_list_is_stored_down_to_the_deepest_page_and_whole_once_shortlisted(service):
    gap = service.gap(AI)
    filters = "include_closed=true&founded_after=1001"  # values no other test asks for: a list of its own
    page = service.get(f"/v1/gaps/{gap}/prospects?top=5&{filters}", "staff").json()
    assert page["total"] > 12
    service.flush_log()
    stored = repo.get_ranked_list(service.store, page["list_version"])
    assert (stored["n_items"], stored["n_stored"]) == (page["total"], 5)
    assert [i["enterprise_id"] for i in stored["items"]] == [r["enterprise_id"] for r in page["results"]]

    deeper = service.get(f"/v1/gaps/{gap}/prospects?top=7&offset=5&{filters}", "staff").json()
    service.get(f"/v1/gaps/{gap}/prospects?top=3&{filters}", "staff")  # the top again: stores nothing new
    service.flush_log()
    stored = repo.get_ranked_list(service.store, page["list_version"])
    assert stored["n_stored"] == 12 and len(stored["items"]) == 12
    assert [i["enterprise_id"] for i in stored["items"][5:]] == [r["enterprise_id"] for r in deeper["results"]]
    assert repo.served_count(service.store, page["list_version"]) == 3

    shortlist = service.post("/v1/shortlists", "staff", json={
        "gap_id": gap, "top": 3, "filters": {"include_closed": True, "founded_after": 1001}}).json()
    assert shortlist["items"][0]["list_version"] == page["list_version"]
    stored = repo.get_ranked_list(service.store, page["list_version"])
    assert stored["n_stored"] == stored["n_items"] == page["total"] == len(stored["items"])


def test_an_empty_list_is_logged_without_a_traceback_or_a_dropped_record(service, caplog):
    writer = service.app.state.svc.writer
    service.flush_log()
    dropped, written = writer.dropped, writer.written
    caplog.set_level(logging.INFO)

    page = service.get(f"/v1/gaps/{service.gap(AI)}/prospects?top=20&min_employees=10000000", "staff")

    assert page.status_code == 200 and page.json()["total"] == 0 and page.json()["results"] == []
    writer.flush()  # the writer's own thread may have written it already: count, not flush's return
    assert writer.written == written + 1
    assert writer.dropped == dropped
    assert not [r for r in caplog.records if r.name.startswith("service") and r.levelno >= logging.WARNING]
    stored = repo.get_ranked_list(service.store, page.json()["list_version"])
    assert (stored["n_items"], stored["n_stored"], stored["items"]) == (0, 0, [])
    assert repo.served_count(service.store, page.json()["list_version"]) == 1
