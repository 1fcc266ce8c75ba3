"""Operating systems of the device catalogue and user-agent string templates.

User-agent strings are built to be consistent-ish with the parsed browser and
OS columns, as in the real data set (which also has mismatches).
"""

from __future__ import annotations

from typing import NamedTuple

_ANDROID_MODELS = {
    "mobile": ("SM-G960F", "Redmi 4A Build/N2G47H", "H30-U10", "Pixel 3",
               "Galaxy Nexus Build/JRN84D", "ONEPLUS A6003"),
    "tablet": ("SM-T510", "Lenovo TB-X505F"),
}  # fmt: skip

_WINDOWS_TOKENS = {
    "Windows 10": "Windows NT 10.0; Win64; x64",
    "Windows 7": "Windows NT 6.1; Win64; x64",
    "Windows 8.1": "Windows NT 6.3; Win64; x64",
    "Windows 8": "Windows NT 6.2",
    "Windows XP": "Windows NT 5.1",
    "Windows Vista": "Windows NT 6.0",
    "Windows 98": "Windows 98",
    "Windows 2000": "Windows NT 5.0",
    "Windows ME": "Win 9x 4.90",
    "Windows NT 4.0": "WinNT4.0",
    "Windows RT 8.1": "Windows NT 6.3; ARM",
}


class OsSpec(NamedTuple):
    """An operating system name with its versions and the devices it runs on."""

    name: str
    versions: tuple[str, ...]
    devices: tuple[str, ...]
    prior: float = 1.0


_DESK = ("desktop",)
_HAND = ("mobile", "tablet")

#: 45 OS names once versions are stripped, as the seed notebook saw.
OS_SPECS: tuple[OsSpec, ...] = (
    OsSpec("iOS", ("13.4", "14.2", "12.4.8", "14.0.1", "13.6", "7.1", "14.3"),
           _HAND, 4),
    OsSpec("Android", ("10", "9", "8.1.0", "7.1.2", "4.1", "11", "6.0.1", "2.2",
                       "10.0.99"), _HAND, 4),
    # NOTE: iPads in desktop mode report a Mac user agent, hence tablet.
    OsSpec("Mac OS X", ("10.14.6", "10.15.7", "10.13.6", "10.15.6", "11.0.1"),
           ("desktop", "tablet", "unknown"), 3),
    OsSpec("Other", (), ("bot", "unknown", "desktop", "mobile")),
    OsSpec("Chrome OS", ("13020.67.3", "11316.123.0", "13421.89.0"),
           ("desktop", "tablet")),
    OsSpec("Chromecast", ("1.36.159268", "1.42.172094", "1.49.250946"),
           ("desktop", "unknown")),
    OsSpec("KaiOS", ("2.5", "2.5.1", "2.5.2"), ("mobile",)),
    OsSpec("Windows 10", (), ("desktop", "tablet"), 0.5),
    *(OsSpec(name, (), _DESK, 0.5) for name in list(_WINDOWS_TOKENS)[1:]),
    OsSpec("Windows Phone", ("10.0", "8.1"), ("mobile",)),
    OsSpec("Windows Mobile", ("6.5",), ("mobile",)),
    OsSpec("BlackBerry OS", ("10.3.3", "7.1.0"), ("mobile",)),
    OsSpec("Fedora", (), _DESK),
    OsSpec("Gentoo", (), _DESK),
    OsSpec("Ubuntu", ("20.04", "18.04"), _DESK),
    OsSpec("Linux", (), ("desktop", "tablet", "bot", "unknown")),
    OsSpec("Debian", (), _DESK),
    OsSpec("FreeBSD", ("12.1",), _DESK),
    OsSpec("OpenBSD", ("6.7",), _DESK),
    OsSpec("NetBSD", (), _DESK),
    OsSpec("Solaris", ("11",), _DESK),
    OsSpec("Symbian OS", ("9.4",), ("mobile",)),
    OsSpec("Symbian^3", (), ("mobile",)),
    OsSpec("Series 60", ("5.0",), ("mobile",)),
    OsSpec("Tizen", ("5.0", "4.0"), ("mobile",)),
    OsSpec("Firefox OS", ("2.0",), ("mobile",)),
    OsSpec("Sailfish", ("3.4",), ("mobile",)),
    OsSpec("Mageia", ("7",), _DESK),
    OsSpec("Mandriva", (), _DESK),
    OsSpec("Red Hat", (), _DESK),
    OsSpec("SUSE", (), _DESK),
    OsSpec("Slackware", (), _DESK),
    OsSpec("CentOS", (), _DESK),
    OsSpec("Kubuntu", (), _DESK),
    OsSpec("Xubuntu", (), _DESK),
    OsSpec("Linux Mint", ("20",), _DESK),
    OsSpec("Arch Linux", (), _DESK),
    OsSpec("Bada", ("2.0",), ("mobile",)),
    OsSpec("MeeGo", ("1.2",), ("mobile",)),
    OsSpec("HarmonyOS", ("2.0",), ("mobile",)),
    OsSpec("Haiku", (), _DESK),
)  # fmt: skip


