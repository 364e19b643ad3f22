"""Hostile: a loop at module level runs as soon as the file is imported."""
import numpy as np

from nettrace_dagster.strategies import Signals, Strategy
from nettrace_dagster.strategies.evidence import TREND, confirm

for _ in range(10**12):
    pass


class Hostile(Strategy):
    name = "module_level_code"
    default_params = {}
    trigger_family = TREND

    def signals(self, candles, params):
        confidence, confirmations = confirm(candles, self.trigger_family)
        n = len(candles)
        return Signals(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), confidence, confirmations)
