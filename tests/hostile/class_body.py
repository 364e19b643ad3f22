"""Hostile: runs code in the class body (at import, before any method is called)."""
import numpy as np

from nettrace_dagster.strategies import Signals, Strategy
from nettrace_dagster.strategies.evidence import TREND, confirm


class Hostile(Strategy):
    name = "class_body"
    default_params = {}
    trigger_family = TREND
    leaked = open("/etc/passwd").read()

    def signals(self, candles, params):
        confidence, confirmations = confirm(candles, self.trigger_family)
        n = len(candles)
        return Signals(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), confidence, confirmations)
