"""The review page's chain-map extension point and the partners view, in a real headless Chromium
against the real service (the fixtures and helpers of ``test_review_page.py``).

The page exposes ``window.ChainMatcher`` (texts, DOM helpers, the signed-in fetch, the banner) and,
each time the chain map or its selected segment is drawn, an empty ``gap-panel`` section under the
map with a ``chain-matcher:chain-map`` event naming the chain, the segment and that section, so
other scripts (gaps.js) render into it.

A local firm in the segment view links to its partners view: its suppliers and customers as
``GET /v1/enterprises/{id}/partners`` ranks them, with their reasons, in English and Chinese; an
outside firm's address shows the API's reason. A shortlist row shows the prospect's outreach
stage; the export buttons show only to a key that may export (a colleague's shortlist has none).
Screenshots of the partners view (English, Chinese) and of a shortlist with an outreach stage are
saved under the test's ``tmp_path`` (and ``$MATCHER_TEST_SCREENSHOTS`` when set).
"""

from __future__ import annotations

import json

import httpx
import pytest

from matcher.catalog import Catalog
from matcher.partners import CUSTOMER, SUPPLIER, neighbour_segments
from tests.e2e.test_chain_map_page import screenshot
from tests.e2e.test_review_page import browser, create_key, find, find_all, service, sign_in, visible, wait_for  # noqa: F401

pytestmark = pytest.mark.e2e


def test_chain_map_announces_its_gap_panel(workspace_copy, service, browser):  # noqa: F811
    gaps = json.loads((workspace_copy.version_dir / "gaps.json").read_text())
    gap = next(g for g in gaps if g["segment_id"])
    chain_id = gap["chain_id"]
    leader = create_key(workspace_copy.home, "chain_leader", chain_id)
    driver = browser
    sign_in(driver, service, leader)
    driver.get(f"{service}/ui#/chains/{chain_id}/map")
    wait_for(driver, lambda d: find_all(d, "map-segment"), "the drawn map")
    # One panel under the map, filled by gaps.js (the gap management of tests/e2e/test_gaps_page.py).
    wait_for(driver, lambda d: "Gaps of this chain" in " ".join(p.text for p in find_all(d, "gap-panel")), "the gap panel")
    assert len(find_all(driver, "gap-panel")) == 1
    exposed = driver.execute_script(
        "const c = window.ChainMatcher; return {lang: c.lang, role: c.me().role, "
        "helpers: ['t', 'el', 'add', 'api', 'flash'].filter((n) => typeof c[n] === 'function'), back: c.t('back')};")
    assert exposed == {"lang": "en", "role": "chain_leader", "helpers": ["t", "el", "add", "api", "flash"], "back": "← My chains"}

    # Selecting a segment announces a fresh panel with the segment, for gaps.js (or any listener) to fill.
    driver.execute_script("""
        window.__announced = [];
        document.addEventListener('chain-matcher:chain-map', (e) => {
          const d = e.detail;
          window.__announced.push({chainId: d.chainId, segmentId: d.segmentId,
                                   inPage: document.body.contains(d.container), testid: d.container.dataset.testid});
        });""")
    node = next(n for n in find_all(driver, "map-segment") if n.get_attribute("data-segment-id") == gap["segment_id"])
    node.click()
    wait_for(driver, lambda d: d.execute_script("return window.__announced.length"), "the chain-map event")
    assert driver.execute_script("return window.__announced") == [
        {"chainId": chain_id, "segmentId": gap["segment_id"], "inPage": True, "testid": "gap-panel"}]
    assert len(find_all(driver, "gap-panel")) == 1


def firm_with_partners(version_dir) -> tuple[str, str, str]:
    """(enterprise id, chain id, one of its segments) of a local firm with suppliers and customers."""
    catalog = Catalog.load(version_dir, check=False)
    for enterprise_id in sorted(catalog.context.partner_segments):
        neighbours = neighbour_segments(catalog, enterprise_id)
        if {n["relation"] for n in neighbours} == {SUPPLIER, CUSTOMER}:
            return enterprise_id, neighbours[0]["chain_id"], neighbours[0]["via"]
    raise AssertionError("no local firm of the sample has both suppliers and customers")


