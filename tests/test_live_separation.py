"""Paper and live money never mix (issue 7, item 2): a live engine never starts on paper state,
and a live account is reconciled against the exchange's own balances and open orders at every
tick — it never sells what the exchange does not hold, and a mismatch stops entries and alerts.
The exchange is the loopback fake Binance, driven through the real ccxt client."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from nettrace_dagster.audit import read_audit
from nettrace_dagster.coordinator.core import Coordinator
from nettrace_dagster.execution.ccxt_broker import CcxtBroker
from nettrace_dagster.execution.engine import ExecutionEngine
from nettrace_dagster.execution.intents import Intent
from nettrace_dagster.execution.paper import PaperBroker
from nettrace_dagster.ledger.accounting import AccountModeError
from nettrace_dagster.ledger.db import Ledger
from tests.fakes.binance import FakeBinance

KEY, SECRET = "test-key", "test-secret"


@pytest.fixture
def fake() -> Iterator[FakeBinance]:
    with FakeBinance(api_key=KEY, api_secret=SECRET) as server:
        yield server


def live_engine(fake: FakeBinance, ledger: Ledger, audit: Path, account: str = "live") -> ExecutionEngine:
    broker = CcxtBroker("binance", KEY, SECRET, live_trading=True, base_url=fake.base_url,
                        api_budget=Coordinator(ledger).api_call, timeout_ms=2000, sleep=lambda s: None)
    return ExecutionEngine(ledger, broker, audit_dir=audit, account=account)


def posts(fake: FakeBinance) -> list[dict[str, str]]:
    return [params for m, path, params in fake.calls if m == "POST" and path == "/api/v3/order"]


def test_live_never_starts_on_paper_state(fake: FakeBinance, tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    paper = ExecutionEngine(ledger, PaperBroker(ledger))
    assert paper.submit(Intent("s", "BTC-USDT", "entry", fake.price("BTCUSDT"), "bar-1", 0.9, 3)).status == "filled"
    with pytest.raises(AccountModeError, match="holds paper money"):
        live_engine(fake, ledger, tmp_path / "audit", account="main")
    live = live_engine(fake, ledger, tmp_path / "audit")
    st = live.status()
    assert st["positions"] == [] and st["equity"] == 100.0 and st["mode"] == "live"
    out = live.submit(Intent("s", "BTC-USDT", "exit", fake.price("BTCUSDT"), "bar-2"))
    assert out.status == "none" and posts(fake) == []  # the paper position is not the live account's
    assert paper.status()["positions"]  # and the paper account still has it


def test_a_ledger_holding_more_than_the_exchange_stops_entries_and_never_oversells(
        fake: FakeBinance, tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    eng = live_engine(fake, ledger, tmp_path / "audit")
    assert eng.reconcile().venue_problems == []
    btc = fake.price("BTCUSDT")
    assert eng.submit(Intent("s", "BTC-USDT", "entry", btc, "bar-1", 0.9, 3)).status == "filled"
    fake.account.free["BTC"] = Decimal(0)  # someone emptied the wallet behind the ledger's back
    problems = eng.reconcile().venue_problems
    assert problems and "the ledger holds" in problems[0] and "BTC" in problems[0]
    marks = {"BTC-USDT": btc}
    entry = eng.submit(Intent("t", "ETH-USDT", "entry", fake.price("ETHUSDT"), "bar-2", 0.9, 3), marks)
    assert not entry.approved and any("does not match the exchange" in r for r in entry.reasons)
    before = len(posts(fake))
    out = eng.submit(Intent("s", "BTC-USDT", "exit", btc, "bar-3"))
    assert out.status == "none" and len(posts(fake)) == before  # nothing sold that is not there
    st = eng.status()
    assert not st["rules"]["entries_allowed"] and "exchange" in st["rules"]["blocked_by"][-1]
    alerts = [r for r in read_audit(tmp_path / "audit", "conflict_log") if r["decision"] == "venue_mismatch"]
    assert alerts and alerts[0]["severity"] == "P1"
    fake.account.free["BTC"] = Decimal("1")  # it is back (and more): they agree again
    assert eng.reconcile().venue_problems == []
    assert eng.submit(Intent("t", "ETH-USDT", "entry", fake.price("ETHUSDT"), "bar-4", 0.9, 3), marks).approved


def test_an_unknown_open_order_at_the_exchange_is_a_mismatch(fake: FakeBinance, tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    eng = live_engine(fake, ledger, tmp_path / "audit")
    outsider = fake.exchange(api_key=KEY, secret=SECRET)
    outsider.create_order("BTC/USDT", "limit", "buy", 0.001, round(fake.price("BTCUSDT") * 0.5, 2))
    problems = eng.reconcile().venue_problems
    assert problems and "open order(s) at the exchange the ledger does not know" in problems[0]


def test_a_ledger_with_more_cash_than_the_exchange_is_a_mismatch(tmp_path: Path) -> None:
    with FakeBinance(api_key=KEY, api_secret=SECRET, balances={"USDT": "40", "BTC": "0"}) as fake:
        eng = live_engine(fake, Ledger(f"sqlite:///{tmp_path / 'ledger.db'}"), tmp_path / "audit")
        problems = eng.reconcile().venue_problems
    assert problems and "100.00 USDT in cash, the exchange 40.00" in problems[0]
