"""What enters the pipeline: the optimizer's per-regime results and the validated strategies.

- `optimized_params[REGIME]` → a `params` candidate with the gate's verdict: one that failed is
  recorded REJECTED with the gate's failed tests (the UI and the CLI say which), one that passed
  enters COLD.
- `validated_strategies` (status "validated") → a `strategy` candidate: the set in force plus the
  new strategy with its default parameters, its file pinned by sha256 (it never trades if changed).
"""

from __future__ import annotations

from typing import Any

from nettrace_dagster.strategies.registry import load_verified_strategy


def _json(value: Any) -> Any:
    return value.to_json() if hasattr(value, "to_json") else value


def from_optimized(results: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Submissions from `optimized_params` (a dict regime → result, or one result)."""
    if not results:
        return []
    values = [results] if "param_set" in results else list(results.values())
    out = []
    for r in values:
        if not isinstance(r, dict) or r.get("param_set") is None:
            continue
        gate = {k: r.get(k) for k in ("passed", "failed_tests", "trials", "in_sample_sharpe", "out_of_sample_sharpe",
                                      "out_of_sample_return", "dsr", "pbo") if k in r}
        gate["passed"], gate["failed_tests"] = bool(r.get("passed")), [str(t) for t in r.get("failed_tests") or []]
        out.append({"param_set": _json(r["param_set"]), "regime": str(r.get("regime", "")),
                    "source": f"optimized_params[{r.get('regime', '')}]", "gate": gate, "kind": "params"})
    return out


def from_validated(strategies: list[dict[str, Any]] | None, in_force_set: dict[str, Any]) -> list[dict[str, Any]]:
    """Submissions from `validated_strategies` (entries whose status is "validated")."""
    out = []
    for v in strategies or []:
        if not isinstance(v, dict) or v.get("status") != "validated":
            continue
        try:
            strategy = load_verified_strategy(v["path"], v["sha256"])
        except Exception as exc:  # noqa: BLE001 - changed or unloadable since validation: rejected, with why
            gate = {"passed": False, "failed_tests": [f"strategy file: {exc}"[:200]]}
            params: dict[str, Any] = {}
        else:
            gate, params = {"passed": True, "failed_tests": [], "source": "validation"}, dict(strategy.default_params)
        ps = {"portfolio": dict(in_force_set["portfolio"]),
              "strategies": {**in_force_set["strategies"], str(v["name"]): params}}
        out.append({"param_set": ps, "regime": "", "source": f"validated_strategies[{v['name']}]", "gate": gate,
                    "kind": "strategy", "strategy": {"name": str(v["name"]), "path": str(v["path"]),
                                                     "sha256": str(v["sha256"])}})
    return out
