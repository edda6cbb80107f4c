"""The delivery promise on real dumps: every matching paper reaches its user once, from the first run on.

Each test walks a path users walk (a first run, an overflowing digest, a paper that gains upvotes later, a
text scrape followed by the JSON of the same paper, a store that cannot be written) with a real SQLite store
and a real SMTP server, and checks what arrived in the server, not what the code believes it sent.
"""

from __future__ import annotations

import email
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import SECRET_ENV, Sink, ingest_file, run_once, user_block, write_config

from digest import config, pipeline, store
from digest.errors import StoreError
from digest.matching import match_profile
from digest.store import delivery

MONDAY = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
LLM = user_block("ada", "['LLM', '\"language model\"', 'agent*']")


def _carry_over_config(tmp_path: Path, port: int, users: str) -> Path:
    """A conftest config without [digest].base_url: no archive pages, so papers over max_papers are carried over."""
    path = write_config(tmp_path, port, users)
    path.write_text(path.read_text(encoding="utf-8").replace('base_url = "https://digest.example.org"\n', ""))
    return path


def _sent_keys(cfg: config.Config, user: str) -> list[str]:
    conn = store.open_store(cfg.digest.store)
    try:
        rows = [r for r in delivery.history(conn, users=[user], limit=10_000) if r.status == "sent"]
        return [k for r in reversed(rows) for k in r.paper_keys]  # oldest digest first
    finally:
        conn.close()


def _received(sink: Sink, user: str) -> list[email.message.Message]:
    return [email.message_from_bytes(data) for _, rcpts, data in sink.messages if f"{user}@example.org" in rcpts]


def _preview_keys(cfg: config.Config, user: str, now: datetime) -> list[str]:
    digest, cache, _links = pipeline.preview_digest(cfg, SECRET_ENV, user, now=now)
    mail = pipeline.preview_mail_settings(cfg, SECRET_ENV)
    email_ = pipeline.render_email(cfg, digest, cache, mail, now=now)
    return list(email_.paper_keys)


def _api_entry(arxiv_id: str, title: str, summary: str, upvotes: int, org: dict[str, str] | None = None) -> dict:
    """One daily-papers API entry, in the shape of the real ones in ../shared/corpus/api_json."""
    paper: dict[str, object] = {
        "id": arxiv_id,
        "authors": [{"name": "Mingyu Ouyang"}, {"name": "Siyuan Hu"}],
        "publishedAt": "2026-04-08T00:00:00.000Z",
        "submittedOnDailyAt": "2026-04-10T00:58:14.251Z",
        "title": title,
        "summary": summary,
        "upvotes": upvotes,
    }
    if org:
        paper["organization"] = org
    return {"paper": paper, "title": title, "summary": summary, "numComments": 0}


GAMEWORLD = (
    "2604.07429",
    "GameWorld: Towards Standardized and Verifiable Evaluation of Multimodal Game Agents",
    "Multimodal Large Language Model (MLLM) agents still suffer from challenging latency, sparse feedback, "
    "and irreversible mistakes. Video games offer an ideal testbed with rich visual observations.",
)
OTHER = ("2604.07001", "A Study of Sparse Kernels", "We measure sparse kernels on accelerators.")


