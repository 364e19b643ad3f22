"""`nettrace candidates [--json]`, `nettrace approve ID`, `nettrace reject ID --reason ...`: the
promotion pipeline and its human checkpoint (NETTRACE_REQUIRE_APPROVAL=1). Every decision is
audited with who (`--by`, default the login name), when and why."""

from __future__ import annotations

import argparse
import getpass
import time
from datetime import UTC, datetime

from nettrace_dagster.cli import UsageError, emit, table
from nettrace_dagster.settings import load_settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("candidates", help="promotion candidates: stage, evidence, parameters in force")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=show)
    for name, helptext in (("approve", "approve a LIMITED candidate (it goes FULL)"),
                           ("reject", "reject a COLD, WARM or LIMITED candidate")):
        q = sub.add_parser(name, help=helptext)
        q.add_argument("id", help="candidate id (see nettrace candidates)")
        q.add_argument("--reason", default="", help="why (audited; required for reject)")
        q.add_argument("--by", default="", help="who decides (default: your login name)")
        q.add_argument("--json", action="store_true", help="print one JSON document")
        q.set_defaults(func=decide, decision=name)


def _pipeline():  # noqa: ANN202 - heavy imports only when a command runs
    from nettrace_dagster.promotion.runtime import pipeline_from_settings

    return pipeline_from_settings(load_settings())


def show(args: argparse.Namespace) -> int:
    from nettrace_dagster.paramsets import in_force

    pipe = _pipeline()
    views = pipe.candidates()
    current = in_force.current(pipe.ledger)
    payload = {"candidates": [v.to_dict() for v in views], "in_force": current.to_dict(),
               "require_approval": pipe.config.require_approval}
    rows = [[str(v.id), v.kind, v.stage + ("*" if v.waiting_approval else ""), v.regime or "-",
             _age(v.stage_started_at), "; ".join(v.failed_tests()) or _last_reason(v)] for v in views]
    human = "\n".join([f"parameters in force: {current.param_set_id} "
                       + (f"(candidate {current.candidate_id})" if current.candidate_id else f"({current.kind})"),
                       *(table(["id", "kind", "stage", "regime", "in stage", "why"], rows) if rows
                         else ["  no candidates yet"]),
                       *(["  * waiting for approval: nettrace approve ID"] if any(v.waiting_approval for v in views)
                         else [])])
    emit(payload, args.json, human)
    return 0


def _age(ts: float) -> str:
    s = max(time.time() - ts, 0)
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.0f} min"


def _last_reason(v) -> str:  # noqa: ANN001
    return (v.history[-1]["reason"] if v.history else "")[:90]


def decide(args: argparse.Namespace) -> int:
    from nettrace_dagster.promotion.store import CandidateError

    try:
        cid = int(args.id)
    except ValueError:
        raise UsageError(f"candidate id {args.id!r} is not a number") from None
    by = args.by or _login()
    pipe = _pipeline()
    try:
        out = (pipe.approve(cid, by, args.reason) if args.decision == "approve"
               else pipe.reject(cid, by, args.reason))
    except CandidateError as exc:
        raise UsageError(str(exc)) from None
    out["at"] = datetime.now(UTC).isoformat(timespec="seconds")
    emit(out, args.json, f"candidate {cid}: {args.decision}d by {by} → {out['stage']}")
    return 0


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"
