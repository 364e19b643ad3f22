"""A loopback fake of Anthropic's Messages API (`POST /v1/messages`), for the real anthropic SDK.

    with FakeAnthropic() as fake:
        fake.reply(text="```python\\n...\\n```")             # a 200 message with one text block
        fake.reply(status=529)                              # overloaded_error (the SDK retries it)
        fake.reply(delay=2.0, text="late")                  # answers after the client's timeout
        fake.reply(text="", stop_reason="refusal")          # a refusal
        Anthropic(api_key="k", base_url=fake.base_url)

Replies are used in order; the last one repeats. `fake.requests` holds each request's JSON body
and headers (so a test can read the prompt and check the key travels only as a header).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.feeds import QuietServer

_ERRORS = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error",
           500: "api_error", 529: "overloaded_error"}


@dataclass
class Scripted:
    status: int = 200
    text: str = ""
    stop_reason: str = "end_turn"
    delay: float = 0.0


class FakeAnthropic:
    def __init__(self) -> None:
        self.script: list[Scripted] = []
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                step = fake._next(body, dict(self.headers))
                if step.delay:
                    time.sleep(step.delay)
                if self.path.split("?")[0] != "/v1/messages":
                    return self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}})
                key = self.headers.get("x-api-key") or self.headers.get("authorization", "").removeprefix("Bearer ")
                if not key:
                    return self._json(401, {"type": "error", "error": {"type": "authentication_error",
                                                                       "message": "x-api-key header is required"}})
                if step.status != 200:
                    kind = _ERRORS.get(step.status, "api_error")
                    return self._json(step.status, {"type": "error", "error": {"type": kind, "message": kind}},
                                      {"retry-after-ms": "10"})
                content = [{"type": "text", "text": step.text}] if step.text else []
                self._json(200, {"id": f"msg_fake{len(fake.requests)}", "type": "message", "role": "assistant",
                                 "model": body.get("model", "?"), "content": content, "stop_reason": step.stop_reason,
                                 "stop_sequence": None, "usage": {"input_tokens": 12, "output_tokens": 34}})

            def _json(self, status: int, doc: dict, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(doc).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def _next(self, body: dict, headers: dict[str, str]) -> Scripted:
        self.requests.append({"body": body, "headers": headers})
        if not self.script:
            return Scripted(status=500)
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def reply(self, **kwargs: Any) -> None:
        self.script.append(Scripted(**kwargs))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeAnthropic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
