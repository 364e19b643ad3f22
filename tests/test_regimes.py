import polars as pl
import pytest

from nettrace_dagster.market.sim import simulate
from nettrace_dagster.regimes import RegimeConfig, balanced_accuracy, label_regimes, rolling_trend
from nettrace_dagster.settings import load_settings

# Measured on the default simulation (seed 7, 10,080 bars, window 300): 0.933 / 0.866 / 0.931.
ACCURACY_FLOOR = 0.85


@pytest.mark.parametrize("symbol", ["BTC-USDT", "ETH-USDT", "SOL-USDT"])
def test_accuracy_on_default_simulation(symbol: str) -> None:
    s = load_settings({})
    df = simulate(symbol, s.nettrace_sim_bars, s.nettrace_sim_seed)
    cfg = RegimeConfig(s.regime_bull_threshold, s.regime_bear_threshold, s.nettrace_regime_window)
    labels = label_regimes(df, cfg)
    assert balanced_accuracy(df["true_regime"], labels["regime"]) >= ACCURACY_FLOOR


def test_trend_is_the_fitted_window_return() -> None:
    close = pl.Series([100 * 1.001 ** i for i in range(400)]).to_numpy()
    trend = rolling_trend(close, 300)
    assert abs(trend[-1] - 300 * 0.0009995) < 1e-6  # log(1.001) per bar × window


def test_labels_are_causal() -> None:
    df = simulate("BTC-USDT", 3000, 7)
    full = label_regimes(df, RegimeConfig())
    prefix = label_regimes(df.head(2000), RegimeConfig())
    assert full.head(2000)["regime"].equals(prefix["regime"])


def test_thresholds_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="must be below"):
        RegimeConfig(bull_threshold=-0.02, bear_threshold=0.01)


def test_no_truth_means_no_accuracy() -> None:
    assert balanced_accuracy(pl.Series([None, None], dtype=pl.String), pl.Series(["BULL", "BEAR"])) is None
