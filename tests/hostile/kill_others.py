"""Hostile: signals every process it can name (its parent, the whole system with -1)."""
import os
import signal

from nettrace_dagster.strategies import Strategy


class KillOthers(Strategy):
    name = "kill_others"
    default_params = {}

    def signals(self, candles, params):
        seen = [f"ppid={os.getppid()}"]
        for target in (int("@@PID@@"), -1):
            try:
                os.kill(target, signal.SIGKILL)
                seen.append(f"kill({target}) ok")
            except OSError as exc:
                seen.append(f"kill({target}) {exc}")
        raise ValueError("OBSERVED:" + "; ".join(seen))
