"""The generator's output format, determinism, atomic writes and memory use."""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import itertools
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from login_scorer_training import generate, synthesis
from login_scorer_training.formatting import RowFormatter
from login_scorer_training.generate import write_dataset
from login_scorer_training.rba import CATCH_ALL_USER_ID, CSV_COLUMNS
from login_scorer_training.synthesis import Synthesizer

REAL_SAMPLE = Path(__file__).resolve().parents[2].parent / "shared/data/rba-sample.csv"

_OCTET = r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_TEXT = r"\S(.*\S)?"
#: The value format of every column, as the published file writes it.
COLUMN_FORMATS: dict[str, str] = {
    "index": r"0|[1-9]\d*",
    "Login Timestamp": r"20(20|21)-[01]\d-[0-3]\d [0-2]\d:[0-5]\d:[0-5]\d\.\d{3}",
    "User ID": r"-?[1-9]\d{0,18}",
    "Round-Trip Time [ms]": r"|[1-9]\d*\.\d+",
    "IP Address": rf"{_OCTET}(\.{_OCTET}){{3}}",
    "Country": r"[A-Z]{2}",
    "Region": _TEXT,
    "City": _TEXT,
    "ASN": r"[1-9]\d*",
    "User Agent String": r"\S.*",
    "Browser Name and Version": _TEXT,
    "OS Name and Version": _TEXT,
    "Device Type": r"mobile|desktop|tablet|bot|unknown|",
    "Login Successful": r"True|False",
    "Is Attack IP": r"True|False",
    "Is Account Takeover": r"True|False",
}


@pytest.fixture(scope="module")
def generated_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20,000 rows (one partial block) with a few takeovers."""
    path = tmp_path_factory.mktemp("generated") / "rba.csv"
    write_dataset(path, rows=20_000, takeovers=20, seed=5)
    return path


@pytest.fixture
def real_sample() -> Path:
    """The 19 real rows; skipped where ../shared is not checked out."""
    if not REAL_SAMPLE.is_file():
        pytest.skip(f"real sample absent at {REAL_SAMPLE} (a clone has no ../shared)")
    return REAL_SAMPLE


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 7,000 rows, so small files still span several blocks."""
    monkeypatch.setattr(synthesis, "BLOCK_ROWS", 7_000)


def _records(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        header, *rows = csv.reader(handle)
    return header, rows


def _format_violations(header: list[str], rows: list[list[str]]) -> list[str]:
    patterns = {name: re.compile(rf"(?:{p})\Z") for name, p in COLUMN_FORMATS.items()}
    bad = []
    for row in rows:
        assert len(row) == len(header), row
        for name, value in zip(header, row, strict=True):
            if not patterns[name].match(value):
                bad.append(f"{name}={value!r}")
    return bad


def test_header_is_the_sixteen_rba_columns(generated_csv: Path) -> None:
    header, _ = _records(generated_csv)
    assert tuple(header) == CSV_COLUMNS
    assert generated_csv.read_bytes().startswith(",".join(CSV_COLUMNS).encode() + b"\n")


def test_header_matches_the_real_sample(generated_csv: Path, real_sample: Path) -> None:
    generated = generated_csv.read_bytes().split(b"\n", 1)[0]
    assert generated == real_sample.read_bytes().split(b"\n", 1)[0]


def test_every_value_has_the_published_format(generated_csv: Path) -> None:
    header, rows = _records(generated_csv)
    assert len(rows) == 20_000
    assert _format_violations(header, rows) == []
    assert [int(row[0]) for row in rows] == list(range(20_000))


def test_the_format_rules_accept_the_real_sample(real_sample: Path) -> None:
    # Guards the regexes above: they must describe the real file, not ours.
    header, rows = _records(real_sample)
    assert _format_violations(header, rows) == []


def _rewritten_by_csv(text: str) -> str:
    rewritten = io.StringIO()
    csv.writer(rewritten, lineterminator="\n").writerows(csv.reader(io.StringIO(text)))
    return rewritten.getvalue()


def test_quoting_is_what_the_csv_module_writes(generated_csv: Path) -> None:
    text = generated_csv.read_text(encoding="utf-8")
    assert _rewritten_by_csv(text) == text


def test_the_real_sample_is_quoted_the_same_way(real_sample: Path) -> None:
    # Guards the claim above: the published file is csv's minimal quoting too.
    text = real_sample.read_text(encoding="utf-8")
    assert _rewritten_by_csv(text) == text


def test_values_look_like_the_real_data(generated_csv: Path) -> None:
    header, rows = _records(generated_csv)
    column = {name: [row[i] for row in rows] for i, name in enumerate(header)}
    times = column["Login Timestamp"]
    assert times == sorted(times)
    assert times[0] >= "2020-02" and times[-1] < "2021-03"
    ids = [int(v) for v in column["User ID"]]
    assert all(-(2**63) <= v < 2**63 for v in ids)
    assert any(v < 0 for v in ids) and any(v > 0 for v in ids)
    assert str(CATCH_ALL_USER_ID) in column["User ID"]
    assert 0.93 < column["Round-Trip Time [ms]"].count("") / len(rows) < 0.99
    assert any(ip.startswith("10.") for ip in column["IP Address"])
    assert any(int(asn) >= 500_000 for asn in column["ASN"])
    assert 0.2 < column["Region"].count("-") / len(rows) < 0.8
    quoted = sum('"' in line for line in generated_csv.read_text().splitlines())
    assert quoted > len(rows) / 2  # most user agents contain a comma


def test_csv_text_round_trips_the_block_arrays() -> None:
    synthesizer = Synthesizer(rows=5_000, takeovers=5, seed=3)
    block = synthesizer.block(0)
    text = RowFormatter().format(block, first_index=0).decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) == len(block)
    assert [int(r[2]) for r in rows] == block.user_id.tolist()
    assert [r[13] == "True" for r in rows] == block.success.tolist()
    assert [r[15] == "True" for r in rows] == block.takeover.tolist()
    assert [int(r[8]) for r in rows] == synthesizer.geo.asns[block.asn].tolist()
    present = ~np.isnan(block.rtt_ms)
    assert [float(r[3]) for r in rows if r[3]] == block.rtt_ms[present].tolist()


