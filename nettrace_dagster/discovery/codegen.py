"""Strategy code from an opportunity: template, Claude, or hybrid (template structure, Claude logic).

- template: the engine's own templates (`strategies/templating.py`, the path `nettrace strategy
  new` uses), chosen by the technique the opportunity names and parametrized from the numbers in
  its text (a "48-hour" lookback, a "two standard deviations" entry), clamped to the template's
  `param_space`.
- claude: Claude writes the whole module; the prompt carries the strategy protocol
  (`strategies/base.py`), the rules (`rules.py`), the allowed imports and a rendered template.
- hybrid: the template's module, with its `signals()` method written by Claude.
Without ANTHROPIC_API_KEY the mode is template. A Claude failure (overloaded, timeout, refusal, a
reply with no usable code) is one line in `fallback_reason`, and the template is used instead.

Nothing here runs generated code: files are checked with `ast` only; the validation layers and the
sandbox decide whether they ever run. A file is named by the SHA-256 of its content
(`strategies/generated/<sha256>.py`) and records its opportunity twice: a header comment and a
sidecar `<sha256>.json`.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import tempfile
import textwrap
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from nettrace_dagster.discovery.claude import ClaudeConfig, ClaudeUnavailable, ask, extract_code
from nettrace_dagster.strategies.templating import TEMPLATE_DEFAULTS, class_name_for, render_template

MODES = ("template", "claude", "hybrid")
DEFAULT_TEMPLATE = "momentum"  # an opportunity naming no technique: event-driven moves are momentum
ALLOWED_IMPORTS = ("__future__", "typing", "math", "numpy", "polars", "nettrace_dagster.strategies.base",
                   "nettrace_dagster.strategies.evidence", "nettrace_dagster.strategies.indicators")
_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4}
_NUM = r"(\d+(?:\.\d+)?|one|two|three|four)"
# Template parameter ← a phrase in the opportunity's text (first match wins).
PARAM_PATTERNS: dict[str, dict[str, str]] = {
    "momentum": {"lookback": _NUM + r"[- ](?:hour|bar|period|minute|day)s?(?![- ]trend)",
                 "trend": _NUM + r"[- ](?:period|bar) trend"},
    "mean_reversion": {"window": _NUM + r"[- ](?:period|bar)s?(?![- ]trend)",
                       "entry_z": _NUM + r" (?:standard deviations?|sigma)",
                       "trend": _NUM + r"[- ](?:period|bar) trend"},
    "crossover": {"fast": r"(\d+)\s*/\s*\d+", "slow": r"\d+\s*/\s*(\d+)", "trend": _NUM + r"[- ](?:period|bar) trend"},
}


@dataclass
class Generated:
    name: str
    path: str
    sha256: str
    opportunity_id: str
    mode: str
    source: str
    requested_mode: str = "template"
    template: str = ""
    fallback_reason: str = ""
    params: dict[str, Any] | None = None

    def asset_value(self) -> dict[str, Any]:
        """The `generated_strategies` asset's item: what validation consumes."""
        return {"name": self.name, "path": self.path, "sha256": self.sha256, "opportunity_id": self.opportunity_id,
                "mode": self.mode, "source": self.source}


def resolve_mode(settings: Any) -> tuple[str, str]:
    """(the mode to use, a note when it is not the configured one)."""
    v = settings.values
    key = bool((v.get("ANTHROPIC_API_KEY") or "").strip())
    configured = v.get("CODEGEN_MODE") or ("claude" if key and v["NETTRACE_PROFILE"] == "live" else "template")
    if configured != "template" and not key:
        return "template", f"CODEGEN_MODE={configured} needs ANTHROPIC_API_KEY; using template"
    return configured, ""


def generated_dir(settings: Any) -> Path:
    return Path(settings.strategies_dir) / "generated"


def template_params(template: str, text: str) -> dict[str, Any]:
    """Template parameters read from the opportunity's text, each clamped to the template's range."""
    space = param_space(template)
    params: dict[str, Any] = {}
    for key, pattern in PARAM_PATTERNS.get(template, {}).items():
        match = re.search(pattern, text, re.IGNORECASE)
        if not match:
            continue
        raw = match.group(1).lower()
        value = float(_WORDS.get(raw, raw))
        kind, low, high = space[key]
        value = min(max(value, low), high)
        params[key] = int(round(value)) if kind == "int" else round(value, 4)
    if template == "crossover" and params.get("fast", 0) >= params.get("slow", 10**9):
        params.pop("fast"), params.pop("slow")  # a ratio that would invert the crossover: keep the defaults
    return params


