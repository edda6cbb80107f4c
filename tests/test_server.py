"""The HTTP service against the real running server on 127.0.0.1: hostile requests, caching, slow clients, logs."""

from __future__ import annotations

import contextlib
import http.client
import logging
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from pathlib import Path

import pytest

from digest import store
from digest.app import server
from digest.deliver.email import unsubscribe_token, verify_unsubscribe_token
from digest.models import Dump, Paper
from digest.pipeline.feedback import VoteDesk, vote_token

SECRET = b"test-secret-0123456789abcdef"
USERS = ["ada", "bob"]
ACCESS = re.compile(r'^(?P<client>\S+) "(?P<method>\S+) (?P<path>\S+)" (?P<status>\d{3}) (?P<bytes>\d+) [\d.]+ms$')
FEED = b'<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom"><title>all</title></feed>\n'


@dataclass
class Web:
    """A running server, its feeds folder and who it unsubscribed."""

    host: str
    port: int
    feeds: Path
    unsubscribed: list[str] = field(default_factory=list)

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def raw(self, data: bytes) -> bytes:
        """Send bytes as they are and read until the server closes."""
        with socket.create_connection((self.host, self.port), timeout=5) as sock:
            sock.sendall(data)
            out = b""
            while chunk := sock.recv(65536):
                out += chunk
            return out


