"""Strategy templates: `nettrace strategy new` and the code generator render the same files.

A template is `templates/<name>.py.tmpl`, a `string.Template` with the fields `strategy_name`,
`class_name`, `description` and `default_params` (a dict literal). The rendered file is a
complete strategy module that defines exactly one `Strategy` subclass.
"""

from __future__ import annotations

import keyword
import re
import string
from importlib import resources
from typing import Any

TEMPLATE_DEFAULTS: dict[str, dict[str, Any]] = {
    "crossover": {"fast": 10, "slow": 30, "trend": 100},
    "momentum": {"lookback": 20, "threshold": 0.005, "exit_threshold": 0.0, "trend": 50, "vol_window": 20},
    "mean_reversion": {"window": 20, "entry_z": 2.0, "exit_z": 0.0, "rsi_window": 14, "rsi_low": 30.0,
                       "trend": 200},
}

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def list_templates() -> list[str]:
    files = resources.files("nettrace_dagster.strategies").joinpath("templates").iterdir()
    return sorted(f.name.removesuffix(".py.tmpl") for f in files if f.name.endswith(".py.tmpl"))


def template_source(template: str) -> str:
    known = list_templates()
    if template not in known:
        raise ValueError(f"unknown template {template!r}; known: {', '.join(known)}")
    path = resources.files("nettrace_dagster.strategies").joinpath("templates", f"{template}.py.tmpl")
    return path.read_text(encoding="utf-8")


def class_name_for(strategy_name: str) -> str:
    return "".join(part.capitalize() for part in strategy_name.split("_") if part) or "GeneratedStrategy"


def render_template(template: str, strategy_name: str | None = None, *, class_name: str | None = None,
                    description: str | None = None, params: dict[str, Any] | None = None) -> str:
    """The source of a strategy module from `template`; `params` override the template's defaults."""
    strategy_name = strategy_name or f"my_{template}"
    if not _NAME.match(strategy_name) or keyword.iskeyword(strategy_name):
        raise ValueError(f"strategy name {strategy_name!r} must be lower_snake_case")
    class_name = class_name or class_name_for(strategy_name)
    if not class_name.isidentifier() or keyword.iskeyword(class_name):
        raise ValueError(f"class name {class_name!r} is not a Python identifier")
    defaults = dict(TEMPLATE_DEFAULTS.get(template, {}))
    unknown = sorted(set(params or {}) - set(defaults))
    if unknown:
        raise ValueError(f"template {template!r} has no parameter(s) {', '.join(unknown)}")
    defaults.update(params or {})
    description = (description or f"{strategy_name}: a {template.replace('_', ' ')} strategy")
    description = description.replace("\\", "/").replace('"', "'").replace("\n", " ")
    return string.Template(template_source(template)).substitute(
        strategy_name=strategy_name, class_name=class_name, description=description,
        default_params=repr(defaults))
