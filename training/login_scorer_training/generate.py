"""Write a synthetic login data set in the exact CSV format of the RBA data set.

Rows are synthesised block by block (see ``synthesis``), formatted with the
``csv`` module and written to a temporary file beside the output, which is
renamed into place only once complete. A ``.gz`` output is gzip-compressed
on a second thread while the next block is synthesised.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from login_scorer_training.formatting import header_line, row_formatter
from login_scorer_training.synthesis import LoginBlock, Synthesizer

logger = logging.getLogger(__name__)

#: gzip level for ``.gz`` outputs. Measured on 100 MB of generated CSV with
#: zlib: level 1 107 MB/s (ratio 0.192), 3 89 MB/s (0.171), 6 45 MB/s (0.140).
#: The generator makes about 40 MB/s of CSV, so level 3 keeps up on the
#: second thread and is 11% smaller than level 1; level 6 would be the
#: bottleneck.
DEFAULT_COMPRESSLEVEL = 3
#: Rows formatted at a time. Formatting holds several Python strings per
#: row, so pieces smaller than a synthesis block keep peak memory low; the
#: output does not depend on this.
_FORMAT_ROWS = 25_000
#: Formatted pieces waiting for the writer thread; bounds memory.
_QUEUE_BLOCKS = 2
_PROGRESS_EVERY_S = 10.0


class ByteSink(Protocol):
    """Where CSV bytes go: a plain or a gzip file."""

    def write(self, data: bytes, /) -> int:
        """Write ``data``; returns the number of bytes taken."""
        ...


@dataclass(frozen=True)
class GenerationSummary:
    """What a finished run wrote."""

    path: Path
    rows: int
    takeovers: int
    seconds: float


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``generate`` options on ``parser``."""
    parser.add_argument(
        "--rows", type=_positive_int, default=2_000_000, help="rows to write"
    )
    parser.add_argument(
        "--takeovers",
        type=_non_negative_int,
        default=400,
        help="account takeovers among the rows (at most rows/20)",
    )
    parser.add_argument(
        "--seed", type=_non_negative_int, default=42, help="random seed"
    )
    parser.add_argument(
        "--output",
        type=Path,
        required=True,
        help="CSV file to write; gzip-compressed when it ends in .gz",
    )
    parser.add_argument(
        "--compresslevel",
        type=int,
        choices=range(1, 10),
        default=DEFAULT_COMPRESSLEVEL,
        metavar="1-9",
        help=f"gzip level for .gz outputs (default {DEFAULT_COMPRESSLEVEL})",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the ``generate`` subcommand; returns the process exit code."""
    try:
        write_dataset(
            args.output,
            rows=args.rows,
            takeovers=args.takeovers,
            seed=args.seed,
            compresslevel=args.compresslevel,
        )
    except (ValueError, OSError) as error:
        logger.error("generation failed: %s", error)
        return 1
    return 0


def write_dataset(
    path: Path,
    rows: int,
    takeovers: int,
    seed: int,
    compresslevel: int = DEFAULT_COMPRESSLEVEL,
) -> GenerationSummary:
    """Generate ``rows`` login rows into ``path`` atomically.

    The same arguments always produce a byte-identical file.
    """
    synthesizer = Synthesizer(rows=rows, takeovers=takeovers, seed=seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    logger.info(
        "generating rows=%d takeovers=%d seed=%d output=%s", rows, takeovers, seed, path
    )
    with _atomic_output(path, compresslevel) as sink:
        _write_blocks(synthesizer, sink)
    seconds = time.monotonic() - began
    logger.info(
        "generated rows=%d seconds=%.1f rows_per_s=%.0f output=%s",
        rows,
        seconds,
        rows / seconds,
        path,
    )
    return GenerationSummary(path=path, rows=rows, takeovers=takeovers, seconds=seconds)


def _write_blocks(synthesizer: Synthesizer, sink: ByteSink) -> None:
    """Synthesise blocks on this thread while another thread writes them."""
    pending: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUE_BLOCKS)
    failure: list[BaseException] = []

    def writer() -> None:
        try:
            while (chunk := pending.get()) is not None:
                sink.write(chunk)
        except BaseException as error:  # re-raised on the main thread
            failure.append(error)
            while pending.get() is not None:  # drain so the producer never blocks
                pass

    thread = threading.Thread(target=writer, name="csv-writer", daemon=True)
    thread.start()
    formatter = row_formatter()
    written, last_report, began = 0, time.monotonic(), time.monotonic()
    try:
        pending.put(header_line())
        for piece in _pieces(synthesizer):
            if failure:
                break
            pending.put(formatter.format(piece, written))
            written += len(piece)
            if time.monotonic() - last_report >= _PROGRESS_EVERY_S:
                last_report = time.monotonic()
                logger.info(
                    "progress rows=%d of=%d rows_per_s=%.0f",
                    written,
                    synthesizer.rows,
                    written / (last_report - began),
                )
    finally:
        pending.put(None)
        thread.join()
    if failure:
        raise failure[0]


def _pieces(synthesizer: Synthesizer) -> Iterator[LoginBlock]:
    """The rows of every block, in pieces small enough to format cheaply."""
    for block in synthesizer.blocks():
        yield from block.pieces(_FORMAT_ROWS)


@contextmanager
def _atomic_output(path: Path, compresslevel: int) -> Iterator[ByteSink]:
    """A binary sink that becomes ``path`` only if the block exits cleanly."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open(partial, "wb") as raw:
            if path.suffix == ".gz":
                # NOTE: mtime=0 and no file name keep gzip output byte-identical
                # across runs.
                with gzip.GzipFile(
                    filename="", mode="wb", fileobj=raw, compresslevel=compresslevel,
                    mtime=0,
                ) as compressed:  # fmt: skip
                    yield compressed
            else:
                yield raw
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value
