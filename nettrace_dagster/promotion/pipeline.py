"""The promotion pipeline: COLD → WARM → LIMITED → FULL.

- COLD: a backtest of the candidate over the last `cold_lookback_days` (the injectable
  `cold_evaluator`); passes with Sharpe ≥ `cold_min_sharpe`. Runs at once (no window).
- WARM: a paper sleeve of the candidate and a paper *baseline twin* (the set in force) start
  together with the same capital and trade the same bars for `warm_window_s`. Passes when the
  relative edge (below) is ≥ `warm_min_edge` (+10 %).
- LIMITED: the same with `limited_fraction` (10 %) of the account's equity for `limited_window_s`,
  edge ≥ `limited_min_edge` (+15 %). With `require_approval` it then waits for `approve`.
- FULL: `on_full` puts the candidate's set in force (the previous one is kept for rollback).

"vs baseline", precisely: over the stage's window, with P&L = equity now − equity at the start
(both sleeves marked at the same closes), edge = (P&L_candidate − P&L_baseline) /
max(|P&L_baseline|, `edge_floor_fraction` × capital). A stage passes when edge ≥ its threshold
and the candidate's sleeve filled at least `min_fills` orders. The denominator is positive, so a
candidate whose P&L is at or below the baseline's never passes; the floor keeps a baseline that
barely moved from turning noise into a huge edge. A window in which the candidate filled fewer
than `min_fills` orders proves nothing either way (a trend set can wait hours for its move): it is
extended by one more window, up to `max_extensions` times, and only then rejected for lack of
evidence. The edge is always taken over the whole window since the stage began.

HARDSTOP pauses COLD and WARM (the coordinator's `begin` refuses them): they stay where they are,
with "paused" in their evidence, and continue when HARDSTOP is off. Time is `clock()`: the wall
clock by default; the demo and the tests pass the simulated bar time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nettrace_dagster.coordinator.core import Coordinator
from nettrace_dagster.ledger.db import Ledger
from nettrace_dagster.ledger.models import Capital, EquityMark, Order
from nettrace_dagster.ledger.promotion_tables import ACTIVE_STAGES, Candidate
from nettrace_dagster.paramsets import in_force
from nettrace_dagster.promotion import store
from nettrace_dagster.promotion.config import PromotionConfig
from nettrace_dagster.trading.sleeves import Sleeve

# (param set, strategy files) -> {"sharpe": float, ...}: the COLD backtest.
ColdEvaluator = Callable[[dict[str, Any], dict[str, dict[str, str]]], dict[str, Any]]


def sleeve_account(main: str, candidate_id: int, role: str) -> str:
    return f"{main}:c{candidate_id}:{role}"


def relative_edge(candidate_pnl: float, baseline_pnl: float, capital: float, floor_fraction: float) -> float:
    """(candidate − baseline) / max(|baseline|, floor × capital): see the module docstring."""
    return (candidate_pnl - baseline_pnl) / max(abs(baseline_pnl), floor_fraction * capital, 1e-12)


class Pipeline:
    def __init__(self, ledger: Ledger, config: PromotionConfig | None = None, *,
                 audit_dir: Path | str | None = None, main_account: str = "main",
                 clock: Callable[[], float] = time.time, cold_evaluator: ColdEvaluator | None = None,
                 coordinator: Coordinator | None = None,
                 on_release: Callable[[in_force.InForce], None] | None = None) -> None:
        self.ledger, self.config = ledger, config or PromotionConfig()
        # Called after a FULL set is committed (never inside the transaction): the deploy
        # pillar makes it a release, which the deploy sensor rolls out region by region.
        self.on_release = on_release
        self.audit_dir = Path(audit_dir) if audit_dir is not None else None
        self.main, self.clock = main_account, clock
        self.cold_evaluator = cold_evaluator
        self.coordinator = coordinator or Coordinator(ledger, self.audit_dir, main_account, clock=clock)

    # --- submitting and looking --------------------------------------------------------------
    def submit(self, param_set: dict[str, Any], *, regime: str = "", source: str = "",
               strategy: dict[str, str] | None = None, gate: dict[str, Any] | None = None,
               kind: str | None = None) -> tuple[int, bool]:
        with self.ledger.tx() as s:
            c, new = store.submit_in(s, param_set, now=self.clock(), regime=regime, source=source,
                                     strategy=strategy, gate=gate, kind=kind)
            cid = c.id
        self.flush()
        return cid, new

    def candidates(self, stages: tuple[str, ...] | None = None) -> list[store.CandidateView]:
        with self.ledger.read() as s:
            return store.list_in(s, stages)

    def candidate(self, candidate_id: int) -> store.CandidateView:
        with self.ledger.read() as s:
            return store.view_in(s, store.get_in(s, candidate_id))

    def due(self) -> list[int]:
        """Candidates with something to decide now: COLD ones, and WARM / LIMITED whose window ended."""
        now = self.clock()
        out = []
        for c in self.candidates(ACTIVE_STAGES):
            window = {"COLD": 0.0, "WARM": self.config.warm_window_s, "LIMITED": self.config.limited_window_s}[c.stage]
            window *= 1 + extensions(c.evidence, c.stage)
            if now - c.stage_started_at >= window and not (c.stage == "LIMITED" and c.waiting_approval):
                out.append(c.id)
        return out

    def sleeves(self) -> list[Sleeve]:
        """The sleeves to trade beside the FULL set: each WARM / LIMITED candidate and its twin."""
        current = in_force.current(self.ledger)
        out, twins = [], {}
        for c in self.candidates(("WARM", "LIMITED")):
            role = c.stage.lower()
            start = c.evidence.get(role + "_start", {})
            capital = float(start.get("capital", self.config.sleeve_capital))
            cand, base = start.get("accounts") or (sleeve_account(self.main, c.id, role),
                                                   sleeve_account(self.main, c.id, role + "-base"))
            out.append(Sleeve(cand, role, c.param_set, capital, c.id, c.strategy_files))
            # Candidates that started a stage together share one twin: the same set on the same bars.
            twins.setdefault(base, Sleeve(base, role + "_baseline", current.param_set, capital, None,
                                          current.strategy_files))
        return out + list(twins.values())

    # --- advancing -----------------------------------------------------------------------------
    def advance(self, by: str = "promotion_sensor") -> list[dict[str, Any]]:
        """Decide every due candidate; the transitions made ({"candidate", "from", "to", "reason"})."""
        made, promoted = [], False
        for cid in self._in_order(self.due()):
            stage = self.candidate(cid).stage
            if stage == "LIMITED" and promoted:
                result = self._restart_limited(cid, by)
            else:
                result = {"COLD": self._cold, "WARM": self._warm, "LIMITED": self._limited}[stage](cid, by)
            if result is not None:
                made.append(result)
                promoted = promoted or result["to"] == "FULL"
        self.flush()
        return made

    def _in_order(self, due: list[int]) -> list[int]:
        """COLD and WARM by id, then LIMITED best edge first: when several finish LIMITED together,
        the best goes FULL and the others start again against it (`_restart_limited`), instead of
        the newest id silently winning."""
        views = [self.candidate(cid) for cid in due]
        limited = [v for v in views if v.stage == "LIMITED"]

        def edge(v: store.CandidateView) -> float:
            start = v.evidence.get("limited_start", {})
            return float(self.sleeve_evidence(v.id, "limited", float(start.get("capital", self.config.sleeve_capital)),
                                              float(start.get("at", v.stage_started_at)),
                                              start.get("accounts"))["edge"])
        return [v.id for v in views if v.stage != "LIMITED"] + [v.id for v in sorted(limited, key=lambda v: -edge(v))]

    def _restart_limited(self, cid: int, by: str) -> dict[str, Any] | None:
        """Another candidate went FULL in this round: this one's evidence was measured against a
        set no longer in force, so its LIMITED window starts again, beside the new set."""
        ev = self._judge_sleeves(cid, "limited", self.config.limited_min_edge)[1]
        reason = "LIMITED: another candidate went FULL in the same round; window restarts against the new set in force"
        with self.ledger.tx() as s:
            c = store.get_in(s, cid, lock=True)
            if c.stage != "LIMITED":
                return None
            capital = float(json.loads(c.evidence or "{}").get("limited_start", {}).get("capital",
                                                                                         self.config.sleeve_capital))
            store.move_in(s, c, "LIMITED", "restart", by, reason, ev, self.clock(), "limited")
            c.stage_started_at = self.clock()
            self._open_stage_in(s, c, "limited", capital, restart=True)
        return {"candidate": cid, "from": "LIMITED", "to": "LIMITED", "reason": reason}

    def _paused(self, kind: str) -> tuple[bool, str, int | None]:
        lease = self.coordinator.begin(kind, f"promotion:{kind}", ttl_s=600)
        if lease.status != "running":
            return True, "; ".join(lease.reasons), None
        return False, "", lease.activity_id

    def _cold(self, cid: int, by: str) -> dict[str, Any] | None:
        paused, why, activity = self._paused("cold")
        if paused:
            return self._note(cid, "COLD", why)
        try:
            view = self.candidate(cid)
            if self.cold_evaluator is None:
                raise RuntimeError("no COLD evaluator configured")
            try:
                result = dict(self.cold_evaluator(view.param_set, view.strategy_files))
                sharpe = float(result["sharpe"])
            except Exception as exc:  # noqa: BLE001 - a candidate that cannot be backtested fails COLD
                result, sharpe = {"error": f"{type(exc).__name__}: {exc}"[:300]}, float("nan")
            ok = sharpe >= self.config.cold_min_sharpe
            evidence = {**result, "min_sharpe": self.config.cold_min_sharpe,
                        "lookback_days": self.config.cold_lookback_days, "passed": ok}
            reason = (f"COLD backtest Sharpe {sharpe:.2f} {'≥' if ok else '<'} {self.config.cold_min_sharpe:.2f} "
                      f"over {self.config.cold_lookback_days:g} days") if sharpe == sharpe else \
                f"COLD backtest failed: {result.get('error')}"
            with self.ledger.tx() as s:
                c = store.get_in(s, cid, lock=True)
                if c.stage != "COLD":
                    return None
                store.move_in(s, c, "WARM" if ok else "REJECTED", "pass" if ok else "fail", by, reason,
                              evidence, self.clock(), "cold")
                if ok:
                    self._open_stage_in(s, c, "warm", self.config.sleeve_capital)
            return {"candidate": cid, "from": "COLD", "to": "WARM" if ok else "REJECTED", "reason": reason}
        finally:
            if activity is not None:
                self.coordinator.end(activity)

    def _open_stage_in(self, s: Session, c: Candidate, role: str, capital: float, restart: bool = False) -> None:
        """Record the sleeves' start (capital, time); the trader funds them on its next tick. A
        restarted stage trades fresh accounts (its old sleeve's P&L is the old window's)."""
        evidence = json.loads(c.evidence or "{}")
        twin = f"{self.main}:{role}-base:{int(self.clock())}:{int(capital * 100)}"
        account = sleeve_account(self.main, c.id, role) + (f":{int(self.clock())}" if restart else "")
        evidence[role + "_start"] = {"capital": capital, "at": self.clock(), "accounts": [account, twin]}
        c.evidence = json.dumps(evidence, default=str)

    def sleeve_evidence(self, cid: int, role: str, capital: float, since: float,
                        accounts: list[str] | None = None) -> dict[str, Any]:
        """Both sleeves' P&L over the stage, the edge, and the candidate sleeve's fills."""
        cand, base = accounts or (sleeve_account(self.main, cid, role), sleeve_account(self.main, cid, role + "-base"))
        with self.ledger.read() as s:
            caps = {a: s.get(Capital, a) for a in (cand, base)}
            fills = int(s.scalar(select(func.count()).select_from(Order).where(
                Order.account == cand, Order.filled_qty > 0)) or 0)
        pnl = {a: (c.last_equity - c.principal) if c is not None else 0.0 for a, c in caps.items()}
        edge = relative_edge(pnl[cand], pnl[base], capital, self.config.edge_floor_fraction)
        return {"capital": capital, "candidate_pnl": pnl[cand], "baseline_pnl": pnl[base],
                "candidate_return": pnl[cand] / capital if capital else 0.0,
                "baseline_return": pnl[base] / capital if capital else 0.0, "edge": edge,
                "candidate_fills": fills, "window_s": self.clock() - since}

    def _extend(self, cid: int, role: str, by: str) -> dict[str, Any] | None:
        """Too few fills to judge and extensions left: the stage's window runs once more (the
        edge is then taken over the whole, longer window). None when it must be judged now."""
        view = self.candidate(cid)
        done = extensions(view.evidence, view.stage)
        start = view.evidence.get(role + "_start", {})
        ev = self.sleeve_evidence(cid, role, float(start.get("capital", self.config.sleeve_capital)),
                                  float(start.get("at", view.stage_started_at)), start.get("accounts"))
        if ev["candidate_fills"] >= self.config.min_fills or done >= self.config.max_extensions:
            return None
        reason = (f"{role.upper()}: only {ev['candidate_fills']} fill(s) < {self.config.min_fills} in "
                  f"{ev['window_s'] / 3600:g} h: no evidence yet, window extended "
                  f"({done + 1} of {self.config.max_extensions})")
        with self.ledger.tx() as s:
            c = store.get_in(s, cid, lock=True)
            if c.stage != role.upper():
                return None
            evidence = json.loads(c.evidence or "{}")
            evidence.setdefault(role + "_start", {})["extensions"] = done + 1
            c.evidence = json.dumps(evidence, default=str)
            store.move_in(s, c, c.stage, "extend", by, reason, ev, self.clock())
        return {"candidate": cid, "from": role.upper(), "to": role.upper(), "reason": reason}

    def _judge_sleeves(self, cid: int, role: str, threshold: float) -> tuple[bool, dict[str, Any], str]:
        view = self.candidate(cid)
        start = view.evidence.get(role + "_start", {})
        ev = self.sleeve_evidence(cid, role, float(start.get("capital", self.config.sleeve_capital)),
                                  float(start.get("at", view.stage_started_at)), start.get("accounts"))
        ev["accounts"] = start.get("accounts")
        ok = ev["edge"] >= threshold and ev["candidate_fills"] >= self.config.min_fills
        ev.update(min_edge=threshold, min_fills=self.config.min_fills, passed=ok)
        why = (f"{role.upper()}: candidate P&L ${ev['candidate_pnl']:+.2f} vs baseline ${ev['baseline_pnl']:+.2f}, "
               f"edge {ev['edge']:+.1%} {'≥' if ev['edge'] >= threshold else '<'} {threshold:+.0%}")
        if ev["candidate_fills"] < self.config.min_fills:
            why += f"; only {ev['candidate_fills']} fill(s) < {self.config.min_fills}: no evidence"
        return ok, ev, why

    def _warm(self, cid: int, by: str) -> dict[str, Any] | None:
        paused, why, activity = self._paused("warm")
        if paused:
            return self._note(cid, "WARM", why)
        try:
            extended = self._extend(cid, "warm", by)
            if extended is not None:
                return extended
            ok, ev, reason = self._judge_sleeves(cid, "warm", self.config.warm_min_edge)
            with self.ledger.tx() as s:
                c = store.get_in(s, cid, lock=True)
                if c.stage != "WARM":
                    return None
                store.move_in(s, c, "LIMITED" if ok else "REJECTED", "pass" if ok else "fail", by, reason, ev,
                              self.clock(), "warm")
                if ok:
                    main = s.get(Capital, self.main)
                    equity = main.last_equity if main is not None else self.config.sleeve_capital
                    self._open_stage_in(s, c, "limited", round(self.config.limited_fraction * equity, 2))
            return {"candidate": cid, "from": "WARM", "to": "LIMITED" if ok else "REJECTED", "reason": reason}
        finally:
            if activity is not None:
                self.coordinator.end(activity)

    def _limited(self, cid: int, by: str) -> dict[str, Any] | None:
        extended = self._extend(cid, "limited", by)
        if extended is not None:
            return extended
        ok, ev, reason = self._judge_sleeves(cid, "limited", self.config.limited_min_edge)
        with self.ledger.tx() as s:
            c = store.get_in(s, cid, lock=True)
            if c.stage != "LIMITED":
                return None
            if not ok:
                store.move_in(s, c, "REJECTED", "fail", by, reason, ev, self.clock(), "limited")
                return {"candidate": cid, "from": "LIMITED", "to": "REJECTED", "reason": reason}
            if self.config.require_approval and not c.approved_by:
                c.waiting_approval = True
                store.move_in(s, c, "LIMITED", "await_approval", by, reason + "; waiting for approval "
                              "(NETTRACE_REQUIRE_APPROVAL=1)", ev, self.clock(), "limited")
                return {"candidate": cid, "from": "LIMITED", "to": "LIMITED", "reason": "waiting for approval"}
            store.move_in(s, c, "LIMITED", "pass", by, reason, ev, self.clock(), "limited")
            new = on_full(s, c, by=c.approved_by or by, reason=reason, now=self.clock(), main_account=self.main)
        self._released(new)
        return {"candidate": cid, "from": "LIMITED", "to": "FULL", "reason": reason}

    def _note(self, cid: int, stage: str, why: str) -> dict[str, Any] | None:
        """A paused stage: say why in its evidence (once per reason), decide nothing."""
        with self.ledger.tx() as s:
            c = store.get_in(s, cid, lock=True)
            view = store.view_in(s, c)
            if view.evidence.get("paused") != why:
                evidence = {**view.evidence, "paused": why}
                c.evidence = json.dumps(evidence, default=str)
        return None

    # --- the human checkpoint ------------------------------------------------------------------
    def approve(self, cid: int, by: str, reason: str = "") -> dict[str, Any]:
        """Approve a LIMITED candidate: one waiting for approval goes FULL now; one still in its
        window goes FULL when the window passes (if its evidence passes)."""
        with self.ledger.tx() as s:
            c = store.get_in(s, cid, lock=True)
            if c.stage != "LIMITED":
                raise store.CandidateError(f"candidate {cid} is {c.stage}: only a LIMITED candidate can be approved")
            now = self.clock()
            c.approved_by, c.approved_at = by, now
            store.move_in(s, c, "LIMITED", "approve", by, reason or "approved", {}, now)
            to, new = "LIMITED", None
            if c.waiting_approval:
                c.waiting_approval = False
                new = on_full(s, c, by=by, reason=f"approved by {by}: {reason}".rstrip(": "), now=now,
                              main_account=self.main)
                to = "FULL"
        self.flush()
        if new is not None:
            self._released(new)
        return {"candidate": cid, "stage": to, "approved_by": by}

    def reject(self, cid: int, by: str, reason: str) -> dict[str, Any]:
        if not reason.strip():
            raise store.CandidateError("a rejection needs a reason (--reason)")
        with self.ledger.tx() as s:
            c = store.get_in(s, cid, lock=True)
            if c.stage not in ACTIVE_STAGES:
                raise store.CandidateError(f"candidate {cid} is {c.stage}: only COLD, WARM or LIMITED can be rejected")
            frm = c.stage
            c.waiting_approval = False
            store.move_in(s, c, "REJECTED", "reject", by, reason, {}, self.clock())
        self.flush()
        return {"candidate": cid, "from": frm, "stage": "REJECTED", "rejected_by": by, "reason": reason}

    def flush(self) -> int:
        return in_force.flush_outbox(self.ledger, self.audit_dir)

    def _released(self, new: in_force.InForce) -> None:
        if self.on_release is not None:
            self.on_release(new)


def extensions(evidence: dict[str, Any], stage: str) -> int:
    """How many times the candidate's current WARM / LIMITED window has been extended."""
    return int(evidence.get(stage.lower() + "_start", {}).get("extensions", 0)) if stage in ("WARM", "LIMITED") else 0


