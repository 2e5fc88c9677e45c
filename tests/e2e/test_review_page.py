"""The chain leader's review page in a real headless Chromium against the real service.

The service (``create_app`` under uvicorn, on a free loopback port, in a thread) serves a copy of
the session's built sample workspace. Staff create a shortlist through the API; the chain leader
signs in on ``/ui`` with a key made by ``matcher keys create``, opens the shortlist, approves one
prospect and rejects another with a reason. Both verdicts are checked in the API and again in the
page after a reload. Also: Chinese labels at ``?lang=zh``, the CSV export downloaded by the page,
a wrong key sent back to sign-in, and another chain's shortlist shown as a plain 404, as an unknown one is.

Chromium and chromedriver are Debian's (``/usr/bin/chromium``, ``/usr/bin/chromedriver``); the test
skips when they are absent. Selenium is pointed at both, so selenium-manager never downloads.
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import cli

pytestmark = pytest.mark.e2e

CHROMIUM = Path(os.environ.get("MATCHER_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("MATCHER_TEST_CHROMEDRIVER", "/usr/bin/chromedriver"))
WAIT_S = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def service(workspace_copy):
    """The real app on a loopback port; yields its base URL."""
    import uvicorn

    from matcher.settings import Settings
    from service.app import create_app

    # No warm-up ranking of every gap before serving: the page asks for one shortlist.
    settings = Settings(home=workspace_copy.home, service_warm_gaps=False, service_warm_explain_top=0)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="review-page-service", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180  # generous: the CI machine is shared
    while True:
        try:
            ready = httpx.get(url + "/ready", timeout=5).json()
            if ready.get("ready"):
                break
        except (httpx.HTTPError, ValueError) as exc:
            ready = repr(exc)
        assert thread.is_alive() and time.monotonic() < deadline, f"the service did not become ready: {ready}"
        time.sleep(0.1)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip(f"needs Debian's chromium and chromedriver ({CHROMIUM}, {CHROMEDRIVER}); apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage", "--window-size=1366,768", "--lang=en-GB"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


def create_key(home: Path, role: str, *chains: str) -> str:
    args = [a for c in chains for a in ("--chain", c)]
    result = cli("keys", "create", "--role", role, *args, "--name", f"{role} e2e", "--json", "--home", home)
    return json.loads(result.stdout)["key"]


# --- page helpers ---------------------------------------------------------------------------

def wait_for(driver, condition, what: str):
    """Poll ``condition`` until truthy; the page re-renders parts of itself, so an element found a
    moment ago may be gone (stale) and is simply looked up again."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(
        lambda d: condition(d), message=f"waiting for {what}")


def find(driver, testid: str, within=None):
    from selenium.webdriver.common.by import By

    return (within or driver).find_element(By.CSS_SELECTOR, f"[data-testid='{testid}']")


def find_all(driver, testid: str, within=None):
    from selenium.webdriver.common.by import By

    return (within or driver).find_elements(By.CSS_SELECTOR, f"[data-testid='{testid}']")


def visible(driver, testid: str):
    elements = [e for e in find_all(driver, testid) if e.is_displayed()]
    return elements[0] if elements else None


def item_status(driver, item_id: int) -> str | None:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, f"[data-testid='item'][data-item-id='{item_id}']")
    return rows[0].get_attribute("data-status") if rows else None


def sign_in(driver, base: str, key: str, query: str = "") -> None:
    driver.get(f"{base}/ui{query}")
    field = wait_for(driver, lambda d: visible(d, "key-input"), "the sign-in form")
    field.send_keys(key)
    find(driver, "signin-submit").click()


def open_item(driver, item_id: int):
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f"[data-testid='item'][data-item-id='{item_id}'] a").click()
    wait_for(driver, lambda d: d.current_url.endswith(f"/items/{item_id}"), f"the address of item {item_id}")
    return wait_for(driver, lambda d: next((e for e in find_all(d, "item-detail") if e.get_attribute("data-item-id") == str(item_id)), None),
                    f"the detail of item {item_id}")


def review(driver, item_id: int, verdict: str, reason: str | None = None, comment: str = "") -> None:
    from selenium.webdriver.support.ui import Select

    detail = open_item(driver, item_id)
    find(driver, f"verdict-{verdict}", detail).click()
    if reason:
        Select(find(driver, "reason", detail)).select_by_value(reason)
    if comment:
        find(driver, "comment", detail).send_keys(comment)
    find(driver, "submit-review", detail).click()
    wanted = {"approve": "approved", "reject": "rejected", "defer": "deferred"}[verdict]
    wait_for(driver, lambda d: item_status(d, item_id) == wanted, f"item {item_id} to show {wanted}")


# --- the test -------------------------------------------------------------------------------

