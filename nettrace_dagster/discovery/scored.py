"""The scored table: every opportunity scored once, when first seen, with the reasons per criterion."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import polars as pl

from nettrace_dagster.discovery import scoring

SCHEMA: dict[str, Any] = {
    "opportunity_id": pl.String, "source": pl.String, "title": pl.String, "url": pl.String,
    "content_hash": pl.String, "score": pl.Float64, "above_threshold": pl.Boolean,
    **{c: pl.Float64 for c in scoring.CRITERIA}, **{f"{c}_why": pl.String for c in scoring.CRITERIA},
    "template": pl.String, "scorer": pl.String, "scored_at": pl.Datetime("us", "UTC"),
}
# Claude's opinion of the four text criteria: {criterion: (score, why)}, or a one-line reason it has none.
ClaudeScorer = Callable[[dict[str, Any]], "dict[str, tuple[float, str]] | str"]


def score_new(opportunities: pl.DataFrame, scored_before: pl.DataFrame | None, traded: list[str],
              threshold: float, claude: ClaudeScorer | None = None, claude_budget: int = 0) -> pl.DataFrame:
    """`scored_before` plus a row for each opportunity it lacks. Earlier scores are kept as they were:
    novelty is against what was seen *before* an item, so it is fixed when the item is first scored."""
    before = scored_before if scored_before is not None and scored_before.height else pl.DataFrame(schema=SCHEMA)
    done = set(before["opportunity_id"].to_list())
    text_of = {r["opportunity_id"]: (r["title"], r["text"]) for r in opportunities.iter_rows(named=True)}
    fresh = (opportunities.filter(~pl.col("opportunity_id").is_in(list(done)))
             .sort(["fetched_at", "opportunity_id"]))
    if fresh.height == 0:
        return before
    prior_ids = [i for i in before["opportunity_id"].to_list() if i in text_of]
    ids = prior_ids + fresh["opportunity_id"].to_list()
    titles = {i: text_of[i][0] for i in ids}
    novelties = scoring.novelty([" ".join(text_of[i]) for i in ids], len(prior_ids))
    rows, now = [], datetime.now(UTC)
    for row, (nov, nearest) in zip(fresh.iter_rows(named=True), novelties, strict=True):
        title, text = row["title"], row["text"]
        crit = {
            "novelty": scoring.Criterion(nov, "nothing similar seen before" if nearest is None else
                                         f"1 − similarity {1 - nov:.2f} to earlier {titles[ids[nearest]][:80]!r}"),
            "market_fit": scoring.market_fit(title, text, traded),
            "complexity": scoring.complexity(title, text),
            "capital_efficiency": scoring.capital_efficiency(title, text),
            "risk": scoring.risk(title, text, row["source"]),
        }
        scorer = "heuristic"
        heuristic_total = scoring.total({c: v.score for c, v in crit.items()})
        # Claude is asked only about items near or above the line, and at most `claude_budget` of them.
        if claude is not None and claude_budget > 0 and heuristic_total >= threshold - 0.15:
            claude_budget -= 1
            opinion = claude(row)
            if isinstance(opinion, str):
                scorer = f"heuristic (Claude: {opinion})"
            else:
                scorer = "heuristic+claude"
                for c, (score, why) in opinion.items():
                    h = crit[c]
                    blended = round(0.5 * h.score + 0.5 * score, 4)
                    crit[c] = scoring.Criterion(blended, f"heuristic {h.score:.2f} ({h.why}); Claude {score:.2f}: {why}")
        scores = {c: v.score for c, v in crit.items()}
        total = scoring.total(scores)
        rows.append({"opportunity_id": row["opportunity_id"], "source": row["source"], "title": title,
                     "url": row["url"], "content_hash": row["content_hash"], "score": total,
                     "above_threshold": total >= threshold, **scores,
                     **{f"{c}_why": v.why for c, v in crit.items()},
                     "template": scoring.suggested_template(title, text), "scorer": scorer, "scored_at": now})
    return pl.concat([before, pl.DataFrame(rows, schema=SCHEMA)], how="vertical_relaxed")


def explain(row: dict[str, Any]) -> str:
    """One opportunity's score in words, criterion by criterion (UI metadata, CLI)."""
    lines = [f"{row['title'][:100]} — {row['score']:.2f}"
             f" ({'at or above' if row['above_threshold'] else 'below'} the threshold)"]
    for c in scoring.CRITERIA:
        lines.append(f"  {c} {row[c]:.2f} × {scoring.WEIGHTS[c]:.0%}: {row[f'{c}_why']}")
    return "\n".join(lines)


CLAUDE_CRITERIA = ("market_fit", "complexity", "capital_efficiency", "risk")


def claude_scorer(config: Any) -> ClaudeScorer:
    """Claude's 0–1 judgement of the four text criteria for one opportunity (novelty stays computed:
    Claude has not seen the history). A failure is the one-line reason, never an exception."""
    from nettrace_dagster.discovery.claude import ClaudeUnavailable, ask, extract_json

    system = ("You rate trading opportunities for a small crypto spot account (BTC, ETH, SOL) whose strategies "
              "are per-bar signal functions on OHLCV candles. Higher is better for every criterion: market_fit "
              "(relevant to those markets), complexity (1 = simple to implement with candles only), "
              "capital_efficiency (works with ~$100, no leverage), risk (1 = low risk). Reply with JSON only: "
              '{"market_fit": {"score": 0.0, "why": "..."}, "complexity": {...}, "capital_efficiency": {...}, '
              '"risk": {...}}')

    def score(row: dict[str, Any]) -> dict[str, tuple[float, str]] | str:
        try:
            doc = extract_json(ask(config, system, f"{row['title']}\n\n{row.get('text', '')}", max_tokens=800))
            out = {}
            for c in CLAUDE_CRITERIA:
                item = doc.get(c)
                value = item.get("score") if isinstance(item, dict) else None
                if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
                    raise ClaudeUnavailable(f"Claude's {c} score is missing or outside [0, 1]")
                out[c] = (float(value), str(item.get("why") or "")[:300].replace("\n", " "))
            return out
        except ClaudeUnavailable as exc:
            return str(exc)

    return score
