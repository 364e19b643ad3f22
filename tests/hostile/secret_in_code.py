"""Hostile: carries an exchange secret in its source."""
import numpy as np
from nettrace_dagster.strategies import Signals, Strategy
from nettrace_dagster.strategies.evidence import TREND, confirm


class Hostile(Strategy):
    name = "secret_in_code"
    default_params = {}
    trigger_family = TREND

    def signals(self, candles, params):
        api_secret = "Zq8xT2vLk9PmW4rYc7NbH3sJd6FgA1eQ0uVoXiRt"
        confidence, confirmations = confirm(candles, self.trigger_family)
        n = len(candles)
        return Signals(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), confidence, confirmations)