@contextlib.contextmanager
def _start(tmp_path: Path, votes: VoteDesk | None = None, **options: int) -> Iterator[Web]:
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    (feeds / "all.xml").write_bytes(FEED)
    web = Web("127.0.0.1", 0, feeds)
    httpd = server.make_server(
        ("127.0.0.1", 0),
        feeds_dir=feeds,
        resolve_token=lambda token: verify_unsubscribe_token(token, USERS, SECRET),
        unsubscribe=web.unsubscribed.append,
        votes=votes,
        **options,
    )
    web.port = httpd.server_address[1]
    thread = server.serve_in_thread(httpd)
    try:
        yield web
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def web(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[Web]:
    """The real server on an ephemeral port with production bounds, logs captured at INFO."""
    caplog.set_level(logging.INFO)
    with _start(tmp_path) as running:
        yield running


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


def _access_lines(caplog: pytest.LogCaptureFixture, count: int) -> list[re.Match[str]]:
    """The access-log records (waiting briefly: the line is written just after the answer is queued)."""
    deadline = time.monotonic() + 2
    while True:
        lines = [r.getMessage() for r in caplog.records if r.name == "digest.app.server"]
        found = [m for m in map(ACCESS.match, lines) if m]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


# ------------------------------------------------------------------------------------- feeds


def test_feed_is_served_with_validators(web: Web) -> None:
    """A feed answers 200 as Atom with ETag, Last-Modified and no-cache (revalidate), never no-store."""
    (web.feeds / "page.html").write_text("<p>archive</p>", encoding="utf-8")
    status, headers, body = web.request("GET", "/feeds/all.xml")
    assert (status, body) == (200, FEED)
    assert headers["content-type"] == "application/atom+xml"
    assert headers["cache-control"] == "no-cache"
    assert re.fullmatch(r'"[0-9a-f]+"', headers["etag"])
    assert headers["last-modified"].endswith(" GMT")
    status, headers, _ = web.request("GET", "/feeds/page.html")
    assert (status, headers["content-type"]) == (200, "text/html; charset=utf-8")


def test_etag_round_trip_answers_304_until_the_file_changes(web: Web) -> None:
    """If-None-Match with the current ETag (strong or W/) is a 304 with no body; a changed file is a 200, new ETag."""
    _, headers, _ = web.request("GET", "/feeds/all.xml")
    etag = headers["etag"]
    for value in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        status, again, body = web.request("GET", "/feeds/all.xml", {"If-None-Match": value})
        assert (status, body) == (304, b""), value
        assert again["etag"] == etag and "content-length" not in again
    (web.feeds / "all.xml").write_bytes(FEED.replace(b"all", b"everything"))
    status, changed, body = web.request("GET", "/feeds/all.xml", {"If-None-Match": etag})
    assert status == 200 and b"everything" in body and changed["etag"] != etag


def test_if_modified_since_answers_304(web: Web) -> None:
    """If-Modified-Since at or after Last-Modified is a 304; earlier or unreadable dates get the file."""
    _, headers, _ = web.request("GET", "/feeds/all.xml")
    assert web.request("GET", "/feeds/all.xml", {"If-Modified-Since": headers["last-modified"]})[0] == 304
    mtime = (web.feeds / "all.xml").stat().st_mtime
    earlier = formatdate(mtime - 3600, usegmt=True)
    for value in (earlier, "yesterday", "Mon, 99 Foo 2026 99:99:99 GMT"):
        assert web.request("GET", "/feeds/all.xml", {"If-Modified-Since": value})[0] == 200, value


def test_head_sends_the_headers_and_no_body(web: Web) -> None:
    """HEAD answers GET's headers (same Content-Length, ETag) and not one byte of body."""
    _, get_headers, body = web.request("GET", "/feeds/all.xml")
    status, headers, _ = web.request("HEAD", "/feeds/all.xml")
    assert status == 200 and headers["content-length"] == get_headers["content-length"] == str(len(body))
    assert headers["etag"] == get_headers["etag"]
    response = web.raw(b"HEAD /feeds/all.xml HTTP/1.0\r\n\r\n")
    assert response.endswith(b"\r\n\r\n") and f"Content-Length: {len(FEED)}".encode() in response


def test_feeds_index_lists_the_files(web: Web) -> None:
    """/feeds and /feeds/ list the feed files as links that resolve, names escaped, hidden files left out."""
    (web.feeds / "<b>&x.xml").write_bytes(FEED)
    (web.feeds / ".all.xml.123.tmp").write_bytes(b"half")
    for path, prefix in (("/feeds", "feeds/"), ("/feeds/", "")):
        status, headers, body = web.request("GET", path)
        page = body.decode("utf-8")
        assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
        assert f'href="{prefix}all.xml"' in page
        assert f'href="{prefix}%3Cb%3E%26x.xml"' in page and "&lt;b&gt;&amp;x.xml" in page and "<b>" not in page
        assert ".tmp" not in page
    assert web.request("GET", "/feeds/%3Cb%3E%26x.xml")[0] == 200


@pytest.mark.parametrize(
    "path",
    [
        "/feeds/../config.toml",
        "/feeds/%2e%2e/config.toml",
        "/feeds/%2E%2E%2Fconfig.toml",
        "/feeds/..%2fconfig.toml",
        "/feeds/sub/../../config.toml",
        "/feeds//etc/passwd",
        "/feeds/%2Fetc%2Fpasswd",
        "/feeds/%00",
        "/feeds/all.xml%00.txt",
        "/feeds/" + "a" * 300,
        "/feeds/" + "a" * 300 + "/all.xml",
        "/feeds/out.toml",
        "/feeds/.secret",
        "/feeds/sub",
        "/feeds/%ff.xml",
        "/feeds/..%5cconfig.toml",
        "/feeds/%0d%0aSet-Cookie:x",
        "/config.toml",
    ],
)
def test_paths_cannot_leave_the_feeds_folder(web: Web, caplog: pytest.LogCaptureFixture, path: str) -> None:
    """Traversal, encoded dots, absolute paths, NUL, over-long names, a symlink out, dot files: 400/404, no 500."""
    secret = web.feeds.parent / "config.toml"
    secret.write_text("password = 'SECRET'\n", encoding="utf-8")
    (web.feeds / "out.toml").symlink_to(secret)
    (web.feeds / ".secret").write_text("SECRET", encoding="utf-8")
    (web.feeds / "sub").mkdir()
    response = web.raw(f"GET {path} HTTP/1.0\r\n\r\n".encode("latin-1"))
    assert _status(response) in (400, 404), response[:200]
    assert b"SECRET" not in response
    _no_tracebacks(caplog)


# -------------------------------------------------------------------------------- unsubscribe


def test_unsubscribe_get_confirms_and_post_unsubscribes(web: Web) -> None:
    """GET shows a POST form and changes nothing; POST answers 200 (no redirect) and unsubscribes; never cached."""
    token = unsubscribe_token("ada", SECRET)
    status, headers, body = web.request("GET", f"/u/{token}")
    assert status == 200 and b'method="post"' in body and headers["cache-control"] == "no-store"
    assert web.unsubscribed == []
    status, headers, body = web.request("POST", f"/u/{token}", body=b"List-Unsubscribe=One-Click")
    assert status == 200 and b"no more digests" in body and headers["cache-control"] == "no-store"
    assert web.unsubscribed == ["ada"]


@pytest.mark.parametrize(
    "token",
    ["forged-token", "A" * 22, "x" * 500, "%ff%fe", "%C3%A9t%C3%A9", "a%2Fb", "%00", "<script>", "ab cd", ""],
)
def test_bad_tokens_are_a_404_page(web: Web, caplog: pytest.LogCaptureFixture, token: str) -> None:
    """Forged, over-long, non-ASCII or odd tokens: 4xx for GET and POST, nobody unsubscribed, no traceback."""
    for method in ("GET", "POST"):
        request = f"{method} /u/{token} HTTP/1.0\r\nContent-Length: 26\r\n\r\nList-Unsubscribe=One-Click"
        response = web.raw(request.encode("latin-1"))
        assert _status(response) in (400, 404), response[:200]
    assert _status(web.raw(b"GET /u/forged-token HTTP/1.0\r\n\r\n")) == 404
    assert web.unsubscribed == []
    _no_tracebacks(caplog)


def test_post_body_is_bounded(web: Web) -> None:
    """A POST body over the limit is refused with 413 before it reaches the application."""
    token = unsubscribe_token("ada", SECRET)
    response = web.raw(f"POST /u/{token} HTTP/1.0\r\nContent-Length: {server.MAX_BODY_BYTES + 1}\r\n\r\n".encode())
    assert _status(response) == 413 and web.unsubscribed == []


# -------------------------------------------------------------------------- malformed requests


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /u/x HTTP/1.0\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        b"\x00\x01\x02garbage\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET /feeds/nothing.xml\r\n\r\n",
        b"G\x00T / HTTP/1.0\r\n\r\n",
        b"GET /feeds/all.xml HTTP/1.0\r\nNo colon here\r\n\r\n",
        b"GET /feeds/all.xml HTTP/1.0\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
        b"GET /feeds/all.xml HTTP/1.0\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n",
        b"DELETE /feeds/all.xml HTTP/1.0\r\n\r\n",
        b"POST /feeds/all.xml HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
        b"GET /u/\xc3\xa9 HTTP/1.0\r\n\r\n",
    ],
)
def test_malformed_requests_get_a_4xx(web: Web, caplog: pytest.LogCaptureFixture, request_bytes: bytes) -> None:
    """Bad Content-Length, garbage or HTTP/0.9-style lines, huge headers, wrong methods: a 4xx answer, no traceback."""
    try:
        response = web.raw(request_bytes)
    except ConnectionResetError:
        # a megabyte of header: answered (431) and closed after 64 KB; the unread rest makes the kernel reset
        assert len(request_bytes) > 4 * server.MAX_HEADER_BYTES
        assert [m["status"] for m in _access_lines(caplog, 1)] == ["431"]
    else:
        assert 400 <= _status(response) < 500, response[:200]
    _no_tracebacks(caplog)


