"""Synthesis of login rows, one block of rows at a time.

The file is cut into blocks of ``BLOCK_ROWS`` rows. Block ``b`` covers a fixed
slice of the time line (its share of the cumulative diurnal and weekly
volume), draws its rows from a random generator seeded by ``(seed, b)``, and
sorts them by time, so blocks concatenate into one time-ordered file and the
output depends only on the seed, never on how it is written.

Rows come in four kinds:

- *user* logins: a user picked by activity, at one of the few locations and
  devices that user keeps;
- *catch-all* logins: attempts on unknown accounts, filed under one user id,
  nearly all failed, from many distinct IPs;
- *bursts*: credential stuffing from attack IPs, tens to hundreds of attempts
  seconds apart against the catch-all id and random real users;
- *takeovers*: a successful login to a busy account from a country it never
  used, with the published takeover profile.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

import numpy as np

from login_scorer_training import calibration as cal
from login_scorer_training.devices import device_catalogue
from login_scorer_training.geography import Geography, Locations, geography
from login_scorer_training.hashing import derive, uniform
from login_scorer_training.population import Population
from login_scorer_training.rba import CATCH_ALL_USER_ID
from login_scorer_training.takeovers import TakeoverPlanner
from login_scorer_training.timeline import Timeline

#: Rows per block: the unit of randomness and of memory use.
BLOCK_ROWS = 100_000

BURST_SHARE = cal.BURST_SHARE
BURST_CATCH_ALL_SHARE = cal.BURST_CATCH_ALL_SHARE
BURST_MEDIAN_ATTEMPTS = 25
BURST_MEAN_GAP_MS = 2_500.0
BURST_SUCCESS_SHARE = 0.03
#: Burst attempts that rotate to a random user agent.
BURST_UA_ROTATION = 0.3
#: Burst rows per distinct attacker over the whole file.
BURST_ROWS_PER_ATTACKER = 500

CATCH_ALL_BACKGROUND_SHARE = cal.CATCH_ALL_SHARE - BURST_SHARE * BURST_CATCH_ALL_SHARE
CATCH_ALL_SUCCESS_SHARE = 0.01
#: Distinct catch-all IPs per catch-all row (the sample: ~30,000 in 61,000).
CATCH_ALL_IPS_PER_ROW = 0.6
USER_SHARE = 1.0 - BURST_SHARE - CATCH_ALL_BACKGROUND_SHARE
#: Chosen so that the overall success share is the published 41.5%.
USER_SUCCESS_SHARE = (
    cal.LOGIN_SUCCESS_SHARE
    - CATCH_ALL_BACKGROUND_SHARE * CATCH_ALL_SUCCESS_SHARE
    - BURST_SHARE * (1 - BURST_CATCH_ALL_SHARE) * BURST_SUCCESS_SHARE
) / USER_SHARE

_TAG_CATCH_ALL = 11
_TAG_ATTACKER = 12


@dataclass(frozen=True)
class LoginBlock:
    """Column arrays of one block of rows, in time order.

    ``rtt_ms`` is NaN where the round-trip time is missing; ``device_empty``
    marks the rare rows whose device type is empty in the real data.
    """

    time_ms: np.ndarray
    user_id: np.ndarray
    rtt_ms: np.ndarray
    ip: np.ndarray
    country: np.ndarray
    place: np.ndarray
    asn: np.ndarray
    profile: np.ndarray
    device_empty: np.ndarray
    success: np.ndarray
    attack: np.ndarray
    takeover: np.ndarray

    def __len__(self) -> int:
        return len(self.time_ms)

    def pieces(self, rows: int) -> Iterator[LoginBlock]:
        """Consecutive slices of at most ``rows`` rows (views, not copies)."""
        for start in range(0, len(self), rows):
            yield LoginBlock(
                **{
                    field.name: getattr(self, field.name)[start : start + rows]
                    for field in fields(self)
                }
            )


class Synthesizer:
    """Produces the blocks of one data set: ``rows`` rows, ``takeovers`` ATOs."""

    def __init__(self, rows: int, takeovers: int, seed: int) -> None:
        if rows < 1:
            raise ValueError(f"rows must be at least 1, got {rows}")
        if not 0 <= takeovers <= rows // 20:
            raise ValueError(
                f"takeovers must be between 0 and rows/20 ({rows // 20}), "
                f"got {takeovers}"
            )
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        self.rows = rows
        self.seed = seed
        self.geo: Geography = geography()
        self.timeline = Timeline()
        self.population = Population.for_rows(
            seed,
            user_rows=round(rows * USER_SHARE),
            targeted_rows=round(rows * BURST_SHARE * (1 - BURST_CATCH_ALL_SHARE)),
            total_rows=rows,
        )
        self.takeovers = TakeoverPlanner(
            self.geo, self.population, rows=rows, count=takeovers, seed=seed
        )
        self.n_attackers = max(16, round(rows * BURST_SHARE / BURST_ROWS_PER_ATTACKER))
        self.n_catch_all_ips = max(
            1, round(rows * CATCH_ALL_BACKGROUND_SHARE * CATCH_ALL_IPS_PER_ROW)
        )

    @property
    def n_blocks(self) -> int:
        """Number of blocks the data set is cut into."""
        return -(-self.rows // BLOCK_ROWS)

    def blocks(self) -> Iterator[LoginBlock]:
        """Yield every block in order."""
        for index in range(self.n_blocks):
            yield self.block(index)

    def block(self, index: int) -> LoginBlock:
        """Generate block ``index`` (independently of all other blocks)."""
        start = index * BLOCK_ROWS
        end = min(self.rows, start + BLOCK_ROWS)
        n = end - start
        rng = np.random.default_rng([self.seed, index])
        window = (start / self.rows, end / self.rows)
        positions = self.takeovers.positions_in(start, end)

        n_burst = min(round(n * BURST_SHARE), n - len(positions))
        n_catch = min(
            round(n * CATCH_ALL_BACKGROUND_SHARE), n - len(positions) - n_burst
        )
        n_user = n - len(positions) - n_burst - n_catch

        regular_ms = self.timeline.times_ms(rng.uniform(*window, n - n_burst))
        parts = [
            self._user_rows(rng, n_user),
            self._catch_all_rows(rng, n_catch),
            self.takeovers.rows(positions),
        ]
        regular = _concat(parts)
        regular["time_ms"] = regular_ms
        bursts = self._burst_rows(rng, n_burst, window)
        rows = _concat([regular, bursts])
        # NOTE: the flag belongs to the IP, so one IP is never both listed and
        # unlisted; bursts and takeovers pick their IPs to get the flag wanted.
        rows["attack"] = self.geo.on_attack_list(rows["ip"])
        rows["rtt_ms"] = _round_trip_times(rng, n)
        rows["device_empty"] = rng.random(n) < cal.DEVICE_TYPE_EMPTY_SHARE

        order = np.argsort(rows["time_ms"], kind="stable")
        return LoginBlock(**{name: values[order] for name, values in rows.items()})

    def _user_rows(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        pop = self.population
        users = pop.draw_by_activity(rng, n)
        keys = pop.location_keys(users, pop.pick_slots(rng, pop.location_count(users)))
        profile = pop.device_profiles(
            users, pop.pick_slots(rng, pop.device_count(users))
        )
        return _columns(
            self.geo.locate(keys),
            user_id=pop.user_ids(users),
            profile=profile,
            success=rng.random(n) < USER_SUCCESS_SHARE,
        )

    def _catch_all_rows(
        self, rng: np.random.Generator, n: int
    ) -> dict[str, np.ndarray]:
        ips = rng.integers(0, self.n_catch_all_ips, n)
        keys = derive(self.seed, _TAG_CATCH_ALL, ips)
        return _columns(
            self.geo.locate(keys),
            user_id=np.full(n, CATCH_ALL_USER_ID, dtype=np.int64),
            profile=device_catalogue().draw(rng.random(n)),
            success=rng.random(n) < CATCH_ALL_SUCCESS_SHARE,
        )

    def _burst_rows(
        self, rng: np.random.Generator, n: int, window: tuple[float, float]
    ) -> dict[str, np.ndarray]:
        """Credential-stuffing bursts: one attacker IP, attempts seconds apart.

        A burst is kept inside the block's slice of the time line (about 1.3
        days per block even at 31 million rows, against minutes per burst).
        """
        lengths = _burst_lengths(rng, n)
        burst = np.repeat(np.arange(len(lengths)), lengths)
        attackers = rng.integers(0, self.n_attackers, len(lengths))
        attacker_keys = derive(self.seed, _TAG_ATTACKER, attackers)
        keys = attacker_keys[burst]
        where = self.geo.locate(attacker_keys)
        listed_ip = self.geo.listed_ip_addresses(
            attacker_keys, where.asn, np.ones(len(lengths), dtype=bool)
        )

        gaps = rng.exponential(BURST_MEAN_GAP_MS, n)
        first = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        cumulative = np.cumsum(gaps)
        elapsed = cumulative - np.repeat(cumulative[first], lengths)
        duration = np.maximum.reduceat(elapsed, first) if n else elapsed
        lo, hi = self.timeline.times_ms(np.array(window))
        start = self.timeline.times_ms(rng.uniform(*window, len(lengths)))
        start = np.maximum(lo, np.minimum(start, hi - 1 - duration.astype(np.int64)))
        time_ms = np.minimum(start[burst] + elapsed.astype(np.int64), max(lo, hi - 1))

        own_profile = device_catalogue().draw(uniform(keys, 6))
        rotated = device_catalogue().draw(rng.random(n))
        on_catch_all = rng.random(n) < BURST_CATCH_ALL_SHARE
        targets = self.population.user_ids(self.population.draw_uniform(rng, n))
        located = Locations(
            country=where.country[burst],
            asn=where.asn[burst],
            ip=listed_ip[burst],
            place=where.place[burst],
        )
        return _columns(
            located,
            user_id=np.where(on_catch_all, CATCH_ALL_USER_ID, targets),
            profile=np.where(rng.random(n) < BURST_UA_ROTATION, rotated, own_profile),
            success=~on_catch_all & (rng.random(n) < BURST_SUCCESS_SHARE),
            time_ms=time_ms,
        )


def _burst_lengths(rng: np.random.Generator, total: int) -> np.ndarray:
    """Heavy-tailed burst sizes adding up to exactly ``total`` attempts."""
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    draws = 1 + rng.lognormal(np.log(BURST_MEDIAN_ATTEMPTS), 1.0, total // 5 + 8)
    lengths = np.minimum(draws, 2_000).astype(np.int64)
    while lengths.sum() < total:  # bounded: each round adds at least 8 rows
        lengths = np.concatenate([lengths, lengths[:8]])
    cut = int(np.searchsorted(np.cumsum(lengths), total))
    lengths = lengths[: cut + 1].copy()
    lengths[-1] -= lengths.sum() - total
    return lengths[lengths > 0]


def _round_trip_times(rng: np.random.Generator, n: int) -> np.ndarray:
    """Round-trip times in whole ms, NaN where missing (about 95.9%).

    A log-normal body with median 540 ms and, for 2% of values, a Pareto
    tail from 2 s that passes 100 s now and then (capped at 250 s); the
    published figures give only the median, the minimum and the maximum.
    """
    body = 540.0 * np.exp(rng.normal(0.0, 0.8, n))
    tail = 2_000.0 * (1.0 - rng.random(n)) ** (-1.0 / 1.1)
    rtt = np.where(rng.random(n) < 0.02, tail, body)
    rtt = np.floor(np.clip(rtt, 10.0, 250_000.0))
    return np.where(rng.random(n) < cal.RTT_MISSING_SHARE, np.nan, rtt)


def _columns(locations: Locations, **columns: np.ndarray) -> dict[str, np.ndarray]:
    """Row columns from locations plus the given ones; not takeovers."""
    return {
        "country": locations.country,
        "asn": locations.asn,
        "ip": locations.ip,
        "place": locations.place,
        "takeover": np.zeros(len(locations.country), dtype=bool),
        **columns,
    }


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stack row groups that carry the same columns."""
    names = set(parts[0])
    if any(set(part) != names for part in parts):
        raise ValueError(
            f"row groups disagree on columns: {[sorted(p) for p in parts]}"
        )
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
