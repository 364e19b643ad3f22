"""Claude through the anthropic SDK: one request, one reply text, or one line saying why not.

Every way a request can fail — overloaded (529, after the SDK's own retries), rate limited, a
timeout, a refused key, no connection, a refusal (`stop_reason == "refusal"`), an empty reply —
becomes `ClaudeUnavailable` with a one-line reason; callers fall back (code generation to the
template, scoring to the heuristic) and the run goes on. The key is never logged or echoed.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import anthropic


class ClaudeUnavailable(Exception):
    """Claude gave nothing usable; the message is one line."""


@dataclass(frozen=True)
class ClaudeConfig:
    api_key: str
    model: str
    base_url: str = ""
    timeout: float = 60.0
    max_retries: int = 2

    def __repr__(self) -> str:  # never show the key
        return f"ClaudeConfig(model={self.model!r}, base_url={self.base_url!r})"


def config_from(settings: Any) -> ClaudeConfig | None:
    """The Claude configuration, or None without ANTHROPIC_API_KEY."""
    v = settings.values
    key = (v.get("ANTHROPIC_API_KEY") or "").strip()
    if not key:
        return None
    return ClaudeConfig(api_key=key, model=v["ANTHROPIC_MODEL"], base_url=(v["ANTHROPIC_BASE_URL"] or "").strip(),
                        timeout=v["ANTHROPIC_TIMEOUT_S"], max_retries=v["ANTHROPIC_MAX_RETRIES"])


def ask(config: ClaudeConfig, system: str, prompt: str, max_tokens: int = 4096) -> str:
    """The text of Claude's reply to `prompt`; ClaudeUnavailable (one line) otherwise."""
    # Imported here, not at the top: the SDK takes ~1.7 s to import and every process that loads
    # the code location (code server, run and step workers, CLI) would pay it without asking Claude.
    import anthropic

    # A plain number: anthropic 2.x runs on httpx2 and refuses httpx's Timeout objects.
    client = anthropic.Anthropic(api_key=config.api_key, base_url=config.base_url or None,
                                 timeout=config.timeout, max_retries=config.max_retries)
    try:
        reply = client.messages.create(model=config.model, max_tokens=max_tokens, system=system,
                                       messages=[{"role": "user", "content": prompt}])
    except anthropic.APITimeoutError:
        raise ClaudeUnavailable(f"Claude timed out after {config.timeout:g} s") from None
    except anthropic.OverloadedError:
        raise ClaudeUnavailable(f"Claude is overloaded (HTTP 529) after {config.max_retries} retries") from None
    except anthropic.RateLimitError:
        raise ClaudeUnavailable(f"Claude rate-limited the request (HTTP 429) after {config.max_retries} retries") from None
    except anthropic.AuthenticationError:
        raise ClaudeUnavailable("Claude refused the API key (HTTP 401): check ANTHROPIC_API_KEY") from None
    except anthropic.APIStatusError as exc:
        raise ClaudeUnavailable(f"Claude API error HTTP {exc.status_code}: {_message(exc)}") from None
    except anthropic.APIConnectionError:
        raise ClaudeUnavailable("cannot reach the Claude API (connection failed)") from None
    except anthropic.APIError as exc:  # a reply the SDK cannot read
        raise ClaudeUnavailable(f"unreadable Claude reply ({type(exc).__name__})") from None
    finally:
        client.close()
    if reply.stop_reason == "refusal":
        raise ClaudeUnavailable("Claude declined the request (stop_reason=refusal)")
    text = "".join(getattr(block, "text", "") for block in reply.content if getattr(block, "type", "") == "text")
    if not text.strip():
        raise ClaudeUnavailable(f"Claude's reply had no text (stop_reason={reply.stop_reason})")
    return text


def _message(exc: anthropic.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    err = body.get("error") if isinstance(body.get("error"), dict) else {}
    text = str(err.get("message") or exc.message or "").strip().splitlines()
    return text[0][:200] if text else "no message"


_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)


def extract_code(text: str) -> str:
    """The Python module in a reply (the longest fenced block, or the whole reply if it parses);
    ClaudeUnavailable when there is none."""
    blocks = sorted(_FENCE.findall(text), key=len, reverse=True)
    candidates = blocks or [text]
    for code in candidates:
        try:
            ast.parse(code)
        except SyntaxError:
            continue
        if code.strip():
            return code.strip() + "\n"
    if blocks:
        raise ClaudeUnavailable("Claude's code does not parse as Python")
    raise ClaudeUnavailable("Claude's reply contains no Python code")


def extract_json(text: str) -> dict[str, Any]:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise ClaudeUnavailable("Claude's reply contains no JSON object")
    try:
        doc = json.loads(text[start:end + 1])
    except json.JSONDecodeError as exc:
        raise ClaudeUnavailable(f"Claude's JSON is malformed ({exc.msg})") from None
    if not isinstance(doc, dict):
        raise ClaudeUnavailable("Claude's JSON is not an object")
    return doc
