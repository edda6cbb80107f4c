"""The whole run against a real SMTP server and SQLite file: idempotence, cadences, catch-up, new users, DST."""

from __future__ import annotations

import contextlib
import email
import email.policy
import os
import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import SECRET_ENV, Sink, user_block, write_config

from digest import config, pipeline, store
from digest.errors import LockedError
from digest.store import delivery

ADA = user_block("ada", "['LLM', '\"language model\"']")
BOB = user_block("bob", "['kernel OR compiler']", cadence='cadence = "weekly"\nweekday = "mon"')


def _drop(cfg: config.Config, seed: Path) -> None:
    shutil.copy(seed, cfg.digest.inbox / seed.name)


def _run(cfg: config.Config, now: datetime, **options: object) -> pipeline.RunReport:
    return pipeline.run_once(cfg, SECRET_ENV, now=now, options=pipeline.RunOptions(**options))  # type: ignore[arg-type]


@pytest.fixture
def cfg(tmp_path: Path, sink: Sink) -> config.Config:
    """Two users (daily ada, weekly bob) pointed at the sink."""
    return config.load_config(write_config(tmp_path, sink.port, ADA + BOB))


MONDAY = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def test_run_sends_each_user_one_digest_and_is_idempotent(cfg: config.Config, sink: Sink, seeds: list[Path]) -> None:
    """One run sends one message per matched user; a second run sends nothing."""
    _drop(cfg, seeds[0])
    report = _run(cfg, MONDAY)
    assert (report.new_papers, report.sent, report.failed) == (82, 2, 0)
    assert sorted(sink.recipients()) == ["ada@example.org", "bob@example.org"]
    again = _run(cfg, MONDAY + timedelta(minutes=5))
    assert (again.new_papers, again.sent, len(again.dumps)) == (0, 0, 0)
    assert len(sink.messages) == 2


def test_sent_message_is_a_correct_multipart_mail(cfg: config.Config, sink: Sink, seeds: list[Path]) -> None:
    """The delivered bytes parse back with the headers and parts the standards ask for."""
    _drop(cfg, seeds[0])
    _run(cfg, MONDAY)
    raw = next(data for _, rcpts, data in sink.messages if rcpts == ["ada@example.org"])
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["To"] == "ada@example.org" and msg["Message-ID"].endswith("@digest.example.org>")
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "2026-11-23" in msg["Subject"] and "LLM" in msg.get_body(("plain",)).get_content()


def test_papers_are_delivered_only_after_acceptance(cfg: config.Config, sink: Sink, seeds: list[Path]) -> None:
    """A permanent 550 for one user records the failure, delivers nothing to them, and the other user gets mail."""
    sink.reject["ada@example.org"] = "550 5.1.1 no such user"
    _drop(cfg, seeds[0])
    report = _run(cfg, MONDAY)
    assert (report.sent, report.failed) == (1, 1)
    conn = store.open_store(cfg.digest.store)
    delivered = "SELECT count(*) FROM user_papers WHERE user = ? AND state = 'delivered'"
    assert conn.execute(delivered, ("ada",)).fetchone()[0] == 0
    assert conn.execute(delivered, ("bob",)).fetchone()[0] > 0
    [row] = delivery.history(conn, users=["ada"])
    assert (row.status, row.last_code) == ("failed", 550) and "no such user" in (row.last_reply or "")


def test_server_down_defers_and_a_later_run_delivers(tmp_path: Path, sink: Sink, seeds: list[Path]) -> None:
    """With the server unreachable messages are deferred, then sent by a run after the retry time."""
    from conftest import free_port

    down = config.load_config(write_config(tmp_path, free_port(), ADA))
    _drop(down, seeds[0])
    first = _run(down, MONDAY)
    assert (first.sent, first.deferred) == (0, 1)
    up = config.load_config(write_config(tmp_path, sink.port, ADA))
    assert _run(up, MONDAY + timedelta(minutes=1)).sent == 0  # not due again yet (backoff)
    assert _run(up, MONDAY + timedelta(hours=1)).sent == 1
    assert sink.recipients() == ["ada@example.org"]


