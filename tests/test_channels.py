"""The ledger across channels: the v7 migration keeps every row and guarantee, and a digest on several channels
is recorded once per channel while its papers are settled once per user."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from digest import store
from digest.store import delivery

DAY = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


def _v6_store(path: Path) -> None:
    """A store at schema v6 with outbox rows in every status, papers in every state and a carried list."""
    old = sqlite3.connect(path, isolation_level=None)
    for step, script in enumerate(store.MIGRATIONS[:6]):
        old.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {step + 1};\nCOMMIT;")
    stamp = DAY.isoformat(timespec="seconds")
    rows = [
        # (user, period, status, paper_keys, in_flight, handed_over, attempts)
        ("ada", "2026-11-20", "sent", ["a1", "a2"], 0, 0, 1),
        ("ada", "2026-11-21", "failed", ["a3"], 0, 0, 3),
        ("ada", "2026-11-22", "sending", ["a4"], 1, 1, 0),
        ("bob", "2026-11-22", "deferred", ["b1"], 0, 0, 1),
        ("bob", "2026-11-23", "pending", ["b2", "b3"], 0, 0, 0),
        ("cy", "2026-11-23", "empty", [], 0, 0, 0),
    ]
    old.execute("BEGIN")
    old.execute("INSERT INTO runs (id, started_at) VALUES (1, ?)", (stamp,))
    for i, (user, period, status, keys, in_flight, handed, attempts) in enumerate(rows, 1):
        old.execute(
            "INSERT INTO outbox (id, user, period, run_id, created_at, papers_until, paper_keys, message_id, sender, "
            "recipient, status, attempts, scheduled_at, in_flight, handed_over, window_from, next_attempt_at) "
            "VALUES (?, ?, ?, 1, ?, ?, ?, ?, 'd@x.org', ?, ?, ?, ?, ?, ?, ?, NULL)",
            (i, user, period, stamp, stamp, json.dumps(keys), f"<m{i}@x.org>", f"{user}@x.org", status, attempts,
             stamp, in_flight, handed, stamp),
        )  # fmt: skip
        if status in ("pending", "sending", "deferred"):
            old.execute("INSERT INTO outbox_messages (id, message) VALUES (?, ?)", (i, f"message {i}".encode()))
    old.executemany(
        "INSERT INTO user_papers (paper_key, user, state, outbox_id, position, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        [("a1", "ada", "delivered", 1, 0, stamp), ("a2", "ada", "delivered", 1, 1, stamp),
         ("a9", "ada", "archived", 1, 2, stamp), ("b0", "bob", "dropped", 4, 0, stamp)],
    )  # fmt: skip
    old.execute("INSERT INTO outbox_carried (id, paper_keys) VALUES (5, '[\"b4\"]')")
    old.execute("COMMIT")
    old.close()


def _snapshot(conn: sqlite3.Connection, table: str, columns: str = "*") -> list[tuple[object, ...]]:
    return [tuple(r) for r in conn.execute(f"SELECT {columns} FROM {table} ORDER BY 1, 2")]


def test_v6_store_keeps_every_row_and_guarantee_across_the_channel_migration(tmp_path: Path) -> None:
    """Every outbox row keeps its id and fields (now the email channel's), every paper state and message body
    stays, no reference breaks, and what is due, queued, in the feed or in flight is what it was."""
    path = tmp_path / "v6.db"
    _v6_store(path)
    raw = sqlite3.connect(path)
    v6_columns = [r[1] for r in raw.execute("PRAGMA table_info(outbox)")]
    before = {t: _snapshot(raw, t) for t in ("user_papers", "outbox_messages", "outbox_carried", "runs")}
    outbox_before = _snapshot(raw, "outbox", ", ".join(v6_columns))
    raw.close()

    conn = store.open_store(path)
    assert store.schema_version(conn) == len(store.MIGRATIONS) >= 7
    assert _snapshot(conn, "outbox", ", ".join(v6_columns)) == outbox_before
    assert {t: _snapshot(conn, t) for t in before} == before
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert {tuple(r) for r in conn.execute("SELECT channel, lead_id, parts, parts_done FROM outbox")} == {
        ("email", None, 1, 0)
    }
    due = delivery.due(conn, now=DAY + timedelta(days=1))
    assert [(r.user, r.period, r.status, r.channel) for r in due] == [
        ("ada", "2026-11-22", "sending", "email"),
        ("bob", "2026-11-22", "deferred", "email"),
        ("bob", "2026-11-23", "pending", "email"),
    ]
    assert delivery.load_message(conn, 5) == b"message 5"
    assert delivery.feed_keys(conn, "ada", limit=10) == ["a4", "a1", "a2", "a9"]
    assert delivery.settled_among(conn, ["a1", "a3", "a4", "b2"], ["ada", "bob"]) == {
        "ada": {"a1", "a4"},
        "bob": {"b2"},
    }
    assert delivery.has_period(conn, "bob", "2026-11-23") and not delivery.has_period(conn, "cy", "2026-11-23")
    # The row in flight is still the only duplicate window: handed over once more, it is assumed accepted.
    delivery.mark_handed_over(conn, 3, True)
    assert [r.id for r in delivery.settle_handed_over(conn, now=DAY)] == [3]
    assert conn.execute("SELECT state FROM user_papers WHERE paper_key = 'a4'").fetchone()[0] == "delivered"


def _queue(conn: sqlite3.Connection, channel: str, *, lead_id: int | None, parts: int = 1) -> int:
    with store.transaction(conn):
        row_id = delivery.add_message(
            conn, user="ada", period="2026-11-23", scheduled_at=DAY, window_from=DAY, run_id=None,
            papers_until=DAY, paper_keys=["p1", "p2"], message=channel.encode(), message_id=f"{channel}/m",
            sender=None, recipient=None, now=DAY, channel=channel, lead_id=lead_id, parts=parts,
            carried=["p3"] if lead_id is None else (),
        )  # fmt: skip
    assert row_id is not None
    return row_id


def test_a_digest_on_two_channels_is_one_row_each_and_its_papers_are_settled_once(store_path: Path) -> None:
    """The lead row and a webhook row share the papers; the feed and the queued list show each paper once;
    the first acceptance delivers them and the second does not move them; a third row for the same period and
    channel is refused."""
    conn = store.open_store(store_path)
    lead = _queue(conn, "email", lead_id=None)
    hook = _queue(conn, "webhook:lab", lead_id=lead, parts=3)
    with store.transaction(conn):
        again = delivery.add_message(
            conn, user="ada", period="2026-11-23", scheduled_at=DAY, window_from=DAY, run_id=None,
            papers_until=DAY, paper_keys=["p9"], message=b"x", message_id="x", sender=None, recipient=None,
            now=DAY, channel="webhook:lab", lead_id=lead,
        )  # fmt: skip
    assert again is None
    assert delivery.feed_keys(conn, "ada", limit=10) == ["p1", "p2"]
    states = delivery.user_paper_states(conn, "ada")
    assert sorted((s["paper_key"], s["state"]) for s in states) == [
        ("p1", "queued"),
        ("p2", "queued"),
        ("p3", "carried"),
    ]
    delivery.mark_progress(conn, hook, 2)
    delivery.mark_sent(conn, hook, code=200, reply="ok", now=DAY)
    delivery.mark_sent(conn, lead, code=250, reply="ok", now=DAY + timedelta(minutes=1))
    rows = conn.execute("SELECT paper_key, outbox_id FROM user_papers WHERE user = 'ada' ORDER BY 1").fetchall()
    assert [tuple(r) for r in rows] == [("p1", hook), ("p2", hook)]
    assert delivery.feed_keys(conn, "ada", limit=10) == ["p1", "p2"]
    # Archive pages list the digest once: its lead row.
    assert [d.id for d in store.archive.archive_rows_after(conn, 0)] == [lead]
    assert store.archive.archive_count(conn, "ada", start=0) == 1


def test_a_split_message_handed_over_twice_moves_on_to_its_next_part(store_path: Path) -> None:
    """A webhook part handed over twice with no reply is assumed accepted: the row resumes at the next part;
    on its last part the row is sent."""
    conn = store.open_store(store_path)
    lead = _queue(conn, "webhook:lab", lead_id=None, parts=2)
    for _ in range(2):
        delivery.mark_handed_over(conn, lead, True)
    delivery.settle_handed_over(conn, now=DAY)
    row = delivery.history(conn)[0]
    assert (row.status, row.parts_done) == ("pending", 1)
    for _ in range(2):
        delivery.mark_handed_over(conn, lead, True)
    delivery.settle_handed_over(conn, now=DAY)
    assert delivery.history(conn)[0].status == "sent"


def test_papers_return_to_the_pool_only_when_every_channel_gave_up(store_path: Path) -> None:
    """A digest that failed on email but is still due on a webhook keeps its papers out of the next digest;
    once the webhook fails for good too, they are back in the user's pool."""
    conn = store.open_store(store_path)
    lead = _queue(conn, "email", lead_id=None)
    hook = _queue(conn, "webhook:lab", lead_id=lead)
    delivery.mark_failed(conn, lead, status="failed", code=550, reply="no such user", now=DAY)
    assert delivery.settled_among(conn, ["p1", "p2"], ["ada"]) == {"ada": {"p1", "p2"}}
    delivery.mark_failed(conn, hook, status="failed", code=404, reply="no_service", now=DAY)
    assert delivery.settled_among(conn, ["p1", "p2"], ["ada"]) == {}
