"""The discovery sources, what each reads on which profile, and the inbox folder.

A source is switched by `DISCOVERY_<NAME>_ENABLED` and pointed elsewhere by `DISCOVERY_<NAME>_URL`
(comma-separated URLs). Where it reads from:
- an explicitly set URL: fetched, on any profile;
- otherwise on `local`: the sample feed shipped in `nettrace_dagster/data/feeds/` (no network);
- otherwise on `live`: the public default below (social has none: there is no free X/Twitter
  API, so social posts come only through an RSS bridge URL the user sets).
`manual` is not fetched: `nettrace opportunity submit` stores into it directly. `inbox` reads
`NETTRACE_HOME/inbox/` (`.txt`/`.md`: first line the title; `.json`: title, text, url).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from nettrace_dagster.discovery.parse import FeedError, RawItem, clean_text, parse_defillama, parse_feed


@dataclass(frozen=True)
class SourceSpec:
    name: str
    kind: str  # "feed" (Atom/RSS), "json" (DefiLlama) or "inbox"
    sample: str  # file under data/feeds/ ("" for none)
    live_urls: tuple[str, ...]
    what: str


SOURCES: dict[str, SourceSpec] = {s.name: s for s in (
    SourceSpec("arxiv", "feed", "arxiv.xml", (
        "https://export.arxiv.org/api/query?search_query=cat:q-fin.TR+OR+cat:q-fin.CP+OR+cat:stat.ML"
        "&sortBy=submittedDate&sortOrder=descending&max_results=50",), "arXiv q-fin.TR, q-fin.CP, stat.ML"),
    SourceSpec("reddit", "feed", "reddit.xml", ("https://www.reddit.com/r/algotrading/.rss",
                                                "https://www.reddit.com/r/CryptoMarkets/.rss"), "Reddit RSS"),
    SourceSpec("sec", "feed", "sec.xml", (
        "https://www.sec.gov/cgi-bin/browse-edgar?action=getcurrent&type=8-K&count=40&output=atom",),
        "SEC EDGAR Atom"),
    SourceSpec("upgrades", "feed", "upgrades.xml", ("https://github.com/ethereum/go-ethereum/releases.atom",
                                                    "https://github.com/bitcoin/bitcoin/releases.atom",
                                                    "https://github.com/anza-xyz/agave/releases.atom"),
               "chain-client releases (network upgrades)"),
    SourceSpec("defillama", "json", "defillama.json", ("https://api.llama.fi/protocols",), "DefiLlama protocols"),
    SourceSpec("social", "feed", "social.xml", (), "social posts via an RSS bridge"),
    SourceSpec("inbox", "inbox", "", (), "NETTRACE_HOME/inbox folder"),
)}
MANUAL = "manual"  # stored by `nettrace opportunity submit`, never fetched
ALL_SOURCES = (*SOURCES, MANUAL)
INBOX_SUFFIXES = (".txt", ".md", ".json")
INBOX_MAX_BYTES = 1_000_000


@dataclass(frozen=True)
class Location:
    """Where one read of a source goes: a URL to fetch or a shipped sample file."""

    url: str = ""
    sample: str = ""

    @property
    def label(self) -> str:
        return self.url or f"sample:{self.sample}"


def enabled(settings: Any, name: str) -> bool:
    return bool(settings.values.get(f"DISCOVERY_{name.upper()}_ENABLED", name == MANUAL))


def locations(settings: Any, name: str) -> list[Location]:
    """What source `name` reads on these settings (empty: nothing configured on this profile)."""
    spec = SOURCES[name]
    raw = settings.values.get(f"DISCOVERY_{name.upper()}_URL", "") or ""
    urls = [u.strip() for u in raw.split(",") if u.strip()]
    if urls:
        return [Location(url=u) for u in urls]
    if settings.values["NETTRACE_PROFILE"] == "local":
        return [Location(sample=spec.sample)] if spec.sample else []
    return [Location(url=u) for u in spec.live_urls]


def sample_bytes(filename: str) -> bytes:
    return resources.files("nettrace_dagster").joinpath("data", "feeds", filename).read_bytes()


def parse(spec: SourceSpec, data: bytes) -> list[RawItem]:
    return parse_defillama(data) if spec.kind == "json" else parse_feed(data)


def inbox_dir(settings: Any) -> Path:
    return Path(settings.home) / "inbox"


def read_inbox_file(path: Path) -> RawItem:
    """One submission file; FeedError (one line) for one that cannot be used."""
    if path.stat().st_size > INBOX_MAX_BYTES:
        raise FeedError(f"{path.name}: larger than {INBOX_MAX_BYTES:,} bytes")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FeedError(f"{path.name}: not UTF-8 text") from None
    if path.suffix == ".json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FeedError(f"{path.name}: malformed JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("title"), str) or not doc["title"].strip():
            raise FeedError(f"{path.name}: expected an object with a non-empty \"title\" (and \"text\", \"url\")")
        url = doc.get("url") or ""
        if not isinstance(url, str) or (url and not url.startswith(("http://", "https://"))):
            raise FeedError(f"{path.name}: \"url\" must be an http(s) URL")
        return RawItem(title=clean_text(doc["title"], 300), text=clean_text(doc.get("text") or ""), url=url,
                       guid=f"inbox:{path.name}")
    lines = [ln.strip() for ln in text.splitlines()]
    first = next((ln for ln in lines if ln), "")
    if not first:
        raise FeedError(f"{path.name}: empty")
    body = "\n".join(lines[lines.index(first) + 1:])
    return RawItem(title=clean_text(first.lstrip("# "), 300), text=clean_text(body), guid=f"inbox:{path.name}")
