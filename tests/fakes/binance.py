"""A loopback fake of Binance's spot REST API, good enough for unmodified ccxt code.

Start it as a context manager (it binds 127.0.0.1 on a free port and serves from a thread)::

    from tests.fakes.binance import FakeBinance

    with FakeBinance(now="2026-01-01T12:00:30Z") as fake:
        ex = fake.exchange(timeout_ms=1000)       # ccxt.binance pointed at fake.base_url
        ex.fetch_ohlcv("BTC/USDT", "1m", since=..., limit=1000)

or as a pytest fixture::

    @pytest.fixture
    def fake():
        with FakeBinance(now=NOW) as server:
            yield server

Market data: `/api/v3/ping`, `/time`, `/exchangeInfo` (BTCUSDT, ETHUSDT, SOLUSDT with real-looking
filters), `/klines` (symbol, interval, startTime, endTime, limit; the bar containing "now" is
returned still forming, as Binance does), `/ticker/price`, `/ticker/24hr`. Prices are a
deterministic function of (symbol, time). The clock is `now=` (datetime, ISO string or epoch ms;
None follows the wall clock); move it with `fake.set_now(...)` or `fake.advance(seconds)`.
`listed_at=` makes bars before that time not exist.

Signed endpoints (need an `X-MBX-APIKEY` header plus `timestamp` and `signature` params; the HMAC
is checked only when `api_secret=` is given): `POST/GET/DELETE /api/v3/order`, `GET /openOrders`,
`/allOrders`, `/myTrades`, `/account`. `newClientOrderId` is honoured and a repeated one is refused
with -2010 "Duplicate order sent." (no second order). MARKET orders fill at once at the series price;
a LIMIT order fills at once when marketable, else rests until `fake.fill_order(...)`.
`fake.fill_ratios.append(0.5)` makes the next order fill only half (a MARKET remainder EXPIRES,
a GTC LIMIT remainder rests). Balances start from `balances=` (default 10 000 USDT).

Fault injection, queued per path and consumed one per matching request::

    fake.fail_next("/api/v3/klines", status=429, times=2)        # ccxt: DDoSProtection
    fake.fail_next("/api/v3/klines", status=503)                 # HTML body: ExchangeNotAvailable
    fake.fail_next("/api/v3/klines", status=500, code=-1000)     # JSON: OperationFailed
    fake.fail_next("/api/v3/klines", status=400, code=-1003)     # RateLimitExceeded
    fake.fail_next("/api/v3/klines", delay=2.0)                  # hang, never processed: RequestTimeout
    fake.fail_next("/api/v3/klines", status=200, body=[[...]])   # any scripted reply
    fake.accept_then_timeout("/api/v3/order", delay=2.0)        # order IS recorded, reply too late

Inspection: `fake.hits["/api/v3/order"]` counts requests per path (faulted ones included),
`fake.calls` lists (method, path, params), `fake.orders` / `fake.trades` the account's history.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http.server import ThreadingHTTPServer
from typing import Any

from tests.fakes.binance_market import DEFAULT_SYMBOLS, ApiError, SymbolSpec, klines, price_at, round_to_tick
from tests.fakes.binance_orders import Account, Order
from tests.fakes.binance_routes import FakeBinanceHandler

_DEFAULT_BODIES: dict[int, Any] = {
    418: {"code": -1003, "msg": "Way too much request weight used; IP banned until 1735732800000."},
    429: {"code": -1003, "msg": "Too much request weight used; current limit is 6000 request weight per "
                                "1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API."},
    500: "<html><head><title>500 Internal Server Error</title></head><body>Internal error</body></html>",
    502: "<html><head><title>502 Bad Gateway</title></head><body>Bad gateway</body></html>",
    503: "<html><head><title>503 Service Temporarily Unavailable</title></head>\n"
         "<body><center><h1>503 Service Temporarily Unavailable</h1></center></body></html>",
    504: "<html><head><title>504 Gateway Time-out</title></head><body>Gateway time-out</body></html>",
}
_DEFAULT_MSGS = {-1000: "An unknown error occurred while processing the request.",
                 -1003: "Too many requests; please use the websocket for live updates.",
                 -1021: "Timestamp for this request is outside of the recvWindow.",
                 -1121: "Invalid symbol."}


@dataclass
class Fault:
    """One scripted misbehaviour for the next request to a path."""

    status: int | None = None
    body: Any = None
    delay: float = 0.0
    method: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    after: bool = False  # process the request first, then delay the reply


def _to_ms(value: datetime | str | int | float) -> int:
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("fake clock needs a timezone-aware datetime")
    return int(value.timestamp() * 1000)


class FakeBinance:
    """Threaded loopback HTTP server speaking enough of Binance spot REST for ccxt."""

    def __init__(
        self,
        now: datetime | str | int | None = None,
        *,
        listed_at: datetime | str | int | None = None,
        symbols: tuple[SymbolSpec, ...] = DEFAULT_SYMBOLS,
        balances: dict[str, str | float] | None = None,
        api_key: str | None = None,
        api_secret: str | None = None,
    ) -> None:
        self._now_ms = None if now is None else _to_ms(now)
        self.listed_ms = 0 if listed_at is None else _to_ms(listed_at)
        self.symbols = {s.symbol: s for s in symbols}
        self.account = Account(balances if balances is not None else {"USDT": "10000", "BTC": "0", "ETH": "0"})
        self.api_key, self.api_secret = api_key, api_secret
        self.hits: Counter[str] = Counter()
        self.calls: list[tuple[str, str, dict[str, str]]] = []
        self._faults: dict[str, list[Fault]] = {}
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> FakeBinance:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread."""
        handler = type("Handler", (FakeBinanceHandler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,),  # quick shutdown
                                        name="fake-binance", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests held by a delay fault are released at once."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeBinance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`, to give `make_exchange(..., base_url=)`."""
        if self._httpd is None:
            raise RuntimeError("FakeBinance is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def exchange(self, timeout_ms: int = 1000, api_key: str = "fake-key", secret: str = "fake-secret") -> Any:
        """A real `ccxt.binance` pointed at this fake (see `make_exchange`)."""
        from nettrace_dagster.market.ccxt_source import make_exchange

        exchange = make_exchange("binance", base_url=self.base_url, api_key=api_key, secret=secret,
                                 timeout_ms=timeout_ms)
        exchange.session.trust_env = False  # ccxt's default, pinned: an env proxy must never see these calls
        return exchange

    # -- clock ---------------------------------------------------------------------------------
    @property
    def now_ms(self) -> int:
        return int(time.time() * 1000) if self._now_ms is None else self._now_ms

    def now(self) -> datetime:
        """The fake's clock as an aware datetime: hand `fake.now` to code that takes a `now` callable."""
        return datetime.fromtimestamp(self.now_ms / 1000, UTC)

    def set_now(self, now: datetime | str | int) -> None:
        self._now_ms = _to_ms(now)

    def advance(self, seconds: float) -> None:
        self._now_ms = self.now_ms + int(seconds * 1000)

    # -- faults --------------------------------------------------------------------------------
    def fail_next(self, path: str, *, status: int | None = None, code: int | None = None, msg: str | None = None,
                  body: Any = None, delay: float = 0.0, times: int = 1, method: str | None = None,
                  headers: dict[str, str] | None = None) -> None:
        """Script the next `times` requests to `path` (optionally only `method`) to misbehave.

        `status` with `code` sends Binance's JSON error; `status` alone a typical body for it (JSON
        -1003 for 418/429, an HTML page for 5xx); `body` overrides (dict/list → JSON, str → as is).
        `delay` holds the request that long first. With neither `status`, `code` nor `body` the
        request is dropped unprocessed (after the delay, if any): the client sees a timeout or reset.
        """
        if status is None and (body is not None or code is not None):
            status = 200 if code is None else 400
        if body is None and code is not None:
            body = {"code": code, "msg": msg or _DEFAULT_MSGS.get(code, "Fake error.")}
        if body is None and status is not None:
            body = _DEFAULT_BODIES.get(status, {"code": -1000, "msg": _DEFAULT_MSGS[-1000]})
        if status in (418, 429) and headers is None:
            headers = {"Retry-After": "1"}
        fault = Fault(status, body, delay, method, dict(headers or {}))
        with self._lock:
            self._faults.setdefault(path, []).extend(Fault(**vars(fault)) for _ in range(times))

    def accept_then_timeout(self, path: str = "/api/v3/order", *, delay: float = 2.0, times: int = 1,
                            method: str | None = "POST") -> None:
        """Process the next request(s) normally (an order IS placed) but hold the reply `delay` s."""
        with self._lock:
            self._faults.setdefault(path, []).extend(Fault(delay=delay, method=method, after=True)
                                                     for _ in range(times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get(path, [])
            for i, fault in enumerate(queue):
                if fault.method in (None, method):
                    return queue.pop(i)
        return None

    # -- orders --------------------------------------------------------------------------------
    @property
    def orders(self) -> list[Order]:
        return self.account.orders

    @property
    def trades(self) -> list[dict[str, Any]]:
        return self.account.trades

    @property
    def fill_ratios(self) -> Any:
        return self.account.fill_ratios

    def price(self, symbol: str) -> float:
        """The series price of `symbol` (`BTCUSDT`) at the fake's now."""
        return price_at(self.symbols[symbol], self.now_ms)

    def fill_order(self, order_id: int | None = None, client_order_id: str | None = None,
                   qty: str | float | None = None) -> Order:
        """Fill a resting LIMIT order (all of its remainder, or `qty`) at its limit price."""
        with self._lock:
            order = next(o for o in self.orders
                         if o.order_id == order_id or (client_order_id and o.client_order_id == client_order_id))
            amount = None if qty is None else Decimal(str(qty))
            self.account.fill_resting(self.symbols[order.symbol], order, amount, self.now_ms)
            return order

    # -- dispatch (called by the handler) ------------------------------------------------------
    def spec(self, params: dict[str, str]) -> SymbolSpec:
        symbol = params.get("symbol")
        if not symbol:
            raise ApiError(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        if symbol not in self.symbols:
            raise ApiError(400, -1121, "Invalid symbol.")
        return self.symbols[symbol]

    def klines(self, params: dict[str, str]) -> list[list[Any]]:
        return klines(self.spec(params), params, self.now_ms, self.listed_ms)

    def ticker(self, spec: SymbolSpec, full: bool) -> dict[str, Any]:
        last = round_to_tick(price_at(spec, self.now_ms), spec.tick_size)
        if not full:
            return {"symbol": spec.symbol, "price": last}
        day_ago = self.now_ms - 86_400_000
        open_ = round_to_tick(price_at(spec, day_ago), spec.tick_size)
        return {"symbol": spec.symbol, "lastPrice": last, "openPrice": open_, "bidPrice": last, "askPrice": last,
                "highPrice": max(last, open_, key=float), "lowPrice": min(last, open_, key=float),
                "volume": f"{spec.base_volume * 1440:.8f}", "openTime": day_ago, "closeTime": self.now_ms,
                "priceChange": f"{float(last) - float(open_):.8f}", "count": 100000}

    def check_signed(self, headers: Any, params: dict[str, str], raw: str) -> None:
        key = headers.get("X-MBX-APIKEY")
        if not key:
            raise ApiError(401, -2014, "API-key format invalid.")
        if self.api_key is not None and key != self.api_key:
            raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        for name in ("timestamp", "signature"):
            if not params.get(name):
                raise ApiError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        if self.api_secret is not None:
            payload = raw.rsplit("&signature=", 1)[0]
            good = hmac.new(self.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(good, params["signature"]):
                raise ApiError(400, -1022, "Signature for this request is not valid.")