def test_chain_leader_reviews_a_shortlist_in_the_browser(workspace_copy, service, browser):
    home = workspace_copy.home
    gaps = json.loads((workspace_copy.version_dir / "gaps.json").read_text())
    gap = gaps[0]
    other_chain = next(g["chain_id"] for g in gaps if g["chain_id"] != gap["chain_id"])
    staff, leader = create_key(home, "staff"), create_key(home, "chain_leader", gap["chain_id"])
    outsider = create_key(home, "chain_leader", other_chain)
    created = httpx.post(f"{service}/v1/shortlists", json={"gap_id": gap["gap_id"], "top": 6},
                         headers={"Authorization": f"Bearer {staff}"}, timeout=60)
    assert created.status_code == 201, created.text
    shortlist = created.json()
    sid = shortlist["shortlist_id"]
    first, second = shortlist["items"][0], shortlist["items"][1]

    driver = browser
    # A wrong key stays on the sign-in form with the reason.
    sign_in(driver, service, "cmk_not-a-real-key")
    error = wait_for(driver, lambda d: visible(d, "signin-error"), "the sign-in error")
    assert "401" in error.text

    # Sign in, find the chain and its shortlist, open it.
    driver.get(f"{service}/ui")
    sign_in(driver, service, leader)
    link = wait_for(driver, lambda d: visible(d, "shortlist-link"), "the shortlist link")
    assert gap["chain_id"] in [e.get_attribute("data-chain") for e in find_all(driver, "chain")]
    assert find_all(driver, "gap-row"), "the chain's gaps are listed"
    link.click()
    wait_for(driver, lambda d: item_status(d, first["item_id"]) == "pending", "the shortlist's items")
    assert len(find_all(driver, "item")) == len(shortlist["items"])

    # Each prospect shows its score, the contribution chart, evidence, partners and risks.
    detail = open_item(driver, first["item_id"])
    assert find(driver, "item-score", detail).text.endswith(f"{first['score']:.3f}")
    bars = find_all(driver, "bar", detail)
    contributions = [c for c in first["explanation"]["contributions"] if abs(c["contribution"]) > 1e-9]
    assert len(bars) == min(10, len(contributions)) and len(bars) > 0
    assert {b.get_attribute("data-sign") for b in bars} == {"pos" if c["contribution"] > 0 else "neg" for c in
                                                            sorted(contributions, key=lambda c: -abs(c["contribution"]))[:10]}
    for testid in ("evidence", "partners", "risks", "review-form"):
        assert find(driver, testid, detail).is_displayed(), testid
    if first["explanation"]["evidence"]:
        assert first["explanation"]["evidence"][0][:30] in find(driver, "evidence", detail).text

    # Approve one, reject another with a reason and a comment.
    review(driver, first["item_id"], "approve")
    review(driver, second["item_id"], "reject", reason="not_chain_fit", comment="Makes consumer apps, not chips")

    # Persisted: the API says so ...
    stored = httpx.get(f"{service}/v1/shortlists/{sid}", headers={"Authorization": f"Bearer {leader}"}, timeout=30).json()
    by_id = {i["item_id"]: i for i in stored["items"]}
    assert by_id[first["item_id"]]["status"] == "approved"
    assert by_id[second["item_id"]]["status"] == "rejected"
    assert by_id[second["item_id"]]["reason_code"] == "not_chain_fit"
    assert by_id[second["item_id"]]["comment"] == "Makes consumer apps, not chips"
    assert [r["verdict"] for r in by_id[first["item_id"]]["reviews"]] == ["approve"]
    assert by_id[second["item_id"]]["excluded"] is True
    assert stored["status"] == "in_review" and stored["counts"]["approved"] == 1 and stored["counts"]["rejected"] == 1

    # ... and so does the page after a reload (the key survives in sessionStorage).
    driver.refresh()
    wait_for(driver, lambda d: item_status(d, second["item_id"]) == "rejected", "the reloaded shortlist")
    assert item_status(driver, first["item_id"]) == "approved"
    detail = open_item(driver, second["item_id"])
    history = find(driver, "history", detail).text
    assert "Makes consumer apps, not chips" in history and "Not a chain fit" in history

    # The CSV export downloads the shortlist with the verdicts.
    find(driver, "export-csv").click()
    csv_file = driver.downloads / f"shortlist-{sid}.csv"
    wait_for(driver, lambda d: csv_file.is_file() and csv_file.stat().st_size > 0, "the CSV download")
    rows = list(csv.DictReader(io.StringIO(csv_file.read_text(encoding="utf-8-sig"))))
    assert [r["enterprise_id"] for r in rows] == [i["enterprise_id"] for i in shortlist["items"]]
    exported = {r["enterprise_id"]: r for r in rows}
    assert exported[first["enterprise_id"]]["status"] == "approved"
    assert exported[second["enterprise_id"]]["status"] == "rejected"
    assert exported[second["enterprise_id"]]["reason_code"] == "not_chain_fit"
    xlsx = httpx.get(f"{service}/v1/shortlists/{sid}/export?format=xlsx", headers={"Authorization": f"Bearer {leader}"}, timeout=30)
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"

    # Chinese labels at ?lang=zh.
    driver.get(f"{service}/ui?lang=zh#/shortlists/{sid}")
    wait_for(driver, lambda d: item_status(d, first["item_id"]) == "approved", "the Chinese shortlist page")
    assert driver.find_element("tag name", "html").get_attribute("lang") == "zh-CN"
    assert find(driver, "export-csv").text == "导出 CSV"
    assert find(driver, "verdict-approve").text == "通过" and find(driver, "verdict-reject").text == "否决"
    assert find(driver, "back").text == "← 我的产业链"
    assert "已通过" in find(driver, "items").text

    # A chain leader can freeze a gap's current top prospects as a new shortlist.
    driver.get(f"{service}/ui#/")
    button = wait_for(driver, lambda d: visible(d, "new-shortlist"), "the new-shortlist buttons")
    button.click()
    page = wait_for(driver, lambda d: next((e for e in find_all(d, "shortlist") if e.get_attribute("data-shortlist-id") != str(sid)), None),
                    "the new shortlist")
    assert find_all(driver, "item") and page.get_attribute("data-shortlist-id") in driver.current_url

    # Another chain's leader sees a plain 404, as for an unknown shortlist (ids cannot be enumerated).
    find(driver, "sign-out").click()
    sign_in(driver, service, outsider, f"#/shortlists/{sid}")
    error = wait_for(driver, lambda d: visible(d, "error"), "the 404 message")
    assert "404" in error.text and not find_all(driver, "item")
