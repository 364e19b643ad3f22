"""What counts as a confirmation: evidence families checked against hand-built candles whose answer
is known by construction, against independent re-implementations, and on the simulator."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nettrace_dagster.backtest import gate_entries
from nettrace_dagster.market.sim import simulate
from nettrace_dagster.regimes import RegimeConfig, label_regimes
from nettrace_dagster.rules import Rules
from nettrace_dagster.strategies import STRATEGIES, get_strategy, load_strategy_file
from nettrace_dagster.strategies.base import crossed_above
from nettrace_dagster.strategies.evidence import (
    FAMILIES,
    MOMENTUM,
    REGIME,
    TREND,
    VOLATILITY,
    VOLUME,
    Evidence,
    EvidenceConfig,
    Family,
    gather,
    regime_labels,
)
from nettrace_dagster.strategies.indicators import sma
from nettrace_dagster.strategies.templating import list_templates, render_template

RULES = Rules()  # the built-in Rule 2: these tests must not depend on the environment's tightening


def frame(close: np.ndarray, volume: np.ndarray) -> pl.DataFrame:
    """Candles with the given closes (open = previous close) and volumes, one minute apart."""
    close = np.asarray(close, dtype=np.float64)
    open_ = np.concatenate(([close[0]], close[:-1]))
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    return pl.DataFrame({
        "timestamp": [start + dt.timedelta(minutes=i) for i in range(close.shape[0])],
        "open": open_, "high": np.maximum(open_, close) * 1.0001, "low": np.minimum(open_, close) * 0.9999,
        "close": close, "volume": np.asarray(volume, dtype=np.float64),
    }).with_columns(pl.col("timestamp").dt.cast_time_unit("ms"))


N = 600
BAR = np.arange(N)
WIGGLE = np.where(BAR % 2 == 0, 2e-4, -2e-4)  # returns alternate drift ± 4e-4: constant realised volatility
RISING = 100.0 * np.exp(5e-4 * BAR + WIGGLE)  # every return positive: RSI 100, a BULL regime
FALLING = 100.0 * np.exp(-5e-4 * BAR + WIGGLE)
MORE_VOLUME = 100.0 + BAR  # each bar above its own 20-bar mean
FLAT_VOLUME = np.full(N, 100.0)  # never above its mean
WARM = slice(400, N)  # every window (trend 100, volatility 20 + 200, regime 300) is full here


@pytest.mark.parametrize("close, volume, agree", [
    (RISING, MORE_VOLUME, {TREND, MOMENTUM, VOLUME, VOLATILITY, REGIME}),
    (RISING, FLAT_VOLUME, {TREND, MOMENTUM, VOLATILITY, REGIME}),
    (FALLING, MORE_VOLUME, {VOLUME, VOLATILITY}),
    (FALLING, FLAT_VOLUME, {VOLATILITY}),
], ids=["rising+volume", "rising+flat-volume", "falling+volume", "falling+flat-volume"])
def test_families_agree_as_constructed(close: np.ndarray, volume: np.ndarray, agree: set[str]) -> None:
    ev = gather(frame(close, volume))
    for name in FAMILIES:
        fam = ev.families[name]
        assert fam.agrees[WARM].all() == (name in agree) and fam.agrees[WARM].any() == (name in agree), name
        assert ((fam.strength >= 0) & (fam.strength <= 1)).all() and (fam.strength[~fam.agrees] == 0).all()
    np.testing.assert_array_equal(ev.count()[WARM], len(agree))
    for trigger in FAMILIES:  # the trigger's family never counts
        np.testing.assert_array_equal(ev.count(exclude=trigger)[WARM], len(agree - {trigger}))
    assert ev.agreeing(N - 1) == [f for f in FAMILIES if f in agree]


def test_confidence_follows_the_strength_of_the_evidence() -> None:
    more, flat = gather(frame(RISING, MORE_VOLUME)), gather(frame(RISING, FLAT_VOLUME))
    # By construction trend, momentum (RSI 100), volatility (exactly its baseline) and regime are
    # at full strength (weight 0.70 each); the rising volume is barely above its mean.
    volume_strength = MORE_VOLUME[-1] / MORE_VOLUME[-20:].mean() - 1.0
    assert more.families[VOLUME].strength[-1] == pytest.approx(volume_strength)
    assert flat.confidence()[-1] == pytest.approx(1 - 0.3 ** 4)
    assert more.confidence()[-1] == pytest.approx(1 - 0.3 ** 4 * (1 - (0.25 + 0.45 * volume_strength)))
    assert more.confidence()[-1] > flat.confidence()[-1]
    assert (gather(frame(FALLING, FLAT_VOLUME)).confidence()[WARM] < 0.70).all()  # one family: never enough


def synthetic_evidence(strengths: dict[str, float]) -> Evidence:
    fams = {name: Family(np.array([name in strengths]), np.array([strengths.get(name, 0.0)])) for name in FAMILIES}
    return Evidence(fams, 1)


def test_confidence_is_a_noisy_or_of_the_agreeing_families() -> None:
    assert synthetic_evidence({}).confidence()[0] == 0.0
    one_full = synthetic_evidence({VOLUME: 1.0})
    assert one_full.confidence()[0] == pytest.approx(0.70) and one_full.count()[0] == 1
    assert synthetic_evidence({VOLUME: 0.0, REGIME: 0.0}).confidence()[0] == pytest.approx(1 - 0.75 ** 2)
    assert synthetic_evidence({VOLUME: 0.5, REGIME: 0.5}).confidence()[0] == pytest.approx(1 - 0.525 ** 2)
    assert synthetic_evidence({f: 1.0 for f in FAMILIES}).confidence(exclude=TREND)[0] == pytest.approx(1 - 0.3 ** 4)
    # excluding the trigger's family removes its weight too
    both = synthetic_evidence({TREND: 1.0, VOLUME: 0.5})
    assert both.confidence(exclude=TREND)[0] == pytest.approx(0.25 + 0.45 * 0.5)


def dip_and_recovery() -> tuple[pl.DataFrame, int]:
    """Flat at 100 (alternating ±0.1 %), a 9-bar dip to 95, back to 100; constant volume. The fast
    SMA crosses back above the slow one a few bars after the recovery — a trend event only:
    the close equals the close 20 bars earlier (no momentum), volume is flat, the regime is
    SIDEWAYS and the recovery's jumps are a volatility spike."""
    n, dip = 700, 600
    level = np.where((np.arange(n) >= dip) & (np.arange(n) < dip + 9), 95.0, 100.0)
    close = level * (1 + 0.001 * np.where(np.arange(n) % 2 == 0, 1, -1))
    df = frame(close, np.full(n, 50.0))
    cross = crossed_above(sma(close, 10), sma(close, 30))
    bar = dip + 9 + int(np.flatnonzero(cross[dip + 9:dip + 20])[0])
    return df, bar


