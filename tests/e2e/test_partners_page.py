"""The review page's chain-map extension point and the partners view, in a real headless Chromium
against the real service (the fixtures and helpers of ``test_review_page.py``).

The page exposes ``window.ChainMatcher`` (texts, DOM helpers, the signed-in fetch, the banner) and,
each time the chain map or its selected segment is drawn, an empty ``gap-panel`` section under the
map with a ``chain-matcher:chain-map`` event naming the chain, the segment and that section, so
other scripts (gaps.js) render into it.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_review_page import browser, create_key, find_all, service, sign_in, wait_for  # noqa: F401

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
    panels = find_all(driver, "gap-panel")
    assert len(panels) == 1 and panels[0].text == ""
    exposed = driver.execute_script(
        "const c = window.ChainMatcher; return {lang: c.lang, role: c.me().role, "
        "helpers: ['t', 'el', 'add', 'api', 'flash'].filter((n) => typeof c[n] === 'function'), back: c.t('back')};")
    assert exposed == {"lang": "en", "role": "chain_leader", "helpers": ["t", "el", "add", "api", "flash"], "back": "← My chains"}

    # Selecting a segment announces a fresh, empty panel with the segment; a listener can fill it.
    driver.execute_script("""
        window.__announced = [];
        document.addEventListener('chain-matcher:chain-map', (e) => {
          const d = e.detail;
          window.__announced.push({chainId: d.chainId, segmentId: d.segmentId,
                                   inPage: document.body.contains(d.container), testid: d.container.dataset.testid});
          d.container.append(window.ChainMatcher.el('p', {dataset: {testid: 'filled'}}, 'filled by a listener'));
        });""")
    node = next(n for n in find_all(driver, "map-segment") if n.get_attribute("data-segment-id") == gap["segment_id"])
    node.click()
    wait_for(driver, lambda d: d.execute_script("return window.__announced.length"), "the chain-map event")
    assert driver.execute_script("return window.__announced") == [
        {"chainId": chain_id, "segmentId": gap["segment_id"], "inPage": True, "testid": "gap-panel"}]
    assert [e.text for e in find_all(driver, "filled")] == ["filled by a listener"]
    assert len(find_all(driver, "gap-panel")) == 1