def _dump(folder: Path, name: str, entries: list[dict]) -> Path:
    path = folder / name
    path.write_text(json.dumps(entries), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ 1. the first run


def test_first_run_sends_what_preview_showed(tmp_path: Path, sink: Sink, seeds: list[Path]) -> None:
    """README order: ingest, preview, run. The first run mails exactly the papers preview showed."""
    cfg = config.load_config(write_config(tmp_path, sink.port, LLM))
    ingest_file(cfg, seeds[0], MONDAY - timedelta(minutes=5))
    shown = _preview_keys(cfg, "ada", MONDAY)
    assert shown, "the sample dump has LLM papers"
    report = run_once(cfg, MONDAY)
    assert report.sent == 1 and len(_received(sink, "ada")) == 1
    assert _sent_keys(cfg, "ada") == shown


def test_first_run_on_the_real_api_dump(tmp_path: Path, sink: Sink, corpus: Path) -> None:
    """The issue's reproduction on the real 2026-04-10 API dump: a first digest with its matching papers."""
    cfg = config.load_config(write_config(tmp_path, sink.port, LLM))
    ingest_file(cfg, corpus / "api_json" / "2026-04-10.json", MONDAY - timedelta(minutes=5))
    shown = _preview_keys(cfg, "ada", MONDAY)
    assert run_once(cfg, MONDAY).sent == 1
    assert _sent_keys(cfg, "ada") == shown and len(shown) >= 5


def test_papers_before_the_backfill_window_are_not_offered(tmp_path: Path, sink: Sink, seeds: list[Path]) -> None:
    """A new user's first digest holds papers first seen within backfill_days (7) before they appeared, not older."""
    cfg = config.load_config(write_config(tmp_path, sink.port, LLM))
    ingest_file(cfg, seeds[0], MONDAY - timedelta(days=8))
    assert run_once(cfg, MONDAY).sent == 0
    ingest_file(cfg, seeds[1], MONDAY + timedelta(hours=1))
    assert run_once(cfg, MONDAY + timedelta(days=1)).sent == 1
    conn = store.open_store(cfg.digest.store)
    old = {sp.paper.key for sp in store.list_papers(conn, until=MONDAY - timedelta(days=7))}
    assert old and not old & set(_sent_keys(cfg, "ada"))


def test_a_period_with_nothing_sent_takes_papers_arriving_later(tmp_path: Path, sink: Sink, seeds: list[Path]) -> None:
    """An empty digest period does not use the period up: papers ingested later that day go out that day."""
    cfg = config.load_config(write_config(tmp_path, sink.port, LLM))
    assert run_once(cfg, MONDAY).sent == 0  # nothing ingested yet: the period is recorded empty
    shutil.copy(seeds[0], cfg.digest.inbox / seeds[0].name)
    report = run_once(cfg, MONDAY + timedelta(hours=3))
    assert report.sent == 1 and len(_received(sink, "ada")) == 1
    assert run_once(cfg, MONDAY + timedelta(hours=4)).sent == 0


@pytest.mark.parametrize("pages", [False, True], ids=["carry-over", "archive-pages"])
def test_preview_equals_run_across_states(tmp_path: Path, sink: Sink, seeds: list[Path], pages: bool) -> None:
    """Invariant: whenever a user is due, preview lists exactly what run then sends (carry-overs included; with
    archive pages, overflow is archived instead and the next previews do not offer it)."""
    users = LLM + "max_papers = 4\n" + user_block("bob", "['model']") + "max_papers = 2\nmin_upvotes = 3\n"
    write = write_config if pages else _carry_over_config
    cfg = config.load_config(write(tmp_path, sink.port, users))
    checked = 0
    for day, seed in enumerate([*seeds, None, None]):
        now = MONDAY + timedelta(days=day)
        if seed is not None:
            ingest_file(cfg, seed, now - timedelta(hours=2))
        previews = {name: _preview_keys(cfg, name, now) for name in ("ada", "bob")}
        before = {name: len(_sent_keys(cfg, name)) for name in ("ada", "bob")}
        run_once(cfg, now)
        for name in ("ada", "bob"):
            assert _sent_keys(cfg, name)[before[name] :] == previews[name], (day, name)
            checked += bool(previews[name])
    assert checked >= (7 if pages else 8)


# ------------------------------------------------------------------------------------------ 2. overflow


def test_papers_over_max_papers_are_carried_into_the_next_digests(
    tmp_path: Path, sink: Sink, seeds: list[Path]
) -> None:
    """With more matches than max_papers, the rest come in the next digests; none is lost or sent twice."""
    cfg = config.load_config(_carry_over_config(tmp_path, sink.port, LLM + "max_papers = 3\n"))
    ingest_file(cfg, seeds[0], MONDAY - timedelta(hours=1))
    conn = store.open_store(cfg.digest.store)
    profile = cfg.profiles()[0]
    papers = [sp.paper for sp in store.list_papers(conn)]
    matching = [m.paper.key for m in match_profile(profile, papers)]
    assert len(matching) > 6
    for day in range(len(matching)):
        run_once(cfg, MONDAY + timedelta(days=day))
    sent = _sent_keys(cfg, "ada")
    assert len(sent) == len(set(sent))  # each once
    states = delivery.user_paper_states(conn, "ada")
    dropped = {str(s["paper_key"]) for s in states if s["state"] == "dropped"}
    assert set(sent) | dropped == set(matching) and not set(sent) & dropped  # none lost silently
    # Every day of the catch-up window carried three; what was still waiting after it is recorded as dropped.
    assert len(sent) >= 3 * 7 and len(dropped) == len(matching) - len(sent)
    assert not [s for s in states if s["state"] == "carried"]


def test_status_says_what_was_matched_but_not_mailed(tmp_path: Path, sink: Sink, seeds: list[Path]) -> None:
    """`digest status --user` lists papers carried over (and why) after an overflowing digest."""
    from digest.app.cli import main

    path = _carry_over_config(tmp_path, sink.port, LLM + "max_papers = 2\n")
    cfg = config.load_config(path)
    ingest_file(cfg, seeds[0], MONDAY - timedelta(hours=1))
    run_once(cfg, MONDAY)
    conn = store.open_store(cfg.digest.store)
    carried = [s for s in delivery.user_paper_states(conn, "ada") if s["state"] == "carried"]
    assert carried
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["--config", str(path), "status", "--user", "ada"])
    assert code == 0
    text = out.getvalue()
    assert "carried over" in text and str(carried[0]["title"])[:30] in text


