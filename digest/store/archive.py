"""Archive pages in the store: which digests have a page, what each lists, and how far the pages are written.

A digest's page is its lead outbox row's (see ``delivery``): the rows of its other channels carry the same
papers and are never listed twice."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from digest.store.db import transaction

ARCHIVE_FROM = "archive_from_outbox_id"  # meta: the first outbox row with an archive page (archive turned on)
ARCHIVE_DONE = "archive_done_outbox_id"  # meta: every row up to this id has its page written


@dataclass(frozen=True, slots=True)
class ArchivedDigest:
    """One digest as its archive page lists it: the mailed papers, then the archived ones."""

    id: int
    user: str
    period: str
    created_at: datetime
    paper_keys: tuple[str, ...]  # the mailed papers, in the message's order
    archived: tuple[str, ...] = ()  # the papers only the page lists, in its order
    # The mailed papers that were "Also for you" suggestions, (key, reason) in the message's order; the other
    # mailed papers were keyword matches. None for a digest written before schema v9, which recorded neither.
    suggested: tuple[tuple[str, str], ...] | None = None


def _meta_int(conn: sqlite3.Connection, key: str) -> int | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return int(row[0]) if row else None


def archive_marks(conn: sqlite3.Connection) -> tuple[int, int]:
    """(first row with a page, last row whose page is written), fixed at the first call: archive pages start
    with the rows written after it (a store's history from before is not rebuilt)."""
    start, done = _meta_int(conn, ARCHIVE_FROM), _meta_int(conn, ARCHIVE_DONE)
    if start is None or done is None:
        last = int(conn.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0])
        with transaction(conn):
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (ARCHIVE_FROM, str(last + 1)))
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (ARCHIVE_DONE, str(last)))
        start, done = _meta_int(conn, ARCHIVE_FROM), _meta_int(conn, ARCHIVE_DONE)
    assert start is not None and done is not None
    return start, done


def set_archive_done(conn: sqlite3.Connection, row_id: int) -> None:
    """Record that every row up to ``row_id`` has its archive page."""
    with transaction(conn):
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2 "
            "WHERE CAST(value AS INTEGER) < CAST(?2 AS INTEGER)",
            (ARCHIVE_DONE, str(int(row_id))),
        )


def archive_rows_after(conn: sqlite3.Connection, after: int) -> list[ArchivedDigest]:
    """Digests (rows with a message) written after row ``after``, oldest first, with their archived papers."""
    rows = conn.execute(
        "SELECT id, user, period, created_at, paper_keys, suggestions_known FROM outbox WHERE id > ? "
        "AND status != 'empty' AND lead_id IS NULL ORDER BY id",
        (int(after),),
    ).fetchall()
    return [_archived_digest(conn, r) for r in rows]


def _archived_digest(conn: sqlite3.Connection, row: sqlite3.Row) -> ArchivedDigest:
    archived = conn.execute(
        "SELECT paper_key FROM user_papers WHERE outbox_id = ? AND user = ? AND state = 'archived' ORDER BY position",
        (row["id"], row["user"]),
    )
    keys = tuple(json.loads(row["paper_keys"]))
    suggested = None
    if row["suggestions_known"]:
        reasons = dict(
            conn.execute("SELECT paper_key, reason FROM outbox_suggestions WHERE id = ?", (row["id"],)).fetchall()
        )
        suggested = tuple((key, reasons[key]) for key in keys if key in reasons)
    return ArchivedDigest(
        row["id"], row["user"], row["period"], datetime.fromisoformat(row["created_at"]),
        keys, tuple(r[0] for r in archived), suggested,
    )  # fmt: skip


def archive_count(conn: sqlite3.Connection, user: str, *, start: int) -> int:
    """How many of a user's digests (rows from ``start`` on) have an archive page."""
    return int(
        conn.execute(
            "SELECT count(*) FROM outbox WHERE user = ? AND id >= ? AND status != 'empty' AND lead_id IS NULL",
            (user, int(start)),
        ).fetchone()[0]
    )


def archive_index(
    conn: sqlite3.Connection, user: str, *, start: int, offset: int = 0, limit: int = -1
) -> list[tuple[int, str, datetime, int]]:
    """A user's digests with an archive page (rows from ``start`` on), oldest first, ``limit`` of them from the
    ``offset``-th: (row id, period, when written, papers listed). An index page reads its own rows only: the
    papers count is a query per row, and a user's archive grows by a digest a day."""
    rows = conn.execute(
        "SELECT o.id, o.period, o.created_at, json_array_length(o.paper_keys) + (SELECT count(*) FROM user_papers "
        "AS u WHERE u.outbox_id = o.id AND u.user = o.user AND u.state = 'archived') AS n FROM outbox AS o "
        "WHERE o.user = ? AND o.id >= ? AND o.status != 'empty' AND o.lead_id IS NULL ORDER BY o.id LIMIT ? OFFSET ?",
        (user, int(start), int(limit), int(offset)),
    )
    return [(r[0], r[1], datetime.fromisoformat(r[2]), int(r[3])) for r in rows]
