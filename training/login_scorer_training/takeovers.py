"""Account takeovers: where they fall in the file and what they look like."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from login_scorer_training import calibration as cal
from login_scorer_training.devices import device_catalogue, takeover_profile_weights
from login_scorer_training.geography import Geography
from login_scorer_training.hashing import derive
from login_scorer_training.population import Population

#: Takeovers hit accounts with at least this many expected attempts, so the
#: account has a history for the takeover to stand out from.
MIN_VICTIM_ATTEMPTS = 15.0
#: Tries to find a victim that never used the takeover's country.
_VICTIM_TRIES = 50
_TAG_TAKEOVER = 21


class TakeoverPlanner:
    """Places ``count`` takeovers at random row positions and fills them in."""

    def __init__(
        self, geo: Geography, population: Population, rows: int, count: int, seed: int
    ) -> None:
        self.geo = geo
        self.population = population
        self.seed = seed
        rng = np.random.default_rng([seed, _TAG_TAKEOVER])
        self.positions = np.sort(rng.choice(rows, size=count, replace=False))
        self._countries = np.array(
            [geo.country_index(c) for c in cal.TAKEOVER_COUNTRIES]
        )
        self._country_p = _normalise(cal.TAKEOVER_COUNTRIES.values())
        listed = [geo.asn_index(asn) for asn in cal.TAKEOVER_ASNS]
        self._asns = np.array([*listed, -1])  # -1: an ordinary ASN of the country
        self._asn_p = _normalise([*cal.TAKEOVER_ASNS.values(), cal.TAKEOVER_OTHER_ASN])
        self._profile_cdf = np.cumsum(takeover_profile_weights())
        self._first_busy = population.first_user_with(MIN_VICTIM_ATTEMPTS)

    def positions_in(self, start: int, end: int) -> np.ndarray:
        """Takeover row positions within ``[start, end)``."""
        lo, hi = np.searchsorted(self.positions, [start, end])
        return self.positions[lo:hi]

    def rows(self, positions: np.ndarray) -> dict[str, np.ndarray]:
        """The columns of the takeovers at these positions (times excluded).

        TODO: one Python iteration per takeover (about 2 ms each, mostly the
        victim search); fine for the hundreds to thousands we generate, slow
        if someone asks for the allowed maximum of rows/20 on a large file.
        """
        fields = [self._one(int(p)) for p in positions]
        keys = derive(self.seed, _TAG_TAKEOVER, positions.astype(np.int64))
        country = np.array([f[0] for f in fields], dtype=np.int64)
        asn = np.array([f[1] for f in fields], dtype=np.int64)
        attack = np.array([f[5] for f in fields], dtype=bool)
        return {
            "country": country,
            "asn": asn,
            "ip": self.geo.listed_ip_addresses(keys, asn, attack),
            "place": self.geo.places(keys, country),
            "user_id": np.array([f[2] for f in fields], dtype=np.int64),
            "profile": np.array([f[3] for f in fields], dtype=np.int64),
            "success": np.array([f[4] for f in fields], dtype=bool),
            "takeover": np.ones(len(fields), dtype=bool),
        }

    def _one(self, position: int) -> tuple[int, int, int, int, bool, bool]:
        """Country, ASN, user id, profile, success, attack of one takeover."""
        rng = np.random.default_rng([self.seed, _TAG_TAKEOVER, position])
        country = int(rng.choice(self._countries, p=self._country_p))
        asn = int(rng.choice(self._asns, p=self._asn_p))
        if asn < 0:
            asns, weights = self.geo.asns_of_country(country)
            unlisted = np.where(np.isin(asns, self._asns), 0.0, weights)
            if unlisted.sum() > 0:
                weights = unlisted / unlisted.sum()
            asn = int(rng.choice(asns, p=weights))
        profile = int(
            np.searchsorted(self._profile_cdf, rng.random() * self._profile_cdf[-1])
        )
        return (
            country,
            asn,
            self._victim(rng, country),
            min(profile, len(device_catalogue().profiles) - 1),
            bool(rng.random() < cal.TAKEOVER_SUCCESS_SHARE),
            bool(rng.random() < cal.TAKEOVER_ATTACK_IP_SHARE),
        )

    def _victim(self, rng: np.random.Generator, country: int) -> int:
        """User id of a busy account whose own locations avoid ``country``."""
        pop = self.population
        for _ in range(_VICTIM_TRIES):
            user = int(rng.integers(self._first_busy, pop.n_users))
            users = np.array([user])
            slots = np.arange(int(pop.location_count(users)[0]))
            home = self.geo.locate(
                pop.location_keys(np.repeat(users, len(slots)), slots)
            )
            if country not in home.country:
                break
        return int(pop.user_ids(np.array([user]))[0])


def _normalise(counts: Iterable[float]) -> np.ndarray:
    weights = np.array(list(counts), dtype=np.float64)
    return weights / weights.sum()
