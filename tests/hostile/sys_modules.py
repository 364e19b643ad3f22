"""Hostile: reaches os through sys.modules."""
import sys

import numpy as np
from nettrace_dagster.strategies import Signals, Strategy
from nettrace_dagster.strategies.evidence import TREND, confirm


class Hostile(Strategy):
    name = "sys_modules"
    default_params = {}
    trigger_family = TREND

    def signals(self, candles, params):
        sys.modules["os"].system("id")
        confidence, confirmations = confirm(candles, self.trigger_family)
        n = len(candles)
        return Signals(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), confidence, confirmations)
