"""Calibrate and measure segment assignment on the sample generator's labels, in English or Chinese.

Local enterprises are assigned to segments (matcher/chains.py). The sample generator knows each
firm's true segments (labels.csv; distractor and generic firms have none), and the Chinese sample
(``matcher demo --lang zh``) has the same firms and labels as the English one of the same seed, so
the two languages are measured the same way:

- **in use**: precision and recall of the assignments the published version made;
- **grid**: precision and recall over thresholds and margins of the standardised embedding
  similarities (the calibration of matcher/chains.py's threshold and margin);
- **gaps**: of the segments the generator left empty among local firms, the share on the gap list
  (as missing or weak) and the share classified missing.

    python benchmarks/calibrate_segments.py --home HOME              # a workspace built by 'matcher demo'
    python benchmarks/calibrate_segments.py --home HOME_ZH --lang zh # one built by 'matcher demo --lang zh'
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from matcher import schemas as S
from matcher.artifacts import version_dir
from matcher.catalog import Catalog
from matcher.chains import assign_segments

THRESHOLDS = (1.25, 1.5, 1.75, 2.0, 2.25, 2.5)
MARGINS = (0.0, 0.25, 0.5, 1.0)


def sample_language(samples_dir: Path) -> str | None:
    """``en`` for the English sample's CSV export, ``zh`` for the Chinese XLSX export."""
    if list(samples_dir.glob("enterprises-*.xlsx")):
        return "zh"
    if (samples_dir / "enterprises.csv").is_file():
        return "en"
    return None


def precision_recall(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    tp = int((pred & true).sum())
    precision = tp / max(int(pred.sum()), 1)
    recall = tp / max(int(true.sum()), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-9)
    return {"precision": precision, "recall": recall, "f1": f1, "assigned": int(pred.sum()), "true": int(true.sum())}


def measure(home: Path) -> dict:
    """In-use, grid and gap-detection figures of the published version in ``home``."""
    catalog = Catalog.load(version_dir(home / "models" / "matcher"))
    labels = pd.read_csv(home / "data" / "samples" / "labels.csv", dtype=str, keep_default_na=False)
    truth = dict(zip(labels["enterprise_id"], labels["segments"].map(lambda s: set(filter(None, s.split(";"))))))
    ents = catalog.enterprises
    local = ents[S.IS_LOCAL].to_numpy(dtype=bool) & ~ents[S.STATUS_CLASS].isin(S.NOT_PROSPECTS).to_numpy()
    ids = ents.loc[local, S.ENTERPRISE_ID].to_numpy()
    segment_ids = [s.id for _, s in catalog.chain_map.segments()]
    column = {s: j for j, s in enumerate(segment_ids)}
    row = {e: i for i, e in enumerate(ids)}
    true = np.array([[seg in truth.get(e, set()) for seg in segment_ids] for e in ids], dtype=bool).reshape(len(ids), len(segment_ids))

    in_use = np.zeros_like(true)
    for e, seg in zip(catalog.assignments[S.ENTERPRISE_ID], catalog.assignments["segment_id"]):
        if e in row:
            in_use[row[e], column[seg]] = True

    seg = catalog.segments
    sims = (np.asarray(catalog.searcher.vectors)[local] @ catalog.segment_vectors.T - seg["similarity_mean"].to_numpy()) / seg["similarity_sd"].to_numpy()
    grid = [
        {"threshold": t, "margin": m, **precision_recall(assign_segments(sims, t, m), true)}
        for t in THRESHOLDS for m in MARGINS
    ]

    true_counts = dict(zip(segment_ids, true.sum(axis=0)))
    segments = seg.assign(true_strength=seg["segment_id"].map(true_counts))
    empty = segments[segments.true_strength == 0]
    on_gap_list = {g["segment_id"] for g in catalog.gaps if g["kind"] in ("missing", "weak")}
    return {
        "local_enterprises": int(len(ids)),
        "in_use": {**precision_recall(in_use, true), **catalog.manifest.get("segment_assignment", {})},
        "grid": sorted(grid, key=lambda r: -r["f1"]),
        "empty_segments": {
            "count": int(len(empty)),
            "on_gap_list": float(empty["segment_id"].isin(on_gap_list).mean()) if len(empty) else None,
            "classified_missing": float((empty["status"] == "missing").mean()) if len(empty) else None,
            "segments": empty[["segment_id", "strength", "status"]].to_dict("records"),
        },
        "flagged": segments[segments.status != "strong"][["segment_id", "true_strength", "strength", "status"]].to_dict("records"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="workspace built by 'matcher demo' (--lang as below)")
    parser.add_argument("--lang", choices=("en", "zh"), default="en", help="language of the sample in HOME")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    found = sample_language(args.home / "data" / "samples")
    if found != args.lang:
        what = f"a '{found}' sample" if found else "no sample"
        print(f"{args.home}: has {what}; build one with 'matcher demo --lang {args.lang} --home {args.home}'", file=sys.stderr)
        return 2
    report = {"lang": args.lang, **measure(args.home)}
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    (out / f"calibration-{args.lang}.json").write_text(json.dumps(report, indent=1, ensure_ascii=False, default=float))
    if args.json:
        print(json.dumps(report, indent=1, ensure_ascii=False, default=float))
        return 0
    u = report["in_use"]
    print(f"{args.lang}: {report['local_enterprises']} local enterprises")
    print(f"in use (threshold {u.get('threshold')}, margin {u.get('margin')}): precision {u['precision']:.3f}, "
          f"recall {u['recall']:.3f}, F1 {u['f1']:.3f} ({u['assigned']} assigned, {u['true']} true)")
    note = " (Chinese profiles are assigned by their Chinese-text similarity, not this)" if args.lang == "zh" else ""
    print(f"\nembedding similarity grid (best F1 first){note}:\n| threshold | margin | precision | recall | F1 |\n|---|---|---|---|---|")
    for r in report["grid"][:8]:
        print(f"| {r['threshold']:.2f} | {r['margin']:.2f} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} |")
    e = report["empty_segments"]
    if e["count"]:
        print(f"\n{e['count']} segments the generator left empty: {e['on_gap_list']:.0%} on the gap list (missing or weak), "
              f"{e['classified_missing']:.0%} classified missing")
        print(pd.DataFrame(e["segments"]).to_string(index=False))
    print("\nsegments classified missing/weak with their true strength:")
    print(pd.DataFrame(report["flagged"]).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
