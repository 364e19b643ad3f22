"""Market data: the candle schema, the sources (sim, ccxt, file) and the Parquet lake."""
