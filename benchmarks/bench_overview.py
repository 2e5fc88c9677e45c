"""The general chain leader's overview and the chain structure map at the district's working size
(issue 13): ``GET /v1/overview`` (and its XLSX export) over 7 chains, 500 shortlists, 20,000
reviews and 5,000 outcomes in PostgreSQL, and the chain map drawn in headless Chromium.

The service runs for real (``create_app`` under uvicorn on a loopback port) on the workspace
``--home`` (e.g. ``matcher demo --n 2000 --home H``; the sample region has 7 chains) with a
throwaway PostgreSQL database. The work is made as the service records it:

- shortlists through ``POST /v1/shortlists`` (``--shortlists`` of ``--items`` prospects each, the
  gaps taken in turn);
- reviews and outcomes written straight into their tables with the columns the review and outcome
  routes write (one review per item, so ``--shortlists x --items`` = 20,000; the routes would take
  minutes to post them one by one and are not what is measured). Verdicts are 50 % approve, 35 %
  reject, 15 % defer, dated over the last 90 days. Outcomes are stage rows of approved prospects:
  each firm-gap pair walks the funnel to a final stage (contacted 40 %, visited 20 %, negotiating
  15 %, signed 7 %, landed 8 %, declined 10 %), a row per stage, until ``--outcomes`` rows.

Measured, after one warm-up request each: the overview's wall time per request from a client on
the same machine (``--repeat`` requests; p50 and p90), the XLSX export's, and in Chromium the map
of the chain with the most segments: from setting the page's address to the map's address until
every segment is drawn, timed inside the page (``performance.now()``; ``--repeat`` times, leaving
for the overview and back each time). Targets: overview p50 <= 300 ms, map <= 500 ms. Prints a
table and writes benchmarks/out/overview.json; reports, never fails on the figures.

    python benchmarks/bench_overview.py --home /tmp/demo
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import sqlalchemy as sa

from throwaway_db import postgres_database  # beside this script

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT_FILE = REPO / "benchmarks" / "out" / "overview.json"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
STAGES = (("contacted", 0.40), ("visited", 0.20), ("negotiating", 0.15), ("signed", 0.07), ("landed", 0.08),
          ("declined", 0.10))
VERDICTS = (("approve", 0.50), ("reject", 0.35), ("defer", 0.15))


@contextmanager
def running_service(home: Path, url: str):
    """The real app on a free loopback port; yields (base URL, app state)."""
    import uvicorn

    from matcher.settings import Settings
    from service.app import create_app

    settings = Settings(home=home, database_url=url, service_warm_gaps=False, service_warm_explain_top=0,
                        service_rate_limit="off")
    app = create_app(settings)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="overview-bench", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            if httpx.get(base + "/ready", timeout=5).json().get("ready"):
                break
        except (httpx.HTTPError, ValueError):
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            raise SystemExit(f"{home}: the service did not become ready")
        time.sleep(0.2)
    try:
        yield base, app.state.svc
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def pick(rng: random.Random, table) -> str:
    return rng.choices([k for k, _ in table], weights=[w for _, w in table])[0]


def fill(base: str, state, shortlists: int, items: int, outcomes: int, seed: int) -> dict:
    """Shortlists through the API; one review per item and ``outcomes`` outcomes as the routes store them."""
    from matcher.store import repo
    from matcher.store.models import Outcome, Review, Shortlist, ShortlistItem

    store = state.store
    staff = {"Authorization": f"Bearer {repo.create_key(store, 'staff', name='overview bench staff')[0]}"}
    gaps = httpx.get(f"{base}/v1/gaps", headers=staff, timeout=60).json()["gaps"]
    started = time.perf_counter()
    with httpx.Client(base_url=base, headers=staff, timeout=120) as client:
        for i in range(shortlists):
            response = client.post("/v1/shortlists", json={"gap_id": gaps[i % len(gaps)]["gap_id"], "top": items})
            if response.status_code != 201:
                raise SystemExit(f"shortlist {i}: {response.status_code} {response.text[:200]}")
            if (i + 1) % 100 == 0:
                print(f"  {i + 1} shortlists", flush=True)
    made = time.perf_counter() - started

    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    reasons = {v: [code for code, (_, _, verdicts) in repo.REVIEW_REASONS.items() if v in verdicts] for v, _ in VERDICTS}
    engine = sa.create_engine(store.url)
    with engine.begin() as connection:
        rows = connection.execute(sa.select(ShortlistItem.id, ShortlistItem.shortlist_id, ShortlistItem.enterprise_id,
                                            Shortlist.gap_id).join(Shortlist, Shortlist.id == ShortlistItem.shortlist_id)).all()
        reviews, updates, approved = [], [], []
        for item_id, shortlist_id, enterprise_id, gap_id in rows:
            verdict = pick(rng, VERDICTS)
            reason = rng.choice(reasons[verdict])
            at = now - timedelta(days=rng.uniform(0, 90))
            reviews.append({"item_id": item_id, "shortlist_id": shortlist_id, "gap_id": gap_id, "enterprise_id": enterprise_id,
                            "verdict": verdict, "reason_code": reason, "comment": "", "reviewer": "bench leader",
                            "role": "chain_leader", "created_at": at, "item_version": 1})
            updates.append({"b_id": item_id, "status": repo.VERDICT_STATUS[verdict], "reason_code": reason, "reviewed_at": at,
                            "reviewed_by": "bench leader"})
            if verdict == "approve":
                approved.append((enterprise_id, gap_id, at))
        connection.execute(sa.insert(Review), reviews)
        table = ShortlistItem.__table__
        connection.execute(table.update().where(table.c.id == sa.bindparam("b_id"))
                           .values(status=sa.bindparam("status"), reason_code=sa.bindparam("reason_code"),
                                   reviewed_at=sa.bindparam("reviewed_at"), reviewed_by=sa.bindparam("reviewed_by"),
                                   version=1), updates)
        # Outcomes are append-only stage rows; a pair's latest is its state. Each approved pair walks
        # the funnel to a final stage drawn from STAGES; when every pair has had its approach and
        # rows are still wanted, firms are approached again (as after a decline), until
        # ``outcomes`` rows are written.
        pairs = list({(e, g): at for e, g, at in approved}.items())
        rng.shuffle(pairs)
        funnel = ("contacted", "visited", "negotiating", "signed", "landed")
        stage_rows = []
        while pairs and len(stage_rows) < outcomes:
            for (e, g), approved_at in pairs:
                final = pick(rng, STAGES)
                path = ["contacted", "declined"] if final == "declined" else list(funnel[: funnel.index(final) + 1])
                day = approved_at + timedelta(days=rng.uniform(1, 40))
                for previous, stage in zip([None, *path], path):
                    stage_rows.append({"enterprise_id": e, "gap_id": g, "stage": stage, "previous_stage": previous,
                                       "date": min(day, now).date(), "reason": "other" if stage == "declined" else None,
                                       "note": "", "recorded_by": "bench staff", "recorded_at": min(day, now)})
                    day += timedelta(days=rng.uniform(3, 30))
                if len(stage_rows) >= outcomes:
                    break
        connection.execute(sa.insert(Outcome), stage_rows[:outcomes])
    engine.dispose()
    return {"shortlists": shortlists, "items": len(rows), "reviews": len(reviews), "outcomes": outcomes,
            "shortlists_seconds": round(made, 1)}


def timed_get(client: httpx.Client, path: str, repeat: int) -> dict:
    client.get(path).raise_for_status()  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        client.get(path).raise_for_status()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 1), "p90_ms": round(times[int(0.9 * (len(times) - 1))], 1),
            "min_ms": round(times[0], 1), "max_ms": round(times[-1], 1), "n": repeat}


# Sets the address and resolves with the milliseconds until ``n`` segments are drawn.
DRAW_SCRIPT = """
const [hash, n, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
const started = performance.now();
location.hash = hash;
(function poll() {
  if (document.querySelectorAll("[data-testid='map-segment']").length === n) { done(performance.now() - started); }
  else if (performance.now() - started > 30000) { done(-1); }
  else { requestAnimationFrame(poll); }
})();
"""


def map_render(base: str, key: str, chain_id: str, segments: int, repeat: int) -> dict | str:
    """Milliseconds from setting the map's address to every segment drawn, in headless Chromium."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        return f"skipped: needs {CHROMIUM} and {CHROMEDRIVER}"
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage", "--window-size=1366,768"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(60)
    try:
        driver.get(f"{base}/ui")
        field = WebDriverWait(driver, 60).until(lambda d: d.find_element(By.CSS_SELECTOR, "[data-testid='key-input']"))
        field.send_keys(key)
        driver.find_element(By.CSS_SELECTOR, "[data-testid='signin-submit']").click()
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='overview-row']"))
        times = []
        for i in range(repeat + 1):
            driver.execute_script("location.hash = '#/overview';")
            WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='overview-row']"))
            ms = driver.execute_async_script(DRAW_SCRIPT, f"#/chains/{chain_id}/map", segments)
            if ms < 0:
                return "the map was not drawn within 30 s"
            if i:  # the first is the warm-up
                times.append(ms)
        times.sort()
        return {"p50_ms": round(statistics.median(times), 1), "p90_ms": round(times[int(0.9 * (len(times) - 1))], 1),
                "min_ms": round(times[0], 1), "max_ms": round(times[-1], 1), "n": repeat, "segments": segments}
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="a built workspace (matcher demo --home H)")
    parser.add_argument("--shortlists", type=int, default=500)
    parser.add_argument("--items", type=int, default=40, help="prospects per shortlist (each gets one review)")
    parser.add_argument("--outcomes", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432",
                        help="PostgreSQL server for the throwaway database")
    parser.add_argument("--out", type=Path, default=OUT_FILE)
    args = parser.parse_args()

    from matcher.store import repo

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    results = {"created_at": datetime.now(timezone.utc).isoformat(), "commit": commit, "home": str(args.home),
               "machine": platform.platform(), "processor": platform.processor(), "python": platform.python_version()}
    try:
        database = postgres_database(args.postgres, "matcher_overview")
        url = database.__enter__()
    except sa.exc.OperationalError as exc:
        raise SystemExit(f"PostgreSQL not reachable at {args.postgres}: {str(exc.orig or exc).splitlines()[0]}") from None
    try:
        with running_service(args.home, url) as (base, state):
            print(f"filling: {args.shortlists} shortlists of {args.items}, one review per item, {args.outcomes} outcomes", flush=True)
            results["data"] = fill(base, state, args.shortlists, args.items, args.outcomes, args.seed)
            general = repo.create_key(state.store, "general_leader", name="overview bench general leader")[0]
            chains = state.holder.current.catalog.chain_map.chains
            results["data"]["chains"] = len(chains)
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {general}"}, timeout=120) as client:
                results["overview"] = timed_get(client, "/v1/overview", args.repeat)
                results["overview_export"] = timed_get(client, "/v1/overview/export", max(5, args.repeat // 3))
            widest = max(chains, key=lambda c: len(c.segments))
            results["map"] = map_render(base, general, widest.id, len(widest.segments), args.repeat)
    finally:
        database.__exit__(None, None, None)

    d = results["data"]
    print(f"\n{d['chains']} chains, {d['shortlists']} shortlists ({d['items']} items), {d['reviews']} reviews, "
          f"{d['outcomes']} outcomes (PostgreSQL)")
    print("| measure | p50 | p90 | min | max | target |\n|---|---:|---:|---:|---:|---|")
    for name, target in (("overview", "p50 <= 300 ms"), ("overview_export", "-"), ("map", "<= 500 ms")):
        r = results[name]
        if isinstance(r, str):
            print(f"| {name} | {r} | | | | {target} |")
        else:
            print(f"| {name} | {r['p50_ms']} ms | {r['p90_ms']} ms | {r['min_ms']} ms | {r['max_ms']} ms | {target} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
