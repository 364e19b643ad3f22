"""Property-based: no sequence of prices and intents makes the engine approve an entry that breaks
a rule, or block an exit. Checked on the pure gate (many cases) and on the whole engine with the
paper broker and a real SQLite ledger (fewer, longer sequences)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nettrace_dagster.execution.costs import CostModel
from nettrace_dagster.execution.decide import decide
from nettrace_dagster.execution.engine import ExecutionEngine
from nettrace_dagster.execution.intents import Intent
from nettrace_dagster.execution.paper import PaperBroker
from nettrace_dagster.ledger.db import Ledger
from nettrace_dagster.rules import AccountSnapshot, Rules, StrategyRecord

EPS = 1e-6
money = st.floats(min_value=0.0, max_value=1_000.0, allow_nan=False)


@st.composite
def accounts(draw: st.DrawFn) -> AccountSnapshot:
    cash = draw(money)
    equity = cash + draw(money)
    return AccountSnapshot(equity=equity, cash=cash, principal=draw(st.floats(1.0, 500.0)),
                           peak_equity=max(equity, draw(money)), day_start_equity=draw(money),
                           locked_profit=draw(st.floats(0.0, 100.0)), principal_locked=draw(st.booleans()),
                           reserved=draw(st.floats(0.0, 200.0)), hardstop=draw(st.booleans()))


records = st.builds(StrategyRecord, trades=st.integers(0, 40), wins=st.integers(0, 40),
                    net_pnl=st.floats(-50, 50), fired=st.booleans()).filter(lambda r: r.wins <= r.trades)
intents = st.builds(Intent, strategy=st.just("s"), symbol=st.just("BTC-USDT"),
                    kind=st.sampled_from(["entry", "exit"]), price=st.floats(0.01, 1e5), key=st.just("k"),
                    confidence=st.floats(0.0, 1.0), confirmations=st.integers(0, 5),
                    notional=st.one_of(st.none(), st.floats(0.01, 500.0)), qty=st.one_of(st.none(), st.floats(0.001, 10)))


def breaks_a_rule(r: Rules, c: CostModel, a: AccountSnapshot, rec: StrategyRecord, i: Intent, held: float,
                  notional: float) -> list[str]:
    """An independent statement of every rule an approved entry must satisfy."""
    out = []
    if not (i.confidence >= 0.70 and i.confirmations >= 2):
        out.append("rule 2 gate")
    if rec.fired or (rec.trades >= 10 and rec.wins / rec.trades < 0.40):
        out.append("win rate / fired")
    cost = c.entry_cost(notional)
    if a.hardstop or a.equity - cost <= 10.0 or (a.peak_equity > 0 and 1 - (a.equity - cost) / a.peak_equity >= 0.30):
        out.append("hardstop")
    if a.day_start_equity - (a.equity - cost) >= 5.0:
        out.append("daily loss")
    locked = a.locked_profit + (a.principal if a.principal_locked else 0.0)
    reserve = max(10.0, 0.10 * a.equity)
    if notional * (1 + c.fee_rate) > a.cash - locked - reserve - a.reserved + EPS:
        out.append("touches locked capital, the reserve or reservations")
    if notional * (1 + c.fee_rate) > 0.25 * a.equity + EPS:
        out.append("position too large")
    if held > 0:
        out.append("already in position")
    return out


@settings(max_examples=600, deadline=None)
@given(a=accounts(), rec=records, i=intents, held=st.one_of(st.just(0.0), st.floats(0.0, 5.0)))
def test_gate_never_approves_a_rule_breaking_entry_nor_blocks_an_exit(a, rec, i, held) -> None:
    r, c = Rules(), CostModel()
    d = decide(r, c, a, rec, i, held)
    if i.kind == "exit":
        assert d.approved and d.qty <= held + EPS
        assert d.qty == (held if i.qty is None else min(i.qty, held))
    elif d.approved:
        assert d.qty > 0 and d.notional >= 5.0
        assert breaks_a_rule(r, c, a, rec, i, held, d.notional) == []
    else:
        assert d.reasons  # every refusal says why


step = st.one_of(
    st.tuples(st.just("price"), st.sampled_from(["BTC-USDT", "ETH-USDT"]), st.floats(0.55, 1.45)),
    st.tuples(st.just("entry"), st.sampled_from(["a", "b"]), st.sampled_from(["BTC-USDT", "ETH-USDT"]),
              st.floats(0.5, 1.0), st.integers(0, 4)),
    st.tuples(st.just("exit"), st.sampled_from(["a", "b"]), st.sampled_from(["BTC-USDT", "ETH-USDT"])),
    st.tuples(st.just("hardstop"), st.booleans()),
)
FEE, SLIP = 0.001, 5 / 10_000  # the paper broker's cost model, restated
NOW = 1_800_000_000.0  # 2027-01-15 08:00 UTC: a sequence never reaches the next UTC day


def ticking() -> Callable[[], float]:
    """A clock a millisecond further on each call (equity marks are unique per instant)."""
    t = [NOW]

    def clock() -> float:
        t[0] += 0.001
        return t[0]
    return clock


class Model:
    """A plain-Python account that follows the same fills: the oracle for what the engine must
    approve. It is told only the prices and the fills, never the engine's own verdicts."""

    def __init__(self) -> None:
        self.cash, self.peak, self.locked, self.hardstop = 100.0, 100.0, 0.0, False
        self.qty: dict[tuple[str, str], float] = {}
        self.mark: dict[tuple[str, str], float] = {}  # the price each position was last valued at
        self.cost: dict[tuple[str, str], float] = {}
        self.fired: set[str] = set()
        self.trades: dict[str, list[float]] = {}
        self.principal_locked = False

    def see(self, prices: dict[str, float] | None) -> AccountSnapshot:
        """What a refresh at `prices` (None: the last valuations) makes of the account: peak,
        principal and HARDSTOP latches."""
        for key in self.qty:
            self.mark[key] = prices[key[1]] if prices else self.mark[key]
        eq = self.cash + sum(q * self.mark[k] for k, q in self.qty.items())
        self.peak = max(self.peak, eq)
        self.principal_locked |= eq - 100.0 > 100.0
        if eq <= 10.0 or 1 - eq / self.peak >= 0.30:
            self.hardstop = True
        return AccountSnapshot(equity=eq, cash=self.cash, principal=100.0, peak_equity=self.peak,
                               day_start_equity=100.0, locked_profit=self.locked,
                               principal_locked=self.principal_locked, hardstop=self.hardstop)

    def buy(self, key: tuple[str, str], notional: float, price: float) -> None:
        fill = price * (1 + SLIP)
        self.cash -= notional + notional * FEE
        self.qty[key] = self.qty.get(key, 0.0) + notional / fill
        self.mark[key] = fill  # a fill values the position at its own price
        self.cost[key] = self.cost.get(key, 0.0) + notional * (1 + FEE)

    def sell(self, key: tuple[str, str], price: float) -> None:
        quote = self.qty.pop(key) * price * (1 - SLIP)
        pnl = quote * (1 - FEE) - self.cost.pop(key)
        self.cash += quote * (1 - FEE)
        self.trades.setdefault(key[0], []).append(pnl)
        self.locked += pnl * 0.75 if pnl > 0 else 0.0  # Rule 3: 25 % reinvested, the rest locked

    def record(self, strategy: str) -> StrategyRecord:
        pnls = self.trades.get(strategy, [])
        return StrategyRecord(trades=len(pnls), wins=sum(p > 0 for p in pnls), net_pnl=sum(pnls),
                              fired=strategy in self.fired)

    def judge(self) -> None:
        """Rule 3 at a mark: ten round trips losing money or under a 40 % win rate fire a strategy."""
        for name in self.trades:
            rec = self.record(name)
            if rec.trades >= 10 and (rec.net_pnl < 0 or rec.win_rate < 0.40):
                self.fired.add(name)

    def expected_entry(self, acct: AccountSnapshot, rec: StrategyRecord, i: Intent, held: float) -> float | None:
        """The notional the rules allow, or None when the entry must be refused."""
        locked = acct.locked_profit + (100.0 if acct.principal_locked else 0.0)
        free = max(0.0, acct.cash - locked - max(10.0, 0.10 * acct.equity))
        notional = min(free, 0.25 * acct.equity) / (1 + FEE)
        if notional < 5.0 or breaks_a_rule(Rules(), CostModel(), acct, rec, i, held, notional):
            return None
        return notional


