"""Hostile: uses the __builtins__ name directly."""
import numpy as np
from nettrace_dagster.strategies import Signals, Strategy
from nettrace_dagster.strategies.evidence import TREND, confirm


class Hostile(Strategy):
    name = "builtins_name"
    default_params = {}
    trigger_family = TREND

    def signals(self, candles, params):
        __builtins__["open"]("/etc/passwd")
        confidence, confirmations = confirm(candles, self.trigger_family)
        n = len(candles)
        return Signals(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), confidence, confirmations)