def test_formatting_in_pieces_gives_the_same_text() -> None:
    block = Synthesizer(rows=9_000, takeovers=3, seed=8).block(0)
    formatter = RowFormatter()
    whole = formatter.format(block, first_index=0)
    pieces, start = [], 0
    for piece in block.pieces(1_234):
        pieces.append(formatter.format(piece, first_index=start))
        start += len(piece)
    assert b"".join(pieces) == whole
    assert whole.count(b"\n") == 9_000


@pytest.mark.usefixtures("small_blocks")
def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    for name in ("a.csv", "b.csv", "a.csv.gz", "b.csv.gz"):
        write_dataset(tmp_path / name, rows=30_000, takeovers=10, seed=9)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.csv.gz").read_bytes() == (tmp_path / "b.csv.gz").read_bytes()
    plain = (tmp_path / "a.csv").read_bytes()
    assert gzip.decompress((tmp_path / "a.csv.gz").read_bytes()) == plain

    write_dataset(tmp_path / "c.csv", rows=30_000, takeovers=10, seed=10)
    assert (tmp_path / "c.csv").read_bytes() != plain


def test_blocks_do_not_depend_on_generation_order() -> None:
    synthesizer = Synthesizer(rows=250_000, takeovers=20, seed=4)
    forward = [synthesizer.block(i) for i in range(synthesizer.n_blocks)]
    backward = [synthesizer.block(i) for i in reversed(range(synthesizer.n_blocks))]
    for one, other in zip(forward, reversed(backward), strict=True):
        assert np.array_equal(one.user_id, other.user_id)
        assert np.array_equal(one.time_ms, other.time_ms)
    for earlier, later in itertools.pairwise(forward):
        assert earlier.time_ms.max() <= later.time_ms.min()
    assert sum(len(block) for block in forward) == 250_000
    assert sum(int(block.takeover.sum()) for block in forward) == 20


@pytest.mark.usefixtures("small_blocks")
def test_a_failed_run_leaves_no_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "rba.csv.gz"
    target.write_bytes(b"previous version")
    calls = []

    def failing_format(self: RowFormatter, block: object, first_index: int) -> bytes:
        calls.append(first_index)
        if len(calls) == 2:
            raise OSError("disk full (simulated)")
        return b"partial rows\n"

    monkeypatch.setattr(RowFormatter, "format", failing_format)
    with pytest.raises(OSError, match="simulated"):
        write_dataset(target, rows=30_000, takeovers=0, seed=1)
    assert target.read_bytes() == b"previous version"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rba.csv.gz"]


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    generate.add_arguments(parser)
    args = parser.parse_args(argv)
    return args.run(args)


def test_cli_writes_the_requested_rows(tmp_path: Path) -> None:
    output = tmp_path / "nested" / "rba.csv.gz"
    argv = ["--rows", "3000", "--takeovers", "7", "--seed", "2", "--output"]
    assert _cli([*argv, str(output)]) == 0
    lines = gzip.decompress(output.read_bytes()).decode().splitlines()
    assert len(lines) == 3_001
    assert sum(line.endswith(",True") for line in lines) == 7


def test_cli_rejects_bad_arguments_without_writing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    output = tmp_path / "rba.csv"
    argv = ["--rows", "100", "--takeovers", "50", "--output", str(output)]
    assert _cli(argv) == 1
    assert "takeovers must be between 0 and rows/20" in caplog.text
    assert not output.exists()
    with pytest.raises(SystemExit):
        _cli(["--rows", "0", "--output", str(output)])
    with pytest.raises(SystemExit):
        _cli(["--rows", "10", "--compresslevel", "11", "--output", str(output)])


_PEAK_RSS_SCRIPT = """
import resource, sys
from pathlib import Path
from login_scorer_training import synthesis
from login_scorer_training.generate import write_dataset
synthesis.BLOCK_ROWS = 10_000
write_dataset(Path(sys.argv[1]), rows=int(sys.argv[2]), takeovers=0, seed=1)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _peak_rss_kib(output: Path, rows: int) -> int:
    result = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS_SCRIPT, str(output), str(rows)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return int(result.stdout.split()[-1])


def test_peak_memory_does_not_grow_with_rows(tmp_path: Path) -> None:
    small = _peak_rss_kib(tmp_path / "small.csv.gz", 20_000)  # 2 blocks
    large = _peak_rss_kib(tmp_path / "large.csv.gz", 400_000)  # 40 blocks
    # Twenty times the rows; holding them all would add well over 100 MiB.
    assert large - small < 30 * 1024, (small, large)
