"""Synthetic profile vectors at scale (1M-10M) that keep the real neighbourhood structure.

Perturbed copies of a few thousand points flatter an approximate index (every query has a tight
cluster of near-twins). Instead, each synthetic vector mixes two *random* real embedded profiles
with a random weight and adds Gaussian noise; the noise is calibrated so that, at the real set's
size, the distribution of nearest-neighbour similarities of synthetic vectors matches the real
one (quantiles printed and returned, for RESULTS).

Real vectors: the YC snapshot (/work/shared/datasets/yc) embedded with the project's encoder
(``matcher.embedding.Encoder``, the build's default model and backend), cached as ``.npy``.

    python benchmarks/synthetic_vectors.py --n 1000000 --out /work/scratch-ivf/vectors-1m.npy
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

YC_CSV = Path("/work/shared/datasets/yc/yc-companies-2024-05-11.csv")
QUANTILES = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99)
NOISE_GRID = tuple(round(x, 3) for x in np.arange(0.0, 0.81, 0.025))
# w ~ U(low, 1 - low): low 0 makes many near-copies of single real points, 0.5 only midpoints.
WEIGHT_LOW_GRID = (0.0, 0.1, 0.2, 0.3, 0.4)


def real_vectors(cache: Path, csv: Path = YC_CSV) -> np.ndarray:
    """The YC companies' profile vectors (name, descriptions, tags), embedded once and cached."""
    def texts() -> list[str]:
        from matcher.snapshot import profile_text

        yc = pd.read_csv(csv).fillna("")
        return [profile_text(row.company_name, f"{row.short_description} {row.long_description}".strip(), None)
                for row in yc.itertuples()]

    return _embedded(cache, texts)


def sample_vectors(cache: Path, csv: Path) -> np.ndarray:
    """The sample region's profile vectors (``matcher sample`` enterprises.csv), embedded once and cached."""
    return _embedded(cache, lambda: _sample_csv_texts(csv))


CN_CSV = Path("/work/shared/datasets/cn-listed/cn-listed-companies-2025-10-25.csv")
YC_2023_CSV = YC_CSV.with_name("yc-companies-2023-02-27.csv")


def real_pool(work: Path) -> tuple[np.ndarray, dict]:
    """Every real profile vector at hand, for a universe with more IVF lists than the YC set has
    companies (16,384 at 10M): the YC 2024 companies, the 2023 companies gone by 2024, the A-share
    companies (企业名称。经营范围。主营业务, the Chinese benchmark's profile) and the sample region
    (``matcher sample``, 20,000 firms), each embedded once with the build's encoder and cached in
    ``work``; a source whose data set is absent is left out. Returns the vectors and the count per
    source."""
    parts, counts = [real_vectors(work / "yc_vectors.npy")], {"yc_2024": 0}
    counts["yc_2024"] = len(parts[0])
    if YC_2023_CSV.is_file() or (work / "yc_2023_vectors.npy").is_file():
        parts.append(_embedded(work / "yc_2023_vectors.npy", _yc_2023_texts))
        counts["yc_2023_only"] = len(parts[-1])
    if CN_CSV.is_file() or (work / "cn_vectors.npy").is_file():
        parts.append(_embedded(work / "cn_vectors.npy", _cn_texts))
        counts["a_share"] = len(parts[-1])
    parts.append(_embedded(work / "sample_vectors.npy", lambda: _sample_texts(work / "sample-region")))
    counts["sample_region"] = len(parts[-1])
    return np.concatenate(parts), counts


def _embedded(cache: Path, texts_of) -> np.ndarray:
    if cache.is_file():
        return np.load(cache)
    from matcher.embedding import Encoder

    texts = sorted(set(t for t in texts_of() if len(t) > 20))
    t = time.perf_counter()
    vectors = np.ascontiguousarray(Encoder().encode(texts), dtype=np.float32)
    print(f"embedded {len(texts)} profiles for {cache.name} in {time.perf_counter() - t:.0f} s")
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    return vectors


def _yc_2023_texts() -> list[str]:
    from matcher.snapshot import profile_text

    now = set(pd.read_csv(YC_CSV, usecols=["company_name"])["company_name"])
    old = pd.read_csv(YC_2023_CSV).fillna("")
    return [profile_text(row.company_name, f"{row.short_description} {row.long_description}".strip(), None)
            for row in old.itertuples() if row.company_name not in now]


def _cn_texts() -> list[str]:
    from matcher.snapshot import profile_text

    cn = pd.read_csv(CN_CSV, dtype=str).fillna("")
    return [profile_text(name, f"{scope}。{business}".strip("。"), None)
            for name, scope, business in zip(cn["企业名称"], cn["经营范围"], cn["主营业务"])]


