"""The five layers that read a strategy file without running it: static, security, conventions,
integration and coverage (the sixth, the sandbox, runs it: `sandbox.py`).

Each layer is a function `(source, tree, path) -> LayerResult`. None of them imports or executes
the file: they read its syntax tree. The conventions layer still applies the platform's own class
check (`registry.check_strategy_class`) — to a stand-in class built from the file's literal class
attributes, so the same rules hold without running a line of user code.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from typing import Any

from nettrace_dagster.validation.policy import (
    ALLOWED_DECORATORS,
    ALLOWED_IMPORTS,
    DANGEROUS_MODULES,
    DUNDER,
    FORBIDDEN_CALLS,
    GUARD_METHODS,
    LITERAL_NAME_CALLS,
    PLATFORM_NAMES,
    SECRET_PATTERNS,
    SECRET_SETTING_NAMES,
    SECRET_VARIABLE,
    forbidden_attribute,
)
from nettrace_dagster.validation.report import LayerResult

MAX_SOURCE_BYTES = 256 * 1024
Layer = Callable[[str, ast.Module, str], LayerResult]


def _line(node: ast.AST) -> str:
    return f"line {getattr(node, 'lineno', '?')}"


# --- 1. static -------------------------------------------------------------------------------------
def parse(source: str, path: str) -> tuple[ast.Module | None, LayerResult]:
    """The syntax tree, and the static layer's verdict: size, syntax, imports from the allow-list."""
    result = LayerResult("static", True)
    if len(source.encode("utf-8")) > MAX_SOURCE_BYTES:
        result.errors.append(f"file is {len(source.encode('utf-8')):,} bytes, over the {MAX_SOURCE_BYTES:,} limit")
    if "\x00" in source:
        result.errors.append("file contains NUL bytes")
    if result.errors:
        result.passed = False
        return None, result
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        result.errors.append(f"line {exc.lineno or '?'}: syntax error: {exc.msg}")
    except (ValueError, RecursionError, MemoryError) as exc:  # nesting too deep for the parser
        result.errors.append(f"cannot be parsed: {type(exc).__name__}")
    else:
        result.errors.extend(_import_errors(tree))
        result.passed = not result.errors
        return tree, result
    result.passed = False
    return None, result


