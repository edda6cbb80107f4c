"""Delivery state in the store: subscribers, runs, the outbox (one row per user per period) and the state of
each (user, paper): queued, delivered, archived or dropped (papers carried over are listed on their digest's row),
and which papers of a digest were "Also for you" suggestions, with the reason it gave (``shown_as``).

The outbox is what makes delivery exactly-once across crashes: a run commits each user's rendered message
here before it is sent. The body goes out without its end-of-data line; once the body is in the kernel the
row is committed *in flight, handed over* ('sending'), and only then is the "." line written: a server accepts
a message only on that line, so if the write fails the message is not sent. The row turns 'sent' and its
papers 'delivered' in the transaction that follows the server's 250, before any other work. After a crash
(kill -9, a store write that failed, a stop at the deadline):
  * a row never handed over was never accepted: it is sent again (same Message-ID and bytes);
  * a row handed over may have been accepted: it is sent again once, the only duplicate window (the
    server's end-of-data processing plus this process's commit); handed over a second time without a
    recorded reply, it is recorded as sent ("assumed accepted") and never sent a third time.
A message whose session breaks after the hand-over (no reply) is deferred and retried, which duplicates it
if the server did keep it: SMTP cannot tell, and the Message-ID is the same.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from digest.store.db import transaction
from digest.store.papers import get_papers

# Row statuses: 'pending' (written, not yet tried), 'sending' (in a session, outcome not recorded yet),
# 'deferred' (temporary failure, retried later), 'sent', 'failed' (permanent failure or too old to retry),
# 'empty' (no matching paper when the period was planned; it does not use the period up).
DUE_STATUSES = ("pending", "sending", "deferred")
# The same as SQL, spelled exactly as the partial index outbox_due's condition so that queries can use it.
_DUE = "(" + ", ".join(f"'{status}'" for status in DUE_STATUSES) + ")"
# A message handed over this many times with no recorded reply is assumed accepted, never sent again.
MAX_HANDOVERS = 2


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
    channel: str = "email"  # "email" or "webhook:<name>"
    lead_id: int | None = None  # the digest's lead row, for the rows of its other channels
    parts: int = 1  # messages this row goes out as (a long webhook digest is split)
    parts_done: int = 0  # of which accepted


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
        channel=row["channel"],
        lead_id=row["lead_id"],
        parts=row["parts"],
        parts_done=row["parts_done"],
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
    """True when the user's digest for this period was already written (sent or not). A period that had no
    matching paper ('empty') is not used up: papers arriving later in it are sent in it."""
    row = conn.execute(
        "SELECT 1 FROM outbox WHERE user = ? AND period = ? AND status != 'empty'", (user, period)
    ).fetchone()
    return row is not None


def add_message(
    conn: sqlite3.Connection,
    *,
    user: str,
    period: str,
    scheduled_at: datetime,
    window_from: datetime,
    run_id: int | None,
    papers_until: datetime,
    paper_keys: Sequence[str],
    message: bytes | None,
    message_id: str | None,
    sender: str | None,
    recipient: str | None,
    now: datetime,
    carried: Sequence[str] = (),
    dropped: Sequence[str] = (),
    archived: Sequence[str] = (),
    channel: str = "email",
    lead_id: int | None = None,
    parts: int = 1,
    suggested: Sequence[tuple[str, str]] = (),
) -> int | None:
    """Write one user's message for a period (or an 'empty' marker) inside the caller's transaction, with the
    state of its papers: ``paper_keys`` queued, ``carried`` (matched, left for the next digests, listed on the
    row), ``archived`` (matched, listed on the digest's archive page and not mailed: settled for good, in the
    order the page lists them after the mailed ones), ``dropped`` (matched, older than the catch-up window).
    Returns the row id, or None if the period already has one on this ``channel``.

    A digest goes out on each channel its user chose: the first row written is its lead (the papers' states
    above are recorded against it); the rows of its other channels carry the same ``paper_keys`` and name the
    lead in ``lead_id``. ``suggested``: (paper key, reason) of the lead's "Also for you" papers among
    ``paper_keys`` (the others are keyword matches), kept so that a page or feed rebuilt later says what the
    digest said, whatever the profile says by then."""
    status = "pending" if message is not None else "empty"
    values = (user, period, channel, lead_id, parts, _ts(scheduled_at), _ts(window_from), run_id, _ts(now),
              _ts(papers_until), json.dumps(list(paper_keys)), message_id, sender, recipient, status)  # fmt: skip
    # An 'empty' row of the period is replaced: it never blocks papers that arrive later in the period.
    # suggestions_known = 1: this row's suggestions are in outbox_suggestions (schema v9), none there if none.
    cur = conn.execute(
        "INSERT INTO outbox (user, period, channel, lead_id, parts, scheduled_at, window_from, run_id, created_at, "
        "papers_until, paper_keys, message_id, sender, recipient, status, suggestions_known) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1) "
        "ON CONFLICT (user, period, channel) DO UPDATE SET lead_id = excluded.lead_id, parts = excluded.parts, "
        "suggestions_known = 1, scheduled_at = excluded.scheduled_at, "
        "window_from = excluded.window_from, run_id = excluded.run_id, created_at = excluded.created_at, "
        "papers_until = excluded.papers_until, paper_keys = excluded.paper_keys, "
        "message_id = excluded.message_id, sender = excluded.sender, "
        "recipient = excluded.recipient, status = excluded.status WHERE outbox.status = 'empty'",
        values,
    )
    if cur.rowcount <= 0:
        return None
    # Not lastrowid: an upsert that updates leaves it unchanged (and RETURNING needs SQLite 3.35).
    row_id = int(
        conn.execute(
            "SELECT id FROM outbox WHERE user = ? AND period = ? AND channel = ?", (user, period, channel)
        ).fetchone()[0]
    )
    stamp = _ts(now)
    if message is not None:
        conn.execute("INSERT INTO outbox_messages (id, message) VALUES (?, ?)", (row_id, message))
    if lead_id is not None:  # the papers' states are the lead row's
        return row_id
    if suggested:
        listed = set(paper_keys)
        if stray := [key for key, _ in suggested if key not in listed]:
            raise ValueError(f"suggested papers not in the digest's paper_keys: {stray}")
        conn.executemany(
            "INSERT OR REPLACE INTO outbox_suggestions (id, paper_key, reason) VALUES (?, ?, ?)",
            [(row_id, key, reason) for key, reason in suggested],
        )
    if message is not None:
        # Only a user's latest digest's carried papers are read (`digest status`): older lists go.
        conn.execute(
            "DELETE FROM outbox_carried WHERE id IN (SELECT id FROM outbox WHERE user = ? AND id < ?)", (user, row_id)
        )
    if carried:
        conn.execute(
            "INSERT OR REPLACE INTO outbox_carried (id, paper_keys) VALUES (?, ?)", (row_id, json.dumps(list(carried)))
        )
    if archived:
        conn.executemany(
            "INSERT OR IGNORE INTO user_papers (user, paper_key, state, outbox_id, position, updated_at) "
            "VALUES (?, ?, 'archived', ?, ?, ?)",
            [(user, key, row_id, len(paper_keys) + i, stamp) for i, key in enumerate(archived)],
        )
    if dropped:
        conn.executemany(
            "INSERT OR IGNORE INTO user_papers (user, paper_key, state, outbox_id, updated_at) "
            "VALUES (?, ?, 'dropped', ?, ?)",
            [(user, key, row_id, stamp) for key in dropped],
        )
    return row_id


@dataclass(frozen=True, slots=True)
class LastDigest:
    """A user's latest planned digest: when it was scheduled, the window it looked at, up to when; and the
    oldest window of their digests that failed for good since their last sent one (their papers are back)."""

    scheduled_at: datetime
    papers_until: datetime
    window_from: datetime | None  # None for rows from before schema v4
    failed_from: datetime | None = None


def last_digests(conn: sqlite3.Connection, users: Sequence[str]) -> dict[str, LastDigest]:
    """Per user, their latest planned digest (rows from before schema v4 count from their creation)."""
    found = {}
    for user in users:
        # Rows are written period after period, so a user's latest is their highest id ('empty' rows count:
        # their period was planned, not missed); one index probe per due user, not a scan of all history.
        row = conn.execute(
            "SELECT coalesce(scheduled_at, created_at) AS at, papers_until, window_from FROM outbox "
            "WHERE user = ? ORDER BY id DESC LIMIT 1",
            (user,),
        ).fetchone()
        if row is None:
            continue
        failed = conn.execute(
            "SELECT min(coalesce(window_from, created_at)) FROM outbox WHERE user = ?1 AND status = 'failed' "
            "AND id > coalesce((SELECT max(id) FROM outbox WHERE user = ?1 AND status = 'sent'), 0)",
            (user,),
        ).fetchone()[0]
        found[user] = LastDigest(
            datetime.fromisoformat(row["at"]),
            datetime.fromisoformat(row["papers_until"]),
            datetime.fromisoformat(row["window_from"]) if row["window_from"] else None,
            datetime.fromisoformat(failed) if failed else None,
        )
    return found


def settled_among(conn: sqlite3.Connection, keys: Sequence[str], users: Sequence[str]) -> dict[str, set[str]]:
    """For these papers and users, per user, the papers out of the user's pool: queued, delivered, archived,
    dropped."""
    found: dict[str, set[str]] = {}
    rows = conn.execute(
        "SELECT user, paper_key FROM user_papers WHERE paper_key IN (SELECT value FROM json_each(?1)) "
        "AND user IN (SELECT value FROM json_each(?2)) UNION ALL SELECT o.user, j.value "
        f"FROM outbox AS o INDEXED BY outbox_due, json_each(o.paper_keys) AS j WHERE o.status IN {_DUE} "
        "AND o.user IN (SELECT value FROM json_each(?2)) AND j.value IN (SELECT value FROM json_each(?1))",
        (json.dumps(list(keys)), json.dumps(list(users))),
    )
    for row in rows:
        found.setdefault(row["user"], set()).add(row["paper_key"])
    return found


def user_paper_states(conn: sqlite3.Connection, user: str) -> list[dict[str, object]]:
    """Every paper matched for ``user`` that has not reached them by mail (queued, archived, dropped, and
    carried over by their latest digest), newest first, with its title: what `digest status --user` explains."""
    rows = [
        dict(r)
        for r in conn.execute(
            "SELECT u.paper_key, u.state, u.updated_at, p.title FROM user_papers AS u "
            # The IN term repeats the partial index's condition, which is how SQLite knows it may use it.
            "LEFT JOIN papers AS p ON p.key = u.paper_key WHERE u.user = ?1 AND u.state IN ('delivered', 'archived') "
            "AND u.state = 'archived' "
            "UNION ALL SELECT u.paper_key, u.state, u.updated_at, p.title FROM user_papers AS u "
            "LEFT JOIN papers AS p ON p.key = u.paper_key WHERE u.user = ?1 AND u.state = 'dropped' "
            # A digest due on several channels lists its papers once (UNION, not UNION ALL, for this part).
            "UNION SELECT j.value, 'queued', o.created_at, p.title FROM outbox AS o INDEXED BY outbox_due, "
            "json_each(o.paper_keys) AS j "
            f"LEFT JOIN papers AS p ON p.key = j.value WHERE o.user = ?1 AND o.status IN {_DUE} "
            "AND NOT EXISTS (SELECT 1 FROM user_papers AS d WHERE d.user = ?1 AND d.paper_key = j.value "
            "AND d.state = 'delivered') ORDER BY 3 DESC, 1",
            (user,),
        )
    ]
    latest = conn.execute(
        "SELECT coalesce(c.paper_keys, '[]') AS paper_keys, o.created_at FROM outbox AS o "
        "LEFT JOIN outbox_carried AS c ON c.id = o.id WHERE o.user = ? AND o.status != 'empty' "
        "AND o.lead_id IS NULL ORDER BY o.id DESC LIMIT 1",
        (user,),
    ).fetchone()
    if latest is not None:
        carried = [k for k in json.loads(latest["paper_keys"]) if k not in {r["paper_key"] for r in rows}]
        delivered = settled_among(conn, carried, [user]).get(user, set())
        titles = {p.paper.key: p.paper.title for p in get_papers(conn, carried)}
        rows += [
            {"paper_key": k, "state": "carried", "updated_at": latest["created_at"], "title": titles.get(k)}
            for k in carried
            if k not in delivered
        ]
    return rows


def load_message(conn: sqlite3.Connection, row_id: int) -> bytes:
    """The stored message bytes of one outbox row (loaded one at a time so a big run stays small in memory)."""
    row = conn.execute("SELECT message FROM outbox_messages WHERE id = ?", (row_id,)).fetchone()
    return bytes(row["message"]) if row and row["message"] is not None else b""


_META = (
    "id, user, period, status, recipient, sender, message_id, NULL AS message, paper_keys, attempts, last_code, "
    "last_reply, created_at, sent_at, run_id, channel, lead_id, parts, parts_done"
)


def due(conn: sqlite3.Connection, *, now: datetime, users: Sequence[str] | None = None) -> list[OutboxRow]:
    """Rows waiting to be sent now (pending, in flight when a run stopped, or deferred and past their next
    attempt), oldest first. ``message`` is not loaded (see ``load_message``)."""
    sql = (
        f"SELECT {_META} FROM outbox WHERE status IN {_DUE} "
        "AND user NOT IN (SELECT name FROM subscribers WHERE unsubscribed_at IS NOT NULL) "
        "AND (status = 'sending' OR next_attempt_at IS NULL OR next_attempt_at <= ?)"
    )
    params: list[object] = [_ts(now)]
    if users is not None:
        sql += " AND user IN (SELECT value FROM json_each(?))"
        params.append(json.dumps(list(users)))
    return [_row(r) for r in conn.execute(sql + " ORDER BY id", params)]


def expire(conn: sqlite3.Connection, *, now: datetime, max_age: timedelta) -> list[OutboxRow]:
    """Give up on pending or deferred rows older than ``max_age``: they become 'failed' and their papers return
    to the user's pool. Returns the rows given up."""
    too_old = "status IN ('pending', 'deferred') AND created_at < ?"
    params = (_ts(now - max_age),)
    with transaction(conn):
        rows = [_row(r) for r in conn.execute(f"SELECT {_META} FROM outbox WHERE {too_old}", params)]
        if not rows:
            return []
        conn.execute(
            "UPDATE outbox SET status = 'failed', last_reply = 'gave up: ' || coalesce(last_reply, 'not sent') "
            f"|| ' (older than the retry limit)' WHERE {too_old}",
            params,
        )
    return rows