# ------------------------------------------------------------------------------------------ 4. updates, re-keys


def test_paper_crossing_min_upvotes_later_is_delivered_once(tmp_path: Path, sink: Sink) -> None:
    """2604.07429 had 2 upvotes, then 42 days later: a min_upvotes = 10 user gets it once, when it crosses."""
    cfg = config.load_config(write_config(tmp_path, sink.port, LLM + "min_upvotes = 10\n"))
    ingest_file(cfg, _dump(tmp_path, "d1.json", [_api_entry(*GAMEWORLD, 2), _api_entry(*OTHER, 50)]), MONDAY)
    assert run_once(cfg, MONDAY + timedelta(hours=1)).sent == 0
    meta = {"name": "showlab", "fullname": "Show Lab"}
    ingest_file(cfg, _dump(tmp_path, "d2.json", [_api_entry(*GAMEWORLD, 42, meta)]), MONDAY + timedelta(days=2))
    assert run_once(cfg, MONDAY + timedelta(days=3)).sent == 1
    assert _sent_keys(cfg, "ada") == ["arxiv:2604.07429"]
    # The older dump arrives again under another name: it must not lower the upvotes, nor resend.
    late = _dump(tmp_path, "d1-late.json", [_api_entry(*GAMEWORLD, 2), _api_entry(*OTHER, 51)])
    ingest_file(cfg, late, MONDAY + timedelta(days=4))
    conn = store.open_store(cfg.digest.store)
    [paper] = store.get_papers(conn, ["arxiv:2604.07429"])
    assert paper.paper.upvotes == 42 and paper.paper.org_handle == "showlab"
    assert run_once(cfg, MONDAY + timedelta(days=5)).sent == 0
    assert len(_received(sink, "ada")) == 1


def test_paper_updated_after_the_catch_up_window_is_not_sent(tmp_path: Path, sink: Sink) -> None:
    """A paper that starts to match only after it left the catch-up window is not offered (the window bounds it)."""
    cfg = config.load_config(write_config(tmp_path, sink.port, LLM + "min_upvotes = 10\n"))
    ingest_file(cfg, _dump(tmp_path, "d1.json", [_api_entry(*GAMEWORLD, 2)]), MONDAY)
    for day in range(20):  # running every day: no downtime to catch up on
        run_once(cfg, MONDAY + timedelta(days=day, hours=1))
    ingest_file(cfg, _dump(tmp_path, "d2.json", [_api_entry(*GAMEWORLD, 42)]), MONDAY + timedelta(days=20))
    assert run_once(cfg, MONDAY + timedelta(days=20, hours=1)).sent == 0


