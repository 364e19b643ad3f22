"""Candles from a real exchange through ccxt: paginated, incremental, rate-limited, retried.

`CcxtSource.fetch("BTC-USDT", since)` returns the closed bars newer than `since` in the candle
schema. Transient failures (ccxt's `NetworkError` family — 429/418 `DDoSProtection`,
`RateLimitExceeded`, `ExchangeNotAvailable`, `RequestTimeout` — and `OperationFailed`, which
Binance's 500 "-1000 unknown error" maps to) are retried with exponential backoff; anything else
fails at once. Either way the caller gets one `MarketDataError` line, never a traceback wall.

`make_exchange` builds the ccxt exchange both this source and the ccxt broker use, optionally
pointed at a loopback fake.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import ccxt
import polars as pl

# MarketDataError lives in schema (the candles asset catches it there); re-exported here for callers.
from nettrace_dagster.market.schema import (
    CandleError,
    MarketDataError,
    conform,
    empty_candles,
    timeframe_seconds,
)

log = logging.getLogger(__name__)
__all__ = ["PAGE_LIMIT", "CcxtSource", "MarketDataError", "make_exchange", "one_line", "to_ccxt_symbol"]

PAGE_LIMIT = 1000  # Binance spot's maximum klines per request
MAX_BACKOFF_S = 30.0
T = TypeVar("T")


def to_ccxt_symbol(symbol: str) -> str:
    """NetTrace writes `BTC-USDT` (a Dagster partition key cannot hold '/'); ccxt wants `BTC/USDT`."""
    return symbol.replace("-", "/") if "/" not in symbol else symbol


def one_line(text: object, limit: int = 240) -> str:
    """Collapse whitespace (ccxt messages may carry a whole HTML page) and cap the length."""
    flat = re.sub(r"\s+", " ", str(text)).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _rewrite_urls(urls: Any, base_url: str) -> Any:
    """Swap the scheme and host of every URL in ccxt's (possibly nested) `urls['api']`."""
    if isinstance(urls, dict):
        return {k: _rewrite_urls(v, base_url) for k, v in urls.items()}
    if isinstance(urls, str) and "://" in urls:
        return base_url.rstrip("/") + urlsplit(urls).path
    return urls


