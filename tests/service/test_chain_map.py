"""The chain structure map (产业链图谱) routes, on SQLite and on PostgreSQL: a chain's segments,
supplies links, strength, status and open gaps as the loaded version has them; a segment's local
firms and its gaps' shortlists with their review progress."""

from __future__ import annotations

import pytest

from matcher.store import repo
from tests.service.conftest import AI
from tests.service.test_api import assert_error

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def keys(service) -> dict:
    """Keys of this module's own (quotas count per key)."""
    catalog = service.app.state.svc.holder.current.catalog
    other = next(c.id for c in catalog.chain_map.chains if c.id != AI)
    return {
        "staff": repo.create_key(service.store, "staff", name="map staff")[0],
        "leader": repo.create_key(service.store, "chain_leader", [AI], name="map AI leader")[0],
        "other_leader": repo.create_key(service.store, "chain_leader", [other], name="map other leader")[0],
        "general": repo.create_key(service.store, "general_leader", name="map general leader")[0],
    }


def get(service, keys, path, who="staff"):
    return service.client.get(path, headers={"Authorization": f"Bearer {keys[who]}"})


def segment_gap(service, keys) -> dict:
    """An open gap of the AI chain that names a segment."""
    return next(g for g in get(service, keys, f"/v1/gaps?chain={AI}").json()["gaps"] if g["segment_id"])


def test_map_matches_the_chain_and_its_gaps(service, keys):
    body = get(service, keys, f"/v1/chains/{AI}/map").json()
    chain = get(service, keys, f"/v1/chains/{AI}").json()
    gaps = get(service, keys, f"/v1/gaps?chain={AI}").json()["gaps"]
    assert body["stages"] == ["upstream", "midstream", "downstream"]
    assert body["version"] == chain["version"] and body["name_zh"] == chain["name_zh"]
    assert [s["segment_id"] for s in body["segments"]] == [s["segment_id"] for s in chain["segments"]]
    for segment, listed in zip(body["segments"], chain["segments"]):
        assert (segment["strength"], segment["status"], segment["stage"]) == (listed["strength"], listed["status"], listed["stage"])
        assert segment["status"] in ("strong", "weak", "missing")
        assert (segment["status"] == "missing") == (segment["strength"] == 0)
        if segment["status"] == "weak":
            assert segment["strength"] < segment["weak_below"]
        # Open gaps of the segment, most severe first, exactly those of the gap list.
        assert [g["gap_id"] for g in segment["gaps"]] == [g["gap_id"] for g in gaps if g["segment_id"] == segment["segment_id"]]
        if segment["status"] != "strong":
            assert segment["gaps"], f"a {segment['status']} segment is a gap"
    # One link per supplies relation of the chain map the version was built with.
    chain_map = service.app.state.svc.holder.current.catalog.chain_map.chain(AI)
    expected = sorted((s.id, t) for s in chain_map.segments for t in s.supplies)
    assert sorted((link["source"], link["target"]) for link in body["links"]) == expected and expected
    ids = {s["segment_id"] for s in body["segments"]}
    assert all(link["source"] in ids and link["target"] in ids for link in body["links"])
    assert [g["gap_id"] for g in body["other_gaps"]] == [g["gap_id"] for g in gaps if not g["segment_id"]]


def test_chains_carry_their_leaders_and_the_region_its_general_leader(service, keys):
    chain_map = service.app.state.svc.holder.current.catalog.chain_map
    listed = get(service, keys, "/v1/chains", "general").json()

    assert (listed["general_leader"], listed["general_leader_zh"]) == ("District Mayor", "区长")
    assert listed["region"]["general_leader_zh"] == "区长"
    for summary in listed["chains"]:
        expected = chain_map.chain(summary["chain_id"])
        detail = get(service, keys, f"/v1/chains/{summary['chain_id']}").json()
        drawn = get(service, keys, f"/v1/chains/{summary['chain_id']}/map").json()
        for body in (summary, detail, drawn):
            assert (body["leader"], body["leaders"], body["leaders_zh"]) == (expected.leaders[0], expected.leaders, expected.leaders_zh)
    ai = next(c for c in listed["chains"] if c["chain_id"] == AI)
    assert len(ai["leaders"]) == 2 and len(ai["leaders_zh"]) == 2  # the district gives AI two leaders


