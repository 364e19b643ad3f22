"""Run strategy code in a separate, walled-off process and read its signals back.

The parent (this module) never imports the strategy. It writes the source, the candles and a
request into a fresh scratch folder, starts `sandbox_child` there, and reads `out.json` back. The
child runs with:

- its own PID, mount and network namespaces (`unshare --pid --fork --kill-child --mount-proc
  --net`): no network at all, no other process visible, and every process it starts — even one
  that called setsid() — dies when the sandbox is killed;
- a scrubbed environment (no API keys, no NETTRACE_*), the scratch folder as cwd and HOME, and
  stdout/stderr to files in it (an escaped child holding a pipe cannot hang the parent);
- rlimits (util-linux `prlimit`): CPU seconds, address space, file size, open files, processes, no core dumps; and,
  where the cgroup v1 `pids` and `memory` controllers are writable (root), a per-run cgroup
  capping processes and resident memory (RLIMIT_NPROC means nothing to root);
- a 30 s wall clock (VALIDATION_SANDBOX_TIMEOUT_S may shorten it), after which the whole
  process group and namespace is killed;
- inside, before strategy code runs, `lockdown.lock_down`: read-only filesystem except scratch,
  NETTRACE_HOME and the ledger folder hidden, seccomp (no sockets, fork or exec), no capabilities.

If the namespaces cannot be created the strategy does not run at all (`SandboxUnavailable`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from nettrace_dagster.validation.sandbox_child import CANDLES, OUTPUT, REQUEST, SOURCE

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding nettrace_dagster/
CGROUP_ROOT = Path("/sys/fs/cgroup")
MAX_OUTPUT_BYTES = 64 * 1024 * 1024
BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); "
        "from nettrace_dagster.validation.sandbox_child import main; main()")


class SandboxUnavailable(RuntimeError):
    """This machine cannot build the sandbox (no `unshare`, namespaces refused): nothing ran."""


@dataclass(frozen=True)
class Limits:
    """What one sandboxed run may use."""

    wall_s: float = 30.0
    cpu_s: int = 30
    memory_mb: int = 1024  # resident (cgroup); the address-space rlimit is larger (see `_rlimits`)
    address_space_mb: int = 8192
    file_mb: int = 64
    processes: int = 64  # threads count: polars and numba start a few per core
    open_files: int = 256


@dataclass
class SandboxResult:
    """What came back. `ok` means the strategy ran and returned signals of the right shape."""

    ok: bool
    error: str | None = None
    strategy: dict[str, Any] | None = None
    signals: dict[str, np.ndarray] | None = None
    checks: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0  # wall time of the whole sandboxed run, start-up included
    startup_seconds: float | None = None  # until the child reached strategy code (walls up)
    marks: dict[str, float] = field(default_factory=dict)  # child milestones, seconds after the start
    exit_code: int | None = None
    cpu_seconds: float = 0.0  # CPU time of every process of the run
    killed: str | None = None  # "wall clock" | "cpu" | "memory" | signal name, when it was killed
    limits: dict[str, str] = field(default_factory=dict)  # which walls were up


def unshare_command() -> list[str]:
    exe = shutil.which("unshare")
    if exe is None:
        raise SandboxUnavailable("the `unshare` program (util-linux) is not installed")
    cmd = [exe, "--pid", "--fork", "--kill-child", "--mount-proc", "--net"]
    if os.geteuid() != 0:
        cmd.insert(1, "--map-root-user")  # a user namespace lets a non-root user build the others
    return cmd


def scrubbed_env(scratch: Path) -> dict[str, str]:
    """Nothing from the parent's environment: no keys, no NETTRACE_*, no proxies."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(scratch), "TMPDIR": str(scratch), "LANG": "C.UTF-8",
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
            "POLARS_MAX_THREADS": "2"}


class _Cgroup:
    """A per-run cgroup v1 in the `pids` and `memory` hierarchies, where they are writable."""

    def __init__(self, limits: Limits) -> None:
        self.paths: list[Path] = []
        name = f"nettrace-sandbox-{uuid.uuid4().hex[:12]}"
        for controller, knob, value in (("pids", "pids.max", limits.processes),
                                        ("memory", "memory.limit_in_bytes", limits.memory_mb * 1024 * 1024)):
            path = CGROUP_ROOT / controller / name
            try:
                path.mkdir()
                (path / knob).write_text(str(value))
                if controller == "memory":
                    swap = path / "memory.memsw.limit_in_bytes"
                    if swap.exists():
                        swap.write_text(str(value))
            except OSError:
                if path.exists():
                    self._remove(path)
                continue
            self.paths.append(path)

    @property
    def controllers(self) -> list[str]:
        return [p.parent.name for p in self.paths]

    def oom_killed(self) -> bool:
        for path in self.paths:
            events = path / "memory.oom_control"
            if events.exists() and "oom_kill 0" not in events.read_text() and "oom_kill" in events.read_text():
                return True
            failcnt = path / "memory.failcnt"
            if failcnt.exists() and failcnt.read_text().strip() not in ("", "0"):
                return True
        return False

    def remove(self) -> None:
        for path in self.paths:
            self._remove(path)

    @staticmethod
    def _remove(path: Path) -> None:
        deadline = time.monotonic() + 2.0
        while True:
            try:
                path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:  # members still exiting
                if time.monotonic() > deadline:
                    return
                procs = path / "cgroup.procs"
                if procs.exists():
                    for pid in procs.read_text().split():
                        try:
                            os.kill(int(pid), signal.SIGKILL)
                        except (ProcessLookupError, ValueError, PermissionError):
                            pass
                time.sleep(0.02)


