"""Catalogue of device profiles: user agent, browser, OS and device type.

A profile is one combination the generator can emit, e.g. ``Chrome 86.0.4240``
on ``Mac OS X 10.14.6``, a ``desktop``, with a matching user-agent string.
The names and versions are invented in the style of ua-parser output; the
profile weights are then raked so that browser family, OS family and device
type each match their published shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

import numpy as np

from login_scorer_training import calibration
from login_scorer_training.user_agents import OS_SPECS, OsSpec, user_agent

_DESKTOP = ("desktop",)
_HANDHELD = ("mobile", "tablet")
_LINUXES = (
    "Linux", "Ubuntu", "Fedora", "Debian", "Gentoo", "Arch Linux", "Linux Mint",
    "Kubuntu", "Xubuntu", "CentOS", "Mageia", "Red Hat", "SUSE", "Slackware",
    "Mandriva", "FreeBSD", "OpenBSD", "NetBSD", "Solaris", "Haiku",
)  # fmt: skip
_WINDOWS = (
    "Windows 10", "Windows 7", "Windows 8.1", "Windows 8", "Windows XP",
    "Windows Vista", "Windows 98", "Windows 2000", "Windows ME", "Windows NT 4.0",
    "Windows RT 8.1",
)  # fmt: skip
_DESKTOP_OSES = ("Mac OS X", "Chrome OS", *_WINDOWS, *_LINUXES)
_PHONE_OSES = ("Android", "iOS")
_CHROME_VERSIONS = (
    "86.0.4240", "85.0.4183", "87.0.4280", "84.0.4147", "83.0.4103", "80.0.3987",
    "79.0.3945.192.203", "69.0.3497.17.19", "72.0.3626", "86.0.4240.378",
)  # fmt: skip


class BrowserSpec(NamedTuple):
    """A browser name with the versions, systems and devices it appears on."""

    name: str
    versions: tuple[str, ...]
    kind: str
    oses: tuple[str, ...]
    devices: tuple[str, ...]
    prior: float = 1.0


# NOTE: a few combinations are deliberately odd (the Android stock browser or
# desktop Firefox on iOS) because the real data shows exactly those.
BROWSER_SPECS: tuple[BrowserSpec, ...] = (
    BrowserSpec("Chrome", _CHROME_VERSIONS, "webkit",
                ("Chromecast", *_DESKTOP_OSES, "Other"),
                ("desktop", "unknown", "tablet"), 8),
    BrowserSpec("Chrome Mobile", ("86.0.4240", "85.0.4183", "81.0.4044.1931",
                "80.0.3987", "46.0.2490", "87.0.4280"), "webkit",
                (*_PHONE_OSES, "KaiOS"), _HANDHELD, 8),
    BrowserSpec("Chrome Mobile WebView", ("85.0.4183", "86.0.4240", "84.0.4147"),
                "webview", _PHONE_OSES, _HANDHELD, 4),
    BrowserSpec("Chrome Mobile iOS", ("86.0.4240", "87.0.4280", "85.0.4183"),
                "webkit", ("iOS",), _HANDHELD, 4),
    BrowserSpec("Android", ("2.3.3.2672", "4.0.4", "4.4.2", "2.3.6"),
                "legacy", _PHONE_OSES, _HANDHELD),
    BrowserSpec("Firefox", ("82.0", "81.0", "83.0", "78.0", "20.0.0.1618"),
                "gecko", (*_DESKTOP_OSES, "iOS"), ("desktop", "mobile")),
    BrowserSpec("Firefox Mobile", ("82.0", "68.0"), "gecko",
                ("Android", "KaiOS", "Firefox OS", "Sailfish"), _HANDHELD),
    BrowserSpec("Firefox iOS", ("29.0", "30.0"), "webkit", ("iOS",), _HANDHELD),
    BrowserSpec("Firefox Focus", ("8.1",), "webkit", ("Android",), ("mobile",)),
    BrowserSpec("Opera", ("72.0.3815", "71.0.3770", "12.16"), "webkit",
                (*_DESKTOP_OSES[:8], "Android"), ("desktop", "mobile")),
    BrowserSpec("Opera Mobile", ("60.2.3004",), "webkit", ("Android",), _HANDHELD),
    BrowserSpec("Opera Mini", ("51.0.2254", "7.6.40234", "4.2"), "presto",
                ("Android", "iOS", "KaiOS", "Symbian OS", "BlackBerry OS",
                 "Bada", "Series 60"), ("mobile",)),
    BrowserSpec("Opera Touch", ("2.4.4",), "webkit", _PHONE_OSES, ("mobile",)),
    BrowserSpec("Opera Tablet", ("12.1",), "presto", ("Android",), ("tablet",)),
    BrowserSpec("ZipppBot", ("1.0", "1.1", "2.0.1"), "bot", ("Other",), ("bot",)),
    BrowserSpec("VLC", ("3.0.11", "3.0.8", "2.2.8"), "app", ("Other",),
                ("unknown",)),
    BrowserSpec("startmebot", ("1.0",), "bot", ("Other",), ("bot",)),
    BrowserSpec("Edge", ("86.0.622", "87.0.664", "18.18363"), "webkit",
                ("Windows 10", "Mac OS X", "Windows 7"), _DESKTOP),
    BrowserSpec("Edge Mobile", ("45.9.4",), "webkit", _PHONE_OSES, ("mobile",)),
    BrowserSpec("Snapchat", ("10.93.0", "11.3.1"), "webkit", _PHONE_OSES,
                ("mobile",)),
    BrowserSpec("Iron", ("85.0.4350", "74.0.3850"), "webkit",
                ("Windows 10", "Linux", "Mac OS X"), _DESKTOP),
)  # fmt: skip

#: Rare browsers: (name, version, kind, OS names, device types). Each is its
#: own family unless its first word repeats; the tail shares the 1.7% the
#: published head leaves over.
_TAIL_BROWSERS: tuple[tuple[str, str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("Mobile Safari", "13.1", "safari", ("iOS",), _HANDHELD),
    ("Mobile Safari UI/WKWebView", "", "safari", ("iOS",), _HANDHELD),
    ("Safari", "14.0", "safari", ("Mac OS X",), ("desktop", "tablet")),
    ("Samsung Internet", "12.1", "webkit", ("Android", "Tizen"), _HANDHELD),
    ("MiuiBrowser", "12.6.5", "webkit", ("Android",), ("mobile",)),
    ("UC Browser", "13.2.8", "webkit", ("Android",), ("mobile",)),
    ("Yandex Browser", "20.9.2", "webkit", ("Android", "Windows 10"),
     ("mobile", "desktop")),
    ("Facebook", "290.0.0", "webkit", _PHONE_OSES, ("mobile",)),
    ("Instagram", "163.0.0", "webkit", _PHONE_OSES, ("mobile",)),
    ("Pinterest", "8.38", "webkit", ("iOS",), ("mobile",)),
    ("Amazon Silk", "85.3.3", "webkit", ("Android",), ("tablet",)),
    ("Puffin", "9.0.0", "webkit", _PHONE_OSES, _HANDHELD),
    ("Vivaldi", "3.4.2066", "webkit", ("Windows 10", "Linux"), _DESKTOP),
    ("Brave", "1.16.76", "webkit", ("Windows 10", "Mac OS X"), _DESKTOP),
    ("SeaMonkey", "2.53.4", "gecko", ("Windows 7", "Linux"), _DESKTOP),
    ("Pale Moon", "28.16.0", "gecko", ("Windows 7",), _DESKTOP),
    ("Maxthon", "5.3.8", "webkit", ("Windows 10",), _DESKTOP),
    ("QQ Browser", "10.7.4", "webkit", ("Windows 10",), _DESKTOP),
    ("QQ Browser Mobile", "10.8", "webkit", ("Android",), ("mobile",)),
    ("Sogou Explorer", "2.0", "webkit", ("Windows 7",), _DESKTOP),
    ("Coc Coc", "91.0.146", "webkit", ("Windows 10",), _DESKTOP),
    ("Whale", "2.8.108", "webkit", ("Windows 10",), _DESKTOP),
    ("Sleipnir", "6.4.8", "webkit", ("Windows 10",), _DESKTOP),
    ("Dolphin", "12.1.8", "webkit", ("Android",), ("mobile",)),
    ("NetFront", "3.5", "presto", ("Symbian OS", "Symbian^3"), ("mobile",)),
    ("Konqueror", "5.0", "webkit", ("Linux", "Kubuntu"), _DESKTOP),
    ("Epiphany", "3.36", "webkit", ("Fedora", "Ubuntu"), _DESKTOP),
    ("Midori", "9.0", "webkit", ("Linux", "Xubuntu"), _DESKTOP),
    ("Qutebrowser", "1.14.0", "webkit", ("Arch Linux",), _DESKTOP),
    ("Waterfox", "2020.10", "gecko", ("Windows 10",), _DESKTOP),
    ("IceWeasel", "38.8.0", "gecko", ("Debian",), _DESKTOP),
    ("Googlebot", "2.1", "bot", ("Other",), ("bot",)),
    ("bingbot", "2.0", "bot", ("Other",), ("bot",)),
    ("YandexBot", "3.0", "bot", ("Other",), ("bot",)),
    ("AhrefsBot", "7.0", "bot", ("Other",), ("bot",)),
    ("Applebot", "0.1", "bot", ("Other",), ("bot",)),
    ("HeadlessChrome", "86.0.4240", "webkit", ("Linux",), ("bot", "desktop")),
    ("PhantomJS", "2.1.1", "webkit", ("Other", "Linux"), ("unknown",)),
    ("curl", "7.68.0", "app", ("Other",), ("unknown",)),
    ("Wget", "1.20.3", "app", ("Other",), ("unknown",)),
    ("Python Requests", "2.24", "app", ("Other",), ("unknown",)),
    ("okhttp", "3.14.9", "app", ("Other", "Android"), ("unknown", "mobile")),
    ("Apache-HttpClient", "4.5.12", "app", ("Other",), ("unknown",)),
    ("LinkedInBot", "1.0", "bot", ("Other",), ("bot",)),
    ("Twitterbot", "1.0", "bot", ("Other",), ("bot",)),
    ("WhatsApp", "2.20.206", "app", _PHONE_OSES, ("mobile",)),
    ("Line", "10.18.0", "webkit", _PHONE_OSES, ("mobile",)),
    ("Electron", "9.3.3", "webkit", ("Windows 10", "Mac OS X"), _DESKTOP),
    ("Slack", "4.10.3", "webkit", ("Windows 10", "Mac OS X"), _DESKTOP),
    ("Thunderbird", "78.4.0", "gecko", ("Windows 10", "Linux"), _DESKTOP),
    ("IE", "11.0", "trident", ("Windows 7", "Windows 8.1", "Windows XP"),
     _DESKTOP),
    ("IE Mobile", "11.0", "trident", ("Windows Phone", "Windows Mobile"), ("mobile",)),
    ("Chromium", "85.0.4183", "webkit", ("Ubuntu", "Linux", "Debian"), _DESKTOP),
    ("BlackBerry WebKit", "10.3.3", "webkit", ("BlackBerry OS",), ("mobile",)),
    ("Nokia Browser", "7.4", "webkit", ("Symbian^3", "MeeGo"), ("mobile",)),
    ("Huawei Browser", "10.1.3", "webkit", ("Android", "HarmonyOS"), ("mobile",)),
    ("Mint Browser", "3.4.3", "webkit", ("Android",), ("mobile",)),
    ("DuckDuckGo Mobile", "5.68", "webkit", _PHONE_OSES, ("mobile",)),
    ("Avast Secure Browser", "86.0.6519", "webkit", ("Windows 10",), _DESKTOP),
    ("Naver", "10.24.1", "webkit", _PHONE_OSES, ("mobile",)),
    ("WeChat", "7.0.21", "webkit", _PHONE_OSES, ("mobile",)),
    ("Baidu Box App", "12.6.0", "webkit", ("Android",), ("mobile",)),
    ("360 Browser", "12.2", "webkit", ("Windows 7",), _DESKTOP),
    ("Lunascape", "6.15.2", "trident", ("Windows 7",), _DESKTOP),
    ("K-Meleon", "76.2", "gecko", ("Windows XP",), _DESKTOP),
    ("Basilisk", "2020.10.16", "gecko", ("Windows 10",), _DESKTOP),
    ("Falkon", "3.1.0", "webkit", ("Linux", "Kubuntu"), _DESKTOP),
    ("Otter", "1.0.01", "webkit", ("Linux",), _DESKTOP),
    ("Lynx", "2.8.9", "app", ("Linux", "FreeBSD", "OpenBSD"), _DESKTOP),
    ("Links", "2.20", "app", ("Linux", "NetBSD"), _DESKTOP),
    ("NetSurf", "3.10", "app", ("Linux", "Haiku"), _DESKTOP),
    ("Seznam Browser", "5.2.1", "webkit", ("Android",), ("mobile",)),
    ("Mail.ru Chromium Browser", "76.0.3809", "webkit", ("Windows 7",), _DESKTOP),
    ("Comodo Dragon", "85.0.4183", "webkit", ("Windows 10",), _DESKTOP),
    ("Amigo", "58.0.3029", "webkit", ("Windows 7",), _DESKTOP),
    ("Silk", "1.0", "webkit", ("Android",), ("tablet",)),
    ("Kindle", "3.0", "webkit", ("Linux",), ("tablet",)),
)  # fmt: skip


# TODO: one user-agent string per profile (about 2,100 distinct); the real
# data has far more variants of each. The model does not read the user agent,
# so the catalogue stays finite to keep CSV formatting table-driven.
class DeviceProfile(NamedTuple):
    """One emitted combination of the four device columns."""

    device_type: str
    browser: str
    os: str
    user_agent: str


@dataclass(frozen=True)
class DeviceCatalogue:
    """All profiles with their raked row shares, ready for vectorised draws."""

    profiles: tuple[DeviceProfile, ...]
    weights: np.ndarray
    cdf: np.ndarray
    device_type: np.ndarray
    browser: np.ndarray
    os: np.ndarray
    user_agent: np.ndarray

    def draw(self, uniforms: np.ndarray) -> np.ndarray:
        """Map uniforms in [0, 1) to profile indices by inverse CDF."""
        index = np.searchsorted(self.cdf, uniforms, side="right")
        return np.minimum(index, len(self.profiles) - 1)


def family(name: str) -> str:
    """Return the family of a browser or OS name: its first word."""
    return name.split(" ", 1)[0]


def _all_browser_specs() -> tuple[BrowserSpec, ...]:
    tail = tuple(
        BrowserSpec(name, (version,) if version else (), kind, oses, devices)
        for name, version, kind, oses, devices in _TAIL_BROWSERS
    )
    return BROWSER_SPECS + tail


def _enumerate_profiles() -> tuple[list[DeviceProfile], np.ndarray]:
    """Every compatible browser x OS x device x version, with a prior weight.

    The prior favours each list's first versions, so version popularity
    decays the way real release adoption does.
    """
    oses: dict[str, OsSpec] = {spec.name: spec for spec in OS_SPECS}
    profiles: list[DeviceProfile] = []
    priors: list[float] = []
    for browser in _all_browser_specs():
        for os_name in browser.oses:
            os_spec = oses[os_name]
            for device in browser.devices:
                if device not in os_spec.devices:
                    continue
                for b_rank, b_version in enumerate(browser.versions or ("",)):
                    for o_rank, o_version in enumerate(os_spec.versions or ("",)):
                        ua = user_agent(browser.name, b_version, browser.kind,
                                        os_spec, o_version, device)  # fmt: skip
                        profiles.append(
                            DeviceProfile(
                                device,
                                f"{browser.name} {b_version}".strip(),
                                f"{os_name} {o_version}".strip(),
                                ua,
                            )
                        )
                        priors.append(
                            browser.prior * os_spec.prior / (1 + b_rank) / (1 + o_rank)
                        )
    return profiles, np.array(priors)


def _targets(labels: list[str], head: dict[str, float], tail: float) -> np.ndarray:
    """Per-label target shares: the published head, then a decaying tail.

    The head is rescaled to leave ``tail`` percent for the labels it does not
    name (published shares are rounded and need not add up to 100).
    """
    scale = (100.0 - tail) / sum(head.values())
    rest = [label for label in labels if label not in head]
    decay = np.exp(-np.arange(len(rest)) / 6.0)
    shares = {label: share * scale for label, share in head.items()}
    if rest:
        shares.update(zip(rest, tail * decay / decay.sum(), strict=True))
    return np.array([shares[label] for label in labels]) / 100.0


def _rake(
    priors: np.ndarray, codes: list[np.ndarray], targets: list[np.ndarray]
) -> np.ndarray:
    """Iterative proportional fitting of profile weights to each margin."""
    weights = priors / priors.sum()
    for _ in range(500):
        for code, target in zip(codes, targets, strict=True):
            current = np.bincount(code, weights, minlength=len(target))
            weights = weights * (target / np.maximum(current, 1e-300))[code]
        worst = max(
            float(np.abs(np.bincount(c, weights, minlength=len(t)) - t).max())
            for c, t in zip(codes, targets, strict=True)
        )
        if worst < 1e-9:
            break
    return weights / weights.sum()


@cache
def device_catalogue() -> DeviceCatalogue:
    """Build (once) the profile catalogue raked to the published shares."""
    profiles, priors = _enumerate_profiles()
    columns = {
        "device": [p.device_type for p in profiles],
        "browser": [family(p.browser) for p in profiles],
        "os": [family(p.os) for p in profiles],
    }
    heads = {
        "device": (calibration.DEVICE_TYPE_SHARES, 0.0),
        "browser": (calibration.BROWSER_FAMILY_SHARES, calibration.BROWSER_TAIL_SHARE),
        "os": (calibration.OS_FAMILY_SHARES, calibration.OS_TAIL_SHARE),
    }
    codes: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    for key, values in columns.items():
        labels = list(dict.fromkeys(values))  # first-seen order = tail order
        lookup = {label: i for i, label in enumerate(labels)}
        codes.append(np.array([lookup[v] for v in values]))
        head, tail = heads[key]
        targets.append(_targets(labels, head, tail))
    weights = _rake(priors, codes, targets)
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    return DeviceCatalogue(
        profiles=tuple(profiles),
        weights=weights,
        cdf=cdf,
        device_type=np.array([p.device_type for p in profiles], dtype=object),
        browser=np.array([p.browser for p in profiles], dtype=object),
        os=np.array([p.os for p in profiles], dtype=object),
        user_agent=np.array([p.user_agent for p in profiles], dtype=object),
    )


def takeover_profile_weights() -> np.ndarray:
    """Weights over catalogue profiles reproducing the takeover device mix.

    Each published (OS family, browser family, device) count is spread over
    the matching profiles in proportion to their normal-traffic weight, so
    takeovers use exactly the browser and OS versions normal users use.
    """
    catalogue = device_catalogue()
    weights = np.zeros(len(catalogue.profiles))
    for os_family, browser_family, device, count in calibration.TAKEOVER_DEVICES:
        match = np.array(
            [
                family(p.os) == os_family
                and family(p.browser) == browser_family
                and p.device_type == device
                for p in catalogue.profiles
            ]
        )
        if not match.any():
            raise ValueError(f"no profile for takeover {os_family}/{browser_family}")
        share = catalogue.weights * match
        weights += count * share / share.sum()
    return weights / weights.sum()