def param_space(template: str) -> dict[str, tuple[str, float, float]]:
    """The template's `param_space`, read from its source without running it."""
    tree = ast.parse(render_template(template, "probe"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "param_space" for t in node.targets):
            return ast.literal_eval(node.value)
    return {}


def _description(opportunity: dict[str, Any]) -> str:
    title = re.sub(r"_{2,}", "_", str(opportunity["title"]))  # no `__x__` in generated strings
    return f"{title[:160]} ({opportunity['source']} opportunity {opportunity['opportunity_id']})"


def _template_source(opportunity: dict[str, Any], name: str) -> tuple[str, str, dict[str, Any]]:
    template = known_template(opportunity.get("template"))
    params = template_params(template, f"{opportunity['title']} {opportunity.get('text', '')}")
    return template, render_template(template, name, description=_description(opportunity), params=params), params


def generate(opportunity: dict[str, Any], mode: str, out_dir: Path, claude: ClaudeConfig | None = None,
             requested_mode: str | None = None) -> Generated:
    """One strategy file for `opportunity` (a scored row with its text). Claude failures fall back
    to the template, with the reason recorded."""
    oid, requested = opportunity["opportunity_id"], requested_mode or mode
    template, source, params = _template_source(opportunity, f"gen_{known_template(opportunity.get('template'))}_{oid[:8]}")
    used, reason = "template", ""
    if mode in ("claude", "hybrid"):
        if claude is None:
            reason = f"{mode} mode needs ANTHROPIC_API_KEY; used the template"
        else:
            try:
                source = (claude_module(opportunity, template, claude, f"gen_claude_{oid[:8]}") if mode == "claude"
                          else hybrid_module(opportunity, template, claude, f"gen_hybrid_{template}_{oid[:8]}"))
                used = mode
            except ClaudeUnavailable as exc:
                reason = f"{exc}; used the template"
    name = _strategy_name(source)
    return write_generated(source, out_dir, Generated(
        name=name, path="", sha256="", opportunity_id=oid, mode=used, source=opportunity["source"],
        requested_mode=requested, template=template, fallback_reason=reason, params=params if used == "template" else None),
        opportunity)


def _strategy_name(source: str) -> str:
    match = re.search(r"^\s+name\s*=\s*[\"']([a-z][a-z0-9_]*)[\"']", source, re.MULTILINE)
    return match.group(1) if match else "generated"


def header(meta: Generated, opportunity: dict[str, Any]) -> str:
    def clean(value: Any) -> str:
        return "".join(c if c.isprintable() else " " for c in str(value or ""))[:200]
    return "\n".join([
        f"# Generated by NetTrace discovery ({meta.mode} mode) from opportunity {meta.opportunity_id}.",
        f"# source: {clean(meta.source)}  url: {clean(opportunity.get('url')) or '-'}",
        f"# title: {clean(opportunity.get('title'))}",
        "# Provenance in full (content hash, score, time): the .json file next to this one.",
    ]) + "\n"


def write_generated(source: str, out_dir: Path, meta: Generated, opportunity: dict[str, Any]) -> Generated:
    content = header(meta, opportunity) + source
    sha = hashlib.sha256(content.encode()).hexdigest()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{sha}.py"
    meta.path, meta.sha256 = str(path), sha
    _atomic_write(path, content)
    sidecar = {**asdict(meta), "title": opportunity.get("title"), "url": opportunity.get("url"),
               "content_hash": opportunity.get("content_hash"), "score": opportunity.get("score"),
               "generated_at": datetime.now(UTC).isoformat()}
    _atomic_write(out_dir / f"{sha}.json", json.dumps(sidecar, indent=2, default=str))
    return meta


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def existing(out_dir: Path) -> dict[tuple[str, str], Generated]:
    """Files generated before, by (opportunity id, requested mode), where that mode was achieved."""
    found: dict[tuple[str, str], Generated] = {}
    for sidecar in sorted(out_dir.glob("*.json")) if out_dir.is_dir() else []:
        try:
            doc = json.loads(sidecar.read_text())
            meta = Generated(**{k: doc[k] for k in Generated.__dataclass_fields__ if k in doc})
        except (OSError, ValueError, TypeError, KeyError):
            continue
        if meta.mode == meta.requested_mode and Path(meta.path).is_file():
            found[(meta.opportunity_id, meta.requested_mode)] = meta
    return found


# ------------------------------------------------------------------ Claude prompts
def _source_of(module: str, stop: str | None = None) -> str:
    text = resources.files("nettrace_dagster").joinpath(*module.split("/")).read_text(encoding="utf-8")
    return text.split(stop)[0] if stop and stop in text else text


def system_prompt() -> str:
    return textwrap.dedent(f"""\
        You write trading strategies for NetTrace, a crypto platform. A strategy is a pure function:
        candles (a polars DataFrame with timestamp, open, high, low, close, volume) and parameters in,
        per-bar signals out. It never places orders, reads files or environment variables, or uses
        the network; the execution layer applies the immutable rules to its signals.
        Allowed imports, nothing else: {', '.join(ALLOWED_IMPORTS)}.
        No exec, eval, compile, getattr tricks, dunder names, or string-built names.

        The strategy protocol (nettrace_dagster/strategies/base.py):
        ```python
        {_source_of('strategies/base.py')}
        ```

        The rules every entry must pass (nettrace_dagster/rules.py, excerpt):
        ```python
        {_source_of('rules.py', 'def at_line')}
        ```
        Entries need confidence >= 0.70 and >= 2 confirmations: compute them with
        `nettrace_dagster.strategies.evidence.confirm(candles, self.trigger_family, config)`.""")


def claude_module(opportunity: dict[str, Any], template: str, config: ClaudeConfig, name: str) -> str:
    example = render_template(template, name)
    prompt = textwrap.dedent(f"""\
        Opportunity ({opportunity['source']}): {opportunity['title']}
        {opportunity.get('text', '')}

        Write one Python module defining exactly one Strategy subclass named {class_name_for(name)}
        with `name = "{name}"`, a description, `default_params`, a `param_space` entry
        ("int"|"float", low, high) for every parameter, `trigger_family`, and `signals()` that
        returns Signals(entries, exits, confidence, confirmations). Follow this example's structure:
        ```python
        {example}
        ```
        Reply with the module in one ```python block.""")
    code = extract_code(ask(config, system_prompt(), prompt))
    check_strategy_module(code)
    return code


def hybrid_module(opportunity: dict[str, Any], template: str, config: ClaudeConfig, name: str) -> str:
    """The template's module with `signals()` written by Claude."""
    base = render_template(template, name, description=_description(opportunity),
                           params=template_params(template, f"{opportunity['title']} {opportunity.get('text', '')}"))
    prompt = textwrap.dedent(f"""\
        Opportunity ({opportunity['source']}): {opportunity['title']}
        {opportunity.get('text', '')}

        Here is a strategy module. Rewrite ONLY its `signals(self, candles, params)` method so it
        trades this opportunity's idea, using only the parameters in `default_params` and the names
        the module already imports (you may add imports from {', '.join(ALLOWED_IMPORTS[3:])}).
        ```python
        {base}
        ```
        Reply with the method (and any import lines it needs) in one ```python block.""")
    code = extract_code(ask(config, system_prompt(), prompt))
    return splice_signals(base, code)


def splice_signals(module: str, reply: str) -> str:
    """`module` with its `signals` method replaced by the one in `reply` (plus allowed imports)."""
    tree = ast.parse(reply)
    method = next((n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "signals"), None)
    if method is None or [a.arg for a in method.args.args][:3] != ["self", "candles", "params"]:
        raise ClaudeUnavailable("Claude's reply has no signals(self, candles, params) method")
    imports = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)
               and not (isinstance(n, ast.ImportFrom) and n.module == "__future__")]  # the module has it first
    for node in imports:
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
        bad = [n for n in names if n not in ALLOWED_IMPORTS]
        if bad:
            raise ClaudeUnavailable(f"Claude's method imports {', '.join(bad)}, which strategies may not use")
    reply_lines = reply.splitlines()
    start = (method.decorator_list[0].lineno if method.decorator_list else method.lineno) - 1
    body = textwrap.indent(textwrap.dedent("\n".join(reply_lines[start:method.end_lineno])), "    ")
    target = ast.parse(module)
    old = next(n for n in ast.walk(target) if isinstance(n, ast.FunctionDef) and n.name == "signals")
    lines = module.splitlines()
    spliced = lines[:old.lineno - 1] + body.splitlines() + lines[old.end_lineno:]
    header_end = next(i for i, ln in enumerate(spliced) if ln.startswith("class "))
    extra = [ast.get_source_segment(reply, n) or "" for n in imports]
    result = "\n".join(spliced[:header_end] + [e for e in extra if e] + ([""] if extra else []) + spliced[header_end:]) + "\n"
    check_strategy_module(result)
    return result


