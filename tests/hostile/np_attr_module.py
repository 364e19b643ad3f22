"""Hostile: reaches modules hanging off numpy and polars."""
import numpy as np
import polars as pl
from nettrace_dagster.strategies import Signals, Strategy
from nettrace_dagster.strategies.evidence import TREND, confirm


class Hostile(Strategy):
    name = "np_attr_module"
    default_params = {}
    trigger_family = TREND

    def signals(self, candles, params):
        np.lib.npyio.os.system("id")
        pl.io.csv
        confidence, confirmations = confirm(candles, self.trigger_family)
        n = len(candles)
        return Signals(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), confidence, confirmations)
