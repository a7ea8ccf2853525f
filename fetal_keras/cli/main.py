"""Entry point of ``fetal-keras`` / ``python -m fetal_keras``."""

from __future__ import annotations

import argparse
import sys
import textwrap

from fetal_keras import __version__
from fetal_keras.cli import (
    check_command,
    cohort_command,
    demo_command,
    evaluate_command,
    finetune_command,
    predict_command,
    pretrained_command,
    simulate_command,
    split_command,
    train_command,
)

COMMANDS = (
    cohort_command,
    check_command,
    simulate_command,
    split_command,
    train_command,
    finetune_command,
    predict_command,
    evaluate_command,
    demo_command,
    pretrained_command,
)

# Errors that mean "the user's input is wrong": printed as one paragraph, without a traceback.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="fetal-keras",
        description="Fetal brain segmentation in motion-corrupted 2D MR slice stacks.",
    )
    parser.add_argument("--version", action="version", version=f"fetal_keras {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback when a command fails")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``fetal-keras`` with ``argv`` (default: the process arguments) and return the exit code.

    Exit codes: 0 success, 1 the command ran and found problems, 2 bad arguments or unusable input.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except USER_ERRORS as error:
        if args.debug:
            raise
        message = textwrap.indent(str(error), "  ").lstrip()
        print(f"fetal-keras {args.command}: error: {message}", file=sys.stderr)
        print("(run with --debug for the full traceback)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fetal-keras {args.command}: interrupted.", file=sys.stderr)
        return 130
