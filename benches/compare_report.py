"""Appends one `make bench-compare` run to BENCHMARKS.md.

Reads the load generator's JSON reports that benches/compare.sh left in its
work directory (``<server>-closed.json`` and ``<server>-open.json``) and
appends a dated section: machine, command, one row per server, throughput
ratios. Earlier sections are never rewritten.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOG = logging.getLogger("compare_report")

HEADER = """# Benchmarks

Appended by `make bench-compare` (benches/compare.sh); each run adds a section
and older runs stay as they were. Every server runs alone on 127.0.0.1 of the
same machine as the load generator (benches/load), which takes its share of
the cores: the floor's figures are bounded by the generator as much as by the
server. A run made while other work used the machine says so in its load
average; compare runs only with similar load averages.
"""

#: (file prefix, row label) in table order.
SERVERS = (
    ("login-scorer", "(a) login-scorer"),
    ("floor", "(b) HTTP floor (axum, parse only)"),
    ("fastapi", "(c) FastAPI + onnxruntime"),
)

#: Open-loop runs below this share of the offered rate did not sustain it.
SUSTAINED_SHARE = 0.99


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return float("nan")


def git_commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, check=False
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"{commit} (with uncommitted changes)" if dirty else commit


def failed(report: dict[str, Any]) -> int:
    return report["requests"] - report["succeeded"]


def sustained(report: dict[str, Any]) -> bool:
    """No failure, nothing left unsent, and the offered rate actually achieved."""
    return (
        failed(report) == 0
        and report["missed"] == 0
        and report["throughput_per_s"] >= SUSTAINED_SHARE * report["offered_rate_per_s"]
    )


def section(
    reports: dict[str, dict[str, dict[str, Any]]],
    command: str,
    load_before: str,
    note: str,
    python_workers: int,
) -> str:
    rate = reports["login-scorer"]["open"]["offered_rate_per_s"]
    closed = reports["login-scorer"]["closed"]
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## {now}",
        "",
        f"- machine: {os.cpu_count()} cores (`nproc`), {cpu_model()}, "
        f"{memory_gib():.1f} GiB memory; load average before the run: {load_before}",
        f"- commit: {git_commit()}",
        f"- command: `{command}`",
        f"- load: {closed['connections']} connections, "
        f"{closed['measured_s']:.0f} s measured after {closed['warmup_s']:.0f} s "
        f"warm-up, {closed['events']} distinct events, "
        f"{closed['response_bytes']} byte answers; FastAPI with "
        f"{python_workers} uvicorn workers",
    ]
    if note:
        lines.append(f"- note: {note}")
    lines += [
        "",
        "| server | closed-loop req/s | closed p50 µs | closed p99 µs "
        f"| failed | p50 µs at {rate:.0f}/s | p99 µs at {rate:.0f}/s "
        f"| p99.9 µs at {rate:.0f}/s | sustained {rate:.0f}/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for prefix, label in SERVERS:
        closed_run, open_run = reports[prefix]["closed"], reports[prefix]["open"]
        lines.append(
            f"| {label} | {closed_run['throughput_per_s']:.0f} "
            f"| {closed_run['latency_us']['p50']} | {closed_run['latency_us']['p99']} "
            f"| {failed(closed_run) + failed(open_run)} "
            f"| {open_run['latency_us']['p50']} | {open_run['latency_us']['p99']} "
            f"| {open_run['latency_us']['p99_9']} "
            f"| {'yes' if sustained(open_run) else 'NO'} |"
        )
    throughput = {
        prefix: reports[prefix]["closed"]["throughput_per_s"] for prefix, _ in SERVERS
    }
    lines += [
        "",
        "Throughput ratios (closed loop): "
        f"a/b = {throughput['login-scorer'] / throughput['floor']:.2f}, "
        f"a/c = {throughput['login-scorer'] / throughput['fastapi']:.2f}.",
        "",
    ]
    return "\n".join(lines)


def read_reports(work: Path, runs: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    return {
        prefix: {
            run: json.loads((work / f"{prefix}-{run}.json").read_text()) for run in runs
        }
        for prefix, _ in SERVERS
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument(
        "--check-sustained",
        action="store_true",
        help="only check the open-loop runs: exit 1 if a server fell behind",
    )
    parser.add_argument("--results", type=Path)
    parser.add_argument("--command", default="")
    parser.add_argument("--load-before", default="")
    parser.add_argument("--note", default="")
    parser.add_argument("--python-workers", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    if args.check_sustained:
        behind = [
            prefix
            for prefix, runs in read_reports(args.work, ("open",)).items()
            if not sustained(runs["open"])
        ]
        if behind:
            LOG.warning("did not sustain the offered rate: %s", ", ".join(behind))
        return 1 if behind else 0

    if args.results is None:
        parser.error("--results is required unless --check-sustained")
    reports = read_reports(args.work, ("closed", "open"))
    text = section(
        reports, args.command, args.load_before, args.note, args.python_workers
    )
    if not args.results.exists():
        args.results.write_text(HEADER)
    with args.results.open("a") as results:
        results.write("\n" + text)
    LOG.info("appended to %s:\n%s", args.results, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
