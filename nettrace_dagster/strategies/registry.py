"""Strategy lookup by name, and loading a strategy class from a file (templated or generated)."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path

from nettrace_dagster.strategies.base import Strategy
from nettrace_dagster.strategies.builtin import MeanReversion, Momentum, SmaCross

STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in (SmaCross, Momentum, MeanReversion)}


def get_strategy(name: str) -> Strategy:
    """An instance of the named strategy; ValueError naming the known ones if there is none."""
    try:
        return STRATEGIES[name]()
    except (KeyError, TypeError):
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}") from None


def strategy_classes_in(module: object) -> list[type[Strategy]]:
    """Strategy subclasses defined in `module` itself (not imported into it)."""
    return [obj for _, obj in inspect.getmembers(module, inspect.isclass)
            if issubclass(obj, Strategy) and obj is not Strategy
            and obj.__module__ == getattr(module, "__name__", None)]


def load_strategy_file(path: Path | str) -> Strategy:
    """Import a strategy file and instantiate its one Strategy subclass (ValueError otherwise).

    This executes the file: only call it on code that passed validation (or your own).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no strategy file {path}")
    mod_name = f"nettrace_user_strategy_{abs(hash(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        sys.modules.pop(mod_name, None)
        raise
    classes = strategy_classes_in(module)
    if len(classes) != 1:
        raise ValueError(f"{path}: defines {len(classes)} Strategy subclasses, expected exactly 1")
    return classes[0]()