def test_daily_and_weekly_cadences(cfg: config.Config, sink: Sink, seeds: list[Path]) -> None:
    """Daily ada gets a digest per day with new matches; weekly bob gets one per week holding the week's papers."""
    _drop(cfg, seeds[0])
    _run(cfg, MONDAY)  # Monday: both
    _drop(cfg, seeds[1])
    _run(cfg, MONDAY + timedelta(days=1))  # Tuesday: ada only
    _drop(cfg, seeds[2])
    _run(cfg, MONDAY + timedelta(days=2))  # Wednesday: ada only
    assert sink.recipients().count("bob@example.org") == 1
    assert sink.recipients().count("ada@example.org") == 3
    _run(cfg, MONDAY + timedelta(days=7))  # next Monday: bob's week, once
    assert sink.recipients().count("bob@example.org") == 2
    conn = store.open_store(cfg.digest.store)
    week2 = delivery.history(conn, users=["bob"])[0]
    assert week2.period == "2026-W49" and len(week2.paper_keys) > 0


def test_each_paper_reaches_a_user_once(cfg: config.Config, sink: Sink, seeds: list[Path]) -> None:
    """Across many runs no paper is delivered twice to the same user."""
    for day, seed in enumerate(seeds):
        _drop(cfg, seed)
        _run(cfg, MONDAY + timedelta(days=day))
    conn = store.open_store(cfg.digest.store)
    keys = [k for row in delivery.history(conn, users=["ada"]) for k in row.paper_keys]
    assert len(keys) == len(set(keys)) > 0


def test_catch_up_after_downtime_sends_one_digest(cfg: config.Config, sink: Sink, seeds: list[Path]) -> None:
    """After days without runs the next run sends one digest per user, not one per missed day."""
    _drop(cfg, seeds[0])
    _run(cfg, MONDAY, deliver=True)
    for seed in seeds[1:4]:
        _drop(cfg, seed)
        pipeline.run_once(
            cfg, SECRET_ENV, now=MONDAY + timedelta(hours=1), options=pipeline.RunOptions(users=("nobody",))
        )  # ingest only
    before = len(sink.messages)
    _run(cfg, MONDAY + timedelta(days=4))
    assert len(sink.messages) - before == 1  # ada once; bob's week is not over


def test_catch_up_drops_papers_older_than_the_limit(tmp_path: Path, sink: Sink, seeds: list[Path]) -> None:
    """After downtime, matching papers first seen more than catchup_max_age_days before the end of the first
    missed period are dropped, counted in the store; a weekly user loses nothing of the missed week itself."""
    weekly = user_block("ada", "['LLM', '\"language model\"']", cadence='cadence = "weekly"\nweekday = "mon"')
    path = write_config(tmp_path, sink.port, weekly)
    path.write_text(path.read_text().replace("catchup_max_age_days = 7", "catchup_max_age_days = 2"))
    cfg = config.load_config(path)
    _drop(cfg, seeds[0])
    assert _run(cfg, MONDAY).sent == 1  # week 48's digest
    _drop(cfg, seeds[1])
    pipeline.run_once(cfg, SECRET_ENV, now=MONDAY + timedelta(days=1), options=pipeline.RunOptions(deliver=False))
    # Down for two weeks: the next run is on week 50's Monday. The first missed period (week 49) ended on
    # MONDAY + 7 days at 07:00; with a 2-day limit, seed 1 (first seen on MONDAY + 1 day) is too old.
    before = len(sink.messages)
    _drop(cfg, seeds[2])  # arrives just before the catch-up run
    _run(cfg, MONDAY + timedelta(days=14))
    conn = store.open_store(cfg.digest.store)
    dropped = conn.execute("SELECT count(*) FROM user_papers WHERE user = 'ada' AND state = 'dropped'").fetchone()[0]
    seed1 = {sp.paper.key for sp in store.list_papers(conn, since=MONDAY + timedelta(hours=1),
                                                      until=MONDAY + timedelta(days=2))}  # fmt: skip
    sent_keys = {k for r in delivery.history(conn, users=["ada"]) if r.status == "sent" for k in r.paper_keys}
    assert dropped > 0 and not seed1 & sent_keys and len(sink.messages) == before + 1
    # The catch-up digest says how many older matching papers it left out.
    text = email.message_from_bytes(sink.messages[-1][2]).get_payload(0).get_payload(decode=True).decode()
    assert f"{dropped} older matching papers were not sent" in text


