"""The OpenVINO backend of :class:`matcher.embedding.Encoder`: a loaded SentenceTransformer traced
once into OpenVINO (about 5 s; nothing written to disk; OpenVINO's converter, which sends usage
telemetry, is not used), checked against PyTorch on a probe batch and compiled for the CPU with one
stream per core. A compiled model is kept for the life of the process, one per model content,
precision and thread count (:func:`compiled_model`)."""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings

import numpy as np


def openvino_available() -> bool:
    """True when the optional ``openvino`` package can be imported."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


_COMPILED: dict[tuple, tuple] = {}
_COMPILED_LOCK = threading.Lock()


def compiled_model(model, fingerprint: str, precision: str, threads: int):
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
            expected = model(batch_features)["sentence_embedding"].float().numpy()
            got = _infer_openvino(request, batch_features, names)
            agreement = float(np.min(_row_cosines(expected, got)))
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


def _row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with the same row of ``b``, shape (n,), float32."""
    a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return np.sum(a * b, axis=1) / norms
