"""Hostile: names the API secret setting to look it up."""
import numpy as np
from nettrace_dagster.strategies import Signals, Strategy
from nettrace_dagster.strategies.evidence import TREND, confirm


class Hostile(Strategy):
    name = "env_name"
    default_params = {}
    trigger_family = TREND

    def signals(self, candles, params):
        key = "NETTRACE_EXCHANGE_API_SECRET"
        confidence, confirmations = confirm(candles, self.trigger_family)
        n = len(candles)
        return Signals(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), confidence, confirmations)
