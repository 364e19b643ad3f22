"""Loopback webhook servers speaking Slack's and Discord's incoming-webhook protocol: a JSON POST,
answered 200 "ok" (Slack) or 204 (Discord), or 500 when told to be down. Every body is kept."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class WebhookServer:
    def __init__(self, kind: str) -> None:
        self.kind, self.down, self.received = kind, False, []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if owner.down:
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b"internal_error")
                    return
                try:
                    payload = json.loads(body)
                    key = "text" if owner.kind == "slack" else "content"
                    assert isinstance(payload[key], str)
                except Exception:  # noqa: BLE001 - what a real webhook says to a bad body
                    self.send_response(400)
                    self.end_headers()
                    self.wfile.write(b"invalid_payload")
                    return
                owner.received.append(payload)
                self.send_response(200 if owner.kind == "slack" else 204)
                self.end_headers()
                if owner.kind == "slack":
                    self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/XXXXSECRETXXXX"

    @contextmanager
    def running(self) -> Iterator[WebhookServer]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
