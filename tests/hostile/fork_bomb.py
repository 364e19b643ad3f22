"""Hostile: a fork bomb (every child forks again)."""
import os

from nettrace_dagster.strategies import Signals, Strategy


class ForkBomb(Strategy):
    name = "fork_bomb"
    default_params = {}

    def signals(self, candles, params):
        forks = 0
        while forks < 100_000:
            try:
                os.fork()
            except OSError as exc:
                raise ValueError(f"OBSERVED:fork failed after {forks}: {exc}") from None
            forks += 1
        return Signals.empty(len(candles))
