"""The capital rules: their numbers, tighten-only configuration, and each rule's judgement."""

from __future__ import annotations

import numpy as np
import pytest

from nettrace_dagster import rules as R
from nettrace_dagster.rules import AccountSnapshot, Rules, RulesError, StrategyRecord, load_rules


def acct(**kw: float | bool) -> AccountSnapshot:
    base = {"equity": 100.0, "cash": 100.0, "principal": 100.0, "peak_equity": 100.0, "day_start_equity": 100.0}
    return AccountSnapshot(**{**base, **kw})


def test_the_seed_numbers() -> None:
    r = Rules()
    assert (r.equity_floor_usd, r.max_drawdown, r.max_daily_loss_usd, r.principal_lock_gain) == (10.0, 0.30, 5.0, 1.0)
    assert (r.min_confidence, r.min_confirmations, r.min_win_rate) == (0.70, 2, 0.40)
    assert R.REINVEST_MIN <= r.reinvest_fraction <= R.REINVEST_MAX == 0.35 and R.REINVEST_MIN == 0.20


@pytest.mark.parametrize(("name", "value"), [
    ("max_drawdown", 0.5), ("equity_floor_usd", 5), ("max_daily_loss_usd", 6), ("min_confidence", 0.6),
    ("min_confirmations", 1), ("min_win_rate", 0.3), ("win_rate_min_trades", 20), ("principal_lock_gain", 2.0),
    ("max_position_fraction", 0.5), ("min_reserve_fraction", 0.05), ("clone_win_rate", 0.5),
    ("fire_win_rate", 0.3), ("fire_min_trades", 50)])
def test_loosening_any_rule_is_refused_with_one_line(name: str, value: float) -> None:
    with pytest.raises(RulesError) as err:
        Rules().tightened(**{name: value})
    msg = str(err.value)
    assert "\n" not in msg and "loosens" in msg and R.rule_env_names()[name] in msg


def test_tightening_is_accepted() -> None:
    r = Rules().tightened(max_drawdown=0.2, equity_floor_usd=20, max_daily_loss_usd=3, min_confidence=0.8,
                          min_confirmations=3, min_win_rate=0.5, win_rate_min_trades=5, reinvest_fraction=0.2)
    assert (r.max_drawdown, r.equity_floor_usd, r.min_confirmations, r.win_rate_min_trades) == (0.2, 20.0, 3, 5)
    assert isinstance(r.min_confirmations, int)


@pytest.mark.parametrize("change", [{"reinvest_fraction": 0.5}, {"reinvest_fraction": 0.1}, {"max_drawdown": 0},
                                    {"min_confidence": 1.5}, {"min_confirmations": 2.5}, {"max_drawdown": "abc"},
                                    {"min_confidence": float("nan")}, {"no_such_rule": 1}])
def test_out_of_band_or_nonsense_is_refused(change: dict) -> None:
    with pytest.raises(RulesError):
        Rules().tightened(**change)


def test_load_rules_reads_the_environment_and_the_seed_name() -> None:
    r = load_rules(env={"PARAM_OPT_MAX_DAILY_LOSS_USD": "2.5", "NETTRACE_RULE_MAX_DRAWDOWN": "0.25"})
    assert (r.max_daily_loss_usd, r.max_drawdown) == (2.5, 0.25)
    assert load_rules(env={"PARAM_OPT_MAX_DAILY_LOSS_USD": "5.0"}) == Rules()  # the default is no change
    with pytest.raises(RulesError, match="PARAM_OPT_MAX_DAILY_LOSS_USD=50"):
        load_rules(env={"PARAM_OPT_MAX_DAILY_LOSS_USD": "50"})


def test_entry_gate_is_the_backtest_mask() -> None:
    conf = np.array([0.69, 0.70, 0.9, 0.95])
    n = np.array([3, 2, 1, 2])
    mask = R.entry_gate_mask(conf, n)
    r = Rules()
    for i in range(4):
        assert r.check_entry(acct(), StrategyRecord(), conf[i], int(n[i])).allowed == bool(mask[i])


def test_hardstop_triggers() -> None:
    r = Rules()
    assert r.hardstop_reasons(acct()) == ()
    assert "floor" in r.hardstop_reasons(acct(equity=10.0, cash=10.0))[0]
    assert "drawdown" in r.hardstop_reasons(acct(equity=70.0, cash=70.0))[0]
    assert r.hardstop_reasons(acct(equity=70.01, cash=70.01)) == ()


def test_entry_is_refused_by_each_rule_with_its_reason() -> None:
    r, ok = Rules(), StrategyRecord()
    assert r.check_entry(acct(), ok, 0.8, 2).allowed
    cases = {
        "HARDSTOP": acct(hardstop=True),
        "daily loss": acct(equity=95.0, cash=95.0),
        "drawdown": acct(equity=69.0, cash=69.0),
    }
    for word, a in cases.items():
        d = r.check_entry(a, ok, 0.8, 2)
        assert not d.allowed and any(word in why for why in d.reasons), (word, d.reasons)
    losing = StrategyRecord(trades=10, wins=3)
    assert "win rate" in r.check_entry(acct(), losing, 0.8, 2).reasons[0]
    assert r.check_entry(acct(), StrategyRecord(trades=9, wins=0), 0.8, 2).allowed  # below the sample
    assert "fired" in r.check_entry(acct(), StrategyRecord(fired=True), 0.8, 2).reasons[0]
    # an entry whose own cost would reach the daily limit is refused too
    assert not r.check_entry(acct(equity=95.01, cash=95.01), ok, 0.8, 2, cost_usd=0.02).allowed


def test_capital_locks_and_reserve() -> None:
    r = Rules()
    assert r.free_capital(acct()) == pytest.approx(90.0)  # $10 floor untouched
    assert r.free_capital(acct(equity=300, cash=300, principal_locked=True)) == pytest.approx(300 - 100 - 30)
    assert r.free_capital(acct(locked_profit=5.0, reserved=20.0)) == pytest.approx(65.0)
    assert r.position_budget(acct()) == pytest.approx(25.0)
    assert not r.principal_should_lock(200.0, 100.0) and r.principal_should_lock(200.01, 100.0)


def test_rule3_profit_split_and_verdicts() -> None:
    r = Rules()
    assert r.split_profit(10.0) == pytest.approx((2.5, 7.5))
    assert r.split_profit(-3.0) == (-3.0, 0.0)
    assert not r.verdict(StrategyRecord(trades=10, wins=6, net_pnl=-1.0)).allowed  # losing money: fired
    assert not r.verdict(StrategyRecord(trades=10, wins=3, net_pnl=1.0)).allowed  # losing too often: fired
    clone = r.verdict(StrategyRecord(trades=20, wins=14, net_pnl=5.0, sharpe=0.8))
    assert clone.allowed and clone.reasons[0].startswith("clone")
    assert r.verdict(StrategyRecord(trades=3, wins=0, net_pnl=-1.0)).reasons == ("keep",)


def test_status_reports_every_rule1_line() -> None:
    st = Rules().status(acct(equity=94.0, cash=94.0))
    assert not st["entries_allowed"] and "daily loss" in st["blocked_by"][0]
    assert st["daily_pnl"] == pytest.approx(-6.0) and st["equity_floor"] == 10.0
