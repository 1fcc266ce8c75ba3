"""Where logins come from: countries, ASNs, IP addresses, regions and cities.

A *location* is what one IP address looks like in the data set: country,
ASN, IP, region and city. Locations are derived from 64-bit keys by hashing,
so the same key always gives the same location and no table of locations is
ever stored (memory stays bounded however many rows are written).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from login_scorer_training import calibration
from login_scorer_training.hashing import derive, mix64, uniform

#: Share of locations whose IP lies in 10.0.0.0/8 (4 of the 19 sample rows;
#: an artefact of the data set's synthesis that we keep).
PRIVATE_IP_SHARE = 0.12
#: /16 networks per unit of row share: the biggest ASN (27% of rows) gets
#: 55 of them, about 3.6 million addresses; small ASNs get one.
PREFIXES_PER_SHARE = 200

#: Bound on retries for an IP with a given attack-list status; at the
#: published shares the chance of running out is below 1e-12.
_LISTED_IP_ATTEMPTS = 2_000
_ATTACK_LIST_STREAM = 0xA77AC4

#: Share of locations with region and city ``-`` where a place list exists.
UNKNOWN_PLACE_SHARE = 0.45

#: Region and city pairs for the busier countries (ASCII, as in the sample).
PLACES: dict[str, tuple[tuple[str, str], ...]] = {
    "NO": (("Oslo County", "Oslo"), ("Viken", "Drammen"), ("Viken", "Gressvik"),
           ("Viken", "Klofta"), ("Vestland", "Bergen"), ("Vestland", "Urangsvag"),
           ("Rogaland", "Stavanger"), ("Rogaland", "Sandnes"),
           ("Rogaland", "Haugesund"), ("Trondelag", "Trondheim"),
           ("Troms og Finnmark", "Tromso"), ("Troms og Finnmark", "Bjornevatn"),
           ("Agder", "Kristiansand"), ("Innlandet", "Hamar"),
           ("More og Romsdal", "Alesund"), ("Nordland", "Bodo")),
    "US": (("Virginia", "Ashburn"), ("California", "Los Angeles"),
           ("New York", "New York"), ("Texas", "Dallas"), ("Illinois", "Chicago"),
           ("Washington", "Seattle"), ("Florida", "Miami"), ("Georgia", "Atlanta")),
    "RU": (("Moscow", "Moscow"), ("St.-Petersburg", "St Petersburg"),
           ("Novosibirsk Oblast", "Novosibirsk")),
    "BR": (("Sao Paulo", "Sao Paulo"), ("Rio de Janeiro", "Rio de Janeiro"),
           ("Minas Gerais", "Belo Horizonte")),
    "PL": (("Mazovia", "Warsaw"), ("Lesser Poland", "Krakow")),
    "DE": (("Hesse", "Frankfurt am Main"), ("Berlin", "Berlin"),
           ("Bavaria", "Munich")),
    "IN": (("Maharashtra", "Mumbai"), ("Karnataka", "Bengaluru")),
    "UA": (("Kyiv City", "Kyiv"), ("Kharkiv", "Kharkiv")),
    "AU": (("New South Wales", "Sydney"), ("Victoria", "Melbourne")),
    "GB": (("England", "London"), ("Scotland", "Edinburgh")),
    "ID": (("East Java", "Surabaya"), ("Jakarta", "Jakarta")),
    "FR": (("Ile-de-France", "Paris"),),
    "NL": (("North Holland", "Amsterdam"),),
    "CA": (("Ontario", "Toronto"), ("Quebec", "Montreal")),
    "IT": (("Lombardy", "Milan"), ("Lazio", "Rome")),
    "RO": (("Bucuresti", "Bucharest"), ("Cluj", "Cluj-Napoca"), ("Iasi", "Iasi")),
    "SE": (("Stockholm", "Stockholm"),),
    "DK": (("Capital Region", "Copenhagen"),),
}  # fmt: skip

#: First octets that public unicast IPv4 addresses in the generator start with.
_PUBLIC_FIRST_OCTETS = np.array(
    [n for n in range(1, 224) if n not in (10, 100, 127, 169, 172, 192, 198)],
    dtype=np.uint64,
)


@dataclass(frozen=True)
class Locations:
    """Vectorised location columns for a batch of keys."""

    country: np.ndarray
    asn: np.ndarray
    ip: np.ndarray
    place: np.ndarray


@dataclass(frozen=True)
class Geography:
    """Countries, ASNs and their joint distribution, fitted to the statistics."""

    countries: tuple[str, ...]
    asns: np.ndarray
    pair_country: np.ndarray
    pair_asn: np.ndarray
    pair_cdf: np.ndarray
    prefix_count: np.ndarray
    place_region: np.ndarray
    place_city: np.ndarray
    place_start: np.ndarray
    place_count: np.ndarray

    def country_index(self, code: str) -> int:
        """Index of a country code."""
        return self.countries.index(code)

    def asn_index(self, asn: int) -> int:
        """Index of an ASN number."""
        return int(np.flatnonzero(self.asns == asn)[0])

    def locate(self, keys: np.ndarray) -> Locations:
        """Derive a location for each key, drawn from the fitted joint shares."""
        pair = np.minimum(
            np.searchsorted(self.pair_cdf, uniform(keys, 1), side="right"),
            len(self.pair_cdf) - 1,
        )
        country = self.pair_country[pair]
        asn = self.pair_asn[pair]
        return Locations(
            country=country,
            asn=asn,
            ip=self.ip_addresses(keys, asn),
            place=self.places(keys, country),
        )

    def ip_addresses(self, keys: np.ndarray, asn: np.ndarray) -> np.ndarray:
        """IPv4 addresses (as uint64) inside the /16 networks of each ASN."""
        bits = mix64(keys ^ np.uint64(0x1F0D))
        asn_hash = mix64(self.asns[asn].astype(np.uint64) * np.uint64(1_000_003))
        prefix = mix64(asn_hash + bits % self.prefix_count[asn].astype(np.uint64))
        first = _PUBLIC_FIRST_OCTETS[prefix % np.uint64(len(_PUBLIC_FIRST_OCTETS))]
        second = (prefix >> np.uint64(8)) & np.uint64(0xFF)
        low = (bits >> np.uint64(8)) & np.uint64(0xFFFF)
        public = (first << np.uint64(24)) | (second << np.uint64(16)) | low
        private = (np.uint64(10) << np.uint64(24)) | (low % np.uint64(70 * 256))
        return np.where(uniform(keys, 2) < PRIVATE_IP_SHARE, private, public)

    def on_attack_list(self, ip: np.ndarray) -> np.ndarray:
        """Whether each IPv4 address is on the (hash-defined) attack list."""
        return uniform(ip, _ATTACK_LIST_STREAM) < calibration.ATTACK_LIST_SHARE

    def listed_ip_addresses(
        self, keys: np.ndarray, asn: np.ndarray, listed: np.ndarray
    ) -> np.ndarray:
        """Like ``ip_addresses``, but on (or off) the attack list as asked.

        Retries derived keys until each IP has the wanted attack-list status;
        the rounds are bounded and the expected number is about 60.
        """
        ips = self.ip_addresses(keys, asn)
        pending = np.flatnonzero(self.on_attack_list(ips) != listed)
        for attempt in range(1, _LISTED_IP_ATTEMPTS):
            if len(pending) == 0:
                break
            candidates = self.ip_addresses(derive(keys[pending], attempt), asn[pending])
            hit = self.on_attack_list(candidates) == listed[pending]
            ips[pending[hit]] = candidates[hit]
            pending = pending[~hit]
        return ips

    def places(self, keys: np.ndarray, country: np.ndarray) -> np.ndarray:
        """Index into the place tables; 0 is the unknown place ``-``/``-``."""
        count = self.place_count[country]
        pick = (uniform(keys, 3) * np.maximum(count, 1)).astype(np.int64)
        known = (count > 0) & (uniform(keys, 4) >= UNKNOWN_PLACE_SHARE)
        return np.where(known, self.place_start[country] + pick, 0)

    def asns_of_country(self, country: int) -> tuple[np.ndarray, np.ndarray]:
        """ASN indices used in one country and their conditional shares."""
        mask = self.pair_country == country
        weights = np.diff(self.pair_cdf, prepend=0.0)[mask]
        return self.pair_asn[mask], weights / weights.sum()


def format_ips(ip: np.ndarray) -> list[str]:
    """Dotted-quad strings for IPv4 addresses held as integers."""
    octets = [((ip >> np.uint64(s)) & np.uint64(0xFF)).tolist() for s in (24, 16, 8, 0)]
    return [f"{a}.{b}.{c}.{d}" for a, b, c, d in zip(*octets, strict=True)]


def _asn_table(
    countries: list[str], country_weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ASN numbers, their row shares and their home country indices."""
    head = {**calibration.ASN_HEAD, **calibration.ASN_TAKEOVER_PINNED}
    rng = np.random.default_rng(2021)  # fixed: the catalogue must not vary by seed
    taken = set(head)
    numbers: list[int] = []
    while len(numbers) < calibration.ASN_TAIL_SIZE:
        artefact = rng.random() < calibration.ASN_ARTEFACT_SHARE
        number = int(
            rng.integers(500_000, 510_000) if artefact else rng.integers(1, 400_000)
        )
        if number not in taken:
            taken.add(number)
            numbers.append(number)
    # Each tail ASN lives where head ASNs leave room, roughly.
    head_mass = np.zeros(len(countries))
    for share, home in head.values():
        head_mass[countries.index(home)] += share / 100.0
    room = np.maximum(country_weights - head_mass, 0.0) + 1e-6
    tail_home = rng.choice(len(countries), size=len(numbers), p=room / room.sum())
    remaining = 1.0 - sum(share for share, _ in head.values()) / 100.0
    # Offset Zipf: the largest tail ASN stays below the smallest published one.
    zipf = 1.0 / np.arange(31, len(numbers) + 31)
    tail_shares = remaining * zipf / zipf.sum()
    asns = np.array([*head, *numbers], dtype=np.int64)
    shares = np.concatenate([[s / 100.0 for s, _ in head.values()], tail_shares])
    homes = np.concatenate([[countries.index(h) for _, h in head.values()], tail_home])
    return asns, shares, homes


