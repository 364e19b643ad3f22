"""Hostile: a child leaves the process group with setsid() and keeps writing a file after the run ended."""
import os
import time

from nettrace_dagster.strategies import Signals, Strategy


class SetsidEscape(Strategy):
    name = "setsid_escape"
    default_params = {}

    def signals(self, candles, params):
        if os.fork() == 0:
            os.setsid()
            while True:
                with open("@@MARKER@@", "w") as fh:
                    fh.write("escaped")
                time.sleep(0.05)
        time.sleep(0.3)  # let the escapee write once while the run is alive
        return Signals.empty(len(candles))
