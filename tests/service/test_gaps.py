"""Gaps managed in the service (``/v1/chains/{id}/gaps``): chain leaders and admins declare, edit,
close and reopen gaps; every change is audited; a new gap is listed and ranked at once — on SQLite
and PostgreSQL.

The service database is shared by the session: what a test closes it reopens, and what it declares
it gives a low priority (the first gap of a chain's list stays a missing segment)."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from matcher import schemas as S
from matcher.store import repo
from matcher.store.models import AuditEntry, Gap
from tests.service.conftest import AI, other_chain, role_keys
from tests.service.test_api import assert_error

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def keys(service) -> dict:
    return role_keys(service, "gaps")


def call(service, keys, method, path, who, headers=None, **kwargs):
    return service.client.request(method, path, headers={"Authorization": f"Bearer {keys[who]}", **(headers or {})}, **kwargs)


def listed(service, keys, chain=AI) -> dict:
    return {g["gap_id"]: g for g in call(service, keys, "GET", f"/v1/gaps?chain={chain}", "staff").json()["gaps"]}


def chain_gaps(service, keys, chain=AI, who="staff") -> dict:
    response = call(service, keys, "GET", f"/v1/chains/{chain}/gaps", who)
    assert response.status_code == 200, response.text
    return response.json()


def declare(service, keys, body: dict, chain=AI, who="leader") -> dict:
    response = call(service, keys, "POST", f"/v1/chains/{chain}/gaps", who, json=body)
    assert response.status_code == 201, response.text
    return response.json()["gap"]


def audit_rows(service, gap_id: str) -> list[AuditEntry]:
    with service.store.read() as s:
        return list(s.scalars(sa.select(AuditEntry).where(AuditEntry.target == f"gap {gap_id}").order_by(AuditEntry.id)))


def writes(service) -> tuple[int, int]:
    """(gap rows, audit rows): what a refused request must leave as it was."""
    with service.store.read() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(Gap)), s.scalar(sa.select(sa.func.count()).select_from(AuditEntry))


def outside_firm(service) -> dict:
    """An outside, operating firm with a long description (its own words are a need it fits)."""
    c = service.app.state.svc.holder.current.catalog
    firms = c.enterprises[~c.enterprises[S.IS_LOCAL].astype(bool) & ~c.enterprises[S.STATUS_CLASS].isin(S.NOT_PROSPECTS)]
    firms = firms[firms[S.DESCRIPTION].fillna("").str.len() > 120]
    return firms.iloc[len(firms) // 2].to_dict()


def test_a_free_text_gap_declared_by_the_chain_leader_is_listed_and_ranked_at_once(service, keys):
    firm = outside_firm(service)
    need = firm[S.DESCRIPTION][:400]
    gap = declare(service, keys, {"text": need, "priority": "low", "note": "raised at the leaders' meeting"})

    assert gap["gap_id"].startswith(f"{AI}.") and gap["origin"] == "service" and gap["status"] == "open"
    assert gap["segment_id"] is None and gap["text"] == need.strip() and gap["kind"] == "declared"
    assert gap["severity"] == 0.3 and gap["priority"] == "low" and gap["note"] == "raised at the leaders' meeting"
    assert "gaps AI leader" in gap["created_by"] and gap["revision"] == 1
    assert gap["gap_id"] in listed(service, keys)
    # Ranked without a rebuild: the firm whose own words the need is comes out on top.
    page = call(service, keys, "GET", f"/v1/gaps/{gap['gap_id']}/prospects?top=5", "staff")
    assert page.status_code == 200, page.text
    assert page.json()["query"]["gap_id"] == gap["gap_id"] and page.json()["query"]["text"] == need.strip()
    assert firm[S.ENTERPRISE_ID] in [r["enterprise_id"] for r in page.json()["results"]][:3]
    explanation = call(service, keys, "GET", f"/v1/gaps/{gap['gap_id']}/prospects/{firm[S.ENTERPRISE_ID]}/explanation", "staff")
    assert explanation.status_code == 200, explanation.text
    why_not = call(service, keys, "GET", f"/v1/gaps/{gap['gap_id']}/why-not/{firm[S.ENTERPRISE_ID]}", "staff")
    assert why_not.status_code == 200, why_not.text
    shortlist = call(service, keys, "POST", "/v1/shortlists", "leader", json={"gap_id": gap["gap_id"], "top": 3})
    assert shortlist.status_code == 201, shortlist.text
    assert shortlist.json()["gap"]["gap_id"] == gap["gap_id"]
    # Audited: who, what, before and after.
    (entry,) = audit_rows(service, gap["gap_id"])
    assert entry.action == "gap.declare" and entry.role == "chain_leader" and entry.detail["before"] is None
    assert entry.detail["after"]["text"] == need.strip() and entry.detail["after"]["priority"] == "low"


def test_two_needs_with_the_same_words_get_distinct_readable_ids(service, keys):
    first = declare(service, keys, {"text": "Cold-chain logistics for GPU clusters", "priority": "low"}, who="admin")
    second = declare(service, keys, {"text": "Cold chain logistics for GPU clusters!", "priority": "low"}, who="admin")

    assert first["gap_id"] == f"{AI}.cold-chain-logistics-for-gpu-clusters"
    assert second["gap_id"] == f"{AI}.cold-chain-logistics-for-gpu-clusters-2"


def test_a_segment_gap_on_a_strong_segment_is_ranked_on_the_segment(service, keys):
    maps = [call(service, keys, "GET", f"/v1/chains/{c}/map", "staff").json()
            for c in [c["chain_id"] for c in call(service, keys, "GET", "/v1/chains", "staff").json()["chains"]]]
    strong = [(m["chain_id"], s["segment_id"]) for m in maps for s in m["segments"] if s["status"] == "strong" and not s["gaps"]]
    if not strong:
        pytest.skip("the sample has no strong segment without a gap")
    chain, segment = strong[0]

    gap = declare(service, keys, {"segment_id": segment, "priority": "medium"}, chain=chain, who="admin")

    assert gap["gap_id"] == f"{chain}.{segment}" and gap["kind"] == "declared" and gap["severity"] == 0.6
    on_map = next(s for s in call(service, keys, "GET", f"/v1/chains/{chain}/map", "staff").json()["segments"]
                  if s["segment_id"] == segment)
    assert [g["gap_id"] for g in on_map["gaps"]] == [gap["gap_id"]]
    page = call(service, keys, "GET", f"/v1/gaps/{gap['gap_id']}/prospects?top=3", "staff").json()
    assert page["query"]["segment_id"] == segment and page["total"] > 0
    # Declared twice: 409 with the current state. Closed, it leaves the map.
    again = call(service, keys, "POST", f"/v1/chains/{chain}/gaps", "admin", json={"segment_id": segment})
    assert assert_error(again, 409, "conflict")["current"]["gap_id"] == gap["gap_id"]
    assert call(service, keys, "POST", f"/v1/chains/{chain}/gaps/{gap['gap_id']}/close", "admin").status_code == 200
    on_map = next(s for s in call(service, keys, "GET", f"/v1/chains/{chain}/map", "staff").json()["segments"]
                  if s["segment_id"] == segment)
    assert on_map["gaps"] == []


def test_closing_and_reopening_a_chain_map_gap(service, keys):
    before = listed(service, keys)
    gap_id = [g for g in before.values() if g["kind"] == "missing"][-1]["gap_id"]  # not the list's first
    overview = call(service, keys, "GET", "/v1/overview", "admin").json()
    open_before = next(r for r in overview["chains"] if r["chain_id"] == AI)["open_gaps"]["total"]

    closed = call(service, keys, "POST", f"/v1/chains/{AI}/gaps/{gap_id}/close", "leader")
    try:
        assert closed.status_code == 200, closed.text
        assert closed.json()["gap"]["status"] == "closed" and closed.json()["gap"]["closed_at"]
        assert gap_id not in listed(service, keys)
        overview = call(service, keys, "GET", "/v1/overview", "admin").json()
        assert next(r for r in overview["chains"] if r["chain_id"] == AI)["open_gaps"]["total"] == open_before - 1
        segment = before[gap_id]["segment_id"]
        on_map = next(s for s in call(service, keys, "GET", f"/v1/chains/{AI}/map", "staff").json()["segments"]
                      if s["segment_id"] == segment)
        assert gap_id not in [g["gap_id"] for g in on_map["gaps"]]
        states = {g["gap_id"]: g["status"] for g in chain_gaps(service, keys)["gaps"]}
        assert states[gap_id] == "closed"
        # Closing a closed gap: 409 with its state, nothing written.
        counts = writes(service)
        error = assert_error(call(service, keys, "POST", f"/v1/chains/{AI}/gaps/{gap_id}/close", "leader"), 409, "conflict")
        assert error["current"]["status"] == "closed" and error["current"]["gap_id"] == gap_id
        assert writes(service) == counts
    finally:
        reopened = call(service, keys, "POST", f"/v1/chains/{AI}/gaps/{gap_id}/reopen", "leader")
    assert reopened.status_code == 200, reopened.text
    assert reopened.json()["gap"]["status"] == "open" and reopened.json()["gap"]["severity"] == before[gap_id]["severity"]
    assert gap_id in listed(service, keys)
    error = assert_error(call(service, keys, "POST", f"/v1/chains/{AI}/gaps/{gap_id}/reopen", "leader"), 409, "conflict")
    assert error["current"]["status"] == "open"
    close, reopen = audit_rows(service, gap_id)[-2:]
    assert (close.action, reopen.action) == ("gap.close", "gap.reopen")
    assert close.detail["before"]["status"] == "open" and close.detail["after"]["status"] == "closed"
    assert close.detail["before"]["origin"] == "map" and reopen.detail["after"]["status"] == "open"


def test_editing_priority_note_and_text(service, keys):
    gap = declare(service, keys, {"text": "Edge inference boxes for retail stores", "priority": "low"})
    path = f"/v1/chains/{AI}/gaps/{gap['gap_id']}"

    edited = call(service, keys, "PATCH", path, "leader", json={"priority": "medium", "note": "budget approved",
                                                                   "text": "Edge AI inference boxes for retail chains"})

    assert edited.status_code == 200, edited.text
    after = edited.json()["gap"]
    assert (after["priority"], after["severity"], after["note"]) == ("medium", 0.6, "budget approved")
    assert after["text"] == "Edge AI inference boxes for retail chains" and after["revision"] == 2
    page = call(service, keys, "GET", f"/v1/gaps/{gap['gap_id']}/prospects?top=3", "staff").json()
    assert page["query"]["text"] == "Edge AI inference boxes for retail chains"
    entry = audit_rows(service, gap["gap_id"])[-1]
    assert entry.action == "gap.edit" and entry.detail["before"]["priority"] == "low" and entry.detail["after"]["priority"] == "medium"
    # A chain map gap's note is stored as a row overriding it; its severity stays the analysis's.
    map_gap = [g for g in listed(service, keys).values() if g["kind"] == "weak"][0]
    noted = call(service, keys, "PATCH", f"/v1/chains/{AI}/gaps/{map_gap['gap_id']}", "admin", json={"note": "two firms in talks"})
    assert noted.status_code == 200, noted.text
    assert noted.json()["gap"]["note"] == "two firms in talks" and noted.json()["gap"]["severity"] == map_gap["severity"]
    assert listed(service, keys)[map_gap["gap_id"]]["note"] == "two firms in talks"
    # A segment gap's text is its segment's.
    assert_error(call(service, keys, "PATCH", f"/v1/chains/{AI}/gaps/{map_gap['gap_id']}", "admin", json={"text": "other"}),
                 422, "validation_error", "body.text")


def test_who_may_manage_a_chains_gaps(service, keys):
    body = {"text": "Quantum-safe cryptography vendors", "priority": "low"}
    counts = writes(service)
    for who in ("staff", "other_leader", "general"):
        assert_error(call(service, keys, "POST", f"/v1/chains/{AI}/gaps", who, json=body), 403, "forbidden")
    gap_id = next(iter(listed(service, keys)))
    for who in ("staff", "other_leader", "general"):
        assert_error(call(service, keys, "POST", f"/v1/chains/{AI}/gaps/{gap_id}/close", who), 403, "forbidden")
        assert_error(call(service, keys, "PATCH", f"/v1/chains/{AI}/gaps/{gap_id}", who, json={"note": "x"}), 403, "forbidden")
    assert writes(service) == counts
    assert chain_gaps(service, keys, who="staff")["can_manage"] is False
    assert chain_gaps(service, keys, who="other_leader")["can_manage"] is False
    assert chain_gaps(service, keys, who="leader")["can_manage"] is True
    assert chain_gaps(service, keys, who="general_ai")["can_manage"] is True
    assert declare(service, keys, body, who="general_ai")["origin"] == "service"


def test_bad_gap_input_is_422_naming_the_field_and_writes_nothing(service, keys):
    counts = writes(service)
    path = f"/v1/chains/{AI}/gaps"
    cases = [
        ({"segment_id": "no-such-segment"}, "body.segment_id"),
        ({"text": "   "}, "body.text"),
        ({"text": "x" * (repo.GAP_TEXT_MAX + 1)}, "body.text"),
        ({"text": "Robot arms", "note": "n" * (repo.GAP_NOTE_MAX + 1)}, "body.note"),
        ({"text": "Robot arms", "priority": "urgent"}, "body.priority"),
        ({}, "body.segment_id"),
        ({"text": "Robot arms", "segment_id": "ai-chips"}, "body.segment_id"),
        ({"text": "Robot arms", "colour": "red"}, "body.colour"),
    ]
    for body, field in cases:
        assert_error(call(service, keys, "POST", path, "leader", json=body), 422, "validation_error", field)
    gap_id = next(iter(listed(service, keys)))
    assert_error(call(service, keys, "PATCH", f"{path}/{gap_id}", "leader", json={}), 422, "validation_error", "body.priority")
    assert_error(call(service, keys, "PATCH", f"{path}/{gap_id}", "leader", json={"note": "n" * (repo.GAP_NOTE_MAX + 1)}),
                 422, "validation_error", "body.note")
    # Unknown chain, unknown gap, a gap of another chain: 404.
    assert_error(call(service, keys, "POST", "/v1/chains/no-such-chain/gaps", "admin", json={"text": "x"}), 404, "not_found")
    assert_error(call(service, keys, "PATCH", f"{path}/{AI}.no-such-gap", "admin", json={"note": "x"}), 404, "not_found")
    other_gap = next(iter(listed(service, keys, other_chain(service))))
    assert_error(call(service, keys, "POST", f"{path}/{other_gap}/close", "admin"), 404, "not_found")
    # A segment that is already an open gap of the map is edited, not declared again.
    missing = next(g for g in listed(service, keys).values() if g["kind"] == "missing")
    error = assert_error(call(service, keys, "POST", path, "leader", json={"segment_id": missing["segment_id"]}), 409, "conflict")
    assert error["current"]["gap_id"] == missing["gap_id"]
    assert writes(service) == counts


def test_a_gap_declared_elsewhere_reaches_this_worker_within_the_poll(service, keys):
    """Another worker (or 'matcher gaps declare') writes the database; this worker re-reads the gaps
    at most every ``service_gap_poll_s`` (1 s)."""
    row = repo.declare_gap(service.store, repo.CLI_ACTOR, AI, text="Satellite imagery analytics", priority="low",
                           taken=service.app.state.svc.holder.current.catalog.known_gap_ids())
    deadline = time.monotonic() + 10
    while row["gap_id"] not in listed(service, keys):
        assert time.monotonic() < deadline, "the declared gap never reached the service"
        time.sleep(0.2)
    assert call(service, keys, "GET", f"/v1/gaps/{row['gap_id']}/prospects?top=3", "staff").status_code == 200


def test_a_declaration_repeated_with_its_idempotency_key_declares_one_gap(service, keys):
    body = {"text": "Federated learning platforms for hospitals", "priority": "low"}
    path = f"/v1/chains/{AI}/gaps"
    first = call(service, keys, "POST", path, "leader", json=body, headers={"Idempotency-Key": "declare-fl-1"})
    again = call(service, keys, "POST", path, "leader", json=body, headers={"Idempotency-Key": "declare-fl-1"})

    assert first.status_code == again.status_code == 201, again.text
    assert first.json()["replayed"] is False and again.json()["replayed"] is True
    assert again.json()["gap"]["gap_id"] == first.json()["gap"]["gap_id"]
    assert len(audit_rows(service, first.json()["gap"]["gap_id"])) == 1
    # The key is the caller's: another key may use the same value; reused for another declaration: 422.
    other = call(service, keys, "POST", path, "admin", json=body, headers={"Idempotency-Key": "declare-fl-1"})
    assert other.status_code == 201 and other.json()["gap"]["gap_id"] != first.json()["gap"]["gap_id"]
    assert_error(call(service, keys, "POST", path, "leader", json={**body, "note": "changed"},
                      headers={"Idempotency-Key": "declare-fl-1"}), 422, "validation_error", "header.Idempotency-Key")


def test_concurrent_declarations_of_one_need_get_distinct_ids_and_one_audit_entry_each(service, keys):
    from concurrent.futures import ThreadPoolExecutor

    taken = service.app.state.svc.holder.current.catalog.known_gap_ids()
    actor = repo.Actor(key_id=None, prefix="race", role="admin", name="concurrent test")

    def declare_one(_):
        return repo.declare_gap(service.store, actor, AI, text="Silicon photonics foundries", priority="low", taken=taken)["gap_id"]

    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(declare_one, range(4)))

    assert len(set(ids)) == 4 and all(i.startswith(f"{AI}.silicon-photonics-foundries") for i in ids)
    assert all(len(audit_rows(service, i)) == 1 for i in ids)
