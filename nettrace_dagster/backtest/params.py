"""Engine parameters: costs, sizing, stops and take-profit tiers (the engine-relevant part of
the nine optimized parameters, plus the market's costs)."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

# Keys of a parameter dict that belong to the engine rather than the strategy.
_ALIASES = {"take_profit": "tp0", "trade_fraction_multiplier": "fraction_multiplier"}


@dataclass(frozen=True)
class EngineParams:
    """How the engine trades a strategy's signals. All fractions are fractions, not percent.

    - `fee`: fee per side as a fraction of the fill's notional (0.001 = 10 bps).
    - `slippage_bps`: buys fill that many basis points above the price, sells below.
    - Sizing: an entry spends `min(trade_fraction × fraction_multiplier, 1 − min_reserve)` of
      equity (fees included), never more than the cash there is. `min_reserve` is the share of
      equity always left in cash. 1, 1, 0 is all-in.
    - `stop_loss`: exit everything when the low reaches entry × (1 − stop_loss). 0 = off.
    - `trailing_stop`: exit everything when the low reaches peak × (1 − trailing_stop), the peak
      being the highest high of the bars before this one since entry (and the entry price). 0 = off.
    - Take-profit tiers `tp0 < tp1 < tp2` (0 = off) above the entry price; tier k sells
      `tpk_fraction` of the units bought (or what is left). The last enabled tier sells the rest
      if `tp_last_closes` (default), else the rest rides on stops and exit signals.
    - `min_confidence`, `min_confirmations`: Rule 2 entry gate; may tighten it, never loosen it.
    """

    initial_equity: float = 10_000.0
    fee: float = 0.001
    slippage_bps: float = 0.0
    trade_fraction: float = 1.0
    fraction_multiplier: float = 1.0
    min_reserve: float = 0.0
    stop_loss: float = 0.0
    trailing_stop: float = 0.0
    tp0: float = 0.0
    tp1: float = 0.0
    tp2: float = 0.0
    tp0_fraction: float = 0.25
    tp1_fraction: float = 0.25
    tp2_fraction: float = 0.5
    tp_last_closes: bool = True
    min_confidence: float = 0.0
    min_confirmations: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float | int) and not isinstance(value, bool) and not math.isfinite(value):
                raise ValueError(f"engine parameter {f.name} must be finite, got {value!r}")
        if self.initial_equity <= 0:
            raise ValueError("initial_equity must be > 0")
        if not 0 <= self.fee < 1:
            raise ValueError(f"fee must be a fraction in [0, 1), got {self.fee}")
        if not 0 <= self.slippage_bps < 10_000:
            raise ValueError(f"slippage_bps must be in [0, 10000), got {self.slippage_bps}")
        if self.trade_fraction <= 0 or self.fraction_multiplier <= 0:
            raise ValueError("trade_fraction and fraction_multiplier must be > 0")
        if not 0 <= self.min_reserve < 1:
            raise ValueError(f"min_reserve must be in [0, 1), got {self.min_reserve}")
        if not 0 <= self.stop_loss < 1:
            raise ValueError(f"stop_loss must be in [0, 1), got {self.stop_loss}")
        if not 0 <= self.trailing_stop < 1:
            raise ValueError(f"trailing_stop must be in [0, 1), got {self.trailing_stop}")
        levels = [lv for lv in (self.tp0, self.tp1, self.tp2) if lv != 0]
        if any(lv < 0 for lv in levels) or levels != sorted(set(levels)):
            raise ValueError("take-profit levels must be > 0 and increasing: tp0 < tp1 < tp2 (0 = off)")
        for name in ("tp0_fraction", "tp1_fraction", "tp2_fraction"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1]")

    @property
    def slippage(self) -> float:
        return self.slippage_bps / 10_000.0

    @property
    def size_fraction(self) -> float:
        """Share of equity an entry spends (fees included)."""
        return min(self.trade_fraction * self.fraction_multiplier, 1.0 - self.min_reserve)

    def tiers(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """Tier levels (0 = off) and fractions, the last enabled tier's fraction 1 when it closes."""
        levels = (self.tp0, self.tp1, self.tp2)
        fracs = [self.tp0_fraction, self.tp1_fraction, self.tp2_fraction]
        enabled = [k for k in range(3) if levels[k] > 0]
        if enabled and self.tp_last_closes:
            fracs[enabled[-1]] = 1.0
        return levels, (fracs[0], fracs[1], fracs[2])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_(self, **changes: Any) -> EngineParams:
        return replace(self, **normalize_keys(changes))

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None = None, base: EngineParams | None = None) -> EngineParams:
        """Build from a dict of engine keys (ValueError on an unknown one). `take_profit: x` is
        one tier at x that sells everything."""
        values = dict(values or {})
        unknown = sorted(k for k in values if k not in ENGINE_KEYS)
        if unknown:
            raise ValueError(f"unknown engine parameter(s): {', '.join(unknown)}")
        if "take_profit" in values and any(k in values for k in ("tp0", "tp1", "tp2")):
            raise ValueError("give either take_profit or tp0/tp1/tp2, not both")
        values = {key: _checked_value(key, value) for key, value in values.items()}
        return replace(base or cls(), **normalize_keys(values))


def _checked_value(key: str, value: Any) -> Any:
    """A value of the field's type: JSON's null, lists, strings or true for a number would
    otherwise fail deep inside the checks (or silently count as 1)."""
    field_type = _FIELD_TYPES[_ALIASES.get(key, key)]
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:39] + "…"
    if field_type == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"engine parameter {key} must be true or false, got {shown}")
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"engine parameter {key} must be a number, got {shown}")
    if not math.isfinite(value):
        raise ValueError(f"engine parameter {key} must be finite, got {shown}")
    if field_type == "int":
        if value != math.floor(value):
            raise ValueError(f"engine parameter {key} must be a whole number, got {shown}")
        return int(value)
    return value


ENGINE_FIELDS = frozenset(f.name for f in fields(EngineParams))
_FIELD_TYPES = {f.name: f.type if isinstance(f.type, str) else f.type.__name__  # "float", "int", "bool"
                for f in fields(EngineParams)}
ENGINE_KEYS = ENGINE_FIELDS | frozenset(_ALIASES)


def normalize_keys(values: dict[str, Any]) -> dict[str, Any]:
    out = {_ALIASES.get(k, k): v for k, v in values.items()}
    if "take_profit" in values:
        out["tp0_fraction"] = 1.0
    return out


def split_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(strategy params, engine params) from one dict such as the CLI's --params."""
    strategy = {k: v for k, v in params.items() if k not in ENGINE_KEYS}
    engine = {k: v for k, v in params.items() if k in ENGINE_KEYS}
    return strategy, engine