def _os_token(os: OsSpec, version: str, device: str) -> str:
    """The platform part of a user agent, inside ``Mozilla/5.0 (...)``."""
    underscored = version.replace(".", "_")
    if os.name == "iOS":
        if device == "tablet":
            return f"iPad; CPU OS {underscored} like Mac OS X"
        return f"iPhone; CPU iPhone OS {underscored} like Mac OS X"
    if os.name == "Android":
        models = _ANDROID_MODELS["tablet" if device == "tablet" else "mobile"]
        model = models[sum(map(ord, version)) % len(models)]
        return f"Linux; Android {version}; {model}"
    if os.name == "Mac OS X":
        return f"Macintosh; Intel Mac OS X {underscored}"
    if os.name == "Chrome OS":
        return f"X11; CrOS x86_64 {version}"
    if os.name == "Chromecast":
        return f"X11; Linux armv7l; CrKey {version}"
    if os.name in _WINDOWS_TOKENS:
        return _WINDOWS_TOKENS[os.name]
    if os.name == "KaiOS":
        return f"Mobile; rv:48.0; KAIOS/{version}"
    if os.name == "Other":
        return "compatible"
    return f"X11; {os.name} {version}".strip() + "; Linux x86_64"


def user_agent(
    browser: str, version: str, kind: str, os: OsSpec, os_version: str, device: str
) -> str:
    """Build a user-agent string for one browser/OS/device combination."""
    product = browser.replace(" ", "")
    full = f"{version}.{len(browser) * 7 % 200}" if version else "1.0"
    platform = _os_token(os, os_version, device)
    mobile = "Mobile " if device in ("mobile", "tablet") else ""
    if kind == "webkit":
        chrome = "" if product.startswith("Chrome") else "Chrome/86.0.4240.198 "
        name = "Chrome" if product.startswith("Chrome") else product
        if product == "Chrome" or product == "ChromeMobile":
            return (
                f"Mozilla/5.0 ({platform}) AppleWebKit/537.36 (KHTML, like Gecko) "
                f"{name}/{full} {mobile}Safari/537.36"
            )
        return (
            f"Mozilla/5.0 ({platform}) AppleWebKit/537.36 (KHTML, like Gecko) "
            f"{chrome}{mobile}Safari/537.36 {name}/{full}"
        )
    if kind == "webview":
        return (
            f"Mozilla/5.0 ({platform}; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
            f"Version/4.0 Chrome/{full} Mobile Safari/537.36"
        )
    if kind == "legacy":
        return (
            f"Mozilla/5.0 ({platform}) AppleWebKit/533.1 (KHTML, like Gecko) "
            f"Version/4.0 Mobile Safari/533.1 variation/{len(full) * 9973}"
        )
    if kind == "gecko":
        major = version.split(".", 1)[0] or "78"
        return f"Mozilla/5.0 ({platform}; rv:{major}.0) Gecko/20100101 {product}/{full}"
    if kind == "safari":
        return (
            f"Mozilla/5.0 ({platform}) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            f"Version/{version or '14.0'} {mobile}Safari/604.1"
        )
    if kind == "presto":
        return f"Opera/9.80 ({platform}) Presto/2.12.423 Version/{full}"
    if kind == "trident":
        return f"Mozilla/5.0 ({platform}; Trident/7.0; rv:{version}) like Gecko"
    if kind == "bot":
        return f"Mozilla/5.0 (compatible; {product}/{full})"
    if kind == "app":
        return f"{product}/{full} ({platform})"
    raise ValueError(f"unknown user-agent kind {kind!r}")
