"""Counter-based randomness: 64-bit keys hashed into reproducible draws.

Users, their habits and IP locations are functions of ``(seed, id)`` rather
than rows of a table, so the generator never holds per-user state and its
memory does not grow with the number of rows.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def mix64(values: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, element-wise on uint64 (wrapping) arrays."""
    # NOTE: wrap-around is the point of the hash; numpy only warns about it
    # for 0-d values.
    with np.errstate(over="ignore"):
        z = np.asarray(values, dtype=np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX_1
        z = (z ^ (z >> np.uint64(27))) * _MIX_2
    return z ^ (z >> np.uint64(31))


def derive(key: np.ndarray | int, *parts: np.ndarray | int) -> np.ndarray:
    """Combine a key with further integers into a new well-mixed key."""
    out = mix64(np.asarray(key, dtype=np.uint64))
    for part in parts:
        out = mix64(out ^ np.asarray(part).astype(np.uint64))
    return out


def uniform(keys: np.ndarray, stream: int) -> np.ndarray:
    """Uniform floats in [0, 1), one per key, independent across streams."""
    bits = mix64(keys ^ mix64(np.uint64(stream)))
    return (bits >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
