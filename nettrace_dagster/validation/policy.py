"""What strategy code may use: the import allow-list and the names the security layer refuses.

A strategy is a pure function of candles and parameters (`strategies/base.py`), so it needs
numbers, arrays and the evidence families — nothing that reaches a file, a process, the network,
the interpreter's internals or a secret. The lists below are a first filter; the sandbox
(`sandbox.py`) is the wall for whatever slips past them.
"""

from __future__ import annotations

import re

# Modules a strategy may import (exactly these; a submodule of one is not implied).
ALLOWED_IMPORTS: frozenset[str] = frozenset({
    "__future__", "typing", "math", "numbers", "dataclasses", "enum", "functools", "itertools",
    "statistics", "collections", "collections.abc", "concurrent.futures",
    "numpy", "polars",
    "nettrace_dagster.strategies", "nettrace_dagster.strategies.base",
    "nettrace_dagster.strategies.evidence", "nettrace_dagster.strategies.indicators",
})

# Names that must never be imported `from` an allowed module either.
PLATFORM_NAMES: dict[str, frozenset[str]] = {
    "nettrace_dagster.strategies": frozenset({"Signals", "Strategy", "StrategyError"}),
}

# Modules that give a file, process, network, interpreter or encoding handle: named in the
# security layer's message when a file tries them (the static layer already refuses the import).
DANGEROUS_MODULES: frozenset[str] = frozenset({
    "os", "sys", "subprocess", "socket", "shutil", "pathlib", "io", "importlib", "ctypes", "cffi",
    "builtins", "inspect", "pickle", "marshal", "codecs", "base64", "binascii", "zlib", "bz2", "lzma",
    "threading", "multiprocessing", "signal", "http", "urllib", "requests", "httpx", "asyncio", "gc",
    "types", "code", "codeop", "pty", "tempfile", "glob", "runpy", "resource", "mmap", "fcntl", "select",
    "ssl", "ftplib", "smtplib", "telnetlib", "webbrowser", "sqlite3", "dbm", "shelve", "zipimport",
    "pkgutil", "sysconfig", "platform", "getpass", "pwd", "grp", "posix", "nt", "faulthandler", "tracemalloc",
    "numba", "llvmlite", "duckdb", "sqlalchemy", "dagster", "ccxt", "anthropic", "operator", "weakref", "copyreg",
})

# Builtins that execute code, open files, or reach objects by computed names.
FORBIDDEN_CALLS: frozenset[str] = frozenset({
    "exec", "eval", "compile", "__import__", "open", "input", "breakpoint", "globals", "locals", "vars",
    "dir", "setattr", "delattr", "memoryview", "help", "exit", "quit", "chr", "ord", "bytes", "bytearray",
    "classmethod_descriptor",
})
# Allowed only as a direct call whose attribute name is a string literal (checked like `x.name`).
LITERAL_NAME_CALLS: frozenset[str] = frozenset({"getattr", "hasattr"})

# Attribute names that reach files, processes, the interpreter, encodings or platform internals.
FORBIDDEN_ATTRIBUTES: frozenset[str] = frozenset({
    # numpy file / pointer access
    "load", "loads", "save", "savez", "savez_compressed", "savetxt", "loadtxt", "genfromtxt", "fromfile",
    "tofile", "fromregex", "memmap", "DataSource", "ctypeslib", "ctypes", "lib", "testing", "f2py",
    "distutils", "core", "dump", "dumps", "show_config", "info",
    # polars file / SQL / plugin access
    "sql", "SQLContext", "Config", "plugins", "register_plugin_function", "api", "io", "serialize",
    "deserialize",
    # interpreter internals: frames, code objects, class graphs
    "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "f_trace", "tb_frame", "tb_next", "gi_frame",
    "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code", "co_code", "co_consts", "co_names", "func_globals",
    "func_code", "mro", "get_type_hints", "ForwardRef", "make_dataclass", "ProcessPoolExecutor",
    # encodings and string tricks used to hide names
    "fromhex", "decode", "encode", "translate", "maketrans", "format_map",
    # modules reachable as attributes of allowed ones
    "registry", "builtin", "templating", "nb", "numba", "llvmlite", "modules", "environ", "getenv",
    "putenv", "system", "popen", "spawn", "fork", "kill", "remove", "unlink", "rmdir", "rename", "chmod",
    "chown", "exec_module", "import_module", "load_module", "loader", "spec",
    "os", "sys", "subprocess", "socket", "shutil", "pathlib", "importlib", "builtins", "inspect",
    "pickle", "marshal", "codecs", "base64", "threading", "multiprocessing", "gc", "tempfile", "runpy",
    # pandas frames (polars' to_pandas) write files and databases
    "to_csv", "to_pickle", "to_parquet", "to_sql", "to_excel", "to_hdf", "to_feather", "to_json", "to_stata",
    "to_html", "to_latex", "to_markdown", "to_clipboard", "to_orc", "to_xml", "read_pickle",
    # reachable through allowed modules: dataclasses.types.CodeType, concurrent.futures.process …
    "types", "process", "dependencies", "copyreg", "weakref", "CodeType", "FunctionType",
})
FORBIDDEN_ATTRIBUTE_PREFIXES: tuple[str, ...] = ("read_", "scan_", "write_", "sink_", "save", "load")

# Decorators that are plain descriptors (no code runs when they are applied beyond wrapping).
ALLOWED_DECORATORS: frozenset[str] = frozenset({"staticmethod", "classmethod", "property"})

# Methods of `Strategy` that guard strategy code and check its signals (Rule 2): never overridden.
GUARD_METHODS: frozenset[str] = frozenset({
    "run", "call_signals", "guarded_factory", "_factory", "resolve_params", "_coerce_param", "checked",
})

DUNDER = re.compile(r"__\w+__")
# Secrets: known key formats, PEM blocks, and names of the platform's secret settings.
SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a private key block", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("an AWS access key id", re.compile(r"\bA(KIA|SIA)[0-9A-Z]{16}\b")),
    ("an Anthropic/OpenAI-style key", re.compile(r"\bsk-[A-Za-z0-9_-]{16,}")),
    ("a GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("a long high-entropy token", re.compile(r"^(?=[A-Za-z0-9+/=_-]*[0-9])(?=[A-Za-z0-9+/=_-]*[a-z])"
                                            r"(?=[A-Za-z0-9+/=_-]*[A-Z])[A-Za-z0-9+/=_-]{40,}$")),
)
SECRET_SETTING_NAMES = re.compile(r"(API_?KEY|API_?SECRET|SECRET_?KEY|TOKEN|PASSWORD|PASSWD|LEDGER_URL|"
                                  r"WEBHOOK)", re.IGNORECASE)
SECRET_VARIABLE = re.compile(r"(api_?key|secret|token|password|passwd|credential)", re.IGNORECASE)


def forbidden_attribute(name: str) -> bool:
    """True for an attribute name the security layer refuses (`self._x` is checked by the caller)."""
    return (name in FORBIDDEN_ATTRIBUTES or bool(DUNDER.fullmatch(name)) and name != "__init__"
            or name.startswith(FORBIDDEN_ATTRIBUTE_PREFIXES))
