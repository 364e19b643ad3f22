"""Discovery: opportunities from the sources, scored, and strategy code generated for the best.

`raw_opportunities` is one asset, not one partition per source: a pass reads every enabled source
in one run, so novelty is scored against one consistent snapshot, a flaky feed (a 404, a timeout)
is a line in the metadata instead of a red run and a failure alert, and the demo stays one run.
Each source still has its own file (`lake/raw_opportunities/<source>.parquet`) and its own row in
the metadata table, with items fetched, new, and its failure.
"""

import dagster as dg
import polars as pl

from nettrace_dagster.charts import markdown_table
from nettrace_dagster.discovery import scoring
from nettrace_dagster.discovery.claude import config_from
from nettrace_dagster.discovery.codegen import generate_for
from nettrace_dagster.discovery.opportunities import discover, store_for
from nettrace_dagster.discovery.scored import claude_scorer, explain, score_new
from nettrace_dagster.market.lake import Lake
from nettrace_dagster.settings import load_settings


@dg.asset(group_name="discovery", kinds={"parquet"})
def raw_opportunities(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Trading opportunities from every enabled source (arXiv, Reddit, SEC EDGAR, chain-client
    releases, DefiLlama, a social RSS bridge, the inbox folder; manual submissions arrive through
    `nettrace opportunity submit`), each with its provenance: source, URL, fetch time, content hash.
    Re-fetching an item adds nothing. A failing source is reported here and never stops the others."""
    settings = load_settings()
    reports = discover(settings, log=context.log.warning)
    stored = store_for(settings).read()
    failing = [r for r in reports if r.failure]
    new = sum(r.new for r in reports)
    table = [{"source": r.source, "enabled": r.enabled, "fetched": r.fetched, "new": r.new,
              "failure": r.failure or "", "read_from": ", ".join(r.read_from)[:120]} for r in reports]
    summary = (f"{new} new opportunit{'y' if new == 1 else 'ies'} ({stored.height} stored) from "
               f"{sum(r.enabled for r in reports)} source(s)" + (f"; {len(failing)} failing: " +
                                                                 "; ".join(f"{r.source}: {r.failure}" for r in failing)
                                                                 if failing else ""))
    context.log.info(summary)
    return dg.MaterializeResult(metadata={
        "summary": dg.MetadataValue.text(summary[:500]), "new": new, "stored": stored.height,
        "failing_sources": len(failing), "sources": markdown_table(table),
        "per_source": dg.MetadataValue.json({r.source: r.as_dict() for r in reports}),
    })


@dg.asset(deps=[raw_opportunities], group_name="discovery", kinds={"polars", "parquet"})
def scored_opportunities(context: dg.AssetExecutionContext) -> dg.Output[pl.DataFrame]:
    """Every opportunity scored once, when first seen: novelty 25 % (TF-IDF against everything seen
    before), market fit 25 %, complexity 15 %, capital efficiency 15 %, risk 20 %; each criterion's
    reason is a column and is shown here. At or above OPPORTUNITY_MIN_SCORE_FOR_SUBMISSION (0.65)
    an opportunity gets strategy code generated. With ANTHROPIC_API_KEY, Claude's judgement of the
    four text criteria is blended in (OPPORTUNITY_CLAUDE_SCORING)."""
    settings = load_settings()
    lake = Lake(settings.lake_dir)
    before = lake.read("scored_opportunities") if lake.exists("scored_opportunities") else None
    threshold = settings.opportunity_min_score_for_submission
    claude = config_from(settings) if settings.opportunity_claude_scoring else None
    df = score_new(store_for(settings).read(), before, [s.split("-")[0] for s in settings.symbols], threshold,
                   claude=claude_scorer(claude) if claude else None,
                   claude_budget=2 * settings.discovery_max_generated)
    fresh = df.slice(before.height if before is not None else 0)
    above = int(df["above_threshold"].sum()) if df.height else 0
    summary = (f"{df.height} opportunities scored ({fresh.height} new); {above} at or above {threshold:.2f}")
    context.log.info(summary)
    shown = fresh.sort("score", descending=True).head(20)
    return dg.Output(df, metadata={
        "summary": dg.MetadataValue.text(summary), "rows": df.height, "new": fresh.height,
        "above_threshold": above, "threshold": threshold,
        "weights": dg.MetadataValue.json(scoring.WEIGHTS),
        "new_scores": markdown_table([{"title": r["title"][:60], "source": r["source"], "score": r["score"],
                                       **{c: r[c] for c in scoring.CRITERIA}} for r in shown.iter_rows(named=True)]),
        "explanations": dg.MetadataValue.md("\n\n".join(
            "```\n" + explain(r) + "\n```" for r in shown.iter_rows(named=True)) or "(nothing new)"),
    })


@dg.asset(io_manager_key="json_io_manager", group_name="discovery", kinds={"python"})
def generated_strategies(context: dg.AssetExecutionContext,
                         scored_opportunities: pl.DataFrame) -> dg.Output[list[dict]]:
    """Strategy code for opportunities at or above the threshold (at most DISCOVERY_MAX_GENERATED a
    run; ones without a file first, then the best scores), by template, Claude or hybrid
    (CODEGEN_MODE; template without ANTHROPIC_API_KEY). Files are named by content hash under
    NETTRACE_HOME/strategies/generated/ with a sidecar JSON naming the opportunity. Value: one
    `{name, path, sha256, opportunity_id, mode, source}` per file, for validation."""
    settings = load_settings()
    from nettrace_dagster.discovery.codegen import existing, generated_dir, resolve_mode

    mode, _ = resolve_mode(settings)
    done = {oid for oid, m in existing(generated_dir(settings)) if m == mode}
    text = {r["opportunity_id"]: r["text"] for r in store_for(settings).read().select("opportunity_id", "text")
            .iter_rows(named=True)}
    above = [r for r in scored_opportunities.filter(pl.col("above_threshold")).iter_rows(named=True)
             if r["opportunity_id"] in text]
    above.sort(key=lambda r: (r["opportunity_id"] in done, -r["score"]))
    chosen = [{**r, "text": text[r["opportunity_id"]]} for r in above[:settings.discovery_max_generated]]
    made, note = generate_for(chosen, settings, log=context.log.warning)
    if note:
        context.log.info(note)
    score = {r["opportunity_id"]: r["score"] for r in chosen}
    fallbacks = [m for m in made if m.fallback_reason]
    summary = (f"{len(made)} strateg{'y' if len(made) == 1 else 'ies'} ({mode} mode) for {len(above)} opportunit"
               f"{'y' if len(above) == 1 else 'ies'} at or above the threshold"
               + (f"; {len(fallbacks)} fell back to the template" if fallbacks else ""))
    context.log.info(summary)
    return dg.Output([m.asset_value() for m in made], metadata={
        "summary": dg.MetadataValue.text(summary), "count": len(made), "mode": mode, "mode_note": note,
        "above_threshold": len(above), "fallbacks": len(fallbacks),
        "strategies": markdown_table([{"name": m.name, "mode": m.mode, "template": m.template,
                                       "opportunity": m.opportunity_id, "score": score.get(m.opportunity_id, 0.0),
                                       "file": m.sha256[:12] + ".py", "fallback": m.fallback_reason}
                                      for m in made]),
    })
