"""Hostile: forks as fast as it can, the children staying alive (bounded at 300 so that a sandbox
that lost its walls fails the test rather than the machine)."""
import os
import time

from nettrace_dagster.strategies import Signals, Strategy


class ForkBomb(Strategy):
    name = "fork_bomb"
    default_params = {}

    def signals(self, candles, params):
        forks = 0
        while forks < 300:
            try:
                if os.fork() == 0:
                    time.sleep(20)
                    os._exit(0)
            except OSError as exc:
                raise ValueError(f"OBSERVED:fork failed after {forks}: {exc}") from None
            forks += 1
        raise ValueError(f"OBSERVED:forked {forks}")
