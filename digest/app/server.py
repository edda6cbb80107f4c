"""The HTTP side of `digest serve`: the feeds folder, the RFC 8058 one-click unsubscribe endpoint, vote links.

The only module that imports waitress (a pure-Python production WSGI server of the Pylons project, no
dependencies of its own). waitress reads every request whole, headers and body, in its single I/O loop before
handing it to one of a few worker threads, so slow or stalled clients hold a socket, never a thread; it answers
malformed requests itself (400, 413, 431, 501) and closes connections idle for ``channel_timeout`` seconds.
What is ours: a small WSGI application, an access log of one line per request (also for the requests waitress
refuses before they reach us), and a stoppable loop.

Routes:
  GET/HEAD /feeds, /feeds/     an index of the feed files (HTML, names escaped)
  GET/HEAD /feeds/<name>       a file from inside the feeds folder, with ETag, Last-Modified and
                               ``Cache-Control: no-cache`` so feed readers revalidate (304) instead of re-downloading
  GET/HEAD /u/<token>          a confirmation page with a POST button (mail scanners prefetch links)
  POST     /u/<token>          unsubscribes at once and answers 200, never a redirect (RFC 8058)
  GET/HEAD /v/<token>          "Record 👍 for <title>?" with a POST button; never records (scanners follow links)
  POST     /v/<token>          records the vote (replacing the user's earlier one) and answers 200, a thank-you
                               page; a token that does not verify, or names a user or paper we do not know: 404

Bounds (constants below; [server] has only ``listen``): at most ``CONNECTION_LIMIT`` open connections (beyond it
waitress stops accepting and new clients wait in the kernel's listen backlog until one closes); a connection idle
for ``CHANNEL_TIMEOUT`` seconds (checked every ``CLEANUP_INTERVAL``) is closed, partial requests included; request
headers at most ``MAX_HEADER_BYTES`` (else 431), bodies at most ``MAX_BODY_BYTES`` (else 413); ``THREADS``
worker threads run the application.
"""

from __future__ import annotations

import hashlib
import html
import logging
import mimetypes
import os
import re
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import create_server
from waitress.task import ErrorTask, WSGITask

if TYPE_CHECKING:
    from digest import pipeline

log = logging.getLogger(__name__)

CONNECTION_LIMIT = 500  # open connections; each costs one file descriptor (the default soft limit is 1024)
CHANNEL_TIMEOUT = 20  # seconds a connection may stay idle, mid-request or between keep-alive requests
CLEANUP_INTERVAL = 5  # seconds between sweeps for idle connections
THREADS = 4  # worker threads for the application; I/O is done by waitress's single loop thread
MAX_HEADER_BYTES = 16 * 1024  # request line plus headers
MAX_BODY_BYTES = 4 * 1024  # the one-click body is "List-Unsubscribe=One-Click"
MAX_NAME_BYTES = 255  # one path component (NAME_MAX)
MAX_DEPTH = 8  # path components under /feeds/ (archive pages may live in sub-folders)
_LOOP_TIMEOUT = 1.0  # seconds the I/O loop sleeps at most between checks for shutdown

_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,128}")
_VOTE_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,360}\.[A-Za-z0-9_-]{1,32}")  # base64url payload . signature
_THUMBS = {1: "👍", -1: "👎"}
_ETAGS = re.compile(r'\s*(?:W/)?("[^"]*")\s*(?:,|$)')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TYPES = {".xml": "application/atom+xml", ".html": "text/html; charset=utf-8"}
_HTML = "text/html; charset=utf-8"

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 36em; margin: 3em auto; padding: 0 1em">
<h1>{title}</h1>{body}</body></html>"""


@dataclass
class _Response:
    status: HTTPStatus
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


def _page(status: HTTPStatus, title: str, body: str, **extra: str) -> _Response:
    """An HTML page that no cache keeps (errors, the unsubscribe pages)."""
    text = _PAGE.format(title=html.escape(title), body=body).encode("utf-8")
    headers = [("Content-Type", _HTML), ("Cache-Control", "no-store"), *extra.items()]
    return _Response(status, text, headers)


def _not_found(what: str = "Nothing here.") -> _Response:
    return _page(HTTPStatus.NOT_FOUND, "Not found", f"<p>{html.escape(what)}</p>")


def _bad_request() -> _Response:
    return _page(HTTPStatus.BAD_REQUEST, "Bad request", "<p>The address is not valid.</p>")


def _not_allowed(allow: str) -> _Response:
    return _page(HTTPStatus.METHOD_NOT_ALLOWED, "Method not allowed", "<p>Not here.</p>", Allow=allow)


def _etag_matches(header: str, etag: str) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110 13.1.2): W/ prefixes are ignored."""
    if header.strip() == "*":
        return True
    return any(match.group(1) == etag for match in _ETAGS.finditer(header))


