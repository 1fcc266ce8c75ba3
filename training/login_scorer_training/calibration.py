"""Published shares of the RBA login data set that the generator reproduces.

Every figure here comes from ``shared/data/rba-statistics.md`` (the data set's
README and public exploratory analyses). Where the statistics give only a
head and a count (countries, ASNs), the long tail is invented with a plausible
size and decay; those choices are marked as such.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

#: First and last instant (exclusive) of generated logins, UTC.
PERIOD_START = dt.datetime(2020, 2, 3, 12, 0, 0)
PERIOD_END = dt.datetime(2021, 2, 28, 0, 0, 0)

#: Share of logins that succeed, over all rows (published: about 41.5%).
LOGIN_SUCCESS_SHARE = 0.415
#: Share of rows from attack IPs (published: about 9.5%).
ATTACK_IP_SHARE = 0.095
#: Share of rows of the catch-all user id (published: about 43%).
CATCH_ALL_SHARE = 0.43
#: Share of rows without a round-trip time (published: about 95.9%).
RTT_MISSING_SHARE = 0.959
#: Rows with an empty device type in the full data (1,526 of 31,269,264).
DEVICE_TYPE_EMPTY_SHARE = 1526 / 31_269_264
#: Mean login attempts per user id in the full data (31.3M rows, 3.3M users).
MEAN_ATTEMPTS_PER_USER = 9.5

#: Share of rows in credential-stuffing bursts, all from listed attack IPs,
#: and the part of those aimed at the catch-all id. NOTE: our split of the
#: published 9.5% attack rows into bursts and other logins from listed IPs.
BURST_SHARE = 0.08
BURST_CATCH_ALL_SHARE = 0.6
#: Share of all IPv4 addresses on the attack list, so that bursts plus other
#: logins that happen to use a listed IP (VPN exits, shared addresses) add up
#: to the published attack share.
ATTACK_LIST_SHARE = (ATTACK_IP_SHARE - BURST_SHARE) / (1.0 - BURST_SHARE)

#: Relative login volume per hour of day (UTC). The published curve is lowest
#: around 00:00-02:00, rises through the morning and peaks near 16:00; the
#: exact heights are our reading of that description.
HOUR_WEIGHTS: tuple[float, ...] = (
    0.42, 0.36, 0.37, 0.45, 0.60, 0.80, 1.05, 1.35, 1.60, 1.78, 1.90, 1.98,
    2.05, 2.12, 2.20, 2.30, 2.38, 2.30, 2.15, 1.95, 1.70, 1.40, 1.00, 0.65,
)  # fmt: skip

#: Relative volume per weekday, Monday first: Tuesday highest, Saturday
#: lowest, about 1.23 : 1 (published).
WEEKDAY_WEIGHTS: tuple[float, ...] = (1.18, 1.23, 1.20, 1.16, 1.10, 1.00, 1.05)

#: Published country shares (percent of rows), head of the distribution.
COUNTRY_HEAD: dict[str, float] = {
    "NO": 43.9, "US": 26.2, "RU": 4.5, "BR": 3.8, "PL": 3.0, "DE": 2.9,
    "IN": 1.5, "UA": 1.4, "AU": 1.4, "GB": 1.4, "ID": 1.0, "FR": 0.6,
    "NL": 0.5, "CA": 0.5, "IT": 0.5,
}  # fmt: skip

#: Tail countries we pin because takeovers come from them. NOTE: "about 12%
#: of all Romanian rows are takeovers" in a sample with one takeover per
#: thousand rows puts normal Romanian traffic near 0.4%; the others are guesses
#: of the same order so those countries are not unique to takeovers.
COUNTRY_PINNED_TAIL: dict[str, float] = {
    "RO": 0.40, "SE": 0.40, "DK": 0.30, "ES": 0.30, "CZ": 0.20, "TR": 0.20,
    "CL": 0.08, "LV": 0.06,
}  # fmt: skip

#: ISO 3166 alpha-2 codes left out so that exactly 229 countries remain, the
#: number the seed notebook's label encoder saw (uninhabited or tiny
#: territories are the least likely to appear).
_ABSENT_TEXT = "AQ BV HM UM TF IO CX CC NF PN GS SJ WF YT BL MF PM BQ SH TK"
_ABSENT_COUNTRIES = frozenset(_ABSENT_TEXT.split())

_ISO_TEXT = """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL
BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV
CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD
GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM
IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK
LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW
MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR
PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS
ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY
UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
"""
_ISO_COUNTRIES = _ISO_TEXT.split()


def country_shares() -> tuple[list[str], np.ndarray]:
    """Return the 229 country codes and their row shares (summing to 1).

    The unpinned tail decays geometrically so that, as in the published
    sample, a 141,000-row draw sees roughly 170 of the 229 countries.
    """
    codes = [c for c in _ISO_COUNTRIES if c not in _ABSENT_COUNTRIES]
    fixed = {**COUNTRY_HEAD, **COUNTRY_PINNED_TAIL}
    tail = [c for c in codes if c not in fixed]
    # A fixed permutation so the tail order is not alphabetical.
    order = np.random.default_rng(2020).permutation(len(tail))
    decay = np.exp(-np.arange(len(tail)) / 32.0)
    remaining = 100.0 - sum(fixed.values())
    shares = dict(fixed)
    for rank, position in enumerate(order):
        shares[tail[position]] = remaining * decay[rank] / decay.sum()
    weights = np.array([shares[c] for c in codes])
    return codes, weights / weights.sum()


#: Published ASN shares (percent of rows) with the country we place each in.
#: NOTE: the statistics do not say where each ASN lives; the home countries
#: are our assumption (29695, 41164, 15659, 25400, 29492 are Norwegian
#: providers; the sample shows 393398 and 398986 in the US, 60117 in AU).
ASN_HEAD: dict[int, tuple[float, str]] = {
    29695: (27.1, "NO"), 393398: (21.8, "US"), 41164: (4.7, "NO"),
    262582: (4.6, "BR"), 15599: (4.4, "RU"), 29492: (2.9, "NO"),
    15659: (2.8, "NO"), 205727: (1.3, "PL"), 25400: (1.3, "NO"),
    54903: (1.2, "US"), 11427: (1.1, "US"), 60117: (1.0, "AU"),
    398986: (1.0, "US"), 57963: (0.8, "DE"), 500194: (0.7, "NO"),
}  # fmt: skip

#: ASNs that takeovers use, also present (rarely) in normal traffic so that
#: the ASN alone does not give a takeover away. Shares are our guesses.
ASN_TAKEOVER_PINNED: dict[int, tuple[float, str]] = {
    206801: (0.08, "RO"), 197175: (0.06, "RO"), 62350: (0.05, "RO"),
    61353: (0.03, "RO"), 197475: (0.20, "NO"), 3280: (0.05, "RO"),
    41560: (0.03, "RO"), 501775: (0.05, "NO"), 266130: (0.05, "BR"),
    31028: (0.05, "DK"),
}  # fmt: skip

#: Number of tail ASNs; about 2,150 distinct ASNs show up in a 141,000-row
#: sample, so the full population is a little larger (our assumption).
ASN_TAIL_SIZE = 2250
#: Share of tail ASNs numbered 500,000 and above, an artefact of the data
#: set's synthesis that occurs in normal rows.
ASN_ARTEFACT_SHARE = 0.04

#: Device types and their published row shares.
DEVICE_TYPE_SHARES: dict[str, float] = {
    "mobile": 63.6, "desktop": 25.7, "bot": 5.6, "tablet": 2.7, "unknown": 2.3,
}  # fmt: skip

#: Browser families (first word of the name) and their published shares; the
#: remaining share is spread over the tail families of the catalogue.
BROWSER_FAMILY_SHARES: dict[str, float] = {
    "Chrome": 63.1, "Android": 11.2, "Firefox": 9.3, "Opera": 5.6,
    "ZipppBot": 4.4, "VLC": 2.2, "startmebot": 1.1, "Edge": 0.8,
    "Snapchat": 0.3, "Iron": 0.3,
}  # fmt: skip

#: Share (percent) of the browser families beyond the ten published ones
#: (51 families in the sample).
BROWSER_TAIL_SHARE = 1.7

#: OS families (first word of the name) and their published shares.
OS_FAMILY_SHARES: dict[str, float] = {
    "iOS": 35.4, "Android": 28.2, "Mac": 20.9, "Other": 7.9, "Chrome": 3.4,
    "Windows": 1.8, "Chromecast": 1.5, "KaiOS": 1.0,
}  # fmt: skip
#: Share (percent) of "BlackBerry, Fedora, Gentoo and others" (22 families in
#: the sample); the published head adds up to 100.1, so it is rescaled.
OS_TAIL_SHARE = 0.9

#: Takeover profile, counts out of the 141 published takeovers.
TAKEOVER_COUNTRIES: dict[str, int] = {
    "RO": 79, "NO": 10, "BR": 9, "ID": 9, "CA": 9, "IT": 7, "DK": 5, "CL": 3,
    "LV": 3, "CZ": 2,
}  # fmt: skip
TAKEOVER_ASNS: dict[int, int] = {
    206801: 18, 197175: 16, 62350: 15, 61353: 7, 197475: 7, 3280: 7, 41560: 5,
    501775: 4, 266130: 4, 31028: 4,
}  # fmt: skip
#: Takeovers whose ASN is not one of the listed ten (141 - 87).
TAKEOVER_OTHER_ASN = 54
TAKEOVER_SUCCESS_SHARE = 140 / 141
TAKEOVER_ATTACK_IP_SHARE = 77 / 141

#: (OS family, browser family, device type) of takeovers, with counts that
#: reproduce the published OS, browser and device marginals of all 141.
TAKEOVER_DEVICES: tuple[tuple[str, str, str, int], ...] = (
    ("Mac", "Chrome", "desktop", 109),
    ("Mac", "Edge", "desktop", 1),
    ("Mac", "Firefox", "desktop", 1),
    ("Mac", "Opera", "desktop", 1),
    ("Android", "Chrome", "mobile", 8),
    ("Android", "Android", "mobile", 2),
    ("Android", "Chrome", "tablet", 1),
    ("iOS", "Chrome", "mobile", 10),
    ("Chrome", "Chrome", "desktop", 5),
    ("Chromecast", "Chrome", "desktop", 3),
)
