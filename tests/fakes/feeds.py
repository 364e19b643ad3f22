"""A loopback HTTP server for discovery feeds, with scripted faults.

    with FakeFeeds() as fake:
        fake.route("/arxiv", body=ATOM_BYTES)                    # 200 with the body
        fake.route("/slow", body=b"...", delay=2.0)              # headers only after `delay`
        fake.route("/huge", stream=64_000, chunks=1000)          # chunked, no Content-Length
        fake.route("/gone", status=404)
        fake.route("/flaky", status=503, times=2)                 # then the next route for the path
        fake.url("/arxiv")                                        # http://127.0.0.1:PORT/arxiv

An unknown path is a 404. `fake.hits[path]` counts requests per path.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietServer(ThreadingHTTPServer):
    """A client that hangs up (a timeout, the size cap) is what these tests provoke: not an error."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    delay: float = 0.0
    stream: int = 0  # bytes per chunk of an endless-looking chunked body (no Content-Length)
    chunks: int = 0
    content_type: str = "application/xml"
    times: int = 0  # 0: forever; n: used for the next n requests, then dropped


class FakeFeeds:
    def __init__(self) -> None:
        self.routes: dict[str, list[Reply]] = defaultdict(list)
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - the http.server protocol
                path = self.path.split("?")[0]
                reply = fake._take(path)
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    if reply.stream:
                        self.send_header("Transfer-Encoding", "chunked")
                        self.end_headers()
                        piece = b"<" * reply.stream
                        for _ in range(reply.chunks):
                            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                        self.wfile.write(b"0\r\n\r\n")
                        return
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout or the size cap): what the test wanted

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def _take(self, path: str) -> Reply:
        with self._lock:
            self.hits[path] += 1
            queue = self.routes.get(path)
            if not queue:
                return Reply(status=404, body=b"<html><body>404 Not Found</body></html>", content_type="text/html")
            reply = queue[0]
            if reply.times:
                reply.times -= 1
                if reply.times == 0:
                    queue.pop(0)
            return reply

    def route(self, path: str, **kwargs: object) -> str:
        self.routes[path].append(Reply(**kwargs))  # type: ignore[arg-type]
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def __enter__(self) -> FakeFeeds:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
