"""Embedding throughput: our Encoder against plain fp32 SentenceTransformer.encode, same process.

Embeds real company descriptions (``company_name. short_description. long_description`` of the
first ``--n`` rows of ../shared/datasets/yc/yc-companies-2024-05-11.csv) and short profile-like
texts (``company_name. short_description``) with

- the baseline: ``SentenceTransformer(path, device="cpu").encode(texts, batch_size=64)`` in fp32;
- ``Encoder(precision=...)`` as the pipeline builds it (default backend);
- with ``--compare-backends``, each backend that can run here, named explicitly.

Every encoder is warmed up first; then the configurations take turns on each of ``--slices``
slices of the texts, so a machine shared with other work slows them alike: the ratio to the
baseline is what to read (wall time, with the per-slice median and range, and process CPU time,
which a busy machine disturbs less). Agreement is the cosine of each vector to the baseline's fp32
vector. Prints a markdown table and writes benchmarks/out/embedding.json. Never fails on timing;
skips cleanly when the YC snapshot is absent.

    python benchmarks/bench_embedding.py [--n 2000] [--precision auto] [--compare-backends]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SNAPSHOT = ROOT.parent / "shared" / "datasets" / "yc" / "yc-companies-2024-05-11.csv"
OUT = ROOT / "benchmarks" / "out" / "embedding.json"
BASELINE = "plain fp32 SentenceTransformer.encode (batch 64)"


def load_texts(path: Path, n: int) -> tuple[list[str], list[str]]:
    """Long descriptions and short profile-like texts of the first ``n`` companies."""
    described, short = [], []
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            name, tagline, about = (
                (row.get(k) or "").strip()
                for k in ("company_name", "short_description", "long_description")
            )
            described.append(". ".join(p for p in (name, tagline, about) if p))
            short.append(". ".join(p for p in (name, tagline) if p))
            if len(described) == n:
                break
    return described, short


def machine() -> dict:
    info = {"platform": platform.platform(), "cpus": os.cpu_count()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        pairs = (line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in pairs}
        info["cpu_model"] = fields.get("Model name")
        info["cores_per_socket"] = fields.get("Core(s) per socket")
        info["threads_per_core"] = fields.get("Thread(s) per core")
        flags = set(fields.get("Flags", "").split())
    except (OSError, subprocess.CalledProcessError):
        flags = set()
    info["bf16_flags"] = sorted(f for f in flags if re.fullmatch(r"amx_\w+|avx512_bf16", f))
    return info


def versions() -> dict:
    found = {"python": platform.python_version()}
    for name in ("torch", "sentence-transformers", "transformers", "numpy", "openvino"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def normalised(vectors) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def measure(
    configs: dict[str, Callable[[list[str]], np.ndarray]], texts: list[str], slices: int
) -> dict[str, dict]:
    """Time every configuration on the same texts, slice by slice, and compare with the baseline.

    The texts are cut into ``slices`` consecutive slices; each slice is embedded by every
    configuration in turn (the order rotates), so a change in the machine's load hits all
    configurations alike. Wall and process CPU seconds are summed over the slices.
    """
    for encode in configs.values():
        encode(texts[:64])
    labels = list(configs)
    wall = {label: [] for label in labels}
    cpu = {label: [] for label in labels}
    parts: dict[str, list[np.ndarray]] = {label: [] for label in labels}
    bounds = np.linspace(0, len(texts), slices + 1).astype(int)
    for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        for label in labels[k % len(labels) :] + labels[: k % len(labels)]:
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            vectors = configs[label](texts[lo:hi])
            wall[label].append(time.perf_counter() - start_wall)
            cpu[label].append(time.process_time() - start_cpu)
            parts[label].append(normalised(vectors))
    reference = np.concatenate(parts[BASELINE])
    base_wall, base_cpu = np.array(wall[BASELINE]), np.array(cpu[BASELINE])
    results = {}
    for label in labels:
        w, c = np.array(wall[label]), np.array(cpu[label])
        cosine = np.sum(np.concatenate(parts[label]) * reference, axis=1)
        per_slice = base_wall / w
        results[label] = {
            "texts_per_s": len(texts) / w.sum(),
            "ratio_vs_plain_fp32": base_wall.sum() / w.sum(),
            "ratio_per_slice_median": float(np.median(per_slice)),
            "ratio_per_slice_range": [float(per_slice.min()), float(per_slice.max())],
            "cpu_ratio_vs_plain_fp32": base_cpu.sum() / c.sum(),
            "wall_s": float(w.sum()),
            "cpu_s": float(c.sum()),
            "cosine_mean": float(cosine.mean()),
            "cosine_min": float(cosine.min()),
        }
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="companies to embed (default 2000)")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--batch-size", type=int, default=64, help="our Encoder's batch size")
    parser.add_argument(
        "--slices", type=int, default=8, help="slices the configurations take turns on (default 8)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)"
    )
    parser.add_argument(
        "--compare-backends",
        action="store_true",
        help="also time each backend by name (openvino, torch)",
    )
    args = parser.parse_args()
    if not SNAPSHOT.is_file():
        print(f"skipped: {SNAPSHOT} is not available")
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer

    from matcher.embedding import Encoder
    from matcher.embedding_models import resolve_model_path
    from matcher.openvino_backend import openvino_available

    if args.threads:
        torch.set_num_threads(args.threads)
    described, short = load_texts(SNAPSHOT, args.n)
    load_before = os.getloadavg()

    plain = SentenceTransformer(str(resolve_model_path("all-MiniLM-L6-v2")), device="cpu")
    configs: dict[str, Callable[[list[str]], np.ndarray]] = {
        BASELINE: lambda texts: plain.encode(texts, batch_size=64)
    }
    setup_s: dict[str, float | None] = {BASELINE: None}

    def add(note: str, **kwargs) -> Encoder:
        start = time.perf_counter()
        encoder = Encoder(precision=args.precision, batch_size=args.batch_size, **kwargs)
        label = f"Encoder({encoder.precision}, batch {encoder.batch_size}) on {encoder.backend}"
        label += note
        setup_s[label] = time.perf_counter() - start
        configs[label] = encoder.encode
        return encoder

    default = add(" [pipeline default]")
    if args.compare_backends:
        for backend in ("openvino", "torch") if openvino_available() else ("torch",):
            if backend != default.backend:
                add("", backend=backend)

    report = {
        "machine": machine(),
        "versions": versions(),
        "torch_threads": torch.get_num_threads(),
        "args": vars(args),
        "snapshot": SNAPSHOT.name,
        "results": {},
    }
    for set_name, texts in (("descriptions", described), ("short profiles", short)):
        results = measure(configs, texts, args.slices)
        for label, row in results.items():
            row["setup_s"] = setup_s[label]
        report["results"][set_name] = {"texts": len(texts), "configs": results}
    report["load_average"] = {"before": load_before, "after": os.getloadavg()}

    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2))
    m, v = report["machine"], report["versions"]
    print(
        f"{m.get('cpu_model')}, {m['cpus']} CPUs, bf16: {', '.join(m['bf16_flags']) or 'none'}; "
        f"torch threads {report['torch_threads']}; "
        f"load average {load_before[0]:.1f} -> {report['load_average']['after'][0]:.1f}"
    )
    print(", ".join(f"{k} {val}" for k, val in v.items() if val))
    for set_name, block in report["results"].items():
        print(f"\n{set_name} ({block['texts']} texts)\n")
        print(
            "| config | texts/s | x plain fp32 (wall) | per-slice median [range] "
            "| x plain fp32 (CPU s) | mean cos | min cos | setup s |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for label, row in block["configs"].items():
            setup = "-" if row["setup_s"] is None else f"{row['setup_s']:.1f}"
            low, high = row["ratio_per_slice_range"]
            print(
                f"| {label} | {row['texts_per_s']:.1f} | {row['ratio_vs_plain_fp32']:.2f} "
                f"| {row['ratio_per_slice_median']:.2f} [{low:.2f}-{high:.2f}] "
                f"| {row['cpu_ratio_vs_plain_fp32']:.2f} "
                f"| {row['cosine_mean']:.6f} | {row['cosine_min']:.6f} | {setup} |"
            )
    print(f"\nwrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
