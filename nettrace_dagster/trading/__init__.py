"""The trader: latest candles + active strategies → signals → intents → the execution layer.

`trader.Trader.tick` is the one trading loop whoever drives it (the `trading_tick` schedule now,
execution nodes later); `portfolio` turns the ledger into the equity curve and report.
"""
