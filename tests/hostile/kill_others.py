"""Hostile: signals every process it can name (a process outside, the whole system with -1).

It refuses to send kill(-1) unless it is PID 1 of its own PID namespace: should the sandbox ever
lose that namespace, the test fails instead of killing every process on the machine."""
import os
import signal

from nettrace_dagster.strategies import Strategy


class KillOthers(Strategy):
    name = "kill_others"
    default_params = {}

    def signals(self, candles, params):
        seen = [f"ppid={os.getppid()}", f"pid={os.getpid()}"]
        targets = [int("@@PID@@")] + ([-1] if os.getpid() == 1 else [])
        for target in targets:
            try:
                os.kill(target, signal.SIGKILL)
                seen.append(f"kill({target}) ok")
            except OSError as exc:
                seen.append(f"kill({target}) {exc}")
        raise ValueError("OBSERVED:" + "; ".join(seen))
