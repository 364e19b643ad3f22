"""Hostile: looks for the host's disk device (it only lists /dev: a real write would be sabotage)."""
import os

from nettrace_dagster.strategies import Strategy


class RawDevice(Strategy):
    name = "raw_device"
    default_params = {}

    def signals(self, candles, params):
        raise ValueError("OBSERVED:" + ",".join(sorted(os.listdir("/dev"))))
