"""The Python peer of login-scorer: FastAPI + uvicorn + onnxruntime.

This is the service a data scientist would deploy straight from the training
notebook: a pydantic event model, the bundle's preprocessing written in Python
from ``preprocess.json`` (docs/bundle.md), one ONNX Runtime session per worker
process and one uvicorn worker per core. ``make bench-compare`` loads it with
the same generator and events as login-scorer.

Run with::

    .venv/bin/python benches/peers/fastapi_scorer.py serve \\
        --listen 127.0.0.1:8082 --model-root artifacts/rba-autoencoder
    .venv/bin/python benches/peers/fastapi_scorer.py check-golden \\
        --model-root artifacts/rba-autoencoder
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import logging
import math
import os
import string
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI, Response
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

LOG = logging.getLogger("fastapi_scorer")

#: Environment variable that carries ``--model-root`` into uvicorn's workers.
MODEL_ROOT_ENV = "FASTAPI_SCORER_MODEL_ROOT"

#: Anomalies at or above this percentile are denied, as login-scorer's default.
DEFAULT_DENY_PERCENTILE = 99.9

#: Tolerances of docs/bundle.md for reproducing golden rows.
FEATURE_TOLERANCE = 1e-6
SCORE_RELATIVE_TOLERANCE = 1e-5


def _field(name: str, csv_name: str) -> Any:
    """An optional event field read by its snake_case or RBA CSV column name."""
    return Field(default=None, validation_alias=AliasChoices(name, csv_name))


class LoginEvent(BaseModel):
    """One login attempt; every field may be missing (docs/bundle.md)."""

    model_config = ConfigDict(extra="ignore")

    timestamp: datetime | None = _field("timestamp", "Login Timestamp")
    user_id: int | None = _field("user_id", "User ID")
    round_trip_time_ms: float | None = _field(
        "round_trip_time_ms", "Round-Trip Time [ms]"
    )
    ip_address: str | None = _field("ip_address", "IP Address")
    country: str | None = _field("country", "Country")
    region: str | None = _field("region", "Region")
    city: str | None = _field("city", "City")
    asn: int | None = _field("asn", "ASN")
    user_agent: str | None = _field("user_agent", "User Agent String")
    browser_name_and_version: str | None = _field(
        "browser_name_and_version", "Browser Name and Version"
    )
    os_name_and_version: str | None = _field(
        "os_name_and_version", "OS Name and Version"
    )
    device_type: str | None = _field("device_type", "Device Type")
    login_successful: bool | None = _field("login_successful", "Login Successful")
    is_attack_ip: bool | None = _field("is_attack_ip", "Is Attack IP")

    @field_validator("*", mode="before")
    @classmethod
    def blank_is_missing(cls, value: Any) -> Any:
        """An empty or all-blank string counts as absent, as the contract says."""
        if isinstance(value, str) and not value.strip():
            return None
        return value


class Contribution(BaseModel):
    feature: str
    squared_error: float


class ModelInfo(BaseModel):
    name: str
    version: int


class ScoreResponse(BaseModel):
    """The same fields, in the same order, as login-scorer's answer."""

    request_id: str
    user_id: str | None
    score: float
    threshold: float
    anomalous: bool
    percentile: float
    action: str
    contributions: list[Contribution]
    unseen: list[str]
    missing: list[str]
    model: ModelInfo


def strip_version(value: str) -> str:
    """Drops a trailing whitespace-separated token that starts with a digit."""
    head_and_last = value.strip().rsplit(maxsplit=1)
    if len(head_and_last) == 2 and head_and_last[1][0] in string.digits:
        return head_and_last[0]
    return value.strip()


@dataclass(frozen=True)
class Feature:
    """One model input, compiled from ``preprocess.json``."""

    name: str
    source: str
    kind: str
    #: Label-encoder code per class, for the category kinds only.
    codes: dict[str, int] | None

    def raw_code(self, event: LoginEvent) -> tuple[float | None, bool]:
        """The raw code (``None`` when missing) and whether the value was unseen."""
        value = getattr(event, self.source)
        if value is None:
            return None, False
        if self.codes is not None:
            if self.kind == "category_strip_version":
                value = strip_version(value)
            code = self.codes.get(value)
            if code is None:
                return float(len(self.codes)), True
            return float(code), False
        if self.kind == "boolean":
            return (1.0 if value else 0.0), False
        moment = value.astimezone(UTC) if value.tzinfo else value
        if self.kind == "hour_of_day":
            return float(moment.hour), False
        return float(moment.weekday()), False


