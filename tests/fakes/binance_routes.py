"""The fake Binance's HTTP layer: the route table and the request handler that applies faults."""

from __future__ import annotations

import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.binance_market import ApiError

if TYPE_CHECKING:
    from tests.fakes.binance import FakeBinance

Route = Callable[["FakeBinance", dict[str, str]], Any]


def _exchange_info(fake: FakeBinance, params: dict[str, str]) -> dict[str, Any]:
    return {
        "timezone": "UTC", "serverTime": fake.now_ms,
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
        ],
        "exchangeFilters": [],
        "symbols": [s.exchange_info() for s in fake.symbols.values()],
    }


def _tickers(full: bool) -> Route:
    def route(fake: FakeBinance, params: dict[str, str]) -> Any:
        if "symbol" in params:
            return fake.ticker(fake.spec(params), full)
        return [fake.ticker(s, full) for s in fake.symbols.values()]
    return route


ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/api/v3/ping"): lambda fake, params: {},
    ("GET", "/api/v3/time"): lambda fake, params: {"serverTime": fake.now_ms},
    ("GET", "/api/v3/exchangeInfo"): _exchange_info,
    ("GET", "/api/v3/klines"): lambda fake, params: fake.klines(params),
    ("GET", "/api/v3/ticker/price"): _tickers(full=False),
    ("GET", "/api/v3/ticker/24hr"): _tickers(full=True),
    ("POST", "/api/v3/order"): lambda fake, params: fake.account.place(
        fake.spec(params), params, fake.price(fake.spec(params).symbol), fake.now_ms),
    ("GET", "/api/v3/order"): lambda fake, params: fake.account.get_order(params),
    ("DELETE", "/api/v3/order"): lambda fake, params: fake.account.cancel(fake.spec(params), params, fake.now_ms),
    ("GET", "/api/v3/openOrders"): lambda fake, params: fake.account.open_orders(params),
    ("GET", "/api/v3/allOrders"): lambda fake, params: fake.account.all_orders(params),
    ("GET", "/api/v3/myTrades"): lambda fake, params: fake.account.my_trades(params),
    ("GET", "/api/v3/account"): lambda fake, params: fake.account.account_json(fake.now_ms),
}

SIGNED: frozenset[tuple[str, str]] = frozenset({
    ("POST", "/api/v3/order"), ("GET", "/api/v3/order"), ("DELETE", "/api/v3/order"),
    ("GET", "/api/v3/openOrders"), ("GET", "/api/v3/allOrders"), ("GET", "/api/v3/myTrades"),
    ("GET", "/api/v3/account"),
})


class FakeBinanceHandler(BaseHTTPRequestHandler):
    """Serves one connection for the `FakeBinance` bound as the class attribute `fake`."""

    fake: FakeBinance
    server_version = "fake-binance/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def _serve(self, method: str) -> None:
        fake = self.fake
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        raw = "&".join(p for p in (url.query, body) if p)  # what Binance signs: query then body
        params = dict(parse_qsl(raw, keep_blank_values=True))
        with fake._lock:
            fake.hits[url.path] += 1
            fake.calls.append((method, url.path, params))
        fault = fake._take_fault(method, url.path)
        if fault is not None and not fault.after:
            if fault.delay and fake._stopping.wait(fault.delay):
                return
            if fault.status is None:
                self.close_connection = True  # hung up without an answer: never processed
                return
            self._send(fault.status, fault.body, fault.headers)
            return
        status, reply = self._dispatch(method, url.path, params, raw)
        if fault is not None and fake._stopping.wait(fault.delay):
            return
        self._send(status, reply, {})

    def _dispatch(self, method: str, path: str, params: dict[str, str], raw: str) -> tuple[int, Any]:
        fake = self.fake
        route = ROUTES.get((method, path))
        if route is None:
            return 404, f"<html><body>fake binance: no route {method} {path}</body></html>"
        try:
            with fake._lock:
                if (method, path) in SIGNED:
                    fake.check_signed(self.headers, params, raw)
                return 200, route(fake, params)
        except ApiError as err:
            return err.status, {"code": err.code, "msg": err.msg}

    def _send(self, status: int, body: Any, headers: dict[str, str]) -> None:
        is_text = isinstance(body, str | bytes)
        data = body if isinstance(body, bytes) else (body if is_text else json.dumps(body)).encode()
        ctype = "text/html" if is_text else "application/json;charset=UTF-8"
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client already gave up (timeout): exactly what a timeout fault wants
