"""`nettrace opportunity submit --title ... --text ... [--url ...]` and `nettrace opportunity list`."""

from __future__ import annotations

import argparse

from nettrace_dagster.cli import UsageError, emit, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("opportunity", help="submit a trading opportunity by hand; list what discovery found")
    s = p.add_subparsers(dest="opportunity_command", required=True)
    submit = s.add_parser("submit", help="store an opportunity (source `manual`); scored on the next discovery run")
    submit.add_argument("--title", required=True, help="one line naming the idea")
    submit.add_argument("--text", default="", help="the idea, in words (what to trade, when, why)")
    submit.add_argument("--url", default="", help="where it comes from (http or https)")
    submit.add_argument("--json", action="store_true", help="print one JSON document")
    submit.set_defaults(func=handle_submit)
    lst = s.add_parser("list", help="stored opportunities with their scores, best first")
    lst.add_argument("--limit", type=int, default=20, help="show at most this many (default 20)")
    lst.add_argument("--json", action="store_true", help="print one JSON document")
    lst.set_defaults(func=handle_list)


def handle_submit(args: argparse.Namespace) -> int:
    from nettrace_dagster.discovery.opportunities import OpportunityError, submit
    from nettrace_dagster.settings import load_settings

    try:
        row, new = submit(load_settings(), args.title, args.text, args.url)
    except OpportunityError as exc:
        raise UsageError(str(exc)) from None
    payload = {"opportunity_id": row["opportunity_id"], "new": new, "source": row["source"], "title": row["title"],
               "url": row["url"], "content_hash": row["content_hash"]}
    emit(payload, args.json, f"{'stored' if new else 'already stored'}: opportunity {row['opportunity_id']} "
                             f"{row['title']!r} (scored on the next discovery run)")
    return 0


def handle_list(args: argparse.Namespace) -> int:
    import polars as pl

    from nettrace_dagster.discovery.opportunities import store_for
    from nettrace_dagster.market.lake import Lake
    from nettrace_dagster.settings import load_settings

    if args.limit < 1:
        raise UsageError(f"--limit {args.limit}: must be at least 1")
    settings = load_settings()
    df = store_for(settings).read().select("opportunity_id", "source", "title", "url", "fetched_at")
    lake = Lake(settings.lake_dir)
    if lake.exists("scored_opportunities"):
        scores = lake.read("scored_opportunities").select("opportunity_id", "score", "above_threshold")
        df = df.join(scores, on="opportunity_id", how="left")
    else:
        df = df.with_columns(pl.lit(None, pl.Float64).alias("score"), pl.lit(None, pl.Boolean).alias("above_threshold"))
    df = df.sort(["score", "fetched_at"], descending=True, nulls_last=True).head(args.limit)
    rows = df.to_dicts()
    human = "\n".join(table(["id", "source", "score", "title"],
                            [[r["opportunity_id"], r["source"], "-" if r["score"] is None else f"{r['score']:.2f}",
                              r["title"][:70]] for r in rows])) if rows else "no opportunities stored yet"
    emit({"opportunities": rows}, args.json, human)
    return 0