def test_sma_cross_is_not_confirmed_by_its_own_moving_averages() -> None:
    df, bar = dip_and_recovery()
    close = df["close"].to_numpy()
    # the construction, checked independently
    assert close[bar] == close[bar - 20]  # no momentum
    assert (df["volume"] == 50.0).all()  # no volume
    assert label_regimes(df, RegimeConfig())["regime"][bar] == "SIDEWAYS"
    s = get_strategy("sma_cross").run(df)
    assert s.entries[bar]
    # before: confidence 1.0 and 2 "confirmations" (the cross, and fast above slow) on every cross
    assert s.confirmations[bar] < 2 and s.confidence[bar] < 0.70
    assert not gate_entries(s, rules=RULES)[bar]
    assert s.confirmations[bar] == 0


@pytest.mark.parametrize("seed", [7, 11, 23])
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_confidence_varies_and_entries_still_happen_on_the_simulator(name: str, seed: int) -> None:
    df = simulate("BTC-USDT", 10_080, seed)
    s = get_strategy(name).run(df)
    conf, count = s.confidence[s.entries], s.confirmations[s.entries]
    assert conf.size > 20
    assert np.unique(np.round(conf, 6)).size > 10 and conf.std() > 0.02  # not a constant
    assert count.max() <= len(FAMILIES) - 1  # the trigger's family never counts
    passed = gate_entries(s, rules=RULES)
    assert passed.any()  # the strategy still trades
    assert not passed[s.entries].all()  # and the gate decides something: not every trigger trades
    assert (count[passed[s.entries]] >= 2).all() and (conf[passed[s.entries]] >= 0.70).all()


@pytest.mark.parametrize("builtin", sorted(STRATEGIES))
def test_every_strategy_counts_families_not_conditions(builtin: str) -> None:
    """On the hand-built series every family's verdict is known: each strategy (and each template)
    reports exactly the agreeing families other than its trigger's, at every warm bar."""
    strategy = get_strategy(builtin)
    assert strategy.trigger_family in FAMILIES
    for volume, agree in ((MORE_VOLUME, {TREND, MOMENTUM, VOLUME, VOLATILITY, REGIME}),
                          (FLAT_VOLUME, {TREND, MOMENTUM, VOLATILITY, REGIME})):
        s = strategy.run(frame(RISING, volume))
        np.testing.assert_array_equal(s.confirmations[WARM], len(agree - {strategy.trigger_family}))


