"""Where a run's steps execute: on the launching machine (default) or on Celery workers.

With `NETTRACE_CELERY_BROKER_URL` empty every job keeps Dagster's default executor (steps in
subprocesses of the run worker). Set, every job uses dagster-celery's executor: the run worker
puts each step on the broker and any `nettrace worker` process (on this or another machine, with
the package and the same settings) executes it. The executor config names the environment
variables instead of holding their values, so a broker password never lands in a run's config,
the UI or the event log. Workers need the same NETTRACE_HOME view (a shared mount for the lake and
audit logs) and the shared databases: Dagster instance (NETTRACE_DAGSTER_PG_URL), ledger
(NETTRACE_LEDGER_URL) and Optuna storage on PostgreSQL.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import dagster as dg

from nettrace_dagster.settings import Settings, SettingsError

BROKER_ENV = "NETTRACE_CELERY_BROKER_URL"
BACKEND_ENV = "NETTRACE_CELERY_BACKEND_URL"


def backend_url(settings: Settings) -> str:
    """The result backend: the setting, else the broker's Redis, else `rpc://` (AMQP replies)."""
    chosen = settings.nettrace_celery_backend_url
    if chosen:
        return chosen
    broker = settings.nettrace_celery_broker_url
    return broker if broker.startswith(("redis://", "rediss://")) else "rpc://"


def executor_for(settings: Settings) -> dg.ExecutorDefinition | None:
    """The executor every job uses: dagster-celery's with a broker set, else None (Dagster's default)."""
    if not settings.nettrace_celery_broker_url:
        return None
    from dagster_celery import celery_executor

    # The backend defaults from the broker; name whichever variable holds the value in effect.
    backend: Any = {"env": BACKEND_ENV} if settings.nettrace_celery_backend_url else backend_url(settings)
    if backend == settings.nettrace_celery_broker_url:
        backend = {"env": BROKER_ENV}
    return celery_executor.configured({"broker": {"env": BROKER_ENV}, "backend": backend},
                                      name="celery")


def celery_app(settings: Settings) -> Any:
    """The Celery app a `nettrace worker` serves: dagster-celery's queues and its step task."""
    if not settings.nettrace_celery_broker_url:
        raise SettingsError(f"{BROKER_ENV} is empty: set it to the broker the runs use (redis://… or amqp://…)")
    from dagster_celery.config import DEFAULT_CONFIG, dict_wrapper
    from dagster_celery.make_app import make_app
    from dagster_celery.tasks import create_task

    app = make_app({"broker": settings.nettrace_celery_broker_url, "backend": backend_url(settings),
                    "include": [], "config_source": dict_wrapper(dict(DEFAULT_CONFIG))})
    create_task(app)  # registers dagster-celery's `execute_plan`: one step per task
    return app


def worker_name(name: str | None = None) -> str:
    """`name@host`, unique per process by default so two workers on one machine are told apart."""
    return f"{name or f'nettrace-{os.getpid()}'}@{socket.gethostname()}"


def worker_argv(name: str, concurrency: int, loglevel: str = "INFO") -> list[str]:
    # prefetch 1: a worker takes the next step only when it has a free slot, so a long backtest
    # never sits behind a busy worker while another is idle.
    return ["worker", f"--loglevel={loglevel}", f"--concurrency={concurrency}", "--prefetch-multiplier=1",
            "-n", name, "-Q", "dagster", "--without-gossip", "--without-mingle"]