def _not_modified_since(header: str, mtime: float) -> bool:
    try:
        since = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError, OverflowError):
        return False  # an unreadable date is ignored, as RFC 9110 13.1.3 asks
    if since.tzinfo is None:
        return False
    return int(mtime) <= since.timestamp()


class _App:
    """The WSGI application: routes, the feeds folder, the unsubscribe endpoint and the vote links."""

    def __init__(
        self,
        feeds_dir: Path,
        resolve_token: Callable[[str], str | None],
        unsubscribe: Callable[[str], None],
        votes: pipeline.VoteDesk | None = None,
    ) -> None:
        self.root = feeds_dir.resolve()
        self.resolve_token = resolve_token
        self.unsubscribe = unsubscribe
        self.votes = votes

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        try:
            response = self._route(method, environ)
        except Exception:
            log.exception("error while answering %s %s", method, _printable(environ.get("PATH_INFO", "")))
            response = _page(HTTPStatus.INTERNAL_SERVER_ERROR, "Server error", "<p>Please try again later.</p>")
        headers = [*response.headers, ("X-Content-Type-Options", "nosniff")]
        if response.status != HTTPStatus.NOT_MODIFIED:
            headers.append(("Content-Length", str(len(response.body))))
        start_response(f"{response.status.value} {response.status.phrase}", headers)
        # HEAD: same headers (Content-Length included), no body; waitress sends what we return.
        return [] if method == "HEAD" or response.status == HTTPStatus.NOT_MODIFIED else [response.body]

    def _route(self, method: str, environ: dict[str, Any]) -> _Response:
        try:  # WSGI hands the percent-decoded path as latin-1; the bytes are UTF-8
            path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
        except UnicodeError:
            return _bad_request()
        if _CONTROL.search(path):
            return _bad_request()  # NUL, CR, LF... never part of a name we serve
        if path.startswith("/u/"):
            if method not in ("GET", "HEAD", "POST"):
                return _not_allowed("GET, HEAD, POST")
            return self._unsubscribe(method, path[3:])
        if path.startswith("/v/"):
            if method not in ("GET", "HEAD", "POST"):
                return _not_allowed("GET, HEAD, POST")
            return self._vote(method, path[3:])
        if path == "/feeds" or path.startswith("/feeds/"):
            if method not in ("GET", "HEAD"):
                return _not_allowed("GET, HEAD")
            if path in ("/feeds", "/feeds/"):
                return self._index(prefix="feeds/" if path == "/feeds" else "")
            return self._feed(path[len("/feeds/") :], environ)
        return _not_found()

    # ------------------------------------------------------------------------------- unsubscribe

    def _unsubscribe(self, method: str, token: str) -> _Response:
        user = self.resolve_token(token) if _TOKEN.fullmatch(token) else None
        if user is None:
            return _page(HTTPStatus.NOT_FOUND, "Link not recognised", "<p>This link is not valid.</p>")
        if method == "POST":
            # The body (List-Unsubscribe=One-Click) carries nothing we need; waitress bounded and read it.
            self.unsubscribe(user)
            log.info("unsubscribed %s through the one-click endpoint", user)
            return _page(HTTPStatus.OK, "Unsubscribed", "<p>You will receive no more digests.</p>")
        body = (
            "<p>Stop receiving this paper digest?</p>"
            f'<form method="post" action="{html.escape(quote(token, safe=""))}">'
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
            '<button type="submit">Unsubscribe</button></form>'
        )
        return _page(HTTPStatus.OK, "Unsubscribe", body)

    # ------------------------------------------------------------------------------------ votes

    def _vote(self, method: str, token: str) -> _Response:
        """GET/HEAD: what the link would record, with a POST button; POST: record it. No detail on a refusal."""
        page = None
        if self.votes is not None and _VOTE_TOKEN.fullmatch(token):
            page = self.votes.cast(token) if method == "POST" else self.votes.look(token)
        if page is None:
            return _page(HTTPStatus.NOT_FOUND, "Link not recognised", "<p>This link is not valid.</p>")
        thumb = _THUMBS[page.vote]
        title = f"“{html.escape(page.title)}”"
        if method == "POST":
            log.info("recorded a %s vote of %s through a vote link", "+1" if page.vote > 0 else "-1", page.user)
            already = "" if page.changed else " (as before)"
            body = f"<p>Recorded {thumb} for {title}{already}. Your next digests take it into account.</p>"
            return _page(HTTPStatus.OK, "Thank you", body)
        now = f"<p>Your vote on it now: {_THUMBS[page.current]}.</p>" if page.current is not None else ""
        body = (
            f"<p>Record {thumb} for {title}?</p>{now}"
            f'<form method="post" action="{html.escape(quote(token, safe=""))}">'
            f'<button type="submit">Record {thumb}</button></form>'
        )
        return _page(HTTPStatus.OK, f"Record {thumb}?", body)

    # ------------------------------------------------------------------------------------ feeds

    def _inside(self, relative: str) -> Path | None:
        """The file ``relative`` names inside the feeds folder, or None (traversal, hidden, too long, missing)."""
        parts = relative.split("/")
        if len(parts) > MAX_DEPTH:
            return None
        for part in parts:
            if not part or part.startswith(".") or "\\" in part or len(part.encode("utf-8")) > MAX_NAME_BYTES:
                return None  # "", ".", "..", dot files (half-written .tmp files), over-long names
        try:
            real = self.root.joinpath(*parts).resolve(strict=True)
        except (OSError, RuntimeError, ValueError):
            return None
        return real if real.is_relative_to(self.root) else None  # a symlink pointing out is not served

    def _feed(self, relative: str, environ: dict[str, Any]) -> _Response:
        target = self._inside(relative)
        if target is None:
            return _not_found("No such feed.")
        try:
            # O_NONBLOCK: opening a FIFO someone left in the folder must not hang a worker thread.
            fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return _not_found("No such feed.")
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):  # a folder, a FIFO, a device
                return _not_found("No such feed.")
            with open(fd, "rb", closefd=False) as file:
                data = file.read()  # time and bytes from the same open file: no torn answer
        finally:
            os.close(fd)
        etag = '"' + hashlib.blake2b(data, digest_size=16).hexdigest() + '"'
        headers = [
            ("ETag", etag),
            ("Last-Modified", formatdate(info.st_mtime, usegmt=True)),
            ("Cache-Control", "no-cache"),
        ]
        if_none_match = environ.get("HTTP_IF_NONE_MATCH")
        if if_none_match is not None:
            fresh = _etag_matches(if_none_match, etag)
        else:
            since = environ.get("HTTP_IF_MODIFIED_SINCE")
            fresh = since is not None and _not_modified_since(since, info.st_mtime)
        if fresh:
            return _Response(HTTPStatus.NOT_MODIFIED, b"", headers)
        kind = _TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return _Response(HTTPStatus.OK, data, [("Content-Type", kind), *headers])

    def _index(self, prefix: str) -> _Response:
        """The feed files at the top of the folder; links relative so the page works behind a path prefix."""
        rows = []
        try:
            entries = sorted(os.scandir(self.root), key=lambda entry: entry.name)
        except OSError:
            entries = []
        for entry in entries:
            if entry.name.startswith(".") or self._inside(entry.name) is None:
                continue
            try:
                if not entry.is_file():
                    continue
                info = entry.stat()
            except OSError:
                continue
            href = html.escape(prefix + quote(entry.name))
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(info.st_mtime))
            rows.append(f'<li><a href="{href}">{html.escape(entry.name)}</a> ({info.st_size} bytes, {when})</li>')
        body = f"<ul>{''.join(rows)}</ul>" if rows else "<p>No feeds yet.</p>"
        text = _PAGE.format(title="Feeds", body=body).encode("utf-8")
        return _Response(HTTPStatus.OK, text, [("Content-Type", _HTML), ("Cache-Control", "no-cache")])