@pytest.mark.parametrize("template", list_templates())
def test_templates_count_families_not_conditions(template: str, tmp_path: Path) -> None:
    path = tmp_path / f"{template}_t.py"
    path.write_text(render_template(template, f"{template}_t"))
    strategy = load_strategy_file(path)
    assert strategy.trigger_family in FAMILIES
    s = strategy.run(frame(RISING, MORE_VOLUME))
    np.testing.assert_array_equal(s.confirmations[WARM], len(FAMILIES) - 1)
    s = strategy.run(frame(RISING, FLAT_VOLUME))
    np.testing.assert_array_equal(s.confirmations[WARM], len(FAMILIES) - 2)
    sim = strategy.run(simulate("ETH-USDT", 10_080, 11))
    assert gate_entries(sim, rules=RULES).any() and np.ptp(sim.confidence[sim.entries]) > 0.05


# ---------------------------------------------------------------- independent re-implementations
def wilder_rsi(x: np.ndarray, window: int) -> np.ndarray:
    out = np.full(x.shape[0], np.nan)
    d = np.diff(x)
    gain, loss = np.mean(np.maximum(d[:window], 0)), np.mean(np.maximum(-d[:window], 0))
    for i in range(window, x.shape[0]):
        if i > window:
            gain = (gain * (window - 1) + max(d[i - 1], 0)) / window
            loss = (loss * (window - 1) + max(-d[i - 1], 0)) / window
        out[i] = 100.0 if loss == 0 and gain > 0 else 50.0 if loss == 0 else 100 - 100 / (1 + gain / loss)
    return out


def test_families_match_independent_implementations() -> None:
    df = simulate("SOL-USDT", 5_000, 23)
    cfg = EvidenceConfig(trend_window=60, volume_window=30)
    ev = gather(df, cfg)
    c = pl.col("close")
    ref = df.select(
        ma=c.rolling_mean(60),
        ma_then=c.rolling_mean(60).shift(6),
        roc=c / c.shift(20) - 1,
        vol_mean=pl.col("volume").rolling_mean(30),
        rv=c.log().diff().rolling_std(20, ddof=0),
    ).with_columns(baseline=pl.col("rv").rolling_mean(200))
    close, volume = df["close"].to_numpy(), df["volume"].to_numpy()

    def same(name: str, expected: np.ndarray, margin: np.ndarray) -> None:
        # compare where the reference is not within rounding of a threshold
        clear = np.nan_to_num(np.abs(margin), nan=1.0) > 1e-9
        np.testing.assert_array_equal(ev.families[name].agrees[clear], np.nan_to_num(expected[clear]).astype(bool))

    ma, ma_then = ref["ma"].to_numpy(), ref["ma_then"].to_numpy()
    with np.errstate(invalid="ignore"):
        same(TREND, (close > ma) & (ma > ma_then), np.minimum(np.abs(close / ma - 1), np.abs(ma / ma_then - 1)))
        rsi = wilder_rsi(close, 14)
        roc = ref["roc"].to_numpy()
        same(MOMENTUM, (roc > 0) & (rsi > 50), np.minimum(np.abs(roc), np.abs(rsi - 50)))
        vm = ref["vol_mean"].to_numpy()
        same(VOLUME, volume > vm, volume / vm - 1)
        ratio = ref["rv"].to_numpy() / ref["baseline"].to_numpy()
        same(VOLATILITY, (ratio >= 0.5) & (ratio <= 1.5), np.minimum(np.abs(ratio - 0.5), np.abs(ratio - 1.5)))
    labels = label_regimes(df, RegimeConfig())["regime"].to_numpy()  # the regimes asset's own labels
    np.testing.assert_array_equal(ev.families[REGIME].agrees, labels == "BULL")
    idx, _ = regime_labels(close, cfg)
    np.testing.assert_array_equal(np.array(["BULL", "BEAR", "SIDEWAYS"])[idx], labels)
    for name in FAMILIES:
        assert ev.families[name].agrees.any() and not ev.families[name].agrees.all(), name


def test_evidence_is_causal() -> None:
    df = simulate("BTC-USDT", 3_000, 11)
    full = gather(df)
    for cut in (1, 250, 1_234, 2_999):
        part = gather(df.head(cut))
        for name in FAMILIES:
            np.testing.assert_array_equal(part.families[name].agrees, full.families[name].agrees[:cut])
            np.testing.assert_array_equal(part.families[name].strength, full.families[name].strength[:cut])


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="trend_window"):
        EvidenceConfig(trend_window=0)
    with pytest.raises(ValueError, match="regime_accepts"):
        EvidenceConfig(regime_accepts=("UP",))
    with pytest.raises(ValueError, match="unknown evidence family"):
        gather(frame(RISING, FLAT_VOLUME), families=["vibes"])
