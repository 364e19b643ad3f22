"""Hostile: a child leaves the process group with setsid() and writes a file after the run ended."""
import os
import time

from nettrace_dagster.strategies import Signals, Strategy


class SetsidEscape(Strategy):
    name = "setsid_escape"
    default_params = {}

    def signals(self, candles, params):
        if os.fork() == 0:
            os.setsid()
            time.sleep(1.0)
            with open("@@MARKER@@", "w") as fh:
                fh.write("escaped")
            os._exit(0)
        return Signals.empty(len(candles))
