"""Read an RBA-format CSV file (plain or gzip) in bounded memory.

The published file has 31 million rows and 9 GB of text, so it is streamed in
blocks with ``pyarrow.csv.open_csv``. Each block is validated and reduced to
the few compact columns the model needs: integer ids into growing
vocabularies for the category columns, the hour and weekday of the
timestamp, and the three booleans. Full raw rows are kept only for a small
set of candidates (the first rows of the file and every account takeover),
from which the bundle's golden events are drawn.

NOTE: every column is parsed (as strings, one block at a time) because user
ids and ASNs are validated and golden events need whole rows; only the
compact columns outlive a block. Skipping the unused columns would save
parse time, not memory.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from login_scorer_training.features import strip_version
from login_scorer_training.rba import CSV_COLUMNS, EVENT_FIELDS

LOG = logging.getLogger(__name__)

#: Category columns, mapped to the feature name they feed.
CATEGORY_COLUMNS: dict[str, str] = {
    "Country": "country_code",
    "Device Type": "device_type",
    "Browser Name and Version": "browser_name",
    "OS Name and Version": "os_name",
}

#: Category features whose raw value loses its trailing version first.
VERSIONED_FEATURES = frozenset({"browser_name", "os_name"})

BOOLEAN_COLUMNS: dict[str, str] = {
    "Login Successful": "is_login_success",
    "Is Attack IP": "is_attack_ip",
    "Is Account Takeover": "is_account_takeover",
}

_TRUE = frozenset({"True", "true", "TRUE"})
_FALSE = frozenset({"False", "false", "FALSE"})
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

#: Rows at the top of the file kept raw as golden-event candidates.
DEFAULT_HEAD_CANDIDATES = 5000

#: Bytes of CSV text per streamed block; bounds memory per block.
BLOCK_SIZE = 16 << 20


class RbaFormatError(ValueError):
    """The file is not valid RBA-format CSV; names the file, line and column."""

    def __init__(self, path: Path, line: int | None, column: str | None, why: str):
        self.path = path
        self.line = line
        self.column = column
        self.why = why
        where = str(path)
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {why}")


@dataclass
class LoginTable:
    """Compact columns of every login in a file, in file order.

    Category columns hold ids into ``vocabularies[feature]`` (the feature's
    raw values, versions already stripped), or -1 where the value is missing.
    """

    path: Path
    categories: dict[str, np.ndarray]
    vocabularies: dict[str, list[str]]
    hour: np.ndarray
    weekday: np.ndarray
    booleans: dict[str, np.ndarray]
    sha256: str
    candidates: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """Number of logins (data lines) in the file."""
        return len(self.hour)

    @property
    def is_takeover(self) -> np.ndarray:
        """Boolean mask of the account takeovers."""
        return self.booleans["is_account_takeover"]

    def category_values(self, feature: str) -> np.ndarray:
        """The raw (version-stripped) string of each row, ``""`` if missing."""
        lookup = np.array([*self.vocabularies[feature], ""], dtype=object)
        return lookup[self.categories[feature]]


class _HashingReader(io.RawIOBase):
    """Passes a binary file through while hashing every byte read."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._raw.readinto(buffer)
        if count:
            self.digest.update(memoryview(buffer)[:count])
        return count or 0


class _Vocabulary:
    """Assigns growing integer ids to the distinct values of one column."""

    def __init__(self, normalise: Callable[[str], str]):
        self._normalise = normalise
        self.ids: dict[str, int] = {}

    def encode(self, column: pa.ChunkedArray | pa.Array) -> np.ndarray:
        encoded = pc.dictionary_encode(column)
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        lookup = np.empty(len(encoded.dictionary) + 1, dtype=np.int32)
        for position, value in enumerate(encoded.dictionary.to_pylist()):
            normalised = self._normalise(value)
            if not normalised:
                lookup[position] = -1
                continue
            lookup[position] = self.ids.setdefault(normalised, len(self.ids))
        lookup[-1] = -1  # nulls; pyarrow keeps empty strings non-null
        indices = encoded.indices.fill_null(len(encoded.dictionary))
        return lookup[indices.to_numpy(zero_copy_only=False)]

    def values(self) -> list[str]:
        return list(self.ids)


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as probe:
        return probe.read(2) == b"\x1f\x8b"


