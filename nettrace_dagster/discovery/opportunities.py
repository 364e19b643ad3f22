"""Opportunities: normalized items with provenance, stored once, and one discovery pass.

An opportunity's id comes from its source and its identity there (the feed's guid, else its URL,
else its content hash), so fetching the same item again adds nothing. Provenance travels with it:
source, URL, where it was read (`feed`), when (`fetched_at`, UTC) and the SHA-256 of its title and
text (`content_hash`).

Storage: `lake/raw_opportunities/<source>.parquet` (one file per source, so a failing source
never rewrites another's; a DuckDB view `raw_opportunities` with a `source` column) and one
`discovered` record per new opportunity in `audit/strategy_opportunities.jsonl`. A source's file is
read, merged and replaced (atomically) under an exclusive lock, so two passes at once neither
lose nor duplicate an item.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from nettrace_dagster.audit import append_audit
from nettrace_dagster.discovery import sources as src
from nettrace_dagster.discovery.fetch import FetchError, FetchLimits, fetch_bytes
from nettrace_dagster.discovery.parse import FeedError, PartialFeed, RawItem, clean_text
from nettrace_dagster.market.lake import Lake, write_parquet_atomic

ASSET = "raw_opportunities"
AUDIT_LOG = "strategy_opportunities"
SCHEMA: dict[str, Any] = {
    "opportunity_id": pl.String, "source": pl.String, "title": pl.String, "text": pl.String, "url": pl.String,
    "author": pl.String, "published": pl.Datetime("us", "UTC"), "fetched_at": pl.Datetime("us", "UTC"),
    "feed": pl.String, "content_hash": pl.String, "tags": pl.String,
}


class OpportunityError(ValueError):
    """A submission that cannot be stored; one line."""


def content_hash(title: str, text: str) -> str:
    return hashlib.sha256(f"{title}\n{text}".encode()).hexdigest()


def normalize(source: str, item: RawItem, feed: str, fetched_at: datetime) -> dict[str, Any]:
    digest = content_hash(item.title, item.text)
    identity = item.guid or item.url or digest
    return {
        "opportunity_id": hashlib.sha256(f"{source}\n{identity}".encode()).hexdigest()[:16],
        "source": source, "title": item.title, "text": item.text, "url": item.url, "author": item.author,
        "published": item.published, "fetched_at": fetched_at, "feed": feed, "content_hash": digest,
        "tags": ",".join(item.tags),
    }


class OpportunityStore:
    """Every opportunity seen, per source, in the lake; new ones also in the audit log."""

    def __init__(self, lake_dir: Path, audit_dir: Path) -> None:
        self.lake, self.audit_dir = Lake(Path(lake_dir)), Path(audit_dir)

    def read(self, source: str | None = None) -> pl.DataFrame:
        names = [source] if source else self.lake.partitions(ASSET)
        frames = [self.lake.read(ASSET, name) for name in names if self.lake.exists(ASSET, name)]
        frames = [f.select([c for c in SCHEMA if c in f.columns]) for f in frames]
        return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame(schema=SCHEMA)

    def add(self, source: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Store the rows not already stored for `source`; returns those (in order, deduplicated)."""
        if not rows:
            return []
        with self._locked(source):
            stored = self.read(source) if self.lake.exists(ASSET, source) else pl.DataFrame(schema=SCHEMA)
            seen = set(stored["opportunity_id"].to_list())
            new = []
            for row in rows:
                if row["opportunity_id"] not in seen:
                    seen.add(row["opportunity_id"])
                    new.append(row)
            if new:
                merged = pl.concat([stored, pl.DataFrame(new, schema=SCHEMA)], how="vertical_relaxed")
                write_parquet_atomic(merged, self.lake.path(ASSET, source), compression="zstd")
        for row in new:  # after the lake write: a record in the log is always in the lake too
            append_audit(self.audit_dir, AUDIT_LOG, {"event": "discovered", **_jsonable(row)})
        return new

    @contextmanager
    def _locked(self, source: str) -> Iterator[None]:
        path = self.lake.path(ASSET, source)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.parent / f".{source}.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


@dataclass
class SourceReport:
    """One source's part of a pass: items read, how many were new, and what failed (one line)."""

    source: str
    enabled: bool = True
    fetched: int = 0
    new: int = 0
    failure: str | None = None
    read_from: list[str] = field(default_factory=list)
    new_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("new_ids")
        return out


def store_for(settings: Any) -> OpportunityStore:
    return OpportunityStore(settings.lake_dir, settings.audit_dir)


