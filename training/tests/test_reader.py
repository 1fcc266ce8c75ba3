"""Reading RBA files: plain and gzip, streaming, and errors naming the cell."""

from __future__ import annotations

import csv
import gzip
import logging
from pathlib import Path

import numpy as np
import pytest

from login_scorer_training import reader
from login_scorer_training.__main__ import main
from login_scorer_training.reader import RbaFormatError, read_logins


def test_plain_and_gzip_read_the_same(rba_file) -> None:
    plain = read_logins(rba_file(300, 3, name="a.csv", seed=7))
    packed = read_logins(rba_file(300, 3, name="a.csv.gz", seed=7))

    assert plain.rows == packed.rows == 300
    assert int(plain.is_takeover.sum()) == 3
    np.testing.assert_array_equal(plain.hour, packed.hour)
    for name, ids in plain.categories.items():
        np.testing.assert_array_equal(
            plain.category_values(name), packed.category_values(name)
        )
        assert ids.dtype == np.int32


def test_fingerprint_is_the_sha256_of_the_file_bytes(rba_file) -> None:
    import hashlib

    path = rba_file(50, 1, name="f.csv.gz")
    assert read_logins(path).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_sample_columns(sample_csv: Path) -> None:
    table = read_logins(sample_csv)

    assert table.rows == 19
    assert table.hour.tolist() == [12] * 19
    assert table.weekday.tolist() == [0] * 19
    assert table.category_values("browser_name")[2] == "Android"
    assert table.category_values("os_name")[6] == "Chrome OS"
    assert table.booleans["is_attack_ip"].sum() == 2
    event = table.candidates[15]
    assert event["round_trip_time_ms"] == 1123.0
    assert event["user_id"] == "-8296667206273764769"
    assert event["asn"] == 29492
    assert event["login_successful"] is True


def test_many_small_blocks_keep_rows_and_lines(rba_file, monkeypatch) -> None:
    path = rba_file(3000, 4)
    whole = read_logins(path)
    monkeypatch.setattr(reader, "BLOCK_SIZE", 8192)

    streamed = read_logins(path)

    np.testing.assert_array_equal(whole.hour, streamed.hour)
    np.testing.assert_array_equal(whole.is_takeover, streamed.is_takeover)
    assert set(whole.candidates) == set(streamed.candidates)


def _rewrite(source: Path, target: Path, line: int, column: str, value: str) -> None:
    """Copy ``source`` to ``target`` with one cell replaced (line 1 = header)."""
    with source.open(newline="") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    rows[line - 1][header.index(column)] = value
    opener = gzip.open if target.suffix == ".gz" else open
    with opener(target, "wt", newline="") as out:
        csv.writer(out).writerows(rows)


@pytest.mark.parametrize(
    ("column", "value", "why"),
    [
        ("Login Timestamp", "2020-13-45 99:00:00.000", "unparsable timestamp"),
        ("Login Timestamp", "yesterday", "unparsable timestamp"),
        ("Login Timestamp", "", "empty timestamp"),
        ("User ID", "18446744073709551616", "not a 64-bit integer"),
        ("User ID", "-9223372036854775809", "not a 64-bit integer"),
        ("ASN", "AS29695", "not a 64-bit integer"),
        ("Is Attack IP", "maybe", "not True or False"),
    ],
)
@pytest.mark.parametrize("name", ["bad.csv", "bad.csv.gz"])
def test_bad_cell_names_file_line_and_column(
    rba_file, tmp_path: Path, monkeypatch, column: str, value: str, why: str, name: str
) -> None:
    source = rba_file(2500, 2)
    bad = tmp_path / name
    _rewrite(source, bad, 2345, column, value)
    monkeypatch.setattr(reader, "BLOCK_SIZE", 16384)  # the cell is blocks in

    with pytest.raises(RbaFormatError) as caught:
        read_logins(bad)

    assert caught.value.path == bad
    assert caught.value.line == 2345
    assert caught.value.column == column
    assert why in str(caught.value)
    assert f"{bad}, line 2345, column {column!r}" in str(caught.value)


def test_user_id_at_the_64_bit_limits_is_fine(rba_file, tmp_path: Path) -> None:
    source = rba_file(20, 1)
    edge = tmp_path / "edge.csv"
    _rewrite(source, edge, 3, "User ID", "-9223372036854775808")
    read_logins(edge)
    _rewrite(source, edge, 3, "User ID", "9223372036854775807")
    assert read_logins(edge).rows == 20


def _write_header(path: Path, header: list[str]) -> None:
    row = "0,2020-02-03 12:43:30.772,1,,10.0.0.1,NO,-,-,29695,UA,Chrome 8,iOS 1,mobile,"
    row += "True,False,False"
    path.write_text(",".join(header) + "\n" + row + "\n")


def test_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "missing.csv"
    header = [name for name in reader.CSV_COLUMNS if name != "ASN"]
    path.write_text(",".join(header) + "\n")

    with pytest.raises(RbaFormatError) as caught:
        read_logins(path)

    assert (caught.value.line, caught.value.column) == (1, "ASN")
    assert "missing column" in str(caught.value)


def test_renamed_column(tmp_path: Path) -> None:
    path = tmp_path / "renamed.csv"
    header = ["Land" if name == "Country" else name for name in reader.CSV_COLUMNS]
    _write_header(path, header)

    with pytest.raises(RbaFormatError) as caught:
        read_logins(path)

    assert (caught.value.line, caught.value.column) == (1, "Country")
    assert "'Land'" in str(caught.value)


def test_row_with_too_few_fields(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    _write_header(path, list(reader.CSV_COLUMNS))
    with path.open("a") as out:
        out.write("1,2020-02-03 12:43:30.772,1\n")

    with pytest.raises(RbaFormatError, match="expected 16 fields, got 3") as caught:
        read_logins(path)

    assert caught.value.line == 3
    assert str(caught.value).startswith(f"{path}, line 3: ")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RbaFormatError, match="not a readable file"):
        read_logins(tmp_path / "nope.csv")


def test_truncated_gzip(rba_file, tmp_path: Path) -> None:
    whole = rba_file(3000, 2, name="whole.csv.gz").read_bytes()
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(whole[: len(whole) // 2])

    with pytest.raises(RbaFormatError, match="cannot read") as caught:
        read_logins(cut)

    assert caught.value.path == cut


def test_cli_reports_bad_input_without_traceback(
    rba_file, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys
) -> None:
    source = rba_file(40, 1)
    bad = tmp_path / "bad.csv"
    _rewrite(source, bad, 17, "ASN", "n/a")
    root = tmp_path / "models" / "rba-autoencoder"

    with caplog.at_level(logging.ERROR):
        code = main(["train", "--data", str(bad), "--model-root", str(root)])

    assert code == 1
    assert f"{bad}, line 17, column 'ASN'" in caplog.text
    assert "Traceback" not in caplog.text + capsys.readouterr().err
    assert not root.exists() or list(root.iterdir()) == []
