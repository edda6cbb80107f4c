"""Relevance feedback in the store: each user's latest vote per paper (``ratings``) and the learned rankers'
per-user models (``ranker_state``), plus the two paper look-ups a vote by reference needs (arXiv id, title).

A vote is +1 (up) or -1 (down) with where it came from ('link', 'cli', 'import', 'eval') and when it was recorded.
A user has one vote per paper: a different vote replaces it (source and time with it); the same vote again
changes nothing, so a ranker that trains on the votes recorded since its last state never counts a repeat twice.
Times are kept to the microsecond: a state's ``votes_until`` and a vote cast in the same second stay ordered.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from digest.models import StoredPaper
from digest.store.db import transaction
from digest.store.papers import _PAPER_COLUMNS, _row_to_stored

__all__ = [
    "SOURCES",
    "Rating",
    "clear_ratings",
    "current_votes",
    "delete_vote",
    "load_states",
    "papers_by_arxiv_id",
    "papers_by_title_fp",
    "ratings_of",
    "record_vote",
    "record_votes",
    "save_states",
    "voters_since",
    "votes",
]

SOURCES = ("link", "cli", "import", "eval")


@dataclass(frozen=True, slots=True)
class Rating:
    """One stored vote, with the paper's title and arXiv id when the store still has the paper."""

    paper_key: str
    vote: int  # +1 or -1
    source: str
    at: datetime
    title: str | None
    arxiv_id: str | None


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _check(vote: int, source: str) -> None:
    if vote not in (-1, 1):
        raise ValueError(f"a vote is +1 or -1, not {vote!r}")
    if source not in SOURCES:
        raise ValueError(f"unknown vote source {source!r} (one of {', '.join(SOURCES)})")


def _upsert(conn: sqlite3.Connection, user: str, paper_key: str, vote: int, source: str, at: str) -> bool:
    # Replaced only by a different vote that is not older than the stored one (an import of old rows never
    # undoes a newer click); rowcount is 0 when the WHERE of DO UPDATE leaves the row as it is.
    cur = conn.execute(
        "INSERT INTO ratings (user, paper_key, vote, source, at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (user, paper_key) DO UPDATE SET vote = excluded.vote, source = excluded.source, "
        "at = excluded.at WHERE ratings.vote != excluded.vote AND excluded.at >= ratings.at",
        (user, paper_key, vote, source, at),
    )
    return cur.rowcount > 0


def record_vote(conn: sqlite3.Connection, user: str, paper_key: str, vote: int, source: str, now: datetime) -> bool:
    """Record ``user``'s vote on a paper in one transaction; whether it changed anything (a first vote, or a
    different one replacing the earlier; the same vote again is no change)."""
    _check(vote, source)
    with transaction(conn):
        return _upsert(conn, user, paper_key, vote, source, _ts(now))


def record_votes(
    conn: sqlite3.Connection, user: str, votes: Sequence[tuple[str, int]], source: str, now: datetime
) -> tuple[int, int, int]:
    """Record many (paper_key, vote) of one user in one transaction (all or nothing); returns how many were
    (new, changed, unchanged). A key given twice counts once, its last vote winning."""
    last = dict(votes)
    for vote in last.values():
        _check(vote, source)
    at = _ts(now)
    with transaction(conn):
        before = current_votes(conn, user, list(last))
        new = changed = 0
        for key, vote in last.items():
            if _upsert(conn, user, key, vote, source, at):
                if key in before:
                    changed += 1
                else:
                    new += 1
    return new, changed, len(last) - new - changed


def current_votes(conn: sqlite3.Connection, user: str, paper_keys: Sequence[str]) -> dict[str, int]:
    """``user``'s vote on each of these papers that has one."""
    rows = conn.execute(
        "SELECT paper_key, vote FROM ratings WHERE user = ? AND paper_key IN (SELECT value FROM json_each(?))",
        (user, json.dumps(list(paper_keys))),
    )
    return {row[0]: int(row[1]) for row in rows}


def delete_vote(conn: sqlite3.Connection, user: str, paper_key: str) -> bool:
    """Forget ``user``'s vote on one paper; whether there was one."""
    with transaction(conn):
        cur = conn.execute("DELETE FROM ratings WHERE user = ? AND paper_key = ?", (user, paper_key))
    return cur.rowcount > 0


def clear_ratings(conn: sqlite3.Connection, user: str) -> int:
    """Forget every vote of ``user`` and the ranker models trained on them; how many votes there were."""
    with transaction(conn):
        cur = conn.execute("DELETE FROM ratings WHERE user = ?", (user,))
        conn.execute("DELETE FROM ranker_state WHERE user = ?", (user,))
    return cur.rowcount