def shown_partners(driver) -> dict[str, list[str]]:
    return {relation: [r.get_attribute("data-enterprise-id") for r in find_all(driver, "partner-row")
                       if r.get_attribute("data-relation") == relation] for relation in (SUPPLIER, CUSTOMER)}


def test_a_local_firm_s_partners_from_the_segment_view(workspace_copy, service, browser, tmp_path):  # noqa: F811
    firm, chain_id, segment_id = firm_with_partners(workspace_copy.version_dir)
    leader = create_key(workspace_copy.home, "chain_leader", chain_id)
    auth = {"Authorization": f"Bearer {leader}"}
    expected = httpx.get(f"{service}/v1/enterprises/{firm}/partners?top=20&explain=true", headers=auth, timeout=60).json()
    driver = browser
    sign_in(driver, service, leader)
    wait_for(driver, lambda d: visible(d, "open-map"), "the home page")
    driver.get(f"{service}/ui#/chains/{chain_id}/map/{segment_id}")
    link = wait_for(driver, lambda d: next((r for r in find_all(d, "segment-firm") if r.get_attribute("data-enterprise-id") == firm), None),
                    "the firm in the segment view")
    find(driver, "partners-link", link).click()
    wait_for(driver, lambda d: find_all(d, "partner-row"), "the partners")
    assert driver.current_url.endswith(f"#/enterprises/{firm}/partners")
    assert expected["name"] in find(driver, "partners-title").text

    by_relation = {relation: [r["enterprise_id"] for r in expected["results"] if r["relation"] == relation] for relation in (SUPPLIER, CUSTOMER)}
    assert shown_partners(driver) == by_relation and by_relation[SUPPLIER] and by_relation[CUSTOMER]
    rows = {r.get_attribute("data-enterprise-id"): r for r in find_all(driver, "partner-row")}
    for partner in expected["results"][:5]:
        row = rows[partner["enterprise_id"]]
        assert partner["name"] in find(driver, "partner-name", row).text
        assert [li.text for li in find(driver, "partner-reasons-for", row).find_elements("css selector", "li")] == \
            ["+ " + x for x in partner["reasons"]["positive"]]
        assert [li.text for li in find(driver, "partner-reasons-against", row).find_elements("css selector", "li")] == \
            ["− " + x for x in partner["reasons"]["negative"]]
    screenshot(driver, tmp_path / "screenshots", "partners-en")
    find(driver, "back").click()  # back to the segment it came from
    wait_for(driver, lambda d: d.current_url.endswith(f"#/chains/{chain_id}/map/{segment_id}") and find_all(d, "segment-firm"), "the map again")

    # In Chinese: the same partners, the API's Chinese reasons.
    zh = httpx.get(f"{service}/v1/enterprises/{firm}/partners?top=20&explain=true&lang=zh", headers=auth, timeout=60).json()
    driver.get(f"{service}/ui?lang=zh#/enterprises/{firm}/partners")
    wait_for(driver, lambda d: find_all(d, "partner-row"), "the Chinese partners")
    assert "上下游配套伙伴" in find(driver, "partners-title").text and "供应商（上游）" in find(driver, "partners-suppliers").text
    own = find(driver, "partners-own").text  # the firm's segments by their Chinese names, opened without the map
    assert all((s["name_zh"] or s["name"]) in own for s in zh["firm_segments"]) and zh["firm_segments"]
    assert shown_partners(driver) == by_relation
    first = zh["results"][0]
    row = next(r for r in find_all(driver, "partner-row") if r.get_attribute("data-enterprise-id") == first["enterprise_id"])
    assert [li.text for li in find(driver, "partner-reasons-for", row).find_elements("css selector", "li")] == \
        ["+ " + x for x in first["reasons"]["positive"]]
    screenshot(driver, tmp_path / "screenshots", "partners-zh")

    # An outside firm has no partners view: the API's reason, in a readable line.
    outside = first["enterprise_id"]
    driver.get(f"{service}/ui#/enterprises/{outside}/partners")
    error = wait_for(driver, lambda d: visible(d, "error"), "the error")
    assert "is not a local firm" in error.text and "422" not in driver.title


