"""The ``wavediff`` command line. Each subcommand parses its options and calls one library function.

Expected failures (bad input, missing files) print one line ``wavediff: error: …`` and exit 2;
nothing half-written is left behind (outputs are written atomically by the library)."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from wavediff import __version__

#: Functions that each add one subcommand (with ``func(args)``) to the subparsers.
_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wavediff",
        description="Diffusion-based speech generation: a DiffWave-style vocoder and diffusion TTS.",
    )
    parser.add_argument("--version", action="version", version=f"wavediff {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _COMMANDS:
        register(sub)
    return parser


class UserError(Exception):
    """An error caused by the user's input: reported in one line, no traceback."""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except (UserError, ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"wavediff: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wavediff: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)
