"""Feed bytes → items: Atom/RSS through feedparser, DefiLlama's protocol list as JSON.

Hostile XML. What feedparser 6.0.14 does on its own (measured here): it strips the DOCTYPE and
keeps only entity declarations whose value is plain text, so a "billion laughs" nest of entities
is left unexpanded; external entities (`SYSTEM "file:///etc/passwd"`) are never resolved; expat
2.5 stops a quadratic blow-up at its amplification limit. All of those come back as a `bozo`
parse with the entity text left literally in the entry. Two things it does NOT guard against:
1. given `bytes`, feedparser first tries `open(data)` — a server answering `/etc/passwd` would
   have a local file parsed as the feed. We hand it a stream (`io.BytesIO`), which it only reads.
2. a feed that declares entities at all is refused here, before parsing: no real feed needs one,
   and refusing names the problem (one line) instead of storing entries full of `&lol9;`.
Size is bounded earlier, by the fetch cap.
"""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import feedparser

# A declaration no feed has a use for.
_DTD_ENTITY = re.compile(rb"<!ENTITY", re.IGNORECASE)
_TAGS = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


class FeedError(Exception):
    """A response that is not a usable feed; one line."""


class PartialFeed(FeedError):
    """A malformed feed from which feedparser still recovered entries: they are kept (`items`), and
    the source is reported as failing with this one line."""

    def __init__(self, message: str, items: list[RawItem]) -> None:
        super().__init__(message)
        self.items = items


# feedparser's bozo exceptions that say nothing is wrong with the XML itself.
_BENIGN = ("CharacterEncodingOverride", "NonXMLContentType")


@dataclass
class RawItem:
    """One entry as a source gives it, before normalization."""

    title: str
    text: str
    url: str = ""
    guid: str = ""
    author: str = ""
    published: datetime | None = None
    tags: list[str] = field(default_factory=list)


def refuse_hostile_xml(data: bytes) -> None:
    # The whole document, not just the prolog: a `<x` hidden in a comment before the DTD would
    # end a prolog-only search early. Text in a feed has `<` escaped, so only markup matches.
    if _DTD_ENTITY.search(data):
        raise FeedError("hostile XML refused: the document declares DTD entities (billion laughs / "
                        "external entity pattern)")


def parse_feed(data: bytes, max_items: int = 200) -> list[RawItem]:
    """Entries of an Atom or RSS document. FeedError when nothing usable is in it."""
    refuse_hostile_xml(data)
    parsed = feedparser.parse(io.BytesIO(data), sanitize_html=True, resolve_relative_uris=False)
    entries = parsed.get("entries") or []
    if not entries:
        if parsed.get("bozo"):
            problem = _one_line(parsed.get("bozo_exception")) or "unparseable"
            raise FeedError(f"malformed feed ({problem}); no entries recovered")
        if not parsed.get("version"):
            raise FeedError("not an RSS or Atom feed")
        return []
    items = []
    for entry in entries[:max_items]:
        title = clean_text(entry.get("title", ""))
        text = clean_text(entry.get("summary", "") or _content(entry))
        if not title and not text:
            continue
        tags = [t.get("term", "") for t in entry.get("tags", []) if t.get("term")]
        primary = (entry.get("arxiv_primary_category") or {}).get("term")
        if primary and primary not in tags:
            tags.insert(0, primary)
        items.append(RawItem(title=title or text[:80], text=text, url=entry.get("link", "") or "",
                             guid=entry.get("id", "") or "", author=clean_text(entry.get("author", "")),
                             published=_time(entry.get("published_parsed") or entry.get("updated_parsed")),
                             tags=tags))
    if not items:
        if parsed.get("bozo"):
            raise FeedError(f"malformed feed ({_one_line(parsed.get('bozo_exception'))}); no usable entries")
        raise FeedError("feed entries carry no title or text")
    problem = parsed.get("bozo_exception")
    if parsed.get("bozo") and type(problem).__name__ not in _BENIGN:
        raise PartialFeed(f"malformed feed ({_one_line(problem) or 'unparseable'}); kept the {len(items)} "
                          f"entr{'y' if len(items) == 1 else 'ies'} recovered", items)
    return items


def parse_defillama(data: bytes, max_items: int = 50) -> list[RawItem]:
    """DefiLlama's `/protocols` list: the most recently listed protocols (`listedAt`) as launches."""
    try:
        protocols = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FeedError(f"malformed JSON ({_one_line(exc)})") from None
    if not isinstance(protocols, list):
        raise FeedError(f"expected a JSON list of protocols, got {type(protocols).__name__}")
    good = [p for p in protocols if isinstance(p, dict) and isinstance(p.get("name"), str)]
    if protocols and not good:
        raise FeedError("no protocol in the list has a name")
    good.sort(key=lambda p: _number(p.get("listedAt")), reverse=True)
    items = []
    for p in good[:max_items]:
        chains = ", ".join(str(c) for c in p.get("chains") or [] if isinstance(c, str))
        tvl = _number(p.get("tvl"))
        text = clean_text(f"{p.get('description') or ''} Category: {p.get('category') or 'unknown'}. "
                          f"Chains: {chains or 'unknown'}. TVL ${tvl:,.0f}.")
        slug = str(p.get("slug") or p["name"]).strip()
        listed = _number(p.get("listedAt"))
        items.append(RawItem(title=f"DeFi launch: {clean_text(p['name'])}", text=text,
                             url=str(p.get("url") or f"https://defillama.com/protocol/{slug}"),
                             guid=f"defillama:{slug}",
                             published=datetime.fromtimestamp(listed, UTC) if listed > 0 else None,
                             tags=[t for t in (p.get("category"), *(p.get("chains") or [])) if isinstance(t, str)]))
    return items


def clean_text(value: Any, limit: int = 4000) -> str:
    """Plain text: tags dropped, whitespace collapsed, at most `limit` characters."""
    text = _SPACE.sub(" ", _TAGS.sub(" ", str(value or ""))).strip()
    return text[:limit]


def _content(entry: Any) -> str:
    content = entry.get("content") or []
    return content[0].get("value", "") if content else ""


def _time(parsed: Any) -> datetime | None:
    try:
        return datetime(*parsed[:6], tzinfo=UTC) if parsed else None
    except (TypeError, ValueError):
        return None


def _number(value: Any) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else 0.0


def _one_line(exc: Any) -> str:
    text = str(exc or "").strip().splitlines()
    return text[0] if text else (type(exc).__name__ if exc else "")
