"""A real HTTP server on 127.0.0.1 for webhook tests: it records every request, answers from a per-test script,
and keeps Matrix transaction ids the way a homeserver does (the same PUT twice stores one event).

    with WebhookServer() as server:
        server.script(Reply(429, headers={"Retry-After": "1"}), Reply(200))
        ... deliver to server.url + "/hook" ...
        assert [r.path for r in server.requests] == [...]

Import it as ``from webhook_server import ...`` (pytest puts ``tests/`` on sys.path, as for ``conftest``).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["Recorded", "Reply", "WebhookServer", "closed_port", "serve"]


@dataclass(frozen=True)
class Reply:
    """One scripted answer; ``body`` None means what the real service answers on success for that request."""

    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to hold the request before answering (a hanging server)


@dataclass(frozen=True)
class Recorded:
    """One request as the server read it."""

    method: str
    target: str  # the raw request target: path and query, percent-encoding untouched
    headers: dict[str, str]  # names in lower case
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query)

    @property
    def json(self) -> Any:
        return json.loads(self.body)


Script = Reply | Callable[[Recorded], Reply]


class WebhookServer:
    """A threaded HTTP/1.1 server on an ephemeral loopback port; use as a context manager."""

    def __init__(self, default: Script | None = None) -> None:
        self._lock = threading.Lock()
        self._script: deque[Script] = deque()
        self._default = default
        self._requests: list[Recorded] = []
        self._events: dict[str, dict[str, Any]] = {}  # Matrix: request path -> the stored event
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False  # a handler still holding a hanging request must not block close()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.02,), name="webhook-server", daemon=True
        )

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    @property
    def events(self) -> dict[str, dict[str, Any]]:
        """Matrix events stored, by request path (so by transaction id): a repeated transaction adds none."""
        with self._lock:
            return dict(self._events)

    def script(self, *replies: Script) -> None:
        """Answer the next requests with these, in order; then the default."""
        with self._lock:
            self._script.extend(replies)

    def start(self) -> WebhookServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> WebhookServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _answer(self, request: Recorded) -> tuple[Reply, bytes]:
        """Record ``request`` and choose its reply (a stored Matrix transaction is answered as before)."""
        is_matrix = request.method == "PUT" and "/send/" in request.path
        with self._lock:
            self._requests.append(request)
            if is_matrix and request.path in self._events:
                return Reply(200), json.dumps({"event_id": self._events[request.path]["event_id"]}).encode()
            step = self._script.popleft() if self._script else self._default
        reply = step(request) if callable(step) else step or Reply()
        body = reply.body
        if body is None and 200 <= reply.status < 300:
            body = self._success_body(request, is_matrix)
        if is_matrix and 200 <= reply.status < 300:
            with self._lock:
                event_id = f"$event{len(self._events) + 1}"
                self._events[request.path] = {"event_id": event_id, "content": request.json}
            body = {"event_id": event_id}
        if isinstance(body, dict | list):
            return reply, json.dumps(body).encode()
        return reply, body.encode() if isinstance(body, str) else body or b""

    def _success_body(self, request: Recorded, is_matrix: bool) -> bytes | dict[str, Any]:
        if is_matrix:
            return {}
        if request.query.get("wait") == ["true"]:  # Discord with ?wait=true answers with the message
            return {"id": str(len(self._requests)), "type": 0, "channel_id": "1"}
        return b"ok"


def _handler(server: WebhookServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real webhook endpoints do
        disable_nagle_algorithm = True  # else each answer waits ~40 ms for the client's delayed ACK

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            reply, data = server._answer(Recorded(self.command, self.path, headers, body))
            if reply.delay:
                time.sleep(reply.delay)
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if not any(name.lower() == "content-type" for name in reply.headers):
                    kind = "application/json" if data[:1] in (b"{", b"[") else "text/plain; charset=utf-8"
                    self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client gave up (a timeout test): nothing to answer
                self.close_connection = True

        do_POST = do_PUT = do_GET = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler


def closed_port() -> int:
    """A loopback port nothing listens on (bound and released), for connection-refused tests."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextmanager
def serve(default: Script | None = None) -> Iterator[WebhookServer]:
    """A started server for the ``with`` block (what a fixture yields)."""
    with WebhookServer(default) as server:
        yield server
