"""`nettrace strategy new --template NAME --out FILE.py` and `nettrace strategy list`."""

from __future__ import annotations

import argparse
from pathlib import Path

from nettrace_dagster.cli import UsageError, emit, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("strategy", help="strategy templates and built-ins")
    s = p.add_subparsers(dest="strategy_command", required=True)
    new = s.add_parser("new", help="write a new strategy file from a template")
    new.add_argument("--template", required=True, help="template name (see `nettrace strategy list`)")
    new.add_argument("--out", required=True, type=Path, help="the .py file to write")
    new.add_argument("--name", default=None, help="strategy name, lower_snake_case (default: from the file name)")
    new.add_argument("--force", action="store_true", help="overwrite an existing file")
    new.add_argument("--json", action="store_true", help="print one JSON document")
    new.set_defaults(func=handle_new)
    lst = s.add_parser("list", help="built-in strategies and templates")
    lst.add_argument("--json", action="store_true", help="print one JSON document")
    lst.set_defaults(func=handle_list)


def _name_from(path: Path) -> str:
    stem = "".join(c if c.isalnum() else "_" for c in path.stem.lower()).strip("_")
    return stem if stem and stem[0].isalpha() else f"strategy_{stem}".rstrip("_")


def handle_new(args: argparse.Namespace) -> int:
    from nettrace_dagster.strategies import load_strategy_file
    from nettrace_dagster.strategies.templating import render_template

    out: Path = args.out
    if out.suffix != ".py":
        raise UsageError(f"--out {out}: must be a .py file")
    if out.exists() and not args.force:
        raise UsageError(f"--out {out}: exists (use --force to overwrite)")
    name = args.name or _name_from(out)
    try:
        source = render_template(args.template, name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(source, encoding="utf-8")
    try:
        strategy = load_strategy_file(out)  # our own template: prove the file is a loadable strategy
    except ValueError as exc:  # StrategyError: one line naming the file and the problem
        raise UsageError(str(exc)) from None
    emit({"path": str(out), "template": args.template, "strategy": strategy.name,
          "class": type(strategy).__name__, "params": strategy.default_params}, args.json,
         f"wrote {out}: strategy {strategy.name!r} ({type(strategy).__name__}) from template {args.template!r}")
    return 0


def handle_list(args: argparse.Namespace) -> int:
    from nettrace_dagster.strategies import STRATEGIES
    from nettrace_dagster.strategies.templating import list_templates

    payload = {
        "strategies": [{"name": name, "description": cls.description, "params": cls.default_params}
                       for name, cls in sorted(STRATEGIES.items())],
        "templates": list_templates(),
    }
    rows = [[name, ", ".join(f"{k}={v}" for k, v in cls.default_params.items()), cls.description]
            for name, cls in sorted(STRATEGIES.items())]
    human = "\n".join(["strategies", *table(["name", "defaults", "description"], rows),
                       f"templates: {', '.join(list_templates())}"])
    emit(payload, args.json, human)
    return 0
