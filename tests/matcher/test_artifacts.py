"""Versioned artifact directories: manifest, verify, atomic publish, CURRENT, keep N, rollback."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from matcher import artifacts
from matcher.errors import ArtifactCorruptError, ArtifactNotFoundError, UnknownEntityError


def stage(artifacts_dir, version, payload=b"vectors", manifest=None):
    staged = artifacts.staging_dir(artifacts_dir, version)
    (staged / "index.bin").write_bytes(payload)
    (staged / "lexical").mkdir()
    (staged / "lexical" / "vocab.json").write_text('{"lidar": 0}')
    artifacts.write_manifest(staged, version, manifest or {"counts": {"enterprises": 3}})
    return staged


def publish(artifacts_dir, version, keep=5, **kwargs):
    return artifacts.publish(artifacts_dir, stage(artifacts_dir, version, **kwargs), version, keep)


def test_new_version_is_dated_and_fingerprinted():
    version = artifacts.new_version(datetime(2026, 11, 27, 10, 15, 0, tzinfo=timezone.utc), "3f2a9c1bdeadbeef")

    assert version == "20261127T101500Z-3f2a9c1"


def test_manifest_lists_every_file_with_its_sha256(tmp_path):
    staged = stage(tmp_path, "v1")

    manifest = json.loads((staged / artifacts.MANIFEST).read_text())

    assert manifest["version"] == "v1"
    assert manifest["counts"] == {"enterprises": 3}
    assert set(manifest["files"]) == {"index.bin", "lexical/vocab.json"}
    assert all(len(sha) == 64 for sha in manifest["files"].values())


def test_publish_moves_the_version_in_and_points_current_at_it(tmp_path):
    final = publish(tmp_path, "v1")

    assert final == tmp_path / "v1"
    assert artifacts.current_version(tmp_path) == "v1"
    assert artifacts.version_dir(tmp_path) == final
    assert not any(p.name.startswith(".tmp") for p in tmp_path.iterdir())
    assert artifacts.verify(final)["version"] == "v1"


def test_publishing_again_moves_current_forward(tmp_path):
    publish(tmp_path, "v1")
    publish(tmp_path, "v2")

    assert artifacts.current_version(tmp_path) == "v2"
    assert artifacts.list_versions(tmp_path) == ["v1", "v2"]


def test_an_existing_version_is_never_overwritten(tmp_path):
    publish(tmp_path, "v1", payload=b"original")

    with pytest.raises(ArtifactCorruptError, match="v1"):
        publish(tmp_path, "v1", payload=b"replacement")

    assert (tmp_path / "v1" / "index.bin").read_bytes() == b"original"


def test_keep_n_prunes_the_oldest_versions(tmp_path):
    for i in range(1, 6):
        publish(tmp_path, f"v{i}", keep=3)

    assert artifacts.list_versions(tmp_path) == ["v3", "v4", "v5"]
    assert artifacts.current_version(tmp_path) == "v5"
    assert not (tmp_path / "v1").exists()


def test_prune_never_removes_the_current_version(tmp_path):
    for i in range(1, 4):
        publish(tmp_path, f"v{i}", keep=5)
    artifacts.set_current(tmp_path, "v1")  # rolled back

    removed = artifacts.prune(tmp_path, keep=1)

    assert "v1" not in removed
    assert (tmp_path / "v1").is_dir()
    assert artifacts.current_version(tmp_path) == "v1"


def test_prune_removes_stale_staging_directories(tmp_path):
    publish(tmp_path, "v1")
    artifacts.staging_dir(tmp_path, "v-crashed")

    artifacts.prune(tmp_path, keep=5)

    assert not (tmp_path / ".tmp-v-crashed").exists()
    assert artifacts.list_versions(tmp_path) == ["v1"]


def test_half_written_versions_are_not_listed(tmp_path):
    publish(tmp_path, "v1")
    (tmp_path / "v2").mkdir()  # no manifest: incomplete
    artifacts.staging_dir(tmp_path, "v3")

    assert artifacts.list_versions(tmp_path) == ["v1"]


def test_set_current_rolls_back_and_forward(tmp_path):
    publish(tmp_path, "v1")
    publish(tmp_path, "v2")

    artifacts.set_current(tmp_path, "v1")
    assert artifacts.current_version(tmp_path) == "v1"
    assert artifacts.version_dir(tmp_path) == tmp_path / "v1"

    artifacts.set_current(tmp_path, "v2")
    assert artifacts.current_version(tmp_path) == "v2"


def test_set_current_to_an_unknown_version_names_it_and_keeps_current(tmp_path):
    publish(tmp_path, "v1")

    with pytest.raises(UnknownEntityError, match="v9"):
        artifacts.set_current(tmp_path, "v9")

    assert artifacts.current_version(tmp_path) == "v1"


def test_no_published_version_is_artifact_not_found(tmp_path):
    with pytest.raises(ArtifactNotFoundError, match="matcher build"):
        artifacts.current_version(tmp_path)
    with pytest.raises(ArtifactNotFoundError):
        artifacts.version_dir(tmp_path)
    assert artifacts.list_versions(tmp_path / "missing") == []


def test_version_dir_of_a_missing_version_names_it(tmp_path):
    publish(tmp_path, "v1")

    with pytest.raises(ArtifactNotFoundError, match="v7"):
        artifacts.version_dir(tmp_path, "v7")


def test_verify_detects_a_tampered_file_and_names_it(tmp_path):
    final = publish(tmp_path, "v1")
    (final / "lexical" / "vocab.json").write_text('{"lidar": 1}')

    with pytest.raises(ArtifactCorruptError) as info:
        artifacts.verify(final)

    assert str(final / "lexical" / "vocab.json") in str(info.value)


def test_verify_detects_a_missing_file_and_names_it(tmp_path):
    final = publish(tmp_path, "v1")
    (final / "index.bin").unlink()

    with pytest.raises(ArtifactCorruptError, match="index.bin"):
        artifacts.verify(final)


def test_verify_without_manifest_is_corrupt(tmp_path):
    (tmp_path / "v1").mkdir()

    with pytest.raises(ArtifactCorruptError, match="manifest.json"):
        artifacts.verify(tmp_path / "v1")


def test_publish_refuses_a_staged_version_that_fails_verification(tmp_path):
    publish(tmp_path, "v1")
    staged = stage(tmp_path, "v2")
    (staged / "index.bin").write_bytes(b"changed after the manifest")

    with pytest.raises(ArtifactCorruptError, match="index.bin"):
        artifacts.publish(tmp_path, staged, "v2", keep=5)

    assert artifacts.current_version(tmp_path) == "v1"
    assert artifacts.list_versions(tmp_path) == ["v1"]


def test_current_pointer_is_a_single_line(tmp_path):
    publish(tmp_path, "v1")

    assert (tmp_path / artifacts.CURRENT).read_text() == "v1\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_published_version_loads_without_rehashing_unchanged_files(tmp_path, monkeypatch):
    """A 10M-firm version is ~30 GB: workers trust the stat recorded when publish hashed it all,
    and hash again only what changed since (or everything with full=True)."""
    final = publish(tmp_path, "v1")
    hashed = []
    real = artifacts.file_sha256
    monkeypatch.setattr(artifacts, "file_sha256", lambda path: hashed.append(path.name) or real(path))

    artifacts.verify(final)
    assert hashed == []

    (final / "lexical" / "vocab.json").write_text('{"lidar": 1}')
    with pytest.raises(ArtifactCorruptError, match="vocab.json"):
        artifacts.verify(final)
    assert hashed == ["vocab.json"]

    hashed.clear()
    with pytest.raises(ArtifactCorruptError):
        artifacts.verify(final, full=True)
    assert len(hashed) >= 1
