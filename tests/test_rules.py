"""The capital rules: their numbers, tighten-only configuration, and each rule's judgement."""

from __future__ import annotations

import numpy as np
import pytest

from nettrace_dagster import rules as R
from nettrace_dagster.rules import AccountSnapshot, Rules, RulesError, StrategyRecord, load_rules
from nettrace_dagster.settings import load_settings


def acct(**kw: float | bool) -> AccountSnapshot:
    base = {"equity": 100.0, "cash": 100.0, "principal": 100.0, "peak_equity": 100.0, "day_start_equity": 100.0}
    return AccountSnapshot(**{**base, **kw})


def test_the_seed_numbers() -> None:
    r = Rules()
    assert (r.equity_floor_usd, r.max_drawdown, r.max_daily_loss_usd, r.principal_lock_gain) == (10.0, 0.30, 5.0, 1.0)
    assert (r.min_confidence, r.min_confirmations, r.min_win_rate) == (0.70, 2, 0.40)
    assert R.REINVEST_MIN <= r.reinvest_fraction <= R.REINVEST_MAX == 0.35 and R.REINVEST_MIN == 0.20


@pytest.mark.parametrize(("name", "value", "env"), [
    ("max_drawdown", 0.5, "NETTRACE_RULE_MAX_DRAWDOWN"), ("equity_floor_usd", 5, "NETTRACE_RULE_EQUITY_FLOOR_USD"),
    ("max_daily_loss_usd", 6, "PARAM_OPT_MAX_DAILY_LOSS_USD"), ("min_confidence", 0.6, "NETTRACE_RULE_MIN_CONFIDENCE"),
    ("min_confirmations", 1, "NETTRACE_RULE_MIN_CONFIRMATIONS"), ("min_win_rate", 0.3, "NETTRACE_RULE_MIN_WIN_RATE"),
    ("win_rate_min_trades", 20, "NETTRACE_RULE_WIN_RATE_MIN_TRADES"),
    ("principal_lock_gain", 2.0, "NETTRACE_RULE_PRINCIPAL_LOCK_GAIN"),
    ("max_position_fraction", 0.5, "NETTRACE_RULE_MAX_POSITION_FRACTION"),
    ("min_reserve_fraction", 0.05, "NETTRACE_RULE_MIN_RESERVE_FRACTION"),
    ("clone_win_rate", 0.5, "NETTRACE_RULE_CLONE_WIN_RATE"), ("fire_win_rate", 0.3, "NETTRACE_RULE_FIRE_WIN_RATE"),
    ("fire_min_trades", 50, "NETTRACE_RULE_FIRE_MIN_TRADES")])
def test_loosening_any_rule_is_refused_with_one_line(name: str, value: float, env: str) -> None:
    with pytest.raises(RulesError) as err:
        Rules().tightened(**{name: value})
    msg = str(err.value)
    assert "\n" not in msg and "loosens" in msg and env in msg
    assert R.rule_env_names()[name] == env


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
    r = load_rules(load_settings({"PARAM_OPT_MAX_DAILY_LOSS_USD": "2.5", "NETTRACE_RULE_MAX_DRAWDOWN": "0.25"}))
    assert (r.max_daily_loss_usd, r.max_drawdown) == (2.5, 0.25)
    assert load_rules(load_settings({"PARAM_OPT_MAX_DAILY_LOSS_USD": "5.0"})) == Rules()  # the default is no change
    with pytest.raises(RulesError, match="PARAM_OPT_MAX_DAILY_LOSS_USD=50"):
        load_rules(load_settings({"PARAM_OPT_MAX_DAILY_LOSS_USD": "50"}))


# ---------------------------------------------------------------- an independent oracle
# DESIGN.md's rules written out again in plain Python, in whole cents where money is compared, so
# that the code under test is never its own expected value. Win-rate sample: 10 closed round trips
# (docs/execution.md).
def rule2_signal_ok(confidence: float, confirmations: int) -> bool:
    return confidence >= 0.70 and confirmations >= 2


def entry_allowed_by_design(equity_c: int, peak_c: int, day_start_c: int, trades: int, wins: int,
                            confidence: float, confirmations: int, hardstop: bool = False) -> bool:
    floor_hit = equity_c <= 10_00
    drawdown_hit = peak_c > 0 and (peak_c - equity_c) * 100 >= 30 * peak_c
    daily_limit_hit = day_start_c - equity_c >= 5_00
    win_rate_too_low = trades >= 10 and wins * 100 < 40 * trades
    return (rule2_signal_ok(confidence, confirmations) and not win_rate_too_low and not hardstop
            and not floor_hit and not drawdown_hit and not daily_limit_hit)


def cents_acct(equity_c: int, peak_c: int, day_start_c: int, hardstop: bool = False) -> AccountSnapshot:
    return acct(equity=equity_c / 100, cash=equity_c / 100, peak_equity=peak_c / 100,
                day_start_equity=day_start_c / 100, hardstop=hardstop)


@pytest.mark.parametrize(("confidence", "confirmations", "allowed"), [
    (0.70, 2, True), (0.69, 2, False), (0.6999, 9, False), (0.70, 1, False), (0.71, 3, True),
    (0.95, 2, True), (1.0, 10, True), (0.9, 1, False), (0.0, 0, False), (float("nan"), 3, False)])