def settle_handed_over(conn: sqlite3.Connection, *, now: datetime) -> list[OutboxRow]:
    """Rows handed over twice with no recorded reply (a crash, or the "sent" commit failing, twice) are
    recorded as sent, assumed accepted, instead of risking a third copy. Returns them."""
    where = f"status = 'sending' AND in_flight >= {MAX_HANDOVERS}"
    with transaction(conn):
        rows = [_row(r) for r in conn.execute(f"SELECT {_META} FROM outbox WHERE {where}")]
        for row in rows:
            if row.parts_done + 1 < row.parts:  # a part of a split message: the row goes on with the next part
                conn.execute(
                    "UPDATE outbox SET parts_done = parts_done + 1, in_flight = 0, handed_over = 0, "
                    "status = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'pending' END WHERE id = ?",
                    (row.id,),
                )
                continue
            _sent(conn, row.id, code=None, reply="assumed accepted: handed whole to the server twice without a "
                  "recorded reply; not sent a third time", stamp=_ts(now))  # fmt: skip
    return rows


def mark_progress(conn: sqlite3.Connection, row_id: int, parts_done: int) -> None:
    """Record that the first ``parts_done`` parts of a split message were accepted (a resend starts after them)."""
    with transaction(conn):
        conn.execute(
            "UPDATE outbox SET parts_done = max(parts_done, ?), in_flight = 0, handed_over = 0 WHERE id = ?",
            (int(parts_done), row_id),
        )


