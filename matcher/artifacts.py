"""Versioned artifact directories with a manifest, published atomically.

::

    <home>/models/matcher/
      CURRENT                       -> "20261127T101500Z-3f2a9c1"
      20261127T101500Z-3f2a9c1/
        manifest.json  index.faiss  vectors.npy  enterprises.arrow  lexical/  chains.json ...

Publishing: write into ``.tmp-<version>/``, write the manifest with every file's sha256, verify,
rename the directory into place, then rewrite ``CURRENT`` through a temporary file and
``os.replace``. Readers only ever follow ``CURRENT``, so they never see a half-written version.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import datetime
from pathlib import Path

from matcher.errors import ArtifactCorruptError, ArtifactNotFoundError, UnknownEntityError

MANIFEST = "manifest.json"
CURRENT = "CURRENT"
VERIFIED = ".verified.json"  # each file's stat when the version was last checked in full (see verify)


def package_version(package: str) -> str:
    """An installed package's version from its metadata (never importing it: importing torch just
    to read its version costs seconds), or "not installed"."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def new_version(now: datetime, fingerprint: str) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{fingerprint[:7]}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): file_sha256(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name not in (MANIFEST, VERIFIED)
    }


def staging_dir(artifacts_dir: Path, version: str) -> Path:
    """A fresh temporary directory to write a version into."""
    tmp = artifacts_dir / f".tmp-{version}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def _stat(path: Path) -> list[int]:
    status = path.stat()
    return [status.st_size, status.st_mtime_ns, status.st_ino, status.st_dev]


def verify(directory: Path, full: bool = False) -> dict:
    """Check every file against the manifest's sha256; return the manifest.

    :func:`publish` checks every byte and records each file's size, modification time and inode
    (``.verified.json``). Later loads hash only a file whose stat differs from that record (any
    write, copy or replacement changes it), unless ``full``: a service worker of a 10M-firm
    version would otherwise read ~30 GB before serving. Damage that leaves a file's stat as it was
    (a failing disk) is found by ``full``.
    """
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise ArtifactCorruptError(f"{directory}: no {MANIFEST}; the version is incomplete")
    manifest = json.loads(manifest_path.read_text())
    recorded = {}
    if not full and (directory / VERIFIED).is_file():
        try:
            recorded = json.loads((directory / VERIFIED).read_text())
        except ValueError:  # a damaged record only costs the full check
            recorded = {}
    for name, sha in manifest.get("files", {}).items():
        path = directory / name
        if not path.is_file():
            raise ArtifactCorruptError(f"{path}: listed in the manifest but missing")
        if recorded.get(name) == _stat(path):
            continue
        if file_sha256(path) != sha:
            raise ArtifactCorruptError(f"{path}: sha256 differs from the manifest")
    return manifest


def record_verified(directory: Path, manifest: dict) -> None:
    """Record the stat of every file of a fully verified version (see :func:`verify`)."""
    record = {name: _stat(directory / name) for name in manifest.get("files", {})}
    tmp = directory / f".{VERIFIED}.tmp"
    tmp.write_text(json.dumps(record))
    os.replace(tmp, directory / VERIFIED)


def write_manifest(staged: Path, version: str, manifest: dict) -> dict:
    """Write the manifest of a staged version, with the sha256 of every file in it."""
    manifest = {**manifest, "version": version, "files": file_hashes(staged)}
    # A new file, never an in-place rewrite: a staged version may hard-link its parent's files.
    tmp = staged / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False, default=str))
    os.replace(tmp, staged / MANIFEST)
    return manifest


def publish(artifacts_dir: Path, staged: Path, version: str, keep: int) -> Path:
    """Verify a staged version against its manifest and make it current (see module docstring)."""
    record_verified(staged, verify(staged, full=True))
    final = artifacts_dir / version
    if final.exists():
        raise ArtifactCorruptError(f"{final}: version already exists; versions are never overwritten")
    os.rename(staged, final)
    set_current(artifacts_dir, version)
    prune(artifacts_dir, keep)
    return final


def set_current(artifacts_dir: Path, version: str) -> None:
    """Point ``CURRENT`` at an existing version (also how a rollback is done)."""
    if not (artifacts_dir / version / MANIFEST).is_file():
        raise UnknownEntityError(f"version '{version}' not found in {artifacts_dir}")
    tmp = artifacts_dir / f".{CURRENT}.tmp-{os.getpid()}"
    tmp.write_text(version + "\n")
    os.replace(tmp, artifacts_dir / CURRENT)


def list_versions(artifacts_dir: Path) -> list[str]:
    """Complete versions, oldest first."""
    if not artifacts_dir.is_dir():
        return []
    return sorted(
        p.name for p in artifacts_dir.iterdir() if not p.name.startswith(".") and (p / MANIFEST).is_file()
    )


def current_version(artifacts_dir: Path) -> str:
    pointer = artifacts_dir / CURRENT
    if not pointer.is_file():
        raise ArtifactNotFoundError(
            f"{artifacts_dir}: no published version yet; run 'matcher build' (or 'matcher demo')"
        )
    return pointer.read_text().strip()


def version_dir(artifacts_dir: Path, version: str | None = None) -> Path:
    """Directory of ``version``, or of the current one."""
    version = version or current_version(artifacts_dir)
    path = artifacts_dir / version
    if not (path / MANIFEST).is_file():
        raise ArtifactNotFoundError(f"{path}: version '{version}' is missing or incomplete")
    return path


def prune(artifacts_dir: Path, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` versions (never the current one) and stale temp dirs."""
    current = current_version(artifacts_dir)
    versions = list_versions(artifacts_dir)
    removed = [v for v in versions[:-keep] if v != current] if keep < len(versions) else []
    for version in removed:
        shutil.rmtree(artifacts_dir / version, ignore_errors=True)
    for tmp in artifacts_dir.glob(".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    return removed
