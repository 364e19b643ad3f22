"""Scoring opportunities: five criteria in [0, 1], weighted, each with the reason in words.

| criterion | weight | 1.0 means |
|---|---|---|
| novelty | 25 % | unlike everything seen before it (1 − the highest TF-IDF cosine similarity to an earlier item) |
| market fit | 25 % | names an asset we trade (0.6) and a technique the engine expresses (0.4) |
| complexity | 15 % | simple: a built-in template covers it and it needs no data we lack |
| capital efficiency | 15 % | works with a small spot account (no leverage, venues or locked capital) |
| risk | 20 % | safe: no leverage, martingale or unaudited launch; stops, drawdown, out-of-sample named |

Higher is better for every criterion (complexity and risk score *low* complexity and *low* risk).
The text criteria are keyword rules on purpose: a trader can read why a score is what it is, and
a test can compute it by hand. Novelty uses TF-IDF with numpy only (no model download), against
every opportunity scored before plus the earlier ones of the same batch, so an item's novelty is
fixed when it is first scored. Optional Claude-assisted scoring blends Claude's judgement of the
four text criteria 50/50 with these (see `claude.py`).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

WEIGHTS = {"novelty": 0.25, "market_fit": 0.25, "complexity": 0.15, "capital_efficiency": 0.15, "risk": 0.20}
CRITERIA = tuple(WEIGHTS)

ASSET_NAMES = {"BTC": ("bitcoin",), "ETH": ("ether", "ethereum"), "SOL": ("solana",)}
CRYPTO_TERMS = ("crypto", "cryptocurrency", "cryptocurrencies", "token", "tokens", "defi", "altcoin", "stablecoin",
                "blockchain", "perps", "perpetual", "perpetuals", "dex")
# Technique → the template that expresses it (the engine's templates, strategies/templates/).
TECHNIQUES: dict[str, tuple[str, ...]] = {
    "momentum": ("momentum", "breakout", "breaks the", "rate of change"),
    "mean_reversion": ("mean reversion", "mean-reversion", "bollinger", "oversold", "rsi", "rebound"),
    "crossover": ("moving average crossover", "crossover", "crossovers", "trend following", "trend-following"),
}
TRADING_TERMS = ("trading", "strategy", "backtest", "sharpe", "signal", "alpha", "returns", "volatility")
MISSING_DATA = {"order book": ("order book", "limit order book", "level 2", "level-2", "level 3", "level-3"),
                "tick data": ("tick data", "microsecond", "co-located", "colocation", "latency"),
                "on-chain data": ("on-chain", "mempool"), "sentiment/news": ("sentiment", "news feed"),
                "options": ("options", "implied volatility"), "funding rates": ("funding rate",),
                "a trained model": ("reinforcement learning", "deep learning", "neural network", "transformer")}
SMALL_CAPITAL = ("spot", "small account", "small accounts", "long-only", "long only", "single exchange",
                 "no leverage", "without leverage")
CAPITAL_HEAVY = ("market making", "arbitrage", "several venues", "multiple exchanges", "both exchanges",
                 "capital parked", "staking", "liquidity providers", "liquidity provider", "vault", "leverage",
                 "margin")
HAZARDS = ("leverage", "martingale", "grid", "doubles the position", "memecoin", "presale", "airdrop",
           "unaudited", "not audited", "guaranteed", "100x", "exploit", "rug")
MITIGATIONS = ("stop loss", "trailing stop", "drawdown", "risk management", "out-of-sample", "walk-forward",
               "backtest", "backtests", "audited")
# Negated phrases are removed before hazards are counted ("no leverage" is not leverage).
NEGATIONS = ("no leverage", "without leverage")
SOURCE_RISK = {"arxiv": 0.1, "sec": 0.1, "reddit": -0.05, "social": -0.1}
STOPWORDS = frozenset("a an and are as at be by for from has have in is it its of on or that the this to was "
                      "we with our their them they not no can will across after before into over under more "
                      "less than then when which who why how all any each per".split())


@dataclass(frozen=True)
class Criterion:
    score: float
    why: str


def _clamp(x: float) -> float:
    return max(0.0, min(1.0, x))


def _lower(title: str, text: str) -> str:
    return f" {title} {text} ".lower()


def mentions(text: str, phrases: Iterable[str]) -> list[str]:
    """The phrases that occur in `text` as whole words (text already lower-case)."""
    return [p for p in phrases if re.search(r"(?<![a-z0-9])" + re.escape(p) + r"(?![a-z0-9])", text)]


def market_fit(title: str, text: str, traded: Iterable[str]) -> Criterion:
    body = _lower(title, text)
    assets = [b for b in traded if mentions(body, (b.lower(), *ASSET_NAMES.get(b, ())))]
    crypto = mentions(body, CRYPTO_TERMS)
    a, a_why = ((1.0, f"names traded asset(s) {', '.join(assets)}") if assets else
                (0.5, f"crypto in general ({', '.join(crypto[:3])}), no traded asset") if crypto else
                (0.0, "no crypto asset named"))
    techniques = [t for t, words in TECHNIQUES.items() if mentions(body, words)]
    generic = mentions(body, TRADING_TERMS)
    t, t_why = ((1.0, f"technique the engine expresses: {', '.join(techniques)}") if techniques else
                (0.5, f"trading idea ({', '.join(generic[:3])}) without a known technique") if generic else
                (0.0, "no trading technique"))
    return Criterion(round(0.6 * a + 0.4 * t, 4), f"{a_why} (asset {a:g} × 0.6); {t_why} (technique {t:g} × 0.4)")


def suggested_template(title: str, text: str) -> str | None:
    """The template whose technique words occur most often (ties: momentum, mean_reversion, crossover)."""
    body = _lower(title, text)
    counts = {t: sum(len(re.findall(r"(?<![a-z0-9])" + re.escape(w) + r"(?![a-z0-9])", body)) for w in words)
              for t, words in TECHNIQUES.items()}
    best = max(counts, key=lambda t: counts[t])
    return best if counts[best] else None


def complexity(title: str, text: str) -> Criterion:
    body = _lower(title, text)
    template = suggested_template(title, text)
    base, why = ((1.0, f"the {template} template covers it") if template else
                 (0.6, "a trading idea no template covers") if mentions(body, TRADING_TERMS) else
                 (0.4, "no recognisable trading logic"))
    missing = [need for need, words in MISSING_DATA.items() if mentions(body, words)]
    score = _clamp(base - 0.25 * len(missing))
    if missing:
        why += f"; needs what NetTrace lacks: {', '.join(missing)} (−0.25 each)"
    return Criterion(round(score, 4), f"{why} → {score:.2f}")


def capital_efficiency(title: str, text: str) -> Criterion:
    body = _lower(title, text)
    small = mentions(body, SMALL_CAPITAL)
    heavy = mentions(_strip(body, NEGATIONS), CAPITAL_HEAVY)
    score = _clamp(0.7 + (0.3 if small else 0.0) - 0.25 * len(heavy))
    parts = ["base 0.70"]
    if small:
        parts.append(f"+0.30 small-capital friendly ({', '.join(small[:3])})")
    if heavy:
        parts.append(f"−0.25 each for capital-heavy {', '.join(heavy)}")
    return Criterion(round(score, 4), f"{'; '.join(parts)} → {score:.2f}")


def risk(title: str, text: str, source: str) -> Criterion:
    body = _lower(title, text)
    hazards = mentions(_strip(body, NEGATIONS), HAZARDS)
    unaudited = bool(mentions(body, ("unaudited", "not audited")))
    mitigations = [m for m in mentions(body, MITIGATIONS) if m != "audited" or not unaudited]
    adjust = SOURCE_RISK.get(source, 0.0)
    score = _clamp(0.6 - 0.2 * len(hazards) + 0.1 * len(mitigations) + adjust)
    parts = ["base 0.60"]
    if hazards:
        parts.append(f"−0.20 each for {', '.join(hazards)}")
    if mitigations:
        parts.append(f"+0.10 each for {', '.join(mitigations)}")
    if adjust:
        parts.append(f"{adjust:+.2f} for the {source} source")
    return Criterion(round(score, 4), f"{'; '.join(parts)} → {score:.2f}")


def _strip(body: str, phrases: Iterable[str]) -> str:
    for p in phrases:
        body = body.replace(p, " ")
    return body


def tokens(text: str) -> list[str]:
    return [t for t in re.findall(r"[a-z0-9]+", text.lower()) if t not in STOPWORDS and len(t) > 1]


def novelty(docs: list[str], prior: int) -> list[tuple[float, int | None]]:
    """For docs[prior:], (1 − the highest cosine similarity to any earlier doc, that doc's index).

    TF-IDF over all `docs` (raw term counts × smoothed idf = ln((1 + N) / (1 + df)) + 1, vectors
    L2-normalised). Docs are compared in order through an inverted index: O(shared terms), so a
    batch against thousands of earlier items stays fast without a dense matrix."""
    counts = [Counter(tokens(d)) for d in docs]
    df = Counter(t for c in counts for t in c)
    n = len(docs)
    idf = {t: math.log((1 + n) / (1 + k)) + 1.0 for t, k in df.items()}
    vectors = []
    for c in counts:
        weights = {t: f * idf[t] for t, f in c.items()}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        vectors.append({t: w / norm for t, w in weights.items()})
    postings: dict[str, tuple[list[int], list[float]]] = {}
    out: list[tuple[float, int | None]] = []
    for i, vec in enumerate(vectors):
        if i >= prior:
            sims = np.zeros(max(i, 1))
            for t, w in vec.items():
                if t in postings:
                    idx, ws = postings[t]
                    np.add.at(sims, idx, w * np.asarray(ws))
            j = int(np.argmax(sims)) if i else None
            best = float(sims[j]) if j is not None else 0.0
            out.append((round(_clamp(1.0 - best), 4), j if best > 0 else None))
        for t, w in vec.items():
            idx, ws = postings.setdefault(t, ([], []))
            idx.append(i)
            ws.append(w)
    return out


def total(scores: dict[str, float]) -> float:
    return round(sum(WEIGHTS[c] * scores[c] for c in CRITERIA), 4)
