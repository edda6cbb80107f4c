"""Delivery state in the store: subscribers, runs, the outbox (one row per user per period), deliveries.

The outbox is what makes delivery exactly-once across crashes: a run first commits each user's rendered
message here, then sends; the row turns 'sent' and the user's papers 'delivered' in the one transaction
that follows the server's 250 reply. The only duplicate window is between that 250 and the commit
(at most one message per open connection), and a resend then carries the same Message-ID and bytes.
A power cut or OS crash (not a killed process) can also undo the commits since the store's last WAL
checkpoint (synchronous=NORMAL, up to ~40 MB of WAL: a few hundred messages), which are then sent again,
with the same Message-IDs.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from digest.store import transaction

# Row statuses: 'pending' (written, not yet tried), 'deferred' (temporary failure, retried later),
# 'sent', 'failed' (permanent failure or too old to retry), 'empty' (period had no matching paper).
DUE_STATUSES = ("pending", "deferred")


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One user's message for one period, as stored."""

    id: int
    user: str
    period: str
    status: str
    recipient: str | None
    sender: str | None
    message_id: str | None
    message: bytes | None
    paper_keys: tuple[str, ...]
    attempts: int
    last_code: int | None
    last_reply: str | None
    created_at: datetime
    sent_at: datetime | None
    run_id: int | None


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds")


def _row(row: sqlite3.Row) -> OutboxRow:
    return OutboxRow(
        id=row["id"],
        user=row["user"],
        period=row["period"],
        status=row["status"],
        recipient=row["recipient"],
        sender=row["sender"],
        message_id=row["message_id"],
        message=row["message"],
        paper_keys=tuple(json.loads(row["paper_keys"])),
        attempts=row["attempts"],
        last_code=row["last_code"],
        last_reply=row["last_reply"],
        created_at=datetime.fromisoformat(row["created_at"]),
        sent_at=datetime.fromisoformat(row["sent_at"]) if row["sent_at"] else None,
        run_id=row["run_id"],
    )


def sync_subscribers(conn: sqlite3.Connection, names: Iterable[str], *, now: datetime) -> dict[str, datetime]:
    """Record users seen in the config for the first time; returns when each user was added."""
    with transaction(conn):
        conn.executemany(
            "INSERT OR IGNORE INTO subscribers (name, added_at) VALUES (?, ?)", ((n, _ts(now)) for n in names)
        )
    return {row["name"]: datetime.fromisoformat(row["added_at"]) for row in conn.execute("SELECT * FROM subscribers")}


def unsubscribed(conn: sqlite3.Connection) -> set[str]:
    """Names of users who unsubscribed."""
    return {r["name"] for r in conn.execute("SELECT name FROM subscribers WHERE unsubscribed_at IS NOT NULL")}


def set_subscribed(conn: sqlite3.Connection, user: str, subscribed: bool, *, now: datetime) -> bool:
    """Unsubscribe (or resubscribe) a user; returns whether anything changed."""
    with transaction(conn):
        conn.execute("INSERT OR IGNORE INTO subscribers (name, added_at) VALUES (?, ?)", (user, _ts(now)))
        if subscribed:
            cur = conn.execute(
                "UPDATE subscribers SET unsubscribed_at = NULL WHERE name = ? AND unsubscribed_at IS NOT NULL",
                (user,),
            )
        else:
            cur = conn.execute(
                "UPDATE subscribers SET unsubscribed_at = ? WHERE name = ? AND unsubscribed_at IS NULL",
                (_ts(now), user),
            )
    return cur.rowcount > 0


def start_run(conn: sqlite3.Connection, *, now: datetime) -> int:
    """Record the start of a run and return its id."""
    with transaction(conn):
        return int(conn.execute("INSERT INTO runs (started_at) VALUES (?)", (_ts(now),)).lastrowid or 0)


def finish_run(conn: sqlite3.Connection, run_id: int, status: str, summary: dict, *, now: datetime) -> None:
    """Record how a run ended."""
    with transaction(conn):
        conn.execute(
            "UPDATE runs SET finished_at = ?, status = ?, summary = ? WHERE id = ?",
            (_ts(now), status, json.dumps(summary), run_id),
        )


