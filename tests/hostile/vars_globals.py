"""Hostile: reaches the module namespace through globals() and vars()."""
import numpy as np
from nettrace_dagster.strategies import Signals, Strategy
from nettrace_dagster.strategies.evidence import TREND, confirm


class Hostile(Strategy):
    name = "vars_globals"
    default_params = {}
    trigger_family = TREND

    def signals(self, candles, params):
        globals()["np"] = vars(np)
        confidence, confirmations = confirm(candles, self.trigger_family)
        n = len(candles)
        return Signals(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), confidence, confirmations)