def test_new_user_gets_only_papers_after_joining(tmp_path: Path, sink: Sink, seeds: list[Path]) -> None:
    """With backfill_days = 0 a user added later gets only papers first seen after they were added."""
    cfg = config.load_config(write_config(tmp_path, sink.port, BOB, extra="backfill_days = 0"))
    _drop(cfg, seeds[0])
    _run(cfg, MONDAY)
    cfg2 = config.load_config(write_config(tmp_path, sink.port, BOB + ADA, extra="backfill_days = 0"))
    assert _run(cfg2, MONDAY + timedelta(hours=1)).sent == 0  # ada joined: no backfill of seed 0
    _drop(cfg2, seeds[1])
    assert _run(cfg2, MONDAY + timedelta(days=1)).sent == 1
    conn = store.open_store(cfg2.digest.store)
    first_seed_keys = {sp.paper.key for sp in store.list_papers(conn, until=MONDAY + timedelta(minutes=1))}
    [row] = [r for r in delivery.history(conn, users=["ada"]) if r.status == "sent"]
    assert not set(row.paper_keys) & first_seed_keys


def test_backfill_window_for_new_users(tmp_path: Path, sink: Sink, seeds: list[Path]) -> None:
    """With backfill_days a new user also gets papers first seen shortly before joining."""
    cfg = config.load_config(write_config(tmp_path, sink.port, BOB, extra="backfill_days = 3"))
    _drop(cfg, seeds[0])
    _run(cfg, MONDAY)
    cfg2 = config.load_config(write_config(tmp_path, sink.port, BOB + ADA, extra="backfill_days = 3"))
    assert _run(cfg2, MONDAY + timedelta(days=1)).sent == 1


def test_dst_fall_back_day_yields_one_digest(tmp_path: Path, sink: Sink, seeds: list[Path]) -> None:
    """A 02:30 Europe/Berlin job firing twice on the fall-back day sends one digest."""
    berlin = user_block("ada", "['LLM']", tz="Europe/Berlin", send_time="02:30")
    cfg = config.load_config(write_config(tmp_path, sink.port, berlin))
    _drop(cfg, seeds[0])
    first_fire = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
    second_fire = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 02:30 CET, an hour later
    assert _run(cfg, first_fire).sent == 1
    _drop(cfg, seeds[1])
    assert _run(cfg, second_fire).sent == 0
    assert len(sink.messages) == 1


def test_dry_run_writes_eml_and_changes_nothing(
    cfg: config.Config, sink: Sink, seeds: list[Path], tmp_path: Path
) -> None:
    """--dry-run writes the exact messages as .eml files; the store file and the server see nothing."""
    store.open_store(cfg.digest.store).close()
    before = cfg.digest.store.read_bytes()
    _drop(cfg, seeds[0])
    out = tmp_path / "dry"
    report = _run(cfg, MONDAY, dry_run=out)
    assert report.sent == 2 and sink.messages == []
    emls = sorted(p.name for p in out.glob("*.eml"))
    assert emls == ["ada-2026-11-23.eml", "bob-2026-W48.eml"]
    assert email.message_from_bytes((out / emls[0]).read_bytes())["To"] == "ada@example.org"
    assert cfg.digest.store.read_bytes() == before
    assert not cfg.feeds.output.exists()


