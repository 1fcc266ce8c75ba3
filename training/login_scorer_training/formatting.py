"""Turning blocks of login rows into CSV text, fast.

Most columns take few distinct values (a device profile, a place, an ASN,
three booleans), so their CSV text is rendered once per value with the
``csv`` module and looked up per row; timestamps and IPs are assembled from
small string tables. The output is byte-identical to ``csv.writer`` with
minimal quoting and ``\\n`` line ends, the dialect of the published file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from functools import cache

import numpy as np

from login_scorer_training.devices import device_catalogue
from login_scorer_training.geography import geography
from login_scorer_training.rba import CSV_COLUMNS
from login_scorer_training.synthesis import LoginBlock

_DAY_MS = 86_400_000
_MINUTE_MS = 60_000


def csv_line(fields: Iterable[object]) -> str:
    """One CSV record as the csv module writes it, without the line end."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(fields)
    return buffer.getvalue()[:-1]


def header_line() -> bytes:
    """The CSV header line, exactly as the real file has it."""
    return (csv_line(CSV_COLUMNS) + "\n").encode("utf-8")


class RowFormatter:
    """Lookup tables for the CSV text of every low-cardinality column group."""

    def __init__(self) -> None:
        catalogue = device_catalogue()
        geo = geography()
        self._profiles = _objects(
            csv_line((p.user_agent, p.browser, p.os, p.device_type))
            for p in catalogue.profiles
        )
        self._profiles_no_device = _objects(
            csv_line((p.user_agent, p.browser, p.os, "")) for p in catalogue.profiles
        )
        self._n_places = len(geo.place_region)
        self._places = _objects(
            csv_line((country, geo.place_region[p], geo.place_city[p]))
            for country in geo.countries
            for p in range(self._n_places)
        )
        self._asns = _objects(str(asn) for asn in geo.asns.tolist())
        self._flags = _objects(
            csv_line((bool(i & 4), bool(i & 2), bool(i & 1))) for i in range(8)
        )
        self._octets = _objects(str(i) for i in range(256))
        self._octets_dot = _objects(f"{i}." for i in range(256))
        self._clock = _objects(f"{m // 60:02d}:{m % 60:02d}:" for m in range(1440))
        self._seconds = _objects(
            f"{ms // 1000:02d}.{ms % 1000:03d}" for ms in range(_MINUTE_MS)
        )

    def format(self, block: LoginBlock, first_index: int) -> bytes:
        """The CSV lines of one block (no header), UTF-8 encoded."""
        profiles = np.where(
            block.device_empty,
            self._profiles_no_device[block.profile],
            self._profiles[block.profile],
        )
        flags = (
            block.success.astype(np.intp) * 4
            + block.attack.astype(np.intp) * 2
            + block.takeover.astype(np.intp)
        )
        columns = [
            map(str, range(first_index, first_index + len(block))),
            self._timestamps(block.time_ms).tolist(),
            map(str, block.user_id.tolist()),
            _round_trip_times(block.rtt_ms),
            self._ips(block.ip).tolist(),
            self._places[block.country * self._n_places + block.place].tolist(),
            self._asns[block.asn].tolist(),
            profiles.tolist(),
            self._flags[flags].tolist(),
        ]
        lines = map(",".join, zip(*columns, strict=True))
        return ("\n".join(lines) + "\n").encode("utf-8")

    def _timestamps(self, time_ms: np.ndarray) -> np.ndarray:
        """``2020-02-03 12:43:30.772`` strings (UTC, milliseconds)."""
        days, in_day = np.divmod(time_ms, _DAY_MS)
        minute, in_minute = np.divmod(in_day, _MINUTE_MS)
        first_day = int(days.min()) if len(days) else 0
        dates = _day_strings(first_day, int(days.max()) + 1 if len(days) else 0)
        return dates[days - first_day] + self._clock[minute] + self._seconds[in_minute]

    def _ips(self, ip: np.ndarray) -> np.ndarray:
        """Dotted quads from IPv4 addresses held as integers."""
        octet = [
            ((ip >> np.uint64(shift)) & np.uint64(0xFF)).astype(np.intp)
            for shift in (24, 16, 8, 0)
        ]
        dot = self._octets_dot
        return dot[octet[0]] + dot[octet[1]] + dot[octet[2]] + self._octets[octet[3]]


@cache
def row_formatter() -> RowFormatter:
    """The shared formatter (its tables are built once per process)."""
    return RowFormatter()


def _round_trip_times(rtt_ms: np.ndarray) -> list[str]:
    """``1123.0`` where present, empty where missing (NaN)."""
    text = np.full(len(rtt_ms), "", dtype=object)
    present = ~np.isnan(rtt_ms)
    text[present] = [repr(value) for value in rtt_ms[present].tolist()]
    return text.tolist()


def _day_strings(first_day: int, end_day: int) -> np.ndarray:
    """``YYYY-MM-DD `` for each day number (days since 1970-01-01)."""
    days = np.arange(first_day, end_day).astype("datetime64[D]")
    return _objects(f"{day} " for day in np.datetime_as_string(days).tolist())


def _objects(strings: Iterable[str]) -> np.ndarray:
    return np.array(list(strings), dtype=object)
