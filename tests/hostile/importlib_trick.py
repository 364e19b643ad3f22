"""Hostile: imports socket through importlib."""
import importlib

import numpy as np
from nettrace_dagster.strategies import Signals, Strategy
from nettrace_dagster.strategies.evidence import TREND, confirm


class Hostile(Strategy):
    name = "importlib_trick"
    default_params = {}
    trigger_family = TREND

    def signals(self, candles, params):
        importlib.import_module("socket").create_connection(("127.0.0.1", 80))
        confidence, confirmations = confirm(candles, self.trigger_family)
        n = len(candles)
        return Signals(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), confidence, confirmations)
