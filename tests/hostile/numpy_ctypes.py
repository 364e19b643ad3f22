"""Hostile: loads libc through numpy.ctypeslib."""
import numpy as np
from nettrace_dagster.strategies import Signals, Strategy
from nettrace_dagster.strategies.evidence import TREND, confirm


class Hostile(Strategy):
    name = "numpy_ctypes"
    default_params = {}
    trigger_family = TREND

    def signals(self, candles, params):
        np.ctypeslib.load_library("libc.so.6", "/lib/x86_64-linux-gnu").system(b"id")
        confidence, confirmations = confirm(candles, self.trigger_family)
        n = len(candles)
        return Signals(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), confidence, confirmations)
