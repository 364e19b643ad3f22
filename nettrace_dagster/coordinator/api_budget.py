"""One exchange API budget for every process: 600 calls per minute and 30,000 per hour.

ccxt's `enableRateLimit` is per exchange *instance*, so separate processes do not share it; this
budget lives in the ledger database instead. Calls are counted per exchange and UTC minute: the
minute limit is a fixed window (how Binance itself counts request weight), the hour limit is the
sum of the last 60 minute buckets (rolling). A call that would exceed either waits until the
window it needs opens; `acquire` gives up with `ApiBudgetExhausted` after its timeout.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from nettrace_dagster.ledger.models import ApiWindow

PER_MINUTE = 600
PER_HOUR = 30_000


class ApiBudgetExhausted(RuntimeError):
    """The shared API budget had no room within the caller's timeout."""


@dataclass(frozen=True)
class BudgetAnswer:
    granted: bool
    wait_s: float  # how long until a retry can succeed (0 when granted)
    minute_calls: int
    hour_calls: int


def try_acquire_in(s: Session, exchange: str, calls: int, now: float, per_minute: int = PER_MINUTE,
                   per_hour: int = PER_HOUR) -> BudgetAnswer:
    if calls > per_minute or calls > per_hour:
        raise ValueError(f"{calls} calls can never fit a budget of {per_minute}/min, {per_hour}/h")
    minute = int(now // 60)
    rows = {m: c for m, c in s.execute(select(ApiWindow.minute, ApiWindow.calls).where(
        ApiWindow.exchange == exchange, ApiWindow.minute > minute - 60))}
    in_minute, in_hour = rows.get(minute, 0), sum(rows.values())
    if in_minute + calls > per_minute:
        return BudgetAnswer(False, (minute + 1) * 60 - now, in_minute, in_hour)
    if in_hour + calls > per_hour:
        excess, wait = in_hour + calls - per_hour, 60.0
        for m in sorted(rows):  # the oldest buckets leave the rolling hour first
            excess -= rows[m]
            if excess <= 0:
                wait = (m + 60) * 60 - now
                break
        return BudgetAnswer(False, max(wait, 0.01), in_minute, in_hour)
    row = s.get(ApiWindow, (exchange, minute))
    if row is None:
        s.add(ApiWindow(exchange=exchange, minute=minute, calls=calls))
        s.execute(delete(ApiWindow).where(ApiWindow.exchange == exchange, ApiWindow.minute <= minute - 60))
    else:
        row.calls += calls
    return BudgetAnswer(True, 0.0, in_minute + calls, in_hour + calls)
