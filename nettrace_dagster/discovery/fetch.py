"""Fetching one feed: httpx with connect/read timeouts, a size cap enforced while the body streams,
and a bounded number of retries on failures that may pass (timeouts, refused connections, 5xx, 429).

feedparser is never handed a URL: it has no timeout and would hang on a slow server (FACTS.md).
Whatever goes wrong is a `FetchError` whose message is one line naming the URL and the problem.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class FetchError(Exception):
    """A feed that could not be fetched; one line."""


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 16_000_000
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    retries: int = 2
    user_agent: str = "NetTrace-discovery/0.1"
    backoff: float = 0.5  # seconds before the first retry, doubled each time


def fetch_bytes(url: str, limits: FetchLimits, client: httpx.Client | None = None) -> bytes:
    """The body of `url` (at most `limits.max_bytes`), or FetchError after the allowed retries."""
    own = client is None
    timeout = httpx.Timeout(limits.read_timeout, connect=limits.connect_timeout)
    client = client or httpx.Client(timeout=timeout, follow_redirects=True, max_redirects=5,
                                    headers={"User-Agent": limits.user_agent})
    try:
        attempt = 0
        while True:
            try:
                return _fetch_once(client, url, limits)
            except _Retryable as exc:
                if attempt >= limits.retries:
                    tries = f" after {attempt + 1} tries" if attempt else ""
                    raise FetchError(f"{url}: {exc}{tries}") from None
                time.sleep(limits.backoff * (2 ** attempt))
                attempt += 1
    finally:
        if own:
            client.close()


class _Retryable(Exception):
    pass


def _fetch_once(client: httpx.Client, url: str, limits: FetchLimits) -> bytes:
    try:
        with client.stream("GET", url) as response:
            if response.status_code in RETRY_STATUSES:
                raise _Retryable(f"HTTP {response.status_code} {response.reason_phrase}".strip())
            if response.status_code != 200:
                raise FetchError(f"{url}: HTTP {response.status_code} {response.reason_phrase}".strip())
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limits.max_bytes:
                raise FetchError(f"{url}: response of {int(declared):,} bytes is over the "
                                 f"{limits.max_bytes:,}-byte cap (DISCOVERY_MAX_BYTES)")
            chunks: list[bytes] = []
            size = 0
            # The cap is checked as bytes arrive: a server that lies about (or omits) its length
            # is cut off at the cap, never buffered whole.
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limits.max_bytes:
                    raise FetchError(f"{url}: response exceeds the {limits.max_bytes:,}-byte cap "
                                     "(DISCOVERY_MAX_BYTES); stopped reading")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.TimeoutException as exc:
        kind = {"ConnectTimeout": "connect", "ReadTimeout": "read", "PoolTimeout": "pool",
                "WriteTimeout": "write"}.get(type(exc).__name__, "")
        limit = limits.connect_timeout if kind == "connect" else limits.read_timeout
        raise _Retryable(f"{kind + ' ' if kind else ''}timeout ({limit:g} s)") from None
    except httpx.TooManyRedirects:
        raise FetchError(f"{url}: too many redirects") from None
    except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
        raise _Retryable(f"connection failed ({_first_line(exc)})") from None
    except httpx.HTTPError as exc:  # bad URL, unsupported protocol, decoding errors
        raise FetchError(f"{url}: {type(exc).__name__}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
