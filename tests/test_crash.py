"""Crash safety with real processes: kill -9 or SIGTERM a `digest run` mid-send, run again, count the mail."""

from __future__ import annotations

import email
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from conftest import SECRET_ENV, Sink, user_block, write_config

USERS = [f"user{i}" for i in range(8)]


def _start_run(tmp_path: Path, port: int, seed: Path) -> subprocess.Popen[bytes]:
    users = "".join(user_block(name, "['LLM']") for name in USERS)
    config = write_config(tmp_path, port, users)
    shutil.copy(seed, tmp_path / "inbox" / seed.name)
    env = {**os.environ, **SECRET_ENV}
    return subprocess.Popen(
        [sys.executable, "-m", "digest", "--config", str(config), "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_for(sink: Sink, count: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while len(sink.messages) < count:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never reached the server"
        time.sleep(0.02)


def _rerun(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **SECRET_ENV}
    cmd = [sys.executable, "-m", "digest", "--config", str(tmp_path / "config.toml"), "run"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)


def _message_ids(sink: Sink) -> list[str]:
    return [email.message_from_bytes(data)["Message-ID"] for _, _, data in sink.messages]


def test_kill_9_mid_run_then_rerun_sends_the_rest_once(tmp_path: Path, sink: Sink, seeds: list[Path]) -> None:
    """After kill -9 mid-send the next run delivers every remaining digest; a resend keeps Message-ID and bytes."""
    sink.delay = 0.25  # slow server so the kill lands between messages
    proc = _start_run(tmp_path, sink.port, seeds[0])
    _wait_for(sink, 3, proc)
    proc.kill()
    proc.wait(timeout=10)
    first = len(sink.messages)
    assert first < len(USERS)
    sink.delay = 0.0
    done = _rerun(tmp_path)
    assert done.returncode == 0, done.stderr
    per_user = Counter(sink.recipients())
    assert set(per_user) == {f"{u}@example.org" for u in USERS}
    duplicates = sum(n - 1 for n in per_user.values())
    assert duplicates <= 2  # at most one per open connection (max_connections = 2)
    ids = _message_ids(sink)
    for user in (u for u, n in per_user.items() if n > 1):
        copies = [data for _, rcpts, data in sink.messages if rcpts == [user]]
        assert len(set(copies)) == 1  # same bytes, hence same Message-ID
    assert len(set(ids)) == len(USERS)
    total = len(sink.messages)
    assert _rerun(tmp_path).returncode == 0 and len(sink.messages) == total  # a third run sends nothing


def test_sigterm_mid_run_loses_nothing_and_sends_nothing_twice(tmp_path: Path, sink: Sink, seeds: list[Path]) -> None:
    """SIGTERM lets the current messages finish and commit; the next run sends exactly the rest."""
    sink.delay = 0.25
    proc = _start_run(tmp_path, sink.port, seeds[0])
    _wait_for(sink, 2, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and b"stopped by a signal" in err
    assert len(sink.messages) < len(USERS)
    sink.delay = 0.0
    assert _rerun(tmp_path).returncode == 0
    assert sorted(sink.recipients()) == sorted(f"{u}@example.org" for u in USERS)


def test_sigterm_with_a_silent_server_stops_within_ten_seconds(tmp_path: Path, sink: Sink, seeds: list[Path]) -> None:
    """A server that accepts connections and never answers: SIGTERM still ends the run within 10 s, nothing is
    marked sent, and the next run (server back) sends every digest once."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # the kernel completes the handshakes; nobody ever reads or writes
    silent.settimeout(60)
    try:
        users = "".join(user_block(name, "['LLM']") for name in USERS)
        config = write_config(tmp_path, silent.getsockname()[1], users)
        config.write_text(config.read_text().replace("timeout = 10", "timeout = 60"))
        shutil.copy(seeds[0], tmp_path / "inbox" / seeds[0].name)
        env = {**os.environ, **SECRET_ENV}
        cmd = [sys.executable, "-m", "digest", "--config", str(config), "run"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        conn, _ = silent.accept()  # the run is now waiting for a greeting that never comes
        time.sleep(0.5)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - started
        conn.close()
    finally:
        silent.close()
    assert took < 10, took
    assert proc.returncode == 1 and b"stopped by a signal" in err
    # The server is back: point the config at a real one.
    config.write_text(re.sub(r"(?m)^port = \d+$", f"port = {sink.port}", config.read_text(), count=1))
    assert _rerun(tmp_path).returncode == 0
    assert sorted(sink.recipients()) == sorted(f"{u}@example.org" for u in USERS)
    assert len(set(_message_ids(sink))) == len(USERS)


def test_sigterm_while_the_server_sits_on_end_of_data(tmp_path: Path, sink: Sink, seeds: list[Path]) -> None:
    """The server takes the whole message and never replies: SIGTERM ends the run within 10 s, the messages
    handed over stay in flight, and the next run sends each of them once more, with the same Message-ID."""
    sink.delay = 3600.0  # handle_DATA never returns while the run lives
    proc = _start_run(tmp_path, sink.port, seeds[0])
    db = tmp_path / "state" / "digest.db"
    deadline = time.monotonic() + 60
    while not _in_flight(db):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no message was ever handed over"
        time.sleep(0.05)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - started < 10
    assert proc.returncode == 1 and b"stopped by a signal" in err
    handed_over = _in_flight(db)
    assert handed_over and sink.messages == []
    sink.delay = 0.0
    assert _rerun(tmp_path).returncode == 0
    assert sorted(sink.recipients()) == sorted(f"{u}@example.org" for u in USERS)
    ids = _message_ids(sink)
    assert len(ids) == len(set(ids)) == len(USERS) and set(handed_over) <= set(ids)


def _in_flight(db: Path) -> list[str]:
    """Message-IDs of the rows handed over to the server with no reply recorded."""
    import sqlite3

    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=5)
    try:
        return [r[0] for r in conn.execute("SELECT message_id FROM outbox WHERE status = 'sending'")]
    except sqlite3.OperationalError:  # the run is still creating the schema
        return []
    finally:
        conn.close()
