"""CPU milliseconds per free-text search (``POST /v1/prospects/search``), in-process.

The route is called through the app (``TestClient``) against a built workspace, one distinct need
per request, and the process CPU time (all threads) per request is reported, with a breakdown of
the library steps measured the same way: query encoding, ranking, building the list entry and
explaining the page. CPU time, not wall time, so the figure is stable on a shared machine.

    python benchmarks/bench_search_cpu.py --home /tmp/demo --db /tmp/sb/bench.db --n 60
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def cpu_ms(fn) -> tuple[float, object]:
    started = time.process_time()
    result = fn()
    return (time.process_time() - started) * 1000, result


def previous_make_entry(catalog, gap, filters, ranked, features):
    """The list entry as it was made before: every row and feature vector, sha256 of their JSON."""
    import hashlib

    from matcher.features import FEATURES
    from matcher.retrieval import records
    from service.holder import _vector_rows, filters_dict

    rows = records(ranked)
    items = [{"enterprise_id": r["enterprise_id"], "rank": r["rank"], "score": r["score"], "features": v}
             for r, v in zip(rows, _vector_rows(features))]
    content = {"artifact_version": catalog.version, "ranker": catalog.ranker_name, "gap_id": gap.get("gap_id"),
               "query_text": gap["text"], "filters": filters_dict(filters), "excluded": sorted(filters.exclude_ids),
               "feature_names": list(FEATURES), "items": items}
    return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32], rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--db", type=Path, required=True, help="SQLite file for the service's own tables")
    parser.add_argument("--n", type=int, default=60, help="distinct needs searched")
    parser.add_argument("--compare", action="store_true",
                        help="also time the previous path per need: encoding on --compare-threads torch threads, "
                             "the list version as sha256 of the whole record's JSON, full explanations of the page")
    parser.add_argument("--compare-threads", type=int, default=2)
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from benchmarks.bench_service_load import search_needs
    from matcher.retrieval import Filters
    from matcher.settings import Settings
    from matcher.store import repo
    from service.app import create_app
    from service.holder import make_entry

    settings = Settings(home=args.home, database_url=f"sqlite:///{args.db}", service_warm_gaps=False,
                        service_warm_explain_top=0, service_auth_cache_s=60)
    app = create_app(settings)
    with TestClient(app) as client:
        deadline = time.monotonic() + 600
        while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        loaded = app.state.svc.holder.current
        c = loaded.catalog
        key = repo.create_key(app.state.svc.store, "staff", name="bench")[0]
        headers = {"Authorization": f"Bearer {key}"}
        chain_map = next(Path(c.path).glob("chain_map.yaml"))
        needs = search_needs(chain_map, 2 * args.n + 10)
        for text in needs[:5]:  # warm-up
            assert client.post("/v1/prospects/search", json={"text": text, "top": 20}, headers=headers).status_code == 200
        route, steps = [], {"encode": [], "rank": [], "make_entry": [], "explain_page": []}
        for text in needs[5:5 + args.n]:
            ms, response = cpu_ms(lambda: client.post("/v1/prospects/search", json={"text": text, "top": 20}, headers=headers))
            assert response.status_code == 200, response.text
            route.append(ms)
        try:
            from service.holder import explain_page
        except ImportError:  # before the short-reasons path existed
            def explain_page(entry, catalog, positions, lang):
                return entry.explanations(catalog, positions, lang)

        import torch

        from matcher.explain import explain_ranked

        service_threads = torch.get_num_threads()
        before = {"encode": [], "make_entry": [], "explain_page": []}
        for text in needs[5 + args.n:5 + 2 * args.n]:
            ms, vector = cpu_ms(lambda: c.encoder.encode([text])[0])
            steps["encode"].append(ms)
            gap = c.need_as_gap(text, vector)
            ms, (ranked, features) = cpu_ms(lambda: c.rank_pool(gap, vector, 1, Filters()))
            steps["rank"].append(ms)
            ms, entry = cpu_ms(lambda: make_entry(c, gap, Filters(), ranked, features))
            steps["make_entry"].append(ms)
            ms, _ = cpu_ms(lambda: (explain_page(entry, c, list(range(20)), "en"), entry.rows_at(list(range(20)))))
            steps["explain_page"].append(ms)
            if args.compare:  # the previous path, same text, same moment
                ms, _ = cpu_ms(lambda: previous_make_entry(c, gap, Filters(), ranked, features))
                before["make_entry"].append(ms)
                ms, _ = cpu_ms(lambda: explain_ranked(c.explain_inputs(gap), gap, ranked.iloc[:20], features.iloc[:20], features, "en"))
                before["explain_page"].append(ms)
        if args.compare:  # encoding on PyTorch's default threads: its own block (switching per call costs a pool restart)
            torch.set_num_threads(args.compare_threads)
            for text in needs[:3]:
                c.encoder.encode([text])
            for text in needs[5 + args.n:5 + 2 * args.n]:
                ms, _ = cpu_ms(lambda: c.encoder.encode([text])[0])
                before["encode"].append(ms)
            torch.set_num_threads(service_threads)
            for text in needs[5 + args.n:5 + 2 * args.n]:
                ms, _ = cpu_ms(lambda: c.encoder.encode([text])[0])
                steps["encode"].append(ms)  # the same block length on one thread, just after
    report = {"home": str(args.home), "enterprises": len(c.enterprises), "searches": args.n,
              "route_cpu_ms_median": round(statistics.median(route), 1), "route_cpu_ms_mean": round(statistics.mean(route), 1),
              "torch_threads": service_threads,
              **{f"{k}_cpu_ms_median": round(statistics.median(v), 1) for k, v in steps.items()}}
    if args.compare:
        report["previous_path"] = {"torch_threads": args.compare_threads, "rank_cpu_ms_median": report["rank_cpu_ms_median"],
                                   **{f"{k}_cpu_ms_median": round(statistics.median(v), 1) for k, v in before.items()}}
        report["steps_cpu_ms_now"] = round(sum(report[f"{k}_cpu_ms_median"] for k in steps), 1)
        report["steps_cpu_ms_previous"] = round(sum(v for k, v in report["previous_path"].items() if k.endswith("_median")), 1)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
