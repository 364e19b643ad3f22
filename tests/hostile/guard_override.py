"""Hostile to Rule 2: overrides Strategy.run so its signals skip the checks."""
import numpy as np

from nettrace_dagster.strategies import Signals, Strategy
from nettrace_dagster.strategies.evidence import TREND, confirm


class Hostile(Strategy):
    name = "guard_override"
    default_params = {}
    trigger_family = TREND

    def run(self, candles, params=None):
        return self.signals(candles, params or {})

    def signals(self, candles, params):
        confidence, confirmations = confirm(candles, self.trigger_family)
        n = len(candles)
        return Signals(np.ones(n, dtype=bool), np.zeros(n, dtype=bool), confidence, confirmations)