def _import_errors(tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name not in ALLOWED_IMPORTS:
                    yield f"{_line(node)}: import of {alias.name!r} is not allowed{_why(alias.name)}"
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                yield f"{_line(node)}: relative import (from {'.' * node.level}{module}) is not allowed"
            elif module not in ALLOWED_IMPORTS:
                yield f"{_line(node)}: import from {module!r} is not allowed{_why(module)}"
            for alias in node.names:
                if alias.name == "*":
                    yield f"{_line(node)}: `from {module} import *` is not allowed (name what you use)"
                elif module in PLATFORM_NAMES and alias.name not in PLATFORM_NAMES[module]:
                    yield f"{_line(node)}: {alias.name!r} may not be imported from {module}"


def _why(module: str) -> str:
    top = module.split(".")[0]
    if top in DANGEROUS_MODULES or module in DANGEROUS_MODULES:
        return " (file, process, network, interpreter or encoding access)"
    return f" (allowed: {', '.join(sorted(ALLOWED_IMPORTS - {'__future__'}))})"


# --- 2. security -----------------------------------------------------------------------------------
class _Security(ast.NodeVisitor):
    def __init__(self, docstrings: set[int]) -> None:
        self.docstrings = docstrings  # ids of docstring nodes: prose may name __init__ or `os`
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.imported: set[str] = set()

    def error(self, node: ast.AST, message: str) -> None:
        self.errors.append(f"{_line(node)}: {message}")

    def visit_Import(self, node: ast.Import) -> None:
        self.imported.update((a.asname or a.name).split(".")[0] for a in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            self.imported.add(alias.asname or alias.name)
            if forbidden_attribute(alias.name):
                self.error(node, f"importing {alias.name!r} from {node.module} is not allowed")

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in FORBIDDEN_CALLS:
            self.error(node, f"{node.id!r} is not allowed (runs code, opens files or reaches objects by name)")
        elif node.id in LITERAL_NAME_CALLS:
            self.error(node, f"{node.id} may only be called directly with a string literal name")
        elif DUNDER.fullmatch(node.id):
            self.error(node, f"the name {node.id} is not allowed (interpreter internals)")

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in LITERAL_NAME_CALLS:
            name = node.args[1] if len(node.args) >= 2 else None
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str)) or node.keywords:
                self.error(node, f"{func.id}() with a computed attribute name is not allowed")
            elif forbidden_attribute(name.value) or name.value.startswith("_"):
                self.error(node, f"{func.id}(…, {name.value!r}) reaches a forbidden attribute")
            for arg in node.args:
                self.visit(arg)
            return
        if isinstance(func, ast.Name) and func.id == "type" and len(node.args) > 1:
            self.error(node, "type() with three arguments builds a class at run time: not allowed")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        base = node.value
        own = isinstance(base, ast.Name) and base.id in ("self", "cls")
        if forbidden_attribute(node.attr):
            self.error(node, f"attribute {node.attr!r} is not allowed (files, processes, interpreter internals "
                             "or encodings)")
        elif node.attr.startswith("_") and not own and node.attr != "__init__":
            self.error(node, f"private attribute {node.attr!r} of another object is not allowed")
        if isinstance(node.ctx, ast.Store | ast.Del) and isinstance(base, ast.Name) and base.id in self.imported:
            self.error(node, f"assigning to {base.id}.{node.attr} changes an imported module: not allowed")
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            prose = id(node) in self.docstrings
            if DUNDER.search(node.value) and not prose:
                self.error(node, "a string naming an interpreter internal (__…__) is not allowed")
            for label, pattern in SECRET_PATTERNS:
                if pattern.search(node.value):
                    self.error(node, f"a string that looks like {label}: secrets never go in code")
                    break
            if SECRET_SETTING_NAMES.search(node.value) and node.value.isupper():
                self.error(node, "a string naming a secret setting: strategy code never reads secrets")
            top = node.value.split(".")[0]
            if not prose and top in DANGEROUS_MODULES and node.value.replace(".", "").isalnum() and top not in ("code", "types",
                                                                                                  "signal", "select"):
                self.warnings.append(f"{_line(node)}: the string {node.value!r} names a module strategies may not use")
        elif isinstance(node.value, bytes):
            self.error(node, "bytes literals are not allowed (encoded payloads)")

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            if isinstance(target, ast.Name) and SECRET_VARIABLE.search(target.id) and \
                    isinstance(node.value, ast.Constant) and isinstance(node.value.value, str) and node.value.value:
                self.error(node, f"{target.id} holds a literal string: secrets never go in code")
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for kw in node.keywords:
            self.error(node, f"class {node.name}: `{kw.arg}=` in the class statement (a metaclass hook) "
                             "is not allowed")
        self._decorators(node)
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._decorators(node)
        self.generic_visit(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.error(node, f"async def {node.name}: not allowed (signals are plain computations)")

    def visit_Global(self, node: ast.Global) -> None:
        self.warnings.append(f"{_line(node)}: `global {', '.join(node.names)}` keeps state between runs")

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        names = [node.type] if not isinstance(node.type, ast.Tuple) else node.type.elts
        if node.type is None or any(isinstance(n, ast.Name) and n.id == "BaseException" for n in names):
            self.warnings.append(f"{_line(node)}: a bare `except`/BaseException swallows timeouts and exits")
        self.generic_visit(node)

    def _decorators(self, node: ast.ClassDef | ast.FunctionDef) -> None:
        for deco in node.decorator_list:
            if not (isinstance(deco, ast.Name) and deco.id in ALLOWED_DECORATORS):
                self.error(deco, f"decorator on {node.name} runs code at import: only "
                                 f"{', '.join(sorted(ALLOWED_DECORATORS))} are allowed")


def _module_level(tree: ast.Module) -> Iterator[str]:
    """Statements at module level that run code at import (definitions and constants only)."""
    for i, node in enumerate(tree.body):
        if isinstance(node, ast.Import | ast.ImportFrom | ast.ClassDef | ast.FunctionDef | ast.Assign | ast.AnnAssign):
            continue
        if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and \
                isinstance(node.value.value, str):
            continue  # the module docstring
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            continue
        yield f"{_line(node)}: a module-level {type(node).__name__} statement runs code at import (only " \
              "imports, classes, functions and constants are allowed)"


def security(source: str, tree: ast.Module, path: str) -> LayerResult:
    """No exec/eval/compile/__import__, no dunder or private-attribute walks, no computed
    getattr/setattr, no file, process, network, introspection or encoding access, no secrets,
    no code that runs at import beyond definitions."""
    docstrings = {id(body[0].value) for body in [tree.body, *(n.body for n in ast.walk(tree) if isinstance(
        n, ast.ClassDef | ast.FunctionDef))] if body and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)}
    visitor = _Security(docstrings)
    visitor.visit(tree)
    errors = [*visitor.errors, *_module_level(tree)]
    return LayerResult("security", not errors, errors, visitor.warnings)


