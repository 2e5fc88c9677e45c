"""Partners for a local firm (issue 13): outside firms in the segments directly upstream and
downstream of a local firm's segments, ranked and explained as prospects are, on the session's
built sample workspace."""

from __future__ import annotations

import pytest

from matcher import schemas as S
from matcher.catalog import Catalog
from matcher.partners import CUSTOMER, SUPPLIER, neighbour_segments, partners
from matcher.retrieval import Filters
from matcher.store.errors import InvalidInputError
from tests.e2e.conftest import cli, cli_json

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def catalog(workspace) -> Catalog:
    return Catalog.load(workspace.version_dir)


def local_firm_with_neighbours(catalog) -> str:
    """A local firm whose segments have both suppliers and customers on the chain map."""
    for enterprise_id in sorted(catalog.context.partner_segments):
        relations = {n["relation"] for n in neighbour_segments(catalog, enterprise_id)}
        if relations == {SUPPLIER, CUSTOMER}:
            return enterprise_id
    raise AssertionError("no local firm of the sample has both suppliers and customers")


def test_neighbour_segments_follow_the_supplies_links(catalog):
    firm = local_firm_with_neighbours(catalog)
    own = set(catalog.context.partner_segments[firm])
    supplies = {s.id: set(s.supplies) for _, s in catalog.chain_map.segments()}

    for n in neighbour_segments(catalog, firm):
        assert n["via"] in own and n["segment_id"] not in own
        if n["relation"] == SUPPLIER:
            assert n["via"] in supplies[n["segment_id"]]  # it supplies the firm's segment
        else:
            assert n["segment_id"] in supplies[n["via"]]  # the firm's segment supplies it


def test_partners_are_outside_firms_of_the_neighbouring_segments_ranked_and_explained(catalog):
    firm = local_firm_with_neighbours(catalog)
    neighbours = {n["segment_id"]: n for n in neighbour_segments(catalog, firm)}

    found = partners(catalog, firm, 10, Filters(), explain=True)

    assert 0 < len(found) <= 10 and found["rank"].tolist() == list(range(1, len(found) + 1))
    assert found["score"].is_monotonic_decreasing
    assert found[S.ENTERPRISE_ID].is_unique and firm not in set(found[S.ENTERPRISE_ID])
    ents = catalog.enterprises.set_index(S.ENTERPRISE_ID)
    assert not ents.loc[found[S.ENTERPRISE_ID], S.IS_LOCAL].any()  # outside firms, as prospects
    for _, p in found.iterrows():
        assert p["partner_segment_id"] in neighbours and p["partner_segment_id"] in p["partner_segments"]
        assert p["relation"] == neighbours[p["partner_segment_id"]]["relation"]
        assert -1.0 <= p["firm_similarity"] <= 1.0
        # Its score and explanation are those of the neighbouring segment's own prospect list.
        segment = catalog.prospects(f"{p['partner_chain_id']}.{p['partner_segment_id']}", 50, Filters())
        assert p["score"] == segment.set_index(S.ENTERPRISE_ID).loc[p[S.ENTERPRISE_ID], "score"]
        assert p["explanation"]["contributions"] and "evidence" in p["explanation"]


def test_partners_take_the_prospect_filters(catalog):
    firm = local_firm_with_neighbours(catalog)
    everyone = partners(catalog, firm, 30, Filters())
    country = everyone["country"].mode().iloc[0]

    only = partners(catalog, firm, 30, Filters(countries=(country,)))

    assert len(only) and (only["country"] == country).all()


def test_an_outside_or_unassigned_firm_is_refused_with_the_reason(catalog):
    ents = catalog.enterprises
    outside = ents.loc[~ents[S.IS_LOCAL].astype(bool), S.ENTERPRISE_ID].iloc[0]
    unassigned = next(e for e in ents.loc[ents[S.IS_LOCAL].astype(bool), S.ENTERPRISE_ID]
                      if e not in catalog.context.partner_segments)

    with pytest.raises(InvalidInputError, match="not a local firm"):
        partners(catalog, outside, 10, Filters())
    with pytest.raises(InvalidInputError, match="assigned to no segment"):
        partners(catalog, unassigned, 10, Filters())


def test_matcher_partners_lists_them_and_refuses_an_outside_firm_in_one_line(catalog, workspace):
    firm = local_firm_with_neighbours(catalog)

    found = cli_json("partners", firm, "--top", 5, "--home", workspace.home)["results"]

    assert [r["rank"] for r in found] == list(range(1, len(found) + 1)) and len(found) == 5
    assert all(r["relation"] in (SUPPLIER, CUSTOMER) and not r["is_local"] for r in found)
    assert found[0]["enterprise_id"] == partners(catalog, firm, 5, Filters())[S.ENTERPRISE_ID].iloc[0]
    outside = catalog.enterprises.loc[~catalog.enterprises[S.IS_LOCAL].astype(bool), S.ENTERPRISE_ID].iloc[0]
    result = cli("partners", outside, "--home", workspace.home, expect=None)
    assert isinstance(result.exception, InvalidInputError) and "not a local firm" in str(result.exception)
