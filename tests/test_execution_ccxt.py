"""The ccxt broker against a loopback fake Binance: 429 / 5xx / timeouts / partial fills never
duplicate an order, and nothing real is ever placed without both switches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nettrace_dagster.coordinator.core import Coordinator
from nettrace_dagster.execution.broker import LiveTradingDisabled
from nettrace_dagster.execution.ccxt_broker import CcxtBroker
from nettrace_dagster.execution.engine import ExecutionEngine
from nettrace_dagster.execution.intents import Intent
from nettrace_dagster.execution.resource import ExecutionResource
from nettrace_dagster.ledger.db import Ledger
from nettrace_dagster.market.schema import MarketDataError
from nettrace_dagster.settings import Settings, SettingsError, load_settings
from tests.fakes.binance import FakeBinance

KEY, SECRET = "test-key", "test-secret"


@pytest.fixture
def fake() -> Iterator[FakeBinance]:
    with FakeBinance(api_key=KEY, api_secret=SECRET) as server:
        yield server


@pytest.fixture
def engine(fake: FakeBinance, tmp_path: Path) -> ExecutionEngine:
    return make_engine(fake, tmp_path)


def make_engine(fake: FakeBinance, tmp: Path) -> ExecutionEngine:
    ledger = Ledger(f"sqlite:///{tmp / 'ledger.db'}")
    coord = Coordinator(ledger, audit_dir=tmp / "audit")
    broker = CcxtBroker("binance", KEY, SECRET, live_trading=True, base_url=fake.base_url,
                        api_budget=coord.api_call, timeout_ms=400, sleep=lambda s: None)
    return ExecutionEngine(ledger, broker, audit_dir=tmp / "audit")


def entry(fake: FakeBinance, key: str = "bar-1") -> Intent:
    return Intent("s", "BTC-USDT", "entry", fake.price("BTCUSDT"), key, 0.9, 3)


def posts(fake: FakeBinance) -> int:
    return sum(1 for m, path, _ in fake.calls if m == "POST" and path == "/api/v3/order")


def test_refuses_without_the_live_switch_or_keys(fake: FakeBinance, tmp_path: Path) -> None:
    with pytest.raises(LiveTradingDisabled, match="NETTRACE_LIVE_TRADING"):
        CcxtBroker("binance", KEY, SECRET, live_trading=False, base_url=fake.base_url)
    with pytest.raises(LiveTradingDisabled, match="API_KEY") as err:
        CcxtBroker("binance", "", SECRET, live_trading=True, base_url=fake.base_url)
    assert SECRET not in str(err.value)
    paper = ExecutionResource.from_settings(settings_at(tmp_path, NETTRACE_EXCHANGE_API_KEY=KEY,
                                                        NETTRACE_EXCHANGE_API_SECRET=SECRET))
    assert paper.engine().broker.name == "paper"  # the default never reaches an exchange, keys or not
    assert fake.calls == []


def settings_at(home: Path, **env: str) -> Settings:
    return load_settings({"NETTRACE_HOME": str(home), **env})


def live_env(fake: FakeBinance, **env: str) -> dict[str, str]:
    return {"NETTRACE_LIVE_TRADING": "1", "NETTRACE_EXCHANGE_API_KEY": KEY, "NETTRACE_EXCHANGE_API_SECRET": SECRET,
            "NETTRACE_CCXT_BASE_URL": fake.base_url, **env}


def test_the_environment_switch_trades_a_separate_live_account(fake: FakeBinance, tmp_path: Path) -> None:
    """Paper money is account "main", live money account "live": one ledger never mixes them."""
    paper = ExecutionResource.from_settings(settings_at(tmp_path))
    live = ExecutionResource.from_settings(settings_at(tmp_path, **live_env(fake)))
    assert (paper.account, live.account) == ("main", "live")
    assert paper.submit(Intent("s", "BTC-USDT", "entry", fake.price("BTCUSDT"), "bar-1", 0.9, 3)).status == "filled"
    d = live.submit(Intent("s", "BTC-USDT", "entry", fake.price("BTCUSDT"), "bar-1", 0.9, 3, account="live"))
    assert d.status == "filled" and len(fake.orders) == 1  # only the live account's order reached the venue
    assert live.status()["account"] == "live" and live.status()["mode"] == "live"
    assert len(live.status()["positions"]) == 1 and len(paper.status()["positions"]) == 1
    assert paper.status()["mode"] == "paper"


def test_hardstop_and_status_need_only_the_ledger(fake: FakeBinance, tmp_path: Path) -> None:
    """An operator stops trading with the keys missing and the exchange unreachable."""
    no_keys = ExecutionResource.from_settings(settings_at(tmp_path, NETTRACE_LIVE_TRADING="1",
                                                          NETTRACE_CCXT_BASE_URL="http://127.0.0.1:9"))
    result = no_keys.hardstop(True, "operator", by="test")
    assert result.on and result.changed
    assert no_keys.status()["hardstop"]["on"] and no_keys.status()["account"] == "live"
    with pytest.raises(LiveTradingDisabled, match="API_KEY"):  # trading itself still refuses without keys
        no_keys.engine()
    with_keys = ExecutionResource.from_settings(settings_at(tmp_path, **live_env(fake)))
    assert with_keys.status()["hardstop"]["on"]  # the same live account, still stopped
    assert fake.calls == []  # none of it asked the venue anything


def test_the_ccxt_base_url_is_loopback_only(tmp_path: Path) -> None:
    """With keys set the broker signs requests and sends the API key to this URL."""
    for url in ("https://api.example.com", "http://10.0.0.8:80", "http://localhost.evil.com:80",
                "http://user:pw@127.0.0.1:9", "file:///etc/passwd"):
        with pytest.raises(SettingsError, match="NETTRACE_CCXT_BASE_URL") as err:
            ExecutionResource.from_settings(settings_at(tmp_path, NETTRACE_CCXT_BASE_URL=url))
        assert "pw" not in str(err.value)
        with pytest.raises(MarketDataError, match="loopback"):
            CcxtBroker("binance", KEY, SECRET, live_trading=True, base_url=url)


def test_the_resource_takes_no_config_words(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="from_settings") as err:
        ExecutionResource(ledger_url="postgresql://u:s3cret@127.0.0.1/x", live_trading=True)  # type: ignore[call-arg]
    assert "s3cret" not in str(err.value)


def test_a_filled_buy_and_sell_book_the_venue_fees(fake: FakeBinance, engine: ExecutionEngine) -> None:
    d = engine.submit(entry(fake))
    assert d.approved and d.status == "filled", d.reasons
    [order] = fake.orders
    assert order.client_order_id == d.client_order_id and order.type == "MARKET"
    pos = engine.status()["positions"][0]
    commission = float(order.fills[0]["commission"])  # Binance takes a buyer's fee in the base asset
    assert pos["qty"] == pytest.approx(float(order.executed_qty) - commission)
    out = engine.submit(Intent("s", "BTC-USDT", "exit", fake.price("BTCUSDT"), "bar-2"))
    assert out.status == "filled" and len(fake.orders) == 2
    st = engine.status()
    assert st["positions"] == [] and st["strategies"][0]["trades"] == 1
    assert st["cash"] == pytest.approx(float(fake.account.free["USDT"]) - 10_000 + 100, abs=1e-6)


@pytest.mark.parametrize("fault", [dict(status=429, times=2), dict(status=503), dict(status=400, code=-1003)])
def test_throttling_and_unavailability_are_retried_under_the_same_id(fake, engine, fault) -> None:
    fake.fail_next("/api/v3/order", method="POST", **fault)
    d = engine.submit(entry(fake))
    assert d.status == "filled" and len(fake.orders) == 1
    ids = {p["newClientOrderId"] for m, path, p in fake.calls if m == "POST" and path == "/api/v3/order"}
    assert ids == {d.client_order_id} and posts(fake) == 1 + fault.get("times", 1)


@pytest.mark.parametrize("fault", [dict(delay=1.0), dict(status=500, code=-1000), dict()])
def test_unknown_outcomes_wait_for_reconciliation(fake, engine, fault) -> None:
    fake.fail_next("/api/v3/order", method="POST", **fault)  # timeout / unknown error / hang-up
    d = engine.submit(entry(fake))
    assert d.approved and d.status == "unknown" and fake.orders == []
    report = engine.reconcile()
    assert report.resent == [d.client_order_id]
    assert len(fake.orders) == 1 and engine.status()["orders"]["by_status"] == {"filled": 1}


def test_accepted_then_timed_out_is_found_not_resent(fake, engine) -> None:
    fake.accept_then_timeout("/api/v3/order", delay=1.0)
    d = engine.submit(entry(fake))
    assert d.status == "unknown" and len(fake.orders) == 1
    report = engine.reconcile()
    assert report.booked == [d.client_order_id] and report.resent == []
    assert posts(fake) == 1 and len(fake.orders) == 1
    assert engine.submit(entry(fake)).duplicate and posts(fake) == 1
    assert engine.status()["orders"]["by_status"] == {"filled": 1}


def test_duplicate_reply_after_a_lost_ack_is_booked_once(fake, engine, tmp_path: Path) -> None:
    fake.accept_then_timeout("/api/v3/order", delay=1.0)
    d = engine.submit(entry(fake))
    engine.send(d.client_order_id)  # a second sender: the venue says "Duplicate order sent."
    assert len(fake.orders) == 1
    assert engine.status()["orders"]["by_status"] == {"filled": 1}
    assert len(engine.status()["positions"]) == 1


def test_partial_fill_books_what_filled_and_frees_the_rest(fake, engine) -> None:
    fake.fill_ratios.append(0.5)
    d = engine.submit(entry(fake))
    [order] = fake.orders
    assert order.status == "EXPIRED" and d.status == "expired"
    assert d.filled_qty == pytest.approx(float(order.executed_qty)) and d.filled_qty < d.qty
    st = engine.status()
    assert st["reservations"]["active"] == 0 and st["positions"][0]["qty"] > 0
    engine.reconcile()
    assert len(fake.orders) == 1  # a partial fill is never "completed" by a second order


def test_every_request_is_counted_in_the_shared_api_budget(fake, engine, tmp_path) -> None:
    engine.submit(entry(fake))
    coord = Coordinator(engine.ledger)
    calls = coord.snapshot()["api_calls"]["binance"]["hour"]
    assert calls == sum(fake.hits.values()) >= 2  # markets + order (+ trades where needed)
