"""Train an autoencoder on an RBA-format file and export a scoring bundle.

Reads the file (plain or gzip), splits normal logins into training,
validation and test rows (every takeover goes to test), fits the
preprocessing on the training rows, trains on normal logins only, evaluates
on the held-out rows and writes the next version of the bundle.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from login_scorer_training.reader import RbaFormatError, read_logins

LOG = logging.getLogger(__name__)

# TensorFlow's C++ start-up chatter (oneDNN notes, "failed call to cuInit" on
# a machine without a GPU, graph attribute warnings) is logged at ERROR level
# and is not ours to show; real failures still surface as Python exceptions.
# Set before TF is first imported; a user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DEFAULT_MODEL_ROOT = Path("artifacts/rba-autoencoder")
# Chosen by measurement on the 2M-row generated file; see docs/training.md.
DEFAULT_EPOCHS = 30
DEFAULT_BATCH_SIZE = 256
DEFAULT_SEED = 42
EARLY_STOPPING_PATIENCE = 5
TRAIN_PERCENT = 70
VALIDATION_PERCENT = 10


@dataclass(frozen=True)
class Split:
    """Row positions of each part; test holds normals and all takeovers."""

    train: np.ndarray
    validation: np.ndarray
    test_normal: np.ndarray
    test_takeover: np.ndarray


def split_rows(is_takeover: np.ndarray, seed: int) -> Split:
    """Shuffle normal rows into 70% train, 10% validation, 20% test.

    Takeovers never reach training or validation: the model must learn
    normal logins only, and the test set must be disjoint from both.

    TODO: rows, not users, are split, so one user's logins can sit on both
    sides; harmless for the notebook's 8 global features, but a model with
    per-user history features would need a split by user.
    """
    normal = np.flatnonzero(~is_takeover)
    if len(normal) < 3:
        raise ValueError(f"need at least 3 normal logins to split, got {len(normal)}")
    shuffled = np.random.default_rng(seed).permutation(normal)
    train_end = min(max(1, len(shuffled) * TRAIN_PERCENT // 100), len(shuffled) - 2)
    validation_end = len(shuffled) * (TRAIN_PERCENT + VALIDATION_PERCENT) // 100
    validation_end = min(max(validation_end, train_end + 1), len(shuffled) - 1)
    return Split(
        train=np.sort(shuffled[:train_end]),
        validation=np.sort(shuffled[train_end:validation_end]),
        test_normal=np.sort(shuffled[validation_end:]),
        test_takeover=np.flatnonzero(is_takeover),
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``train`` subcommand's options."""
    parser.add_argument(
        "--data", type=Path, required=True, help="RBA-format CSV, plain or .gz"
    )
    parser.add_argument(
        "--model-root",
        type=Path,
        default=DEFAULT_MODEL_ROOT,
        help="directory of versioned bundles (default: %(default)s); its last "
        "path component is the model name",
    )
    parser.add_argument(
        "--kind",
        choices=("autoencoder", "vae"),
        default="autoencoder",
        help="model kind (default: %(default)s)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=DEFAULT_EPOCHS,
        help="maximum epochs; early stopping may end sooner (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help="training batch size (default: %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="random seed (default: 42)"
    )
    parser.add_argument(
        "--version",
        type=int,
        default=None,
        help="bundle version to write (default: one past the highest existing); "
        "an existing version is never overwritten",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``train``; returns the process exit code."""
    if args.epochs < 1 or args.batch_size < 1:
        LOG.error("--epochs and --batch-size must be positive")
        return 2
    if args.version is not None and args.version < 1:
        LOG.error("--version must be a positive integer")
        return 2
    # Imported here so `--help` and bad-input errors do not pay for TensorFlow.
    from login_scorer_training.export import ExportError

    try:
        bundle = train_and_export(
            data=args.data,
            model_root=args.model_root,
            kind=args.kind,
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=args.seed,
            version=args.version,
        )
    except RbaFormatError as error:
        LOG.error("bad input: %s", error)
        return 1
    except (ExportError, ValueError) as error:
        LOG.error("training failed: %s", error)
        return 1
    LOG.info("bundle written to %s", bundle)
    return 0


def train_and_export(
    *,
    data: Path,
    model_root: Path,
    kind: str = "autoencoder",
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = DEFAULT_SEED,
    version: int | None = None,
) -> Path:
    """Run the whole pipeline and return the published bundle directory."""
    started = time.monotonic()
    table = read_logins(data)
    split = split_rows(table.is_takeover, seed)
    LOG.info(
        "split: %d train, %d validation, %d test normal, %d test takeover",
        len(split.train),
        len(split.validation),
        len(split.test_normal),
        len(split.test_takeover),
    )

    # Imported late: TensorFlow takes seconds to load and is not needed to
    # reject a bad file.
    from login_scorer_training import evaluate, export, golden
    from login_scorer_training.features import Preprocessor
    from login_scorer_training.model import build, make_deterministic

    preprocessor = Preprocessor.fit(table, split.train)
    make_deterministic(seed)
    model = build(kind, seed)
    history = _fit(
        model.trainer,
        preprocessor.transform_rows(table, split.train),
        preprocessor.transform_rows(table, split.validation),
        epochs,
        batch_size,
    )
    LOG.info("trained %s in %.1f s", kind, time.monotonic() - started)

    version = version or export.next_version(model_root)
    with export.staging_directory(model_root) as staging:
        export.export_onnx(model.scorer, staging / "model.onnx")
        scorer = export.OnnxScorer(staging / "model.onnx")
        normal_scores = scorer.scores(
            preprocessor.transform_rows(table, split.test_normal)
        )
        takeover_scores = scorer.scores(
            preprocessor.transform_rows(table, split.test_takeover)
        )
        cutoff = evaluate.threshold(normal_scores)
        report = evaluate.metrics(normal_scores, takeover_scores, cutoff)
        evaluate.write_report(staging, report, history, normal_scores, takeover_scores)

        events = golden.select(
            table.candidates,
            split.test_normal.tolist(),
            split.test_takeover.tolist(),
            preprocessor,
            table,
            seed,
        )
        export.write_golden(staging / "golden.jsonl", events, model.scorer, scorer)
        (staging / "preprocess.json").write_text(preprocessor.dumps(), "utf-8")

        record = training_record(table, split, seed, epochs, batch_size)
        record["epochs_run"] = len(history["loss"])
        record["seconds"] = round(time.monotonic() - started, 1)
        export.write_manifest(
            staging,
            {
                "name": model_root.resolve().name,
                "version": version,
                "kind": kind,
                "model": {
                    "input": "features",
                    "output": "reconstruction",
                    "width": len(preprocessor.min_),
                },
                "threshold": cutoff,
                "threshold_percentile": evaluate.THRESHOLD_PERCENTILE,
                "score_quantiles": evaluate.score_quantiles(normal_scores),
                "metrics": {
                    key: value
                    for key, value in report.items()
                    if key not in ("threshold", "threshold_percentile")
                },
                "training": record,
            },
        )
        return export.publish(staging, model_root, version)


def _fit(
    trainer: Any,
    train_features: np.ndarray,
    validation_features: np.ndarray,
    epochs: int,
    batch_size: int,
) -> dict[str, list[float]]:
    """Fit on normal logins with early stopping; return the loss history.

    TODO: the feature matrices are materialised in memory (6.9 GB peak RSS
    on 31M rows); a tf.data pipeline over the compact columns would bound it
    if a larger file must fit a smaller machine.
    """
    import keras

    stopping = keras.callbacks.EarlyStopping(
        monitor="val_loss",
        patience=EARLY_STOPPING_PATIENCE,
        restore_best_weights=True,
    )
    progress = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: LOG.info(
            "epoch %d: loss %.6g, val_loss %.6g",
            epoch + 1,
            logs["loss"],
            logs["val_loss"],
        )
    )
    fitted = trainer.fit(
        train_features,
        train_features,
        validation_data=(validation_features, validation_features),
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        callbacks=[stopping, progress],
        verbose=0,
    )
    return {
        key: [float(value) for value in values]
        for key, values in fitted.history.items()
    }


def training_record(
    table: Any, split: Split, seed: int, epochs: int, batch_size: int
) -> dict[str, Any]:
    """The manifest's ``training`` section."""
    return {
        "data_file": table.path.name,
        "rows": table.rows,
        "data_fingerprint": f"sha256:{table.sha256}",
        "train_rows": len(split.train),
        "validation_rows": len(split.validation),
        "test_normal_rows": len(split.test_normal),
        "test_takeover_rows": len(split.test_takeover),
        "seed": seed,
        "epochs": epochs,
        "batch_size": batch_size,
    }