JOIN_SCRIPT = 'while [ "$1" != "--" ]; do echo $$ > "$1" || exit 97; shift; done; shift; exec "$@"'


def _join_cgroups(cgroup: _Cgroup) -> list[str]:
    """`sh -c` that moves itself into each group, then execs the rest (children inherit groups)."""
    if not cgroup.paths:
        return []
    return ["/bin/sh", "-c", JOIN_SCRIPT, "sandbox", *(str(p / "cgroup.procs") for p in cgroup.paths), "--"]


def _prlimit(limits: Limits) -> list[str]:
    """util-linux `prlimit` running the rest under the rlimits (SIGXCPU at the soft CPU limit,
    SIGKILL a second later)."""
    exe = shutil.which("prlimit")
    if exe is None:
        raise SandboxUnavailable("the `prlimit` program (util-linux) is not installed")
    mb = 1024 * 1024
    return [exe, f"--cpu={limits.cpu_s}:{limits.cpu_s + 1}", f"--as={limits.address_space_mb * mb}",
            f"--fsize={limits.file_mb * mb}", "--core=0", f"--nofile={limits.open_files}",
            f"--nproc={limits.processes}", "--"]


def hidden_paths(extra: list[Path] | None = None) -> list[str]:
    """Folders the strategy must not see: NETTRACE_HOME, the ledger's folder, sockets, the
    parent's home (each only where it holds nothing the child needs)."""
    from nettrace_dagster.settings import load_settings

    out: list[Path] = [Path("/run"), Path("/var/run"), Path("/root"), Path("/home")]
    try:
        settings = load_settings()
        out.append(settings.home)
        if settings.ledger_url.startswith("sqlite:///"):
            out.append(Path(settings.ledger_url.removeprefix("sqlite:///")).parent)
    except Exception:  # noqa: BLE001 - bad settings: hide the default home at least
        out.append(Path(os.environ.get("NETTRACE_HOME", "./.nettrace")).resolve())
    if os.environ.get("HOME"):
        out.append(Path(os.environ["HOME"]))
    return [str(p) for p in out + list(extra or [])]


def keep_paths() -> list[str]:
    """What the child must still read after the lockdown: Python, its libraries, this package."""
    return [sys.base_prefix, sys.prefix, str(PACKAGE_ROOT / "nettrace_dagster")]


def run_sandbox(source: str, candles: pl.DataFrame, *, params: dict[str, Any] | None = None,
                mode: str = "signals", limits: Limits | None = None, hide: list[Path] | None = None,
                lockdown: bool = True) -> SandboxResult:
    """Run `source` (a strategy module's text) on `candles` in the sandbox and return its signals.

    `mode="validate"` also runs it twice (determinism) and on a prefix (no look-ahead).
    `lockdown=False` skips the in-child walls (tests only: it shows what the outer walls contain
    on their own)."""
    limits = limits or Limits()
    command = unshare_command()
    scratch = Path(tempfile.mkdtemp(prefix="nettrace-sandbox-"))
    cgroup = _Cgroup(limits)
    started = time.monotonic()
    try:
        scratch.chmod(0o700)
        (scratch / SOURCE).write_text(source, encoding="utf-8")
        candles.write_parquet(scratch / CANDLES)
        (scratch / REQUEST).write_text(json.dumps({
            "mode": mode, "params": params or {}, "lockdown": lockdown,
            "hide": hidden_paths(hide), "keep": keep_paths()}, default=str))
        with open(scratch / "stdout.txt", "wb") as out, open(scratch / "stderr.txt", "wb") as err:
            # No preexec_fn (unsafe with threads: validate_batch runs two sandboxes at once): a
            # shell joins the cgroups, prlimit sets the rlimits, and each execs the next.
            argv = [*_join_cgroups(cgroup), *_prlimit(limits), *command, sys.executable, "-I", "-c", BOOT,
                    str(PACKAGE_ROOT)]
            proc = subprocess.Popen(argv, cwd=scratch, env=scrubbed_env(scratch), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=err, start_new_session=True, close_fds=True)
            code, cpu, killed = _wait(proc, started + limits.wall_s)
        seconds = time.monotonic() - started
        if killed is None and code != 0 and cpu >= limits.cpu_s - 0.05:
            killed = "cpu"  # SIGXCPU; unshare does not always pass the child's signal on in its status
        result = _read_result(scratch, code, killed, seconds, limits, cgroup)
        result.cpu_seconds = cpu
        result.marks = {k: round(v - started, 4) for k, v in result.marks.items() if isinstance(v, int | float)}
        result.startup_seconds = result.marks.get("ready")
        result.limits = {"namespaces": "pid, mount, net", "rlimits": "cpu, as, fsize, nofile, nproc, core",
                         "cgroup": ", ".join(cgroup.controllers) or "unavailable (rlimits only)",
                         "lockdown": "read-only fs, seccomp, no capabilities" if lockdown else "off"}
        return result
    finally:
        cgroup.remove()
        shutil.rmtree(scratch, ignore_errors=True)


