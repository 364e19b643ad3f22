"""`nettrace release create|list`: make a release (strategy code hashes + parameter set + rules
version, id from content) from the parameters in force, or from a ParamSet JSON, and put it in
force — the deploy sensor then rolls it out."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nettrace_dagster.cli import UsageError, emit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("release", help="make a release from the parameters in force (or list releases)")
    rs = p.add_subparsers(dest="release_command", required=True)
    c = rs.add_parser("create", help="make a release and put it in force (the deploy sensor rolls it out)")
    c.add_argument("--params", default=None,
                   help='ParamSet JSON or a file holding it: {"portfolio": {...}, "strategies": {name: {...}}}; '
                        "default: the parameters in force")
    c.add_argument("--strategy-file", action="append", default=[], metavar="NAME=FILE.py",
                   help="a file strategy the parameter set names (repeatable)")
    c.add_argument("--no-force", action="store_true", help="only record the release; do not put it in force")
    c.add_argument("--json", action="store_true", help="print one JSON document")
    c.set_defaults(func=create)
    ls = rs.add_parser("list", help="the releases in the ledger, newest first")
    ls.add_argument("--json", action="store_true", help="print one JSON document")
    ls.set_defaults(func=list_)


def _params(raw: str | None) -> dict | None:
    if raw is None:
        return None
    text = Path(raw).read_text() if not raw.lstrip().startswith("{") and Path(raw).is_file() else raw
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--params: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(value, dict):
        raise UsageError("--params: expected a JSON object")
    return value


def create(args: argparse.Namespace) -> int:
    from nettrace_dagster.deploy import DeployError
    from nettrace_dagster.deploy.release import create_release

    files = {}
    for item in args.strategy_file:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--strategy-file {item!r}: expected NAME=FILE.py")
        files[name] = path
    try:
        info = create_release(_params(args.params), files, source="cli", put_in_force=not args.no_force)
    except DeployError as exc:
        raise UsageError(str(exc)) from None
    payload = {**info.as_dict(), "in_force": not args.no_force}
    human = (f"release {info.release_id} ({'new' if info.new else 'existing'}): "
             f"{', '.join(sorted(info.strategies))}; rules {info.content['rules_version']}"
             + ("; in force (the deploy sensor rolls it out)" if not args.no_force else ""))
    emit(payload, args.json, human)
    return 0


def list_(args: argparse.Namespace) -> int:
    from nettrace_dagster.deploy.release import list_releases
    from nettrace_dagster.ledger.db import ledger_of
    from nettrace_dagster.settings import load_settings

    rows = list_releases(ledger_of(load_settings()))
    emit(rows, args.json, "\n".join(f"{r['release']}  {r['source']}" for r in rows) or "no releases yet")
    return 0
