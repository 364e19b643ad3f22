"""Hostile: walks a generator frame to its caller's globals."""
import numpy as np
from nettrace_dagster.strategies import Signals, Strategy
from nettrace_dagster.strategies.evidence import TREND, confirm


class Hostile(Strategy):
    name = "frame_walk"
    default_params = {}
    trigger_family = TREND

    def signals(self, candles, params):
        gen = (i for i in range(1))
        caller = gen.gi_frame.f_back.f_globals
        confidence, confirmations = confirm(candles, self.trigger_family)
        n = len(candles)
        return Signals(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), confidence, confirmations)