def near_a_line(acct: AccountSnapshot, rec: StrategyRecord, i: Intent, m: Model) -> bool:
    """Within float noise of a rule's line, either verdict is right: such cases are not judged."""
    return any((m.expected_entry(replace(acct, equity=acct.equity + d, cash=acct.cash + d), rec, i, 0.0) is None)
               != (m.expected_entry(acct, rec, i, 0.0) is None) for d in (-1e-7, 1e-7))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=5, max_size=30))
def test_engine_sequences_keep_every_rule_and_every_exit(steps: list[tuple]) -> None:
    """Entries get exactly the verdict (and size) the independent model gives — valid ones are
    approved, invalid ones refused — judged, like the trader does, on the current prices of every
    symbol passed with the intent; exits always sell the whole position."""
    tmp = Path(tempfile.mkdtemp(prefix="nt-prop-"))
    try:
        ledger = Ledger(f"sqlite:///{tmp / 'ledger.db'}")
        clock = ticking()
        engine = ExecutionEngine(ledger, PaperBroker(ledger, clock=clock), initial_capital=100.0, clock=clock)
        prices = {"BTC-USDT": 100.0, "ETH-USDT": 50.0}
        model = Model()
        for n, s in enumerate(steps):
            if s[0] == "price":
                prices[s[1]] *= s[2]
            elif s[0] == "hardstop":  # the operator acts on a freshly marked account
                engine.mark(prices)
                acct = model.see(prices)
                model.judge()
                result = engine.set_hardstop(s[1], "property test")
                triggers = acct.equity <= 10.0 or 1 - acct.equity / acct.peak_equity >= 0.30
                model.hardstop = s[1] or triggers
                assert result.on == model.hardstop
            elif s[0] == "exit":
                key = (s[1], s[2])
                d = engine.submit(Intent(s[1], s[2], "exit", prices[s[2]], f"x{n}"), dict(prices))
                assert d.approved, d.reasons
                if key in model.qty:
                    assert d.status == "filled" and d.filled_qty == pytest.approx(model.qty[key], rel=1e-9)
                    model.see(prices)
                    model.sell(key, prices[s[2]])
                    del model.mark[key]
                else:
                    assert d.status == "none"
            else:
                key = (s[1], s[2])
                intent = Intent(s[1], s[2], "entry", prices[s[2]], f"e{n}", s[3], s[4])
                acct, rec = model.see(prices), model.record(s[1])
                expected = model.expected_entry(acct, rec, intent, model.qty.get(key, 0.0))
                d = engine.submit(intent, dict(prices))
                if not near_a_line(acct, rec, intent, model):
                    assert d.approved == (expected is not None), (d.reasons, acct, expected)
                if d.approved:
                    assert expected is None or d.notional == pytest.approx(expected, rel=1e-9)
                    model.buy(key, d.notional, prices[s[2]])
                else:
                    assert d.reasons
            assert_ledger_consistent(engine)
            model.see(None)  # that status call refreshed the account at its last valuations
        engine.gate.ledger.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_the_model_approves_some_and_refuses_some() -> None:
    """The sequence test is only as good as its mix: a plain run shows both verdicts occur."""
    tmp = Path(tempfile.mkdtemp(prefix="nt-prop-"))
    try:
        ledger = Ledger(f"sqlite:///{tmp / 'ledger.db'}")
        engine = ExecutionEngine(ledger, PaperBroker(ledger), clock=lambda: NOW)
        prices = {"BTC-USDT": 100.0, "ETH-USDT": 50.0}
        ok = engine.submit(Intent("a", "BTC-USDT", "entry", 100.0, "e1", 0.9, 2), dict(prices))
        weak = engine.submit(Intent("b", "ETH-USDT", "entry", 50.0, "e2", 0.69, 3), dict(prices))
        assert ok.approved and ok.notional == pytest.approx(25.0 / 1.001)  # a quarter of $100, fee inside
        assert not weak.approved and "confidence 0.69 < 0.7 (Rule 2)" in weak.reasons
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def assert_ledger_consistent(engine: ExecutionEngine) -> None:
    """Cash equals the initial capital plus every fill's cash flow; nothing stays reserved."""
    from sqlalchemy import select

    from nettrace_dagster.ledger.models import Capital, Fill, Order

    with engine.ledger.read() as s:
        flows = s.execute(select(Order.side, Fill.qty, Fill.price, Fill.fee).join(Order, Fill.order_id == Order.id)).all()
        cash = s.get(Capital, "main").cash
    expected = 100.0 + sum((q * p - f) if side == "sell" else -(q * p + f) for side, q, p, f in flows)
    assert abs(cash - expected) < 1e-6
    st_ = engine.status()
    assert st_["reservations"]["active"] == 0 and st_["orders"]["open"] == 0
    assert cash >= -EPS