def test_feeds_are_written_and_stable(cfg: config.Config, seeds: list[Path]) -> None:
    """The run writes the global and per-user feeds; a rerun with no change rewrites nothing."""
    import feedparser

    _drop(cfg, seeds[0])
    report = _run(cfg, MONDAY)
    assert sorted(Path(p).name for p in report.feeds_written) == ["ada.xml", "all.xml", "bob.xml"]
    parsed = feedparser.parse((cfg.feeds.output / "ada.xml").read_bytes())
    assert not parsed.bozo and len(parsed.entries) > 0
    assert _run(cfg, MONDAY + timedelta(minutes=1)).feeds_written == ()


def test_two_runs_at_once_do_not_overlap(cfg: config.Config) -> None:
    """While one run holds the lock a second one raises LockedError instead of running beside it."""
    with store.run_lock(cfg.digest.store), pytest.raises(LockedError):
        _run(cfg, MONDAY)


def test_concurrent_runs_send_each_digest_once(cfg: config.Config, sink: Sink, seeds: list[Path]) -> None:
    """Two runs started together (one waiting for the lock) send every digest exactly once."""
    _drop(cfg, seeds[0])
    results: list[object] = []

    def go() -> None:
        results.append(_run(cfg, MONDAY, wait_for_lock=True))

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and sorted(sink.recipients()) == ["ada@example.org", "bob@example.org"]


def test_unsubscribed_user_gets_no_mail(cfg: config.Config, sink: Sink, seeds: list[Path]) -> None:
    """After an unsubscribe a user receives nothing until resubscribed."""
    conn = store.open_store(cfg.digest.store)
    delivery.set_subscribed(conn, "ada", False, now=MONDAY)
    _drop(cfg, seeds[0])
    _run(cfg, MONDAY)
    assert sink.recipients() == ["bob@example.org"]
    delivery.set_subscribed(conn, "ada", True, now=MONDAY)
    _drop(cfg, seeds[1])
    _run(cfg, MONDAY + timedelta(days=1))
    assert "ada@example.org" in sink.recipients()


def test_refused_dump_is_reported_and_others_go_on(cfg: config.Config, sink: Sink, seeds: list[Path]) -> None:
    """A broken dump in the inbox is an error in the report; the good dump is still processed."""
    (cfg.digest.inbox / "0-broken.json").write_text('{"error": "Sorry"}')
    _drop(cfg, seeds[0])
    report = _run(cfg, MONDAY)
    assert report.new_papers == 82 and report.sent == 2
    assert len(report.errors) == 1 and "0-broken.json" in report.errors[0]


def test_refused_dump_moves_aside_and_is_reported_once(cfg: config.Config, sink: Sink, seeds: list[Path]) -> None:
    """A refused inbox dump moves to inbox/refused/ (the error says where); the next run does not refuse it again."""
    (cfg.digest.inbox / "0-broken.json").write_text('{"error": "Sorry"}')
    (cfg.digest.inbox / "refused").mkdir()
    (cfg.digest.inbox / "refused" / "0-broken.json").write_text("an older refused file")
    report = _run(cfg, MONDAY)
    moved = cfg.digest.inbox / "refused" / "0-broken.json.1"
    assert moved.read_text() == '{"error": "Sorry"}' and not (cfg.digest.inbox / "0-broken.json").exists()
    assert str(moved) in report.errors[0] and "move it back into the inbox" in report.errors[0]
    assert _run(cfg, MONDAY + timedelta(hours=1)).errors == ()


