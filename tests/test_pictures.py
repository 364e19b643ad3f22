"""Pictures that tell the story: the account's equity in market time (from the starting capital,
entries, exits and HARDSTOP at their bars' times), backtests against buy-and-hold, and the bar
time an order was decided on, recorded in the ledger (an older ledger gains the column)."""

from __future__ import annotations

import base64
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sqlalchemy import select

from nettrace_dagster.charts import equity_panels, equity_story
from nettrace_dagster.coordinator.core import Coordinator
from nettrace_dagster.execution.engine import ExecutionEngine
from nettrace_dagster.execution.paper import PaperBroker
from nettrace_dagster.ledger.db import Ledger
from nettrace_dagster.ledger.models import Order
from nettrace_dagster.trading.portfolio import market_equity_curve
from nettrace_dagster.trading.trader import Trader
from tests.pre_alembic import later_table_names
from tests.scripted import Script, bars, install


def _trader(tmp: Path, catch_up: int = 50) -> Trader:
    ledger = Ledger(f"sqlite:///{tmp / 'ledger.db'}")
    return Trader(ExecutionEngine(ledger, PaperBroker(ledger)), Coordinator(ledger, audit_dir=tmp / "audit"),
                  [("scripted", {})], catch_up_bars=catch_up)


def _png(md: str) -> bytes:
    return base64.b64decode(re.search(r"base64,([^)]*)\)", md).group(1))


@pytest.fixture
def traded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Trader, dict[str, pl.DataFrame]]:
    """A scripted account: BTC bought on bar 1, sold on bar 3, bought again on bar 5 and held."""
    install(monkeypatch, Script(entries={"BTC-USDT": {1, 5}}, exits={"BTC-USDT": {3}}))
    t = _trader(tmp_path)
    candles = {"BTC-USDT": bars("BTC-USDT", [100.0, 100.0, 110.0, 120.0, 120.0, 100.0, 90.0, 95.0])}
    t.tick(candles)
    return t, candles


def test_the_market_time_curve_starts_at_the_capital_on_the_first_traded_bar(traded) -> None:
    t, candles = traded
    ts = candles["BTC-USDT"]["timestamp"]
    story = market_equity_curve(t.engine.ledger, t.engine.account, candles)
    curve = story.curve
    assert story.principal == t.engine.status()["principal"] and story.unplaced == 0
    # The first point: the starting capital at the first traded bar's time (bar 1), not a tick's.
    assert curve["timestamp"][0] == ts[1] and curve["equity"][0] == pytest.approx(story.principal)
    assert curve["cash"][0] == story.principal and curve["positions_value"][0] == 0
    # Every point is a bar time within the candles' span; today's wall clock is nowhere.
    assert set(curve["timestamp"][1:].to_list()) == set(ts[1:].to_list())
    assert curve["timestamp"].is_sorted() and curve["timestamp"].max() == ts.max()
    assert curve["timestamp"].dt.date().max() < datetime.now(UTC).date()
    # It ends where the ledger says the account is (cash + positions at the last close).
    assert curve["equity"][-1] == pytest.approx(t.engine.status()["equity"], rel=1e-9)
    # Valued at each bar's close in between: holding bars 1..3 the equity follows BTC's rise.
    held = curve.filter(pl.col("timestamp").is_in([ts[1], ts[2]]))["positions_value"].to_list()
    assert held[-1] == pytest.approx(held[-2] * 110 / 100)
    trades = story.trades
    assert trades.select("timestamp", "kind").rows() == [(ts[1], "entry"), (ts[3], "exit"), (ts[5], "entry")]
    assert story.hardstop is None


def test_orders_record_their_bar_time(traded) -> None:
    t, candles = traded
    with t.engine.ledger.read() as s:
        bar_ms = [o.bar_ms for o in s.scalars(select(Order).order_by(Order.id))]
    ms = candles["BTC-USDT"]["timestamp"].dt.epoch("ms").to_list()
    assert bar_ms == [ms[1], ms[3], ms[5]]


def test_hardstop_is_marked_in_market_time(traded, tmp_path: Path) -> None:
    t, candles = traded
    t.engine.set_hardstop(True, "drill")
    story = market_equity_curve(t.engine.ledger, t.engine.account, candles)
    assert story.hardstop == candles["BTC-USDT"]["timestamp"][-1] and story.hardstop_reason == "drill"
    curve, trades = story.curve, story.trades
    entries, exits = trades.filter(pl.col("kind") == "entry"), trades.filter(pl.col("kind") == "exit")
    md = equity_story(curve["timestamp"].to_list(), curve["equity"].to_numpy(), story.principal, "paper equity",
                      (entries["timestamp"].to_list(), entries["equity"].to_list()),
                      (exits["timestamp"].to_list(), exits["equity"].to_list()), story.hardstop, "HARDSTOP drill")
    png = _png(md.value)
    assert png.startswith(b"\x89PNG")
    (tmp_path / "story.png").write_bytes(png)


def test_an_account_that_never_traded_has_an_empty_curve(tmp_path: Path) -> None:
    t = _trader(tmp_path)
    story = market_equity_curve(t.engine.ledger, t.engine.account, {})
    assert story.curve.height == 0 and story.trades.height == 0 and story.principal > 0


def test_an_old_ledger_gains_the_bar_time_column(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, Script(entries={"BTC-USDT": {1}}, exits={}))
    t = _trader(tmp_path)
    candles = {"BTC-USDT": bars("BTC-USDT", [100.0, 100.0, 101.0])}
    t.tick(candles)
    t.engine.ledger.engine.dispose()
    with sqlite3.connect(tmp_path / "ledger.db") as conn:  # as the previous release wrote it
        conn.execute("ALTER TABLE orders DROP COLUMN bar_ms")
        conn.execute("DROP TABLE alembic_version")  # that release had no schema revisions either
        for table in later_table_names():  # nor the tables revisions added since
            conn.execute(f"DROP TABLE {table}")
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    with ledger.read() as s:
        assert [o.bar_ms for o in s.scalars(select(Order))] == [None]
    # The bar is found again from the order's client order id (keyed by the bar's time) ...
    story = market_equity_curve(ledger, "main", candles)
    assert story.unplaced == 0 and story.trades["timestamp"].to_list() == [candles["BTC-USDT"]["timestamp"][1]]
    assert story.curve["equity"][0] == story.principal
    # ... and never guessed: without its bar among the candles, the fill is counted, not placed.
    story = market_equity_curve(ledger, "main", {"BTC-USDT": candles["BTC-USDT"].slice(2)})
    assert story.unplaced == 1 and story.curve.height == 0


def test_backtest_panels_draw_buy_and_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    import nettrace_dagster.charts as charts

    drawn: list[tuple[str, np.ndarray]] = []
    real = charts.pyplot().Axes.plot

    def spy(ax, x, y, *args, **kwargs):
        drawn.append((kwargs.get("label", ""), np.asarray(y)))
        return real(ax, x, y, *args, **kwargs)

    monkeypatch.setattr(charts.pyplot().Axes, "plot", spy)
    x = list(range(4))
    close = np.array([50.0, 55.0, 45.0, 60.0])
    md = equity_panels({"BTC-USDT": (x, {"momentum": np.array([1.0, 1.01, 0.99, 1.02])})}, "equity / initial",
                       "backtests", buy_and_hold={"BTC-USDT": close})
    assert _png(md.value).startswith(b"\x89PNG")
    hold = dict(drawn)["buy & hold"]
    assert hold.tolist() == pytest.approx([1.0, 1.1, 0.9, 1.2])  # close / first close, from the same start
