"""What a strategy asks for (`Intent`) and what the execution engine answers (`Decision`)."""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

Kind = Literal["entry", "exit"]


@dataclass(frozen=True)
class Intent:
    """One request to trade. Spot, long only: an entry buys, an exit sells what is held.

    `key` names the occasion (e.g. the signal bar's timestamp): the same strategy, symbol, kind
    and key always give the same client order id, so a retried or replayed tick can never place
    a second order for one signal.
    """

    strategy: str
    symbol: str  # partition-key form, e.g. BTC-USDT
    kind: Kind
    price: float  # reference price: the latest close or ticker
    key: str
    confidence: float = 0.0
    confirmations: int = 0
    notional: float | None = None  # entries: USD wanted (None: the rules' position budget)
    qty: float | None = None  # exits: units to sell (None: the whole position)
    account: str = "main"
    bar_ms: int | None = None  # the signal bar's time (epoch ms): the market time of the order

    @property
    def side(self) -> str:
        return "buy" if self.kind == "entry" else "sell"

    @property
    def client_order_id(self) -> str:
        """Deterministic, ≤ 36 chars of [0-9a-z] (Binance's newClientOrderId limit)."""
        raw = f"{self.account}|{self.strategy}|{self.symbol}|{self.kind}|{self.key}".encode()
        return "nt" + hashlib.sha256(raw).hexdigest()[:30]

    def problems(self) -> list[str]:
        out = []
        if self.kind not in ("entry", "exit"):
            out.append(f"kind {self.kind!r} is not entry or exit")
        if not (isinstance(self.price, int | float) and math.isfinite(self.price) and self.price > 0):
            out.append(f"reference price {self.price!r} is not a positive number")
        if self.notional is not None and not (math.isfinite(self.notional) and self.notional > 0):
            out.append(f"notional {self.notional!r} is not a positive number")
        if self.qty is not None and not (math.isfinite(self.qty) and self.qty > 0):
            out.append(f"qty {self.qty!r} is not a positive number")
        return out


@dataclass(frozen=True)
class Decision:
    """The engine's answer, always with its reasons. `status` is the order's state afterwards
    ("filled", "open", "unknown", "rejected", …; "none" when nothing needed sending)."""

    approved: bool
    kind: str
    reasons: tuple[str, ...]
    qty: float = 0.0
    notional: float = 0.0
    client_order_id: str = ""
    status: str = "none"
    duplicate: bool = False
    filled_qty: float = 0.0
    avg_price: float = 0.0
    fee: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["reasons"] = list(self.reasons)
        return out