# ----------------------------------------------------------------------------------- access log


def _logged_path(path: str) -> str:
    """The path for the access log: unsubscribe and vote tokens cut to 4 characters (the log must not unsubscribe
    anyone, or vote for them)."""
    if path.startswith(("/u/", "/v/")) and len(path) > 7:
        path = path[:7] + "..."
    return _printable(path)


def _printable(text: str, limit: int = 300) -> str:
    """A path as its percent-encoded bytes, so a log line can hold no control character; cut when long."""
    shown = quote(text.encode("latin-1", "replace"), safe="/:@!$&'()*+,;=-._~")
    return shown if len(shown) <= limit else shown[:limit] + "..."


class _AccessLogged:
    """One log line per request answered, whether by our application or by waitress's own error responses."""

    channel: Any
    request: Any
    status: str
    start_time: float
    content_bytes_written: int

    def service(self) -> None:
        try:
            super().service()  # type: ignore[misc]
        finally:
            request = self.request  # a request whose first line did not parse has no command or path
            method = getattr(request, "command", None) or "-"
            path = getattr(request, "path", None)
            elapsed = (time.time() - self.start_time) * 1000 if self.start_time else 0.0
            log.info(
                '%s "%s %s" %s %d %.1fms',
                self.channel.addr[0] if self.channel.addr else "-",
                _printable(method, 20),
                _logged_path(path) if path else "-",
                self.status.split(" ", 1)[0],
                self.content_bytes_written,
                elapsed,
            )


