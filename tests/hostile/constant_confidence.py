"""Hostile to Rule 2: vouches for its own entries with constant confidence and confirmations."""
import numpy as np

from nettrace_dagster.strategies import Signals, Strategy


class Hostile(Strategy):
    name = "constant_confidence"
    default_params = {}
    trigger_family = "trend"

    def signals(self, candles, params):
        n = len(candles)
        entries = np.zeros(n, dtype=bool)
        entries[::50] = True
        return Signals(entries, np.zeros(n, dtype=bool), np.ones(n), np.full(n, 4))
