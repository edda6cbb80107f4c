"""`digest serve` pieces: the APScheduler setup, scheduled runs, the HTTP feeds and unsubscribe endpoint, fetch."""

from __future__ import annotations

import http.server
import json
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
from conftest import CORPUS, SECRET_ENV, Sink, user_block, write_config

from digest import config, pipeline, store
from digest.app import schedule, server
from digest.deliver.email import unsubscribe_token
from digest.errors import FetchError
from digest.sources import fetch
from digest.store import delivery

ADA = user_block("ada", "['LLM']")
BOB = user_block("bob", "['kernel']", cadence='cadence = "weekly"\nweekday = "fri"', tz="Asia/Tokyo")


@pytest.fixture
def cfg(tmp_path: Path, sink: Sink) -> config.Config:
    """Two users pointed at the sink, with a listen address on a free port."""
    return config.load_config(write_config(tmp_path, sink.port, ADA + BOB))


def test_scheduler_jobs_have_safe_defaults(cfg: config.Config) -> None:
    """One job per distinct cadence plus the server schedule, coalesced, one at a time, an hour of grace."""
    scheduler = schedule.make_scheduler(cfg, lambda: None)
    scheduler.start(paused=True)
    try:
        jobs = scheduler.get_jobs()
        assert len(jobs) == 3
        for job in jobs:
            assert job.coalesce is True and job.max_instances == 1 and job.misfire_grace_time >= 3600
        ids = {job.id for job in jobs}
        assert "daily@07:00/UTC" in ids and "weekly:fri@07:00/Asia/Tokyo" in ids
    finally:
        scheduler.shutdown(wait=False)


def test_user_trigger_fires_at_local_send_time(cfg: config.Config) -> None:
    """The weekly Tokyo user's trigger fires on Friday 07:00 Tokyo time."""
    from digest.config import cadence

    bob = next(p for p in cfg.profiles() if p.name == "bob")
    fire = cadence.trigger_for(bob).get_next_fire_time(None, datetime(2026, 11, 23, tzinfo=UTC))
    assert fire is not None and fire.weekday() == 4 and (fire.hour, fire.minute) == (7, 0)
    assert fire.utcoffset() == timedelta(hours=9)


def test_scheduled_job_runs_the_pipeline(cfg: config.Config, sink: Sink, seeds: list[Path]) -> None:
    """A short interval trigger drives real runs; repeated firings send each digest once."""
    shutil.copy(seeds[0], cfg.digest.inbox)
    stop = threading.Event()
    reports: list[object] = []
    clock = lambda: datetime(2026, 11, 27, 8, 0, tzinfo=UTC)  # noqa: E731 - a Friday, both users due
    scheduler = schedule.make_scheduler(
        cfg, lambda: reports.append(schedule.scheduled_run(cfg, SECRET_ENV, stop, clock=clock))
    )
    for job in scheduler.get_jobs():
        job.remove()
    scheduler.add_job(
        lambda: reports.append(schedule.scheduled_run(cfg, SECRET_ENV, stop, clock=clock)),
        "interval",
        seconds=0.2,
        id="fast",
        next_run_time=datetime.now(UTC),
    )
    scheduler.start()
    try:
        deadline = time.monotonic() + 15
        while len(reports) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        scheduler.shutdown(wait=True)
    assert len(reports) >= 3
    assert sorted(sink.recipients()) == ["ada@example.org", "bob@example.org"]


def test_serve_stops_cleanly_when_asked(cfg: config.Config) -> None:
    """serve() returns after the stop event, with its HTTP port released."""
    stop = threading.Event()
    thread = threading.Thread(target=schedule.serve, args=(cfg, SECRET_ENV), kwargs={"stop": stop})
    thread.start()
    host, port = cfg.server.listen_address
    _get_ok(f"http://{host}:{port}/feeds/missing.xml", expect=404)
    stop.set()
    thread.join(timeout=15)
    assert not thread.is_alive()


def _get_ok(url: str, *, expect: int = 200, method: str = "GET", data: bytes | None = None) -> bytes:
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method), timeout=5) as resp:
                assert resp.status == expect
                return resp.read()
        except urllib.error.HTTPError as exc:
            assert exc.code == expect, exc
            return exc.read()
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture
def web(cfg: config.Config) -> Iterator[str]:
    """The real feeds + unsubscribe HTTP server on its configured local address."""
    httpd = schedule.make_http(cfg, SECRET_ENV)
    thread = server.serve_in_thread(httpd)
    host, port = httpd.server_address[:2]
    assert (host, port) == cfg.server.listen_address
    yield f"http://{host}:{port}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)
    assert not thread.is_alive()


def _token(cfg: config.Config, user: str) -> str:
    return unsubscribe_token(user, config.secret(cfg, SECRET_ENV))


def test_get_shows_confirmation_and_never_unsubscribes(cfg: config.Config, web: str) -> None:
    """GET /u/<token> answers a confirmation page; the user stays subscribed."""
    page = _get_ok(f"{web}/u/{_token(cfg, 'ada')}")
    assert b'method="post"' in page
    conn = store.open_store(cfg.digest.store)
    assert delivery.unsubscribed(conn) == set()