def test_rule2_gate_by_hand(confidence: float, confirmations: int, allowed: bool) -> None:
    assert rule2_signal_ok(confidence, confirmations) is allowed  # the oracle agrees with the table
    assert R.entry_gate(confidence, confirmations).allowed is allowed
    assert bool(R.entry_gate_mask(np.array([confidence]), np.array([confirmations]))[0]) is allowed
    assert Rules().check_entry(acct(), StrategyRecord(), confidence, confirmations).allowed is allowed


def test_backtest_mask_matches_rule2_on_many_bars() -> None:
    rng = np.random.default_rng(11)
    conf = np.concatenate([rng.uniform(0.4, 1.0, 20_000), [0.70, np.nextafter(0.70, 0.0), np.nextafter(0.70, 1.0)]])
    n = rng.integers(0, 5, conf.size)
    want = np.array([rule2_signal_ok(float(c), int(k)) for c, k in zip(conf, n, strict=True)])
    assert 0.2 < want.mean() < 0.8  # both sides of each line are exercised
    np.testing.assert_array_equal(R.entry_gate_mask(conf, n), want)
    tighter = Rules().tightened(min_confidence=0.8, min_confirmations=3)
    want_tight = (conf >= 0.8) & (n >= 3)
    np.testing.assert_array_equal(R.entry_gate_mask(conf, n, 0.8, 3), want_tight)
    for i in range(0, conf.size, 97):
        assert tighter.check_entry(acct(), StrategyRecord(), float(conf[i]), int(n[i])).allowed == want_tight[i]


@pytest.mark.parametrize(("trades", "wins", "allowed"), [
    (10, 4, True),    # 40 % is the floor itself, not below it
    (10, 3, False),   # 30 %
    (20, 7, False),   # 35 %
    (100, 40, True),
    (9, 0, True),     # below the 10-trade sample the rate is not judged yet
    (0, 0, True)])
def test_win_rate_floor_by_hand(trades: int, wins: int, allowed: bool) -> None:
    record = StrategyRecord(trades=trades, wins=wins)
    assert Rules().check_entry(acct(), record, 0.8, 2).allowed is allowed
    assert entry_allowed_by_design(100_00, 100_00, 100_00, trades, wins, 0.8, 2) is allowed


@pytest.mark.parametrize(("equity_c", "peak_c", "day_start_c", "hardstop", "allowed"), [
    (100_00, 100_00, 100_00, False, True),
    (100_00, 100_00, 100_00, True, False),   # the HARDSTOP latch: exits only
    (10_00, 12_00, 10_00, False, False),     # at the $10 floor (drawdown only 16.7 %)
    (10_01, 12_00, 10_01, False, True),      # a cent above it
    (140_00, 200_00, 140_00, False, False),  # 30 % below the peak
    (140_01, 200_00, 140_01, False, True),   # 29.995 %
    (95_00, 100_00, 100_00, False, False),   # $5 lost today: the daily limit
    (95_01, 100_00, 100_00, False, True),    # $4.99 lost
    (300_00, 300_00, 304_99, False, True),   # $4.99 lost after a gain
])
def test_rule1_lines_by_hand(equity_c: int, peak_c: int, day_start_c: int, hardstop: bool, allowed: bool) -> None:
    got = Rules().check_entry(cents_acct(equity_c, peak_c, day_start_c, hardstop), StrategyRecord(), 0.8, 2)
    assert got.allowed is allowed, got.reasons
    assert entry_allowed_by_design(equity_c, peak_c, day_start_c, 0, 0, 0.8, 2, hardstop) is allowed


def test_check_entry_matches_the_design_on_random_accounts() -> None:
    rng = np.random.default_rng(5)
    refused = 0
    for _ in range(3_000):
        peak_c = int(rng.integers(5_00, 400_00))
        equity_c = int(rng.integers(peak_c * 6 // 10, peak_c + 1))
        day_start_c = equity_c + int(rng.integers(-3_00, 7_00))
        trades = int(rng.integers(0, 30))
        wins = int(rng.integers(trades // 4, trades + 1))
        conf, n = float(rng.uniform(0.6, 1.0)), int(rng.integers(1, 5))
        want = entry_allowed_by_design(equity_c, peak_c, day_start_c, trades, wins, conf, n)
        got = Rules().check_entry(cents_acct(equity_c, peak_c, day_start_c), StrategyRecord(trades, wins), conf, n)
        assert got.allowed is want, (equity_c, peak_c, day_start_c, trades, wins, conf, n, got.reasons)
        refused += not want
    assert 0.3 < refused / 3_000 < 0.9  # both outcomes are common


@pytest.mark.parametrize(("equity_c", "peak_c", "day_start_c"), [
    (279_93, 399_90, 279_93),  # 30 % below the peak to the cent (1 - 279.93/399.90 < 0.30 in floats)
    (510_31, 510_31, 515_31),  # $5.00 lost to the cent (515.31 - 510.31 < 5.0 in floats)
])
def test_exactly_on_a_rule1_line_is_refused(equity_c: int, peak_c: int, day_start_c: int) -> None:
    assert not entry_allowed_by_design(equity_c, peak_c, day_start_c, 0, 0, 0.8, 2)
    assert not Rules().check_entry(cents_acct(equity_c, peak_c, day_start_c), StrategyRecord(), 0.8, 2).allowed


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
