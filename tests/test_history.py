"""Seven months of real daily dumps, run day by day: the delivery promise checked against a hindsight oracle.

The 157 weekday dumps of 2024 in ../shared/corpus/api_json_2024 (15 of them real broken dumps) arrive one
a day in the inbox; `digest run` runs every morning with a fixed clock, except during a two-week outage; a
daily user with a small max_papers (so digests overflow and carry papers over), a weekly user in another
time zone, a user with min_upvotes, and a user added half-way. What reached the SMTP server is then compared
with an oracle that does not use the pipeline: every stored paper re-matched against each profile in
hindsight, with the documented windows applied.
"""

from __future__ import annotations

import email
import shutil
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from conftest import CORPUS, SECRET_ENV, Sink, user_block, write_config

from digest import config, matching, pipeline, store
from digest.store import delivery

FIRST, LAST = date(2024, 5, 27), date(2024, 12, 31)
OUTAGE = (date(2024, 7, 15), date(2024, 7, 28))  # no run on these days; dumps still land in the inbox
LATE_USER_FROM = date(2024, 9, 2)
BACKFILL_DAYS = 7  # the default
CATCHUP_DAYS = 7

USERS = (
    user_block("ada", "['LLM', '\"language model\"']") + "max_papers = 3\n"
    + user_block("grace", "['diffusion', 'video']", cadence='cadence = "weekly"\nweekday = "fri"',
                 tz="America/New_York", send_time="16:30")
    + user_block("dave", "['agent*', 'benchmark']") + "min_upvotes = 20\n"
)  # fmt: skip
LATE = user_block("carol", "['reinforcement', 'RLHF', 'reward']")


def _config(tmp_path: Path, port: int, with_late_user: bool) -> config.Config:
    path = write_config(tmp_path, port, USERS + (LATE if with_late_user else ""))
    # No base_url, so no archive pages: papers over max_papers are carried over, the rule this oracle checks.
    path.write_text(path.read_text(encoding="utf-8").replace('base_url = "https://digest.example.org"\n', ""))
    return config.load_config(path)


def _keys_of_messages(conn, user: str) -> list[tuple[datetime, tuple[str, ...]]]:  # type: ignore[no-untyped-def]
    rows = [r for r in delivery.history(conn, users=[user], limit=100_000) if r.status == "sent"]
    return [(r.sent_at, r.paper_keys) for r in reversed(rows)]  # type: ignore[misc]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path) -> dict:  # type: ignore[type-arg]
    """Run every day from FIRST to LAST + 10 days once; the tests below read what happened."""
    from aiosmtpd.controller import Controller
    from conftest import free_port

    sink = Sink()
    sink.port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    tmp_path = tmp_path_factory.mktemp("history")
    added: dict[str, datetime] = {}
    try:
        day = FIRST
        while day <= LAST + timedelta(days=10):
            cfg = _config(tmp_path, sink.port, with_late_user=day >= LATE_USER_FROM)
            dump = corpus_dir / f"{day.isoformat()}.json"
            if dump.exists():
                shutil.copy(dump, cfg.digest.inbox / dump.name)
            if not OUTAGE[0] <= day <= OUTAGE[1]:
                now = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=7, minutes=30)
                pipeline.run_once(cfg, SECRET_ENV, now=now)
                for profile in cfg.profiles():
                    added.setdefault(profile.name, now)
            day += timedelta(days=1)
        conn = store.open_store(cfg.digest.store)
        yield {"cfg": cfg, "conn": conn, "sink": sink, "added": added}
        conn.close()
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def corpus_dir() -> Path:
    folder = CORPUS / "api_json_2024"
    if not folder.is_dir():
        pytest.skip("../shared/corpus/api_json_2024 is not beside this checkout")
    return folder


def _oracle(conn, profile: config.Profile, since: datetime) -> dict[str, datetime]:  # type: ignore[name-defined,no-untyped-def]
    """Every stored paper that matches the profile in hindsight, first seen at or after ``since``."""
    papers = [sp for sp in store.list_papers(conn) if sp.first_seen >= since]
    first_seen = {sp.paper.key: sp.first_seen for sp in papers}
    return {m.paper.key: first_seen[m.paper.key] for m in matching.match_profile(profile, [sp.paper for sp in papers])}


def test_every_message_reached_the_server_once(history: dict) -> None:  # type: ignore[type-arg]
    """One message per user and period, each Message-ID accepted once, as many as the store says were sent."""
    ids = Counter(email.message_from_bytes(data)["Message-ID"] for _, _, data in history["sink"].messages)
    assert ids and max(ids.values()) == 1
    sent = [r for r in delivery.history(history["conn"], limit=100_000) if r.status == "sent"]
    assert len(sent) == len(ids)
    assert len({(r.user, r.period) for r in sent}) == len(sent)


