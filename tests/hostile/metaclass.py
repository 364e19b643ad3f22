"""Hostile: runs code through a metaclass when the class is created."""
import numpy as np

from nettrace_dagster.strategies import Signals, Strategy
from nettrace_dagster.strategies.evidence import TREND, confirm


class Meta(type):
    def __new__(mcs, name, bases, ns):
        return super().__new__(mcs, name, bases, ns)


class Hostile(Strategy, metaclass=Meta):
    name = "metaclass"
    default_params = {}
    trigger_family = TREND

    def signals(self, candles, params):
        confidence, confirmations = confirm(candles, self.trigger_family)
        n = len(candles)
        return Signals(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), confidence, confirmations)