def check_strategy_module(code: str) -> None:
    """ClaudeUnavailable unless `code` parses and defines one Strategy subclass with signals()."""
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise ClaudeUnavailable(f"Claude's code does not parse (line {exc.lineno}: {exc.msg})") from None
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)
               and any(getattr(b, "id", getattr(b, "attr", "")) == "Strategy" for b in n.bases)]
    if len(classes) != 1:
        raise ClaudeUnavailable(f"Claude's code defines {len(classes)} Strategy subclasses, expected 1")
    if not any(isinstance(n, ast.FunctionDef) and n.name == "signals" for n in classes[0].body):
        raise ClaudeUnavailable(f"Claude's class {classes[0].name} has no signals() method")


def known_template(name: str | None) -> str:
    return name if name in TEMPLATE_DEFAULTS else DEFAULT_TEMPLATE


def generate_for(candidates: list[dict[str, Any]], settings: Any, log: Any = None) -> tuple[list[Generated], str]:
    """Strategy files for `candidates` (best first), reusing a file already generated for the same
    opportunity in the same mode (so a rerun costs no Claude call). Returns them and the mode note."""
    from nettrace_dagster.discovery.claude import config_from

    mode, note = resolve_mode(settings)
    claude = config_from(settings) if mode != "template" else None
    out = generated_dir(settings)
    have = existing(out)
    results = []
    for opportunity in candidates:
        reused = have.get((opportunity["opportunity_id"], mode))
        made = reused or generate(opportunity, mode, out, claude, requested_mode=mode)
        if made.fallback_reason and log is not None:
            log(f"{opportunity['opportunity_id']}: {made.fallback_reason}")
        results.append(made)
    return results, note