def check_loopback_url(url: str) -> str:
    """`url` if it is http(s) on a literal loopback address (127.0.0.0/8 or ::1), else ValueError.

    A base URL exists only to point ccxt at a test fake; with keys set, the broker sends the API
    key and signed requests to it, so it may never name another machine. The message names the
    host only: a URL can carry credentials.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme not in ("http", "https") or not loopback or parts.username or parts.password:
        raise ValueError(f"a ccxt base URL must be http(s)://127.0.0.1:PORT (loopback, no credentials); "
                         f"got scheme {parts.scheme!r}, host {host!r}")
    return url


def make_exchange(
    exchange_id: str,
    base_url: str | None = None,
    api_key: str | None = None,
    secret: str | None = None,
    *,
    timeout_ms: int | None = None,
    options: dict[str, Any] | None = None,
) -> ccxt.Exchange:
    """A sync ccxt exchange with the rate limiter on.

    `base_url` (a loopback fake's `http://127.0.0.1:PORT`; any other host is refused, see
    `check_loopback_url`) replaces the host of every API URL and keeps ccxt to spot markets, so
    `load_markets` calls only the spot exchangeInfo instead of also reaching for futures, margin
    and currency endpoints. Keys are optional (market data needs
    none) and are only handed to ccxt, never logged.
    """
    if exchange_id not in ccxt.exchanges:
        raise MarketDataError(f"unknown ccxt exchange {exchange_id!r}")
    if base_url:
        try:
            check_loopback_url(base_url)
        except ValueError as exc:
            raise MarketDataError(str(exc)) from None
    config: dict[str, Any] = {"enableRateLimit": True}
    if api_key:
        config["apiKey"] = api_key
    if secret:
        config["secret"] = secret
    if timeout_ms is not None:
        config["timeout"] = timeout_ms
    exchange: ccxt.Exchange = getattr(ccxt, exchange_id)(config)
    if base_url:
        exchange.urls["api"] = _rewrite_urls(exchange.urls["api"], base_url)
        exchange.options["fetchMarkets"] = {"types": ["spot"]}
        exchange.options["fetchCurrencies"] = False
        exchange.options["fetchMargins"] = False
    if options:
        exchange.options.update(options)
    return exchange


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _to_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise CandleError(f"naive datetime {moment.isoformat()}: candle times are UTC, pass tz-aware")
    return int(moment.timestamp() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


class CcxtSource:
    """A `CandleSource` reading OHLCV bars from a ccxt exchange."""

    def __init__(
        self,
        exchange_id: str = "binance",
        timeframe: str = "1m",
        history_days: int = 7,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        exchange: ccxt.Exchange | None = None,
        now: Callable[[], datetime] | None = None,
        progress: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        api_budget: Callable[[str], object] | None = None,
    ) -> None:
        if max_retries < 1:
            raise MarketDataError(f"max_retries must be at least 1, got {max_retries}")
        self.exchange = exchange if exchange is not None else make_exchange(exchange_id)
        self.exchange_id = str(self.exchange.id)
        self.timeframe = timeframe
        self.tf_ms = timeframe_seconds(timeframe) * 1000
        supported = getattr(self.exchange, "timeframes", None) or {}
        if supported and timeframe not in supported:
            raise MarketDataError(f"{self.exchange_id} has no timeframe {timeframe!r}; it offers {', '.join(supported)}")
        self.history_days = history_days
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self._now = now or _utc_now
        self._progress = progress or log.info
        self._sleep = sleep
        # The coordinator's exchange-wide budget (600/min, 30,000/h across every process): it
        # waits for room, or raises when none comes in time.
        self._api_budget = api_budget

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> CcxtSource:
        """Build from `load_settings()` values (NETTRACE_CCXT_*, NETTRACE_TIMEFRAME)."""
        kwargs: dict[str, Any] = {
            "exchange_id": settings.nettrace_ccxt_exchange,
            "timeframe": settings.nettrace_timeframe,
            "history_days": settings.nettrace_ccxt_history_days,
            "max_retries": settings.nettrace_ccxt_max_retries,
        }
        return cls(**{**kwargs, **overrides})

    def fetch(self, symbol: str, since: datetime | None) -> pl.DataFrame:
        """Closed bars of `symbol` (`BTC-USDT`) strictly newer than `since`, sorted, conformed.

        `since` is the open time of the last stored bar; None fetches `history_days` back.
        """
        market = to_ccxt_symbol(symbol)
        where = f"{self.exchange_id} {market} {self.timeframe}"
        now_ms = _to_ms(self._now())
        if since is None:
            start = (now_ms - self.history_days * 86_400_000) // self.tf_ms * self.tf_ms
            next_open = start
        else:
            start = _to_ms(since) + 1  # exchanges answer bars opening at or after `since`
            next_open = _to_ms(since) + self.tf_ms
        # A bar is closed once its open time + timeframe has passed; later ones are still forming,
        # so asking again once the next bar could not be closed yet would only cost a request.
        last_closed_open = now_ms - self.tf_ms
        rows: dict[int, list[float]] = {}
        page = 0
        while next_open <= last_closed_open:
            page += 1
            batch = self._call(where, self.exchange.fetch_ohlcv, market, self.timeframe, since=start, limit=PAGE_LIMIT)
            fresh = [r for r in (_checked_row(where, r) for r in batch or []) if r[0] >= start]
            if not fresh:
                break
            for row in fresh:
                rows[int(row[0])] = row[1:]
            newest = max(int(r[0]) for r in fresh)
            closed = sum(1 for t in rows if t <= last_closed_open)
            self._progress(f"{where}: page {page}: {len(fresh)} bars to {_iso(newest)} UTC ({closed} closed so far)")
            start, next_open = newest + 1, newest + self.tf_ms
        return self._frame({t: v for t, v in rows.items() if t <= last_closed_open})

    def _frame(self, rows: dict[int, list[float]]) -> pl.DataFrame:
        if not rows:
            return empty_candles()
        times = sorted(rows)
        df = pl.DataFrame({
            "timestamp": times,
            **{col: [rows[t][i] for t in times] for i, col in enumerate(("open", "high", "low", "close", "volume"))},
        }, schema_overrides={"timestamp": pl.Int64})
        return conform(df.with_columns(pl.from_epoch("timestamp", time_unit="ms").dt.replace_time_zone("UTC")))

    def _call(self, where: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ccxt, retrying transient errors with exponential backoff, failing in one line."""
        def note(exc: BaseException, attempt: int, pause: float) -> None:
            self._progress(f"{where}: {type(exc).__name__} (try {attempt}/{self.max_retries}), retrying in {pause:g}s")

        budget = (lambda: self._api_budget(self.exchange_id)) if self._api_budget is not None else None
        try:
            return call_with_retries(lambda: fn(*args, **kwargs), tries=self.max_retries,
                                     retry_on=(ccxt.NetworkError, ccxt.OperationFailed), budget=budget,
                                     delay=lambda a: min(self.backoff_base * 2 ** (a - 1), MAX_BACKOFF_S),
                                     sleep=self._sleep, on_retry=note)
        except (ccxt.NetworkError, ccxt.OperationFailed) as exc:
            raise MarketDataError(f"{where}: gave up after {self.max_retries} tries: {type(exc).__name__}: "
                                  f"{one_line(exc)}") from exc
        except ccxt.BaseError as exc:
            # BadSymbol, AuthenticationError, ExchangeError...: asking again cannot help.
            raise MarketDataError(f"{where}: {type(exc).__name__}: {one_line(exc)}") from exc


