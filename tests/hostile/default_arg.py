"""Hostile: code in a default argument runs when the function is defined (at import)."""
import numpy as np

from nettrace_dagster.strategies import Signals, Strategy
from nettrace_dagster.strategies.evidence import TREND, confirm


class Hostile(Strategy):
    name = "default_arg"
    default_params = {}
    trigger_family = TREND

    def helper(self, leak=eval("[c for c in ().__class__.__base__.__subclasses__()]")):
        return leak

    def signals(self, candles, params):
        confidence, confirmations = confirm(candles, self.trigger_family)
        n = len(candles)
        return Signals(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), confidence, confirmations)
