"""Property-based: no sequence of prices and intents makes the engine approve an entry that breaks
a rule, or block an exit. Checked on the pure gate (many cases) and on the whole engine with the
paper broker and a real SQLite ledger (fewer, longer sequences)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nettrace_dagster.execution.costs import CostModel
from nettrace_dagster.execution.db import Ledger
from nettrace_dagster.execution.decide import decide
from nettrace_dagster.execution.engine import ExecutionEngine
from nettrace_dagster.execution.intents import Intent
from nettrace_dagster.execution.paper import PaperBroker
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


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=5, max_size=30))
def test_engine_sequences_keep_every_rule_and_every_exit(steps: list[tuple]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="nt-prop-"))
    try:
        ledger = Ledger(f"sqlite:///{tmp / 'ledger.db'}")
        engine = ExecutionEngine(ledger, PaperBroker(ledger), initial_capital=100.0)
        prices = {"BTC-USDT": 100.0, "ETH-USDT": 50.0}
        for n, s in enumerate(steps):
            if s[0] == "price":
                prices[s[1]] *= s[2]
            elif s[0] == "hardstop":
                engine.set_hardstop(s[1], "property test")
            elif s[0] == "exit":
                held = {(p["strategy"], p["symbol"]): p["qty"] for p in engine.status()["positions"]}
                d = engine.submit(Intent(s[1], s[2], "exit", prices[s[2]], f"x{n}"))
                assert d.approved, d.reasons
                if held.get((s[1], s[2]), 0) > 0:
                    assert d.status == "filled" and d.filled_qty == held[(s[1], s[2])]
            else:
                engine.mark(prices)
                before = engine.status()
                d = engine.submit(Intent(s[1], s[2], "entry", prices[s[2]], f"e{n}", s[3], s[4]))
                if d.approved:
                    r = before["rules"]
                    assert r["entries_allowed"] and s[3] >= 0.7 and s[4] >= 2
                    assert d.notional * (1 + 0.001) <= r["free_capital"] + EPS
                    held = {(p["strategy"], p["symbol"]) for p in before["positions"]}
                    assert (s[1], s[2]) not in held
            assert_ledger_consistent(engine)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def assert_ledger_consistent(engine: ExecutionEngine) -> None:
    """Cash equals the initial capital plus every fill's cash flow; nothing stays reserved."""
    from sqlalchemy import select

    from nettrace_dagster.execution.models import Capital, Fill, Order

    with engine.ledger.read() as s:
        flows = s.execute(select(Order.side, Fill.qty, Fill.price, Fill.fee).join(Order, Fill.order_id == Order.id)).all()
        cash = s.get(Capital, "main").cash
    expected = 100.0 + sum((q * p - f) if side == "sell" else -(q * p + f) for side, q, p, f in flows)
    assert abs(cash - expected) < 1e-6
    st_ = engine.status()
    assert st_["reservations"]["active"] == 0 and st_["orders"]["open"] == 0
    assert cash >= -EPS
