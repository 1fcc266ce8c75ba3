"""Write a versioned scoring bundle exactly as docs/bundle.md describes.

Everything is written into a temporary directory inside the model root and
renamed to ``<model root>/<version>`` only when complete, with
``manifest.json`` written last; on any failure the temporary directory is
removed, so the model root never holds a half-written bundle.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import onnxruntime

from login_scorer_training.features import WIDTH
from login_scorer_training.golden import GoldenEvent

if TYPE_CHECKING:
    import keras

# NOTE: TensorFlow and tf2onnx are imported inside the functions that need
# them, so the CLI can reject bad input without paying seconds to load them.
INPUT_NAME = "features"
OUTPUT_NAME = "reconstruction"

LOG = logging.getLogger(__name__)

FORMAT_VERSION = 1
ONNX_OPSET = 17
BATCH_DIM = "batch"
#: Largest allowed |Keras - ONNX| difference of a reconstruction.
KERAS_ONNX_TOLERANCE = 1e-5
PACKAGES = (
    "tensorflow",
    "keras",
    "tf2onnx",
    "onnx",
    "onnxruntime",
    "numpy",
    "pyarrow",
    "scikit-learn",
)
_VERSION_NAME = re.compile(r"[1-9][0-9]*")


class ExportError(RuntimeError):
    """The bundle could not be written or failed its own checks."""


def next_version(model_root: Path) -> int:
    """One past the highest integer-named directory in ``model_root``."""
    if not model_root.is_dir():
        return 1
    versions = [
        int(entry.name)
        for entry in model_root.iterdir()
        if entry.is_dir() and _VERSION_NAME.fullmatch(entry.name)
    ]
    return max(versions, default=0) + 1


@contextmanager
def staging_directory(model_root: Path) -> Iterator[Path]:
    """A fresh ``.tmp-<pid>-*`` directory in ``model_root``, removed on exit.

    The caller renames it away with :func:`publish` on success; whatever is
    left when the block ends (normally or by an exception) is deleted.
    """
    model_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}-", dir=model_root))
    # mkdtemp makes the directory private; a bundle is read by the service,
    # which may run as another user.
    staging.chmod(0o755)
    try:
        yield staging
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def publish(staging: Path, model_root: Path, version: int) -> Path:
    """Atomically rename the finished bundle to its version directory."""
    target = model_root / str(version)
    if target.exists():
        raise ExportError(f"{target} already exists; not overwriting a bundle")
    os.rename(staging, target)
    LOG.info("published bundle %s", target)
    return target


def export_onnx(scorer: keras.Model, path: Path) -> None:
    """Convert ``scorer`` with tf2onnx; input ``features``, output
    ``reconstruction``, both float32 ``[batch, 8]`` with a dynamic batch."""
    import tensorflow as tf
    import tf2onnx

    signature = (tf.TensorSpec([None, WIDTH], tf.float32, name=INPUT_NAME),)
    proto, _ = tf2onnx.convert.from_keras(
        scorer, input_signature=signature, opset=ONNX_OPSET
    )
    graph = proto.graph
    if len(graph.output) != 1:
        raise ExportError(f"expected one ONNX output, got {len(graph.output)}")
    _rename_output(graph, graph.output[0].name, OUTPUT_NAME)
    for value in (graph.input[0], graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = BATCH_DIM
    onnx.checker.check_model(proto)
    check_onnx_signature(proto)
    onnx.save(proto, str(path))


def _rename_output(graph: onnx.GraphProto, old: str, new: str) -> None:
    if old == new:
        return
    for node in graph.node:
        node.output[:] = [new if name == old else name for name in node.output]
    graph.output[0].name = new


def check_onnx_signature(proto: onnx.ModelProto) -> None:
    """Fail unless the graph has the contract's single input and output."""
    for values, name in (
        (proto.graph.input, INPUT_NAME),
        (proto.graph.output, OUTPUT_NAME),
    ):
        if [value.name for value in values] != [name]:
            raise ExportError(f"ONNX graph must have exactly {name!r}")
        tensor = values[0].type.tensor_type
        dims = tensor.shape.dim
        if tensor.elem_type != onnx.TensorProto.FLOAT or len(dims) != 2:
            raise ExportError(f"{name!r} must be a float32 matrix")
        if not dims[0].dim_param or dims[0].dim_value:
            raise ExportError(f"{name!r} must have a dynamic batch dimension")
        if dims[1].dim_value != WIDTH:
            raise ExportError(f"{name!r} must have {WIDTH} columns")


class OnnxScorer:
    """Scores feature rows with onnxruntime, as the service does."""

    def __init__(self, path: Path):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )

    def reconstruct(self, features: np.ndarray, batch: int = 65536) -> np.ndarray:
        """The model's reconstruction of float32 ``features`` (rows x 8)."""
        parts = [
            self._session.run(
                [OUTPUT_NAME], {INPUT_NAME: features[start : start + batch]}
            )[0]
            for start in range(0, len(features), batch)
        ]
        if not parts:
            return np.empty((0, WIDTH), np.float32)
        return np.concatenate(parts)

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Reconstruction error (float64) of each row."""
        return reconstruction_error(features, self.reconstruct(features))


def reconstruction_error(
    features: np.ndarray, reconstruction: np.ndarray
) -> np.ndarray:
    """Per-row mean squared error, in float64 from float32 inputs (the score)."""
    difference = features.astype(np.float64) - reconstruction.astype(np.float64)
    return np.mean(difference * difference, axis=1)


def write_golden(
    path: Path, golden: list[GoldenEvent], scorer: keras.Model, onnx_scorer: OnnxScorer
) -> None:
    """Write golden.jsonl after checking Keras and ONNX agree on every row."""
    features = np.stack([row.features for row in golden]).astype(np.float32)
    from_onnx = onnx_scorer.reconstruct(features)
    from_keras = scorer.predict(features, batch_size=len(features), verbose=0)
    worst = float(np.max(np.abs(from_onnx - from_keras)))
    if not worst <= KERAS_ONNX_TOLERANCE:
        raise ExportError(
            f"Keras and ONNX reconstructions differ by {worst:.3g} "
            f"(> {KERAS_ONNX_TOLERANCE}) on golden rows"
        )
    LOG.info(
        "Keras and ONNX agree on %d golden rows (max diff %.3g)", len(golden), worst
    )
    scores = reconstruction_error(features, from_onnx)
    with path.open("w", encoding="utf-8") as out:
        for row, vector, score in zip(golden, features, scores, strict=True):
            line = {
                "event": row.event,
                "features": [float(value) for value in vector],
                "score": float(score),
                "label": row.label,
                "unseen": row.unseen,
                "missing": row.missing,
            }
            out.write(json.dumps(line, ensure_ascii=False) + "\n")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that made the bundle."""
    versions = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        versions[name] = metadata.version(name)
    return versions


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Write manifest.json last, fingerprinting every other file."""
    files = sorted(
        entry for entry in directory.iterdir() if entry.name != "manifest.json"
    )
    for entry in files:
        if not entry.is_file() or entry.is_symlink():
            raise ExportError(f"unexpected entry in bundle: {entry.name}")
    document = {
        "format_version": FORMAT_VERSION,
        **manifest,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "packages": package_versions(),
        "files": {entry.name: sha256_file(entry) for entry in files},
    }
    (directory / "manifest.json").write_text(json.dumps(document, indent=1) + "\n")
