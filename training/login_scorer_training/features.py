"""Preprocessing: raw login -> the model's 8 scaled features.

Written once, as the seed notebook did it: hour and weekday of the timestamp
(UTC, Monday = 0), browser and OS names without their trailing version,
label-encoded categories (classes sorted like scikit-learn's LabelEncoder),
booleans as 0/1, then min-max scaling fitted on the training rows. Beyond
the notebook, values never seen in training get a reserved code and missing
values a fill code, both recorded in ``preprocess.json`` (docs/bundle.md).

Two entry points share the fitted state: :meth:`Preprocessor.transform_rows`
for millions of rows of a :class:`~login_scorer_training.reader.LoginTable`,
and :meth:`Preprocessor.encode_event` for one JSON event, which is exactly
what the service does; tests check that both agree.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from login_scorer_training.rba import TIMESTAMP_FORMAT

if TYPE_CHECKING:
    from login_scorer_training.reader import LoginTable

SCHEMA_VERSION = 1

#: (feature name, event field it comes from, kind), in the model's input order.
FEATURES: tuple[tuple[str, str, str], ...] = (
    ("country_code", "country", "category"),
    ("device_type", "device_type", "category"),
    ("is_login_success", "login_successful", "boolean"),
    ("is_attack_ip", "is_attack_ip", "boolean"),
    ("login_hours", "timestamp", "hour_of_day"),
    ("login_day", "timestamp", "day_of_week"),
    ("browser_name", "browser_name_and_version", "category_strip_version"),
    ("os_name", "os_name_and_version", "category_strip_version"),
)
FEATURE_NAMES: tuple[str, ...] = tuple(name for name, _, _ in FEATURES)
WIDTH = len(FEATURES)
CATEGORY_FEATURES: tuple[str, ...] = tuple(
    name for name, _, kind in FEATURES if kind.startswith("category")
)

_ASCII_DIGITS = frozenset("0123456789")
_ROWS_PER_CHUNK = 1 << 20


def strip_version(value: str) -> str:
    """Drop a trailing whitespace-separated token that starts with a digit.

    ``"Chrome Mobile WebView 85.0.4183"`` -> ``"Chrome Mobile WebView"``;
    ``"Windows XP"`` and ``"Other"`` stay whole. Surrounding whitespace is
    trimmed first.
    """
    value = value.strip()
    parts = value.rsplit(None, 1)
    if len(parts) == 2 and parts[1][0] in _ASCII_DIGITS:
        return parts[0]
    return value


def parse_timestamp(text: str) -> datetime:
    """Parse an RBA timestamp (``2020-02-03 12:43:30.772``, no zone: UTC)."""
    text = text.strip()
    try:
        parsed = datetime.strptime(text, TIMESTAMP_FORMAT)
    except ValueError:
        parsed = datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    return parsed.replace(tzinfo=UTC)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


@dataclass(frozen=True)
class EncodedEvent:
    """One event's raw codes and scaled features, with what was unusual."""

    raw: np.ndarray
    features: np.ndarray
    unseen: list[str]
    missing: list[str]


