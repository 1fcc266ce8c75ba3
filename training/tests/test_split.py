"""The train/validation/test split: disjoint, takeovers only in test."""

from __future__ import annotations

import numpy as np
import pytest

from login_scorer_training.train import split_rows


@pytest.fixture
def is_takeover() -> np.ndarray:
    mask = np.zeros(10_000, dtype=bool)
    mask[np.random.default_rng(3).choice(10_000, 25, replace=False)] = True
    return mask


def test_parts_are_disjoint_and_cover_every_row(is_takeover: np.ndarray) -> None:
    split = split_rows(is_takeover, seed=1)
    parts = [split.train, split.validation, split.test_normal, split.test_takeover]

    joined = np.concatenate(parts)
    assert len(joined) == len(np.unique(joined)) == len(is_takeover)
    assert len(split.train) == 6982  # 70% of 9,975 normal rows
    assert len(split.validation) == 998
    assert len(split.test_normal) == 1995


def test_takeovers_only_in_test(is_takeover: np.ndarray) -> None:
    split = split_rows(is_takeover, seed=1)

    assert not is_takeover[split.train].any()
    assert not is_takeover[split.validation].any()
    assert not is_takeover[split.test_normal].any()
    np.testing.assert_array_equal(split.test_takeover, np.flatnonzero(is_takeover))


def test_same_seed_same_split_other_seed_other_split(is_takeover: np.ndarray) -> None:
    first = split_rows(is_takeover, seed=1)
    again = split_rows(is_takeover, seed=1)
    other = split_rows(is_takeover, seed=2)

    np.testing.assert_array_equal(first.train, again.train)
    np.testing.assert_array_equal(first.test_normal, again.test_normal)
    assert not np.array_equal(first.train, other.train)


def test_tiny_input_still_has_every_part() -> None:
    split = split_rows(np.zeros(3, dtype=bool), seed=0)
    assert (len(split.train), len(split.validation), len(split.test_normal)) == (
        1,
        1,
        1,
    )
    with pytest.raises(ValueError, match="at least 3 normal"):
        split_rows(np.array([False, False, True]), seed=0)
