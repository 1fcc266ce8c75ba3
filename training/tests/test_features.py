"""Preprocessing: hand-computed rows, the notebook's recipe, unseen, missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import LabelEncoder, MinMaxScaler

from login_scorer_training.features import (
    FEATURE_NAMES,
    Preprocessor,
    strip_version,
)
from login_scorer_training.rba import CSV_COLUMNS
from login_scorer_training.reader import read_logins


@pytest.mark.parametrize(
    ("raw", "stripped"),
    [
        ("Chrome Mobile WebView 85.0.4183", "Chrome Mobile WebView"),
        ("Mac OS X 10.14.6", "Mac OS X"),
        ("Android 2.3.3.2672", "Android"),
        ("Chrome OS 13020.67.3", "Chrome OS"),
        ("Other", "Other"),
        ("Windows XP", "Windows XP"),
        ("  Firefox 20.0  ", "Firefox"),
        ("Chrome Mobile\t 85", "Chrome Mobile"),
        ("iOS 13.4beta", "iOS"),
        ("Build 8a", "Build"),
        ("Version v2", "Version v2"),
        ("12.0", "12.0"),
        ("", ""),
    ],
)
def test_strip_version(raw: str, stripped: str) -> None:
    assert strip_version(raw) == stripped


def _all_rows(path: Path) -> tuple[Preprocessor, np.ndarray]:
    table = read_logins(path)
    rows = np.arange(table.rows)
    preprocessor = Preprocessor.fit(table, rows)
    return preprocessor, preprocessor.transform_rows(table, rows)


def test_sample_classes_are_sorted_stripped_names(sample_csv: Path) -> None:
    preprocessor, _ = _all_rows(sample_csv)

    assert preprocessor.classes_["country_code"] == ["AU", "ID", "NO", "US"]
    assert preprocessor.classes_["device_type"] == ["desktop", "mobile"]
    assert preprocessor.classes_["browser_name"] == [
        "Android",
        "Chrome",
        "Chrome Mobile",
        "Chrome Mobile WebView",
        "Firefox",
        "MiuiBrowser",
    ]
    # Code-point order: capitals before lower case, as LabelEncoder sorts.
    assert preprocessor.classes_["os_name"] == [
        "Android",
        "Chrome OS",
        "Chromecast",
        "Mac OS X",
        "iOS",
    ]


def test_sample_rows_by_hand(sample_csv: Path) -> None:
    _, features = _all_rows(sample_csv)

    # Row 0: NO (2 of 0..3), mobile (1 of 0..1), failed, not attack IP,
    # 12:43 on Monday 2020-02-03 (every sample row is: constant -> 0),
    # Firefox (4 of 0..5), iOS (4 of 0..4).
    expected_0 = [2 / 3, 1.0, 0.0, 0.0, 0.0, 0.0, 4 / 5, 1.0]
    # Row 4: US, mobile, failed, attack IP, Chrome Mobile WebView, Android.
    expected_4 = [1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 3 / 5, 0.0]
    # Row 6: NO, desktop, success, Chrome, Chrome OS.
    expected_6 = [2 / 3, 0.0, 1.0, 0.0, 0.0, 0.0, 1 / 5, 1 / 4]
    # Row 13: NO, desktop, failed, Chrome, Chromecast.
    expected_13 = [2 / 3, 0.0, 0.0, 0.0, 0.0, 0.0, 1 / 5, 2 / 4]

    assert features.dtype == np.float32
    assert features.shape == (19, 8)
    for row, expected in ((0, expected_0), (4, expected_4), (6, expected_6)):
        np.testing.assert_allclose(features[row], expected, atol=1e-7)
    np.testing.assert_allclose(features[13], expected_13, atol=1e-7)


def _notebook_features(path: Path) -> np.ndarray:
    """The seed notebook's recipe with pandas and scikit-learn."""
    frame = pd.read_csv(path)
    stamps = pd.to_datetime(frame["Login Timestamp"])
    columns = {
        "country_code": LabelEncoder().fit_transform(frame["Country"]),
        "device_type": LabelEncoder().fit_transform(frame["Device Type"]),
        "is_login_success": frame["Login Successful"].astype(int),
        "is_attack_ip": frame["Is Attack IP"].astype(int),
        "login_hours": stamps.dt.hour,
        "login_day": stamps.dt.day_of_week,
        "browser_name": LabelEncoder().fit_transform(
            frame["Browser Name and Version"].str.replace(r"\s+\d\S*$", "", regex=True)
        ),
        "os_name": LabelEncoder().fit_transform(
            frame["OS Name and Version"].str.replace(r"\s+\d\S*$", "", regex=True)
        ),
    }
    encoded = pd.DataFrame(columns)[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
    return MinMaxScaler().fit_transform(encoded).astype(np.float32)


def test_sample_matches_the_notebook_recipe(sample_csv: Path) -> None:
    _, features = _all_rows(sample_csv)
    np.testing.assert_allclose(features, _notebook_features(sample_csv), atol=1e-7)


def test_generated_file_matches_the_notebook_recipe(rba_file) -> None:
    path = rba_file(600, 5)
    _, features = _all_rows(path)
    np.testing.assert_allclose(features, _notebook_features(path), atol=1e-7)


def test_event_path_matches_table_path(sample_csv: Path) -> None:
    table = read_logins(sample_csv)
    preprocessor = Preprocessor.fit(table, np.arange(table.rows))
    features = preprocessor.transform_rows(table, np.arange(table.rows))
    for row, event in table.candidates.items():
        encoded = preprocessor.encode_event(event)
        assert encoded.unseen == []
        assert encoded.missing == []
        np.testing.assert_array_equal(encoded.features, features[row])


@pytest.fixture
def fitted(sample_csv: Path) -> tuple[Preprocessor, dict]:
    """Fitted on rows 0-9 only; returns it and row 0 as an event."""
    table = read_logins(sample_csv)
    return Preprocessor.fit(table, np.arange(10)), dict(table.candidates[0])


def test_fit_uses_training_rows_only(fitted: tuple[Preprocessor, dict]) -> None:
    preprocessor, _ = fitted
    # ID appears only in row 17 and Chromecast only in row 13.
    assert "ID" not in preprocessor.classes_["country_code"]
    assert "MiuiBrowser" in preprocessor.classes_["browser_name"]
    assert "Chromecast" not in preprocessor.classes_["os_name"]


def test_unseen_values_get_the_reserved_code(fitted: tuple[Preprocessor, dict]) -> None:
    preprocessor, event = fitted
    countries = preprocessor.classes_["country_code"]  # AU, NO, US
    event["country"] = "ID"
    event["os_name_and_version"] = "Chromecast 1.36.159268"

    encoded = preprocessor.encode_event(event)

    assert encoded.unseen == ["country_code", "os_name"]
    assert encoded.missing == []
    assert encoded.raw[0] == len(countries)
    assert encoded.features[0] == pytest.approx(len(countries) / (len(countries) - 1))
    assert encoded.raw[7] == len(preprocessor.classes_["os_name"])
    assert encoded.features[7] > 1.0


@pytest.mark.parametrize("style", ["absent", "null", "empty", "blank"])
def test_missing_values_get_the_fill_code(
    fitted: tuple[Preprocessor, dict], style: str
) -> None:
    preprocessor, event = fitted
    for field in (
        "device_type",
        "timestamp",
        "is_attack_ip",
        "browser_name_and_version",
    ):
        if style == "absent":
            del event[field]
        else:
            event[field] = {"null": None, "empty": "", "blank": " \t"}[style]

    encoded = preprocessor.encode_event(event)

    assert encoded.missing == [
        "device_type",
        "is_attack_ip",
        "login_hours",
        "login_day",
        "browser_name",
    ]
    assert encoded.unseen == []
    fill = preprocessor.fill_
    assert fill[1] == len(preprocessor.classes_["device_type"])
    assert fill[3] == 0.0
    assert fill[4] == 12.0  # every sample login is at 12:xx
    assert fill[5] == 0.0  # ... on a Monday
    assert fill[6] == len(preprocessor.classes_["browser_name"])
    np.testing.assert_array_equal(encoded.raw[[1, 3, 4, 5, 6]], fill[[1, 3, 4, 5, 6]])


def test_missing_category_in_training_rows_uses_the_fill_code(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(
        ",".join(CSV_COLUMNS)
        + "\n0,2020-02-03 12:43:30.772,1,,10.0.0.1,NO,-,-,29695,UA,"
        "Chrome 86.0,iOS 13.4,mobile,True,False,False"
        + "\n1,2020-02-04 13:43:30.772,2,,10.0.0.2,NO,-,-,29695,UA,"
        "Chrome 86.0,iOS 13.4,,False,False,False\n"
    )
    table = read_logins(path)

    preprocessor = Preprocessor.fit(table, np.arange(table.rows))
    raw = preprocessor.raw_codes(table, np.arange(table.rows))

    assert preprocessor.classes_["device_type"] == ["mobile"]
    assert raw[:, 1].tolist() == [0.0, 1.0]  # empty -> reserved code 1
    assert preprocessor.max_[1] == 1.0
    assert preprocessor.max_[0] == preprocessor.min_[0] + 1.0  # constant country


def test_preprocess_json_round_trip(fitted: tuple[Preprocessor, dict]) -> None:
    preprocessor, event = fitted
    document = preprocessor.to_json()

    again = Preprocessor.from_json(document)

    assert [feature["name"] for feature in document["features"]] == list(FEATURE_NAMES)
    assert document["unseen"] == {"rule": "reserved_code"}
    assert document["missing"]["rule"] == "fill"
    assert all(
        high > low for low, high in zip(*document["scaler"].values(), strict=True)
    )
    np.testing.assert_array_equal(
        again.encode_event(event).features, preprocessor.encode_event(event).features
    )