def has_period(conn: sqlite3.Connection, user: str, period: str) -> bool:
    """True when the user's digest for this period was already written (sent or not)."""
    return conn.execute("SELECT 1 FROM outbox WHERE user = ? AND period = ?", (user, period)).fetchone() is not None


def add_message(
    conn: sqlite3.Connection,
    *,
    user: str,
    period: str,
    run_id: int | None,
    papers_until: datetime,
    paper_keys: Sequence[str],
    message: bytes | None,
    message_id: str | None,
    sender: str | None,
    recipient: str | None,
    now: datetime,
) -> int | None:
    """Write one user's message for a period (or an 'empty' marker) inside the caller's transaction;
    returns the new row's id, or None if the period already has one."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO outbox (user, period, run_id, created_at, papers_until, paper_keys, message_id, "
        "sender, recipient, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            user,
            period,
            run_id,
            _ts(now),
            _ts(papers_until),
            json.dumps(list(paper_keys)),
            message_id,
            sender,
            recipient,
            "pending" if message is not None else "empty",
        ),
    )
    if cur.rowcount <= 0:
        return None
    if message is not None:
        conn.execute("INSERT INTO outbox_messages (id, message) VALUES (?, ?)", (cur.lastrowid, message))
    return cur.lastrowid


def watermarks(conn: sqlite3.Connection) -> dict[str, datetime]:
    """Per user, the first_seen bound up to which papers were already considered."""
    rows = conn.execute("SELECT user, max(papers_until) AS m FROM outbox GROUP BY user")
    return {r["user"]: datetime.fromisoformat(r["m"]) for r in rows}


def delivered_among(conn: sqlite3.Connection, keys: Sequence[str]) -> dict[str, set[str]]:
    """For these papers, which users already received which of them."""
    found: dict[str, set[str]] = {}
    rows = conn.execute(
        "SELECT user, paper_key FROM user_papers WHERE paper_key IN (SELECT value FROM json_each(?)) "
        "AND state IN ('delivered', 'archived', 'queued')",
        (json.dumps(list(keys)),),
    )
    for row in rows:
        found.setdefault(row["user"], set()).add(row["paper_key"])
    return found


def load_message(conn: sqlite3.Connection, row_id: int) -> bytes:
    """The stored message bytes of one outbox row (loaded one at a time so a big run stays small in memory)."""
    row = conn.execute("SELECT message FROM outbox_messages WHERE id = ?", (row_id,)).fetchone()
    return bytes(row["message"]) if row and row["message"] is not None else b""


_META = (
    "id, user, period, status, recipient, sender, message_id, NULL AS message, paper_keys, attempts, last_code, "
    "last_reply, created_at, sent_at, run_id"
)


def due(conn: sqlite3.Connection, *, now: datetime, users: Sequence[str] | None = None) -> list[OutboxRow]:
    """Rows waiting to be sent now (pending, or deferred and past their next attempt), oldest first.
    ``message`` is not loaded (see ``load_message``)."""
    sql = (
        f"SELECT {_META} FROM outbox WHERE status IN ('pending', 'deferred') "
        "AND user NOT IN (SELECT name FROM subscribers WHERE unsubscribed_at IS NOT NULL) "
        "AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
    )
    params: list[object] = [_ts(now)]
    if users is not None:
        sql += " AND user IN (SELECT value FROM json_each(?))"
        params.append(json.dumps(list(users)))
    return [_row(r) for r in conn.execute(sql + " ORDER BY id", params)]


def expire(conn: sqlite3.Connection, *, now: datetime, max_age: timedelta) -> int:
    """Mark deferred/pending rows older than ``max_age`` as failed; returns how many."""
    with transaction(conn):
        cur = conn.execute(
            "UPDATE outbox SET status = 'failed', last_reply = 'gave up: ' || coalesce(last_reply, 'not sent') "
            "|| ' (older than the retry limit)' WHERE status IN ('pending', 'deferred') AND created_at < ?",
            (_ts(now - max_age),),
        )
    return cur.rowcount


def mark_sent(
    conn: sqlite3.Connection,
    row_id: int,
    *,
    code: int | None,
    reply: str,
    now: datetime,
    user: str | None = None,
    paper_keys: Sequence[str] | None = None,
) -> None:
    """The server accepted the message: the row is sent and its papers delivered, in one transaction.

    ``user`` and ``paper_keys``, when the caller has the row at hand, save reading them back.
    """
    with transaction(conn):
        if user is None or paper_keys is None:
            row = conn.execute("SELECT user, paper_keys FROM outbox WHERE id = ?", (row_id,)).fetchone()
            user, paper_keys = row["user"], json.loads(row["paper_keys"])
        stamp = _ts(now)
        conn.execute(
            "UPDATE outbox SET status = 'sent', attempts = attempts + 1, last_code = ?, last_reply = ?, sent_at = ?, "
            "next_attempt_at = NULL WHERE id = ?",
            (code, reply, stamp, row_id),
        )
        conn.executemany(
            "INSERT INTO user_papers (user, paper_key, state, outbox_id, updated_at) VALUES (?, ?, 'delivered', ?, ?) "
            "ON CONFLICT (user, paper_key) DO UPDATE SET state = 'delivered', outbox_id = excluded.outbox_id, "
            "updated_at = excluded.updated_at",
            [(user, key, row_id, stamp) for key in paper_keys],
        )


def mark_failed(
    conn: sqlite3.Connection,
    row_id: int,
    *,
    status: str,
    code: int | None,
    reply: str,
    now: datetime,
    retry_at: datetime | None = None,
) -> None:
    """Record a deferred (retry at ``retry_at``) or failed attempt with the server's reply."""
    with transaction(conn):
        conn.execute(
            "UPDATE outbox SET status = ?, attempts = attempts + 1, last_code = ?, last_reply = ?, "
            "next_attempt_at = ? WHERE id = ?",
            (status, code, reply, _ts(retry_at) if retry_at else None, row_id),
        )


