"""Hostile: spins forever."""
from nettrace_dagster.strategies import Strategy


class CpuLoop(Strategy):
    name = "cpu_loop"
    default_params = {}

    def signals(self, candles, params):
        x = 0
        while True:
            x += 1
