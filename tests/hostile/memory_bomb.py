"""Hostile: allocates (and touches) memory until something stops it."""
import numpy as np

from nettrace_dagster.strategies import Strategy


class MemoryBomb(Strategy):
    name = "memory_bomb"
    default_params = {}

    def signals(self, candles, params):
        blocks = []
        while True:
            blocks.append(np.ones(25_000_000))  # 200 MB each, written
