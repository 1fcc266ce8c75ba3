"""The columns of the RBA login data set, as its CSV file names them."""

from __future__ import annotations

#: The 16 header names of the published CSV, in file order.
CSV_COLUMNS: tuple[str, ...] = (
    "index",
    "Login Timestamp",
    "User ID",
    "Round-Trip Time [ms]",
    "IP Address",
    "Country",
    "Region",
    "City",
    "ASN",
    "User Agent String",
    "Browser Name and Version",
    "OS Name and Version",
    "Device Type",
    "Login Successful",
    "Is Attack IP",
    "Is Account Takeover",
)

#: The service's JSON event field for each CSV column (``index`` has none).
EVENT_FIELDS: dict[str, str] = {
    "Login Timestamp": "timestamp",
    "User ID": "user_id",
    "Round-Trip Time [ms]": "round_trip_time_ms",
    "IP Address": "ip_address",
    "Country": "country",
    "Region": "region",
    "City": "city",
    "ASN": "asn",
    "User Agent String": "user_agent",
    "Browser Name and Version": "browser_name_and_version",
    "OS Name and Version": "os_name_and_version",
    "Device Type": "device_type",
    "Login Successful": "login_successful",
    "Is Attack IP": "is_attack_ip",
    "Is Account Takeover": "is_account_takeover",
}

#: Timestamp format of the CSV, e.g. ``2020-02-03 12:43:30.772`` (no zone: UTC).
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"

#: The user id that collects logins to unknown accounts in the real data.
CATCH_ALL_USER_ID = -4324475583306591935
