"""Golden events: raw logins with the features and score Python computes.

The service replays these rows to prove it preprocesses and scores exactly
as training did. They are drawn from held-out rows (normal logins and
takeovers) and extended with variants that carry unseen category values and
missing fields, so every rule of ``preprocess.json`` is exercised.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from login_scorer_training.features import FEATURES, Preprocessor
from login_scorer_training.reader import LoginTable

MIN_ROWS = 200
MAX_NORMAL = 110
MAX_TAKEOVER = 40
UNSEEN_ROWS = 30
MISSING_ROWS = 40

#: Values no training set should contain, per category event field.
UNSEEN_VALUES: dict[str, str] = {
    "country": "ZZ",
    "device_type": "smartwatch",
    "browser_name_and_version": "NeverSeenBrowser 1.2.3",
    "os_name_and_version": "NeverSeenOS 7",
}

#: Ways a field can be missing: absent, JSON null, empty, blank.
MISSING_STYLES = ("absent", "null", "empty", "blank")
_SOURCES = tuple(dict.fromkeys(source for _, source, _ in FEATURES))


@dataclass(frozen=True)
class GoldenEvent:
    """A raw event, its label, and its features as the event path computes."""

    event: dict[str, Any]
    label: str
    features: np.ndarray
    unseen: list[str]
    missing: list[str]


def _with_unseen(event: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    changed = copy.deepcopy(event)
    for field in rng.sample(sorted(UNSEEN_VALUES), rng.randint(1, 2)):
        changed[field] = UNSEEN_VALUES[field]
    return changed


def _with_missing(event: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    changed = copy.deepcopy(event)
    for field in rng.sample(_SOURCES, rng.randint(1, 3)):
        style = rng.choice(MISSING_STYLES)
        if style == "absent":
            changed.pop(field, None)
        else:
            changed[field] = {"null": None, "empty": "", "blank": "  "}[style]
    return changed


def _with_padding(event: dict[str, Any]) -> dict[str, Any]:
    """Surrounding whitespace that version stripping must trim."""
    changed = copy.deepcopy(event)
    browser = changed.get("browser_name_and_version")
    if isinstance(browser, str) and browser.strip():
        changed["browser_name_and_version"] = f"  {browser} "
    return changed


def select(
    candidates: Mapping[int, dict[str, Any]],
    test_rows: Sequence[int],
    takeover_rows: Sequence[int],
    preprocessor: Preprocessor,
    table: LoginTable,
    seed: int,
) -> list[GoldenEvent]:
    """Pick held-out events and add variants until there are enough rows.

    Raises ValueError if the event path disagrees with the table path on any
    picked row: training and serving would then see different features.
    """
    rng = random.Random(seed)
    normal = [row for row in test_rows if row in candidates]
    takeovers = [row for row in takeover_rows if row in candidates]
    rng.shuffle(normal)
    rng.shuffle(takeovers)
    rows = normal[:MAX_NORMAL] + takeovers[:MAX_TAKEOVER]
    if not rows:
        raise ValueError("no held-out rows to draw golden events from")
    _check_paths_agree(candidates, rows, preprocessor, table)
    bases = [(candidates[row], "normal") for row in normal[:MAX_NORMAL]]
    bases += [(candidates[row], "takeover") for row in takeovers[:MAX_TAKEOVER]]

    chosen = list(bases)
    chosen += [(_with_padding(event), label) for event, label in bases[:5]]
    pool = [event for event, _ in bases]
    for _ in range(UNSEEN_ROWS):
        chosen.append((_with_unseen(rng.choice(pool), rng), "unseen"))
    while len(chosen) < MIN_ROWS or _count(chosen, "missing") < MISSING_ROWS:
        chosen.append((_with_missing(rng.choice(pool), rng), "missing"))

    golden = []
    for event, label in chosen:
        encoded = preprocessor.encode_event(event)
        golden.append(
            GoldenEvent(event, label, encoded.features, encoded.unseen, encoded.missing)
        )
    return golden


def _check_paths_agree(
    candidates: Mapping[int, dict[str, Any]],
    rows: list[int],
    preprocessor: Preprocessor,
    table: LoginTable,
) -> None:
    from_table = preprocessor.transform_rows(table, np.array(rows, dtype=np.int64))
    for position, row in enumerate(rows):
        from_event = preprocessor.encode_event(candidates[row]).features
        if not np.array_equal(from_event, from_table[position]):
            raise ValueError(
                f"row {row}: event features {from_event.tolist()} differ from "
                f"table features {from_table[position].tolist()}"
            )


def _count(chosen: list[tuple[dict[str, Any], str]], label: str) -> int:
    return sum(1 for _, row_label in chosen if row_label == label)
