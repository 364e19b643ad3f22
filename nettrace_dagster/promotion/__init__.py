"""The promotion pipeline: candidates (parameter sets, generated strategies, or both) move
COLD → WARM → LIMITED → FULL on evidence, with an optional human checkpoint before FULL, and the
FULL set is rolled back by the guardrails when it does worse than the set it replaced.
See docs/promotion.md."""
