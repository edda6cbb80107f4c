"""A webhook receiver for benchmarks: Slack, Discord, Matrix and plain-JSON endpoints in one HTTP server, run as
its own process.

Usage: python bench/webhook_sink.py [--record FILE] [--delay SECONDS] [--token TOKEN]
  -> prints "PORT <n>" once listening on 127.0.0.1 (a stdlib ThreadingHTTPServer, HTTP/1.1 keep-alive).
Then on stdin: "stats" prints "<accepted requests> <bytes> <cpu seconds of this process>"; "quit" or EOF exits.

What it accepts (anything else is answered 400/401/404 and not counted):
  * POST with an ``Idempotency-Key`` header: a plain-JSON webhook (kind "json"), answered 200 {"ok": true};
  * POST to any other path: a Slack incoming webhook (kind "slack"), answered 200 "ok"; with ``?wait=true``
    a Discord execute-webhook (kind "discord"), answered 200 with the message object;
  * PUT /_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}: a Matrix homeserver (kind "matrix"),
    answered 200 {"event_id": ...}; like a homeserver it keeps transaction ids, so a repeated txn is answered
    with the first event and stores nothing new. With --token, a PUT without "Authorization: Bearer TOKEN"
    gets 401 M_UNKNOWN_TOKEN.
The body must be JSON. With --record, every accepted request appends one JSON line to FILE, written and flushed
BEFORE the answer (so a request counted is one the receiver kept, whatever happens to the client):
  {"t": unix time, "kind", "identity": the Matrix txn id | the Idempotency-Key | sha256 of a Slack/Discord body,
   "stored": false only for a Matrix repeat, "user", "period", "part", "parts" (null when not derivable), "bytes"}
With --delay, the answer is held that many seconds after the request is recorded (a slow receiver: a client
killed meanwhile leaves a request the receiver kept but never answered).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

MATRIX_SEND = re.compile(r"^/_matrix/client/v3/rooms/(?P<room>[^/]+)/send/m\.room\.message/(?P<txn>[^/]+)$")
# The digest header every kind starts with: "5 new papers for Ada — 2026-11-23", then " (part 2 of 3)" when
# the digest is split (Discord wraps the header in ** and escapes markdown with backslashes).
HEADER = re.compile(
    r" for (?P<who>.+?) — (?P<period>[^\s(*\\]+)(?:\\?\*\\?\*)?(?: \(part (?P<part>\d+) of (?P<parts>\d+)\))?"
)


class Receiver:
    """The shared state of the server: Matrix transactions seen, counters, the record file."""

    def __init__(self, record: str | None, delay: float, token: str | None) -> None:
        self.lock = threading.Lock()
        self.delay = delay
        self.token = token
        self.events: dict[str, str] = {}  # Matrix: (room, txn) -> event id
        self.accepted = 0
        self.bytes = 0
        self.record = open(record, "a", encoding="utf-8") if record else None  # noqa: SIM115 (open while serving)

    def accept(self, kind: str, identity: str, body: bytes, data: dict[str, Any], key: str = "") -> dict[str, Any]:
        """Count and record one accepted request (a Matrix repeat is recorded with stored false); return the
        answer's JSON (Matrix and Discord) or {} (Slack answers text)."""
        user, period, part, parts = _who(kind, data)
        with self.lock:
            stored = True
            answer: dict[str, Any] = {}
            if kind == "matrix":
                stored = key not in self.events
                if stored:
                    self.events[key] = f"$event{len(self.events) + 1}:sink.test"
                answer = {"event_id": self.events[key]}
            elif kind == "discord":
                answer = {"id": str(self.accepted + 1), "type": 0, "channel_id": "1"}
            elif kind == "json":
                answer = {"ok": True}
            self.accepted += 1
            self.bytes += len(body)
            if self.record is not None:
                line = {
                    "t": round(time.time(), 6), "kind": kind, "identity": identity, "stored": stored, "user": user,
                    "period": period, "part": part, "parts": parts, "bytes": len(body),
                }  # fmt: skip
                self.record.write(json.dumps(line) + "\n")
                self.record.flush()  # before the answer: what is counted is what the receiver kept
        return answer