def test_map_errors(service, keys):
    assert_error(service.client.get(f"/v1/chains/{AI}/map"), 401, "unauthorized")
    assert_error(get(service, keys, "/v1/chains/no-such-chain/map"), 404, "not_found")
    assert_error(get(service, keys, f"/v1/chains/{AI}/segments/no-such-segment"), 404, "not_found")
    other = next(c for c in service.app.state.svc.holder.current.catalog.chain_map.chains if c.id != AI)
    # A segment of another chain is not a segment of this one.
    error = assert_error(get(service, keys, f"/v1/chains/{AI}/segments/{other.segments[0].id}"), 404, "not_found")
    assert other.segments[0].id in error["message"]
    assert_error(get(service, keys, "/v1/chains/" + "x" * 201 + "/map"), 422, "validation_error")
    assert_error(get(service, keys, f"/v1/chains/{AI}/segments/{other.segments[0].id}?limit=0"), 422, "validation_error")


def test_segment_lists_its_local_firms(service, keys):
    # The most populated segment of the region (the sample is small).
    chain_id, segment = max(((c["chain_id"], s) for c in get(service, keys, "/v1/chains").json()["chains"]
                             for s in get(service, keys, f"/v1/chains/{c['chain_id']}/map").json()["segments"]),
                            key=lambda pair: pair[1]["strength"])
    assert segment["strength"] > 1, "the sample has a segment with several local firms"
    detail = get(service, keys, f"/v1/chains/{chain_id}/segments/{segment['segment_id']}").json()
    assert detail["chain_id"] == chain_id
    assert detail["segment"] == segment
    assert detail["total_firms"] == segment["strength"] == len(detail["firms"])
    z = [f["z"] for f in detail["firms"]]
    assert all(v is not None for v in z) and z == sorted(z, reverse=True)
    catalog = service.app.state.svc.holder.current.catalog
    for firm in detail["firms"]:
        row = catalog.enterprises.iloc[catalog.row_of(firm["enterprise_id"])]
        assert bool(row["is_local"]) and firm["name"] == row["name"]
        assert sorted(firm["qualifications"]) == sorted(str(q) for q in row["qualifications"])
        if firm["employees"] is not None:
            assert firm["employees"] == int(row["employees"])
    # The enterprise route names the same segment membership, with the same similarity.
    first = detail["firms"][0]
    memberships = get(service, keys, f"/v1/enterprises/{first['enterprise_id']}").json()["segments"]
    assert any(m["segment_id"] == segment["segment_id"] and round(m["similarity"], 6) == round(first["similarity"], 6)
               for m in memberships)
    limited = get(service, keys, f"/v1/chains/{chain_id}/segments/{segment['segment_id']}?limit=1").json()
    assert limited["total_firms"] == segment["strength"] and limited["firms"] == detail["firms"][:1]


def test_segment_shortlists_with_review_progress(service, keys):
    gap = segment_gap(service, keys)
    path = f"/v1/chains/{AI}/segments/{gap['segment_id']}"
    before = {s["shortlist_id"] for s in get(service, keys, path, "leader").json()["shortlists"]}
    created = service.client.post("/v1/shortlists", json={"gap_id": gap["gap_id"], "top": 3},
                                  headers={"Authorization": f"Bearer {keys['staff']}"})
    assert created.status_code == 201, created.text
    shortlist = created.json()
    item = shortlist["items"][0]
    reviewed = service.client.post(f"/v1/shortlists/{shortlist['shortlist_id']}/items/{item['item_id']}/review",
                                   json={"verdict": "approve"}, headers={"Authorization": f"Bearer {keys['leader']}"})
    assert reviewed.status_code == 200, reviewed.text

    for who in ("leader", "staff", "general"):
        detail = get(service, keys, path, who).json()
        assert detail["shortlists_visible"] is True
        listed = {s["shortlist_id"]: s for s in detail["shortlists"]}
        assert set(listed) - before == {shortlist["shortlist_id"]}
        mine = listed[shortlist["shortlist_id"]]
        assert mine["gap_id"] == gap["gap_id"] and mine["status"] == "in_review"
        assert mine["counts"] == {"pending": 2, "approved": 1, "rejected": 0, "deferred": 0}
    # Another chain's leader sees the segment's firms, never the chain's shortlists.
    outsider = get(service, keys, path, "other_leader").json()
    assert outsider["shortlists_visible"] is False and outsider["shortlists"] == []
    assert outsider["firms"] == get(service, keys, path, "leader").json()["firms"]