class Preprocessor:
    """Turns events into scaled float32 vectors, following ``preprocess.json``."""

    def __init__(self, spec: dict[str, Any]) -> None:
        if spec["schema_version"] != 1:
            raise ValueError(f"unsupported schema_version {spec['schema_version']}")
        self.features = [
            Feature(
                name=f["name"],
                source=f["source"],
                kind=f["kind"],
                codes=(
                    {value: i for i, value in enumerate(spec["categories"][f["name"]])}
                    if f["kind"].startswith("category")
                    else None
                ),
            )
            for f in spec["features"]
        ]
        self.minimum = np.asarray(spec["scaler"]["min"], dtype=np.float64)
        self.range = np.asarray(spec["scaler"]["max"], dtype=np.float64) - self.minimum
        self.fill = np.asarray(spec["missing"]["fill"], dtype=np.float64)

    def encode(self, event: LoginEvent) -> tuple[np.ndarray, list[str], list[str]]:
        """The scaled input row, and the names of unseen and missing features."""
        raw = self.fill.copy()
        unseen: list[str] = []
        missing: list[str] = []
        for i, feature in enumerate(self.features):
            code, is_unseen = feature.raw_code(event)
            if code is None:
                missing.append(feature.name)
                continue
            raw[i] = code
            if is_unseen:
                unseen.append(feature.name)
        scaled = ((raw - self.minimum) / self.range).astype(np.float32)
        return scaled, unseen, missing


class Bundle:
    """The newest complete bundle under a model root, ready to score."""

    def __init__(self, model_root: Path) -> None:
        self.directory = newest_bundle(model_root)
        self.manifest = json.loads((self.directory / "manifest.json").read_text())
        verify_files(self.directory, self.manifest["files"])
        spec = json.loads((self.directory / "preprocess.json").read_text())
        self.preprocessor = Preprocessor(spec)

        options = ort.SessionOptions()
        # One worker process per core: a single inference thread each.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(self.directory / "model.onnx"),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        self.input_name = self.manifest["model"]["input"]
        self.output_name = self.manifest["model"]["output"]
        quantiles = self.manifest["score_quantiles"]
        self.quantile_percentiles = np.asarray(quantiles["percentiles"], np.float64)
        self.quantile_scores = np.asarray(quantiles["scores"], np.float64)
        self.threshold = float(self.manifest["threshold"])
        self.model = ModelInfo(
            name=self.manifest["name"], version=int(self.manifest["version"])
        )

    def reconstruction_errors(self, scaled: np.ndarray) -> np.ndarray:
        """Per-feature squared errors of one row, in float64."""
        batch = scaled.reshape(1, -1)
        (reconstruction,) = self.session.run(
            [self.output_name], {self.input_name: batch}
        )
        difference = batch[0].astype(np.float64) - reconstruction[0].astype(np.float64)
        return difference * difference

    def score(self, event: LoginEvent) -> ScoreResponse:
        scaled, unseen, missing = self.preprocessor.encode(event)
        squared_errors = self.reconstruction_errors(scaled)
        score = float(squared_errors.mean())
        if not math.isfinite(score):
            raise ValueError("the model produced a non-finite reconstruction error")
        percentile = float(
            np.clip(
                np.interp(score, self.quantile_scores, self.quantile_percentiles),
                0.0,
                100.0,
            )
        )
        anomalous = score >= self.threshold
        if not anomalous:
            action = "allow"
        elif percentile >= DEFAULT_DENY_PERCENTILE:
            action = "deny"
        else:
            action = "challenge"
        contributions = sorted(
            (
                Contribution(feature=feature.name, squared_error=float(error))
                for feature, error in zip(
                    self.preprocessor.features, squared_errors, strict=True
                )
            ),
            key=lambda contribution: contribution.squared_error,
            reverse=True,
        )
        return ScoreResponse(
            request_id=str(uuid.uuid4()),
            user_id=None if event.user_id is None else str(event.user_id),
            score=score,
            threshold=self.threshold,
            anomalous=anomalous,
            percentile=percentile,
            action=action,
            contributions=contributions,
            unseen=unseen,
            missing=missing,
            model=self.model,
        )


