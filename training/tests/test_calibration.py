"""Generated data against the published statistics (rba-statistics.md).

Shares are compared on 500,000 rows taken straight from the synthesiser (the
CSV text is checked to round-trip those arrays in test_generate). Users and
attackers make rows cluster, so sampling error is larger than for
independent rows: measured over six seeds the worst head-share deviation was
0.6 percentage points, and the tolerance used, ``0.1 * share + 0.4`` points,
keeps a margin above that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from login_scorer_training import calibration as cal
from login_scorer_training.devices import device_catalogue, family
from login_scorer_training.geography import geography
from login_scorer_training.rba import CATCH_ALL_USER_ID
from login_scorer_training.synthesis import Synthesizer


@dataclass(frozen=True)
class Generated:
    """Decoded columns of a generated data set."""

    frame: pd.DataFrame

    def share(self, column: str, value: object) -> float:
        """Percent of rows where ``column`` equals ``value``."""
        return float((self.frame[column] == value).mean() * 100)


def _generate(rows: int, takeovers: int, seed: int) -> Generated:
    synthesizer = Synthesizer(rows=rows, takeovers=takeovers, seed=seed)
    blocks = list(synthesizer.blocks())

    def column(name: str) -> np.ndarray:
        return np.concatenate([getattr(block, name) for block in blocks])

    catalogue, geo = device_catalogue(), geography()
    profile = column("profile")
    frame = pd.DataFrame(
        {
            "time": pd.to_datetime(column("time_ms"), unit="ms"),
            "user": column("user_id"),
            "rtt": column("rtt_ms"),
            "ip": column("ip"),
            "country": np.array(geo.countries)[column("country")],
            "asn": geo.asns[column("asn")],
            "browser": catalogue.browser[profile],
            "os": catalogue.os[profile],
            "device": np.where(
                column("device_empty"), "", catalogue.device_type[profile]
            ),
            "success": column("success"),
            "attack": column("attack"),
            "takeover": column("takeover"),
        }
    )
    frame["browser_family"] = frame["browser"].map(family)
    frame["os_family"] = frame["os"].map(family)
    return Generated(frame)


@pytest.fixture(scope="module")
def normal() -> Generated:
    """500,000 rows at the shipped takeover rate (400 in 2,000,000)."""
    return _generate(rows=500_000, takeovers=100, seed=7)


@pytest.fixture(scope="module")
def takeovers() -> pd.DataFrame:
    """The takeover rows of a set with many of them (3,000 in 100,000)."""
    frame = _generate(rows=100_000, takeovers=3_000, seed=11).frame
    return frame.assign(
        own_countries=frame["user"].map(
            frame[~frame["takeover"] & ~frame["attack"]]
            .groupby("user")["country"]
            .agg(set)
        )
    )


def _tolerance(share: float) -> float:
    return 0.1 * share + 0.4


@pytest.mark.parametrize(
    ("column", "published"),
    [
        ("country", cal.COUNTRY_HEAD),
        ("asn", {asn: share for asn, (share, _) in cal.ASN_HEAD.items()}),
        ("device", cal.DEVICE_TYPE_SHARES),
        ("browser_family", cal.BROWSER_FAMILY_SHARES),
        ("os_family", cal.OS_FAMILY_SHARES),
    ],
)
def test_head_shares_match_the_published_ones(
    normal: Generated, column: str, published: dict[object, float]
) -> None:
    off = {
        value: round(normal.share(column, value), 2)
        for value, share in published.items()
        if abs(normal.share(column, value) - share) > _tolerance(share)
    }
    assert off == {}


def test_row_level_shares(normal: Generated) -> None:
    frame = normal.frame
    assert frame["success"].mean() == pytest.approx(0.415, abs=0.01)
    assert frame["attack"].mean() == pytest.approx(0.095, abs=0.007)
    assert frame["rtt"].isna().mean() == pytest.approx(0.959, abs=0.004)
    rtt = frame["rtt"].dropna()
    assert rtt.median() == pytest.approx(540, abs=40)
    assert rtt.min() >= 10
    assert rtt.quantile(0.999) > 20 * rtt.median()  # heavy tail
    assert (frame["device"] == "").sum() < 0.001 * len(frame)


def test_long_tails_have_plausible_sizes(normal: Generated) -> None:
    frame = normal.frame
    assert 150 <= frame["country"].nunique() <= 229
    assert 1_800 <= frame["asn"].nunique() <= 2_600
    assert frame["browser_family"].nunique() >= 45
    assert frame["os_family"].nunique() >= 22
    assert (frame["asn"] >= 500_000).mean() > 0.005
    private = (frame["ip"].to_numpy() >> np.uint64(24)) == 10
    assert private.mean() == pytest.approx(0.12, abs=0.03)


def test_catalogue_sizes_match_the_seed_notebook() -> None:
    strip = re.compile(r"\s+\d\S*$")
    catalogue = device_catalogue()
    assert len({strip.sub("", name) for name in catalogue.browser}) == 98
    assert len({strip.sub("", name) for name in catalogue.os}) == 45
    assert len(geography().countries) == 229
    assert set(catalogue.device_type) == set(cal.DEVICE_TYPE_SHARES)


def test_hour_of_day_and_weekday_curves(normal: Generated) -> None:
    hours = normal.frame["time"].dt.hour.value_counts(normalize=True)
    assert hours.idxmin() in (0, 1, 2)
    assert hours.idxmax() in (15, 16, 17)
    assert hours.max() / hours.min() > 4
    days = normal.frame["time"].dt.day_of_week.value_counts()
    assert days.idxmax() == 1  # Tuesday
    assert days.idxmin() == 5  # Saturday
    assert days.max() / days.min() == pytest.approx(1.23, abs=0.06)
    assert normal.frame["time"].min() >= pd.Timestamp("2020-02-01")
    assert normal.frame["time"].max() < pd.Timestamp("2021-03-01")


def test_catch_all_user_collects_failed_logins_from_many_ips(normal: Generated) -> None:
    frame = normal.frame
    catch_all = frame[frame["user"] == CATCH_ALL_USER_ID]
    assert len(catch_all) / len(frame) == pytest.approx(0.43, abs=0.01)
    assert catch_all["success"].mean() < 0.02
    assert catch_all["ip"].nunique() > 0.25 * len(catch_all)


def test_users_have_habits_and_heavy_tailed_activity(normal: Generated) -> None:
    frame = normal.frame
    per_user = frame.groupby("user").size()
    assert len(frame) / len(per_user) == pytest.approx(9.5, abs=1.0)
    users = frame[frame["user"] != CATCH_ALL_USER_ID]
    counts = users.groupby("user").size()
    assert (counts == 1).mean() > 0.25
    assert counts.quantile(0.999) > 30 * counts.median()
    habits = users.groupby("user").agg(
        countries=("country", "nunique"), devices=("browser", "nunique")
    )
    busy = habits[counts >= 20]
    assert habits["countries"].median() == 1
    assert busy["countries"].median() <= 3
    assert busy["devices"].median() <= 3


def test_attack_ips_burst_across_many_users(normal: Generated) -> None:
    attacks = normal.frame[normal.frame["attack"]].sort_values("time")
    per_ip = attacks.groupby("ip")
    busy_ips = per_ip.size()[lambda size: size >= 50].index
    busy = attacks[attacks["ip"].isin(busy_ips)]
    gaps = busy.groupby("ip")["time"].diff().dropna().dt.total_seconds()
    assert gaps.median() < 10
    assert busy.groupby("ip")["user"].nunique().median() >= 10
    assert 1 - busy["success"].mean() > 0.95
    # An IP's attack flag never changes.
    assert normal.frame.groupby("ip")["attack"].nunique().max() == 1


def test_takeovers_have_the_published_profile(takeovers: pd.DataFrame) -> None:
    ato = takeovers[takeovers["takeover"]]
    assert len(ato) == 3_000
    assert ato["success"].mean() > 0.97
    assert ato["attack"].mean() == pytest.approx(77 / 141, abs=0.04)
    assert set(ato["country"]) == set(cal.TAKEOVER_COUNTRIES)
    assert (ato["country"] == "RO").mean() == pytest.approx(79 / 141, abs=0.04)
    listed = ato["asn"].isin(list(cal.TAKEOVER_ASNS)).mean()
    assert listed == pytest.approx(87 / 141, abs=0.04)
    assert (ato["device"] == "desktop").mean() == pytest.approx(0.851, abs=0.04)
    assert (ato["os_family"] == "Mac").mean() == pytest.approx(112 / 141, abs=0.04)
    assert (ato["browser_family"] == "Chrome").mean() == pytest.approx(
        136 / 141, abs=0.03
    )


def test_takeovers_hit_accounts_with_history_elsewhere(takeovers: pd.DataFrame) -> None:
    ato = takeovers[takeovers["takeover"]]
    known = ato["own_countries"].notna()
    new_country = [
        isinstance(own, set) and country not in own
        for country, own in zip(ato["country"], ato["own_countries"], strict=True)
    ]
    assert known.mean() > 0.95
    assert np.mean(new_country) > 0.9


def test_takeover_traits_also_occur_in_normal_traffic(normal: Generated) -> None:
    # No single trait gives a takeover away: normal rows with it outnumber
    # the takeovers with it, at the shipped takeover rate.
    frame = normal.frame
    is_ato = frame["takeover"]
    traits = {
        "Romania": frame["country"] == "RO",
        "listed ASN": frame["asn"].isin(list(cal.TAKEOVER_ASNS)),
        "Mac Chrome desktop": (frame["os_family"] == "Mac")
        & (frame["browser_family"] == "Chrome")
        & (frame["device"] == "desktop"),
        "successful from attack IP": frame["success"] & frame["attack"],
    }
    for name, trait in traits.items():
        assert (trait & ~is_ato).sum() > 2 * (trait & is_ato).sum(), name
