"""Hostile: reads globals through a format string."""
import numpy as np
from nettrace_dagster.strategies import Signals, Strategy
from nettrace_dagster.strategies.evidence import TREND, confirm


class Hostile(Strategy):
    name = "format_walk"
    default_params = {}
    trigger_family = TREND

    def signals(self, candles, params):
        leak = "{0.__init__.__globals__}".format(self)
        confidence, confirmations = confirm(candles, self.trigger_family)
        n = len(candles)
        return Signals(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), confidence, confirmations)