def _who(kind: str, data: dict[str, Any]) -> tuple[str | None, str | None, int | None, int | None]:
    """(user, period, part, parts) of a request body, as far as its kind shows them."""
    if kind == "json":
        return (_str(data.get("user")), _str(data.get("period")), _int(data.get("part")), _int(data.get("parts")))
    text = {"slack": data.get("text"), "discord": data.get("content"), "matrix": data.get("body")}.get(kind)
    if not isinstance(text, str):
        return None, None, None, None
    match = HEADER.search(text.split("\n", 1)[0])
    if match is None:
        return None, None, None, None
    who = match["who"].replace("\\", "")  # Discord's escapes
    part, parts = (int(match["part"]), int(match["parts"])) if match["part"] else (1, 1)
    return who, match["period"], part, parts


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real webhook endpoints do
        # The answer's header and body are written separately: with Nagle's algorithm the body would wait for
        # the client's delayed ACK of the header (40 ms a request on Linux), which no real endpoint costs.
        disable_nagle_algorithm = True

        def _reply(self, status: int, body: bytes | dict[str, Any], *, delay: float = 0.0) -> None:
            data = json.dumps(body).encode() if isinstance(body, dict) else body
            if delay > 0:
                time.sleep(delay)
            try:
                self.send_response(status)
                kind = "application/json" if isinstance(body, dict) else "text/plain; charset=utf-8"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client is gone (killed): what was recorded stays recorded
                self.close_connection = True

        def _body(self) -> tuple[bytes, dict[str, Any] | None]:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                data = json.loads(body)
            except ValueError:
                return body, None
            return body, data if isinstance(data, dict) else None

        def do_POST(self) -> None:
            body, data = self._body()
            if data is None:
                self._reply(400, b"invalid_payload")
                return
            url = urlsplit(self.path)
            key = self.headers.get("Idempotency-Key")
            if key:
                answer = receiver.accept("json", key, body, data)
                self._reply(200, answer, delay=receiver.delay)
            elif parse_qs(url.query).get("wait") == ["true"]:
                answer = receiver.accept("discord", hashlib.sha256(body).hexdigest(), body, data)
                self._reply(200, answer, delay=receiver.delay)
            else:
                receiver.accept("slack", hashlib.sha256(body).hexdigest(), body, data)
                self._reply(200, b"ok", delay=receiver.delay)

        def do_PUT(self) -> None:
            body, data = self._body()
            found = MATRIX_SEND.match(urlsplit(self.path).path)
            if found is None:
                self._reply(404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"})
                return
            if receiver.token is not None and self.headers.get("Authorization") != f"Bearer {receiver.token}":
                self._reply(401, {"errcode": "M_UNKNOWN_TOKEN", "error": "Invalid access token"})
                return
            if data is None:
                self._reply(400, {"errcode": "M_NOT_JSON", "error": "Content not JSON."})
                return
            room, txn = unquote(found["room"]), unquote(found["txn"])
            answer = receiver.accept("matrix", txn, body, data, key=f"{room}\n{txn}")
            self._reply(200, answer, delay=receiver.delay)

        def do_GET(self) -> None:
            self._reply(404, b"not found")

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a benchmark's output stays clean

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a handler still holding a delayed answer must not block the exit

    def handle_error(self, request: object, client_address: object) -> None:
        """A client killed mid-connection (what the benchmark does) resets it: not worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def main() -> None:
    """Serve until told to quit on stdin."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", help="append one JSON line per accepted request, flushed before the answer")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to hold each answer (after recording)")
    parser.add_argument("--token", help="the Matrix access token PUTs must carry (default: any)")
    args = parser.parse_args()
    receiver = Receiver(args.record, max(args.delay, 0.0), args.token)
    httpd = Server(("127.0.0.1", 0), handler(receiver))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), name="webhook-sink", daemon=True)
    thread.start()
    print("PORT", httpd.server_address[1], flush=True)
    for line in sys.stdin:
        if line.strip() == "stats":
            cpu = os.times()
            with receiver.lock:
                print(receiver.accepted, receiver.bytes, cpu.user + cpu.system, flush=True)
        elif line.strip() == "quit":
            break
    httpd.shutdown()
    httpd.server_close()
    with receiver.lock:
        if receiver.record is not None:
            receiver.record.close()
            receiver.record = None


if __name__ == "__main__":
    main()
