"""The chain structure map (产业链图谱) and the overview on the review page, in a real headless
Chromium against the real service (the fixtures and helpers of ``test_review_page.py``).

A chain leader opens their chain's map: the drawn segments, supplies arrows, status colours and
local strengths are checked against ``GET /v1/chains/{id}/map``; selecting the segment of a gap
lists its local firms and the gap's shortlist with its review progress. The same map in Chinese
(``?lang=zh``). A general chain leader sees the overview, one row per chain plus the district,
and no review form. Screenshots of the map in both languages and of the overview are saved under
the test's ``tmp_path`` (``screenshots/``), and copied to ``$MATCHER_TEST_SCREENSHOTS`` when set.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_review_page import browser, create_key, find, find_all, service, sign_in, visible, wait_for  # noqa: F401

pytestmark = pytest.mark.e2e

# The page's colours by segment status (service/static/app.js, STATUS_FILL).
STATUS_FILL = {"strong": "#1e8a4c", "weak": "#b36b00", "missing": "#c0392b"}


def screenshot(driver, directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    assert driver.save_screenshot(str(path)) and path.stat().st_size > 0
    if os.environ.get("MATCHER_TEST_SCREENSHOTS"):
        target = Path(os.environ["MATCHER_TEST_SCREENSHOTS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / path.name)
    return path


def check_map_against_api(driver, chain_map: dict) -> None:
    segments = {s["segment_id"]: s for s in chain_map["segments"]}
    drawn = find_all(driver, "map-segment")
    assert len(drawn) == len(segments)
    for node in drawn:
        s = segments[node.get_attribute("data-segment-id")]
        assert node.get_attribute("data-status") == s["status"]
        assert find(driver, "map-box", node).get_attribute("fill") == STATUS_FILL[s["status"]]
        assert int(node.get_attribute("data-strength")) == s["strength"]
        assert str(s["strength"]) in find(driver, "map-strength", node).text
        gap_labels = find_all(driver, "map-gap", node)
        assert len(gap_labels) == (1 if s["gaps"] else 0)
        if s["gaps"]:
            assert gap_labels[0].get_attribute("data-gap-id") == s["gaps"][0]["gap_id"]
    links = find_all(driver, "map-link")
    assert sorted((a.get_attribute("data-source"), a.get_attribute("data-target")) for a in links) == \
        sorted((link["source"], link["target"]) for link in chain_map["links"])
    assert [e.get_attribute("data-stage") for e in find_all(driver, "map-stage")] == chain_map["stages"]


def test_chain_map_and_overview_in_the_browser(workspace_copy, service, browser, tmp_path):  # noqa: F811
    home = workspace_copy.home
    shots = tmp_path / "screenshots"
    gaps = json.loads((workspace_copy.version_dir / "gaps.json").read_text())
    gap = next(g for g in gaps if g["segment_id"])
    chain_id = gap["chain_id"]
    staff, leader = create_key(home, "staff"), create_key(home, "chain_leader", chain_id)
    general = create_key(home, "general_leader")
    auth = {"Authorization": f"Bearer {staff}"}
    created = httpx.post(f"{service}/v1/shortlists", json={"gap_id": gap["gap_id"], "top": 5}, headers=auth, timeout=60)
    assert created.status_code == 201, created.text
    sid = created.json()["shortlist_id"]
    chain_map = httpx.get(f"{service}/v1/chains/{chain_id}/map", headers=auth, timeout=30).json()
    assert chain_map["links"], "the sample chain has supplies links"

    driver = browser
    sign_in(driver, service, leader)
    wait_for(driver, lambda d: visible(d, "open-map"), "the map link").click()
    wait_for(driver, lambda d: len(find_all(d, "map-segment")) == len(chain_map["segments"]), "the drawn map")
    assert driver.current_url.endswith(f"#/chains/{chain_id}/map")
    check_map_against_api(driver, chain_map)
    screenshot(driver, shots, "chain-map-en")

    # Selecting the gap's segment lists its local firms and the gap's shortlist with its progress.
    node = next(n for n in find_all(driver, "map-segment") if n.get_attribute("data-segment-id") == gap["segment_id"])
    node.click()
    detail = httpx.get(f"{service}/v1/chains/{chain_id}/segments/{gap['segment_id']}", headers=auth, timeout=30).json()
    panel = wait_for(driver, lambda d: next((e for e in find_all(d, "segment-detail")
                                             if e.get_attribute("data-segment-id") == gap["segment_id"]), None), "the segment detail")
    assert driver.current_url.endswith(f"#/chains/{chain_id}/map/{gap['segment_id']}")
    firms = find_all(driver, "segment-firm", panel)
    assert [f.get_attribute("data-enterprise-id") for f in firms] == [f["enterprise_id"] for f in detail["firms"]]
    if detail["firms"]:
        assert detail["firms"][0]["name"] in firms[0].text
    row = next(r for r in find_all(driver, "segment-shortlist", panel) if r.get_attribute("data-shortlist-id") == str(sid))
    assert find(driver, "segment-shortlist-progress", row).text == "0 / 5"
    screenshot(driver, shots, "chain-map-segment-en")

    # The same map in Chinese.
    driver.get(f"{service}/ui?lang=zh#/chains/{chain_id}/map")
    wait_for(driver, lambda d: len(find_all(d, "map-segment")) == len(chain_map["segments"]), "the Chinese map")
    check_map_against_api(driver, chain_map)
    assert [e.text for e in find_all(driver, "map-stage")] == ["上游", "中游", "下游"]
    named = next(s for s in chain_map["segments"] if s["name_zh"])
    drawn = next(n for n in find_all(driver, "map-segment") if n.get_attribute("data-segment-id") == named["segment_id"])
    assert named["name_zh"][:13] in drawn.text and "本地企业" in drawn.text
    screenshot(driver, shots, "chain-map-zh")

    # The general chain leader: the overview, a row per chain and the district; reads shortlists, reviews none.
    find(driver, "sign-out").click()
    sign_in(driver, service, general)
    overview = httpx.get(f"{service}/v1/overview", headers={"Authorization": f"Bearer {general}"}, timeout=30).json()
    wait_for(driver, lambda d: len(find_all(d, "overview-row")) == len(overview["chains"]), "the overview rows")
    assert find(driver, "overview-district").is_displayed()
    for r in find_all(driver, "overview-row"):
        expected = next(x for x in overview["chains"] if x["chain_id"] == r.get_attribute("data-chain"))
        f = expected["funnel"]
        assert find(driver, "overview-funnel", r).text == " → ".join(str(f[k]) for k in ("contacted", "visited", "negotiating",
                                                                                          "signed", "landed"))
    assert "general chain leader" in find(driver, "identity").text
    screenshot(driver, shots, "overview-en")
    driver.get(f"{service}/ui?lang=zh#/")
    wait_for(driver, lambda d: len(find_all(d, "overview-row")) == len(overview["chains"]), "the Chinese overview")
    assert "总链长" in find(driver, "identity").text and "全区" in find(driver, "overview-district").text
    screenshot(driver, shots, "overview-zh")
    driver.get(f"{service}/ui?lang=zh#/shortlists/{sid}")
    wait_for(driver, lambda d: find_all(d, "item-detail"), "the shortlist, read by the general chain leader")
    assert not find_all(driver, "review-form") and find_all(driver, "history")
    for name in ("chain-map-en", "chain-map-segment-en", "chain-map-zh", "overview-en", "overview-zh"):
        assert (shots / f"{name}.png").is_file()
