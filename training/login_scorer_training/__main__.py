"""Command line: ``python -m login_scorer_training {generate,train} --help``."""

from __future__ import annotations

import argparse
import logging
import sys

from login_scorer_training import generate, train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="login-scorer-training",
        description="Generate RBA-format login data and train scoring bundles.",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level")
    commands = parser.add_subparsers(dest="command", required=True)
    generate.add_arguments(commands.add_parser("generate", help=generate.__doc__))
    train.add_arguments(commands.add_parser("train", help=train.__doc__))

    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
