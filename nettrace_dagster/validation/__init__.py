"""Strategy validation: six layers (static, security, conventions, integration, coverage,
sandbox) and the sandbox that runs strategy code (see docs/validation.md)."""

from nettrace_dagster.validation.report import LAYERS, LayerResult, UnusableInput, ValidationReport
from nettrace_dagster.validation.validate import validate_file, validate_source

__all__ = ["LAYERS", "LayerResult", "UnusableInput", "ValidationReport", "validate_file", "validate_source"]
