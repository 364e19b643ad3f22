"""Run the same signals through a peer engine (vectorbt) configured to NetTrace's conventions, and
compare. vectorbt is an optional extra (`pip install nettrace[peers]`), never a runtime dependency.

How vectorbt is made to follow NetTrace's conventions with `Portfolio.from_signals`:
- "signal at i's close fills at i+1's open": the order is placed at bar i with `price` = open[i+1].
  vectorbt then checks stops from bar i+1 on — the real entry bar, as NetTrace does — against
  bar i+1's open/high/low (gap fills at the open, stop before target).
- stops relative to the entry fill (`stop_entry_price=FillPrice`), stop fills with slippage
  (`stop_exit_price=StopMarket`), an exit beats an entry on the same bar (`upon_long_conflict=Exit`),
  all-in size (`size=inf`) or a percent of cash.
In vectorbt's time a signal-driven fill is recorded at the signal bar, a stop at the bar it hit;
`to_peer_time` maps NetTrace's trades onto that.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from nettrace_dagster.backtest.engine import Prices
from nettrace_dagster.backtest.params import EngineParams


def vectorbt_available() -> bool:
    try:
        import vectorbt  # noqa: F401
    except Exception:
        return False
    return True


def vectorbt_kwargs(prices: Prices, entries: np.ndarray, exits: np.ndarray, params: EngineParams,
                    freq: str = "1min") -> dict[str, Any]:
    """Keyword arguments of `vbt.Portfolio.from_signals` reproducing NetTrace's conventions.
    `entries` must be gated already. 2-D `entries`/`exits` (bars × columns) run a sweep."""
    from vectorbt.portfolio.enums import ConflictMode, StopEntryPrice, StopExitPrice

    (tp0, tp1, tp2), (f0, _, _) = params.tiers()
    if tp1 or tp2 or (tp0 and f0 < 1.0):
        raise ValueError("vectorbt has one take-profit that sells everything: use tp0 only")
    if params.stop_loss and params.trailing_stop:
        raise ValueError("vectorbt has one stop: use stop_loss or trailing_stop, not both")
    entries = np.array(entries, dtype=np.bool_, copy=True)
    exits = np.array(exits, dtype=np.bool_, copy=True)
    entries[-1, ...] = False  # no next open to fill at
    exits[-1, ...] = False
    price = np.concatenate((prices.open[1:], prices.close[-1:]))
    col = (lambda a: a[:, None]) if entries.ndim == 2 else (lambda a: a)  # 2-D: one column, broadcast
    kwargs: dict[str, Any] = dict(
        close=col(prices.close), entries=entries, exits=exits, price=col(price),
        open=col(prices.open), high=col(prices.high), low=col(prices.low),
        fees=params.fee, slippage=params.slippage, init_cash=params.initial_equity,
        direction="longonly", upon_long_conflict=ConflictMode.Exit,
        stop_entry_price=StopEntryPrice.FillPrice, stop_exit_price=StopExitPrice.StopMarket,
        freq=freq,
    )
    if params.size_fraction >= 1.0:
        kwargs.update(size=np.inf)
    else:
        kwargs.update(size=params.size_fraction, size_type="percent")
    if params.stop_loss:
        kwargs.update(sl_stop=params.stop_loss)
    elif params.trailing_stop:
        kwargs.update(sl_stop=params.trailing_stop, sl_trail=True)
    if tp0:
        kwargs.update(tp_stop=tp0)
    return kwargs


def vectorbt_trades(pf: Any) -> pl.DataFrame:
    """vectorbt's trades (one column) in peer time: entry_idx, exit_idx, exit_price, open."""
    rec = pf.trades.values
    return pl.DataFrame({
        "entry_idx": rec["entry_idx"].astype(np.int64), "exit_idx": rec["exit_idx"].astype(np.int64),
        "exit_price": rec["exit_price"].astype(np.float64), "open": rec["status"] == 0,
    })


def to_peer_time(trades: pl.DataFrame) -> pl.DataFrame:
    """NetTrace trades as vectorbt records them: signal-driven fills one bar earlier."""
    return trades.select(
        (pl.col("entry_bar") - 1).alias("entry_idx"),
        pl.when(pl.col("exit_reason") == "signal").then(pl.col("exit_bar") - 1)
        .otherwise(pl.col("exit_bar")).alias("exit_idx"),
        pl.col("exit_price"),
        (pl.col("exit_reason") == "open").alias("open"),
    )


def compare_trades(ours: pl.DataFrame, peer: pl.DataFrame, rtol: float = 1e-9) -> list[str]:
    """Differences (empty: same trades — entry bar, exit bar, exit price of closed trades)."""
    mine = to_peer_time(ours)
    problems: list[str] = []
    if mine.height != peer.height:
        problems.append(f"trade count {mine.height} vs {peer.height}")
    k = min(mine.height, peer.height)
    a, b = mine.head(k), peer.head(k)
    bad = np.flatnonzero((a["entry_idx"].to_numpy() != b["entry_idx"].to_numpy())
                         | (a["open"].to_numpy() != b["open"].to_numpy()))
    if bad.size:
        problems.append(f"first entry mismatch at trade {bad[0]}: ours {a.row(int(bad[0]))} peer {b.row(int(bad[0]))}")
        return problems
    closed = ~a["open"].to_numpy()
    xa, xb = a["exit_idx"].to_numpy()[closed], b["exit_idx"].to_numpy()[closed]
    pa, pb = a["exit_price"].to_numpy()[closed], b["exit_price"].to_numpy()[closed]
    bad = np.flatnonzero((xa != xb) | ~np.isclose(pa, pb, rtol=rtol, atol=0.0))
    if bad.size:
        j = int(np.flatnonzero(closed)[bad[0]])
        problems.append(f"first exit mismatch at trade {j}: ours {a.row(j)} peer {b.row(j)}")
    return problems


def cross_check(prices: Prices, entries: np.ndarray, exits: np.ndarray, params: EngineParams,
                ours_trades: pl.DataFrame, ours_final: float, rtol: float = 1e-6) -> dict[str, Any]:
    """Run vectorbt on the same gated signals and compare with NetTrace's result."""
    import vectorbt as vbt

    pf = vbt.Portfolio.from_signals(**vectorbt_kwargs(prices, entries, exits, params))
    peer_final = float(pf.final_value())
    peer_trades = vectorbt_trades(pf)
    problems = compare_trades(ours_trades, peer_trades)
    rel = abs(ours_final - peer_final) / abs(peer_final)
    if rel > rtol:
        problems.append(f"final equity {ours_final!r} vs {peer_final!r} (rel {rel:.2e})")
    return {"agree": not problems, "problems": problems, "trades": ours_trades.height,
            "peer_trades": peer_trades.height, "final_equity": ours_final, "peer_final_equity": peer_final,
            "final_equity_rel_diff": rel}
