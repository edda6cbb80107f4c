"""Atom entry ids fixed at first use, so no config change or re-keying makes readers show old entries again.

The tag authority of every id (``meta.feed_id_authority``) is recorded at the store's first feed write and read
back ever after, whatever ``[digest].base_url`` or ``[mail].sender`` say later. Each paper's entry id is recorded
in ``feed_ids`` the first time a feed shows it and reused from then on; ``store.ingest`` moves the row when a
text-scrape paper is re-keyed to its arXiv id, so the paper keeps the id of its text-scrape days.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Mapping, Sequence

from digest.store import db as store

__all__ = ["AUTHORITY_KEY", "authority", "load", "record", "record_authority"]

log = logging.getLogger(__name__)

AUTHORITY_KEY = "feed_id_authority"


def authority(conn: sqlite3.Connection) -> str | None:
    """The tag authority recorded at the first feed write, or None before it."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (AUTHORITY_KEY,)).fetchone()
    return None if row is None else str(row[0])


def record_authority(conn: sqlite3.Connection, value: str) -> str:
    """Record ``value`` as the tag authority unless one is recorded already; returns the one that holds."""
    with store.transaction(conn):
        conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (AUTHORITY_KEY, value))
        return str(conn.execute("SELECT value FROM meta WHERE key = ?", (AUTHORITY_KEY,)).fetchone()[0])


def load(conn: sqlite3.Connection, keys: Sequence[str]) -> dict[str, str]:
    """The recorded entry ids of these papers by paper key, in one query (never the whole table: it holds
    every paper any feed ever showed, and a run needs a few hundred of them)."""
    # One JSON object instead of a row per id: half the time of dict(cursor) on 30,000 ids (bench_feeds.py).
    row = conn.execute(
        "SELECT json_group_object(paper_key, entry_id) FROM feed_ids "
        "WHERE paper_key IN (SELECT value FROM json_each(?))",
        (json.dumps(list(keys)),),
    ).fetchone()
    ids: dict[str, str] = json.loads(row[0])
    return ids


def record(conn: sqlite3.Connection, ids: Mapping[str, str]) -> None:
    """Record these papers' entry ids (paper key -> id) in one transaction; ids already recorded are kept.

    Call it before the feed that first shows them is written: a feed on disk never holds an id the store
    does not know, so the next run gives the same one even if the paper is re-keyed in between."""
    if not ids:
        return
    with store.transaction(conn):
        cur = conn.executemany("INSERT OR IGNORE INTO feed_ids (paper_key, entry_id) VALUES (?, ?)", ids.items())
    if cur.rowcount != len(ids):
        # Another paper holds one of these ids (entry_id is UNIQUE; the caller passes only papers without one).
        # The feeds show the two papers as one entry, as they always did, and the next run derives the
        # unrecorded paper's id again the same way, so it does not move.
        log.warning("%d feed entry id(s) held by other papers, not recorded", len(ids) - cur.rowcount)