# ------------------------------------------------------------------------------------ the log


def test_one_access_log_line_per_request(web: Web, caplog: pytest.LogCaptureFixture) -> None:
    """Each request, refused by waitress or answered by us, logs one line: client, method, path, status, bytes."""
    web.request("GET", "/feeds/all.xml")
    web.request("HEAD", "/feeds/all.xml")
    web.request("GET", "/feeds/missing.xml")
    web.raw(b"POST /u/x HTTP/1.0\r\nContent-Length: abc\r\n\r\n")
    web.raw(b"GET /feeds/%0aFAKE HTTP/1.0\r\n\r\n")
    token = unsubscribe_token("ada", SECRET)
    web.request("GET", f"/u/{token}")
    lines = _access_lines(caplog, 6)
    seen = [(m["client"], m["method"], m["path"], m["status"]) for m in lines]
    expected = [
        ("127.0.0.1", "GET", "/feeds/all.xml", "200"),
        ("127.0.0.1", "HEAD", "/feeds/all.xml", "200"),
        ("127.0.0.1", "GET", "/feeds/missing.xml", "404"),
        ("127.0.0.1", "POST", "/u/x", "400"),
        ("127.0.0.1", "GET", "/feeds/%0AFAKE", "400"),  # control characters never reach the log raw
        ("127.0.0.1", "GET", f"/u/{token[:4]}...", "200"),  # the token is not written out
    ]
    assert seen == expected
    assert [int(m["bytes"]) for m in lines[:2]] == [len(FEED), 0]
    _no_tracebacks(caplog)


