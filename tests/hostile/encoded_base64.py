"""Hostile: decodes a base64 payload and execs it."""
import base64

import numpy as np
from nettrace_dagster.strategies import Signals, Strategy
from nettrace_dagster.strategies.evidence import TREND, confirm


class Hostile(Strategy):
    name = "encoded_base64"
    default_params = {}
    trigger_family = TREND

    def signals(self, candles, params):
        exec(base64.b64decode("aW1wb3J0IG9z"))
        confidence, confirmations = confirm(candles, self.trigger_family)
        n = len(candles)
        return Signals(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), confidence, confirmations)
