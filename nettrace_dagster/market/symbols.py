"""What a symbol is: the one validator for every symbol a user hands us.

A symbol becomes a file name in the lake (`candles/<SYMBOL>.parquet`), a Dagster partition key
and, with `-` turned into `/`, a ccxt market. So it is `BASE-QUOTE`, letters and digits only:
nothing that could climb out of the lake (`..`, `/`), hide in a listing (tabs, newlines) or name
two files on a case-insensitive disk (`btc-usdt` and `BTC-USDT` are one symbol, upper case).

This module imports nothing heavy: settings and the CLI use it at startup.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

SYMBOL_PATTERN = re.compile(r"[A-Z0-9]{1,20}-[A-Z0-9]{1,20}")  # used with fullmatch: `$` would allow "\n"
EXAMPLE = "BTC-USDT"


class SymbolError(ValueError):
    """A symbol NetTrace cannot use; the message is one line naming it."""


def parse_symbol(raw: str, what: str = "symbol") -> str:
    """The canonical (upper-case) form of `raw`, or SymbolError naming `what` and the value."""
    text = raw.strip(" ").upper() if isinstance(raw, str) else ""  # spaces only: a tab or newline is refused
    if SYMBOL_PATTERN.fullmatch(text):
        return text
    dashed = text.replace("/", "-")
    hint = f"; write it as {dashed}" if SYMBOL_PATTERN.fullmatch(dashed) else ""
    raise SymbolError(f"{what} {raw!r} is not like {EXAMPLE} (BASE-QUOTE, letters and digits, up to 20 each)"
                      + hint)


def parse_symbol_list(raw: str | Iterable[str], what: str = "symbol") -> list[str]:
    """Comma-separated (or listed) symbols: each valid, at least one, none twice."""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    symbols: list[str] = []
    for item in items:
        if not item.strip(" "):
            continue  # a trailing comma is a typo worth forgiving, not an empty symbol
        symbol = parse_symbol(item, what)
        if symbol in symbols:
            raise SymbolError(f"{what} {symbol} is listed twice")
        symbols.append(symbol)
    if not symbols:
        raise SymbolError(f"no {what} given: name at least one, like {EXAMPLE}")
    return symbols