def account_sharpe_in(s: Session, account: str, since: float | None = None, until: float | None = None,
                      limit: int = 1000) -> tuple[float, int]:
    """Sharpe (mean / std, not annualised) of the account's mark-to-mark equity returns, and the
    number of returns it is taken over."""
    q = select(EquityMark.equity).where(EquityMark.account == account)
    if since is not None:
        q = q.where(EquityMark.ts >= since)
    if until is not None:
        q = q.where(EquityMark.ts < until)
    equity = list(s.scalars(q.order_by(EquityMark.ts.desc()).limit(limit)))[::-1]
    rets = [b / a - 1.0 for a, b in zip(equity, equity[1:], strict=False) if a > 0]
    if len(rets) < 2:
        return 0.0, len(rets)
    mean = sum(rets) / len(rets)
    var = sum((r - mean) ** 2 for r in rets) / (len(rets) - 1)
    return (mean / var ** 0.5 if var > 0 else 0.0), len(rets)


def on_full(s: Session, c: Candidate, *, by: str, reason: str, now: float, main_account: str = "main"
            ) -> in_force.InForce:
    """FULL: the candidate's set becomes the parameters in force (the set it replaces stays one
    rollback away), the FULL candidate it replaces is RETIRED. Inside the caller's transaction.
    The deploy controller extends this: a FULL set is also a release to roll out."""
    main = s.get(Capital, main_account)
    sharpe, n = account_sharpe_in(s, main_account, until=now)
    baseline = {"sharpe": sharpe, "returns": n, "equity_at_activation": main.last_equity if main else None,
                "activated_at": now}
    view = store.view_in(s, c)
    for old in s.scalars(select(Candidate).where(Candidate.stage == "FULL", Candidate.id != c.id)):
        store.move_in(s, old, "RETIRED", "retire", by, f"replaced by candidate {c.id}", {}, now)
    new = in_force.activate_in(s, view.param_set, by=by, reason=f"candidate {c.id} promoted: {reason}",
                               candidate_id=c.id, strategy_files=view.strategy_files, baseline=baseline, now=now)
    store.move_in(s, c, "FULL", "promote", by, reason, {"in_force_id": new.id, "baseline": baseline}, now, "full")
    return new
