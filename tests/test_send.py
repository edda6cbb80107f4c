"""`digest send` and pipeline.deliver_due: queued messages, retries of deferred ones, dry runs, permanent failures."""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import SECRET_ENV, Sink, run_once, user_block, write_config

from digest import config, pipeline, store
from digest.app.cli import main
from digest.store import delivery

ADA = user_block("ada", "['LLM', '\"language model\"']")
BOB = user_block("bob", "['kernel OR compiler']")


@pytest.fixture
def config_file(tmp_path: Path, sink: Sink, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two daily users pointed at the sink, and the secret in the environment (the CLI reads os.environ)."""
    for key, value in SECRET_ENV.items():
        monkeypatch.setenv(key, value)
    return write_config(tmp_path, sink.port, ADA + BOB)


@pytest.fixture
def cfg(config_file: Path) -> config.Config:
    """The loaded config."""
    return config.load_config(config_file)


def _recent() -> datetime:
    """A moment just before the wall clock `digest send` reads, so queued rows are neither due later nor too old."""
    return datetime.now(UTC) - timedelta(minutes=5)


def _queue(cfg: config.Config, seed: Path, now: datetime) -> pipeline.RunReport:
    """A run that ingests ``seed`` and queues the due digests without sending them (deliver=False)."""
    shutil.copy(seed, cfg.digest.inbox / seed.name)
    return run_once(cfg, now, deliver=False)


def _send(capsys: pytest.CaptureFixture[str], config_file: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--config", str(config_file), "send", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _outbox(cfg: config.Config) -> list[delivery.OutboxRow]:
    with contextlib.closing(store.open_store(cfg.digest.store)) as conn:
        return sorted(delivery.history(conn), key=lambda r: r.id)


def _state(cfg: config.Config) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Every outbox row (without message bytes) and every user_papers row, as plain tuples."""
    conn = sqlite3.connect(cfg.digest.store)
    try:
        outbox = [tuple(r) for r in conn.execute("SELECT * FROM outbox ORDER BY id")]
        papers = [tuple(r) for r in conn.execute("SELECT * FROM user_papers ORDER BY user, paper_key")]
        return outbox, papers
    finally:
        conn.close()


def test_send_delivers_what_a_run_queued_once_each(
    capsys: pytest.CaptureFixture[str], config_file: Path, cfg: config.Config, sink: Sink, seeds: list[Path]
) -> None:
    """Messages queued by a run with deliver=False go out on `digest send`, once each; a second send sends nothing."""
    report = _queue(cfg, seeds[0], _recent())
    assert report.sent == 0 and sink.messages == []
    assert sorted(r.status for r in _outbox(cfg)) == ["pending", "pending"]
    code, out, _ = _send(capsys, config_file)
    assert code == 0 and "2 sent, 0 deferred, 0 failed" in out
    assert sorted(sink.recipients()) == ["ada@example.org", "bob@example.org"]
    assert [r.status for r in _outbox(cfg)] == ["sent", "sent"]
    code, out, _ = _send(capsys, config_file, "--retry", "--json")
    assert code == 0 and json.loads(out) == {"sent": 0, "deferred": 0, "failed": 0, "errors": []}
    assert len(sink.messages) == 2


def test_send_user_limits_to_that_user(
    capsys: pytest.CaptureFixture[str], config_file: Path, cfg: config.Config, sink: Sink, seeds: list[Path]
) -> None:
    """`digest send --user bob` sends only bob's queued message; ada's stays pending for a later send."""
    _queue(cfg, seeds[0], _recent())
    code, out, _ = _send(capsys, config_file, "--user", "bob")
    assert code == 0 and "1 sent" in out and sink.recipients() == ["bob@example.org"]
    assert {r.user: r.status for r in _outbox(cfg)} == {"ada": "pending", "bob": "sent"}
    assert _send(capsys, config_file)[0] == 0
    assert sink.recipients() == ["bob@example.org", "ada@example.org"]


def test_deferred_message_waits_for_its_retry_time_and_retry(
    capsys: pytest.CaptureFixture[str], config_file: Path, cfg: config.Config, sink: Sink, seeds: list[Path]
) -> None:
    """A 451-deferred message is not resent by plain `digest send` nor before its retry time; --retry (through
    deliver_due at a later ``now``) sends it once when due."""
    start = _recent()
    _queue(cfg, seeds[0], start)
    sink.reject["ada@example.org"] = "451 4.3.0 try later"
    with contextlib.closing(store.open_store(cfg.digest.store)) as conn:
        first = pipeline.deliver_due(conn, cfg, SECRET_ENV, now=start, options=pipeline.RunOptions(users=("ada",)))
    assert (first.sent, first.deferred, first.failed) == (0, 1, 0)
    [ada] = [r for r in _outbox(cfg) if r.user == "ada"]
    assert (ada.status, ada.last_code, ada.attempts) == ("deferred", 451, 1)
    del sink.reject["ada@example.org"]  # the server is fine again
    code, out, _ = _send(capsys, config_file, "--user", "ada")  # plain send: deferred rows are not its business
    assert code == 0 and "0 sent" in out
    code, out, _ = _send(capsys, config_file, "--retry", "--user", "ada")  # retry time (start + 15 min) not come
    assert code == 0 and "0 sent" in out and sink.messages == []
    with contextlib.closing(store.open_store(cfg.digest.store)) as conn:
        plain = pipeline.deliver_due(conn, cfg, SECRET_ENV, now=start + timedelta(hours=1), retry_deferred=False)
        early = pipeline.deliver_due(conn, cfg, SECRET_ENV, now=start + timedelta(minutes=14))
        assert (plain.sent, early.sent) == (1, 0)  # plain: bob's pending message only
        assert sink.recipients() == ["bob@example.org"]
        due = pipeline.deliver_due(conn, cfg, SECRET_ENV, now=start + timedelta(minutes=16))
        again = pipeline.deliver_due(conn, cfg, SECRET_ENV, now=start + timedelta(hours=2))
    assert (due.sent, due.deferred, again.sent) == (1, 0, 0)
    assert sink.recipients() == ["bob@example.org", "ada@example.org"]
    [ada] = [r for r in _outbox(cfg) if r.user == "ada"]
    assert (ada.status, ada.attempts) == ("sent", 2)


def test_dry_run_writes_eml_and_changes_nothing(
    capsys: pytest.CaptureFixture[str],
    config_file: Path,
    cfg: config.Config,
    sink: Sink,
    seeds: list[Path],
    tmp_path: Path,
) -> None:
    """`digest send --dry-run --out DIR` writes each due message as .eml, sends nothing, leaves the store as it was."""
    _queue(cfg, seeds[0], _recent())
    before = _state(cfg)
    out_dir = tmp_path / "due"
    code, out, _ = _send(capsys, config_file, "--dry-run", "--out", str(out_dir))
    assert code == 0 and f"2 messages written to {out_dir}/ (dry run, nothing sent)" in out
    assert sink.messages == []
    assert _state(cfg) == before
    files = sorted(out_dir.glob("*.eml"))
    assert [f.name.split("-")[0] for f in files] == ["ada", "bob"]
    msg = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert msg["To"] == "ada@example.org" and msg.get_content_type() == "multipart/alternative"
    with contextlib.closing(store.open_store(cfg.digest.store)) as conn:
        stored = {r.user: delivery.load_message(conn, r.id) for r in delivery.history(conn)}
    assert files[0].read_bytes() == stored["ada"]
    code, out, _ = _send(capsys, config_file)  # the real send still has both to do
    assert code == 0 and "2 sent" in out and len(sink.messages) == 2


def test_permanent_failure_is_recorded_not_retried_and_in_status(
    capsys: pytest.CaptureFixture[str], config_file: Path, cfg: config.Config, sink: Sink, seeds: list[Path]
) -> None:
    """A 550 makes the message failed (exit 1); --retry never resends it; `digest status --json` reports it."""
    start = _recent()
    _queue(cfg, seeds[0], start)
    sink.reject["ada@example.org"] = "550 5.1.1 no such user"
    code, out, _ = _send(capsys, config_file)
    assert code == 1 and "1 sent, 0 deferred, 1 failed" in out
    del sink.reject["ada@example.org"]
    code, out, _ = _send(capsys, config_file, "--retry")
    assert code == 0 and "0 sent, 0 deferred, 0 failed" in out
    with contextlib.closing(store.open_store(cfg.digest.store)) as conn:
        later = pipeline.deliver_due(conn, cfg, SECRET_ENV, now=start + timedelta(hours=7))
    assert (later.sent, later.failed) == (0, 0)
    assert sink.recipients() == ["bob@example.org"]
    code = main(["--config", str(config_file), "status", "--json"])
    status = json.loads(capsys.readouterr().out)
    assert code == 0
    by_user = {m["user"]: m for m in status["messages"]}
    assert by_user["ada"]["status"] == "failed" and by_user["ada"]["last_code"] == 550
    assert "no such user" in by_user["ada"]["last_reply"] and by_user["bob"]["status"] == "sent"


def test_a_deferral_is_exit_1_and_says_so(
    capsys: pytest.CaptureFixture[str], config_file: Path, cfg: config.Config, sink: Sink, seeds: list[Path]
) -> None:
    """A message deferred by a temporary failure makes `digest send` exit 1 with a line saying what to do, as
    `digest run` does: a cron job must not take it for a success."""
    _queue(cfg, seeds[0], _recent())
    sink.reject["ada@example.org"] = "451 4.3.0 try later"
    code, out, err = _send(capsys, config_file, "--user", "ada")
    assert code == 1 and "0 sent, 1 deferred, 0 failed" in out
    assert "deferred by a temporary SMTP failure" in err and "--retry" in err


def test_unknown_user_is_refused(capsys: pytest.CaptureFixture[str], config_file: Path) -> None:
    """`digest send --user nobody` is a usage error naming the user, as `digest run` refuses it."""
    code, _out, err = _send(capsys, config_file, "--user", "nobody")
    assert code == 2 and "no such user(s): nobody" in err