def test_rekeyed_text_paper_is_not_sent_again(tmp_path: Path, sink: Sink, seeds: list[Path]) -> None:
    """Delivered from a text scrape, then the API JSON of the same paper arrives: re-keyed, not resent."""
    cfg = config.load_config(write_config(tmp_path, sink.port, LLM))
    ingest_file(cfg, seeds[0], MONDAY - timedelta(hours=1))
    assert run_once(cfg, MONDAY).sent == 1
    conn = store.open_store(cfg.digest.store)
    key = _sent_keys(cfg, "ada")[0]
    [text_paper] = store.get_papers(conn, [key])
    assert key.startswith("title:")
    entry = _api_entry("2611.00001", text_paper.paper.title, text_paper.paper.abstract, 7)
    ingest_file(cfg, _dump(tmp_path, "same.json", [entry]), MONDAY + timedelta(hours=2))
    assert store.get_papers(conn, [key]) == []
    state = conn.execute(
        "SELECT state FROM user_papers WHERE user = 'ada' AND paper_key = 'arxiv:2611.00001'"
    ).fetchone()
    assert state["state"] == "delivered"
    assert run_once(cfg, MONDAY + timedelta(days=1)).sent <= 1
    assert "arxiv:2611.00001" not in _sent_keys(cfg, "ada")


# ------------------------------------------------------------------------------------------ store failures


def _queue(cfg: config.Config, seeds: list[Path]) -> None:
    shutil.copy(seeds[0], cfg.digest.inbox / seeds[0].name)
    run_once(cfg, MONDAY, deliver=False)


def test_a_store_that_cannot_be_written_sends_nothing(tmp_path: Path, sink: Sink, seeds: list[Path]) -> None:
    """If the in-flight record cannot be written, the message is not sent, and the error says what to fix."""
    cfg = config.load_config(write_config(tmp_path, sink.port, LLM))
    _queue(cfg, seeds)
    conn = store.open_store(cfg.digest.store)
    conn.execute("PRAGMA query_only = 1")  # every write fails as on a read-only store
    with pytest.raises(StoreError) as info:
        pipeline.deliver_due(conn, cfg, SECRET_ENV, now=MONDAY)
    assert "readonly" in str(info.value) and "writable" in (info.value.hint or "")
    assert sink.messages == []


def _fail_sent_commits(conn) -> None:  # type: ignore[no-untyped-def]
    # What a full disk does to the commit after the 250: the in-flight write went through, this one fails.
    conn.execute(
        "CREATE TEMP TRIGGER full_disk BEFORE UPDATE OF status ON outbox WHEN NEW.status = 'sent' "
        "BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END"
    )


def test_failed_sent_commit_resends_at_most_once(tmp_path: Path, sink: Sink, seeds: list[Path]) -> None:
    """The "sent" commit fails after the server's 250, run after run (disk full): the message goes out twice,
    never more; once the store can be written it is recorded as sent (assumed accepted)."""
    cfg = config.load_config(write_config(tmp_path, sink.port, LLM))
    _queue(cfg, seeds)
    errors = 0
    for _ in range(5):
        conn = store.open_store(cfg.digest.store)
        _fail_sent_commits(conn)
        try:
            pipeline.deliver_due(conn, cfg, SECRET_ENV, now=MONDAY)
        except StoreError as exc:
            errors += 1
            assert "disk is full" in str(exc) and "free disk space" in (exc.hint or "")
        conn.close()
    ids = [m["Message-ID"] for m in _received(sink, "ada")]
    assert errors == 5 and len(ids) == 2 and len(set(ids)) == 1
    assert run_once(cfg, MONDAY + timedelta(minutes=15)).sent == 0  # the disk has room again
    conn = store.open_store(cfg.digest.store)
    [row] = delivery.history(conn, users=["ada"])
    assert row.status == "sent" and "assumed accepted" in (row.last_reply or "")
    delivered = "SELECT count(*) FROM user_papers WHERE user = 'ada' AND state = 'delivered'"
    assert conn.execute(delivered).fetchone()[0] == len(row.paper_keys)
    assert len(_received(sink, "ada")) == 2


