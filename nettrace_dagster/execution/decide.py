"""The rule gate and sizing for one intent: a pure function of the account's state.

Nothing here touches the database, so it is what the property tests hammer and what the
benchmark times. Every rule it applies is `nettrace_dagster.rules`' (Rule 2 through `entry_gate`).
"""

from __future__ import annotations

from nettrace_dagster.execution.costs import CostModel
from nettrace_dagster.execution.intents import Decision, Intent
from nettrace_dagster.rules import AccountSnapshot, Rules, StrategyRecord

EXIT_REASON = "exits are always allowed"


def decide(rules: Rules, costs: CostModel, acct: AccountSnapshot, record: StrategyRecord,
           intent: Intent, held_qty: float, min_order_usd: float = 5.0) -> Decision:
    """Approve (sized) or reject (with reasons) one intent.

    Exits are approved whatever the account's state (HARDSTOP, daily loss, fired strategy…);
    they sell what is held, at most. Entries pass every rule of `Rules.check_entry` and are sized
    to the smaller of the request and the rules' position budget, fees included.
    """
    coid = intent.client_order_id
    if intent.kind == "exit":
        qty = held_qty if intent.qty is None else min(intent.qty, held_qty)
        if not qty > 0:
            return Decision(True, "exit", (EXIT_REASON, "no open position: nothing to sell"),
                            client_order_id=coid)
        return Decision(True, "exit", (EXIT_REASON,), qty=qty, notional=qty * intent.price,
                        client_order_id=coid)
    problems = intent.problems()
    if problems:
        return Decision(False, intent.kind, tuple(problems), client_order_id=coid)
    budget = rules.position_budget(acct)
    wanted = budget if intent.notional is None else min(intent.notional, budget)
    notional = wanted / (1.0 + costs.fee_rate)  # the fee comes out of the same budget
    gate = rules.check_entry(acct, record, intent.confidence, intent.confirmations,
                             costs.entry_cost(notional))
    reasons = list(gate.reasons)
    if held_qty > 0:
        reasons.append("already holds this position: one round trip at a time per strategy and symbol")
    if notional < min_order_usd:
        reasons.append(f"order ${notional:.2f} < minimum ${min_order_usd:.2f} "
                       f"(free capital ${rules.free_capital(acct):.2f}, position budget ${budget:.2f})")
    if reasons:
        return Decision(False, "entry", tuple(reasons), client_order_id=coid)
    qty = notional / costs.fill_price("buy", intent.price)
    why = f"sized ${notional:.2f} (budget ${budget:.2f}" + (
        f", requested ${intent.notional:.2f})" if intent.notional is not None else ")")
    return Decision(True, "entry", (why,), qty=qty, notional=notional, client_order_id=coid)
