"""Gap management on the chain map page (``service/static/gaps.js``), in a real headless Chromium
against the real service (the fixtures and helpers of ``test_review_page.py``).

The AI chain's leader opens the chain's map, declares a free-text gap in the gap panel, sees it
listed, edits its note, closes and reopens it — each step checked against the API. The panel in
Chinese. A staff key sees the chain's gaps but no declare form and no buttons. Screenshots are
saved under the test's ``tmp_path`` (and to ``$MATCHER_TEST_SCREENSHOTS`` when set).
"""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.test_chain_map_page import screenshot
from tests.e2e.test_review_page import browser, create_key, find, find_all, service, sign_in, visible, wait_for  # noqa: F401

pytestmark = pytest.mark.e2e
AI = "artificial-intelligence"
NEED = "Liquid cooling suppliers for AI data centres"


def api_gaps(service, key: str) -> dict:  # noqa: F811
    response = httpx.get(f"{service}/v1/chains/{AI}/gaps", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert response.status_code == 200, response.text
    return {g["gap_id"]: g for g in response.json()["gaps"]}


def row_of(driver, gap_id: str):
    return next((r for r in find_all(driver, "gap-row") if r.get_attribute("data-gap-id") == gap_id), None)


def open_map(driver, service, lang: str = "") -> None:  # noqa: F811
    driver.get(f"{service}/ui{'?lang=' + lang if lang else ''}#/chains/{AI}/map")
    wait_for(driver, lambda d: find_all(d, "gap-table"), "the gap panel under the map")


def test_a_chain_leader_manages_gaps_on_the_map_page(workspace_copy, service, browser, tmp_path):  # noqa: F811
    from selenium.webdriver.support.ui import Select

    home, driver, shots = workspace_copy.home, browser, tmp_path / "screenshots"
    leader, staff = create_key(home, "chain_leader", AI), create_key(home, "staff")
    before = api_gaps(service, leader)
    sign_in(driver, service, leader)
    open_map(driver, service)
    assert len(find_all(driver, "gap-row")) == len(before)

    # Declare a free-text need.
    find(driver, "gap-kind-text").click()
    wait_for(driver, lambda d: visible(d, "gap-text"), "the need field").send_keys(NEED)
    Select(find(driver, "gap-priority-input")).select_by_value("high")
    find(driver, "gap-note-input").send_keys("two sites ready")
    find(driver, "gap-declare").click()
    new = wait_for(driver, lambda d: set(api_gaps(service, leader)) - set(before), "the declared gap in the API")
    (gap_id,) = new
    gap = api_gaps(service, leader)[gap_id]
    assert (gap["text"], gap["priority"], gap["note"], gap["origin"]) == (NEED, "high", "two sites ready", "service")
    row = wait_for(driver, lambda d: row_of(d, gap_id), "the declared gap in the panel")
    assert NEED in row.text and find(driver, "gap-status", row).text == "open"
    assert "declared" in find(driver, "flash").text.lower()
    # The map itself follows: the need is listed among the chain's other gaps without a reload.
    wait_for(driver, lambda d: any(NEED[:40] in e.text for e in find_all(d, "map-other-gaps")), "the need on the map")

    # Edit its note.
    find(driver, "gap-edit", row).click()
    note = wait_for(driver, lambda d: visible(d, "gap-edit-note"), "the edit form")
    note.clear()
    note.send_keys("budget approved")
    find(driver, "gap-edit-save").click()
    wait_for(driver, lambda d: api_gaps(service, leader)[gap_id]["note"] == "budget approved", "the edited note in the API")
    wait_for(driver, lambda d: row_of(d, gap_id) and find(d, "gap-note", row_of(d, gap_id)).text == "budget approved",
             "the edited note in the panel")

    # Close it, then reopen it.
    find(driver, "gap-close", row_of(driver, gap_id)).click()
    wait_for(driver, lambda d: row_of(d, gap_id) and row_of(d, gap_id).get_attribute("data-status") == "closed",
             "the closed gap in the panel")
    assert api_gaps(service, leader)[gap_id]["status"] == "closed"
    driver.execute_script("arguments[0].scrollIntoView()", find(driver, "gap-manager"))
    screenshot(driver, shots, "gaps-panel-en")
    find(driver, "gap-reopen", row_of(driver, gap_id)).click()
    wait_for(driver, lambda d: row_of(d, gap_id) and row_of(d, gap_id).get_attribute("data-status") == "open",
             "the reopened gap in the panel")
    assert api_gaps(service, leader)[gap_id]["status"] == "open"

    # The panel in Chinese.
    open_map(driver, service, "zh")
    manager = find(driver, "gap-manager")
    assert "本链缺口" in manager.text and "申报缺口" in manager.text
    assert find(driver, "gap-status", row_of(driver, gap_id)).text == "未关闭"
    driver.execute_script("arguments[0].scrollIntoView()", manager)
    screenshot(driver, shots, "gaps-panel-zh")

    # Staff read the chain's gaps and change none.
    find(driver, "sign-out").click()
    sign_in(driver, service, staff)
    open_map(driver, service)
    assert row_of(driver, gap_id) is not None
    assert not find_all(driver, "gap-declare") and not find_all(driver, "gap-close") and not find_all(driver, "gap-edit")
    assert find(driver, "gap-read-only").is_displayed()