def _check_header(path: Path, names: list[str]) -> None:
    missing = [name for name in CSV_COLUMNS if name not in names]
    unexpected = [name for name in names if name not in CSV_COLUMNS]
    if missing:
        why = "missing column"
        if unexpected:
            why += f" (found unexpected {', '.join(map(repr, unexpected))})"
        raise RbaFormatError(path, 1, missing[0], why)
    if unexpected:
        raise RbaFormatError(path, 1, unexpected[0], "unexpected column")


def _first_bad(values: list[str | None], valid: Callable[[str], bool]) -> int:
    for position, value in enumerate(values):
        if value is not None and not valid(value):
            return position
    raise AssertionError("no invalid value found after a failed conversion")


def _is_int64(text: str) -> bool:
    try:
        number = int(text.strip())
    except ValueError:
        return False
    return _INT64_MIN <= number <= _INT64_MAX


def _is_timestamp(text: str) -> bool:
    try:
        pc.cast(pa.array([text]), pa.timestamp("ms"))
    except pa.ArrowInvalid:
        return False
    return True


class _BatchChecker:
    """Converts and validates the columns of one block, naming bad cells."""

    def __init__(self, path: Path, batch: pa.RecordBatch, first_line: int):
        self.path = path
        self.batch = batch
        self.first_line = first_line

    def fail(self, column: str, position: int, why: str) -> RbaFormatError:
        return RbaFormatError(self.path, self.first_line + position, column, why)

    def integers(self, column: str) -> None:
        """User ids and ASNs are not model inputs but must be 64-bit integers."""
        values = self.batch.column(column)
        present = pc.if_else(pc.equal(values, ""), None, values)
        try:
            pc.cast(pc.utf8_trim_whitespace(present), pa.int64())
        except pa.ArrowInvalid:
            position = _first_bad(present.to_pylist(), _is_int64)
            bad = present[position].as_py()
            raise self.fail(
                column, position, f"not a 64-bit integer: {bad!r}"
            ) from None

    def timestamps(self) -> pa.Array:
        column = "Login Timestamp"
        values = self.batch.column(column)
        empty = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(values)), 0)
        if pc.any(empty).as_py():
            position = int(np.flatnonzero(empty.to_numpy(zero_copy_only=False))[0])
            raise self.fail(column, position, "empty timestamp")
        try:
            return pc.cast(pc.utf8_trim_whitespace(values), pa.timestamp("ms"))
        except pa.ArrowInvalid:
            position = _first_bad(values.to_pylist(), _is_timestamp)
            bad = values[position].as_py()
            raise self.fail(column, position, f"unparsable timestamp {bad!r}") from None

    def boolean(self, column: str) -> np.ndarray:
        values = pc.utf8_trim_whitespace(self.batch.column(column))
        is_true = pc.is_in(values, pa.array(sorted(_TRUE)))
        is_false = pc.is_in(values, pa.array(sorted(_FALSE)))
        valid = pc.or_(is_true, is_false).to_numpy(zero_copy_only=False)
        if not valid.all():
            position = int(np.flatnonzero(~valid)[0])
            bad = values[position].as_py()
            raise self.fail(column, position, f"not True or False: {bad!r}")
        return is_true.to_numpy(zero_copy_only=False)


def _open_batches(path: Path, stream: Any) -> Iterator[pa.RecordBatch]:
    problems: list[RbaFormatError] = []

    def on_invalid_row(row: Any) -> str:
        # NOTE: pyarrow numbers rows (header = 1, so the file line) only when
        # it parses serially, hence use_threads=False below.
        why = f"expected {len(CSV_COLUMNS)} fields, got {row.actual_columns}"
        problems.append(RbaFormatError(path, row.number, None, why))
        return "error"

    read_options = pacsv.ReadOptions(block_size=BLOCK_SIZE, use_threads=False)
    parse_options = pacsv.ParseOptions(invalid_row_handler=on_invalid_row)
    convert_options = pacsv.ConvertOptions(
        column_types=dict.fromkeys(CSV_COLUMNS, pa.string()),
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
        null_values=[],
    )
    try:
        reader = pacsv.open_csv(stream, read_options, parse_options, convert_options)
        _check_header(path, reader.schema.names)
        yield from reader
    except pa.ArrowInvalid as error:
        if problems:
            raise problems[0] from None
        why = f"malformed CSV: {str(error).splitlines()[0]}"
        raise RbaFormatError(path, None, None, why) from None
    except OSError as error:
        # A truncated or corrupt gzip stream, or an I/O error part way.
        raise RbaFormatError(path, None, None, f"cannot read: {error}") from None


