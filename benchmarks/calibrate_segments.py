"""Calibrate the segment-assignment threshold and margin on the sample generator's labels.

Local enterprises are assigned to segments by similarity (matcher/chains.py). The sample
generator knows each firm's true segments (labels.csv; distractor and generic firms have none),
so precision and recall of the assignment (on standardised similarities, see matcher/chains.py)
can be measured over a grid. Also reports how well the
resulting missing/weak classification finds the segments the generator left empty or thin.

    python benchmarks/calibrate_segments.py --home HOME   # a workspace built by 'matcher demo'
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from matcher import schemas as S
from matcher.artifacts import version_dir
from matcher.catalog import Catalog
from matcher.chains import assign_segments


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    args = parser.parse_args()
    catalog = Catalog.load(version_dir(args.home / "models" / "matcher"))
    labels = pd.read_csv(args.home / "data" / "samples" / "labels.csv", dtype=str, keep_default_na=False)
    truth = dict(zip(labels["enterprise_id"], labels["segments"].map(lambda s: set(filter(None, s.split(";"))))))
    ents = catalog.enterprises
    local = ents[S.IS_LOCAL].to_numpy(dtype=bool) & ~ents[S.STATUS_CLASS].isin(S.NOT_PROSPECTS).to_numpy()
    ids = ents.loc[local, S.ENTERPRISE_ID].to_numpy()
    seg = catalog.segments
    sims = (np.asarray(catalog.searcher.vectors)[local] @ catalog.segment_vectors.T - seg["similarity_mean"].to_numpy()) / seg["similarity_sd"].to_numpy()
    segment_ids = [s.id for _, s in catalog.chain_map.segments()]
    true = np.array([[seg in truth.get(e, set()) for seg in segment_ids] for e in ids])

    rows = []
    for threshold in (1.25, 1.5, 1.75, 2.0, 2.25, 2.5):
        for margin in (0.0, 0.25, 0.5, 1.0):
            pred = assign_segments(sims, float(threshold), margin)
            tp = (pred & true).sum()
            precision = tp / max(pred.sum(), 1)
            recall = tp / max(true.sum(), 1)
            f1 = 2 * precision * recall / max(precision + recall, 1e-9)
            rows.append({"threshold": round(float(threshold), 2), "margin": margin, "precision": precision, "recall": recall, "f1": f1})
    grid = pd.DataFrame(rows).sort_values("f1", ascending=False)
    print("| threshold | margin | precision | recall | F1 |\n|---|---|---|---|---|")
    for r in grid.head(8).itertuples():
        print(f"| {r.threshold:.2f} | {r.margin:.2f} | {r.precision:.3f} | {r.recall:.3f} | {r.f1:.3f} |")
    used = catalog.manifest["segment_assignment"]
    current = grid[(grid.threshold == round(used["threshold"], 2)) & (np.isclose(grid.margin, used["margin"]))]
    if len(current):
        r = current.iloc[0]
        print(f"\nin use: threshold {used['threshold']}, margin {used['margin']}: precision {r.precision:.3f}, recall {r.recall:.3f}, F1 {r.f1:.3f}")
    true_counts = dict(zip(segment_ids, true.sum(axis=0)))
    seg = catalog.segments.assign(true_strength=catalog.segments["segment_id"].map(true_counts))
    print("\nsegments the generator left empty (true strength 0) and how they were classified:")
    print(seg[seg.true_strength == 0][["segment_id", "strength", "status"]].to_string(index=False))
    print("\nsegments classified missing/weak with their true strength:")
    print(seg[seg.status != "strong"][["segment_id", "true_strength", "strength", "status"]].to_string(index=False))
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    (out / "calibration.json").write_text(grid.to_json(orient="records", indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