def test_no_paper_reaches_a_user_twice(history: dict) -> None:  # type: ignore[type-arg]
    """Across seven months of digests, no paper is in two messages to the same user."""
    for profile in history["cfg"].profiles():
        keys = [k for _, ks in _keys_of_messages(history["conn"], profile.name) for k in ks]
        assert keys and len(keys) == len(set(keys)), profile.name


def test_every_matching_paper_is_delivered_or_dropped_for_a_reason(history: dict) -> None:  # type: ignore[type-arg]
    """Hindsight: each matching paper in a user's window was delivered, or recorded as dropped because every
    digest sent while it was fresh was already full; nothing is silently lost."""
    conn = history["conn"]
    for profile in history["cfg"].profiles():
        since = history["added"][profile.name] - timedelta(days=BACKFILL_DAYS)
        expected = _oracle(conn, profile, since)
        messages = _keys_of_messages(conn, profile.name)
        delivered = {k for _, ks in messages for k in ks}
        states = {s["paper_key"]: s["state"] for s in delivery.user_paper_states(conn, profile.name)}
        dropped = {k for k, s in states.items() if s == "dropped"}
        assert not {k for k, s in states.items() if s in ("queued", "carried")}, profile.name  # all settled
        assert delivered <= set(expected) | set(), profile.name  # nothing outside the window or not matching
        lost = set(expected) - delivered - dropped
        assert not lost, (profile.name, sorted(lost)[:5])
        for key in dropped & set(expected):
            # Fresh for a digest whose period was scheduled at most CATCHUP_DAYS after the paper was first seen;
            # runs come at most 16 h after the scheduled time here (07:30 UTC; Friday 16:30 New York).
            fresh_until = expected[key] + timedelta(days=CATCHUP_DAYS, hours=16)
            during = [ks for at, ks in messages if expected[key] <= at <= fresh_until]
            assert all(len(ks) >= profile.max_papers for ks in during), (profile.name, key)


def test_the_daily_user_overflowed_and_caught_up(history: dict) -> None:  # type: ignore[type-arg]
    """The scenario exercises carry-over (full digests) and the outage (one catch-up digest, not a burst)."""
    messages = _keys_of_messages(history["conn"], "ada")
    assert sum(len(ks) == 3 for _, ks in messages) > 20
    outage_end = datetime.combine(OUTAGE[1], datetime.min.time(), UTC)
    after = [at for at, _ in messages if outage_end < at < outage_end + timedelta(days=2)]
    assert len(after) == 1


def test_the_weekly_user_gets_the_weeks_missed_during_the_outage(history: dict) -> None:  # type: ignore[type-arg]
    """Papers first seen in the weeks before and during the outage reach the weekly user after it."""
    conn = history["conn"]
    [grace] = [p for p in history["cfg"].profiles() if p.name == "grace"]
    start = datetime.combine(OUTAGE[0] - timedelta(days=7), datetime.min.time(), UTC)
    end = datetime.combine(OUTAGE[1] + timedelta(days=1), datetime.min.time(), UTC)
    in_outage = {k for k, seen in _oracle(conn, grace, start).items() if seen < end}
    delivered = {k for _, ks in _keys_of_messages(conn, "grace") for k in ks}
    assert in_outage and in_outage <= delivered


def test_the_late_user_gets_a_first_digest_and_no_older_history(history: dict) -> None:  # type: ignore[type-arg]
    """A user added half-way receives papers from their backfill window on, nothing from before."""
    conn = history["conn"]
    messages = _keys_of_messages(conn, "carol")
    joined = history["added"]["carol"]
    assert messages and messages[0][0] - joined < timedelta(days=1)
    first_seen = {sp.paper.key: sp.first_seen for sp in store.list_papers(conn)}
    assert all(first_seen[k] >= joined - timedelta(days=BACKFILL_DAYS) for _, ks in messages for k in ks)


def test_broken_real_dumps_were_refused_and_moved_aside(history: dict) -> None:  # type: ignore[type-arg]
    """The real broken dumps of December were refused once each and moved to inbox/refused/."""
    import hashlib

    inbox = history["cfg"].digest.inbox
    refused = list((inbox / "refused").iterdir())
    assert len(refused) == 15  # the corpus README's count of broken days
    left = [p for p in inbox.iterdir() if p.is_file()]
    assert left and all(store.is_ingested(history["conn"], hashlib.sha256(p.read_bytes()).hexdigest()) for p in left)
    by_user = defaultdict(int)
    for row in delivery.history(history["conn"], limit=100_000):
        by_user[row.user] += row.status == "failed"
    assert not any(by_user.values())