def newest_bundle(model_root: Path) -> Path:
    """The highest version directory that holds a manifest (docs/bundle.md)."""
    versions = [
        int(child.name)
        for child in model_root.iterdir()
        if child.is_dir()
        and child.name.isdigit()
        and not child.name.startswith("0")
        and (child / "manifest.json").is_file()
    ]
    if not versions:
        raise FileNotFoundError(f"no complete bundle under {model_root}")
    return model_root / str(max(versions))


def verify_files(directory: Path, files: dict[str, str]) -> None:
    """Checks every fingerprint in the manifest before anything is loaded."""
    for name, expected in files.items():
        if Path(name).name != name:
            raise ValueError(f"bundle file name {name!r} is not a plain file name")
        actual = hashlib.sha256((directory / name).read_bytes()).hexdigest()
        if actual != expected:
            raise ValueError(f"{name}: sha256 {actual} does not match the manifest")


def create_app() -> FastAPI:
    """The ASGI app; uvicorn calls this in every worker process.

    TODO: only what the comparison loads (POST /v1/score, GET /readyz): no
    batch route, metrics or hot reload. Timestamps are parsed by pydantic,
    which reads a bare number as seconds or milliseconds by its size, where
    login-scorer always reads milliseconds; the RBA text format the load
    sends parses the same in both.
    """
    bundle = Bundle(Path(os.environ[MODEL_ROOT_ENV]))
    LOG.info("bundle loaded: %s", bundle.directory)
    app = FastAPI(title="fastapi-scorer", docs_url=None, redoc_url=None)

    # NOTE: a plain `async def`: inference takes tens of microseconds, less
    # than handing the request to a thread pool would cost.
    @app.post("/v1/score")
    async def score(event: LoginEvent, response: Response) -> ScoreResponse:
        scored = bundle.score(event)
        response.headers["x-request-id"] = scored.request_id
        return scored

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    return app


def check_golden(model_root: Path) -> int:
    """Scores every golden row; returns how many disagree with Python's record."""
    bundle = Bundle(model_root)
    failures = 0
    lines = (bundle.directory / "golden.jsonl").read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        row = json.loads(line)
        event = LoginEvent.model_validate(row["event"])
        scaled, unseen, missing = bundle.preprocessor.encode(event)
        score = float(bundle.reconstruction_errors(scaled).mean())
        feature_gap = float(np.max(np.abs(scaled - np.asarray(row["features"]))))
        score_ok = math.isclose(score, row["score"], rel_tol=SCORE_RELATIVE_TOLERANCE)
        lists_ok = unseen == row.get("unseen", unseen) and missing == row.get(
            "missing", missing
        )
        if feature_gap > FEATURE_TOLERANCE or not score_ok or not lists_ok:
            failures += 1
            LOG.error(
                "golden row %d differs: feature_gap=%g score=%r expected=%r "
                "unseen=%s missing=%s",
                number,
                feature_gap,
                score,
                row["score"],
                unseen,
                missing,
            )
    LOG.info("golden rows checked: %d, differing: %d", len(lines), failures)
    return failures


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` on a loopback address only: benchmarks stay on this machine."""
    host, _, port = text.rpartition(":")
    if not ipaddress.ip_address(host.strip("[]")).is_loopback:
        raise argparse.ArgumentTypeError(f"{text}: only loopback addresses")
    return host.strip("[]"), int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve POST /v1/score and GET /readyz")
    serve.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 8082))
    serve.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    golden = commands.add_parser("check-golden", help="reproduce golden.jsonl")
    for command in (serve, golden):
        command.add_argument("--model-root", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    if args.command == "check-golden":
        return 1 if check_golden(args.model_root) else 0

    import uvicorn

    os.environ[MODEL_ROOT_ENV] = str(args.model_root.resolve())
    host, port = args.listen
    uvicorn.run(
        "fastapi_scorer:create_app",
        factory=True,
        app_dir=str(Path(__file__).resolve().parent),
        host=host,
        port=port,
        workers=args.workers,
        # Per-request access lines would cost more than the scoring itself;
        # login-scorer logs requests at debug level only.
        access_log=False,
        log_level="warning",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