def call_with_retries(fn: Callable[[], T], *, tries: int, retry_on: tuple[type[BaseException], ...],
                      budget: Callable[[], object] | None, delay: Callable[[int], float],
                      sleep: Callable[[float], None],
                      on_retry: Callable[[BaseException, int, float], None] | None = None) -> T:
    """The one retry loop for exchange calls (candles and orders): a slot of the shared API budget
    before every try, `retry_on` errors tried again after `delay(attempt)`, anything else — and the
    last failure — raised to the caller, which decides what it means (an order is never retried
    after a timeout: it passes only the errors that prove the request was not processed)."""
    for attempt in range(1, tries + 1):
        if budget is not None:
            budget()
        try:
            return fn()
        except retry_on as exc:
            if attempt == tries:
                raise
            pause = delay(attempt)
            if on_retry is not None:
                on_retry(exc, attempt, pause)
            sleep(pause)
    raise ValueError(f"tries must be at least 1, not {tries}")


def _checked_row(where: str, row: Any) -> list[float]:
    """[ts, o, h, l, c, v] with a real int timestamp and finite floats, or CandleError saying what is wrong."""
    if not isinstance(row, list | tuple) or len(row) < 6:
        raise CandleError(f"{where}: malformed bar {one_line(row, 80)}: expected [time, open, high, low, close, volume]")
    ts = row[0]
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise CandleError(f"{where}: malformed bar {one_line(row, 80)}: timestamp {ts!r} is not a number")
    values: list[float] = [float(int(ts))]
    for name, value in zip(("open", "high", "low", "close", "volume"), row[1:6], strict=True):
        if isinstance(value, bool) or not isinstance(value, int | float):
            # ccxt turns an unparsable string into None, so the exchange's raw text is already gone.
            raise CandleError(f"{where}: bar at {_iso(int(ts))} UTC: {name} is missing or not a number (got {value!r})")
        if not math.isfinite(value):
            raise CandleError(f"{where}: bar at {_iso(int(ts))} UTC: {name} is {value}")
        values.append(float(value))
    return values
