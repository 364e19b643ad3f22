"""The sandbox contains what slips past the static layers: each hostile file is run straight in
it (no validation first) and the effect it tries is checked not to have happened — no bytes on
the listener, no secret in what comes back, no file written, the ledger unchanged, processes dead
and killed within their limits. `lockdown=False` runs show what the outer walls (namespaces,
rlimits, cgroups, wall clock) contain on their own."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from nettrace_dagster.ledger.db import ledger_of
from nettrace_dagster.ledger.models import Capital, Flag
from nettrace_dagster.settings import Settings
from nettrace_dagster.validation.sandbox import Limits, SandboxResult, run_sandbox
from nettrace_dagster.validation.validate import sample_candles

HOSTILE = Path(__file__).parent / "hostile"
CANDLES = sample_candles().head(300)
TIGHT = Limits(wall_s=10, cpu_s=4, memory_mb=256, file_mb=8)


def hostile(stem: str, **fill: object) -> str:
    source = (HOSTILE / f"{stem}.py").read_text()
    for key, value in fill.items():
        source = source.replace(f"@@{key}@@", str(value))
    assert "@@" not in source
    return source


def observed(run: SandboxResult) -> str:
    """What the hostile code reported (it raises ValueError('OBSERVED:...') after trying)."""
    assert not run.ok and run.error and "OBSERVED:" in run.error, run
    return run.error.split("OBSERVED:", 1)[1]


def test_a_benign_strategy_runs_and_returns_checked_signals() -> None:
    run = run_sandbox((HOSTILE / "shadows_builtin.py").read_text().replace('"sma_cross"', '"fine"'), CANDLES)
    assert run.ok and run.signals is not None and len(run.signals["confidence"]) == CANDLES.height
    assert run.strategy and run.strategy["name"] == "fine"
    assert run.limits["lockdown"].startswith("read-only") and run.startup_seconds is not None


def test_the_api_secret_is_not_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETTRACE_EXCHANGE_API_SECRET", "s3cret-visible-to-nobody")
    for lockdown in (True, False):  # the environment is scrubbed and the parent invisible either way
        seen = observed(run_sandbox(hostile("env_secret"), CANDLES, lockdown=lockdown))
        assert "env= " in seen and "s3cret-visible-to-nobody" not in seen
        assert "pids=['1']" in seen  # its own PID namespace: no other process to read


@pytest.mark.parametrize("lockdown", [True, False])
def test_no_byte_reaches_a_listener_on_the_host(lockdown: bool) -> None:
    received: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                received.append(conn.recv(1024) or b"<connected>")

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        seen = observed(run_sandbox(hostile("socket_exfil", PORT=server.getsockname()[1]), CANDLES,
                                    lockdown=lockdown))
    finally:
        stop.set()
        thread.join()
        server.close()
    assert received == [] and "tcp sent" not in seen
    if lockdown:  # seccomp refuses the socket itself, unix sockets (PostgreSQL's) included
        assert "Operation not permitted" in seen and "unix connected" not in seen
    else:  # the empty network namespace has no route (a unix socket path needs the lockdown)
        assert "Network is unreachable" in seen


def _sandbox_processes() -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "sandbox_child import main" in line]


@pytest.mark.parametrize("lockdown", [True, False])
def test_a_fork_bomb_is_stopped_and_leaves_no_process(lockdown: bool) -> None:
    started = time.monotonic()
    run = run_sandbox(hostile("fork_bomb"), CANDLES, lockdown=lockdown, limits=Limits(wall_s=8, processes=32))
    seen = observed(run)
    if lockdown:  # seccomp: the first fork fails
        assert "fork failed after 0" in seen
    else:  # the cgroup's pids.max stops it (RLIMIT_NPROC means nothing to root)
        assert run.limits["cgroup"].startswith("pids") and "fork failed after" in seen
        assert int(seen.split("fork failed after ")[1].split(":")[0]) < 32
    assert time.monotonic() - started < 10
    time.sleep(0.3)
    assert _sandbox_processes() == []  # the children (sleeping 20 s) died with the namespace


def test_a_setsid_escapee_dies_with_the_sandbox(tmp_path: Path) -> None:
    """Outer walls only (fork allowed, writable disk): the child leaves the process group but not
    the PID namespace, so it dies when the run ends: the file it rewrites every 50 ms (it did
    while the run was alive) is not written again."""
    marker = tmp_path / "escaped.txt"
    run = run_sandbox(hostile("setsid_escape", MARKER=marker), CANDLES, lockdown=False)
    assert run.ok and marker.exists()  # it ran, and escaped its process group
    marker.unlink()
    time.sleep(0.5)
    assert not marker.exists() and _sandbox_processes() == []


def test_memory_exhaustion_is_killed() -> None:
    run = run_sandbox(hostile("memory_bomb"), CANDLES, limits=TIGHT)
    assert not run.ok
    assert run.killed == "memory" or "MemoryError" in (run.error or ""), run


def test_a_cpu_loop_is_killed_by_the_cpu_limit() -> None:
    started = time.monotonic()
    run = run_sandbox(hostile("cpu_loop"), CANDLES, limits=Limits(wall_s=15, cpu_s=1))
    assert not run.ok and run.killed == "cpu" and "CPU limit" in (run.error or ""), run
    assert run.cpu_seconds >= 1 and time.monotonic() - started < 15


SLEEPER = """
import time
from nettrace_dagster.strategies import Strategy