def limits_for(settings: Any) -> FetchLimits:
    v = settings.values
    return FetchLimits(max_bytes=v["DISCOVERY_MAX_BYTES"], connect_timeout=v["DISCOVERY_CONNECT_TIMEOUT_S"],
                       read_timeout=v["DISCOVERY_READ_TIMEOUT_S"], retries=v["DISCOVERY_MAX_RETRIES"],
                       user_agent=v["DISCOVERY_USER_AGENT"])


def discover(settings: Any, only: list[str] | None = None, log: Any = None) -> list[SourceReport]:
    """One pass over the enabled sources (or `only` these). A failing source is reported, never
    raised; whatever every source fetched is stored before this returns."""
    names = [n for n in src.SOURCES if only is None or n in only]
    store, limits = store_for(settings), limits_for(settings)
    reports = []
    for name in names:
        report = SourceReport(name, enabled=src.enabled(settings, name))
        if report.enabled:
            try:
                if name == "inbox":
                    _read_inbox(settings, store, report)
                else:
                    _read_source(settings, name, store, limits, report)
            except Exception as exc:  # a bug in one source must not stop the others; said in one line
                report.failure = f"{type(exc).__name__}: {clean_text(exc, 300)}"
        if log is not None and report.failure:
            log(f"discovery source {name}: {report.failure}")
        reports.append(report)
    return reports


def _read_source(settings: Any, name: str, store: OpportunityStore, limits: FetchLimits,
                 report: SourceReport) -> None:
    spec, failures, rows = src.SOURCES[name], [], []
    where = src.locations(settings, name)
    if not where:
        report.failure = f"no URL set (DISCOVERY_{name.upper()}_URL) on the {settings.nettrace_profile} profile"
        return
    with httpx.Client(timeout=httpx.Timeout(limits.read_timeout, connect=limits.connect_timeout),
                      follow_redirects=True, max_redirects=5, headers={"User-Agent": limits.user_agent}) as client:
        for location in where:
            report.read_from.append(location.label)
            try:
                data = fetch_bytes(location.url, limits, client) if location.url else src.sample_bytes(location.sample)
                items = src.parse(spec, data)
            except FetchError as exc:
                failures.append(str(exc))
                continue
            except PartialFeed as exc:  # reported, and what feedparser recovered is kept
                failures.append(f"{location.label}: {exc}")
                items = exc.items
            except FeedError as exc:
                failures.append(f"{location.label}: {exc}")
                continue
            fetched_at = datetime.now(UTC)
            rows += [normalize(name, item, location.label, fetched_at) for item in items]
    report.fetched = len(rows)
    new = store.add(name, rows)
    report.new, report.new_ids = len(new), [r["opportunity_id"] for r in new]
    if failures:
        report.failure = failures[0] + (f" (+{len(failures) - 1} more)" if len(failures) > 1 else "")


def _read_inbox(settings: Any, store: OpportunityStore, report: SourceReport) -> None:
    folder = src.inbox_dir(settings)
    report.read_from.append(str(folder))
    if not folder.is_dir():
        return
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in src.INBOX_SUFFIXES)
    rows, good, bad = [], [], []
    for path in files:
        try:
            rows.append(normalize("inbox", src.read_inbox_file(path), f"inbox:{path.name}", datetime.now(UTC)))
            good.append(path)
        except (FeedError, OSError) as exc:
            bad.append((path, str(exc)))
    report.fetched = len(rows)
    new = store.add("inbox", rows)
    report.new, report.new_ids = len(new), [r["opportunity_id"] for r in new]
    # Stored files leave the queue; refused ones are kept aside, not deleted (nothing is lost).
    for path in good:
        _move(path, folder / "done")
    for path, _ in bad:
        _move(path, folder / "rejected")
    if bad:
        report.failure = f"{len(bad)} file(s) refused, moved to inbox/rejected/: {bad[0][1]}"


def _move(path: Path, folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    if target.exists():
        target = folder / f"{path.stem}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}{path.suffix}"
    shutil.move(str(path), target)


def submit(settings: Any, title: str, text: str, url: str = "") -> tuple[dict[str, Any], bool]:
    """A manual submission: (the opportunity, whether it was new)."""
    title, text, url = clean_text(title, 300), clean_text(text), (url or "").strip()
    if not title:
        raise OpportunityError("--title is empty")
    if url and not url.startswith(("http://", "https://")):
        raise OpportunityError(f"--url {url!r} is not an http(s) URL")
    row = normalize(src.MANUAL, RawItem(title=title, text=text, url=url), "manual", datetime.now(UTC))
    new = store_for(settings).add(src.MANUAL, [row])
    return row, bool(new)
