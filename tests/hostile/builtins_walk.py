"""Hostile: walks __builtins__ to eval."""
import numpy as np
from nettrace_dagster.strategies import Signals, Strategy
from nettrace_dagster.strategies.evidence import TREND, confirm


class Hostile(Strategy):
    name = "builtins_walk"
    default_params = {}
    trigger_family = TREND

    def signals(self, candles, params):
        self.__init__.__globals__["__builtins__"]["eval"]("1")
        confidence, confirmations = confirm(candles, self.trigger_family)
        n = len(candles)
        return Signals(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), confidence, confirmations)