def history(conn: sqlite3.Connection, *, users: Sequence[str] | None = None, limit: int = 100) -> list[OutboxRow]:
    """Outbox rows, newest first (what `digest status` shows)."""
    sql = f"SELECT {_META} FROM outbox"
    params: list[object] = []
    if users is not None:
        sql += " WHERE user IN (SELECT value FROM json_each(?))"
        params.append(json.dumps(list(users)))
    return [_row(r) for r in conn.execute(sql + f" ORDER BY id DESC LIMIT {int(limit)}", params)]


def runs(conn: sqlite3.Connection, *, limit: int = 20) -> list[dict]:
    """The most recent runs with their summaries."""
    rows = conn.execute("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,))
    return [{**dict(r), "summary": json.loads(r["summary"])} for r in rows]


def prune_messages(conn: sqlite3.Connection, *, before: datetime) -> int:
    """Drop the bodies of messages sent, or failed for good, before ``before`` (their rows stay); how many."""
    # A body is only kept to show what went out; 10,000 users a day would otherwise add ~450 MB a day. SQLite
    # reuses the freed pages, so the file stops growing once the retention window is full. The scan starts
    # from the bodies still kept (a few days' worth), not from every row of the outbox's history.
    with transaction(conn):
        cur = conn.execute(
            # CROSS JOIN makes SQLite walk the kept bodies, not its status index over all of history.
            "DELETE FROM outbox_messages WHERE id IN (SELECT m.id FROM outbox_messages AS m CROSS JOIN outbox AS o "
            "ON o.id = m.id WHERE (o.status = 'sent' AND o.sent_at < ?1) "
            "OR (o.status = 'failed' AND o.created_at < ?1))",
            (_ts(before),),
        )
    return cur.rowcount


def feed_keys(conn: sqlite3.Connection, user: str, *, limit: int) -> list[str]:
    """Keys of the papers in the user's most recent digests (what their Atom feed shows), newest first."""
    keys: list[str] = []
    for row in conn.execute(
        "SELECT paper_keys FROM outbox WHERE user = ? AND status != 'empty' ORDER BY id DESC", (user,)
    ):
        for key in json.loads(row["paper_keys"]):
            if key not in keys:
                keys.append(key)
        if len(keys) >= limit:
            break
    return keys[:limit]
