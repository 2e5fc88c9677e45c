"""``Idempotency-Key`` on reviews, on SQLite and PostgreSQL: a key belongs to the API key that sent
it (another caller may use the same value and gets its own review), and reusing it with a different
request is 422 — the new verdict is refused in the open, never dropped behind a replay."""

from __future__ import annotations

import uuid

from tests.service.conftest import AI


def review(service, shortlist, item, who, key, **body):
    return service.post(f"/v1/shortlists/{shortlist['shortlist_id']}/items/{item['item_id']}/review", who, json=body,
                        headers={"Idempotency-Key": key})


def reviews_of(service, shortlist, item) -> list[dict]:
    detail = service.get(f"/v1/shortlists/{shortlist['shortlist_id']}", "leader").json()
    return next(i for i in detail["items"] if i["item_id"] == item["item_id"])["reviews"]


def test_idempotency_keys_are_per_caller_and_a_different_request_is_422(service):
    shortlist = service.post("/v1/shortlists", "leader", json={"gap_id": service.gap(AI), "top": 3,
                                                               "title": "idempotency"}).json()
    first_item, second_item = shortlist["items"][:2]
    key = f"retry-{uuid.uuid4().hex}"

    first = review(service, shortlist, first_item, "leader", key, verdict="approve", comment="strong fit")
    again = review(service, shortlist, first_item, "leader", key, verdict="approve", comment="strong fit")
    assert first.status_code == again.status_code == 200
    assert not first.json()["replayed"] and again.json()["replayed"]
    assert again.json()["review"]["review_id"] == first.json()["review"]["review_id"]

    changed = review(service, shortlist, first_item, "leader", key, verdict="reject", reason_code="risk")
    assert changed.status_code == 422, changed.text
    error = changed.json()["error"]
    assert error["code"] == "validation_error" and [f["field"] for f in error["fields"]] == ["header.Idempotency-Key"]
    assert "different request" in error["message"]
    elsewhere = review(service, shortlist, second_item, "leader", key, verdict="approve", comment="strong fit")
    assert elsewhere.status_code == 422 and f"item {first_item['item_id']}" in elsewhere.json()["error"]["message"]
    assert [r["verdict"] for r in reviews_of(service, shortlist, first_item)] == ["approve"]
    assert reviews_of(service, shortlist, second_item) == []

    # Another caller's request with the same key is its own: recorded, not the leader's replayed.
    admin = review(service, shortlist, first_item, "admin", key, verdict="defer")
    assert admin.status_code == 200 and not admin.json()["replayed"]
    assert admin.json()["review"]["verdict"] == "defer" and admin.json()["review"]["reviewer"].endswith("(admin)")
    assert review(service, shortlist, first_item, "admin", key, verdict="defer").json()["replayed"]
    assert [r["verdict"] for r in reviews_of(service, shortlist, first_item)] == ["approve", "defer"]