def test_failed_sent_commit_then_recovery_sends_once_more(tmp_path: Path, sink: Sink, seeds: list[Path]) -> None:
    """Once the disk has room again the next run resends the message handed over once, then it is sent."""
    cfg = config.load_config(write_config(tmp_path, sink.port, LLM))
    _queue(cfg, seeds)
    conn = store.open_store(cfg.digest.store)
    _fail_sent_commits(conn)
    with pytest.raises(StoreError):
        pipeline.deliver_due(conn, cfg, SECRET_ENV, now=MONDAY)
    conn.close()
    assert run_once(cfg, MONDAY + timedelta(minutes=15)).sent == 1
    assert run_once(cfg, MONDAY + timedelta(minutes=30)).sent == 0
    ids = [m["Message-ID"] for m in _received(sink, "ada")]
    assert len(ids) == 2 and len(set(ids)) == 1


def test_failed_hand_over_commit_sends_nothing_then_sends_once(tmp_path: Path, sink: Sink, seeds: list[Path]) -> None:
    """If the hand-over cannot be recorded, the end-of-data line is never written: the server discards the
    message; the next run (disk has room) sends it once."""
    cfg = config.load_config(write_config(tmp_path, sink.port, LLM))
    _queue(cfg, seeds)
    conn = store.open_store(cfg.digest.store)
    conn.execute(
        "CREATE TEMP TRIGGER full_disk BEFORE UPDATE OF handed_over ON outbox WHEN NEW.handed_over = 1 "
        "BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END"
    )
    with pytest.raises(StoreError) as info:
        pipeline.deliver_due(conn, cfg, SECRET_ENV, now=MONDAY)
    conn.close()
    assert "in flight" in str(info.value) and "free disk space" in (info.value.hint or "")
    assert sink.messages == []
    assert run_once(cfg, MONDAY + timedelta(minutes=15)).sent == 1
    assert len(_received(sink, "ada")) == 1


def test_gave_up_messages_fail_therun_once(tmp_path: Path, seeds: list[Path]) -> None:
    """A deferred message past max_retry_age_hours is given up: the run reports it as failed, with an error."""
    from conftest import free_port

    cfg = config.load_config(write_config(tmp_path, free_port(), LLM))  # nobody listens: deferred
    shutil.copy(seeds[0], cfg.digest.inbox / seeds[0].name)
    first = run_once(cfg, MONDAY)
    assert first.deferred == 1
    later = run_once(cfg, MONDAY + timedelta(hours=49))
    assert later.failed >= 1 and any("gave up" in e for e in later.errors)
    conn = store.open_store(cfg.digest.store)
    # Its papers went back to ada's pool, and the new period's digest (still unsent: no server) took them.
    [failed, queued] = delivery.history(conn, users=["ada"])[::-1]
    assert failed.status == "failed" and queued.status == "deferred"
    assert set(failed.paper_keys) <= set(queued.paper_keys)
    held = "SELECT count(*) FROM user_papers WHERE outbox_id = ? AND state = 'queued'"
    assert conn.execute(held, (failed.id,)).fetchone()[0] == 0


def test_send_exits_1_and_says_so_when_it_gives_up(tmp_path: Path, seeds: list[Path], capsys) -> None:  # type: ignore[no-untyped-def]
    """`digest send` on a message deferred past max_retry_age_hours: exit 1, the message given up is named."""
    import os

    from conftest import free_port

    from digest.app.cli import main

    path = write_config(tmp_path, free_port(), LLM)  # nobody listens: the message is deferred
    cfg = config.load_config(path)
    shutil.copy(seeds[0], cfg.digest.inbox / seeds[0].name)
    assert run_once(cfg, datetime.now(UTC) - timedelta(hours=49)).deferred == 1
    os.environ.update(SECRET_ENV)
    try:
        code = main(["--config", str(path), "send", "--retry"])
    finally:
        os.environ.pop("DIGEST_SECRET", None)
    captured = capsys.readouterr()
    assert code == 1
    assert "1 failed" in captured.out and "gave up on 1 digest(s) (ada)" in captured.err


# ------------------------------------------------------------------------------------------ windows (review cases)


def _with_catchup(tmp_path: Path, port: int, users: str, days: int) -> config.Config:
    path = write_config(tmp_path, port, users)
    path.write_text(path.read_text().replace("catchup_max_age_days = 7", f"catchup_max_age_days = {days}"))
    return config.load_config(path)