@dataclass(frozen=True)
class Preprocessor:
    """Fitted label encoders, fill codes and min-max scaler.

    Attributes end in ``_`` as in scikit-learn because they are learned
    from the training rows.
    """

    classes_: dict[str, list[str]]
    min_: np.ndarray
    max_: np.ndarray
    fill_: np.ndarray

    @classmethod
    def fit(cls, table: LoginTable, rows: np.ndarray) -> Preprocessor:
        """Fit on the rows of ``table`` at positions ``rows`` (training rows)."""
        classes: dict[str, list[str]] = {}
        for name in CATEGORY_FEATURES:
            ids = np.unique(table.categories[name][rows])
            vocabulary = table.vocabularies[name]
            classes[name] = sorted(vocabulary[i] for i in ids if i >= 0)

        fill = np.zeros(WIDTH, dtype=np.float64)
        for position, name in enumerate(FEATURE_NAMES):
            if name in classes:
                fill[position] = len(classes[name])
        fill[FEATURE_NAMES.index("login_hours")] = _mode(table.hour[rows], 24)
        fill[FEATURE_NAMES.index("login_day")] = _mode(table.weekday[rows], 7)

        unscaled = cls(classes, np.zeros(WIDTH), np.ones(WIDTH), fill)
        low = np.full(WIDTH, np.inf)
        high = np.full(WIDTH, -np.inf)
        for start in range(0, len(rows), _ROWS_PER_CHUNK):
            raw = unscaled.raw_codes(table, rows[start : start + _ROWS_PER_CHUNK])
            low = np.minimum(low, raw.min(axis=0))
            high = np.maximum(high, raw.max(axis=0))
        # NOTE: a constant feature gets max = min + 1, which scales exactly as
        # scikit-learn's MinMaxScaler does for a zero range (scale 1) and keeps
        # the contract's max > min.
        high = np.where(high > low, high, low + 1.0)
        return cls(classes, low, high, fill)

    def raw_codes(self, table: LoginTable, rows: np.ndarray) -> np.ndarray:
        """Unscaled codes (float64, rows x 8) for ``rows`` of ``table``."""
        raw = np.empty((len(rows), WIDTH), dtype=np.float64)
        for position, (name, _, kind) in enumerate(FEATURES):
            if kind.startswith("category"):
                raw[:, position] = self._id_to_code(table, name)[
                    table.categories[name][rows] + 1
                ]
            elif kind == "boolean":
                raw[:, position] = table.booleans[name][rows]
            elif kind == "hour_of_day":
                raw[:, position] = table.hour[rows]
            else:
                raw[:, position] = table.weekday[rows]
        return raw

    def _id_to_code(self, table: LoginTable, name: str) -> np.ndarray:
        """Lookup from vocabulary id + 1 (0 = missing) to label code."""
        index = {value: code for code, value in enumerate(self.classes_[name])}
        reserved = len(self.classes_[name])
        fill = self.fill_[FEATURE_NAMES.index(name)]
        vocabulary = table.vocabularies[name]
        return np.array(
            [fill, *(index.get(value, reserved) for value in vocabulary)],
            dtype=np.float64,
        )

    def scale(self, raw: np.ndarray) -> np.ndarray:
        """Min-max scale raw codes in float64, returned as float32."""
        return ((raw - self.min_) / (self.max_ - self.min_)).astype(np.float32)

    def transform_rows(self, table: LoginTable, rows: np.ndarray) -> np.ndarray:
        """Scaled float32 features (rows x 8), computed in bounded chunks."""
        out = np.empty((len(rows), WIDTH), dtype=np.float32)
        for start in range(0, len(rows), _ROWS_PER_CHUNK):
            chunk = rows[start : start + _ROWS_PER_CHUNK]
            out[start : start + len(chunk)] = self.scale(self.raw_codes(table, chunk))
        return out

    def encode_event(self, event: Mapping[str, Any]) -> EncodedEvent:
        """Encode one JSON event exactly as the service does."""
        raw = np.empty(WIDTH, dtype=np.float64)
        unseen: list[str] = []
        missing: list[str] = []
        for position, (name, source, kind) in enumerate(FEATURES):
            value = event.get(source)
            if _is_missing(value):
                raw[position] = self.fill_[position]
                missing.append(name)
                continue
            if kind.startswith("category"):
                if kind == "category_strip_version":
                    value = strip_version(value)
                classes = self.classes_[name]
                code = _index(classes, value)
                if code is None:
                    code = len(classes)
                    unseen.append(name)
                raw[position] = code
            elif kind == "boolean":
                if not isinstance(value, bool):
                    raise ValueError(f"{source} must be a JSON boolean: {value!r}")
                raw[position] = int(value)
            elif kind == "hour_of_day":
                raw[position] = parse_timestamp(value).hour
            else:
                raw[position] = parse_timestamp(value).weekday()
        return EncodedEvent(raw, self.scale(raw), unseen, missing)

    def to_json(self) -> dict[str, Any]:
        """The ``preprocess.json`` document (docs/bundle.md)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "features": [
                {"name": name, "source": source, "kind": kind}
                for name, source, kind in FEATURES
            ],
            "categories": {name: self.classes_[name] for name in CATEGORY_FEATURES},
            "scaler": {"min": self.min_.tolist(), "max": self.max_.tolist()},
            "unseen": {"rule": "reserved_code"},
            "missing": {"rule": "fill", "fill": self.fill_.tolist()},
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Preprocessor:
        """Rebuild from a ``preprocess.json`` document."""
        if document.get("schema_version") != SCHEMA_VERSION:
            raise ValueError("unsupported preprocess.json schema_version")
        names = tuple(feature["name"] for feature in document["features"])
        if names != FEATURE_NAMES:
            raise ValueError(f"unexpected feature order {names}")
        return cls(
            classes_={
                name: list(document["categories"][name]) for name in CATEGORY_FEATURES
            },
            min_=np.array(document["scaler"]["min"], dtype=np.float64),
            max_=np.array(document["scaler"]["max"], dtype=np.float64),
            fill_=np.array(document["missing"]["fill"], dtype=np.float64),
        )

    def dumps(self) -> str:
        """``preprocess.json`` as text."""
        return json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n"


def _index(classes: list[str], value: str) -> int | None:
    position = bisect.bisect_left(classes, value)
    if position < len(classes) and classes[position] == value:
        return position
    return None


def _mode(values: np.ndarray, size: int) -> float:
    return float(np.bincount(values.astype(np.int64), minlength=size).argmax())
