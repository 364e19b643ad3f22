"""The fake Binance's order side, driven by real ccxt, so broker tests can lean on it."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import ccxt
import pytest

from tests.fakes.binance import FakeBinance

NOW = "2026-01-01T12:00:30Z"


@pytest.fixture
def fake() -> Iterator[FakeBinance]:
    with FakeBinance(now=NOW, api_key="fake-key", api_secret="fake-secret") as server:
        yield server


def test_client_order_id_is_idempotent(fake: FakeBinance) -> None:
    ex = fake.exchange()
    order = ex.create_order("BTC/USDT", "market", "buy", 0.01, params={"clientOrderId": "nt-1"})
    assert (order["clientOrderId"], order["status"], order["filled"]) == ("nt-1", "closed", 0.01)
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        ex.create_order("BTC/USDT", "market", "buy", 0.01, params={"clientOrderId": "nt-1"})
    assert len(fake.orders) == 1 and len(fake.trades) == 1
    assert ex.fetch_order(None, "BTC/USDT", params={"origClientOrderId": "nt-1"})["id"] == order["id"]


def test_accepted_order_whose_reply_times_out_is_recorded(fake: FakeBinance) -> None:
    ex = fake.exchange(timeout_ms=300)
    fake.accept_then_timeout("/api/v3/order", delay=1.0)
    started = time.monotonic()
    with pytest.raises(ccxt.RequestTimeout):
        ex.create_order("ETH/USDT", "market", "buy", 0.01, params={"clientOrderId": "nt-2"})
    assert time.monotonic() - started < 0.9
    assert [o.client_order_id for o in fake.orders] == ["nt-2"]
    assert ex.fetch_order(None, "ETH/USDT", params={"origClientOrderId": "nt-2"})["status"] == "closed"
    assert fake.hits["/api/v3/order"] == 2


def test_unknown_order_and_missing_key(fake: FakeBinance) -> None:
    ex = fake.exchange()
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        ex.fetch_order("42", "BTC/USDT")
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):
        ex.cancel_order("42", "BTC/USDT")
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        fake.exchange(secret="wrong").fetch_balance()
    anonymous = fake.exchange(api_key="", secret="")
    with pytest.raises(ccxt.AuthenticationError):
        anonymous.fetch_balance()  # ccxt itself refuses to sign without keys


def test_limit_orders_partial_fills_and_balances(fake: FakeBinance) -> None:
    ex = fake.exchange()
    fake.fill_ratios.append(0.5)
    market = ex.create_order("BTC/USDT", "market", "buy", 0.01, params={"clientOrderId": "nt-3"})
    assert (market["status"], market["filled"], market["remaining"]) == ("expired", 0.005, 0.005)

    limit = ex.create_order("BTC/USDT", "limit", "buy", 0.01, 50_000, params={"clientOrderId": "nt-4"})
    assert limit["status"] == "open"
    assert [o["clientOrderId"] for o in ex.fetch_open_orders("BTC/USDT")] == ["nt-4"]
    assert ex.fetch_balance()["USDT"]["used"] == 500.0
    fake.fill_order(client_order_id="nt-4", qty="0.004")
    assert ex.fetch_order(limit["id"], "BTC/USDT")["filled"] == 0.004
    assert ex.cancel_order(limit["id"], "BTC/USDT")["status"] == "canceled"
    balance = ex.fetch_balance()
    assert balance["USDT"]["used"] == 0.0
    assert balance["BTC"]["free"] == pytest.approx((0.005 + 0.004) * 0.999)
    assert len(ex.fetch_orders("BTC/USDT")) == 2 and len(ex.fetch_my_trades("BTC/USDT")) == 2


def test_faults_can_target_one_method(fake: FakeBinance) -> None:
    ex = fake.exchange()
    fake.fail_next("/api/v3/order", status=503, method="GET")
    ex.create_order("SOL/USDT", "market", "buy", 1, params={"clientOrderId": "nt-5"})  # POST unaffected
    with pytest.raises(ccxt.ExchangeNotAvailable):
        ex.fetch_order(None, "SOL/USDT", params={"origClientOrderId": "nt-5"})
    assert ex.fetch_order(None, "SOL/USDT", params={"origClientOrderId": "nt-5"})["status"] == "closed"


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, whatever the env says


def _get(fake: FakeBinance, path: str, headers: dict[str, str] | None = None) -> tuple[int, object]:
    request = urllib.request.Request(fake.base_url + path, headers=headers or {})
    try:
        with _NO_PROXY.open(request, timeout=2) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        body = err.read()
        return err.code, json.loads(body) if body.startswith(b"{") else body.decode()


def test_signed_endpoints_need_key_and_signature_and_klines_follow_binance(fake: FakeBinance) -> None:
    assert _get(fake, "/api/v3/account?timestamp=1&signature=x") == (
        401, {"code": -2014, "msg": "API-key format invalid."})
    status, body = _get(fake, "/api/v3/account?timestamp=1", {"X-MBX-APIKEY": "fake-key"})
    assert status == 400 and body["code"] == -1102 and "signature" in body["msg"]  # type: ignore[index]
    assert _get(fake, "/sapi/v1/capital/config/getall")[0] == 404
    # No startTime: the newest `limit` bars, the forming one last.
    status, rows = _get(fake, "/api/v3/klines?symbol=BTCUSDT&interval=1h&limit=3")
    hours = [1767261600000, 1767265200000, 1767268800000]  # 10:00, 11:00, 12:00 (forming) UTC
    assert status == 200 and [r[0] for r in rows] == hours  # type: ignore[union-attr, index]
    assert _get(fake, "/api/v3/klines?symbol=NOPE&interval=1m")[1] == {"code": -1121, "msg": "Invalid symbol."}
