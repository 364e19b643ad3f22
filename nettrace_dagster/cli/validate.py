"""`nettrace validate FILE.py [--json] [--review]`: the six validation layers on one strategy file.

Exit 0 when it passes (with or without warnings), 1 when a layer rejects it, 2 when the path is
not a strategy file at all (missing, a folder, not UTF-8, empty). A file that passes with
warnings goes to manual review (`nettrace review`) when --review is given.
"""

from __future__ import annotations

import argparse

from nettrace_dagster.cli import UsageError, emit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="run the six validation layers on a strategy file")
    p.add_argument("file", help="the strategy .py file")
    p.add_argument("--review", action="store_true",
                   help="queue it for manual review when it passes with warnings")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from nettrace_dagster.validation import UnusableInput, validate_file

    try:
        report = validate_file(args.file)
    except UnusableInput as exc:
        raise UsageError(str(exc)) from None
    payload = report.to_dict()
    if args.review and report.status == "in_review":
        from nettrace_dagster.settings import load_settings
        from nettrace_dagster.validation.review import submit_for_review

        review = submit_for_review(load_settings(), report, name=(report.strategy or {}).get("name", ""),
                                   path=args.file)
        payload["review_id"] = review["id"]
    lines = [report.one_line()]
    for layer in report.layers:
        mark = "ok  " if layer.passed else "FAIL"
        lines.append(f"  {mark} {layer.name}")
        lines.extend(f"         error: {e}" for e in layer.errors)
        lines.extend(f"         warning: {w}" for w in layer.warnings)
    if "review_id" in payload:
        lines.append(f"queued for manual review as #{payload['review_id']} (nettrace review)")
    emit(payload, args.json, "\n".join(lines))
    return 0 if report.passed else 1