def _sample_texts(directory: Path) -> list[str]:
    """The sample region's profiles, generated with ``matcher sample`` (20,000 firms, its default seed)."""
    import subprocess
    import sys

    csv = directory / "enterprises.csv"
    if not csv.is_file():
        subprocess.run([sys.executable, "-m", "pipelines", "sample", "--out", str(directory), "--home",
                        str(directory / "home")], check=True, stdout=subprocess.DEVNULL)
    return _sample_csv_texts(csv)


def _sample_csv_texts(csv: Path) -> list[str]:
    from matcher.snapshot import profile_text

    firms = pd.read_csv(csv, dtype=str).fillna("")
    return [profile_text(name, scope, [k for k in keys.split(";") if k] or None)
            for name, scope, keys in zip(firms["company_name"], firms["business_scope"], firms["keywords"])]


def nn_similarities(vectors: np.ndarray, block: int = 4096) -> np.ndarray:
    """Each vector's highest cosine similarity to another vector of the same set."""
    out = np.empty(len(vectors), dtype=np.float32)
    for start in range(0, len(vectors), block):
        scores = vectors[start:start + block] @ vectors.T
        scores[np.arange(len(scores)), np.arange(start, start + len(scores))] = -np.inf
        out[start:start + block] = scores.max(axis=1)
    return out


def mix(real: np.ndarray, n: int, noise: float, rng: np.random.Generator, low: float = 0.0) -> np.ndarray:
    """``n`` vectors: w * a + (1 - w) * b + noise, a and b random real vectors, w ~ U(low, 1 - low),
    noise N(0, noise^2 / dim) per dimension (so its norm is about ``noise``), L2-normalised."""
    a = real[rng.integers(0, len(real), n)]
    b = real[rng.integers(0, len(real), n)]
    w = low + (1 - 2 * low) * rng.random((n, 1), dtype=np.float32)
    out = w * a + (1 - w) * b
    out += rng.normal(scale=noise / np.sqrt(real.shape[1]), size=out.shape).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def calibrate(real: np.ndarray, seed: int = 0, size: int = 5000) -> tuple[tuple[float, float], dict]:
    """The (noise, weight low) whose synthetic set best matches the real nearest-neighbour
    similarity quantiles (least largest gap), both sets of ``size`` vectors (a seeded subset of
    ``real`` when it is larger); with the quantiles of both."""
    if len(real) > size:
        real = real[np.sort(np.random.default_rng(seed).choice(len(real), size, replace=False))]
    want = np.quantile(nn_similarities(real), QUANTILES)
    best = None
    for low in WEIGHT_LOW_GRID:
        for noise in NOISE_GRID:
            synthetic = mix(real, len(real), noise, np.random.default_rng(seed), low)
            got = np.quantile(nn_similarities(synthetic), QUANTILES)
            gap = float(np.abs(got - want).max())
            if best is None or gap < best[2]:
                best = (noise, low, gap, got)
    noise, low, gap, got = best
    check = {
        "real_vectors": len(real),
        "noise": noise,
        "weight_low": low,
        "quantiles": list(QUANTILES),
        "real_nn_similarity": [round(float(x), 4) for x in want],
        "synthetic_nn_similarity": [round(float(x), 4) for x in got],
        "largest_gap": round(gap, 4),
    }
    return (noise, low), check


def write_synthetic(real: np.ndarray, n: int, mixing: tuple[float, float], out: Path, seed: int = 1,
                    chunk: int = 200_000) -> Path:
    """Write ``n`` synthetic vectors to ``out`` (``.npy``, float32), chunk by chunk."""
    out.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    target = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=(n, real.shape[1]))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        target[start:stop] = mix(real, stop - start, mixing[0], rng, mixing[1])
    target.flush()
    del target
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, required=True, help="synthetic vectors to write")
    parser.add_argument("--out", type=Path, required=True, help=".npy file to write")
    parser.add_argument("--real-cache", type=Path, default=Path("/work/scratch-ivf/yc_vectors.npy"))
    parser.add_argument("--sample-csv", type=Path, help="also mix the sample region's profiles (matcher sample's "
                        "enterprises.csv): more real profiles than IVF lists, so the lists cannot learn them")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    real = real_vectors(args.real_cache)
    if args.sample_csv:
        sample = sample_vectors(args.real_cache.with_name("sample_vectors.npy"), args.sample_csv)
        real = np.concatenate([real, sample])
        np.save(args.out.with_suffix(".real.npy"), real)
    mixing, check = calibrate(real)
    print(json.dumps(check))
    t = time.perf_counter()
    write_synthetic(real, args.n, mixing, args.out, args.seed)
    args.out.with_suffix(".check.json").write_text(json.dumps(check, indent=1))
    print(f"wrote {args.n} vectors to {args.out} in {time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()