def test_ingested_inbox_files_are_not_read_again(cfg: config.Config, sink: Sink, seeds: list[Path]) -> None:
    """An inbox file ingested before (same name, size and mtime) is skipped unread by later runs; a file that
    changed is read again, and a copy of an ingested dump under a new name is read once, then remembered."""
    _drop(cfg, seeds[0])
    assert _run(cfg, MONDAY).new_papers == 82
    ingested = cfg.digest.inbox / seeds[0].name
    stat = ingested.stat()
    # Same size and mtime, other bytes: were the file read again, this garbage would be refused and moved.
    ingested.write_bytes(b"\x00" * stat.st_size)
    os.utime(ingested, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    report = _run(cfg, MONDAY + timedelta(hours=1))
    assert (report.errors, report.dumps) == ((), ()) and ingested.exists()
    # A copy of an ingested dump under another name: hashed once (already in the store), then skipped by name.
    shutil.copy(seeds[0], cfg.digest.inbox / "copy.txt")
    assert _run(cfg, MONDAY + timedelta(hours=2)).dumps == ()
    with contextlib.closing(store.open_store(cfg.digest.store)) as conn:
        assert "copy.txt" in store.known_inbox_files(conn)
    # A changed file (new mtime) is read again: here it is refused as binary.
    os.utime(ingested, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    report = _run(cfg, MONDAY + timedelta(hours=3))
    assert len(report.errors) == 1 and seeds[0].name in report.errors[0] and not ingested.exists()


def test_dry_run_leaves_a_refused_dump_in_place(cfg: config.Config, tmp_path: Path) -> None:
    """A dry run reports a broken inbox dump but moves nothing."""
    (cfg.digest.inbox / "0-broken.json").write_text('{"error": "Sorry"}')
    report = _run(cfg, MONDAY, dry_run=tmp_path / "out")
    assert len(report.errors) == 1 and (cfg.digest.inbox / "0-broken.json").exists()
    assert not (cfg.digest.inbox / "refused").exists()


def test_preview_never_writes(cfg: config.Config, seeds: list[Path]) -> None:
    """Preview from the store leaves the database file byte-identical."""
    _drop(cfg, seeds[0])
    pipeline.run_once(cfg, SECRET_ENV, now=MONDAY, options=pipeline.RunOptions(users=("nobody",)))
    before = cfg.digest.store.read_bytes()
    digest, _, _ = pipeline.preview_digest(cfg, SECRET_ENV, "ada", now=MONDAY, since=MONDAY.date())
    assert len(digest.matches) > 0
    assert cfg.digest.store.read_bytes() == before


def test_failed_login_stops_the_run_and_touches_no_row(tmp_path: Path, seeds: list[Path]) -> None:
    """A 535 at AUTH (over STARTTLS) aborts the run: rows stay pending, nothing is delivered, a fixed run sends."""
    import ssl

    import trustme
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword
    from conftest import free_port

    from digest.errors import DeliveryError

    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    handler = Sink()
    port = free_port()

    def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
        return AuthResult(success=auth_data == LoginPassword(b"digest", b"right"), handled=False)

    controller = Controller(
        handler, hostname="127.0.0.1", port=port, tls_context=server_tls, require_starttls=True,
        authenticator=authenticator, auth_required=True,
    )  # fmt: skip
    controller.start()
    try:
        path = write_config(tmp_path, port, ADA)
        text = path.read_text().replace('security = "none"', 'security = "starttls"\nusername = "digest"')
        path.write_text(text + "\n")
        cfg = config.load_config(path)
        _drop(cfg, seeds[0])
        wrong = {**SECRET_ENV, "DIGEST_SMTP_PASSWORD": "wrong"}
        with pytest.raises(DeliveryError):
            pipeline.run_once(cfg, wrong, now=MONDAY, options=pipeline.RunOptions(tls_context=client_tls))
        conn = store.open_store(cfg.digest.store)
        [row] = delivery.history(conn, users=["ada"])
        assert (row.status, row.attempts) == ("pending", 0)
        assert conn.execute("SELECT count(*) FROM user_papers WHERE state = 'delivered'").fetchone()[0] == 0
        right = {**SECRET_ENV, "DIGEST_SMTP_PASSWORD": "right"}
        report = pipeline.run_once(cfg, right, now=MONDAY, options=pipeline.RunOptions(tls_context=client_tls))
        assert report.sent == 1 and handler.recipients() == ["ada@example.org"]
    finally:
        controller.stop()


def test_default_store_honours_xdg_data_home(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, seeds: list[Path]
) -> None:
    """Without a config or --store, the store goes to $XDG_DATA_HOME/paper-digest/digest.db."""
    from digest.app.cli import main

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    assert main(["ingest", str(seeds[0])]) == 0
    assert (tmp_path / "data" / "paper-digest" / "digest.db").is_file()
    capsys.readouterr()


def test_empty_feed_file_is_rebuilt(cfg: config.Config, seeds: list[Path]) -> None:
    """A feed left empty (say by a power cut) is rewritten by the next run even with no new digest."""
    _drop(cfg, seeds[0])
    _run(cfg, MONDAY)
    ada = cfg.feeds.output / "ada.xml"
    good = ada.read_bytes()
    ada.write_bytes(b"")
    report = _run(cfg, MONDAY + timedelta(minutes=1))
    assert str(ada) in report.feeds_written and ada.read_bytes() == good


def test_queued_message_is_not_sent_after_unsubscribe(cfg: config.Config, sink: Sink, seeds: list[Path]) -> None:
    """A message queued (or deferred) before the user unsubscribed never goes out."""
    _drop(cfg, seeds[0])
    _run(cfg, MONDAY, deliver=False)
    conn = store.open_store(cfg.digest.store)
    delivery.set_subscribed(conn, "ada", False, now=MONDAY)
    _run(cfg, MONDAY + timedelta(minutes=1))
    assert sink.recipients() == ["bob@example.org"]


def test_stop_before_the_lock_is_granted_runs_nothing(cfg: config.Config, sink: Sink, seeds: list[Path]) -> None:
    """A run told to stop while it waited for the lock does no work (SIGTERM during `digest serve`)."""
    _drop(cfg, seeds[0])
    report = pipeline.run_once(cfg, SECRET_ENV, now=MONDAY, options=pipeline.RunOptions(stop=lambda: True))
    assert report.errors and report.new_papers == 0 and sink.messages == []


def test_sent_bodies_are_dropped_after_keep_sent_days(cfg: config.Config, sink: Sink, seeds: list[Path]) -> None:
    """A run drops the bodies of messages sent more than keep_sent_days (7) ago; rows and newer bodies stay."""
    _drop(cfg, seeds[0])
    _run(cfg, MONDAY)
    _drop(cfg, seeds[1])
    _run(cfg, MONDAY + timedelta(days=6))
    conn = store.open_store(cfg.digest.store)
    bodies = "SELECT count(*) FROM outbox JOIN outbox_messages USING (id) WHERE user = 'ada' AND status = 'sent'"
    assert conn.execute(bodies).fetchone()[0] == 2
    _run(cfg, MONDAY + timedelta(days=8))  # nothing new (papers carried over may still go out), and the prune
    cutoff = (MONDAY + timedelta(days=1)).isoformat()
    old = "SELECT count(*) FROM outbox JOIN outbox_messages USING (id) WHERE status = 'sent' AND sent_at < ?"
    assert conn.execute(old, (cutoff,)).fetchone()[0] == 0
    newer = "SELECT count(*) FROM outbox JOIN outbox_messages USING (id) WHERE status = 'sent' AND sent_at >= ?"
    assert conn.execute(newer, (cutoff,)).fetchone()[0] >= 1
    sent = [row for row in delivery.history(conn, users=["ada"]) if row.status == "sent"]
    assert len(sent) >= 2 and all(row.paper_keys for row in sent)
