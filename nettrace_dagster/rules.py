"""The immutable capital rules. Backtest, paper and live all read them from here.

This module is the single source of each rule's number. The entry gate (Rule 2) is used by the
backtest engine (vectorised, `entry_gate_mask`) and by the execution layer (one intent,
`entry_gate`); both call the same comparison so the two can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Rule 2 — always make money: an entry needs enough confidence and confirming signals.
MIN_ENTRY_CONFIDENCE = 0.70
MIN_CONFIRMATIONS = 2


@dataclass(frozen=True)
class GateDecision:
    allowed: bool
    reasons: tuple[str, ...]


def entry_gate_mask(confidence: np.ndarray, confirmations: np.ndarray,
                    min_confidence: float = MIN_ENTRY_CONFIDENCE,
                    min_confirmations: int = MIN_CONFIRMATIONS) -> np.ndarray:
    """Bars whose entry signal passes Rule 2. Thresholds may be tightened, never loosened."""
    min_confidence = max(min_confidence, MIN_ENTRY_CONFIDENCE)
    min_confirmations = max(min_confirmations, MIN_CONFIRMATIONS)
    return (np.asarray(confidence) >= min_confidence) & (np.asarray(confirmations) >= min_confirmations)


def entry_gate(confidence: float, confirmations: int,
               min_confidence: float = MIN_ENTRY_CONFIDENCE,
               min_confirmations: int = MIN_CONFIRMATIONS) -> GateDecision:
    """Rule 2 for one intent, with the reasons a trader reads when it says no."""
    ok = bool(entry_gate_mask(np.array([confidence]), np.array([confirmations]),
                              min_confidence, min_confirmations)[0])
    if ok:
        return GateDecision(True, ())
    reasons = []
    floor_c = max(min_confidence, MIN_ENTRY_CONFIDENCE)
    floor_n = max(min_confirmations, MIN_CONFIRMATIONS)
    if not confidence >= floor_c:
        reasons.append(f"confidence {confidence:.2f} < {floor_c:.2f} (Rule 2)")
    if not confirmations >= floor_n:
        reasons.append(f"{confirmations} confirming signal(s) < {floor_n} (Rule 2)")
    return GateDecision(False, tuple(reasons))
