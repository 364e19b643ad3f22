"""Scoring: each criterion against values worked out by hand, novelty against a plain-Python
TF-IDF, the weighted total, scores fixed once given, and Claude-assisted scoring through a fake."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from nettrace_dagster.discovery import scoring
from nettrace_dagster.discovery.claude import ClaudeConfig
from nettrace_dagster.discovery.opportunities import SCHEMA
from nettrace_dagster.discovery.scored import claude_scorer, score_new
from tests.fakes.anthropic_api import FakeAnthropic

TRADED = ["BTC", "ETH", "SOL"]


@pytest.mark.parametrize("title, text, expected", [
    ("Momentum in BTC", "", 1.0),                       # traded asset 1 × 0.6 + technique 1 × 0.4
    ("Crypto trading ideas", "", 0.5),                  # generic crypto 0.5 × 0.6 + generic trading 0.5 × 0.4
    ("Solana validators", "", 0.6),                     # traded asset only
    ("Bollinger bands on equities", "", 0.4),           # technique only
    ("A weather report", "sunny", 0.0),
    ("BTCUSD perps", "", 0.3),                          # BTCUSD is not the word BTC; perps is generic crypto
])
def test_market_fit(title: str, text: str, expected: float) -> None:
    got = scoring.market_fit(title, text, TRADED)
    assert got.score == pytest.approx(expected) and "× 0.6" in got.why and "× 0.4" in got.why


@pytest.mark.parametrize("text, expected, template", [
    ("mean reversion on 1h bars", 1.0, "mean_reversion"),
    ("mean reversion using the limit order book", 0.75, "mean_reversion"),   # − order book
    ("a trading strategy", 0.6, None),
    ("a trading strategy using sentiment and options", 0.1, None),          # 0.6 − 2 × 0.25
    ("nothing here", 0.4, None),
    ("momentum from tick data, on-chain flows, options and a neural network", 0.0, "momentum"),  # clamped
])
def test_complexity(text: str, expected: float, template: str | None) -> None:
    got = scoring.complexity("", text)
    assert got.score == pytest.approx(expected)
    assert scoring.suggested_template("", text) == template


@pytest.mark.parametrize("text, expected", [
    ("spot only", 1.0),
    ("a plain idea", 0.7),
    ("staking rewards", 0.45),
    ("market making and arbitrage with leverage", 0.0),     # 0.7 − 3 × 0.25, clamped
    ("works without leverage on spot", 1.0),                 # the negation is not leverage
    ("spot arbitrage", 0.75),                                # 0.7 + 0.3 − 0.25
])
def test_capital_efficiency(text: str, expected: float) -> None:
    assert scoring.capital_efficiency("", text).score == pytest.approx(expected)


@pytest.mark.parametrize("text, source, expected", [
    ("a plain idea", "manual", 0.6),
    ("martingale with leverage", "reddit", 0.15),                # 0.6 − 0.4 − 0.05
    ("stop loss and drawdown control", "arxiv", 0.9),            # 0.6 + 0.2 + 0.1
    ("unaudited vault", "defillama", 0.4),                       # audited inside unaudited is no credit
    ("audited lending", "defillama", 0.7),
    ("memecoin presale airdrop, 100x guaranteed", "social", 0.0),
    ("no leverage, stop loss", "social", 0.6),                   # 0.6 + 0.1 − 0.1
])
def test_risk(text: str, source: str, expected: float) -> None:
    assert scoring.risk("", text, source).score == pytest.approx(expected)


def _oracle_novelty(docs: list[list[str]], i: int) -> float:
    """1 − max cosine of doc i to docs before it, TF-IDF by hand: tf = count, idf = ln((1+N)/(1+df)) + 1."""
    n = len(docs)
    vocab = sorted({t for d in docs for t in d})
    idf = {t: math.log((1 + n) / (1 + sum(t in d for d in docs))) + 1 for t in vocab}
    vec = [[d.count(t) * idf[t] for t in vocab] for d in docs]

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))

    return 1 - max((cos(vec[i], vec[j]) for j in range(i)), default=0.0)


def test_novelty_matches_a_hand_computed_tfidf() -> None:
    docs = ["alpha beta gamma", "alpha beta delta delta", "epsilon zeta", "alpha beta gamma"]
    got = scoring.novelty(docs, prior=1)
    toks = [d.split() for d in docs]
    assert [g[0] for g in got] == pytest.approx([_oracle_novelty(toks, i) for i in (1, 2, 3)], abs=1e-4)
    assert got[1] == (1.0, None)             # nothing in common with anything before it
    assert got[2][0] == pytest.approx(0.0) and got[2][1] == 0  # a repeat of the first: no novelty
    assert 0.0 < got[0][0] < 1.0


def _opps(rows: list[tuple[str, str, str]], start: datetime) -> pl.DataFrame:
    return pl.DataFrame([{"opportunity_id": oid, "source": "manual", "title": title, "text": text, "url": "",
                          "author": "", "published": None, "fetched_at": start + timedelta(seconds=i), "feed": "manual",
                          "content_hash": "0" * 64, "tags": ""} for i, (oid, title, text) in enumerate(rows)],
                        schema=SCHEMA)


T0 = datetime(2026, 11, 1, tzinfo=UTC)


def test_total_is_the_weighted_sum_and_the_threshold_applies() -> None:
    df = score_new(_opps([("a", "Momentum on BTC spot", "stop loss")], T0), None, TRADED, 0.65)
    row = df.row(0, named=True)
    # novelty 1 (first), fit 1, complexity 1 (momentum template), capital 1 (spot), risk 0.7 (stop loss)
    assert [row[c] for c in scoring.CRITERIA] == pytest.approx([1.0, 1.0, 1.0, 1.0, 0.7])
    assert row["score"] == pytest.approx(0.25 + 0.25 + 0.15 + 0.15 + 0.2 * 0.7)
    assert row["above_threshold"] and row["template"] == "momentum" and row["scorer"] == "heuristic"
    assert all(row[f"{c}_why"] for c in scoring.CRITERIA)
    low = score_new(_opps([("b", "A weather report", "")], T0), None, TRADED, 0.65).row(0, named=True)
    # 0.25 × 1 + 0 + 0.15 × 0.4 + 0.15 × 0.7 + 0.2 × 0.6
    assert low["score"] == pytest.approx(0.25 + 0.06 + 0.105 + 0.12) and not low["above_threshold"]
    assert sum(scoring.WEIGHTS.values()) == pytest.approx(1.0)


def test_scores_are_given_once_and_novelty_counts_what_came_before() -> None:
    first = _opps([("a", "ETH momentum breakout", "volume confirmed")], T0)
    df1 = score_new(first, None, TRADED, 0.65)
    both = pl.concat([first, _opps([("b", "ETH momentum breakout", "volume confirmed")], T0 + timedelta(hours=1))])
    df2 = score_new(both, df1, TRADED, 0.65)
    assert df2.height == 2 and df2.row(0) == df1.row(0)  # the earlier row is kept as it was
    repeat = df2.row(1, named=True)
    assert repeat["novelty"] == pytest.approx(0.0) and "ETH momentum breakout" in repeat["novelty_why"]
    assert score_new(both, df2, TRADED, 0.65).equals(df2)  # nothing new, nothing added


CLAUDE_JSON = ('{"market_fit": {"score": 0.2, "why": "equities"}, "complexity": {"score": 0.4, "why": "hard"}, '
               '"capital_efficiency": {"score": 0.6, "why": "ok"}, "risk": {"score": 0.8, "why": "fine"}}')


def test_claude_assisted_scoring_blends_half_and_half() -> None:
    with FakeAnthropic() as fake:
        fake.reply(text=f"Here you go:\n{CLAUDE_JSON}")
        config = ClaudeConfig(api_key="test-key", model="claude-test", base_url=fake.base_url, timeout=5, max_retries=0)
        row = score_new(_opps([("a", "Momentum on BTC spot", "stop loss")], T0), None, TRADED, 0.65,
                        claude=claude_scorer(config), claude_budget=1).row(0, named=True)
        assert fake.requests[0]["body"]["model"] == "claude-test"
    assert row["scorer"] == "heuristic+claude"
    assert [row[c] for c in ("market_fit", "complexity", "capital_efficiency", "risk")] == pytest.approx(
        [0.5 * 1 + 0.5 * 0.2, 0.5 * 1 + 0.5 * 0.4, 0.5 * 1 + 0.5 * 0.6, 0.5 * 0.7 + 0.5 * 0.8])
    assert row["novelty"] == 1.0 and "Claude 0.20: equities" in row["market_fit_why"]


@pytest.mark.parametrize("script, reason", [
    ({"status": 529}, "Claude is overloaded (HTTP 529) after 0 retries"),
    ({"text": "I think it is good."}, "Claude's reply contains no JSON object"),
    ({"text": '{"market_fit": {"score": 7}}'}, "Claude's market_fit score is missing or outside [0, 1]"),
])
def test_claude_scoring_failures_keep_the_heuristic(script: dict, reason: str) -> None:
    opps = _opps([("a", "Momentum on BTC spot", "stop loss")], T0)
    plain = score_new(opps, None, TRADED, 0.65).row(0, named=True)
    with FakeAnthropic() as fake:
        fake.reply(**script)
        config = ClaudeConfig(api_key="k", model="m", base_url=fake.base_url, timeout=5, max_retries=0)
        row = score_new(opps, None, TRADED, 0.65, claude=claude_scorer(config), claude_budget=1).row(0, named=True)
    assert row["scorer"] == f"heuristic (Claude: {reason})"
    assert row["score"] == plain["score"]
