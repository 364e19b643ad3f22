"""`nettrace deploy history|status|run|stop`: the deploy history (every event: release, stage,
region, status, time), where each region stands, a deploy run now (outside Dagster), and stopping
the local execution nodes."""

from __future__ import annotations

import argparse

from nettrace_dagster.cli import UsageError, emit, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deploy", help="deploy history and status; run a deploy; stop local nodes")
    ds = p.add_subparsers(dest="deploy_command", required=True)
    h = ds.add_parser("history", help="every deploy event, oldest first")
    h.add_argument("--release", default=None, help="only this release's events")
    h.add_argument("--limit", type=int, default=None, help="only the last N events")
    h.add_argument("--json", action="store_true", help="print one JSON document (a list of events)")
    h.set_defaults(func=history)
    s = ds.add_parser("status", help="the release per region, the driver of the account, the last deploy")
    s.add_argument("--json", action="store_true", help="print one JSON document")
    s.set_defaults(func=status)
    r = ds.add_parser("run", help="roll a release out now, in this process (the sensor does it in Dagster)")
    r.add_argument("release", help="a release id (nettrace release list)")
    r.add_argument("--json", action="store_true", help="print one JSON document")
    r.set_defaults(func=run)
    st = ds.add_parser("stop", help="stop every local execution node")
    st.add_argument("--json", action="store_true", help="print one JSON document")
    st.set_defaults(func=stop)


def history(args: argparse.Namespace) -> int:
    from nettrace_dagster.deploy.state import history as read
    from nettrace_dagster.settings import load_settings

    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit {args.limit}: expected a positive number")
    events = read(load_settings(), args.release, args.limit)
    rows = [[str(e.get("time", ""))[:19], str(e.get("release") or ""), str(e.get("stage") or ""),
             str(e.get("region") or ""), str(e.get("event") or ""), str(e.get("status") or "")] for e in events]
    emit(events, args.json, "\n".join(table(["time", "release", "stage", "region", "event", "status"], rows))
         if rows else "no deploy events yet")
    return 0


def status(args: argparse.Namespace) -> int:
    from nettrace_dagster.deploy.controller import deploy_status
    from nettrace_dagster.settings import load_settings

    out = deploy_status(load_settings())
    rows = [[r["region"], r["role"], r["current"] or "-", r["previous"] or "-", r["status"],
             str(r["node_pid"] or "-")] for r in out["regions"]]
    last = out["last_deploy"]
    human = "\n".join([f"target {out['target']}; account driver: {out['driver'] or 'trading_tick'}",
                       *table(["region", "role", "release", "previous", "status", "pid"], rows),
                       f"last deploy: {last['release']} {last['status']} in {last.get('seconds', 0):.1f}s"
                       if last else "no deploy yet"])
    emit(out, args.json, human)
    return 0


def run(args: argparse.Namespace) -> int:
    from nettrace_dagster.deploy import DeployError
    from nettrace_dagster.deploy.controller import DeployController
    from nettrace_dagster.settings import load_settings

    try:
        result = DeployController(load_settings()).deploy(args.release)
    except DeployError as exc:
        raise UsageError(str(exc)) from None
    out = result.as_dict()
    human = "\n".join([f"deploy {result.release}: {result.status} in {result.seconds:.1f}s",
                       *(f"  {s['stage']}: {'passed' if s['ok'] else 'FAILED'} in {s['seconds']:.1f}s"
                         for s in result.stages), *(f"  {r}" for r in result.reasons)])
    emit(out, args.json, human)
    return 0 if result.ok else 1


def stop(args: argparse.Namespace) -> int:
    from nettrace_dagster.deploy.targets import LocalTarget
    from nettrace_dagster.settings import load_settings

    target = LocalTarget(load_settings())
    before = target.running()
    target.stop_all()
    emit({"stopped": sorted(before), "running": sorted(target.running())}, args.json,
         f"stopped {len(before)} node(s)" + (f": {', '.join(sorted(before))}" if before else ""))
    return 0
