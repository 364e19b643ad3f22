"""What validation found: one result per layer, and the verdict."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

LAYERS: tuple[str, ...] = ("static", "security", "conventions", "integration", "coverage", "sandbox")


class UnusableInput(ValueError):
    """The thing to validate is not a strategy file at all (missing, a folder, not UTF-8, empty):
    `nettrace validate` exits 2 on it, not 1."""


@dataclass
class LayerResult:
    """One layer's verdict. Errors reject the strategy; warnings send it to manual review."""

    name: str
    passed: bool
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ValidationReport:
    """The layers that ran, in order; validation stops at the first layer with an error, so a
    rejected report ends with the failing layer and the later ones are absent."""

    path: str
    sha256: str
    layers: list[LayerResult] = field(default_factory=list)
    strategy: dict[str, Any] | None = None  # name, class, default_params … (from the sandbox run)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return len(self.layers) == len(LAYERS) and all(layer.passed for layer in self.layers)

    @property
    def warnings(self) -> list[str]:
        return [f"{layer.name}: {w}" for layer in self.layers for w in layer.warnings]

    @property
    def status(self) -> str:
        """validated | in_review (passed with warnings: the design's "warnings → manual review") | rejected."""
        if not self.passed:
            return "rejected"
        return "in_review" if self.warnings else "validated"

    @property
    def failed_layer(self) -> LayerResult | None:
        return next((layer for layer in self.layers if not layer.passed), None)

    def one_line(self) -> str:
        """The verdict in one line (the failing layer and its first error when rejected)."""
        failed = self.failed_layer
        if failed is not None:
            first = failed.errors[0] if failed.errors else "failed"
            more = f" (+{len(failed.errors) - 1} more)" if len(failed.errors) > 1 else ""
            return f"{self.path}: rejected by the {failed.name} layer: {first}{more}"
        if self.warnings:
            return f"{self.path}: passed all {len(LAYERS)} layers with {len(self.warnings)} warning(s): manual review"
        return f"{self.path}: passed all {len(LAYERS)} layers"

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "status": self.status, "path": self.path, "sha256": self.sha256,
                "strategy": self.strategy, "seconds": round(self.seconds, 3),
                "layers": [layer.to_dict() for layer in self.layers]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)
