"""Crash safety of webhook delivery with real processes: kill -9 a `digest run` while a webhook request is in
flight, run again, and check the promise per channel: each digest reaches each user once by email and once on
the webhook (all its parts), the part in flight at the kill at most twice (Matrix: stored once, by txn id)."""

from __future__ import annotations

import email
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from conftest import SECRET_ENV, Sink, user_block, write_config
from webhook_server import Recorded, Reply, WebhookServer, serve

USERS = [f"user{i}" for i in range(6)]
NOW = "2026-11-23T07:05:00+00:00"  # DIGEST_NOW: every run plans the same period
SLOW = 0.4  # seconds the server holds each webhook answer in the killed run, so the kill lands in flight
# "26 new papers for user0 — 2026-11-23 (part 2 of 2)": the header every kind starts with.
HEADER = re.compile(r" for (?P<user>\S+) — (?P<period>\S+?)(?: \(part (?P<part>\d+) of (?P<parts>\d+)\))?(?::|$)")

SLACK = """
[[webhooks]]
name = "lab-slack"
kind = "slack"
url_env = "LAB_SLACK_URL"
"""

MATRIX = """
[[webhooks]]
name = "lab-matrix"
kind = "matrix"
homeserver = "{url}"
room_id = "!room:example.org"
token_env = "MATRIX_TOKEN"
"""


class Slow:
    """The server's default answer: success, held ``delay`` seconds (changed between runs)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def __call__(self, request: Recorded) -> Reply:
        return Reply(200, delay=self.delay)


def _setup(tmp_path: Path, sink: Sink, seed: Path, hook: str, hooks: str) -> list[str]:
    """Config and inbox for USERS with email and the webhook ``hook``; returns the command of a run."""
    # 'LLM' matches 26 papers of the first seed dump: 2 Slack messages (16 papers fill one); every other user
    # keeps 10, one message, so the digests in flight are of both sizes.
    users = "".join(
        user_block(name, "['LLM']") + f'max_papers = {40 if i % 2 == 0 else 10}\nwebhooks = ["{hook}"]\n'
        for i, name in enumerate(USERS)
    )
    config = write_config(tmp_path, sink.port, hooks + users)
    shutil.copy(seed, tmp_path / "inbox" / seed.name)
    return [sys.executable, "-m", "digest", "--config", str(config), "run"]


def _env(server: WebhookServer) -> dict[str, str]:
    return {
        **os.environ,
        **SECRET_ENV,
        "DIGEST_NOW": NOW,
        "LAB_SLACK_URL": f"{server.url}/services/T0/B0/secret",
        "MATRIX_TOKEN": "syt_secret",
    }


def _kill_in_flight(cmd: list[str], env: dict[str, str], server: WebhookServer, count: int) -> None:
    """Start a run, SIGKILL it once the server has seen ``count`` webhook requests (the last one unanswered)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(server.requests) < count:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run never reached the webhook"
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL


def _run(cmd: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def _rows(tmp_path: Path, channel: str) -> list[tuple[str, int, int, str]]:
    """(user, parts, parts_done, status) of each outbox row of ``channel``."""
    conn = sqlite3.connect(tmp_path / "state" / "digest.db", timeout=10)
    try:
        sql = "SELECT user, parts, parts_done, status FROM outbox WHERE channel = ? ORDER BY id"
        return [tuple(r) for r in conn.execute(sql, (channel,))]  # type: ignore[misc]
    finally:
        conn.close()


def _one_email_each(sink: Sink) -> None:
    """Every user got exactly one digest by email: one Message-ID each (a resend has the same one)."""
    ids: dict[str, set[str]] = {}
    for _, rcpts, data in sink.messages:
        for rcpt in rcpts:
            ids.setdefault(rcpt, set()).add(email.message_from_bytes(data)["Message-ID"])
    assert {user: len(found) for user, found in ids.items()} == {f"{u}@example.org": 1 for u in USERS}


def _part(text: str) -> tuple[str, int, int]:
    """(user, part, parts) from the first line of a webhook body's text."""
    found = HEADER.search(text.split("\n", 1)[0])
    assert found is not None, text[:200]
    return found["user"], int(found["part"] or 1), int(found["parts"] or 1)


def test_kill_9_while_a_slack_part_is_in_flight(tmp_path: Path, sink: Sink, seeds: list[Path]) -> None:
    """Killed while the second Slack request (part 2 of the first user's digest) waits for its answer: the next
    run resends that part only, then the rest; every user has one email and every part of their Slack digest,
    one body at most twice, one duplicate at most in all; a third run sends nothing."""
    slow = Slow(SLOW)
    with serve(slow) as server:
        cmd = _setup(tmp_path, sink, seeds[0], "lab-slack", SLACK)
        env = _env(server)
        _kill_in_flight(cmd, env, server, 2)
        killed = _rows(tmp_path, "webhook:lab-slack")
        # The kill left the first digest resuming from its second part, that part in flight.
        assert killed[0][1:] == (2, 1, "sending"), killed
        slow.delay = 0.0
        _run(cmd, env)
        _one_email_each(sink)
        rows = _rows(tmp_path, "webhook:lab-slack")
        assert [(user, status) for user, _, _, status in rows] == [(u, "sent") for u in USERS]
        assert {parts for _, parts, _, _ in rows} == {1, 2}  # split and whole digests both
        bodies = Counter(r.body for r in server.requests if r.method == "POST")
        assert max(bodies.values()) <= 2 and sum(n - 1 for n in bodies.values()) <= 1
        got = Counter(_part(r.json["text"]) for r in server.requests if r.method == "POST")
        expected = {(user, part, parts) for user, parts, _, _ in rows for part in range(1, parts + 1)}
        assert set(got) == expected  # every part of every digest arrived, nothing else
        assert sum(got.values()) - len(expected) <= 1
        seen = len(server.requests), len(sink.messages)
        _run(cmd, env)
        assert (len(server.requests), len(sink.messages)) == seen  # a third run sends nothing


def test_kill_9_while_a_matrix_put_is_in_flight(tmp_path: Path, sink: Sink, seeds: list[Path]) -> None:
    """Killed while a Matrix PUT waits for its answer (the homeserver has stored the event): the next run PUTs
    the same transaction id again, which the homeserver answers with the stored event; so the room holds each
    part of each digest exactly once."""
    slow = Slow(SLOW)
    with serve(slow) as server:
        cmd = _setup(tmp_path, sink, seeds[0], "lab-matrix", MATRIX.format(url=server.url))
        env = _env(server)
        _kill_in_flight(cmd, env, server, 2)
        in_flight = server.requests[-1].path
        assert [status for *_, status in _rows(tmp_path, "webhook:lab-matrix")][:2] == ["sent", "sending"]
        slow.delay = 0.0
        _run(cmd, env)
        _one_email_each(sink)
        rows = _rows(tmp_path, "webhook:lab-matrix")
        assert [(user, status) for user, _, _, status in rows] == [(u, "sent") for u in USERS]
        puts = Counter(r.path for r in server.requests if r.method == "PUT")
        assert puts[in_flight] == 2 and sum(puts.values()) == len(puts) + 1  # only the part in flight, again
        events = server.events
        assert set(events) == set(puts)  # one event per transaction id, the repeat stored nothing
        stored = Counter(_part(event["content"]["body"]) for event in events.values())
        expected = {(user, part, parts) for user, parts, _, _ in rows for part in range(1, parts + 1)}
        assert set(stored) == expected and set(stored.values()) == {1}  # each part exactly once
        seen = len(server.requests), len(sink.messages)
        _run(cmd, env)
        assert (len(server.requests), len(sink.messages)) == seen
