"""`nettrace rollback params`: put the previous parameter set back in force by hand (audited, P1
alert), as the guardrails sensor does. `nettrace rollback [--to RELEASE]` rolls a release back
(the deploy controller's `nettrace_dagster.deploy.rollback.cli_rollback`)."""

from __future__ import annotations

import argparse
import getpass

from nettrace_dagster.cli import UsageError, emit
from nettrace_dagster.settings import load_settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rollback", help="roll back the parameters in force (params) or a release")
    p.add_argument("what", nargs="?", choices=("params",), help="params: the parameter set in force")
    p.add_argument("--to", metavar="RELEASE", default=None, help="release to roll back to (releases only)")
    p.add_argument("--reason", default="", help="why (audited)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    if args.what != "params":  # the release every region runs: the deploy controller's
        from nettrace_dagster.deploy.rollback import cli_rollback

        return int(cli_rollback(args) or 0)
    if args.to is not None:
        raise UsageError("--to names a release; 'rollback params' returns to the previous parameter set")
    from nettrace_dagster.paramsets.in_force import NothingToRollBack
    from nettrace_dagster.promotion import guardrails
    from nettrace_dagster.promotion.runtime import pipeline_from_settings

    settings = load_settings()
    pipe = pipeline_from_settings(settings)
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "cli"
    try:
        out = guardrails.rollback(pipe.ledger, by=f"cli:{who}", reason=args.reason or "nettrace rollback params",
                                  audit_dir=settings.audit_dir)
    except NothingToRollBack as exc:
        emit({"rolled_back": False, "reason": str(exc)}, args.json, f"nothing rolled back: {exc}")
        return 1
    emit(out, args.json, f"parameters rolled back: {out['from']['param_set_id']} → {out['to']['param_set_id']} "
                         f"(in force #{out['to']['id']})")
    return 0
