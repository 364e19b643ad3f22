"""Hostile: builds a module name and imports it with __import__."""
import numpy as np
from nettrace_dagster.strategies import Signals, Strategy
from nettrace_dagster.strategies.evidence import TREND, confirm


class Hostile(Strategy):
    name = "string_building"
    default_params = {}
    trigger_family = TREND

    def signals(self, candles, params):
        __import__("".join(["o", "s"])).system("id")
        confidence, confirmations = confirm(candles, self.trigger_family)
        n = len(candles)
        return Signals(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), confidence, confirmations)
