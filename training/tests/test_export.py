"""Versioning and atomic publication of bundles, without training."""

from __future__ import annotations

from pathlib import Path

import pytest

from login_scorer_training import export


def test_next_version_counts_integer_directories_only(tmp_path: Path) -> None:
    assert export.next_version(tmp_path / "absent") == 1
    for name in ("1", "2", "10", "010", ".tmp-1-x", "latest"):
        (tmp_path / name).mkdir()
    (tmp_path / "11").write_text("a file, not a bundle")

    assert export.next_version(tmp_path) == 11


def test_staging_is_removed_when_the_block_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), export.staging_directory(tmp_path) as staging:
        (staging / "model.onnx").write_bytes(b"half")
        raise RuntimeError("export failed")

    assert list(tmp_path.iterdir()) == []


def test_publish_renames_and_never_overwrites(tmp_path: Path) -> None:
    with export.staging_directory(tmp_path) as staging:
        (staging / "manifest.json").write_text("{}")
        published = export.publish(staging, tmp_path, 3)

    assert published == tmp_path / "3"
    assert (published / "manifest.json").read_text() == "{}"
    assert [entry.name for entry in tmp_path.iterdir()] == ["3"]

    with (
        export.staging_directory(tmp_path) as staging,
        pytest.raises(export.ExportError, match="already exists"),
    ):
        export.publish(staging, tmp_path, 3)
    assert [entry.name for entry in tmp_path.iterdir()] == ["3"]
    assert (published / "manifest.json").read_text() == "{}"