def _raw_event(batch: pa.RecordBatch, position: int) -> dict[str, Any]:
    """One CSV row in the service's JSON event shape."""
    row = {name: batch.column(name)[position].as_py() for name in EVENT_FIELDS}
    event: dict[str, Any] = {}
    for column, name in EVENT_FIELDS.items():
        value = row[column]
        if column in BOOLEAN_COLUMNS:
            event[name] = value.strip() in _TRUE
        elif column in ("ASN", "Round-Trip Time [ms]"):
            event[name] = _number_or_none(value, integer=column == "ASN")
        elif column == "User ID":
            event[name] = value.strip() or None
        else:
            event[name] = value
    return event


def _number_or_none(text: str, *, integer: bool) -> int | float | None:
    text = text.strip()
    if not text:
        return None
    return int(text) if integer else float(text)


def read_logins(
    path: Path, *, head_candidates: int = DEFAULT_HEAD_CANDIDATES
) -> LoginTable:
    """Stream ``path`` and return its compact columns; raises RbaFormatError."""
    if not path.is_file():
        raise RbaFormatError(path, None, None, "not a readable file")
    vocabularies = {
        feature: _Vocabulary(strip_version if feature in VERSIONED_FEATURES else str)
        for feature in CATEGORY_COLUMNS.values()
    }
    parts: dict[str, list[np.ndarray]] = {
        name: [] for name in [*CATEGORY_COLUMNS.values(), *BOOLEAN_COLUMNS.values()]
    }
    hours: list[np.ndarray] = []
    weekdays: list[np.ndarray] = []
    candidates: dict[int, dict[str, Any]] = {}
    rows = 0

    with path.open("rb") as raw:
        hashing = _HashingReader(raw)
        compression = "gzip" if _is_gzip(path) else None
        stream = pa.input_stream(hashing, compression=compression)
        for batch in _open_batches(path, stream):
            checker = _BatchChecker(path, batch, first_line=rows + 2)
            checker.integers("User ID")
            checker.integers("ASN")
            stamps = checker.timestamps()
            hours.append(pc.hour(stamps).to_numpy().astype(np.int8))
            weekdays.append(pc.day_of_week(stamps).to_numpy().astype(np.int8))
            for column, name in BOOLEAN_COLUMNS.items():
                parts[name].append(checker.boolean(column))
            for column, name in CATEGORY_COLUMNS.items():
                parts[name].append(vocabularies[name].encode(batch.column(column)))

            takeovers = np.flatnonzero(parts["is_account_takeover"][-1])
            head = range(max(0, min(head_candidates - rows, batch.num_rows)))
            for position in sorted({*head, *takeovers.tolist()}):
                candidates[rows + position] = _raw_event(batch, position)
            rows += batch.num_rows
            LOG.debug("read %d rows", rows)
        # Hash whatever pyarrow left unread (normally nothing) so the digest
        # covers the whole file.
        while hashing.read(1 << 20):
            pass

    if rows == 0:
        raise RbaFormatError(path, 2, None, "no data rows")
    LOG.info("read %s: %d rows", path, rows)

    def joined(chunks: list[np.ndarray], dtype: Any) -> np.ndarray:
        return np.concatenate(chunks).astype(dtype, copy=False)

    return LoginTable(
        path=path,
        categories={
            name: joined(parts[name], np.int32) for name in CATEGORY_COLUMNS.values()
        },
        vocabularies={name: vocab.values() for name, vocab in vocabularies.items()},
        hour=joined(hours, np.int8),
        weekday=joined(weekdays, np.int8),
        booleans={name: joined(parts[name], bool) for name in BOOLEAN_COLUMNS.values()},
        sha256=hashing.digest.hexdigest(),
        candidates=candidates,
    )
