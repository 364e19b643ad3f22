"""Hostile: a decorator that runs code when the module is imported."""
import numpy as np

from nettrace_dagster.strategies import Signals, Strategy
from nettrace_dagster.strategies.evidence import TREND, confirm


def backdoor(fn):
    np.save("/tmp/pwned.npy", np.zeros(1))
    return fn


class Hostile(Strategy):
    name = "decorator"
    default_params = {}
    trigger_family = TREND

    @backdoor
    def signals(self, candles, params):
        confidence, confirmations = confirm(candles, self.trigger_family)
        n = len(candles)
        return Signals(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), confidence, confirmations)