def mark_handed_over(conn: sqlite3.Connection, row_id: int, handed_over: bool) -> None:
    """Record the message as in flight, its end-of-data line about to be written (or, ``handed_over=False``,
    that the attempt that wrote it broke before a reply); raises if the store cannot be written, and then the
    line must not be written."""
    with transaction(conn):
        conn.execute(
            "UPDATE outbox SET status = 'sending', handed_over = ?, in_flight = max(in_flight + ?, 0) WHERE id = ?",
            (int(handed_over), 1 if handed_over else -1, row_id),
        )


def postpone(conn: sqlite3.Connection, ids: Sequence[int], *, until: datetime) -> None:
    """Hold rows still waiting (pending or deferred) until ``until`` without counting an attempt: their
    receiver asked to be left alone (HTTP 429 with Retry-After) while another of its messages was tried."""
    with transaction(conn):
        conn.execute(
            "UPDATE outbox SET next_attempt_at = max(coalesce(next_attempt_at, ''), ?) "
            "WHERE status IN ('pending', 'deferred') AND id IN (SELECT value FROM json_each(?))",
            (_ts(until), json.dumps(list(ids))),
        )


def release_in_flight(conn: sqlite3.Connection, ids: Sequence[int]) -> None:
    """Put rows left 'sending' but not handed over (a login refused, say) back to pending (or deferred)."""
    with transaction(conn):
        conn.execute(
            "UPDATE outbox SET status = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'pending' END "
            "WHERE status = 'sending' AND handed_over = 0 AND id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(ids)),),
        )


