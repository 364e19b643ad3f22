"""Moved to `risk` (temporary re-export while the resource is being rewired)."""

from nettrace_dagster.execution.risk import HardstopResult, MarkResult  # noqa: F401