def test_outreach_stage_and_export_button_on_a_shortlist(workspace_copy, service, browser, tmp_path):  # noqa: F811
    home = workspace_copy.home
    gaps = json.loads((workspace_copy.version_dir / "gaps.json").read_text())
    gap = next(g for g in gaps if g["segment_id"])
    staff, colleague = create_key(home, "staff"), create_key(home, "staff")
    leader = create_key(home, "chain_leader", gap["chain_id"])
    auth = {"Authorization": f"Bearer {staff}"}
    created = httpx.post(f"{service}/v1/shortlists", json={"gap_id": gap["gap_id"], "top": 4}, headers=auth, timeout=60)
    assert created.status_code == 201, created.text
    s = created.json()
    item = s["items"][1]
    for stage, date in (("contacted", "2025-05-01"), ("visited", "2025-05-09")):
        recorded = httpx.post(f"{service}/v1/outcomes", json={"enterprise_id": item["enterprise_id"], "gap_id": gap["gap_id"],
                                                              "stage": stage, "date": date}, headers=auth, timeout=30)
        assert recorded.status_code == 201, recorded.text

    driver = browser
    sign_in(driver, service, leader)
    wait_for(driver, lambda d: visible(d, "open-map"), "the home page")
    # The chain's leaders on its card (several where the API names several, else its one leader),
    # and the general chain leader on the home page when the chain list names one.
    chains = httpx.get(f"{service}/v1/chains", headers={"Authorization": f"Bearer {leader}"}, timeout=30).json()
    chain = next(c for c in chains["chains"] if c["chain_id"] == gap["chain_id"])
    card = next(c for c in find_all(driver, "chain") if c.get_attribute("data-chain") == gap["chain_id"])
    line = find(driver, "chain-leaders", card).text
    assert all(name in line for name in chain.get("leaders") or [chain["leader"]]), line
    if chains.get("general_leader"):
        assert chains["general_leader"] in find(driver, "general-leader").text
    else:
        assert not find_all(driver, "general-leader")
    driver.get(f"{service}/ui#/shortlists/{s['shortlist_id']}")
    wait_for(driver, lambda d: find_all(d, "item-detail"), "the shortlist")
    badges = {e.find_element("xpath", "ancestor::li").get_attribute("data-item-id"): e for e in find_all(driver, "item-outreach")}
    assert list(badges) == [str(item["item_id"])]
    assert badges[str(item["item_id"])].text == "visited" and badges[str(item["item_id"])].get_attribute("data-stage") == "visited"
    assert find_all(driver, "export-csv") and not find_all(driver, "export-not-allowed")  # a chain leader exports

    driver.get(f"{service}/ui?lang=zh#/shortlists/{s['shortlist_id']}")
    wait_for(driver, lambda d: find_all(d, "item-outreach"), "the Chinese shortlist")
    assert [e.text for e in find_all(driver, "item-outreach")] == ["已考察"]
    screenshot(driver, tmp_path / "screenshots", "shortlist-outreach-zh")

    # A colleague's shortlist: no export buttons (the API would answer 403), a line saying why.
    find(driver, "sign-out").click()
    sign_in(driver, service, colleague)
    wait_for(driver, lambda d: visible(d, "open-map"), "the colleague's home page")
    driver.get(f"{service}/ui#/shortlists/{s['shortlist_id']}")
    wait_for(driver, lambda d: find_all(d, "item-detail"), "the colleague's view of the shortlist")
    assert not find_all(driver, "export-csv") and not find_all(driver, "export-xlsx")
    assert "staff export the shortlists their own key created" in find(driver, "export-not-allowed").text
    assert httpx.get(f"{service}/v1/shortlists/{s['shortlist_id']}/export", headers={"Authorization": f"Bearer {colleague}"},
                     timeout=30).status_code == 403
    find(driver, "sign-out").click()
    sign_in(driver, service, staff)
    wait_for(driver, lambda d: visible(d, "open-map"), "the creator's home page")
    driver.get(f"{service}/ui#/shortlists/{s['shortlist_id']}")
    wait_for(driver, lambda d: find_all(d, "export-csv"), "the creator's export button")