def _sent(conn: sqlite3.Connection, row_id: int, *, code: int | None, reply: str, stamp: str) -> None:
    conn.execute(
        "UPDATE outbox SET status = 'sent', attempts = attempts + 1, last_code = ?, last_reply = ?, sent_at = ?, "
        "next_attempt_at = NULL, in_flight = 0, handed_over = 0 WHERE id = ?",
        (code, reply, stamp, row_id),
    )
    # The row's papers become delivered, in the message's order (a feed shows them so), in one statement.
    conn.execute(
        "INSERT INTO user_papers (paper_key, user, state, outbox_id, position, updated_at) "
        "SELECT j.value, o.user, 'delivered', o.id, j.key, ?1 FROM outbox AS o, json_each(o.paper_keys) AS j "
        "WHERE o.id = ?2 ON CONFLICT (paper_key, user) DO UPDATE SET state = 'delivered', "
        "outbox_id = excluded.outbox_id, position = excluded.position, updated_at = excluded.updated_at "
        # A paper that reached the user on another channel first stays recorded against that row.
        "WHERE user_papers.state != 'delivered'",
        (stamp, row_id),
    )


def mark_sent(conn: sqlite3.Connection, row_id: int, *, code: int | None, reply: str, now: datetime) -> None:
    """The server accepted the message: the row is sent and its papers delivered, in one transaction."""
    with transaction(conn):
        _sent(conn, row_id, code=code, reply=reply, stamp=_ts(now))


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
    """Record a deferred (retry at ``retry_at``) or failed attempt with the server's reply. A failed row is no
    longer due, so its papers are back in the user's pool."""
    with transaction(conn):
        conn.execute(
            "UPDATE outbox SET status = ?, attempts = attempts + 1, last_code = ?, last_reply = ?, "
            "next_attempt_at = ?, in_flight = 0, handed_over = 0 WHERE id = ?",
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
    """Keys of the papers the user was shown most recently (what their Atom feed holds), newest digest first,
    each digest in its own order: delivered and archived papers, and those queued in rows still to be sent.
    A re-keyed paper stays in the feed (its state follows it)."""
    # Only the digests that can reach the feed are read: the shown papers of a user's latest digests, from
    # the one holding their ``limit``-th newest shown paper on (an index walk of ``limit`` entries), not their
    # whole history, which grows by a digest a day.
    # A digest still due on one channel may be delivered on another, or due on several: each paper is listed
    # once, at its digest's lead (first) row (min() picks the bare column ``pos`` from that row).
    rows = conn.execute(
        "SELECT k, min(oid) AS oid, pos FROM ("
        "SELECT paper_key AS k, outbox_id AS oid, position AS pos FROM user_papers WHERE user = ?1 "
        "AND state IN ('delivered', 'archived') "
        "AND outbox_id >= coalesce((SELECT outbox_id FROM user_papers WHERE user = ?1 "
        "AND state IN ('delivered', 'archived') ORDER BY outbox_id DESC LIMIT 1 OFFSET ?2 - 1), 0) "
        "UNION ALL SELECT j.value, coalesce(o.lead_id, o.id), j.key FROM outbox AS o INDEXED BY outbox_due, "
        f"json_each(o.paper_keys) AS j WHERE o.user = ?1 AND o.status IN {_DUE}"
        ") GROUP BY k ORDER BY oid DESC, pos LIMIT ?2",
        (user, int(limit)),
    )
    return [r[0] for r in rows]


def shown_as(conn: sqlite3.Connection, wanted: Mapping[str, Sequence[str]]) -> dict[str, dict[str, str | None]]:
    """Per user, what the digest that showed each of ``wanted[user]`` (paper keys: a feed's, say) recorded it as:
    the reason of an "Also for you" suggestion, or None for a keyword match. A paper shown by a digest written
    before schema v9 is left out: nothing was recorded, and the reader must infer it (or say nothing)."""
    wanted = {user: list(keys) for user, keys in wanted.items() if keys}
    if not wanted:
        return {}
    asked = {user: set(keys) for user, keys in wanted.items()}
    # The digest that showed a paper: the one it is recorded against (delivered or archived; maybe another
    # channel's row, whose lead holds the facts) or a due row listing it (queued). A paper shown twice (its
    # first digest failed on every channel) is taken at its first digest, as feed_keys lists it.
    # CROSS JOIN keeps SQLite to one primary-key probe per (user, paper) asked, instead of walking each user's
    # whole history through user_papers_feed.
    rows = conn.execute(
        "SELECT u.user, u.paper_key, coalesce(o.lead_id, o.id) FROM json_each(?1) AS w CROSS JOIN "
        "json_each(w.value) AS j CROSS JOIN user_papers AS u ON u.paper_key = j.value AND u.user = w.key "
        "JOIN outbox AS o ON o.id = u.outbox_id "
        "WHERE u.state IN ('delivered', 'archived') UNION ALL SELECT o.user, j.value, coalesce(o.lead_id, o.id) "
        f"FROM outbox AS o INDEXED BY outbox_due, json_each(o.paper_keys) AS j WHERE o.status IN {_DUE} "
        "AND o.user IN (SELECT key FROM json_each(?1))",
        (json.dumps(wanted),),
    )
    leads: dict[tuple[str, str], int] = {}
    for user, key, lead in rows:
        if key in asked[user]:
            leads[(user, key)] = min(lead, leads.get((user, key), lead))
    ids = json.dumps(sorted(set(leads.values())))
    known = {r[0] for r in conn.execute(
        "SELECT id FROM outbox WHERE id IN (SELECT value FROM json_each(?)) AND suggestions_known = 1", (ids,)
    )}  # fmt: skip
    reasons = {(r[0], r[1]): r[2] for r in conn.execute(
        "SELECT id, paper_key, reason FROM outbox_suggestions WHERE id IN (SELECT value FROM json_each(?))", (ids,)
    )}  # fmt: skip
    found: dict[str, dict[str, str | None]] = {}
    for (user, key), lead in leads.items():
        if lead in known:
            found.setdefault(user, {})[key] = reasons.get((lead, key))
    return found


def suggestions_of(conn: sqlite3.Connection, row_ids: Sequence[int]) -> dict[str, str]:
    """The "Also for you" papers (paper key -> reason) of the digests these outbox rows carry, as recorded
    against each digest's lead row (none for digests written before schema v9)."""
    rows = conn.execute(
        "SELECT g.paper_key, g.reason FROM outbox AS o JOIN outbox_suggestions AS g "
        "ON g.id = coalesce(o.lead_id, o.id) WHERE o.id IN (SELECT value FROM json_each(?)) ORDER BY g.id",
        (json.dumps([int(i) for i in row_ids]),),
    )
    return {r[0]: r[1] for r in rows}


def subscribers_added(conn: sqlite3.Connection) -> dict[str, datetime]:
    """When each known subscriber was first recorded."""
    return {row["name"]: datetime.fromisoformat(row["added_at"]) for row in conn.execute("SELECT * FROM subscribers")}
