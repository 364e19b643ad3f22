"""The backtest engine: fill conventions, edge cases, metrics, a reference model, vectorbt."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nettrace_dagster.backtest import (
    EngineParams,
    Prices,
    bar_returns,
    deflated_sharpe_ratio,
    gate_entries,
    periods_per_year,
    probabilistic_sharpe_ratio,
    run_backtest,
    simulate_signals,
    sweep,
)
from nettrace_dagster.backtest.metrics import (
    deflated_sharpe_from_returns,
    expected_max_sharpe,
    max_drawdown,
    sharpe_ratio,
)
from nettrace_dagster.backtest.synthetic import synthetic_candles
from nettrace_dagster.rules import MIN_CONFIRMATIONS, MIN_ENTRY_CONFIDENCE, Rules, RulesError
from nettrace_dagster.strategies import Signals, Strategy, get_strategy

NOFEE = EngineParams(fee=0.0)


def bars(rows: list[tuple[float, float, float, float]]) -> pl.DataFrame:
    """Candles from (open, high, low, close) tuples, one minute apart."""
    o, h, lo, c = (np.array(x, dtype=float) for x in zip(*rows, strict=True))
    ts = [dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=i) for i in range(len(rows))]
    return pl.DataFrame({"timestamp": ts, "open": o, "high": h, "low": lo, "close": c,
                         "volume": np.ones(len(rows))}).with_columns(pl.col("timestamp").dt.cast_time_unit("ms"))


def sig(n: int, entries=(), exits=(), confidence: float = 1.0, confirmations: int = 2) -> Signals:
    s = Signals.empty(n)
    s.entries[list(entries)] = True
    s.exits[list(exits)] = True
    s.confidence[:] = confidence
    s.confirmations[:] = confirmations
    return s


def run(rows, signals: Signals, params: EngineParams = NOFEE):
    return simulate_signals(Prices.from_candles(bars(rows)), signals, params)


FLAT = (100.0, 101.0, 99.0, 100.0)


# ---------------------------------------------------------------- fill conventions
def test_signal_at_close_fills_at_next_open() -> None:
    rows = [FLAT, (102, 103, 101, 102), (104, 105, 103, 104), (106, 107, 105, 106)]
    r = run(rows, sig(4, entries=[0], exits=[2]))
    t = r.trades.row(0, named=True)
    assert (t["entry_bar"], t["entry_price"], t["exit_bar"]) == (1, 102.0, 3)
    assert t["exit_price"] == pytest.approx(106.0, rel=1e-15)
    assert t["exit_reason"] == "signal"
    assert r.metrics.final_equity == pytest.approx(10_000 * 106 / 102)
    assert r.equity[0] == 10_000 and r.equity[1] == pytest.approx(10_000)  # bought at the open, marked at close


def test_slippage_and_fees_per_side_on_notional() -> None:
    rows = [FLAT, (100, 101, 99, 100), (110, 111, 109, 110)]
    p = EngineParams(fee=0.001, slippage_bps=10)
    r = run(rows, sig(3, entries=[0], exits=[1]), p)
    buy, sell = 100 * 1.001, 110 * 0.999
    units = 10_000 / 1.001 / buy
    expected = units * sell * (1 - 0.001)
    assert r.trades["entry_price"][0] == pytest.approx(buy)
    assert r.trades["exit_price"][0] == pytest.approx(sell)
    assert r.metrics.final_equity == pytest.approx(expected, rel=1e-12)
    assert r.metrics.fees_paid == pytest.approx(10_000 - units * buy + units * sell * 0.001, rel=1e-12)


def test_stop_hit_intrabar_fills_at_the_level() -> None:
    rows = [FLAT, (100, 101, 99.5, 100), (99, 99.5, 97, 98), FLAT]
    r = run(rows, sig(4, entries=[0]), NOFEE.with_(stop_loss=0.02))
    t = r.trades.row(0, named=True)
    assert (t["exit_bar"], t["exit_price"], t["exit_reason"]) == (2, 98.0, "stop_loss")


def test_gap_through_the_stop_fills_at_the_open() -> None:
    rows = [FLAT, (100, 101, 99.5, 100), (95, 96, 94, 95), FLAT]
    r = run(rows, sig(4, entries=[0]), NOFEE.with_(stop_loss=0.02))
    assert r.trades["exit_price"][0] == 95.0 and r.trades["exit_reason"][0] == "stop_loss"


def test_stop_is_live_on_the_entry_bar() -> None:
    rows = [FLAT, (100, 100.5, 97, 99), FLAT]
    r = run(rows, sig(3, entries=[0]), NOFEE.with_(stop_loss=0.02))
    assert (r.trades["exit_bar"][0], r.trades["exit_price"][0]) == (1, 98.0)


def test_both_levels_in_one_bar_take_the_stop() -> None:
    rows = [FLAT, (100, 100.5, 99.5, 100), (100, 106, 97, 101), FLAT]
    r = run(rows, sig(4, entries=[0]), NOFEE.with_(stop_loss=0.02, take_profit=0.05))
    assert (r.trades["exit_price"][0], r.trades["exit_reason"][0]) == (98.0, "stop_loss")


def test_target_fills_at_level_or_gap_open() -> None:
    p = NOFEE.with_(take_profit=0.05)
    at_level = run([FLAT, (100, 100.5, 99.5, 100), (101, 106, 100.5, 104)], sig(3, entries=[0]), p)
    assert (at_level.trades["exit_price"][0], at_level.trades["exit_reason"][0]) == (105.0, "take_profit")
    gapped = run([FLAT, (100, 100.5, 99.5, 100), (108, 109, 107, 108)], sig(3, entries=[0]), p)
    assert gapped.trades["exit_price"][0] == 108.0


def test_take_profit_tiers_sell_partial_fractions() -> None:
    rows = [FLAT, (100, 100.5, 99.5, 100), (100, 101.5, 99.8, 101), (101, 102.5, 100.5, 102),
            (102, 103.5, 101.5, 103), FLAT]
    p = NOFEE.with_(tp0=0.01, tp1=0.02, tp2=0.03, tp0_fraction=0.25, tp1_fraction=0.25)
    r = run(rows, sig(6, entries=[0]), p)
    t = r.trades.row(0, named=True)
    units = 100.0
    # 25 % at 101, 25 % at 102, the rest (last tier) at 103
    assert t["exit_bar"] == 4 and t["exit_reason"] == "take_profit"
    assert t["exit_price"] == pytest.approx(0.25 * 101 + 0.25 * 102 + 0.5 * 103)
    assert r.equity[2] == pytest.approx(0.25 * units * 101 + 0.75 * units * 101)
    assert r.metrics.final_equity == pytest.approx(units * t["exit_price"])


def test_several_tiers_in_one_bar_and_a_runner() -> None:
    rows = [FLAT, (100, 100.5, 99.7, 100), (100, 104, 99.8, 103), (103, 103.5, 102.5, 103), (103, 103, 99, 100)]
    p = NOFEE.with_(tp0=0.01, tp1=0.02, tp0_fraction=0.5, tp1_fraction=0.25, tp_last_closes=False,
                    stop_loss=0.005)
    r = run(rows, sig(5, entries=[0]), p)
    t = r.trades.row(0, named=True)
    # bar 2 fills tier 0 at 101 and tier 1 at 102; the remaining 25 % rides to the stop at 99.5
    assert t["exit_bar"] == 4 and t["exit_reason"] == "stop_loss"
    assert t["exit_price"] == pytest.approx(0.5 * 101 + 0.25 * 102 + 0.25 * 99.5)


def test_trailing_stop_ratchets_on_completed_bars_only() -> None:
    rows = [FLAT, (100, 100, 99.5, 100), (101, 110, 100.5, 108), (108, 109, 106, 107), (107, 107.5, 104, 105), FLAT]
    p = NOFEE.with_(trailing_stop=0.05)
    r = run(rows, sig(6, entries=[0]), p)
    t = r.trades.row(0, named=True)
    # bar 2's high 110 is not used within bar 2 (level 95); from bar 3 the level is 104.5: bar 3's low
    # 106 holds, bar 4's low 104 hits it; the ratchet never lowers the level after bar 3's lower high
    assert (t["exit_bar"], t["exit_reason"]) == (4, "trailing_stop")
    assert t["exit_price"] == pytest.approx(110 * 0.95)


def test_trailing_stop_gap_fills_at_open() -> None:
    rows = [FLAT, (100, 100, 99.5, 100), (101, 110, 100.5, 108), (90, 91, 89, 90), FLAT]
    r = run(rows, sig(5, entries=[0]), NOFEE.with_(trailing_stop=0.05))
    assert r.trades["exit_price"][0] == 90.0


def test_reserve_and_fraction_sizing() -> None:
    rows = [FLAT, (100, 101, 99, 100), (120, 121, 119, 120)]
    s = sig(3, entries=[0], exits=[1])
    r = run(rows, s, NOFEE.with_(trade_fraction=0.5, fraction_multiplier=1.2))
    assert r.trades["units"][0] == pytest.approx(60.0)  # 0.5 × 1.2 = 60 % of equity
    r = run(rows, s, NOFEE.with_(trade_fraction=1.0, fraction_multiplier=1.5, min_reserve=0.3))
    assert r.trades["units"][0] == pytest.approx(70.0)  # capped at 1 − reserve
    assert r.metrics.final_equity == pytest.approx(3_000 + 70 * 120)
    with_fee = run(rows, s, EngineParams(fee=0.01, min_reserve=0.3))
    assert with_fee.trades["units"][0] * 100 * 1.01 == pytest.approx(7_000)  # fee inside the budget


def test_zero_trades_and_one_bar() -> None:
    r = run([FLAT, FLAT, FLAT], sig(3))
    m = r.metrics
    assert (m.trades, m.final_equity, m.total_return, m.sharpe, m.max_drawdown, m.win_rate) == (0, 10_000, 0, 0, 0, 0)
    assert r.trades.height == 0 and list(r.equity) == [10_000] * 3
    one = run([FLAT], sig(1, entries=[0]))
    assert one.metrics.trades == 0 and one.metrics.bars == 1 and one.equity.tolist() == [10_000]
    assert math.isnan(one.metrics.profit_factor) and one.metrics.to_dict()["profit_factor"] is None


def test_last_bar_signals_never_fill_and_open_trade_is_marked() -> None:
    rows = [FLAT, (100, 101, 99, 100), (100, 103, 99, 102)]
    r = run(rows, sig(3, entries=[0, 2], exits=[2]))
    assert r.metrics.trades == 1 and r.metrics.closed_trades == 0
    t = r.trades.row(0, named=True)
    assert t["exit_reason"] == "open" and t["exit_price"] == 102 and r.metrics.final_equity == pytest.approx(10_200)


def test_exit_beats_entry_on_the_same_bar() -> None:
    rows = [FLAT] * 5
    assert run(rows, sig(5, entries=[1], exits=[1])).metrics.trades == 0
    r = run(rows, sig(5, entries=[0, 2], exits=[2]))
    assert r.trades["exit_bar"].to_list() == [3] and r.metrics.trades == 1


def test_reentry_after_a_stop() -> None:
    rows = [FLAT, (100, 100.5, 99.5, 100), (99, 99.5, 97, 98), (98, 99, 97.5, 98), (98, 99, 97.5, 98)]
    r = run(rows, sig(5, entries=[0, 2], exits=[]), NOFEE.with_(stop_loss=0.02))
    assert r.trades["entry_bar"].to_list() == [1, 3]
    assert r.trades["exit_reason"].to_list() == ["stop_loss", "open"]


# ---------------------------------------------------------------- Rule 2 gate
def test_entries_pass_the_shared_rule_2_gate() -> None:
    rows = [FLAT] * 6
    weak = sig(6, entries=[0], exits=[2], confidence=MIN_ENTRY_CONFIDENCE - 0.01)
    few = sig(6, entries=[0], exits=[2], confirmations=MIN_CONFIRMATIONS - 1)
    ok = sig(6, entries=[0], exits=[2], confidence=0.8)
    assert run(rows, weak).metrics.trades == 0
    assert run(rows, few).metrics.trades == 0
    assert run(rows, ok).metrics.trades == 1
    assert run(rows, ok, NOFEE.with_(min_confidence=0.9)).metrics.trades == 0  # tightened
    assert run(rows, weak, NOFEE.with_(min_confidence=0.1, min_confirmations=0)).metrics.trades == 0  # never loosened
    assert gate_entries(ok).tolist() == [True] + [False] * 5


class Graded(Strategy):
    """Entries every 7 bars with confidence spread over [0.70, 1.0] and 2–4 confirmations."""

    name = "graded"

    def signals(self, candles: pl.DataFrame, params: dict) -> Signals:
        i = np.arange(candles.height)
        return Signals(i % 7 == 1, i % 7 == 4, 0.70 + 0.30 * ((i * 37) % 100) / 99, 2 + i % 3)


def round_trips(entries: np.ndarray, exits: np.ndarray) -> int:
    """Trades the fill conventions make of gated entries, written plainly: a signal fills at the
    next open, an exit beats an entry on one bar, no pyramiding, nothing fills after the last bar."""
    held, trades = False, 0
    for i in range(len(entries) - 1):
        if held and exits[i]:
            held = False
        elif not held and entries[i] and not exits[i]:
            held, trades = True, trades + 1
    return trades


def test_backtests_gate_with_the_execution_layers_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """NETTRACE_RULE_MIN_CONFIDENCE / _MIN_CONFIRMATIONS tighten the backtest as they tighten
    trading: `run_backtest`, `simulate_signals` and `sweep` read `load_rules(load_settings())`."""
    df = synthetic_candles(6_000, 3)
    prices = Prices.from_candles(df)
    for var in ("NETTRACE_RULE_MIN_CONFIDENCE", "NETTRACE_RULE_MIN_CONFIRMATIONS"):
        monkeypatch.delenv(var, raising=False)
    for strategy in (Graded(), get_strategy("momentum")):
        s = strategy.run(df)

        def expected(floor: float, count: int, s: Signals = s) -> int:
            return round_trips(s.entries & (s.confidence >= floor) & (s.confirmations >= count), s.exits)

        default = run_backtest(df, strategy)
        assert default.metrics.trades == expected(0.70, 2) > 0 and default.rules == Rules()
        monkeypatch.setenv("NETTRACE_RULE_MIN_CONFIDENCE", "0.99")
        tight = run_backtest(df, strategy)
        assert tight.metrics.trades == expected(0.99, 2) < default.metrics.trades
        assert tight.rules.min_confidence == 0.99 and tight.gated_entries < default.gated_entries
        assert simulate_signals(prices, s).metrics.trades == tight.metrics.trades
        assert sweep(df, strategy, [{}], workers=1)[0].trades == tight.metrics.trades
        monkeypatch.setenv("NETTRACE_RULE_MIN_CONFIRMATIONS", "3")
        assert run_backtest(df, strategy).metrics.trades == expected(0.99, 3)
        monkeypatch.delenv("NETTRACE_RULE_MIN_CONFIDENCE")
        assert run_backtest(df, strategy).metrics.trades == expected(0.70, 3)
        monkeypatch.delenv("NETTRACE_RULE_MIN_CONFIRMATIONS")
        if isinstance(strategy, Graded):  # some entries pass at 0.99: a real drop, not just to nothing
            assert expected(0.99, 2) > 0
    # explicit rules win over the environment; engine keys can only tighten them further
    monkeypatch.setenv("NETTRACE_RULE_MIN_CONFIDENCE", "0.99")
    graded = Graded().run(df)
    assert simulate_signals(prices, graded, rules=Rules()).metrics.trades == round_trips(
        graded.entries, graded.exits)
    assert simulate_signals(prices, graded, EngineParams(min_confidence=0.5), rules=Rules()).gated_entries == \
        graded.entries.sum()
    # a loosening setting is refused here as the execution layer refuses it
    monkeypatch.setenv("NETTRACE_RULE_MIN_CONFIDENCE", "0.5")
    with pytest.raises(RulesError, match="loosens Rule 2"):
        run_backtest(df, Graded())


# ---------------------------------------------------------------- metrics
def test_metrics_agree_with_the_equity_curve() -> None:
    df = synthetic_candles(20_000, 11)
    for engine in (EngineParams(), EngineParams(stop_loss=0.004, tp0=0.003, tp1=0.006, trailing_stop=0.003,
                                                trade_fraction=0.6, min_reserve=0.1)):
        r = run_backtest(df, "sma_cross", {"fast": 8, "slow": 40}, engine)
        stats_only = run_backtest(df, "sma_cross", {"fast": 8, "slow": 40}, engine, record=False)
        assert stats_only.metrics == r.metrics
        ppy = periods_per_year(60)
        rets = bar_returns(r.equity, engine.initial_equity)
        assert r.metrics.sharpe == pytest.approx(sharpe_ratio(rets, ppy), rel=1e-9)
        curve = np.concatenate(([engine.initial_equity], r.equity))
        assert r.metrics.max_drawdown == pytest.approx(max_drawdown(curve), rel=1e-9)
        assert r.metrics.final_equity == pytest.approx(r.equity[-1], rel=1e-12)
        closed = r.trades.filter(pl.col("exit_reason") != "open")
        assert r.metrics.win_rate == pytest.approx((closed["pnl"] > 0).mean())
        assert r.metrics.total_return == pytest.approx(r.equity[-1] / engine.initial_equity - 1)
        assert 0 < r.metrics.exposure < 1 and r.metrics.periods_per_year == 525_600


def test_periods_per_year_by_timeframe() -> None:
    assert periods_per_year(60) == 525_600
    assert periods_per_year(3600) == 8_760
    assert periods_per_year(86_400) == 365
    assert periods_per_year(None) == 365


def test_deflated_sharpe() -> None:
    # with one trial it is the probabilistic Sharpe ratio against zero
    assert deflated_sharpe_ratio(0.1, 250, 1, 0.0) == pytest.approx(probabilistic_sharpe_ratio(0.1, 0.0, 250))
    # more trials, or more dispersion among them, deflate the same Sharpe
    values = [deflated_sharpe_ratio(0.1, 250, n, 0.002) for n in (1, 10, 100, 1000)]
    assert values == sorted(values, reverse=True) and values[0] > 0.9 and values[-1] < values[0]
    # SR0 approximates the expected maximum of N standard normals (E[max of 100] ≈ 2.5076)
    assert expected_max_sharpe(100, 1.0) == pytest.approx(2.5076, rel=0.03)
    # fat tails and negative skew widen the Sharpe's error: lower probability
    assert probabilistic_sharpe_ratio(0.1, 0, 250, skew=-1, kurtosis=8) < probabilistic_sharpe_ratio(0.1, 0, 250)
    rng = np.random.default_rng(0)
    good = rng.normal(0.002, 0.01, 2000)
    assert deflated_sharpe_from_returns(good, [0.2, 0.01, -0.02, 0.05]) > 0.9
    assert deflated_sharpe_from_returns(rng.normal(0, 0.01, 2000), rng.normal(0, 0.05, 1000)) < 0.5


# ---------------------------------------------------------------- sweeps
def test_sweep_equals_single_runs_and_uses_engine_keys() -> None:
    df = synthetic_candles(30_000, 5)
    sets = [{"fast": f, "slow": s} for f in (5, 10) for s in (30, 60)] + [{"fast": 10, "slow": 30, "stop_loss": 0.005}]
    base = EngineParams(fee=0.0005)
    results = sweep(df, "sma_cross", sets, base, workers=2)
    for params, metrics in zip(sets, results, strict=True):
        assert metrics == run_backtest(df, "sma_cross", params, base, record=False).metrics
    assert results[-1] != results[1]
    assert sweep(df, "momentum", [{}, {"lookback": 30}], workers=1)[0] == run_backtest(df, "momentum").metrics
    assert sweep(df, "sma_cross", []) == []


# ---------------------------------------------------------------- a slow reference model
def reference(o, h, lo, c, entries, exits, p: EngineParams):
    """The conventions written plainly, bar by bar (no tricks): the compiled kernel must agree."""
    (levels, fracs) = p.tiers()
    s, fee = p.slippage, p.fee
    cash, units, pos = p.initial_equity, 0.0, False
    proceeds = exit_value = 0.0
    trades, equity = [], []
    for i in range(len(c)):
        filled_exit = False
        if i > 0 and pos and exits[i - 1]:
            value = units * o[i] * (1 - s)
            cash += value - value * fee
            proceeds += value - value * fee
            exit_value += value
            units, pos, filled_exit, reason = 0.0, False, True, "signal"
        elif i > 0 and not pos and entries[i - 1] and not exits[i - 1]:
            px = o[i] * (1 + s)
            budget = cash if p.size_fraction >= 1 else min(cash, p.size_fraction * cash)
            units = entry_units = budget / (1 + fee) / px
            cash = 0.0 if p.size_fraction >= 1 else cash - budget
            pos, cost, proceeds, exit_value, entry_bar, peak = True, budget, 0.0, 0.0, i, px
            stop = px * (1 - p.stop_loss) if p.stop_loss else 0.0
            targets = [px * (1 + lv) if lv else math.inf for lv in levels]
        if pos:
            level = max(stop, peak * (1 - p.trailing_stop) if p.trailing_stop else 0.0)
            if lo[i] <= level:
                value = units * (o[i] if o[i] <= level else level) * (1 - s)
                cash += value - value * fee
                proceeds += value - value * fee
                exit_value += value
                units, pos, filled_exit = 0.0, False, True
                reason = "trailing_stop" if level > stop else "stop_loss"
            else:
                for k in range(3):
                    if h[i] >= targets[k] and units > 0:
                        lv, targets[k] = targets[k], math.inf
                        q = fracs[k] * entry_units
                        q = units if q >= units * (1 - 1e-9) else q
                        value = q * (o[i] if o[i] >= lv else lv) * (1 - s)
                        cash += value - value * fee
                        proceeds += value - value * fee
                        exit_value += value
                        units -= q
                        if units <= 0:
                            units, pos, filled_exit, reason = 0.0, False, True, "take_profit"
                peak = max(peak, h[i])
        if filled_exit:
            trades.append((entry_bar, i, exit_value / entry_units, proceeds - cost, reason))
        equity.append(cash + units * c[i])
    if pos:
        trades.append((entry_bar, len(c) - 1, (exit_value + units * c[-1]) / entry_units,
                       proceeds + units * c[-1] - cost, "open"))
    return trades, np.array(equity)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n=st.integers(1, 400), density=st.floats(0.01, 0.3),
       stop=st.sampled_from([0.0, 0.003, 0.01]), trail=st.sampled_from([0.0, 0.002, 0.008]),
       tiers=st.sampled_from([(0, 0, 0), (0.004, 0, 0), (0.002, 0.005, 0.01), (0.003, 0.006, 0)]),
       f0=st.sampled_from([0.2, 0.5, 1.0]), last_closes=st.booleans(),
       fee=st.sampled_from([0.0, 0.001]), slip=st.sampled_from([0.0, 5.0]),
       frac=st.sampled_from([1.0, 0.5]), reserve=st.sampled_from([0.0, 0.2]))
def test_kernel_matches_the_reference_model(seed, n, density, stop, trail, tiers, f0, last_closes, fee, slip,
                                            frac, reserve) -> None:
    df = synthetic_candles(n, seed, vol=0.004, jump_prob=0.05)
    rng = np.random.default_rng(seed)
    entries, exits = rng.random(n) < density, rng.random(n) < density
    p = EngineParams(fee=fee, slippage_bps=slip, stop_loss=stop, trailing_stop=trail, tp0=tiers[0], tp1=tiers[1],
                     tp2=tiers[2], tp0_fraction=f0, tp_last_closes=last_closes, trade_fraction=frac, min_reserve=reserve)
    signals = Signals(entries, exits, np.ones(n), np.full(n, 2, dtype=np.int64))
    prices = Prices.from_candles(df)
    r = simulate_signals(prices, signals, p)
    want, want_equity = reference(prices.open, prices.high, prices.low, prices.close, entries, exits, p)
    got = list(r.trades.select("entry_bar", "exit_bar", "exit_price", "pnl", "exit_reason").iter_rows())
    assert [(a, b, e) for a, b, _, _, e in got] == [(a, b, e) for a, b, _, _, e in want]
    for g, w in zip(got, want, strict=True):
        assert g[2] == pytest.approx(w[2], rel=1e-12) and g[3] == pytest.approx(w[3], rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(r.equity, want_equity, rtol=1e-12)
    assert simulate_signals(prices, signals, p, record=False).metrics == r.metrics


# ---------------------------------------------------------------- the independent engine
@pytest.mark.slow(seconds=14)
def test_cross_check_against_vectorbt() -> None:
    pytest.importorskip("vectorbt", reason="vectorbt (the optional `peers` extra) is not installed")
    from nettrace_dagster.backtest.peers import cross_check

    df = synthetic_candles(5_000, 9)
    prices = Prices.from_candles(df)
    strategy = get_strategy("sma_cross")
    for sparams, eparams in [({"fast": 5, "slow": 20}, {}),
                             ({"fast": 5, "slow": 20}, {"stop_loss": 0.004, "take_profit": 0.006}),
                             ({"fast": 3, "slow": 12}, {"trailing_stop": 0.003, "slippage_bps": 5, "fee": 0.002}),
                             ({"fast": 8, "slow": 30}, {"stop_loss": 0.003, "trade_fraction": 0.4})]:
        engine = EngineParams.from_dict(eparams)
        signals = strategy.run(df, sparams)
        result = simulate_signals(prices, signals, engine)
        assert result.metrics.trades > 20
        report = cross_check(prices, gate_entries(signals, engine), signals.exits, engine, result.trades,
                             result.metrics.final_equity)
        assert report["agree"], report["problems"]