def votes(conn: sqlite3.Connection, users: Iterable[str]) -> dict[str, list[tuple[str, int, datetime]]]:
    """Per user (every one asked for, with or without votes), their votes as (paper_key, vote, at), oldest
    first. (Which users voted since their model is ``voters_since``: it needs no votes read.)"""
    names = list(dict.fromkeys(users))
    # Plain tuples, not the connection's sqlite3.Row: a retraining run reads every vote of its users.
    cursor = conn.cursor()
    cursor.row_factory = None
    rows = cursor.execute(
        "SELECT user, paper_key, vote, at FROM ratings WHERE user IN (SELECT value FROM json_each(?)) "
        "ORDER BY user, at, paper_key",
        (json.dumps(names),),
    )
    found: dict[str, list[tuple[str, int, datetime]]] = {name: [] for name in names}
    times: dict[str, datetime] = {}  # votes recorded together (an import, a batch) share one parse
    for user, key, vote, at in rows:
        when = times.get(at)
        if when is None:
            when = times[at] = datetime.fromisoformat(at)
        found[user].append((key, int(vote), when))
    return found


def voters_since(conn: sqlite3.Connection, since: Mapping[str, datetime | None]) -> set[str]:
    """Of the users in ``since``, those with a vote recorded after their time (any vote for None): which
    learned models are out of date, found without reading the votes themselves."""
    pairs = [[name, _ts(t) if t is not None else ""] for name, t in since.items()]
    rows = conn.execute(
        "SELECT json_extract(j.value, '$[0]') FROM json_each(?) AS j WHERE EXISTS (SELECT 1 FROM ratings AS r "
        "WHERE r.user = json_extract(j.value, '$[0]') AND r.at > json_extract(j.value, '$[1]'))",
        (json.dumps(pairs),),
    )
    return {row[0] for row in rows}


def ratings_of(conn: sqlite3.Connection, user: str) -> list[Rating]:
    """Every vote of ``user``, oldest first, with the paper's title and arXiv id (None for a paper no longer
    stored)."""
    rows = conn.execute(
        "SELECT r.paper_key, r.vote, r.source, r.at, p.title, p.arxiv_id FROM ratings AS r "
        "LEFT JOIN papers AS p ON p.key = r.paper_key WHERE r.user = ? ORDER BY r.at, r.paper_key",
        (user,),
    )
    return [Rating(row[0], int(row[1]), row[2], datetime.fromisoformat(row[3]), row[4], row[5]) for row in rows]


def load_states(conn: sqlite3.Connection, ranker: str, users: Iterable[str]) -> dict[str, tuple[bytes, datetime]]:
    """The ``ranker``'s saved model per user that has one: (state bytes, the time of the last vote it saw)."""
    rows = conn.execute(
        "SELECT user, state, votes_until FROM ranker_state WHERE ranker = ? "
        "AND user IN (SELECT value FROM json_each(?))",
        (ranker, json.dumps(list(users))),
    )
    return {row[0]: (bytes(row[1]), datetime.fromisoformat(row[2])) for row in rows}


def save_states(
    conn: sqlite3.Connection, ranker: str, states: Mapping[str, tuple[bytes, datetime]], now: datetime
) -> None:
    """Replace the ``ranker``'s model of each user given, all in one transaction."""
    stamp = _ts(now)
    with transaction(conn):
        conn.executemany(
            "INSERT INTO ranker_state (user, ranker, state, votes_until, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (user, ranker) DO UPDATE SET state = excluded.state, votes_until = excluded.votes_until, "
            "updated_at = excluded.updated_at",
            ((user, ranker, state, _ts(until), stamp) for user, (state, until) in states.items()),
        )


def papers_by_arxiv_id(conn: sqlite3.Connection, arxiv_ids: Iterable[str]) -> dict[str, StoredPaper]:
    """Stored papers by their (version-less) arXiv id; ids not stored are left out."""
    keys = [f"arxiv:{aid}" for aid in dict.fromkeys(arxiv_ids)]
    rows = conn.execute(
        f"SELECT {_PAPER_COLUMNS} FROM papers WHERE key IN (SELECT value FROM json_each(?))", (json.dumps(keys),)
    )
    return {row["key"].removeprefix("arxiv:"): _row_to_stored(row) for row in rows}


def papers_by_title_fp(conn: sqlite3.Connection, fingerprints: Iterable[str]) -> dict[str, StoredPaper]:
    """Stored papers by title fingerprint (``identity.title_fingerprint``); where two papers share a title
    (a re-post under a new arXiv id), the one first seen last."""
    rows = conn.execute(
        f"SELECT {_PAPER_COLUMNS} FROM papers WHERE title_fp IN (SELECT value FROM json_each(?)) "
        "ORDER BY first_seen, key",
        (json.dumps(sorted(set(fingerprints))),),
    )
    return {row["title_fp"]: _row_to_stored(row) for row in rows}
