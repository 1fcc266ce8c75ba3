"""Train -> export -> golden round trip on a small file, as the service sees it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import pytest
from conftest import write_rba_csv

from login_scorer_training import export
from login_scorer_training.__main__ import main
from login_scorer_training.features import Preprocessor
from login_scorer_training.train import train_and_export

SEED = 5
EPOCHS = 20
BATCH = 64
BUNDLE_FILES = {
    "model.onnx",
    "preprocess.json",
    "golden.jsonl",
    "evaluation.json",
    "evaluation.md",
    "loss.png",
    "scores.png",
    "roc.png",
    "pr.png",
    "manifest.json",
}


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "rba.csv.gz"
    write_rba_csv(path, rows=3000, takeovers=12, seed=SEED)
    return path


@pytest.fixture(scope="module")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("artifacts") / "rba-autoencoder"


@pytest.fixture(scope="module")
def bundle(data_file: Path, model_root: Path) -> Path:
    return train_and_export(
        data=data_file,
        model_root=model_root,
        epochs=EPOCHS,
        batch_size=BATCH,
        seed=SEED,
    )


def _manifest(bundle: Path) -> dict[str, Any]:
    return json.loads((bundle / "manifest.json").read_text())


def _golden(bundle: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (bundle / "golden.jsonl").open()]


def test_bundle_layout_and_fingerprints(bundle: Path, data_file: Path) -> None:
    manifest = _manifest(bundle)

    assert bundle.name == "1"
    assert {entry.name for entry in bundle.iterdir()} == BUNDLE_FILES
    assert not [entry for entry in bundle.parent.iterdir() if entry.name != "1"]
    assert set(manifest["files"]) == BUNDLE_FILES - {"manifest.json"}
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((bundle / name).read_bytes()).hexdigest() == digest
    assert manifest["format_version"] == 1
    assert (manifest["name"], manifest["version"], manifest["kind"]) == (
        "rba-autoencoder",
        1,
        "autoencoder",
    )
    assert manifest["model"] == {
        "input": "features",
        "output": "reconstruction",
        "width": 8,
    }
    training = manifest["training"]
    file_digest = hashlib.sha256(data_file.read_bytes()).hexdigest()
    assert training["data_fingerprint"] == f"sha256:{file_digest}"
    assert training["rows"] == 3000
    assert (training["seed"], training["epochs"], training["batch_size"]) == (
        SEED,
        EPOCHS,
        BATCH,
    )
    assert manifest["packages"]["onnxruntime"] == onnxruntime.__version__
    assert (bundle / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_onnx_signature_has_a_dynamic_batch(bundle: Path) -> None:
    model = onnx.load(str(bundle / "model.onnx"))
    export.check_onnx_signature(model)
    session = onnxruntime.InferenceSession(str(bundle / "model.onnx"))

    for rows in (1, 7):
        features = np.random.default_rng(rows).random((rows, 8), dtype=np.float32)
        (output,) = session.run(["reconstruction"], {"features": features})
        assert output.shape == (rows, 8)
        assert output.dtype == np.float32


def test_golden_rows_replay_from_the_bundle_alone(bundle: Path) -> None:
    preprocessor = Preprocessor.from_json(
        json.loads((bundle / "preprocess.json").read_text())
    )
    session = onnxruntime.InferenceSession(str(bundle / "model.onnx"))
    golden = _golden(bundle)

    assert len(golden) >= 200
    labels = {row["label"] for row in golden}
    assert labels == {"normal", "takeover", "unseen", "missing"}
    for row in golden:
        encoded = preprocessor.encode_event(row["event"])
        np.testing.assert_allclose(encoded.features, row["features"], atol=1e-6)
        assert encoded.unseen == row["unseen"]
        assert encoded.missing == row["missing"]
        features = np.array([row["features"]], dtype=np.float32)
        (output,) = session.run(["reconstruction"], {"features": features})
        error = np.mean((features.astype(np.float64) - output.astype(np.float64)) ** 2)
        assert error == pytest.approx(row["score"], rel=1e-5)
    unseen = [row for row in golden if row["label"] == "unseen"]
    assert all(row["unseen"] for row in unseen)
    assert all(row["missing"] for row in golden if row["label"] == "missing")


def test_threshold_quantiles_and_metrics(bundle: Path) -> None:
    manifest = _manifest(bundle)
    quantiles = manifest["score_quantiles"]
    evaluation = json.loads((bundle / "evaluation.json").read_text())

    percentiles, scores = quantiles["percentiles"], quantiles["scores"]
    assert percentiles[0] == 0.0 and percentiles[-1] == 100.0
    assert np.all(np.diff(percentiles) > 0)
    assert np.all(np.diff(scores) >= 0)
    assert scores[percentiles.index(99.5)] == pytest.approx(manifest["threshold"])
    assert manifest["threshold_percentile"] == 99.5
    assert evaluation["test_takeovers"] == 12
    matrix = evaluation["confusion_matrix"]
    assert matrix["true_positive"] + matrix["false_negative"] == 12
    # 0.5% of normals flagged, give or take ties: the features are discrete,
    # so many logins share a score.
    assert 1 <= matrix["false_positive"] <= 0.01 * evaluation["test_normal"]
    for key in ("roc_auc", "pr_auc", "recall_at_fpr_0.1%", "recall_at_fpr_1%"):
        assert 0.0 <= evaluation[key] <= 1.0
        assert manifest["metrics"][key] == evaluation[key]
    # The takeovers are blatant (Romania, unseen OS): the model must notice.
    assert evaluation["roc_auc"] > 0.9


def test_same_seed_gives_the_same_bundle_as_the_next_version(
    bundle: Path, data_file: Path, model_root: Path
) -> None:
    again = train_and_export(
        data=data_file,
        model_root=model_root,
        epochs=EPOCHS,
        batch_size=BATCH,
        seed=SEED,
    )

    assert again.name == "2"
    assert _manifest(again)["version"] == 2
    assert (again / "golden.jsonl").read_bytes() == (
        bundle / "golden.jsonl"
    ).read_bytes()
    assert _manifest(again)["threshold"] == _manifest(bundle)["threshold"]
    assert _manifest(again)["score_quantiles"] == _manifest(bundle)["score_quantiles"]


def test_failed_check_leaves_nothing_behind(
    data_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "rba-autoencoder"
    monkeypatch.setattr(export, "KERAS_ONNX_TOLERANCE", -1.0)

    with pytest.raises(export.ExportError, match="Keras and ONNX"):
        train_and_export(data=data_file, model_root=root, epochs=1, batch_size=BATCH)

    assert list(root.iterdir()) == []


def test_cli_trains_a_vae(data_file: Path, tmp_path: Path) -> None:
    root = tmp_path / "rba-vae"
    args = ["train", "--data", str(data_file), "--model-root", str(root)]
    args += ["--kind", "vae", "--epochs", "2", "--batch-size", "256", "--seed", "1"]

    assert main(args) == 0

    bundle = root / "1"
    manifest = _manifest(bundle)
    assert (manifest["name"], manifest["kind"]) == ("rba-vae", "vae")
    session = onnxruntime.InferenceSession(str(bundle / "model.onnx"))
    row = _golden(bundle)[0]
    features = np.array([row["features"]], dtype=np.float32)
    first = session.run(["reconstruction"], {"features": features})[0]
    second = session.run(["reconstruction"], {"features": features})[0]
    np.testing.assert_array_equal(first, second)  # latent mean, no sampling
    error = np.mean((features.astype(np.float64) - first.astype(np.float64)) ** 2)
    assert error == pytest.approx(row["score"], rel=1e-5)