# --- 3. conventions --------------------------------------------------------------------------------
def strategy_classes(tree: ast.Module) -> list[ast.ClassDef]:
    """Top-level classes that subclass `Strategy` (by name, as the file imports it)."""
    def is_strategy(base: ast.expr) -> bool:
        return (isinstance(base, ast.Name) and base.id == "Strategy") or \
            (isinstance(base, ast.Attribute) and base.attr == "Strategy")
    return [n for n in tree.body if isinstance(n, ast.ClassDef) and any(is_strategy(b) for b in n.bases)]


def _methods(cls: ast.ClassDef) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}


def _class_attrs(cls: ast.ClassDef) -> dict[str, ast.expr]:
    out: dict[str, ast.expr] = {}
    for node in cls.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            out[node.targets[0].id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            out[node.target.id] = node.value
    return out


def _literal(node: ast.expr) -> Any:
    from nettrace_dagster.strategies.evidence import FAMILIES

    if isinstance(node, ast.Name) and node.id.lower() in FAMILIES:  # TREND, MOMENTUM … from evidence
        return node.id.lower()
    return ast.literal_eval(node)


def conventions(source: str, tree: ast.Module, path: str) -> LayerResult:
    """The strategy protocol: exactly one Strategy subclass with `signals(self, candles, params)`
    and literal class attributes that pass `registry.check_strategy_class` and whose defaults
    resolve — checked on a stand-in class, without running the file."""
    from nettrace_dagster.strategies.base import Signals, Strategy
    from nettrace_dagster.strategies.registry import STRATEGIES, check_strategy_class

    result = LayerResult("conventions", False)
    classes = strategy_classes(tree)
    if len(classes) != 1:
        result.errors.append(f"defines {len(classes)} Strategy subclasses, expected exactly 1")
        return result
    cls = classes[0]
    signals = _methods(cls).get("signals")
    if signals is None:
        result.errors.append(f"class {cls.name} does not define signals(self, candles, params)")
        return result
    args = [a.arg for a in signals.args.args]
    if len(args) != 3 or args[0] != "self" or signals.args.vararg or signals.args.kwonlyargs:
        result.errors.append(f"{cls.name}.signals must take (self, candles, params), takes ({', '.join(args)})")
    attrs: dict[str, Any] = {}
    for key in ("name", "description", "default_params", "param_space", "trigger_family"):
        node = _class_attrs(cls).get(key)
        if node is None:
            if key in ("name", "default_params"):
                result.errors.append(f"class {cls.name} does not set `{key}`")
            continue
        try:
            attrs[key] = _literal(node)
        except (ValueError, TypeError, SyntaxError, RecursionError):
            result.errors.append(f"{cls.name}.{key} must be a literal (numbers, strings, tuples, dicts)")
    if result.errors:
        return result
    stand_in = type(cls.name, (Strategy,), {**attrs, "signals": lambda self, candles, params: Signals.empty(0)})
    try:
        check_strategy_class(stand_in, path)
        stand_in().resolve_params({})
    except ValueError as exc:  # StrategyError included
        result.errors.append(str(exc).splitlines()[0])
        return result
    name = attrs["name"]
    if name in STRATEGIES:
        result.errors.append(f"name {name!r} is a built-in strategy's: pick another (it would shadow it)")
    elif not (name.replace("_", "").isalnum() and name == name.lower()):
        result.warnings.append(f"name {name!r} is not lower_snake_case")
    if not attrs.get("param_space") and attrs.get("default_params"):
        result.warnings.append("no param_space: optimizers cannot search its parameters")
    result.passed = not result.errors
    return result


# --- 4. integration --------------------------------------------------------------------------------
_CONSTANT_MAKERS = {"ones", "ones_like", "full", "full_like", "zeros", "zeros_like"}


def _is_constant(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return True
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _CONSTANT_MAKERS


def _returns(fn: ast.FunctionDef) -> list[ast.Return]:
    return [n for n in ast.walk(fn) if isinstance(n, ast.Return)]


def _signal_returns(cls: ast.ClassDef, fn: ast.FunctionDef, depth: int = 0) -> Iterator[tuple[ast.Return, ast.Call | None]]:
    """Each return of `fn` with the `Signals(...)` call it returns (following self.method(...) calls)."""
    methods = _methods(cls)
    for ret in _returns(fn):
        value = ret.value
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "Signals":
            yield ret, value
        elif isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and \
                isinstance(value.func.value, ast.Name) and value.func.value.id in ("self", "cls", cls.name) and \
                value.func.attr in methods and depth < 3:
            yield from _signal_returns(cls, methods[value.func.attr], depth + 1)
        else:
            yield ret, None


def integration(source: str, tree: ast.Module, path: str) -> LayerResult:
    """Signals only, and scored so Rule 2's gate applies: signals() returns Signals(entries, exits,
    confidence, confirmations) with confidence and confirmations computed (not constants), the
    Strategy guards are not overridden, and the scores come from the evidence families."""
    result = LayerResult("integration", False)
    cls = strategy_classes(tree)[0]
    methods = _methods(cls)
    for name in sorted(GUARD_METHODS & set(methods)):
        result.errors.append(f"{cls.name} overrides {name}(): the guard that checks signals and Rule 2's scores")
    returns = list(_signal_returns(cls, methods["signals"]))
    if not returns:
        result.errors.append("signals() never returns: it must return Signals(entries, exits, confidence, "
                             "confirmations)")
    for ret, call in returns:
        if call is None:
            result.warnings.append(f"{_line(ret)}: signals() returns something other than Signals(...) here; "
                                   "only the sandbox run can check it")
            continue
        args = list(call.args) + [kw.value for kw in call.keywords]
        if len(args) != 4:
            result.errors.append(f"{_line(call)}: Signals(...) needs 4 fields (entries, exits, confidence, "
                                 f"confirmations), got {len(args)}")
            continue
        fields = dict(zip(("entries", "exits", "confidence", "confirmations"), call.args, strict=False))
        fields.update({kw.arg: kw.value for kw in call.keywords if kw.arg})
        for key in ("confidence", "confirmations"):
            if key in fields and _is_constant(fields[key]):
                result.errors.append(f"{_line(call)}: {key} is a constant: a strategy may not vouch for its own "
                                     "entries (Rule 2 needs scored evidence)")
    called = {n.func.id if isinstance(n.func, ast.Name) else getattr(n.func, "attr", "")
              for n in ast.walk(tree) if isinstance(n, ast.Call)}
    if not called & {"confirm", "gather"}:
        result.warnings.append("confidence and confirmations are not computed by the evidence families "
                               "(evidence.confirm / gather): a person must check how it scores its entries")
    if "trigger_family" not in _class_attrs(cls):
        result.warnings.append("no trigger_family: its own trigger may count as a confirmation")
    result.passed = not result.errors
    return result


# --- 5. coverage -----------------------------------------------------------------------------------
MAX_LINES, WARN_LINES = 1500, 400
MAX_FUNCTION_LINES, WARN_FUNCTION_LINES = 300, 80
MAX_COMPLEXITY, WARN_COMPLEXITY = 30, 15
WARN_DEPTH = 5
_BRANCHES = (ast.If, ast.For, ast.While, ast.Try, ast.IfExp, ast.BoolOp, ast.comprehension, ast.With, ast.Match)


def complexity(fn: ast.FunctionDef) -> int:
    """McCabe-style: 1 + the branch points in the function."""
    return 1 + sum(isinstance(n, _BRANCHES) for n in ast.walk(fn))


def _depth(node: ast.AST, level: int = 0) -> int:
    blocks = (ast.If, ast.For, ast.While, ast.Try, ast.With, ast.FunctionDef, ast.ClassDef)
    return max([level] + [_depth(c, level + isinstance(c, blocks)) for c in ast.iter_child_nodes(node)])


def coverage(source: str, tree: ast.Module, path: str) -> LayerResult:
    """Functions, modularity and size: a file a person can review in one sitting."""
    result = LayerResult("coverage", False)
    lines = source.count("\n") + 1
    if lines > MAX_LINES:
        result.errors.append(f"{lines} lines, over the {MAX_LINES} limit")
    elif lines > WARN_LINES:
        result.warnings.append(f"{lines} lines: long for one strategy")
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    for fn in functions:
        length = (fn.end_lineno or fn.lineno) - fn.lineno + 1
        score = complexity(fn)
        if length > MAX_FUNCTION_LINES or score > MAX_COMPLEXITY:
            result.errors.append(f"{fn.name}() at line {fn.lineno}: {length} lines, complexity {score} "
                                 f"(limits {MAX_FUNCTION_LINES} lines, {MAX_COMPLEXITY}): split it up")
        elif length > WARN_FUNCTION_LINES or score > WARN_COMPLEXITY:
            result.warnings.append(f"{fn.name}() at line {fn.lineno}: {length} lines, complexity {score}")
    if _depth(tree) > WARN_DEPTH + 2:  # module and class levels do not count
        result.warnings.append(f"nesting {_depth(tree) - 2} deep: hard to review")
    cls = strategy_classes(tree)[0]
    if ast.get_docstring(cls) is None:
        result.warnings.append(f"class {cls.name} has no docstring saying what it trades")
    result.passed = not result.errors
    return result


STATIC_LAYERS: tuple[Layer, ...] = (security, conventions, integration, coverage)
