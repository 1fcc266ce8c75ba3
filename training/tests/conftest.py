"""Shared fixtures: the real 19-row sample and small synthetic RBA files."""

from __future__ import annotations

import csv
import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from login_scorer_training.rba import CSV_COLUMNS

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CSV = REPO_ROOT.parent / "shared" / "data" / "rba-sample.csv"

_COUNTRIES = ("NO", "NO", "NO", "US", "US", "RU", "BR", "DE")
_DEVICES = ("mobile", "mobile", "desktop", "tablet", "bot")
_BROWSERS = (
    "Chrome 86.0.4240",
    "Chrome Mobile 85.0.4183",
    "Chrome Mobile WebView 85.0.4183",
    "Firefox 20.0.0.1618",
    "Opera 70.1",
)
_SYSTEMS = ("iOS 13.4", "Android 10.0.99", "Mac OS X 10.14.6", "Windows 10")


@pytest.fixture
def sample_csv() -> Path:
    """The first 19 real rows; skipped where ../shared is not checked out."""
    if not SAMPLE_CSV.is_file():
        pytest.skip(f"real sample not found at {SAMPLE_CSV} (a clone has no ../shared)")
    return SAMPLE_CSV


def write_rba_csv(
    path: Path, rows: int, takeovers: int, seed: int = 0
) -> list[dict[str, str]]:
    """Write a small RBA-format file (gzip if ``path`` ends in .gz).

    Normal rows mix a few common values; takeovers are successful desktop
    Chrome/Mac logins from Romania, easy for an autoencoder to flag.
    """
    rng = np.random.default_rng(seed)
    takeover_rows = set(rng.choice(rows, size=takeovers, replace=False).tolist())
    start = np.datetime64("2020-02-03T00:00:00")
    records = []
    for index in range(rows):
        stamp = start + np.timedelta64(int(rng.integers(0, 300 * 86400)), "s")
        record = {
            "index": str(index),
            "Login Timestamp": f"{str(stamp).replace('T', ' ')}.{index % 1000:03d}",
            "User ID": str(int(rng.integers(-(2**63), 2**63 - 1))),
            "Round-Trip Time [ms]": "" if rng.random() < 0.9 else "540.0",
            "IP Address": f"10.0.{index % 250}.{index % 200}",
            "Country": str(rng.choice(_COUNTRIES)),
            "Region": "-",
            "City": "-",
            "ASN": str(int(rng.choice([29695, 393398, 41164]))),
            "User Agent String": "Mozilla/5.0 (X11; Linux, like Gecko) Chrome/86.0",
            "Browser Name and Version": str(rng.choice(_BROWSERS)),
            "OS Name and Version": str(rng.choice(_SYSTEMS)),
            "Device Type": str(rng.choice(_DEVICES)),
            "Login Successful": str(bool(rng.random() < 0.4)),
            "Is Attack IP": str(bool(rng.random() < 0.1)),
            "Is Account Takeover": "False",
        }
        if index in takeover_rows:
            record.update(
                {
                    "Country": "RO",
                    "Device Type": "desktop",
                    "Browser Name and Version": "Chrome 86.0.4240",
                    "OS Name and Version": "Mac OS X 10.15.7",
                    "Login Successful": "True",
                    "Is Account Takeover": "True",
                }
            )
        records.append(record)

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(records)
    return records


@pytest.fixture
def rba_file(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``rba_file(rows, takeovers, name=..., seed=...)`` -> path."""

    def make(rows: int, takeovers: int, name: str = "rba.csv", seed: int = 0) -> Path:
        path = tmp_path / name
        write_rba_csv(path, rows, takeovers, seed)
        return path

    return make