class Sleeper(Strategy):
    name = "sleeper"
    default_params = {}

    def signals(self, candles, params):
        time.sleep(60)
"""


def test_the_wall_clock_kills_a_run_that_sleeps() -> None:
    started = time.monotonic()
    run = run_sandbox(SLEEPER, CANDLES, limits=Limits(wall_s=2, cpu_s=30))
    assert not run.ok and run.killed == "wall clock" and "wall clock" in (run.error or "")
    assert time.monotonic() - started < 5 and _sandbox_processes() == []


def test_big_writes_are_capped_and_nothing_is_written_outside(tmp_path: Path) -> None:
    marker = tmp_path / "outside.txt"
    seen = observed(run_sandbox(hostile("huge_write", MARKER=marker), CANDLES, limits=TIGHT))
    assert not marker.exists() and "Read-only file system" in seen
    assert "File too large" in seen and "big after 8 MB" in seen


def test_the_ledger_and_nettrace_home_are_out_of_reach(settings: Settings) -> None:
    ledger = ledger_of(settings)
    with ledger.tx() as session:
        session.add(Capital(account="paper", principal=100.0, cash=96.97, peak_equity=100.0, day="2026-12-01",
                            day_start_equity=100.0, last_equity=96.97, updated_at=time.time()))
        session.add(Flag(name="hardstop", on=True, reason="test", updated_by="test", updated_at=time.time()))
    db = settings.ledger_url.removeprefix("sqlite:///")
    before = sorted(p.name for p in settings.home.iterdir())
    seen = observed(run_sandbox(hostile("ledger_write", LEDGER=db, HOME=settings.home), CANDLES))
    assert "ledger edited" not in seen and "home written" not in seen
    with ledger.read() as session:
        assert session.scalars(select(Capital.cash)).one() == 96.97
        assert session.scalars(select(Flag.on).where(Flag.name == "hardstop")).one() is True
    assert sorted(p.name for p in settings.home.iterdir()) == before and not (settings.home / "evil.txt").exists()


def test_a_subclasses_walk_to_os_system_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    seen = observed(run_sandbox(hostile("subclasses_walk", MARKER=marker), CANDLES))
    assert "system returned" in seen and "returned 0" not in seen and not marker.exists()


def test_no_shell_can_be_started(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    seen = observed(run_sandbox(hostile("subprocess_escape", MARKER=marker), CANDLES))
    assert "shell ran" not in seen and "Operation not permitted" in seen and not marker.exists()


def test_it_cannot_kill_anything_outside() -> None:
    sentinel = subprocess.Popen(["sleep", "30"])
    try:
        seen = observed(run_sandbox(hostile("kill_others", PID=sentinel.pid), CANDLES))
        assert "ppid=0" in seen and "pid=1;" in seen  # PID 1 of its own namespace: the parent is outside
        assert "kill(-1) [Errno 3] No such process" in seen  # -1 reaches only its own namespace: nobody
        time.sleep(0.2)
        assert sentinel.poll() is None and os.getpid() > 0  # the sentinel and this test live on
    finally:
        sentinel.kill()
        sentinel.wait()


def test_no_disk_device_is_reachable() -> None:
    seen = observed(run_sandbox(hostile("raw_device"), CANDLES)).split(",")
    assert seen and set(seen) <= {".", "null", "zero", "full", "random", "urandom"}, seen
