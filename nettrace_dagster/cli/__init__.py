"""The `nettrace` command. Each subcommand lives in its own module in this package and exposes
`register(subparsers)`; `main` discovers them, so adding a command never edits this file.

Exit codes: 0 success, 1 the thing checked failed, 2 bad usage or bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from nettrace_dagster.market.schema import CandleError
from nettrace_dagster.market.symbols import SymbolError
from nettrace_dagster.settings import SettingsError


class UsageError(Exception):
    """Bad usage or bad input: exit 2 with the message on one line."""


# Errors whose message is already one line that names the problem. The OSErrors are a path the
# user gave that is a file where a folder belongs (or the reverse), or not theirs to write.
INPUT_ERRORS: tuple[type[BaseException], ...] = (
    UsageError, CandleError, SettingsError, SymbolError,
    FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError,
)
# The same, for error classes that live in heavy modules: (module, class). They are matched only
# once their module is loaded (if it is not, nothing can have raised them), so a command that
# never opens the ledger never pays for importing SQLAlchemy.
LAZY_INPUT_ERRORS: tuple[tuple[str, str], ...] = (
    ("nettrace_dagster.ledger.db", "LedgerError"),
)


def is_input_error(exc: BaseException) -> bool:
    if isinstance(exc, INPUT_ERRORS):
        return True
    for module_name, class_name in LAZY_INPUT_ERRORS:
        cls = getattr(sys.modules.get(module_name), class_name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
    return False


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its errors on one line (the contract) instead of usage + error."""

    def error(self, message: str) -> NoReturn:
        first = message.splitlines()[0] if message else "bad usage"
        self.exit(2, f"{self.prog}: error: {first} (see {self.prog} --help)\n")


def emit(payload: Any, as_json: bool, human: str | None = None) -> None:
    """Print one JSON document (--json) or the human text."""
    if as_json:
        print(json.dumps(payload, indent=2, default=str))
    else:
        print(human if human is not None else json.dumps(payload, indent=2, default=str))


def progress_printer(as_json: bool) -> Callable[[str], None] | None:
    """Progress lines for a person watching a terminal: on stderr, only when stderr is a TTY, never
    with --json (a script reading the JSON wants one document and silence). None means quiet."""
    if as_json or not sys.stderr.isatty():
        return None
    return lambda msg: print(msg, file=sys.stderr, flush=True)


def table(header: list[str], rows: list[list[str]], indent: str = "  ") -> list[str]:
    """Columns padded to their widest cell; text left, numbers right."""
    cells = [header, *rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = [all(_numberish(row[i]) for row in rows) for i in range(len(header))]
    return [indent + "  ".join(c.rjust(w) if num else c.ljust(w)
                               for c, w, num in zip(row, widths, numeric, strict=True)).rstrip()
            for row in cells]


def _numberish(text: str) -> bool:
    return bool(text) and text.lstrip("$+-").replace(".", "", 1).replace("%", "").replace("e", "").replace(
        ",", "").isdigit()


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="nettrace", description="NetTrace trading platform")
    sub = parser.add_subparsers(dest="command", required=True)  # subparsers inherit OneLineParser
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its one-line usage error
        return 2 if exc.code not in (0, None) else 0
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `nettrace status | head`: the reader left, which is not an error
        _silence_stdout()
        return 0
    except Exception as exc:
        if not is_input_error(exc):
            raise  # a bug, not bad input: the traceback is what a bug report needs
        msg = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        print(f"nettrace {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nettrace {args.command}: interrupted", file=sys.stderr)
        return 130


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again on exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