def _states(cfg: config.Config, user: str) -> dict[str, str]:
    conn = store.open_store(cfg.digest.store)
    try:
        rows = conn.execute("SELECT paper_key, state FROM user_papers WHERE user = ?", (user,))
        return {r["paper_key"]: r["state"] for r in rows}
    finally:
        conn.close()


AGENT = (OTHER[0], "An LLM agent paper", "LLM agents act.")


def test_papers_of_a_digest_given_up_are_offered_again_or_dropped(tmp_path: Path, sink: Sink) -> None:
    """The server defers for days and a digest is given up (48 h): its papers come back, and are delivered later
    or recorded as dropped once too old; never neither (catchup_max_age_days = 1 makes them too old fast)."""
    cfg = _with_catchup(tmp_path, sink.port, LLM, 1)
    start = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    ingest_file(cfg, _dump(tmp_path, "d0.json", [_api_entry(*GAMEWORLD, 5)]), start)
    sink.reject["ada@example.org"] = "451 4.3.0 try later"
    run_once(cfg, start + timedelta(hours=20))  # deferred, with the paper
    later = _api_entry("2604.09999", "An LLM agent study", "LLM agents.", 5)
    ingest_file(cfg, _dump(tmp_path, "d1.json", [later]), start + timedelta(days=1))
    run_once(cfg, start + timedelta(days=1, hours=20))  # deferred too
    run_once(cfg, start + timedelta(days=2, hours=21))  # the first is given up; its paper is back, and too old
    del sink.reject["ada@example.org"]
    for day in range(3, 6):
        run_once(cfg, start + timedelta(days=day, hours=21))
    state = _states(cfg, "ada").get("arxiv:2604.07429")
    assert state in ("delivered", "dropped"), "neither delivered nor dropped: silently lost"
    assert (state == "delivered") == ("arxiv:2604.07429" in _sent_keys(cfg, "ada"))


def test_a_monthly_digest_keeps_papers_older_than_the_catch_up_limit(tmp_path: Path, sink: Sink) -> None:
    """No period missed: a paper first seen on the 5th reaches a monthly (cron) user on the 1st, although the
    catch-up limit is 7 days."""
    users = user_block("ada", "['LLM', 'agent*']", cadence='cadence = "cron"\ncron = "0 7 1 * *"')
    users = users.replace('send_time = "07:00"\n', "")
    cfg = _with_catchup(tmp_path, sink.port, users, 7)
    start = datetime(2026, 11, 1, 7, 30, tzinfo=UTC)
    ingest_file(cfg, _dump(tmp_path, "d0.json", [_api_entry(*AGENT, 5)]), start - timedelta(hours=2))
    assert run_once(cfg, start).sent == 1
    ingest_file(cfg, _dump(tmp_path, "d1.json", [_api_entry(*GAMEWORLD, 5)]), datetime(2026, 11, 5, tzinfo=UTC))
    for day in range(1, 31):
        run_once(cfg, start + timedelta(days=day))
    assert "arxiv:2604.07429" in _sent_keys(cfg, "ada")


def test_a_weekly_digest_with_a_short_limit_keeps_its_week(tmp_path: Path, sink: Sink) -> None:
    """No period missed: a weekly user with catchup_max_age_days = 3 gets Tuesday's paper the next Monday."""
    users = user_block("ada", "['LLM', 'agent*']", cadence='cadence = "weekly"\nweekday = "mon"')
    cfg = _with_catchup(tmp_path, sink.port, users, 3)
    monday = datetime(2026, 11, 23, 7, 30, tzinfo=UTC)
    ingest_file(cfg, _dump(tmp_path, "d0.json", [_api_entry(*AGENT, 5)]), monday - timedelta(hours=2))
    run_once(cfg, monday)
    ingest_file(cfg, _dump(tmp_path, "d1.json", [_api_entry(*GAMEWORLD, 5)]), monday + timedelta(days=1))
    for day in range(1, 8):
        run_once(cfg, monday + timedelta(days=day))
    assert "arxiv:2604.07429" in _sent_keys(cfg, "ada")