def test_one_click_post_unsubscribes(cfg: config.Config, web: str, sink: Sink, seeds: list[Path]) -> None:
    """POST List-Unsubscribe=One-Click answers 200 without redirect and the user gets no more mail."""
    _get_ok(f"{web}/u/{_token(cfg, 'ada')}", method="POST", data=b"List-Unsubscribe=One-Click")
    conn = store.open_store(cfg.digest.store)
    assert delivery.unsubscribed(conn) == {"ada"}
    shutil.copy(seeds[0], cfg.digest.inbox)
    pipeline.run_once(cfg, SECRET_ENV, now=datetime(2026, 11, 27, 8, tzinfo=UTC))
    assert sink.recipients() == ["bob@example.org"]


def test_forged_token_is_refused(web: str) -> None:
    """An unknown token is a 404 and unsubscribes nobody."""
    _get_ok(f"{web}/u/not-a-real-token", method="POST", data=b"List-Unsubscribe=One-Click", expect=404)


def test_feeds_folder_is_served(cfg: config.Config, web: str, seeds: list[Path]) -> None:
    """The feeds written by a run are served as Atom under /feeds/ and listed at /feeds; paths cannot escape."""
    shutil.copy(seeds[0], cfg.digest.inbox)
    pipeline.run_once(
        cfg, SECRET_ENV, now=datetime(2026, 11, 27, 8, tzinfo=UTC), options=pipeline.RunOptions(deliver=False)
    )
    assert b"<feed" in _get_ok(f"{web}/feeds/all.xml")
    assert b'href="feeds/all.xml"' in _get_ok(f"{web}/feeds")  # the feeds' rel=alternate link
    _get_ok(f"{web}/feeds/%2e%2e/config.toml", expect=404)


# ------------------------------------------------------------------------------------------ fetch


class _Api(http.server.BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, bytes]]] = {}
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        status, body = self.routes.get(self.path, (404, b'{"error": "not found"}'))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    """A local HTTP server standing in for the daily-papers API."""
    _Api.routes, _Api.hits = {}, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _listing() -> bytes:
    if (CORPUS / "api_json" / "2026-04-16.json").exists():
        return (CORPUS / "api_json" / "2026-04-16.json").read_bytes()
    return json.dumps([{"paper": {"id": "2604.00001", "title": "T", "summary": "S"}}]).encode()


def test_fetch_writes_the_listing_into_the_inbox(api: str, tmp_path: Path) -> None:
    """A good answer lands in the inbox atomically, named by date and content."""
    _Api.routes["/api/daily_papers?date=2026-04-16"] = (200, _listing())
    path = fetch.fetch_listing(f"{api}/api/daily_papers", tmp_path / "inbox", day=date(2026, 4, 16))
    assert path.read_bytes() == _listing() and path.name.startswith("daily_papers_2026-04-16_")
    assert [p.name for p in (tmp_path / "inbox").iterdir()] == [path.name]


@pytest.mark.parametrize(
    ("status", "body", "needle"),
    [
        (404, b'{"error": "Sorry"}', "HTTP 404"),
        (200, b'{"error": "Sorry, we can\'t find the page"}', "error instead of a listing"),
        (200, b'[{"paper": {"id": "2604.0', "invalid JSON"),
    ],
)
def test_fetch_failures_write_nothing(api: str, tmp_path: Path, status: int, body: bytes, needle: str) -> None:
    """4xx answers, error bodies and truncated JSON raise FetchError and leave the inbox empty."""
    _Api.routes["/api/daily_papers?date=2026-04-16"] = (status, body)
    with pytest.raises(FetchError, match=needle):
        fetch.fetch_listing(f"{api}/api/daily_papers", tmp_path / "inbox", day=date(2026, 4, 16))
    assert not (tmp_path / "inbox").exists() or not list((tmp_path / "inbox").iterdir())


def test_fetch_retries_temporary_errors(api: str, tmp_path: Path) -> None:
    """A 503 is retried and gives up with a clear error; nothing is written."""
    _Api.routes["/api/daily_papers"] = (503, b"busy")
    with pytest.raises(FetchError, match="after 3 attempts"):
        fetch.fetch_listing(f"{api}/api/daily_papers", tmp_path / "inbox", max_wait=0.05)
    assert len(_Api.hits) == 3


def test_run_fetches_from_source_url(api: str, tmp_path: Path, sink: Sink) -> None:
    """A run with source_url set fetches the day's listing and ingests it."""
    _Api.routes["/api/daily_papers"] = (200, _listing())
    cfg = config.load_config(
        write_config(tmp_path, sink.port, ADA, extra=f'source_url = "{api}/api/daily_papers"\nfetch_timeout = 5')
    )
    report = pipeline.run_once(cfg, SECRET_ENV, now=datetime(2026, 11, 27, 8, tzinfo=UTC))
    assert report.new_papers == len(json.loads(_listing())) and not report.errors
