"""Fees and slippage: the backtest engine's arithmetic, applied to one fill.

Same conventions as `nettrace_dagster.backtest` (see `backtest/kernel.py`): buys fill at
price × (1 + slippage), sells at price × (1 − slippage); the fee is a fraction of the fill's
notional, per side, paid in the quote currency.
"""

from __future__ import annotations

from dataclasses import dataclass

from nettrace_dagster.backtest.params import EngineParams

_DEFAULTS = EngineParams()


@dataclass(frozen=True)
class CostModel:
    fee_rate: float = _DEFAULTS.fee
    slippage_bps: float = 5.0  # paper trading assumes a little slippage even where backtests don't

    def __post_init__(self) -> None:
        if not 0 <= self.fee_rate < 1 or not 0 <= self.slippage_bps < 10_000:
            raise ValueError(f"bad cost model: fee {self.fee_rate}, slippage {self.slippage_bps} bps")

    @property
    def slippage(self) -> float:
        return self.slippage_bps / 10_000.0

    def fill_price(self, side: str, price: float) -> float:
        return price * (1.0 + self.slippage) if side == "buy" else price * (1.0 - self.slippage)

    def fee(self, notional: float) -> float:
        return abs(notional) * self.fee_rate

    def entry_cost(self, notional: float) -> float:
        """Equity lost the moment a buy of `notional` fills: its fee plus the slippage (the units
        are worth notional / (1 + slippage) at the reference price)."""
        return self.fee(notional) + notional - notional / (1.0 + self.slippage)
