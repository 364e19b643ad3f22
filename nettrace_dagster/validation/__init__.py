"""Strategy validation: six layers (static, security, conventions, integration, coverage,
sandbox) and the sandbox that runs strategy code (see docs/validation.md).

The names below load on first use: the sandboxed child imports this package too, and must not
pay for the parent's modules."""

from __future__ import annotations

from typing import Any

__all__ = ["LAYERS", "LayerResult", "UnusableInput", "ValidationReport", "validate_file", "validate_source"]


def __getattr__(name: str) -> Any:
    if name in ("LAYERS", "LayerResult", "UnusableInput", "ValidationReport"):
        from nettrace_dagster.validation import report

        return getattr(report, name)
    if name in ("validate_file", "validate_source"):
        from nettrace_dagster.validation import validate

        return getattr(validate, name)
    raise AttributeError(name)