def test_early_disconnect_logs_no_traceback(web: Web, caplog: pytest.LogCaptureFixture) -> None:
    """A client that resets the connection mid-download costs one log line, not a BrokenPipe traceback."""
    (web.feeds / "big.xml").write_bytes(b"<feed>" + b"x" * 8_000_000 + b"</feed>")
    for _ in range(3):
        sock = socket.create_connection((web.host, web.port), timeout=5)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST
        sock.sendall(b"GET /feeds/big.xml HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.recv(1024)
        sock.close()
    assert web.request("GET", "/feeds/all.xml")[0] == 200  # still serving
    assert len(_access_lines(caplog, 4)) == 4
    time.sleep(0.2)  # let the I/O loop meet the reset sockets
    _no_tracebacks(caplog)


# ------------------------------------------------------------------------------- slow clients


def _stall(web: Web, count: int) -> list[socket.socket]:
    """``count`` connections that send part of a request and then nothing."""
    partial = [
        b"GET /feeds/all.xml HTTP/1.1\r\nHost: x\r\nX-Slow: ",
        b"POST /u/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nList-Unsub",  # promises more than it sends
    ]
    socks = []
    for i in range(count):
        sock = socket.create_connection((web.host, web.port), timeout=5)
        sock.sendall(partial[i % 2])
        socks.append(sock)
    return socks


def test_slow_clients_do_not_hold_up_a_normal_request(web: Web, caplog: pytest.LogCaptureFixture) -> None:
    """With 120 stalled connections open, a normal GET answers within a second and no thread is added per client."""
    threads_before = threading.active_count()
    socks = _stall(web, 120)
    try:
        time.sleep(0.2)  # all accepted and waiting in the server
        start = time.monotonic()
        status, _, body = web.request("GET", "/feeds/all.xml")
        elapsed = time.monotonic() - start
        assert (status, body) == (200, FEED)
        assert elapsed < 1.0, f"normal request took {elapsed:.3f} s"
        assert threading.active_count() <= threads_before + 1
        for sock in socks[:5]:  # the stalled clients are still connected (the production timeout is longer)
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(1)
    finally:
        for sock in socks:
            sock.close()
    _no_tracebacks(caplog)


def test_stalled_connections_are_closed_after_the_timeout(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A connection that stops mid-request is closed by the server once idle for its timeout (1 s here)."""
    caplog.set_level(logging.INFO)
    with _start(tmp_path, timeout=1) as web:
        socks = _stall(web, 6)
        start = time.monotonic()
        try:
            for sock in socks:
                sock.settimeout(5)
                assert sock.recv(1024) == b""  # closed by the server, no answer owed
        finally:
            for sock in socks:
                sock.close()
        assert time.monotonic() - start < 4
        assert web.request("GET", "/feeds/all.xml")[0] == 200
    _no_tracebacks(caplog)


def test_connections_over_the_limit_wait_instead_of_failing(tmp_path: Path) -> None:
    """Past connection_limit the server stops accepting; a waiting client is served once stalled ones time out."""
    with _start(tmp_path, timeout=1, connection_limit=10) as web:
        socks = _stall(web, 12)
        try:
            status, _, body = web.request("GET", "/feeds/all.xml")
            assert (status, body) == (200, FEED)
        finally:
            for sock in socks:
                sock.close()


def test_server_releases_its_port_on_close(tmp_path: Path) -> None:
    """shutdown() then server_close() stops the loop and frees the port for the next server."""
    with _start(tmp_path) as web:
        port = web.port
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


# ------------------------------------------------------------------------------------------ votes

MOE = Paper("arxiv:2405.01234", "Sparse Mixture of Experts", "moe", arxiv_id="2405.01234")
XSS = Paper("arxiv:2406.00002", '<script>alert("x")</script> & Friends', "html in a title", arxiv_id="2406.00002")


@dataclass
class Voting:
    """The running server with a VoteDesk on a real store holding two papers."""

    web: Web
    store_path: Path

    def votes(self, user: str) -> dict[str, int]:
        with contextlib.closing(store.open_store(self.store_path)) as conn:
            return {key: vote for key, vote, _ in store.feedback.votes(conn, [user])[user]}


@pytest.fixture
def voting(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[Voting]:
    """The real server with vote links, on a store in tmp_path; logs captured at INFO."""
    caplog.set_level(logging.INFO)
    store_path = tmp_path / "state" / "digest.db"
    with contextlib.closing(store.open_store(store_path)) as conn:
        now = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
        store.ingest(conn, Dump("day", "d" * 64, "json", (MOE, XSS)), now=now)
    (tmp_path / "voting").mkdir()  # beside the `web` fixture's feeds folder when a test uses both
    with _start(tmp_path / "voting", votes=VoteDesk(store_path, SECRET, USERS)) as running:
        yield Voting(running, store_path)


def test_vote_get_confirms_and_never_records(voting: Voting) -> None:
    """Following a vote link five times (a mail scanner) and HEAD show a POST form and record nothing."""
    web, token = voting.web, vote_token(SECRET, "ada", MOE.key, 1)
    for _ in range(5):
        status, headers, body = web.request("GET", f"/v/{token}")
        page = body.decode("utf-8")
        assert status == 200 and headers["cache-control"] == "no-store"
        assert "Record 👍 for “Sparse Mixture of Experts”?" in page and 'method="post"' in page
        assert f'action="{token}"' in page and "Your vote" not in page
    status, headers, body = web.request("HEAD", f"/v/{token}")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0
    assert voting.votes("ada") == {}


def test_vote_get_then_post_records_once_and_a_second_vote_replaces(voting: Voting) -> None:
    """GET then POST records the vote once and answers a 200 thank-you page (no redirect); the down link
    then shows the current vote and its POST replaces it."""
    web, up = voting.web, vote_token(SECRET, "ada", MOE.key, 1)
    assert web.request("GET", f"/v/{up}")[0] == 200
    status, headers, body = web.request("POST", f"/v/{up}", body=b"")
    assert status == 200 and "location" not in headers and headers["cache-control"] == "no-store"
    assert "Thank you" in body.decode() and "Recorded 👍" in body.decode()
    assert voting.votes("ada") == {MOE.key: 1}
    status, _, body = web.request("POST", f"/v/{up}")
    assert status == 200 and "(as before)" in body.decode() and voting.votes("ada") == {MOE.key: 1}
    down = vote_token(SECRET, "ada", MOE.key, -1)
    _, _, body = web.request("GET", f"/v/{down}")
    assert "Record 👎" in body.decode() and "Your vote on it now: 👍." in body.decode()
    assert web.request("POST", f"/v/{down}")[0] == 200
    assert voting.votes("ada") == {MOE.key: -1} and voting.votes("bob") == {}


def test_vote_pages_escape_the_title(voting: Voting) -> None:
    """A paper title with markup is shown escaped on the confirmation and thank-you pages."""
    token = vote_token(SECRET, "bob", XSS.key, -1)
    for method in ("GET", "POST"):
        status, _, body = voting.web.request(method, f"/v/{token}")
        assert status == 200 and b"<script>" not in body
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Friends" in body.decode()
    assert voting.votes("bob") == {XSS.key: -1}


def _edit(token: str) -> str:
    payload, signature = token.split(".")
    return f"{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{signature}"


@pytest.mark.parametrize(
    "token",
    [
        vote_token(b"another-secret-0123456789abcdef", "ada", MOE.key, 1),  # forged: not our secret
        _edit(vote_token(SECRET, "ada", MOE.key, 1)),  # edited payload, old signature
        vote_token(SECRET, "ada", MOE.key, 1).split(".")[0]
        + "."
        + vote_token(SECRET, "ada", MOE.key, -1).split(".")[1],
        vote_token(SECRET, "carol", MOE.key, 1),  # a user no longer in the config
        vote_token(SECRET, "ada", "arxiv:2501.99999", 1),  # a paper the store does not hold
        vote_token(SECRET, "ada", MOE.key, 1)[:-1],
        "forged-token",
        "a.b",
        "x" * 500 + ".y",
        "%C3%A9t%C3%A9.x",
        "<script>.x",
    ],
)
def test_bad_vote_tokens_are_a_404_page(voting: Voting, caplog: pytest.LogCaptureFixture, token: str) -> None:
    """Forged, edited, cut, odd tokens, unknown users and papers: the same 404 page for GET and POST (no detail
    on why), nothing recorded, no traceback."""
    pages = set()
    for method in ("GET", "POST"):
        status, _, body = voting.web.request(method, f"/v/{token}")
        assert status == 404
        pages.add(body)
    assert pages == {voting.web.request("GET", "/v/forged-token")[2]}
    assert voting.votes("ada") == {} and voting.votes("carol") == {}
    _no_tracebacks(caplog)


def test_votes_are_404_without_a_desk_and_405_for_other_methods(web: Web, voting: Voting) -> None:
    """A server built without votes knows no /v/ link; /v/ takes GET, HEAD and POST only."""
    token = vote_token(SECRET, "ada", MOE.key, 1)
    assert web.request("GET", f"/v/{token}")[0] == 404
    status, headers, _ = voting.web.request("DELETE", f"/v/{token}")
    assert status == 405 and headers["allow"] == "GET, HEAD, POST"
    assert voting.votes("ada") == {}


def test_vote_tokens_are_cut_in_the_access_log_and_bodies_bounded(
    voting: Voting, caplog: pytest.LogCaptureFixture
) -> None:
    """The access log shows 4 characters of a vote token; a POST body over the limit is a 413, not a vote."""
    token = vote_token(SECRET, "ada", MOE.key, 1)
    voting.web.request("GET", f"/v/{token}")
    response = voting.web.raw(
        f"POST /v/{token} HTTP/1.0\r\nContent-Length: {server.MAX_BODY_BYTES + 1}\r\n\r\n".encode()
    )
    assert _status(response) == 413
    seen = [(m["method"], m["path"], m["status"]) for m in _access_lines(caplog, 2)]
    assert seen == [("GET", f"/v/{token[:4]}...", "200"), ("POST", f"/v/{token[:4]}...", "413")]
    assert voting.votes("ada") == {}
