"""The small HTTP side of `digest serve`: the feeds folder and the RFC 8058 one-click unsubscribe endpoint.

POST /u/<token> unsubscribes at once and answers 200 (never a redirect, as RFC 8058 requires);
GET /u/<token> only shows a confirmation page with a button, because mail scanners prefetch links.
"""

from __future__ import annotations

import html
import logging
import mimetypes
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 36em; margin: 3em auto; padding: 0 1em">
<h1>{title}</h1>{body}</body></html>"""


def _page(title: str, body: str) -> bytes:
    return _PAGE.format(title=html.escape(title), body=body).encode("utf-8")


def make_server(
    address: tuple[str, int],
    *,
    feeds_dir: Path,
    resolve_token: Callable[[str], str | None],
    unsubscribe: Callable[[str], None],
) -> ThreadingHTTPServer:
    """An HTTP server for the feeds folder (under /feeds/) and /u/<token>; call serve_forever() on it."""
    feeds_root = feeds_dir.resolve()

    class Handler(BaseHTTPRequestHandler):
        server_version = "paper-digest"

        def log_message(self, format: str, *args: object) -> None:
            log.info("%s %s", self.address_string(), format % args)

        def _send(self, status: HTTPStatus, body: bytes, content_type: str = "text/html; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _token(self) -> str | None:
            path = urlsplit(self.path).path
            return unquote(path[3:]) if path.startswith("/u/") and len(path) > 3 else None

        def do_GET(self) -> None:
            token = self._token()
            if token is not None:
                if resolve_token(token) is None:
                    self._send(HTTPStatus.NOT_FOUND, _page("Link not recognised", "<p>This link is not valid.</p>"))
                    return
                body = (
                    "<p>Stop receiving this paper digest?</p>"
                    f'<form method="post" action="/u/{html.escape(token)}">'
                    '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
                    '<button type="submit">Unsubscribe</button></form>'
                )
                self._send(HTTPStatus.OK, _page("Unsubscribe", body))
                return
            self._serve_feed()

        do_HEAD = do_GET

        def do_POST(self) -> None:
            token = self._token()
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(min(length, 65536))  # the body (List-Unsubscribe=One-Click) carries nothing we need
            user = resolve_token(token) if token is not None else None
            if user is None:
                self._send(HTTPStatus.NOT_FOUND, _page("Link not recognised", "<p>This link is not valid.</p>"))
                return
            unsubscribe(user)
            log.info("unsubscribed %s through the one-click endpoint", user)
            self._send(HTTPStatus.OK, _page("Unsubscribed", "<p>You will receive no more digests.</p>"))

        def _serve_feed(self) -> None:
            path = urlsplit(self.path).path
            if not path.startswith("/feeds/"):
                self._send(HTTPStatus.NOT_FOUND, _page("Not found", "<p>Nothing here.</p>"))
                return
            target = (feeds_root / unquote(path[len("/feeds/") :])).resolve()
            if not target.is_relative_to(feeds_root) or not target.is_file():
                self._send(HTTPStatus.NOT_FOUND, _page("Not found", "<p>No such feed.</p>"))
                return
            kind = "application/atom+xml" if target.suffix == ".xml" else mimetypes.guess_type(target.name)[0]
            self._send(HTTPStatus.OK, target.read_bytes(), kind or "application/octet-stream")

    return ThreadingHTTPServer(address, Handler)


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    """Run the server in a daemon thread; stop it with server.shutdown()."""
    thread = threading.Thread(target=server.serve_forever, name="digest-http", daemon=True)
    thread.start()
    return thread
