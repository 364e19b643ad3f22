"""Hostile: writes a file through a pandas frame (polars' to_pandas), which polars' own rules miss."""
import numpy as np

from nettrace_dagster.strategies import Signals, Strategy
from nettrace_dagster.strategies.evidence import TREND, confirm


class Hostile(Strategy):
    name = "pandas_write"
    default_params = {}
    trigger_family = TREND

    def signals(self, candles, params):
        candles.to_pandas().to_csv("/tmp/exfiltrated.csv")
        confidence, confirmations = confirm(candles, self.trigger_family)
        n = len(candles)
        return Signals(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), confidence, confirmations)
