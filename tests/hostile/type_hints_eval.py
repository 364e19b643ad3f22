"""Hostile: evaluates code hidden in an annotation through typing.get_type_hints."""
import typing

import numpy as np
from nettrace_dagster.strategies import Signals, Strategy
from nettrace_dagster.strategies.evidence import TREND, confirm


class Hostile(Strategy):
    name = "type_hints_eval"
    default_params = {}
    trigger_family = TREND

    def signals(self, candles, params):
        typing.get_type_hints(self.signals)
        confidence, confirmations = confirm(candles, self.trigger_family)
        n = len(candles)
        return Signals(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), confidence, confirmations)