@cache
def geography() -> Geography:
    """Build (once) the country x ASN joint distribution and place tables.

    The joint is fitted by iterative proportional fitting: a prior that puts
    each ASN in its home country (with a little mass everywhere else) is
    scaled until both the country and the ASN shares match.
    """
    countries, country_weights = calibration.country_shares()
    asns, asn_weights, homes = _asn_table(countries, country_weights)
    joint = np.outer(country_weights, asn_weights) * 1e-3
    joint[homes, np.arange(len(asns))] += asn_weights
    for _ in range(100):
        joint *= (country_weights / joint.sum(axis=1))[:, None]
        joint *= asn_weights / joint.sum(axis=0)
    flat = joint.ravel()
    keep = np.flatnonzero(flat > 1e-10)
    cdf = np.cumsum(flat[keep])
    cdf /= cdf[-1]

    regions, cities = ["-"], ["-"]
    start = np.zeros(len(countries), dtype=np.int64)
    count = np.zeros(len(countries), dtype=np.int64)
    for code, places in PLACES.items():
        index = countries.index(code)
        start[index], count[index] = len(regions), len(places)
        regions.extend(region for region, _ in places)
        cities.extend(city for _, city in places)
    return Geography(
        countries=tuple(countries),
        asns=asns,
        pair_country=keep // len(asns),
        pair_asn=keep % len(asns),
        pair_cdf=cdf,
        prefix_count=1 + (asn_weights * PREFIXES_PER_SHARE).astype(np.int64),
        place_region=np.array(regions, dtype=object),
        place_city=np.array(cities, dtype=object),
        place_start=start,
        place_count=count,
    )
