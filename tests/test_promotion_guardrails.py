"""Guardrails on the FULL set (each trigger), rollback by hand and by the sensor's job, and the
trader applying a set's take-profit tiers and trailing stop."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from nettrace_dagster.audit import read_audit
from nettrace_dagster.ledger.db import Ledger
from nettrace_dagster.ledger.models import Capital, EquityMark, Order
from nettrace_dagster.paramsets import in_force
from nettrace_dagster.promotion import guardrails
from nettrace_dagster.promotion.config import PromotionConfig
from nettrace_dagster.trading.trader import Trader
from tests.promo_helpers import install_param_script, market, param_set, world

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC
GOOD = param_set([1], [5])


def _promoted(tmp: Path, marks: list[float], baseline_sharpe: float = 0.0) -> Ledger:
    """An account whose FULL set was promoted at T0 with $100, then marked at `marks` (one a minute)."""
    ledger = Ledger(f"sqlite:///{tmp / 'ledger.db'}", "NORMAL")  # no fsync: tests, not money
    with ledger.tx() as s:
        in_force.activate_in(s, param_set([2], [4]), by="test", reason="first", now=T0 - 86400)
        in_force.activate_in(s, GOOD, by="test", reason="second", candidate_id=None, now=T0,
                             baseline={"sharpe": baseline_sharpe, "equity_at_activation": 100.0})
        s.add(Capital(account="main", principal=100.0, cash=marks[-1], peak_equity=max(marks), day="2026-01-01",
                      day_start_equity=100.0, last_equity=marks[-1], updated_at=T0))
        for i, eq in enumerate(marks):
            s.add(EquityMark(account="main", ts=T0 + 60 * (i + 1), equity=eq, cash=eq, positions_value=0.0,
                             drawdown=0.0, daily_pnl=eq - 100.0))
    return ledger


def test_no_trigger_on_a_healthy_set(tmp_path: Path) -> None:
    ledger = _promoted(tmp_path, [100.0, 100.5, 101.0, 100.8])
    out = guardrails.check(ledger, PromotionConfig(), now=T0 + 600)
    assert out["guarded"] and out["triggers"] == []


def test_the_days_loss_over_the_limit_triggers(tmp_path: Path) -> None:
    ledger = _promoted(tmp_path, [100.0, 97.0, 94.9])  # $5.10 lost since activation today
    out = guardrails.check(ledger, PromotionConfig(max_drawdown=0.5), now=T0 + 600)
    assert out["figures"]["day_loss"] == pytest.approx(5.1)
    assert out["triggers"] == ["day's loss $5.10 > $5.00"]
    assert guardrails.check(_promoted(tmp_path / "b", [100.0, 95.1]), PromotionConfig(max_drawdown=0.5),
                            now=T0 + 600)["triggers"] == []


def test_drawdown_over_eight_percent_triggers(tmp_path: Path) -> None:
    ledger = _promoted(tmp_path, [100.0, 110.0, 101.0])  # 8.18 % below the 110 peak, but no day's loss
    out = guardrails.check(ledger, PromotionConfig(), now=T0 + 600)
    assert out["figures"]["drawdown"] == pytest.approx(1 - 101 / 110)
    assert len(out["triggers"]) == 1 and out["triggers"][0].startswith("drawdown 8.2%")


def test_a_sharpe_drop_of_more_than_thirty_percent_triggers(tmp_path: Path) -> None:
    marks = [100.0 + 0.1 * i + (0.05 if i % 2 else 0.0) for i in range(40)]
    rets = [b / a - 1 for a, b in zip(marks, marks[1:], strict=False)]
    mean = sum(rets) / len(rets)
    sd = (sum((r - mean) ** 2 for r in rets) / (len(rets) - 1)) ** 0.5
    sharpe = mean / sd  # the oracle: the same mark-to-mark Sharpe by hand
    config = PromotionConfig(max_drawdown=0.5)
    ok = guardrails.check(_promoted(tmp_path / "ok", marks, baseline_sharpe=sharpe / 0.71), config, now=T0 + 9000)
    assert ok["figures"]["sharpe"] == pytest.approx(sharpe) and ok["triggers"] == []
    bad = guardrails.check(_promoted(tmp_path / "bad", marks, baseline_sharpe=sharpe / 0.69), config, now=T0 + 9000)
    assert len(bad["triggers"]) == 1 and "Sharpe" in bad["triggers"][0]
    few = guardrails.check(_promoted(tmp_path / "few", marks[:10], baseline_sharpe=99.0), config, now=T0 + 9000)
    assert few["triggers"] == []  # too few marks to judge a Sharpe


def test_rollback_restores_the_previous_set_audits_and_alerts(tmp_path: Path, caplog) -> None:
    from nettrace_dagster.notify import reset_rate_limit

    reset_rate_limit()  # another test's identical alert must not hold this one back
    ledger = _promoted(tmp_path, [100.0, 94.0])
    before = in_force.current(ledger)
    out = guardrails.rollback(ledger, by="guardrails", reason="day's loss", audit_dir=tmp_path / "audit",
                              expected_in_force_id=before.id)
    now = in_force.current(ledger)
    assert out["rolled_back"] and now.strategies == param_set([2], [4])["strategies"] and now.kind == "rollback"
    assert not guardrails.check(ledger, PromotionConfig(), now=T0 + 600)["guarded"]  # no cascade
    again = guardrails.rollback(ledger, by="guardrails", reason="x", expected_in_force_id=before.id)
    assert not again["rolled_back"]  # a repeated run changes nothing
    log = [r for r in read_audit(tmp_path / "audit", "param_optimization") if r["event"] == "params_rollback"]
    assert log and log[0]["replaced_in_force_id"] == before.id and log[0]["by"] == "guardrails"
    [alert] = list(read_audit(tmp_path / "audit", "webhook_audit_trail"))  # through the notifier
    assert alert["severity"] == "P1" and "rolled back" in alert["title"]
    assert any("P1 parameters rolled back" in r.getMessage() for r in caplog.records)
    guardrails.rollback(ledger, by="cli", reason="again")  # back to the defaults
    with pytest.raises(in_force.NothingToRollBack):
        guardrails.rollback(ledger, by="cli", reason="once more")


def _trader_with(tmp_path, monkeypatch, **portfolio) -> tuple[Trader, Ledger]:
    install_param_script(monkeypatch)
    ledger, engine, coord, _, _ = world(tmp_path)
    ps = param_set([1], [], **portfolio)
    return Trader(engine, coord, list(ps["strategies"].items()), 50, portfolio=ps["portfolio"]), ledger


def _sells(ledger: Ledger) -> list[tuple[float, float]]:
    with ledger.read() as s:
        return [(o.filled_qty, o.avg_price) for o in s.scalars(select(Order).where(
            Order.side == "sell").order_by(Order.id))]


def test_trailing_stop_exits_when_the_low_falls_below_the_peak(tmp_path: Path, monkeypatch) -> None:
    t, ledger = _trader_with(tmp_path, monkeypatch, trailing_stop=0.05)
    # Bought at bar 1's close (100). Peak from completed bars: 110 (bar 3's high); bar 5's low 104
    # ≤ 110 × 0.95 = 104.5: exit everything at bar 5's close.
    t.tick(market([100.0, 100.0, 105.0, 110.0, 106.0, 104.0, 104.0]))
    [(qty, price)] = _sells(ledger)
    assert price == pytest.approx(104.0 * 0.9995)
    bought = 25 / 1.001 / (100 * 1.0005)
    assert qty == pytest.approx(bought)


def test_take_profit_tiers_sell_their_fractions(tmp_path: Path, monkeypatch) -> None:
    t, ledger = _trader_with(tmp_path, monkeypatch, tp0=0.02, tp1=0.05)
    t.tick(market([100.0, 100.0, 101.0, 103.0, 104.0, 106.0, 106.0]))
    sells = _sells(ledger)
    bought = 25 / 1.001 / (100 * 1.0005)
    entry = 100 * 1.0005
    # tp0 at entry × 1.02 = 102.05: bar 3 (high 103) sells 25 %; tp1 (the last tier) at 105.05: bar 5 sells the rest.
    assert entry * 1.02 < 103.0 and entry * 1.05 < 106.0 and entry * 1.05 > 104.0
    assert [q for q, _ in sells] == pytest.approx([0.25 * bought, 0.75 * bought])
    assert [p for _, p in sells] == pytest.approx([103.0 * 0.9995, 106.0 * 0.9995])
    assert t.engine.status()["positions"] == []


def test_trade_fraction_multiplier_and_reserve_size_entries(tmp_path: Path, monkeypatch) -> None:
    t, ledger = _trader_with(tmp_path, monkeypatch, trade_fraction_mult=0.5)
    t.tick(market([100.0, 100.0, 100.0]))
    with ledger.read() as s:
        [order] = s.scalars(select(Order)).all()
    assert order.notional == pytest.approx(12.5 / 1.001)  # half of the 25 % position budget
    t2, ledger2 = _trader_with(tmp_path / "r", monkeypatch, min_reserve_usd=96.0)
    report = t2.tick(market([100.0, 100.0, 100.0]))
    [d] = report.decisions
    assert not d["approved"] and "minimum" in d["reasons"][0]  # $4 above the reserve: below the $5 minimum


def test_a_stricter_fire_threshold_tightens_rule3(tmp_path: Path, monkeypatch) -> None:
    t, _ = _trader_with(tmp_path, monkeypatch, fire_threshold=0.55, clone_threshold=0.5, promote_threshold=1.5)
    assert t.engine.rules.fire_win_rate == 0.55 and t.engine.rules.clone_min_sharpe == 1.5
    assert t.engine.rules.clone_win_rate == 0.60  # a looser clone threshold is ignored
