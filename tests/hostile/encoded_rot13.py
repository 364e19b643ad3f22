"""Hostile: hides a module name with rot13 (codecs)."""
import codecs

import numpy as np
from nettrace_dagster.strategies import Signals, Strategy
from nettrace_dagster.strategies.evidence import TREND, confirm


class Hostile(Strategy):
    name = "encoded_rot13"
    default_params = {}
    trigger_family = TREND

    def signals(self, candles, params):
        codecs.decode("bf", "rot13")
        confidence, confirmations = confirm(candles, self.trigger_family)
        n = len(candles)
        return Signals(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), confidence, confirmations)
