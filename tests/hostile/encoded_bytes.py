"""Hostile: hides a name in hex bytes, no imports needed."""
import numpy as np
from nettrace_dagster.strategies import Signals, Strategy
from nettrace_dagster.strategies.evidence import TREND, confirm


class Hostile(Strategy):
    name = "encoded_bytes"
    default_params = {}
    trigger_family = TREND

    def signals(self, candles, params):
        name = bytes.fromhex("6f73").decode()
        np.save(name, np.zeros(1))
        confidence, confirmations = confirm(candles, self.trigger_family)
        n = len(candles)
        return Signals(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), confidence, confirmations)
