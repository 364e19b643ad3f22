"""ParamSet's JSON contract, the search space's rule-side bounds, and the portfolio backtest against
the single-strategy engine and a hand count of Rule 3's fire and clone."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import polars as pl
import pytest

from nettrace_dagster.backtest.engine import run_backtest
from nettrace_dagster.backtest.params import EngineParams
from nettrace_dagster.optimize.paramset import PORTFOLIO_KEYS, ParamSet, default_param_set
from nettrace_dagster.optimize.portfolio import FEE_RATE, SLIPPAGE_BPS, portfolio_backtest
from nettrace_dagster.optimize.space import clean_portfolio, portfolio_space
from nettrace_dagster.rules import Rules, RulesError
from nettrace_dagster.strategies.base import Signals, Strategy
from nettrace_dagster.strategies.registry import STRATEGIES
from tests.optimize_data import planted_market


# --- ParamSet ----------------------------------------------------------------------------------
def test_default_param_set_is_todays_behaviour() -> None:
    ps = default_param_set()
    rules = Rules()
    assert ps.portfolio == {"tp0": 0.0, "tp1": 0.0, "tp2": 0.0, "trailing_stop": 0.0, "fire_threshold": 0.40,
                            "promote_threshold": 0.50, "clone_threshold": 0.60, "trade_fraction_mult": 1.0,
                            "min_reserve_usd": 10.0}
    assert {k: dict(v) for k, v in ps.strategies.items()} == {n: c.default_params for n, c in STRATEGIES.items()}
    assert ps.rules() == rules  # today's thresholds are the rules' own


def test_json_round_trip_and_content_id() -> None:
    ps = default_param_set()
    doc = ps.to_json()
    assert set(doc) == {"portfolio", "strategies"} and set(doc["portfolio"]) == set(PORTFOLIO_KEYS)
    again = ParamSet.from_json(json.loads(json.dumps(doc)))
    assert again == ps and hash(again) == hash(ps)
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    assert ps.content_id() == hashlib.sha256(canonical.encode()).hexdigest()[:12]
    changed = json.loads(canonical)
    changed["portfolio"]["tp0"] = 0.01
    assert ParamSet.from_json(changed).content_id() != ps.content_id()


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d["portfolio"].pop("tp1"), "portfolio.tp1 is missing"),
    (lambda d: d["portfolio"].update(fire_threshold=0.3), "portfolio.fire_threshold=0.3"),
    (lambda d: d["portfolio"].update(trade_fraction_mult=1.5), "trade_fraction_mult=1.5"),
    (lambda d: d["portfolio"].update(min_reserve_usd=5), "min_reserve_usd=5"),
    (lambda d: d["portfolio"].update(tp0=0.02, tp1=0.01), "must increase"),
    (lambda d: d["portfolio"].update(trailing_stop="x"), "portfolio.trailing_stop"),
    (lambda d: d["portfolio"].update(surprise=1), "unknown portfolio key 'surprise'"),
    (lambda d: d["strategies"].update(nope={}), "unknown strategy 'nope'"),
    (lambda d: d["strategies"]["sma_cross"].update(fast="ten"), "strategies.sma_cross"),
    (lambda d: d.update(extra=1), "unknown key 'extra'"),
])
def test_from_json_names_the_bad_key_in_one_line(mutate: Any, needle: str) -> None:
    doc = default_param_set().to_json()
    mutate(doc)
    with pytest.raises(ValueError) as err:
        ParamSet.from_json(doc)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_the_space_only_reaches_the_strict_side_of_the_rules() -> None:
    rules = Rules().tightened(fire_win_rate=0.5)
    space = portfolio_space(rules)
    assert space["fire_threshold"].low == 0.5 and space["clone_threshold"].low == rules.clone_win_rate
    assert space["promote_threshold"].low == rules.clone_min_sharpe
    assert space["trade_fraction_mult"].high == 1.0 and space["min_reserve_usd"].low == rules.equity_floor_usd
    assert not {"min_confidence", "min_confirmations"} & set(space)  # Rule 2's gate is never searched
    assert clean_portfolio({"tp0": 0.001, "tp1": 0.01, "tp2": 0.008, "trailing_stop": 0.0019}) == \
        {"tp0": 0.0, "tp1": 0.01, "tp2": 0.0, "trailing_stop": 0.0}
    loose = Rules().tightened(fire_win_rate=0.5)
    with pytest.raises(RulesError):  # a set can never make a configured rule looser
        loose.tightened(fire_win_rate=0.45)


# --- portfolio backtest ------------------------------------------------------------------------
class Scripted(Strategy):
    """Entries every `every` bars at `offset`, exit `hold` bars later (params given per test)."""

    name = "scripted"
    default_params = {"every": 20, "offset": 7, "hold": 5}
    param_space = {}

    def signals(self, candles: pl.DataFrame, params: dict[str, Any]) -> Signals:
        n = candles.height
        idx = np.arange(n)
        entries = idx % params["every"] == params["offset"]
        exits = idx % params["every"] == (params["offset"] + params["hold"]) % params["every"]
        return Signals(entries, exits & ~entries, np.ones(n), np.full(n, 3, dtype=np.int64))


def _one(params: dict[str, Any], **portfolio: float) -> ParamSet:
    return ParamSet({**default_param_set().portfolio, **portfolio}, {"scripted": params})


def test_one_slot_without_verdicts_is_the_engines_backtest() -> None:
    df = planted_market(4_000, seed=9)
    params = {"every": 20, "offset": 7, "hold": 5}
    never = Rules(fire_min_trades=10**9, clone_min_trades=10**9)  # Rule 3 never judges: one plain slot
    res = portfolio_backtest({"X": df}, _one(params), initial_cash=1000.0, rules=never,
                             strategies={"scripted": Scripted()})
    size = min(Rules().max_position_fraction, 1 - max(Rules().reserve_floor(1000.0), 10.0) / 1000.0)
    engine = EngineParams(initial_equity=1000.0, fee=FEE_RATE, slippage_bps=SLIPPAGE_BPS, trade_fraction=size)
    ref = run_backtest(df, Scripted(), params, engine, rules=never)
    assert np.allclose(res.equity, ref.equity, rtol=0, atol=1e-9)
    assert res.trades == ref.metrics.closed_trades > 100
    assert res.sharpe == pytest.approx(ref.metrics.sharpe, rel=1e-6)
    assert res.fired == [] and res.cloned == []


def test_rule_3_fires_a_loser_after_its_tenth_round_trip_and_nothing_after() -> None:
    # offset 13 holds through the planted fall (bars 13..18 of each cycle drift down): it loses
    df = planted_market(4_000, seed=9)
    res = portfolio_backtest({"X": df}, _one({"every": 20, "offset": 13, "hold": 5}), initial_cash=1000.0,
                             strategies={"scripted": Scripted()})
    assert res.fired == ["scripted"] and res.trades == Rules().fire_min_trades
    after = res.timestamps > res.closed_exit_ms[-1]
    assert after.sum() > 3_000 and np.all(np.diff(res.equity[after]) == 0)  # flat once fired


def test_rule_3_clones_a_winner_and_its_later_gains_count_twice() -> None:
    df = planted_market(4_000, seed=9)
    params = {"every": 20, "offset": 7, "hold": 5}  # inside the planted rise: wins
    kept = Rules(clone_min_trades=10**9)
    cloned = portfolio_backtest({"X": df}, _one(params), initial_cash=1000.0, strategies={"scripted": Scripted()})
    plain = portfolio_backtest({"X": df}, _one(params), initial_cash=1000.0, rules=kept,
                               strategies={"scripted": Scripted()})
    assert cloned.cloned == ["scripted"] and plain.cloned == []
    # by hand: the clone is decided at the close of round trip 20; from the next entry on each bar's
    # P&L counts twice
    times = plain.timestamps
    twentieth_exit = plain.closed_exit_ms[Rules().clone_min_trades - 1]
    after = times > twentieth_exit
    step = np.diff(plain.equity, prepend=1000.0)
    expected = 1000.0 + np.cumsum(np.where(after, 2.0, 1.0) * step)
    assert np.allclose(cloned.equity, expected, atol=1e-9)
    assert cloned.total_return > plain.total_return > 0


def test_a_stricter_fire_threshold_fires_sooner() -> None:
    df = planted_market(4_000, seed=9)
    # holding one bar past the rise: a thin winner, win rate ~ 60 %
    params = {"every": 20, "offset": 9, "hold": 5}
    base = portfolio_backtest({"X": df}, _one(params), initial_cash=1000.0, strategies={"scripted": Scripted()})
    strict = portfolio_backtest({"X": df}, _one(params, fire_threshold=0.99), initial_cash=1000.0,
                                strategies={"scripted": Scripted()})
    assert strict.fired == ["scripted"] and strict.trades == 10
    assert base.trades > strict.trades
