"""When logins happen: a diurnal and weekly volume curve over the period."""

from __future__ import annotations

import numpy as np

from login_scorer_training import calibration

_HOUR_MS = 3_600_000


class Timeline:
    """Maps a position in cumulative login volume (0 to 1) to a timestamp.

    Volume is piecewise constant per hour, weighted by hour of day and
    weekday (UTC), so equally spaced positions land more densely in busy
    hours. Monotone: sorted positions give sorted times.
    """

    def __init__(self) -> None:
        start = np.datetime64(calibration.PERIOD_START, "ms").astype(np.int64)
        end = np.datetime64(calibration.PERIOD_END, "ms").astype(np.int64)
        self.start_ms = int(start)
        hour_starts = start + _HOUR_MS * np.arange((end - start) // _HOUR_MS)
        hour = (hour_starts // _HOUR_MS) % 24
        weekday = (hour_starts // (24 * _HOUR_MS) + 3) % 7  # 1970-01-01: Thursday
        weights = (
            np.asarray(calibration.HOUR_WEIGHTS)[hour]
            * np.asarray(calibration.WEEKDAY_WEIGHTS)[weekday]
        )
        cumulative = np.concatenate([[0.0], np.cumsum(weights)])
        self._cumulative = cumulative / cumulative[-1]

    def times_ms(self, positions: np.ndarray) -> np.ndarray:
        """Milliseconds since the epoch for positions in [0, 1]."""
        cum = self._cumulative
        hour = np.clip(
            np.searchsorted(cum, positions, side="right") - 1, 0, len(cum) - 2
        )
        frac = (positions - cum[hour]) / (cum[hour + 1] - cum[hour])
        return self.start_ms + ((hour + np.clip(frac, 0.0, 1.0)) * _HOUR_MS).astype(
            np.int64
        )
