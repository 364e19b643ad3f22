"""`nettrace worker`: a Celery worker that executes the steps of NetTrace's runs.

Start one on any machine that has the package and the same settings (NETTRACE_HOME on a shared
mount, NETTRACE_CELERY_BROKER_URL, NETTRACE_DAGSTER_PG_URL, NETTRACE_LEDGER_URL): it serves
dagster-celery's `dagster` queue, so every step a run puts on the broker may land here. Runs on
the foreground until SIGTERM/SIGINT (a warm shutdown: the step in hand finishes first).
"""

from __future__ import annotations

import argparse
import sys

from nettrace_dagster.cli import UsageError
from nettrace_dagster.settings import load_settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="run a Celery worker that executes run steps (needs NETTRACE_CELERY_BROKER_URL)")
    p.add_argument("--name", help="worker name (default nettrace-<pid>); @host is appended")
    p.add_argument("--concurrency", type=int, default=1,
                   help="steps this worker runs at once (default 1; one per core is the most useful)")
    p.add_argument("--loglevel", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="the worker's log level (default INFO)")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from nettrace_dagster.cli.market import ensure_home
    from nettrace_dagster.distributed import BROKER_ENV, celery_app, worker_argv, worker_name
    from nettrace_dagster.instance import storage_kind

    settings = load_settings()
    if not settings.nettrace_celery_broker_url:
        raise UsageError(f"{BROKER_ENV} is empty: set it to the broker runs use (redis://… or amqp://…)")
    if not 1 <= args.concurrency <= 64:
        raise UsageError(f"--concurrency {args.concurrency}: expected 1 … 64")
    ensure_home(settings)  # DAGSTER_HOME and the instance config, as on the launching machine
    if storage_kind(settings) == "sqlite":
        print("nettrace worker: note: the Dagster instance is SQLite under NETTRACE_HOME; workers on other "
              "machines need NETTRACE_DAGSTER_PG_URL", file=sys.stderr)
    app = celery_app(settings)
    # Load the code location once, before Celery forks its pool: every child then starts warm
    # instead of each paying the imports on its first step (about 10 s on 2 cores).
    import nettrace_dagster.definitions  # noqa: F401
    app.worker_main(worker_argv(worker_name(args.name), args.concurrency, args.loglevel))
    return 0
