"""Code generation: template, Claude and hybrid modes; files named by content hash with their
provenance; every Claude failure (529, timeout, refusal, no usable code) falls back in one line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from nettrace_dagster.discovery.claude import ClaudeConfig
from nettrace_dagster.discovery.codegen import generate, generate_for, resolve_mode, template_params
from nettrace_dagster.market.sim import simulate
from nettrace_dagster.settings import load_settings
from nettrace_dagster.strategies import load_strategy_file
from nettrace_dagster.strategies.templating import render_template
from tests.fakes.anthropic_api import FakeAnthropic

OPP = {"opportunity_id": "0123456789abcdef", "source": "arxiv", "title": "Time-series momentum in BTC",
       "text": "Buy when the 48-hour rate of change crosses a threshold, with a 120-period trend filter.",
       "url": "https://arxiv.org/abs/2611.04127", "content_hash": "c" * 64, "score": 0.91, "template": "momentum"}
CANDLES = simulate("BTC-USDT", 3000, seed=3)


def check_file(path: str, sha: str) -> None:
    data = Path(path).read_bytes()
    assert hashlib.sha256(data).hexdigest() == sha == Path(path).stem  # named by its content hash
    sidecar = json.loads(Path(path).with_suffix(".json").read_text())
    assert sidecar["opportunity_id"] == OPP["opportunity_id"] and sidecar["content_hash"] == OPP["content_hash"]
    assert sidecar["url"] == OPP["url"] and sidecar["sha256"] == sha
    assert f"from opportunity {OPP['opportunity_id']}" in data.decode().splitlines()[0]


def signals_of(path: str):
    strategy = load_strategy_file(path)
    signals = strategy.run(CANDLES)
    assert len(signals) == CANDLES.height
    return strategy, signals


@pytest.mark.parametrize("template, text, params", [
    ("momentum", "a 48-hour lookback with a 120-period trend filter", {"lookback": 48, "trend": 120}),
    ("momentum", "a 500-bar lookback", {"lookback": 120}),                       # clamped to param_space
    ("mean_reversion", "enter two standard deviations below a 30-period mean", {"window": 30, "entry_z": 2.0}),
    ("crossover", "a 20/50 crossover above the 200-period trend", {"fast": 20, "slow": 50, "trend": 200}),
    ("crossover", "a 50/20 crossover", {}),                                       # inverted: defaults kept
])
def test_template_parameters_come_from_the_text(template: str, text: str, params: dict) -> None:
    assert template_params(template, text) == params


@pytest.mark.parametrize("template", ["momentum", "mean_reversion", "crossover"])
def test_template_mode_writes_a_loadable_strategy_that_produces_signals(template: str, tmp_path: Path) -> None:
    made = generate({**OPP, "template": template}, "template", tmp_path)
    assert (made.mode, made.fallback_reason, made.template) == ("template", "", template)
    check_file(made.path, made.sha256)
    strategy, signals = signals_of(made.path)
    assert strategy.name == made.name == f"gen_{template}_01234567"
    assert signals.entries.any() and (signals.confidence >= 0).all()
    # the same path as `nettrace strategy new`: the module is the rendered template after the header
    rendered = render_template(template, made.name, description=f"{OPP['title']} (arxiv opportunity {OPP['opportunity_id']})",
                               params=made.params)
    assert Path(made.path).read_text().endswith(rendered)


def test_the_same_opportunity_gives_the_same_file(tmp_path: Path) -> None:
    a, b = generate(OPP, "template", tmp_path), generate(OPP, "template", tmp_path)
    assert a.path == b.path and len(list(tmp_path.glob("*.py"))) == 1


def config(fake: FakeAnthropic, retries: int = 0, timeout: float = 5.0) -> ClaudeConfig:
    return ClaudeConfig(api_key="test-key-not-real", model="claude-test", base_url=fake.base_url,
                        timeout=timeout, max_retries=retries)


def test_claude_mode_writes_claudes_module(tmp_path: Path) -> None:
    module = render_template("crossover", "gen_claude_01234567", description="Claude's take")
    with FakeAnthropic() as fake:
        fake.reply(text=f"Here is the strategy:\n```python\n{module}```\nGood luck.")
        made = generate(OPP, "claude", tmp_path, config(fake))
        sent = fake.requests[0]
    assert (made.mode, made.fallback_reason, made.name) == ("claude", "", "gen_claude_01234567")
    check_file(made.path, made.sha256)
    assert Path(made.path).read_text().endswith(module)
    signals_of(made.path)
    # the prompt carries the protocol and the rules; the key travels as a header only
    system, prompt = sent["body"]["system"], sent["body"]["messages"][0]["content"]
    assert "class Signals(NamedTuple)" in system and "MIN_ENTRY_CONFIDENCE = 0.70" in system
    assert OPP["title"] in prompt and sent["body"]["model"] == "claude-test"
    assert "test-key-not-real" not in json.dumps(sent["body"])


HYBRID_METHOD = '''```python
from nettrace_dagster.strategies.indicators import sma

def signals(self, candles, params):
    close = column(candles, "close")
    average = sma(close, int(params["lookback"]))
    entries = crossed_above(close, average)
    exits = crossed_below(close, average)
    config = EvidenceConfig(trend_window=int(params["trend"]), volume_window=int(params["vol_window"]))
    confidence, confirmations = confirm(candles, self.trigger_family, config)
    return Signals(entries, exits, confidence, confirmations)
```'''


def test_hybrid_mode_keeps_the_template_and_takes_claudes_signals(tmp_path: Path) -> None:
    with FakeAnthropic() as fake:
        fake.reply(text=HYBRID_METHOD)
        made = generate(OPP, "hybrid", tmp_path, config(fake))
        assert "Rewrite ONLY its `signals" in fake.requests[0]["body"]["messages"][0]["content"]
    assert (made.mode, made.fallback_reason) == ("hybrid", "")
    text = Path(made.path).read_text()
    assert "average = sma(close" in text and "roc(close" not in text  # Claude's logic, not the template's
    assert "param_space = {\"lookback\"" in text                     # the template's structure
    check_file(made.path, made.sha256)
    strategy, signals = signals_of(made.path)
    template_signals = load_strategy_file(generate(OPP, "template", tmp_path / "t").path).run(CANDLES)
    assert signals.entries.any() and not (signals.entries == template_signals.entries).all()


@pytest.mark.parametrize("mode, script, reason", [
    ("claude", {"status": 529}, "Claude is overloaded (HTTP 529) after 1 retries"),
    ("claude", {"delay": 2.0, "text": "late"}, "Claude timed out after 0.5 s"),
    ("claude", {"text": "", "stop_reason": "refusal"}, "Claude declined the request (stop_reason=refusal)"),
    ("claude", {"text": "I cannot write that strategy."}, "Claude's reply contains no Python code"),
    ("claude", {"text": "```python\nx = 1\n```"}, "Claude's code defines 0 Strategy subclasses, expected 1"),
    ("claude", {"text": "```python\nclass X(Strategy:\n```"}, "Claude's code does not parse as Python"),
    ("claude", {"status": 401}, "Claude refused the API key (HTTP 401): check ANTHROPIC_API_KEY"),
    ("hybrid", {"text": "```python\nimport os\ndef signals(self, candles, params):\n    return os\n```"},
     "Claude's method imports os, which strategies may not use"),
    ("hybrid", {"text": "```python\ndef compute(x):\n    return x\n```"},
     "Claude's reply has no signals(self, candles, params) method"),
])
def test_every_claude_failure_falls_back_to_the_template(mode: str, script: dict, reason: str, tmp_path: Path) -> None:
    retries = 1 if script.get("status") == 529 else 0
    with FakeAnthropic() as fake:
        fake.reply(**script)
        made = generate(OPP, mode, tmp_path, config(fake, retries=retries, timeout=0.5))
        hits = len(fake.requests)
    assert made.mode == "template" and made.requested_mode == mode
    assert made.fallback_reason == f"{reason}; used the template" and "\n" not in made.fallback_reason
    assert hits == (2 if retries else 1)  # a 529 is retried by the SDK, bounded by ANTHROPIC_MAX_RETRIES
    check_file(made.path, made.sha256)
    signals_of(made.path)


def test_without_a_key_the_mode_is_template(tmp_path: Path) -> None:
    settings = load_settings({"NETTRACE_HOME": str(tmp_path), "CODEGEN_MODE": "claude"})
    assert resolve_mode(settings) == ("template", "CODEGEN_MODE=claude needs ANTHROPIC_API_KEY; using template")
    made, note = generate_for([OPP], settings)
    assert [m.mode for m in made] == ["template"] and note.startswith("CODEGEN_MODE=claude")
    assert Path(made[0].path).parent == tmp_path / "strategies" / "generated"
    assert resolve_mode(load_settings({"NETTRACE_HOME": str(tmp_path)}))[0] == "template"
    live = load_settings({"NETTRACE_HOME": str(tmp_path), "NETTRACE_PROFILE": "live", "ANTHROPIC_API_KEY": "k"})
    assert resolve_mode(live) == ("claude", "")


def test_a_rerun_reuses_claudes_file_without_asking_again(tmp_path: Path) -> None:
    module = render_template("momentum", "gen_claude_01234567")
    with FakeAnthropic() as fake:
        fake.reply(text=f"```python\n{module}```")
        settings = load_settings({"NETTRACE_HOME": str(tmp_path), "CODEGEN_MODE": "claude", "ANTHROPIC_API_KEY": "k",
                                  "ANTHROPIC_BASE_URL": fake.base_url, "ANTHROPIC_MAX_RETRIES": "0"})
        first, _ = generate_for([OPP], settings)
        second, _ = generate_for([OPP], settings)
        assert len(fake.requests) == 1
    assert first[0].mode == "claude" and first[0].path == second[0].path


def test_the_api_base_url_must_not_send_the_key_in_clear_to_another_host() -> None:
    from nettrace_dagster.settings import SettingsError

    with pytest.raises(SettingsError, match="ANTHROPIC_BASE_URL"):
        load_settings({"ANTHROPIC_BASE_URL": "http://evil.example:8080"})
    load_settings({"ANTHROPIC_BASE_URL": "https://proxy.example"})
