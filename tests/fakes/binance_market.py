"""Market half of the fake Binance: symbols with their filters, a price series and klines.

Prices are a closed-form function of (symbol, time), so any window of bars can be produced without
generating history from the start, and the same time always gives the same bar.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

INTERVAL_MS: dict[str, int] = {
    "1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
    "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000,
}
DEFAULT_KLINES_LIMIT = 500
MAX_KLINES_LIMIT = 1000


class ApiError(Exception):
    """A Binance error reply: HTTP status plus the JSON body {"code": ..., "msg": ...}."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


@dataclass(frozen=True)
class SymbolSpec:
    """One spot market and the filter values the fake enforces on orders."""

    symbol: str
    base: str
    quote: str
    base_price: float
    tick_size: str
    step_size: str
    min_qty: str
    min_notional: str
    base_volume: float

    def exchange_info(self) -> dict[str, Any]:
        """The symbol as `/api/v3/exchangeInfo` lists it (trimmed to what clients read)."""
        return {
            "symbol": self.symbol, "status": "TRADING",
            "baseAsset": self.base, "baseAssetPrecision": 8,
            "quoteAsset": self.quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
            "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True,
            "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": True, "cancelReplaceAllowed": True,
            "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": self.tick_size, "maxPrice": "1000000.00000000",
                 "tickSize": self.tick_size},
                {"filterType": "LOT_SIZE", "minQty": self.min_qty, "maxQty": "9000.00000000",
                 "stepSize": self.step_size},
                {"filterType": "ICEBERG_PARTS", "limit": 10},
                {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "100.00000000",
                 "stepSize": "0.00000000"},
                {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10, "maxTrailingAboveDelta": 2000,
                 "minTrailingBelowDelta": 10, "maxTrailingBelowDelta": 2000},
                {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5", "bidMultiplierDown": "0.2",
                 "askMultiplierUp": "5", "askMultiplierDown": "0.2", "avgPriceMins": 5},
                {"filterType": "NOTIONAL", "minNotional": self.min_notional, "applyMinToMarket": True,
                 "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
            ],
            "permissions": [], "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }


DEFAULT_SYMBOLS: tuple[SymbolSpec, ...] = (
    SymbolSpec("BTCUSDT", "BTC", "USDT", 60_000.0, "0.01000000", "0.00001000", "0.00001000", "5.00000000", 12.0),
    SymbolSpec("ETHUSDT", "ETH", "USDT", 3_000.0, "0.01000000", "0.00010000", "0.00010000", "5.00000000", 150.0),
    SymbolSpec("SOLUSDT", "SOL", "USDT", 150.0, "0.01000000", "0.00100000", "0.00100000", "5.00000000", 2_500.0),
)


def _unit(*parts: object) -> float:
    """A deterministic pseudo-random number in [0, 1) for the given key."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def price_at(spec: SymbolSpec, t_ms: int) -> float:
    """Mid price at time `t_ms`: slow waves plus a small per-minute wiggle, never below half the base."""
    hours = t_ms / 3_600_000
    wave = 0.04 * math.sin(2 * math.pi * hours / 24) + 0.02 * math.sin(2 * math.pi * hours / 7.3)
    wave += 0.006 * math.sin(2 * math.pi * hours / 0.61)
    minute = t_ms // 60_000
    # Interpolate the wiggle between minutes so the series stays continuous (open == previous close).
    frac = (t_ms % 60_000) / 60_000
    wiggle = (1 - frac) * _unit(spec.symbol, minute) + frac * _unit(spec.symbol, minute + 1)
    return spec.base_price * math.exp(wave + 0.002 * (wiggle - 0.5))


def round_to_tick(value: float, tick: str) -> str:
    step = Decimal(tick)
    return str((Decimal(repr(value)) / step).to_integral_value() * step)


def kline(spec: SymbolSpec, open_ms: int, interval_ms: int, now_ms: int) -> list[Any]:
    """One kline row as Binance sends it; the bar containing `now_ms` is still forming."""
    close_ms = min(open_ms + interval_ms, now_ms)
    o, c = price_at(spec, open_ms), price_at(spec, close_ms)
    h = max(o, c) * (1 + 0.0008 * _unit(spec.symbol, "h", open_ms, interval_ms))
    lo = min(o, c) * (1 - 0.0008 * _unit(spec.symbol, "l", open_ms, interval_ms))
    share = (close_ms - open_ms) / interval_ms
    vol = spec.base_volume * interval_ms / 60_000 * (0.5 + _unit(spec.symbol, "v", open_ms)) * share
    quote_vol = vol * (o + c) / 2
    trades = int(vol * 10) + 1
    tick = spec.tick_size
    return [
        open_ms, round_to_tick(o, tick), round_to_tick(h, tick), round_to_tick(lo, tick),
        round_to_tick(c, tick), f"{vol:.8f}", open_ms + interval_ms - 1, f"{quote_vol:.8f}",
        trades, f"{vol / 2:.8f}", f"{quote_vol / 2:.8f}", "0",
    ]


def klines(spec: SymbolSpec, params: dict[str, str], now_ms: int, listed_ms: int) -> list[list[Any]]:
    """`GET /api/v3/klines`: bars by open time, like Binance, including the forming bar."""
    interval = params.get("interval")
    if interval not in INTERVAL_MS:
        raise ApiError(400, -1120, "Invalid interval.")
    step = INTERVAL_MS[interval]
    limit = int(params.get("limit", DEFAULT_KLINES_LIMIT))
    if not 1 <= limit <= MAX_KLINES_LIMIT:
        raise ApiError(400, -1130, "Invalid data sent for a parameter.")
    first = -(-listed_ms // step) * step  # the first whole bar after listing
    last = (now_ms // step) * step  # the forming bar
    start, end = params.get("startTime"), params.get("endTime")
    hi = min(last, int(end) // step * step) if end is not None else last
    if start is not None:
        lo = max(first, -(-int(start) // step) * step)
        opens = range(lo, min(hi, lo + (limit - 1) * step) + 1, step)
    else:
        # Without startTime Binance answers the newest `limit` bars up to endTime.
        opens = range(max(first, hi - (limit - 1) * step), hi + 1, step)
    return [kline(spec, t, step, now_ms) for t in opens]
