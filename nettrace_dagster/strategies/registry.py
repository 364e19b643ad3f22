"""Strategy lookup by name, and loading a strategy class from a file (templated or generated)."""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import math
import sys
from pathlib import Path
from typing import Any

from nettrace_dagster.strategies.base import Strategy, StrategyError, describe_exception, guarded
from nettrace_dagster.strategies.builtin import MeanReversion, Momentum, SmaCross
from nettrace_dagster.strategies.evidence import FAMILIES

STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in (SmaCross, Momentum, MeanReversion)}


def params_in_force() -> dict[str, dict[str, Any]]:
    """Every built-in strategy with its defaults: the parameters in force when no set was
    promoted. The parameters actually in force are the ledger's FULL set; read them with
    `nettrace_dagster.paramsets.in_force.current(ledger)` (the trader, the `backtests` asset and
    `nettrace status` do)."""
    return {name: dict(cls.default_params) for name, cls in sorted(STRATEGIES.items())}


_VERIFIED: dict[str, Strategy] = {}


def file_sha256(path: Path | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_verified_strategy(path: Path | str, sha256: str) -> Strategy:
    """A promoted strategy file, loaded only if its content is still the one validated
    (StrategyError otherwise: a file changed after validation never trades). Cached by hash."""
    if sha256 in _VERIFIED:
        return _VERIFIED[sha256]
    try:
        actual = file_sha256(path)
    except OSError as exc:
        raise StrategyError(f"{path}: cannot read the promoted strategy ({exc.strerror or exc})") from None
    if actual != sha256:
        raise StrategyError(f"{path}: content changed since it was validated (sha256 {actual[:12]}… "
                            f"≠ {sha256[:12]}…): not trading it")
    _VERIFIED[sha256] = strategy = load_strategy_file(path)
    return strategy


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
    """Import a strategy file and instantiate its one Strategy subclass.

    This executes the file: only call it on code that passed validation (or your own). Whatever
    goes wrong — a syntax error, an exception or sys.exit() at import, no or several Strategy
    classes, an abstract one, bad class attributes — is a one-line StrategyError naming the file
    (FileNotFoundError when there is no such file). KeyboardInterrupt is let through.
    """
    path = Path(path)
    if path.is_dir():
        raise StrategyError(f"{path}: is a directory, not a strategy .py file")
    if not path.is_file():
        raise FileNotFoundError(f"no strategy file {path}")
    mod_name = f"nettrace_user_strategy_{abs(hash(path.resolve()))}"
    try:
        spec = importlib.util.spec_from_file_location(mod_name, path)
    except Exception as exc:
        raise StrategyError(f"{path}: not a Python module ({describe_exception(exc)})") from None
    if spec is None or spec.loader is None:
        raise StrategyError(f"{path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except KeyboardInterrupt:
        sys.modules.pop(mod_name, None)
        raise
    except SyntaxError as exc:
        sys.modules.pop(mod_name, None)
        raise StrategyError(f"{path}:{exc.lineno or '?'}: syntax error: {exc.msg}") from None
    except BaseException as exc:  # SystemExit too: a strategy file must not end the process
        sys.modules.pop(mod_name, None)
        raise StrategyError(f"{path}: importing it {_at_import(exc)}") from exc
    try:
        classes = strategy_classes_in(module)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # a module __getattr__ or a metaclass can run code here too
        raise StrategyError(f"{path}: listing its classes {_at_import(exc)}") from exc
    if len(classes) != 1:
        raise StrategyError(f"{path}: defines {len(classes)} Strategy subclasses, expected exactly 1")
    cls = classes[0]
    check_strategy_class(cls, str(path))
    strategy = guarded(cls, f"{path}: {cls.__name__}()")
    try:
        strategy.resolve_params({})
    except ValueError as exc:
        raise StrategyError(f"{path}: {cls.__name__}: its default_params are not valid: {exc}") from None
    return strategy


def _at_import(exc: BaseException) -> str:
    described = describe_exception(exc)
    return described if isinstance(exc, SystemExit) else f"raised {described}"


def check_strategy_class(cls: type[Strategy], where: str) -> None:
    """The class attributes the engine, the optimizer and the trader rely on; StrategyError if not."""
    label = f"{where}: {cls.__name__}"
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ()))) or "signals"
        raise StrategyError(f"{label} does not implement {missing}() (it is abstract)")
    if not isinstance(cls.name, str) or not cls.name:
        raise StrategyError(f"{label}: `name` must be a non-empty string")
    defaults, space = cls.default_params, cls.param_space
    if not isinstance(defaults, dict) or not all(isinstance(k, str) for k in defaults):
        raise StrategyError(f"{label}: `default_params` must be a dict of parameter name -> default")
    if not isinstance(space, dict):
        raise StrategyError(f"{label}: `param_space` must be a dict of name -> (kind, low, high)")
    for key, spec in space.items():
        ok = (isinstance(spec, tuple) and len(spec) == 3 and spec[0] in ("int", "float")
              and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in spec[1:])
              and spec[1] <= spec[2])
        if key not in defaults or not ok:
            raise StrategyError(f"{label}: param_space[{key!r}] must be (\"int\"|\"float\", low, high) "
                                "for a parameter in default_params")
    if cls.trigger_family is not None and cls.trigger_family not in FAMILIES:
        raise StrategyError(f"{label}: trigger_family {cls.trigger_family!r} is not one of {', '.join(FAMILIES)}")
