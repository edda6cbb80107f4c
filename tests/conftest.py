"""Shared fixtures: seed dumps, the third-party corpus when present, a fixed clock, a store in tmp_path."""

from __future__ import annotations

import difflib
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest import config, pipeline, store

FIXTURES = Path(__file__).parent / "fixtures"
SEEDS = sorted(FIXTURES.glob("0*.txt"))
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


GOLDEN = Path(__file__).parent / "golden"


def assert_golden(name: str, actual: str, update: bool) -> None:
    """Compare with tests/golden/<name>; `pytest --update-golden` (or UPDATE_GOLDEN=1) rewrites it instead."""
    path = GOLDEN / name
    if update or os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(actual.encode())
        return
    if not path.exists():
        pytest.fail(f"golden file {path} is missing; create it with pytest --update-golden")
    expected = path.read_bytes().decode()
    if actual != expected:
        diff = difflib.unified_diff(
            expected.splitlines(keepends=True), actual.splitlines(keepends=True), f"golden/{name}", "new output"
        )
        pytest.fail(f"output differs from golden/{name}:\n" + "".join(diff), pytrace=False)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="Rewrite golden files instead of comparing.")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """True when the run was started with --update-golden."""
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture
def seeds() -> list[Path]:
    """The five real text scrapes, in name order."""
    assert len(SEEDS) == 5
    return SEEDS


@pytest.fixture
def corpus() -> Path:
    """The third-party corpus beside the checkout (present in CI); skips when absent."""
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is not beside this checkout")
    return CORPUS


@pytest.fixture
def now() -> datetime:
    """A fixed clock."""
    return datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """Where a test's SQLite store lives."""
    return tmp_path / "state" / "digest.db"


@pytest.fixture
def conn(store_path: Path) -> Iterator[sqlite3.Connection]:
    """A real, migrated SQLite store in tmp_path."""
    connection = store.open_store(store_path)
    yield connection
    connection.close()


# --------------------------------------------------------------------------- a real SMTP server and a config


class Sink:
    """An aiosmtpd handler that records every accepted message; ``reject`` maps recipients to SMTP replies."""

    def __init__(self, delay: float = 0.0) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.reject: dict[str, str] = {}
        self.delay = delay
        self.port = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.reject:
            return self.reject[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            import asyncio

            await asyncio.sleep(self.delay)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content)))
        return "250 Message accepted"

    def recipients(self) -> list[str]:
        """Every recipient of every accepted message, in order."""
        return [r for _, rcpts, _ in self.messages for r in rcpts]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def sink() -> Iterator[Sink]:
    """A real aiosmtpd server on 127.0.0.1 recording what it accepts."""
    from aiosmtpd.controller import Controller

    handler = Sink()
    handler.port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    yield handler
    controller.stop()


SECRET_ENV = {"DIGEST_SECRET": "test-secret-0123456789abcdef"}


def run_once(cfg: config.Config, now: datetime, **options: object) -> pipeline.RunReport:
    """One `digest run` in-process at ``now`` with the test secret (RunOptions from ``options``)."""
    return pipeline.run_once(cfg, SECRET_ENV, now=now, options=pipeline.RunOptions(**options))  # type: ignore[arg-type]


def ingest_file(cfg: config.Config, path: Path, now: datetime) -> None:
    """Ingest a dump the way `digest ingest` does, outside any run; the dump must be accepted."""
    conn = store.open_store(cfg.digest.store)
    try:
        _reports, refused = pipeline.ingest_paths(conn, [path], now=now)
        assert not refused, refused
    finally:
        conn.close()


def write_config(tmp_path: Path, port: int, users: str, extra: str = "") -> Path:
    """A config file in tmp_path pointing at a store, inbox and feeds folder there and at SMTP ``port``."""
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[digest]
store = "state/digest.db"
inbox = "inbox"
base_url = "https://digest.example.org"
secret_env = "DIGEST_SECRET"
catchup_max_age_days = 7
{extra}

[mail]
sender = "digest@example.org"
sender_name = "Paper Digest"
list_id = "daily.digest.example.org"
unsubscribe_mailto = "unsubscribe@example.org"

[smtp]
host = "127.0.0.1"
port = {port}
security = "none"
timeout = 10
max_connections = 2

[feeds]
output = "feeds"

[server]
listen = "127.0.0.1:{free_port()}"

{users}
""",
        encoding="utf-8",
    )
    (tmp_path / "inbox").mkdir(exist_ok=True)
    return path


def user_block(
    name: str, keywords: str, *, cadence: str = 'cadence = "daily"', tz: str = "UTC", send_time: str = "07:00"
) -> str:
    """One [[users]] table."""
    return f"""
[[users]]
name = "{name}"
email = "{name}@example.org"
keywords = {keywords}
{cadence}
send_time = "{send_time}"
timezone = "{tz}"
"""
