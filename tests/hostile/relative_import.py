"""Hostile: imports a sibling module relatively."""
import numpy as np

from . import sibling
from nettrace_dagster.strategies import Signals, Strategy
from nettrace_dagster.strategies.evidence import TREND, confirm


class Hostile(Strategy):
    name = "relative_import"
    default_params = {}
    trigger_family = TREND

    def signals(self, candles, params):
        sibling.run()
        confidence, confirmations = confirm(candles, self.trigger_family)
        n = len(candles)
        return Signals(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), confidence, confirmations)
