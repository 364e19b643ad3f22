"""Performance metrics, annualisation by timeframe, and the deflated Sharpe ratio."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np

from nettrace_dagster.backtest import kernel as K

DAYS_PER_YEAR = 365  # crypto trades every day; pass periods_per_year for markets that close
EULER_GAMMA = 0.5772156649015329
_N = NormalDist()


def periods_per_year(timeframe_seconds: float | None, days_per_year: float = DAYS_PER_YEAR) -> float:
    """Bars per year for a timeframe in seconds (1m → 525,600). Unknown timeframe: daily bars."""
    if not timeframe_seconds or timeframe_seconds <= 0:
        return float(days_per_year)
    return days_per_year * 86400.0 / float(timeframe_seconds)


@dataclass(frozen=True)
class Metrics:
    """Headline numbers of one backtest. Returns and drawdowns are fractions (0.05 = 5 %)."""

    initial_equity: float
    final_equity: float
    total_return: float
    sharpe: float
    sortino: float
    max_drawdown: float
    win_rate: float
    profit_factor: float
    trades: int
    closed_trades: int
    exposure: float
    fees_paid: float
    bars: int
    periods_per_year: float

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-safe: non-finite numbers (profit factor without losses) become None."""
        out: dict[str, float | int | None] = {}
        for key, value in asdict(self).items():
            out[key] = value if not isinstance(value, float) or math.isfinite(value) else None
        return out


def metrics_from_stats(stats: np.ndarray, initial_equity: float, bars: int, ppy: float) -> Metrics:
    """Metrics from the kernel's streaming stats vector (no equity curve needed)."""
    final = float(stats[K.S_FINAL_EQUITY])
    n = max(bars, 1)
    mean = stats[K.S_SUM_R] / n
    var = (stats[K.S_SUMSQ_R] - n * mean * mean) / (n - 1) if n > 1 else 0.0
    std = math.sqrt(var) if var > 0 else 0.0
    down = math.sqrt(stats[K.S_SUMDOWN_SQ] / n)
    ann = math.sqrt(ppy)
    closed = int(stats[K.S_CLOSED])
    gp, gl = float(stats[K.S_GROSS_PROFIT]), float(stats[K.S_GROSS_LOSS])
    if gl > 0:
        pf = gp / gl
    else:
        pf = math.inf if gp > 0 else math.nan
    return Metrics(
        initial_equity=float(initial_equity),
        final_equity=final,
        total_return=final / initial_equity - 1.0,
        sharpe=float(mean / std * ann) if std > 0 else 0.0,
        sortino=float(mean / down * ann) if down > 0 else (math.inf if mean > 0 else 0.0),
        max_drawdown=float(stats[K.S_MAX_DD]),
        win_rate=float(stats[K.S_WINS] / closed) if closed else 0.0,
        profit_factor=pf,
        trades=int(stats[K.S_TRADES]),
        closed_trades=closed,
        exposure=float(stats[K.S_EXPOSURE] / n) if bars else 0.0,
        fees_paid=float(stats[K.S_FEES]),
        bars=int(bars),
        periods_per_year=float(ppy),
    )


def sharpe_ratio(returns: np.ndarray, ppy: float = 1.0) -> float:
    """Annualised Sharpe of per-bar returns (ddof 1); 0 when they do not vary."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size < 2:
        return 0.0
    std = r.std(ddof=1)
    return float(r.mean() / std * math.sqrt(ppy)) if std > 0 else 0.0


def max_drawdown(equity: np.ndarray) -> float:
    """Largest fall from a running peak, as a fraction of the peak."""
    eq = np.asarray(equity, dtype=np.float64)
    if eq.size == 0:
        return 0.0
    return float(np.max(1.0 - eq / np.maximum.accumulate(eq)))


def probabilistic_sharpe_ratio(sharpe: float, benchmark: float, n_obs: int,
                               skew: float = 0.0, kurtosis: float = 3.0) -> float:
    """P(true Sharpe > benchmark) given an observed per-period Sharpe over `n_obs` returns with the
    returns' skewness and (non-excess) kurtosis (Bailey & López de Prado, 2012)."""
    if n_obs < 2:
        return float("nan")
    denom = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe * sharpe
    if denom <= 0:
        return float("nan")
    return _N.cdf((sharpe - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(denom))


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """Expected maximum of `n_trials` Sharpe estimates with true Sharpe 0 and the given variance
    across trials — the benchmark SR0 of the deflated Sharpe ratio."""
    if n_trials < 2 or sharpe_variance <= 0:
        return 0.0
    a = _N.inv_cdf(1.0 - 1.0 / n_trials)
    b = _N.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(sharpe_variance) * ((1.0 - EULER_GAMMA) * a + EULER_GAMMA * b)


def deflated_sharpe_ratio(sharpe: float, n_obs: int, n_trials: int, sharpe_variance: float,
                          skew: float = 0.0, kurtosis: float = 3.0) -> float:
    """Deflated Sharpe ratio (Bailey & López de Prado, 2014): the probability that the best of
    `n_trials` strategies has a true Sharpe above zero, correcting for selection among trials and
    for non-normal returns.

    Every Sharpe here is *per period* (not annualised): `sharpe` is the selected trial's,
    `sharpe_variance` the variance of the per-period Sharpes across all trials, `n_obs` the number
    of returns, `skew`/`kurtosis` (non-excess, normal = 3) those of the selected trial's returns.
    Divide an annualised Sharpe by sqrt(periods_per_year) to get the per-period one.
    """
    sr0 = expected_max_sharpe(n_trials, sharpe_variance)
    return probabilistic_sharpe_ratio(sharpe, sr0, n_obs, skew, kurtosis)


def deflated_sharpe_from_returns(returns: np.ndarray, trial_sharpes: np.ndarray | list[float]) -> float:
    """Deflated Sharpe of the selected strategy's per-bar `returns`, given the per-period Sharpes
    of every trial of the search (including the selected one)."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size < 3 or r.std() == 0:
        return float("nan")
    sr = r.mean() / r.std(ddof=1)
    z = (r - r.mean()) / r.std()
    skew = float(np.mean(z ** 3))
    kurt = float(np.mean(z ** 4))
    trials = np.asarray(trial_sharpes, dtype=np.float64)
    trials = trials[np.isfinite(trials)]
    var = float(trials.var(ddof=1)) if trials.size > 1 else 0.0
    return deflated_sharpe_ratio(float(sr), int(r.size), max(int(trials.size), 1), var, skew, kurt)
