"""`nettrace review [--json] [--all]`, `nettrace review approve ID`, `nettrace review reject ID --reason ...`.

The manual review queue: strategies that passed validation with warnings. A decision is final
and audited (who, when, why: the row and the `strategy_reviews` audit log). Exit 2 for an
unknown id, a review already decided, a rejection without a reason or a file changed since it
was validated.
"""

from __future__ import annotations

import argparse
import getpass
import os
from datetime import UTC, datetime

from nettrace_dagster.cli import UsageError, emit, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("review", help="the manual review queue of strategies that passed with warnings")
    p.add_argument("--all", action="store_true", help="decided reviews too, not only pending ones")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=handle_list)
    s = p.add_subparsers(dest="review_command")
    for name, helptext in (("approve", "approve a pending review"), ("reject", "reject a pending review")):
        d = s.add_parser(name, help=helptext)
        d.add_argument("id", type=int, help="the review id (see `nettrace review`)")
        d.add_argument("--reason", default="", help="why (required to reject; audited)")
        d.add_argument("--by", default=None, help="who decides (default: the login name)")
        d.add_argument("--json", action="store_true", help="print one JSON document")
        d.set_defaults(func=handle_decide, decision=name)


def _who(given: str | None) -> str:
    if given:
        return given
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def handle_list(args: argparse.Namespace) -> int:
    from nettrace_dagster.settings import load_settings
    from nettrace_dagster.validation.review import list_reviews

    reviews = list_reviews(load_settings(), None if args.all else "pending")
    rows = [[str(r["id"]), r["status"], r["name"], datetime.fromtimestamp(r["created_at"], UTC).strftime("%Y-%m-%d %H:%M"),
             f"{len(r['warnings'])}: {r['warnings'][0] if r['warnings'] else ''}"[:80]] for r in reviews]
    human = "\n".join(table(["id", "status", "strategy", "queued (UTC)", "warnings"], rows)) if rows else \
        "no strategies waiting for review"
    emit({"reviews": reviews}, args.json, human)
    return 0


def handle_decide(args: argparse.Namespace) -> int:
    from nettrace_dagster.settings import load_settings
    from nettrace_dagster.validation.review import ReviewError, decide

    try:
        review = decide(load_settings(), args.id, args.decision, by=_who(args.by), reason=args.reason)
    except ReviewError as exc:
        raise UsageError(str(exc)) from None
    emit(review, args.json, f"review #{review['id']} ({review['name']}): {review['status']} by {review['decided_by']}"
                            + (f": {review['reason']}" if review["reason"] else ""))
    return 0
