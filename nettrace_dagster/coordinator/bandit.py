"""Strategies competing for the same capital are settled by a bandit on Sharpe (Thompson sampling).

Each strategy's per-trade returns give a posterior for its mean return (normal, with a prior of
mean 0 worth `PRIOR_TRADES` trades, so an untested strategy is neither favoured nor starved); one
draw per strategy, divided by its return volatility, is its sampled Sharpe. Capital goes in order
of the draws: good strategies usually win, uncertain ones still get explored. The draw is seeded
by the caller (the tick's bar), so a replayed tick settles the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

PRIOR_TRADES = 2.0
MIN_VOL = 0.005  # floor of per-trade return volatility (0.5 %): one lucky trade is not infinite Sharpe


def sampled_sharpes(returns: Mapping[str, Sequence[float]], seed: str) -> dict[str, float]:
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big"))
    out: dict[str, float] = {}
    for name in sorted(returns):  # sorted: the draw order (and so the result) is reproducible
        r = np.asarray(returns[name], dtype=np.float64)
        n = r.size
        vol = max(float(r.std(ddof=1)) if n >= 2 else 0.0, MIN_VOL)
        post_mean = float(r.sum()) / (n + PRIOR_TRADES)
        post_sd = vol / np.sqrt(n + PRIOR_TRADES)
        out[name] = float(rng.normal(post_mean, post_sd)) / vol
    return out


def rank(returns: Mapping[str, Sequence[float]], seed: str) -> list[tuple[str, float]]:
    """Strategies best first, with their sampled Sharpe."""
    draws = sampled_sharpes(returns, seed)
    return sorted(draws.items(), key=lambda kv: (-kv[1], kv[0]))
