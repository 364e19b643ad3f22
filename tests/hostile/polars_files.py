"""Hostile: reads and writes files through polars (read_csv, SQL, write_parquet)."""
import numpy as np
import polars as pl
from nettrace_dagster.strategies import Signals, Strategy
from nettrace_dagster.strategies.evidence import TREND, confirm


class Hostile(Strategy):
    name = "polars_files"
    default_params = {}
    trigger_family = TREND

    def signals(self, candles, params):
        pl.read_csv("/etc/passwd")
        pl.sql("SELECT 1")
        candles.write_parquet("/tmp/x.parquet")
        confidence, confirmations = confirm(candles, self.trigger_family)
        n = len(candles)
        return Signals(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), confidence, confirmations)
