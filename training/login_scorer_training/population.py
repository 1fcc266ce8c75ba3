"""The users behind the logins and their habits.

User ``i`` (0 <= i < n_users) has an expected number of login attempts that
grows with ``i`` along a log-normal quantile curve: most users log in once or
twice, a few thousands of times (the published mean is about 9.5 attempts
per user, heavy-tailed). Everything else about a user (id, home locations,
devices) is hashed from ``(seed, i)``, so no per-user table exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

from login_scorer_training import calibration
from login_scorer_training.devices import device_catalogue
from login_scorer_training.hashing import derive, uniform
from login_scorer_training.rba import CATCH_ALL_USER_ID

#: Spread of log attempts per user: median about a quarter of the mean.
ACTIVITY_SIGMA = 1.6
#: Chance a login uses the user's main location (or device); otherwise one of
#: the few others the user keeps.
HABIT_MAIN_SHARE = 0.8
#: Most locations and devices one user keeps.
MAX_LOCATIONS = 4
MAX_DEVICES = 3

_TAG_USER_ID = 1
_TAG_LOCATION = 2
_TAG_DEVICE = 3
_TAG_HABITS = 4


@dataclass(frozen=True)
class Population:
    """The users of one generated data set."""

    seed: int
    n_users: int
    mean_attempts: float

    @classmethod
    def for_rows(
        cls, seed: int, user_rows: int, targeted_rows: int, total_rows: int
    ) -> Population:
        """Size the population so attempts per *seen* user match the mean.

        ``user_rows`` are drawn by activity, ``targeted_rows`` (attacks)
        uniformly over users. Users drawn zero times do not appear in the
        file, so the population is larger than ``total_rows / 9.5``; a
        fixed-point iteration finds it.
        """
        wanted = max(1.0, total_rows / calibration.MEAN_ATTEMPTS_PER_USER)
        n_users = wanted
        for _ in range(50):
            seen = _seen_share(user_rows / n_users, targeted_rows / n_users)
            n_users = wanted / seen
        n_users = max(1, round(n_users))
        return cls(seed=seed, n_users=n_users, mean_attempts=user_rows / n_users)

    @property
    def _mu(self) -> float:
        return float(np.log(self.mean_attempts) - ACTIVITY_SIGMA**2 / 2)

    def expected_attempts(self, users: np.ndarray) -> np.ndarray:
        """Mean attempts over the whole period for each user index."""
        quantile = (users + 0.5) / self.n_users
        return np.exp(self._mu + ACTIVITY_SIGMA * ndtri(quantile))

    def first_user_with(self, attempts: float) -> int:
        """Lowest user index expected to make at least ``attempts`` attempts.

        Falls back to the busiest user when nobody is that busy.
        """
        quantile = ndtr((np.log(attempts) - self._mu) / ACTIVITY_SIGMA)
        return min(int(np.ceil(quantile * self.n_users)), self.n_users - 1)

    def draw_by_activity(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """User indices for ``n`` logins, each user as often as it is active.

        NOTE: the size-biased version of a log-normal is the same log-normal
        shifted by sigma, so drawing a normal with mean sigma and mapping its
        quantile to a user index picks users in proportion to their activity.
        """
        quantile = ndtr(rng.normal(ACTIVITY_SIGMA, 1.0, n))
        return np.minimum((quantile * self.n_users).astype(np.int64), self.n_users - 1)

    def draw_uniform(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """User indices drawn without regard to activity (attack targets)."""
        return rng.integers(0, self.n_users, n)

    def user_ids(self, users: np.ndarray) -> np.ndarray:
        """Signed 64-bit user ids; never the catch-all id."""
        ids = derive(self.seed, _TAG_USER_ID, users).view(np.int64)
        return np.where(ids == CATCH_ALL_USER_ID, ids ^ np.int64(1), ids).astype(
            np.int64
        )

    def location_count(self, users: np.ndarray) -> np.ndarray:
        """How many locations each user keeps: more for busier users."""
        spread = 0.25 + 0.3 * np.log1p(self.expected_attempts(users))
        extra = np.floor(-np.log1p(-uniform(self._habits(users), 1)) * spread)
        return 1 + np.minimum(extra, MAX_LOCATIONS - 1).astype(np.int64)

    def device_count(self, users: np.ndarray) -> np.ndarray:
        """How many devices each user keeps."""
        spread = 0.15 + 0.2 * np.log1p(self.expected_attempts(users))
        extra = np.floor(-np.log1p(-uniform(self._habits(users), 2)) * spread)
        return 1 + np.minimum(extra, MAX_DEVICES - 1).astype(np.int64)

    def location_keys(self, users: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Keys of the users' locations (see ``Geography.locate``)."""
        return derive(self.seed, _TAG_LOCATION, users, slots)

    def device_profiles(self, users: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Catalogue profile index of each user's device slot."""
        keys = derive(self.seed, _TAG_DEVICE, users, slots)
        return device_catalogue().draw(uniform(keys, 1))

    def pick_slots(self, rng: np.random.Generator, counts: np.ndarray) -> np.ndarray:
        """For each login, slot 0 usually, else one of the user's others."""
        other = 1 + (rng.random(len(counts)) * np.maximum(counts - 1, 1)).astype(
            np.int64
        )
        main = (rng.random(len(counts)) < HABIT_MAIN_SHARE) | (counts == 1)
        return np.where(main, 0, np.minimum(other, counts - 1))

    def _habits(self, users: np.ndarray) -> np.ndarray:
        return derive(self.seed, _TAG_HABITS, users)


def _seen_share(mean_attempts: float, targeted_per_user: float) -> float:
    """Share of users with at least one login row in the file."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(64)
    mu = np.log(mean_attempts) - ACTIVITY_SIGMA**2 / 2
    rates = np.exp(mu + ACTIVITY_SIGMA * nodes) + targeted_per_user
    return float(1.0 - np.sum(weights * np.exp(-rates)) / np.sqrt(2 * np.pi))
