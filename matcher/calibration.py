"""Choosing the embedding backend by measurement on the machine at hand.

Which inference engine embeds fastest differs between machines of the same kind: OpenVINO ran
3.2x plain PyTorch fp32 on one 2-core EPYC and 1.79x on another, where PyTorch bf16 reached 2.12x
(benchmarks/RESULTS.md). So with ``embedding_backend: auto`` the first build on a machine embeds
a few hundred of the snapshot's own profiles through each available backend at the run's
precision, checks each backend's vectors against PyTorch fp32 (the model's reference
implementation; cosine >= ``MIN_COSINE`` per profile, the check the tests hold every backend to),
and keeps the fastest that passes. The result is stored in the workspace per machine signature
(CPU model and matrix-instruction flags, core count, library versions), so later builds and
refreshes on the same machine reuse it, and it is recorded in each version's manifest.

The backend is not part of the embedding cache key (both backends make the same vectors to
within bf16 rounding), so a choice that differs between machines never invalidates the cache.
Setting ``embedding_backend`` to ``openvino`` or ``torch`` skips the calibration.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from matcher.artifacts import package_version
from matcher.embedding import Encoder
from matcher.embedding_models import resolve_precision
from matcher.openvino_backend import openvino_available
from matcher.errors import ConfigError

CALIBRATION_TEXTS = 256  # profiles timed through each backend
# Measuring takes ~35 s beyond the build's own model loading (256 YC descriptions, fp32 reference
# plus two timed rounds per backend; benchmarks/RESULTS.md); below this many profiles to embed that
# is more than the faster backend could save, so a machine is calibrated by its first build of at
# least this size.
CALIBRATE_MIN_PROFILES = 5_000
MIN_COSINE = 0.9999  # a backend whose vectors stray further from PyTorch fp32 is not chosen
ROUNDS = 2  # timed passes per backend, interleaved; the fastest counts (shared, noisy machines)
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def machine_signature() -> dict:
    """What decides which backend is fastest: CPU model, its matrix-instruction flags, cores and
    the inference libraries' versions."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    flags = re.search(r"^flags\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    present = set(flags.group(1).split()) if flags else set()
    of = package_version
    return {
        "cpu": model.group(1).strip() if model else platform.processor() or platform.machine(),
        "flags": [f for f in CPU_FLAGS if f in present],
        "cpus": os.cpu_count() or 1,
        "torch": of("torch"),
        "openvino": of("openvino"),
    }


def available_backends() -> list[str]:
    return ["openvino", "torch"] if openvino_available() else ["torch"]


def calibrate(
    model: str,
    precision: str,
    texts: Sequence[str],
    batch_size: int,
    backends: Sequence[str] | None = None,
    make_encoder: Callable[..., Encoder] = Encoder,
) -> dict:
    """Time ``texts`` through each backend at ``precision`` and choose the fastest whose vectors
    agree with PyTorch fp32. Returns the record stored and written into manifests."""
    texts = list(texts)
    if not texts:
        raise ValueError("calibration needs at least one text")
    precision = resolve_precision(precision)
    reference = make_encoder(model, "fp32", batch_size, backend="torch").encode(texts)
    encoders: dict[str, Encoder] = {}
    candidates: dict[str, dict] = {}
    for backend in backends or available_backends():
        try:
            encoder = make_encoder(model, precision, batch_size, backend=backend)
        except ConfigError as exc:  # the model does not convert on this machine
            candidates[backend] = {"backend": backend, "passed": False, "reason": str(exc)}
            continue
        if encoder.backend != backend:  # the model did not convert: not a candidate on this machine
            candidates[backend] = {"backend": backend, "passed": False, "reason": f"runs as {encoder.backend}"}
            continue
        encoder.encode(texts[: min(len(texts), batch_size)])  # warm-up: first-call allocations
        encoders[backend] = encoder
        candidates[backend] = {"backend": backend, "seconds": float("inf")}
    for _ in range(ROUNDS):
        for backend, encoder in encoders.items():
            started = time.perf_counter()
            vectors = encoder.encode(texts)
            seconds = time.perf_counter() - started
            entry = candidates[backend]
            entry["seconds"] = min(entry["seconds"], seconds)
            entry["min_cosine"] = float(np.einsum("ij,ij->i", vectors, reference).min())
    for backend in encoders:
        entry = candidates[backend]
        entry["texts_per_s"] = round(len(texts) / entry["seconds"], 1)
        entry["seconds"] = round(entry["seconds"], 3)
        entry["min_cosine"] = round(entry["min_cosine"], 6)
        entry["passed"] = entry["min_cosine"] >= MIN_COSINE
        if not entry["passed"]:
            entry["reason"] = f"minimum cosine to PyTorch fp32 {entry['min_cosine']} < {MIN_COSINE}"
    passed = [c for c in candidates.values() if c["passed"]]
    # None passing can only mean a broken install; PyTorch is the reference implementation.
    chosen = max(passed, key=lambda c: c["texts_per_s"])["backend"] if passed else "torch"
    fastest = {c["backend"]: c["texts_per_s"] for c in passed}
    return {
        "chosen": chosen,
        "precision": precision,
        "texts": len(texts),
        "speedup_over_torch": round(fastest[chosen] / fastest["torch"], 3) if "torch" in fastest and chosen in fastest else None,
        "candidates": list(candidates.values()),
        "machine": machine_signature(),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def calibration_path(directory: Path, model: str, precision: str) -> Path:
    signature = json.dumps(machine_signature(), sort_keys=True)
    digest = hashlib.sha256(f"{signature}|{Path(model).name}|{resolve_precision(precision)}".encode()).hexdigest()
    return directory / f"{digest[:16]}.json"


def calibrated_backend(
    directory: Path,
    model: str,
    precision: str,
    texts: Callable[[], Sequence[str]],
    batch_size: int,
    measure: bool = True,
    make_encoder: Callable[..., Encoder] = Encoder,
) -> dict | None:
    """This machine's calibration for ``model`` at ``precision``: read from ``directory``, or,
    when there is none yet and ``measure``, measured on ``texts()`` and stored there (written
    atomically); None when there is none and ``measure`` is false."""
    path = calibration_path(directory, model, precision)
    if path.exists():
        try:
            record = json.loads(path.read_text())
            if record.get("chosen") in available_backends():
                return record
        except (OSError, ValueError):
            pass  # unreadable: measure again and overwrite
    if not measure:
        return None
    record = calibrate(model, precision, texts(), batch_size, make_encoder=make_encoder)
    directory.mkdir(parents=True, exist_ok=True)
    staged = path.with_suffix(f".{os.getpid()}.tmp")
    staged.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    os.replace(staged, path)
    return record


def calibration_texts(texts: Sequence[str], n: int | None = None, seed: int = 0) -> list[str]:
    """``n`` (default ``CALIBRATION_TEXTS``) of ``texts`` drawn at random (fixed seed), so the
    timed set has the corpus's own mix of lengths and languages."""
    n = n or CALIBRATION_TEXTS
    if len(texts) <= n:
        return list(texts)
    rng = np.random.default_rng(seed)
    return [texts[i] for i in np.sort(rng.choice(len(texts), n, replace=False))]
