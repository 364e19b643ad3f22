"""Shared pieces of the scale-out tests (tests/test_scale_*.py) and benchmarks/bench_load.py.

Services on 127.0.0.1 (FACTS.md): Redis on 6379, RabbitMQ on 5672, PostgreSQL on 5432. A service
that does not answer skips its tests with the reason on a laptop and fails them in CI (tests/ci.py,
where `.ci/run` starts them first). Processes started here (Celery workers, the Dagster daemon) are
real processes in their own session, stopped by their own pid.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.pg import ScratchDatabase, in_ci

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


def answers(port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def need_service(name: str, port: int, start_hint: str) -> None:
    if answers(port):
        return
    why = f"{name} is not answering on {HOST}:{port} (start it: {start_hint})"
    if in_ci():
        pytest.fail(f"{why}; CI runs the {name} tests for real", pytrace=False)
    pytest.skip(why)


@pytest.fixture
def redis_url() -> str:
    """A Redis broker URL on a database number of its own (1–15), so concurrent sessions rarely share a queue."""
    need_service("Redis", 6379, "redis-server --daemonize yes")
    return f"redis://{HOST}:6379/{random.randint(1, 15)}"


@pytest.fixture
def amqp_url() -> str:
    need_service("RabbitMQ", 5672, "service rabbitmq-server start")
    return f"amqp://guest:guest@{HOST}:5672//"


def dagster_pg_url(db: ScratchDatabase, schema: str) -> str:
    """NETTRACE_DAGSTER_PG_URL for a schema of the scratch database (psycopg2 named: see settings)."""
    return f"postgresql+psycopg2://{db.user}@{HOST}:5432/{db.name}?options=-csearch_path%3D{schema}"


def project_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a NetTrace process on `home`, importing this checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NETTRACE_", "DAGSTER_"))}
    env.update({"NETTRACE_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
                "NETTRACE_SIM_BARS": "1500", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def nettrace(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from nettrace_dagster.cli import main; sys.exit(main())", *args]


@contextmanager
def process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A real process in its own session, output to `log`; SIGTERM then SIGKILL to its group at the end."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    _signal_group(proc.pid, signal.SIGKILL)  # the group: a worker's pool children, a daemon's code server
    proc.wait()


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1, proc: subprocess.Popen | None = None,
             log: Path | None = None):
    """Poll until `predicate()` is truthy; fail naming `what` (and the process log tail) otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(interval)
    tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}", pytrace=False)