class _Task(_AccessLogged, WSGITask):
    pass


class _ErrorTask(_AccessLogged, ErrorTask):
    pass


class _Channel(HTTPChannel):
    task_class = _Task
    error_task_class = _ErrorTask


# -------------------------------------------------------------------------------------- server


class HTTPServer:
    """The running service: serve_forever() in a thread, then shutdown() and server_close(), as socketserver."""

    def __init__(self, app: _App, sock: socket.socket, *, timeout: int, connection_limit: int) -> None:
        self._map: dict[int, Any] = {}
        self._server = create_server(
            app,
            map=self._map,
            sockets=[sock],
            threads=THREADS,
            connection_limit=connection_limit,
            channel_timeout=timeout,
            cleanup_interval=min(CLEANUP_INTERVAL, timeout),
            max_request_header_size=MAX_HEADER_BYTES,
            max_request_body_size=MAX_BODY_BYTES,
            recv_bytes=4 * MAX_HEADER_BYTES,  # an over-long header block read whole gets its 431, not a reset
            log_socket_errors=False,  # a client that hangs up early is not our error: no traceback
            ident="paper-digest",
        )
        self._server.channel_class = _Channel
        self.server_address: tuple[str, int] = sock.getsockname()[:2]
        self.timeout = timeout
        self.connection_limit = connection_limit
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()

    def serve_forever(self) -> None:
        """Run the I/O loop until shutdown() is called."""
        self._stopped.clear()
        try:
            while not self._stop.is_set():
                wasyncore.loop(timeout=_LOOP_TIMEOUT, map=self._map, use_poll=True, count=1)
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop serve_forever() and wait for it to return."""
        self._stop.set()
        if not self._stopped.is_set():
            self._server.pull_trigger()  # wake the loop now rather than after its poll timeout
            self._stopped.wait()

    def server_close(self) -> None:
        """Stop the worker threads and close the listening socket and every connection."""
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        wasyncore.close_all(self._map, ignore_all=True)


def make_server(
    address: tuple[str, int],
    *,
    feeds_dir: Path,
    resolve_token: Callable[[str], str | None],
    unsubscribe: Callable[[str], None],
    votes: pipeline.VoteDesk | None = None,
    timeout: int = CHANNEL_TIMEOUT,
    connection_limit: int = CONNECTION_LIMIT,
) -> HTTPServer:
    """An HTTP server for the feeds folder (under /feeds/), /u/<token> and, given ``votes``, /v/<token>, bound to
    ``address``, not yet serving.

    ``timeout`` is the seconds a connection may stay idle (whole seconds, at least 1).
    """
    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family)
    try:
        return HTTPServer(
            _App(feeds_dir, resolve_token, unsubscribe, votes), sock, timeout=timeout, connection_limit=connection_limit
        )
    except BaseException:
        sock.close()
        raise


def serve_in_thread(server: HTTPServer) -> threading.Thread:
    """Run the server in a daemon thread; stop it with server.shutdown() then server.server_close()."""
    thread = threading.Thread(target=server.serve_forever, name="digest-http", daemon=True)
    thread.start()
    return thread