def _wait(proc: subprocess.Popen[bytes], deadline: float) -> tuple[int, float, str | None]:
    """(exit status, CPU seconds of the whole sandbox, "wall clock" if it had to be killed).
    wait4 on `unshare` reports the CPU of every process it reaped (the PID namespace's init,
    which reaped the rest), and only this run's: parallel runs in other threads do not mix in."""
    killed = None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            break
        if time.monotonic() >= deadline and killed is None:
            killed = "wall clock"
            _kill_group(proc)
        time.sleep(0.01)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime, killed


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill `unshare` and its group; --kill-child takes the PID namespace (setsid escapees too)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _read_result(scratch: Path, code: int, killed: str | None, seconds: float, limits: Limits,
                 cgroup: _Cgroup) -> SandboxResult:
    out_path = scratch / OUTPUT
    if killed is None and code != 0:
        killed = _kill_reason(code, cgroup)
    if killed is not None:
        what = {"wall clock": f"the {limits.wall_s:g} s wall clock", "cpu": f"the {limits.cpu_s} s CPU limit",
                "memory": f"the {limits.memory_mb} MB memory limit"}.get(killed, killed)
        return SandboxResult(False, f"killed by {what}", seconds=seconds, exit_code=code, killed=killed)
    if not out_path.is_file() or out_path.is_symlink():
        tail = _tail(scratch / "stderr.txt")
        return SandboxResult(False, f"the sandboxed run wrote no result (exit {code}){': ' + tail if tail else ''}",
                             seconds=seconds, exit_code=code)
    if out_path.stat().st_size > MAX_OUTPUT_BYTES:
        return SandboxResult(False, "the sandboxed run's result is over the size limit", seconds=seconds,
                             exit_code=code)
    try:
        data = json.loads(out_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return SandboxResult(False, "the sandboxed run's result is not JSON", seconds=seconds, exit_code=code)
    marks = data.get("marks") if isinstance(data, dict) and isinstance(data.get("marks"), dict) else {}
    if not isinstance(data, dict) or not data.get("ok"):
        error = data.get("error") if isinstance(data, dict) else None
        return SandboxResult(False, str(error or "the strategy failed")[:500], seconds=seconds, exit_code=code,
                             marks=marks)
    return SandboxResult(True, None, data.get("strategy"), _arrays(data.get("signals")),
                         data.get("checks") or {}, seconds, exit_code=code, marks=marks)


def _kill_reason(code: int, cgroup: _Cgroup) -> str | None:
    """Why the child died, from unshare's exit status (it reports the child's signal as 128+N)."""
    if cgroup.oom_killed():
        return "memory"
    sig = -code if code < 0 else code - 128 if code > 128 else 0
    if sig == signal.SIGXCPU:
        return "cpu"
    if sig == signal.SIGKILL:
        return "memory" if cgroup.oom_killed() else "SIGKILL"
    if sig == signal.SIGXFSZ:
        return "the file-size limit"
    if sig:
        return signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
    return None


def _arrays(raw: Any) -> dict[str, np.ndarray] | None:
    if not isinstance(raw, dict):
        return None
    out = {}
    for key in ("entries", "exits", "confidence", "confirmations"):
        value = raw.get(key)
        if not isinstance(value, list):
            return None
        try:
            out[key] = np.asarray(value)
        except (ValueError, TypeError):
            return None
    return out


def _tail(path: Path, limit: int = 300) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - 4096))
            lines = [ln.strip() for ln in fh.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:limit] if lines else ""
