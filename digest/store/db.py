"""The SQLite store itself: versioned migrations, opening, transactions, background checkpoints, the run lock.

Every write happens inside one transaction (``with conn:``), so a failed ingest leaves the store as it was.
Papers and dumps are in ``papers``; delivery state in ``delivery``; feed entry ids in ``feed_ids``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from digest.errors import LockedError, StoreError

log = logging.getLogger(__name__)

# Each entry migrates the schema from version i to i+1; never edit a released step, append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE dumps (
        sha256 TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        format TEXT NOT NULL,
        ingested_at TEXT NOT NULL,
        papers INTEGER NOT NULL,
        new_papers INTEGER NOT NULL,
        skipped TEXT NOT NULL DEFAULT '[]'
    ) WITHOUT ROWID;
    CREATE TABLE papers (
        key TEXT PRIMARY KEY,
        title_fp TEXT NOT NULL,
        arxiv_id TEXT,
        title TEXT NOT NULL,
        abstract TEXT NOT NULL,
        authors TEXT NOT NULL DEFAULT '[]',
        n_authors INTEGER,
        organization TEXT,
        published TEXT,
        published_text TEXT,
        upvotes INTEGER,
        url TEXT,
        first_seen TEXT NOT NULL,
        first_dump TEXT NOT NULL REFERENCES dumps(sha256),
        last_seen TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX papers_title_fp ON papers(title_fp);
    CREATE INDEX papers_first_seen ON papers(first_seen);
    CREATE TABLE sightings (
        paper_key TEXT NOT NULL,
        dump TEXT NOT NULL REFERENCES dumps(sha256),
        PRIMARY KEY (paper_key, dump)
    ) WITHOUT ROWID;
    """,
    # 2: delivery state. One outbox row per user per digest period; a paper is delivered to a user once.
    """
    CREATE TABLE subscribers (
        name TEXT PRIMARY KEY,
        added_at TEXT NOT NULL,
        unsubscribed_at TEXT
    ) WITHOUT ROWID;
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL DEFAULT 'running',
        summary TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        user TEXT NOT NULL,
        period TEXT NOT NULL,
        run_id INTEGER REFERENCES runs(id),
        created_at TEXT NOT NULL,
        papers_until TEXT NOT NULL,
        paper_keys TEXT NOT NULL DEFAULT '[]',
        message_id TEXT,
        sender TEXT,
        recipient TEXT,
        message BLOB,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_code INTEGER,
        last_reply TEXT,
        next_attempt_at TEXT,
        sent_at TEXT,
        UNIQUE (user, period)
    );
    CREATE INDEX outbox_status ON outbox(status, next_attempt_at);
    CREATE TABLE deliveries (
        user TEXT NOT NULL,
        paper_key TEXT NOT NULL,
        outbox_id INTEGER NOT NULL REFERENCES outbox(id),
        delivered_at TEXT NOT NULL,
        PRIMARY KEY (user, paper_key)
    ) WITHOUT ROWID;
    """,
    # v3: message bodies move to their own table. SQLite rewrites a whole row on UPDATE, so marking a row
    # with its ~45 KB body inline 'sent' wrote ~100 KB to the WAL, and a user's feed and watermark queries
    # read past the body of every row of their history (indexes now answer them: 1.9 ms -> 33 us per user
    # after 120 daily runs). Only bodies that may still be sent move (v2 kept every sent body forever; a
    # one-off VACUUM gives their space back to the disk). outbox.message stays, always NULL: DROP COLUMN
    # needs SQLite 3.35, newer than some distributions' Python.
    """
    CREATE TABLE outbox_messages (
        id INTEGER PRIMARY KEY REFERENCES outbox(id),
        message BLOB NOT NULL
    );
    INSERT INTO outbox_messages (id, message)
        SELECT id, message FROM outbox WHERE message IS NOT NULL AND status IN ('pending', 'deferred');
    UPDATE outbox SET message = NULL WHERE message IS NOT NULL;
    CREATE INDEX outbox_feed ON outbox(user, id, status, paper_keys) WHERE status != 'empty';
    CREATE INDEX outbox_until ON outbox(user, papers_until);
    """,
    # v4: per-(user, paper) delivery state instead of a per-user watermark (a watermark lost every matching
    # paper it moved past without sending: overflow, papers updated later, the window of a new user).
    # state: 'delivered' (its message was accepted), 'archived' (listed on an archive page, never mailed),
    # 'dropped' (matched, never delivered, now older than the catch-up window). A paper is *queued* while it is
    # in one of the user's outbox rows still to be sent (outbox.paper_keys of a pending, sending or deferred
    # row): those rows are few, and deriving the state from them keeps the queueing of 10,000 digests free of
    # 200,000 row writes, and the sent commit one statement. Papers carried over (matched, over max_papers,
    # offered again by the next digests) are listed once per digest (outbox_carried), not as rows here: a broad
    # profile carries dozens a day, and a row each cost 4x the whole outbox stage at 10,000 users. Not on the
    # outbox row either: its status changes twice per message, and SQLite rewrites a whole row on UPDATE.
    # outbox_feed (v3) indexed status and paper_keys, so every status change rewrote that index entry; feeds
    # now read user_papers, and the latest digest per user comes from outbox_user.
    # outbox.window_from: the first-seen bound of the digest's window (the next digest drops what left it).
    # outbox.scheduled_at: the period's scheduled time (catch-up windows count from the first missed period).
    # outbox.handed_over: the end-of-data line of its current attempt is written (the server may have it);
    # outbox.in_flight: times it was handed over with no reply recorded after (bounds resends after crashes).
    # user_papers is keyed paper first: a run asks "which users settled these papers?" for its pool, while
    # per-user questions (a feed, `digest status`) go through the partial indexes.
    # papers.org_handle: the Hugging Face organization name ("facebook") beside its display name.
    # feed_ids: an entry id fixed at first use (a re-keyed paper keeps it; config changes do not move it).
    """
    ALTER TABLE papers ADD COLUMN org_handle TEXT;
    ALTER TABLE outbox ADD COLUMN scheduled_at TEXT;
    ALTER TABLE outbox ADD COLUMN in_flight INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE outbox ADD COLUMN handed_over INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE outbox ADD COLUMN window_from TEXT;
    CREATE TABLE outbox_carried (
        id INTEGER PRIMARY KEY REFERENCES outbox(id),
        paper_keys TEXT NOT NULL
    );
    CREATE TABLE user_papers (
        paper_key TEXT NOT NULL,
        user TEXT NOT NULL,
        state TEXT NOT NULL,
        outbox_id INTEGER REFERENCES outbox(id),
        position INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (paper_key, user)
    ) WITHOUT ROWID;
    INSERT INTO user_papers (user, paper_key, state, outbox_id, updated_at)
        SELECT user, paper_key, 'delivered', outbox_id, delivered_at FROM deliveries ORDER BY paper_key, user;
    DROP TABLE deliveries;
    CREATE INDEX user_papers_outbox ON user_papers(outbox_id);
    CREATE INDEX user_papers_feed ON user_papers(user, outbox_id, position) WHERE state IN ('delivered', 'archived');
    CREATE INDEX outbox_due ON outbox(user) WHERE status IN ('pending', 'sending', 'deferred');
    DROP INDEX outbox_feed;
    CREATE INDEX outbox_user ON outbox(user, id);
    CREATE INDEX user_papers_dropped ON user_papers(user) WHERE state = 'dropped';
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE feed_ids (paper_key TEXT PRIMARY KEY, entry_id TEXT NOT NULL UNIQUE) WITHOUT ROWID;
    """,
    # v5: costs that grew with history. papers becomes a rowid table: WITHOUT ROWID suits small rows, but a
    # paper's row (its abstract) is ~1.6 KB, so each leaf page held two or three rows, half empty after
    # splits (47.8 MB where a rowid table takes 25.4 MB at 9.6k papers). Rows are copied in the order papers
    # were first seen, so a run's window (the newest papers) sits in the last pages of the file.
    # inbox_files: the name, size and mtime of each inbox file already ingested, so a run re-hashes only new
    # or changed files instead of every dump left in the inbox (a quarter of a daily run after 580 days).
    """
    CREATE TABLE papers_v5 (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        title_fp TEXT NOT NULL,
        arxiv_id TEXT,
        title TEXT NOT NULL,
        abstract TEXT NOT NULL,
        authors TEXT NOT NULL DEFAULT '[]',
        n_authors INTEGER,
        organization TEXT,
        published TEXT,
        published_text TEXT,
        upvotes INTEGER,
        url TEXT,
        first_seen TEXT NOT NULL,
        first_dump TEXT NOT NULL REFERENCES dumps(sha256),
        last_seen TEXT NOT NULL,
        org_handle TEXT
    );
    INSERT INTO papers_v5 (key, title_fp, arxiv_id, title, abstract, authors, n_authors, organization, published,
                           published_text, upvotes, url, first_seen, first_dump, last_seen, org_handle)
        SELECT key, title_fp, arxiv_id, title, abstract, authors, n_authors, organization, published,
               published_text, upvotes, url, first_seen, first_dump, last_seen, org_handle
        FROM papers ORDER BY first_seen, key;
    DROP TABLE papers;
    ALTER TABLE papers_v5 RENAME TO papers;
    CREATE INDEX papers_title_fp ON papers(title_fp);
    CREATE INDEX papers_first_seen ON papers(first_seen);
    CREATE TABLE inbox_files (
        name TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        sha256 TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # v6: what a digest shows of a paper beyond its abstract (API JSON and HTML dumps): Hugging Face's AI
    # summary, the code repository (with its stars) and the project page as two links (papers.url held
    # whichever came first, so a repository was labelled "project page"), the listing's thumbnail. papers.url
    # is split into the two and left NULL from now on (DROP COLUMN needs SQLite 3.35).
    """
    ALTER TABLE papers ADD COLUMN project_page TEXT;
    ALTER TABLE papers ADD COLUMN github_repo TEXT;
    ALTER TABLE papers ADD COLUMN github_stars INTEGER;
    ALTER TABLE papers ADD COLUMN ai_summary TEXT;
    ALTER TABLE papers ADD COLUMN thumbnail TEXT;
    UPDATE papers SET github_repo = url WHERE url LIKE 'https://github.com/%' OR url LIKE 'http://github.com/%';
    UPDATE papers SET project_page = url WHERE url IS NOT NULL AND github_repo IS NULL;
    UPDATE papers SET url = NULL WHERE url IS NOT NULL;
    """,
    # v7: the ledger learns channels. A digest (user, period) is delivered once per channel the user chose:
    # one outbox row per (user, period, channel), so UNIQUE (user, period) becomes (user, period, channel),
    # which SQLite can only change by rebuilding the table (every row and id is kept: other tables refer to
    # them). Every existing row is an email row. The digest's first row is its *lead*: the papers carried
    # over, archived and dropped are recorded against it, and archive pages list lead rows only; the other
    # channels' rows name it in lead_id. A webhook digest may go out as several messages: parts is how many,
    # parts_done how many were accepted, so a crash resumes at the part in flight instead of the first.
    """
    CREATE TABLE outbox_v7 (
        id INTEGER PRIMARY KEY,
        user TEXT NOT NULL,
        period TEXT NOT NULL,
        channel TEXT NOT NULL DEFAULT 'email',
        lead_id INTEGER REFERENCES outbox_v7(id),
        run_id INTEGER REFERENCES runs(id),
        created_at TEXT NOT NULL,
        papers_until TEXT NOT NULL,
        paper_keys TEXT NOT NULL DEFAULT '[]',
        message_id TEXT,
        sender TEXT,
        recipient TEXT,
        message BLOB,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_code INTEGER,
        last_reply TEXT,
        next_attempt_at TEXT,
        sent_at TEXT,
        scheduled_at TEXT,
        in_flight INTEGER NOT NULL DEFAULT 0,
        handed_over INTEGER NOT NULL DEFAULT 0,
        window_from TEXT,
        parts INTEGER NOT NULL DEFAULT 1,
        parts_done INTEGER NOT NULL DEFAULT 0,
        UNIQUE (user, period, channel)
    );
    INSERT INTO outbox_v7 (id, user, period, run_id, created_at, papers_until, paper_keys, message_id, sender,
                           recipient, message, status, attempts, last_code, last_reply, next_attempt_at, sent_at,
                           scheduled_at, in_flight, handed_over, window_from)
        SELECT id, user, period, run_id, created_at, papers_until, paper_keys, message_id, sender, recipient,
               message, status, attempts, last_code, last_reply, next_attempt_at, sent_at, scheduled_at,
               in_flight, handed_over, window_from
        FROM outbox ORDER BY id;
    DROP TABLE outbox;
    ALTER TABLE outbox_v7 RENAME TO outbox;
    CREATE INDEX outbox_status ON outbox(status, next_attempt_at);
    CREATE INDEX outbox_until ON outbox(user, papers_until);
    CREATE INDEX outbox_due ON outbox(user) WHERE status IN ('pending', 'sending', 'deferred');
    CREATE INDEX outbox_user ON outbox(user, id);
    """,
    # v8: relevance feedback. ratings: a user's latest vote on a paper (+1 up, -1 down) and where it came
    # from ('link' from a digest, 'cli', 'import', 'eval'); a vote replaces the user's earlier one on the
    # paper. ranker_state: a learned ranker's per-user model, kept between runs so that it updates with the
    # votes cast since, instead of being trained again from every vote.
    """
    CREATE TABLE ratings (
        user TEXT NOT NULL,
        paper_key TEXT NOT NULL,
        vote INTEGER NOT NULL CHECK (vote IN (-1, 1)),
        source TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (user, paper_key)
    ) WITHOUT ROWID;
    CREATE INDEX ratings_at ON ratings(user, at);
    CREATE TABLE ranker_state (
        user TEXT NOT NULL,
        ranker TEXT NOT NULL,
        state BLOB NOT NULL,
        votes_until TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (user, ranker)
    ) WITHOUT ROWID;
    """,
    # v9: what a digest showed as "Also for you". An archive page or a feed rebuilt later had to infer it ("a
    # shown paper the keywords do not match was a suggestion"), which mislabels papers once the profile changed
    # and has no reason to show. outbox_suggestions: the suggested papers of a digest (against its lead row, like
    # its other papers' states) with the reason it showed, stored as given and escaped where it is rendered;
    # their order is the row's paper_keys'.
    # Kept beside the outbox, not on its row: the row is rewritten on each status change. A digest shows at
    # most [[users]].suggestions of them (default 1): the table grows by that many rows per digest at most.
    # outbox.suggestions_known: 1 on every row written from v9 on (a lead row with none in outbox_suggestions
    # showed none); 0 on the rows from before, whose readers still infer. A row and not a meta mark: an 'empty'
    # row from before v9 can become a digest written after it, keeping its id. ADD COLUMN with a constant
    # default rewrites no row.
    """
    ALTER TABLE outbox ADD COLUMN suggestions_known INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE outbox_suggestions (
        id INTEGER NOT NULL REFERENCES outbox(id),
        paper_key TEXT NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (id, paper_key)
    ) WITHOUT ROWID;
    """,
)

WAL_AUTOCHECKPOINT_PAGES = 10000  # 40 MB of WAL between checkpoints (see open_store)


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the database (0 for a new file)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations, each in its own transaction; returns the resulting version."""
    version = schema_version(conn)
    if version > len(MIGRATIONS):
        raise StoreError(
            f"the store is at schema version {version}, newer than this paper-digest ({len(MIGRATIONS)})",
            "upgrade paper-digest, or point [digest].store at another file",
        )
    # A step that rebuilds a table (v5, v7) drops a table others refer to: foreign keys are checked after the
    # steps instead (the pragma cannot change inside a transaction), and a step that broke one is rolled back.
    enforced = bool(conn.execute("PRAGMA foreign_keys").fetchone()[0])
    conn.execute("PRAGMA foreign_keys=OFF")
    try:
        for step in range(version, len(MIGRATIONS)):
            # executescript commits implicitly, so the DDL, the check and the version bump go in one transaction.
            before = len(conn.execute("PRAGMA foreign_key_check").fetchall())
            conn.executescript(f"BEGIN;\n{MIGRATIONS[step]}\nPRAGMA user_version = {step + 1};")
            broken = conn.execute("PRAGMA foreign_key_check").fetchall()
            if len(broken) > before:  # only what the step broke: an old store may carry a dangling row already
                conn.execute("ROLLBACK")
                raise StoreError(
                    f"migrating the store to schema version {step + 1} would break {len(broken)} reference(s) "
                    f"(first: {tuple(broken[0])})",
                    "the store was left at its version; report this with the store file",
                )
            conn.execute("COMMIT")
            log.info("store migrated to schema version %d", step + 1)
    finally:
        if enforced:
            conn.execute("PRAGMA foreign_keys=ON")
    return len(MIGRATIONS)


def open_store(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open (creating and migrating unless ``readonly``) the store at ``path``."""
    path = Path(path)
    conn: sqlite3.Connection | None = None
    try:
        if readonly:
            if not path.exists():
                raise StoreError(f"{path}: no store yet", "run `digest ingest DUMP` first")
            # mode=ro never writes the database file; it still reads pages a writer left in the WAL.
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            if schema_version(conn) != len(MIGRATIONS):
                raise StoreError(
                    f"{path}: the store is at schema version {schema_version(conn)}, expected {len(MIGRATIONS)}",
                    "run `digest ingest` or `digest run` once to migrate it",
                )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # A checkpoint (copy the WAL into the database, fsync) every 40 MB instead of SQLite's 4 MB: a run
            # queues ~45 KB per message, and at the default it paid a checkpoint every ~90 messages (measured
            # on 4,000 users: outbox stage 1.2-2.0 s instead of 2.3-3.6 s, whole run 10% faster). The WAL file
            # is cut back to 64 MB after a checkpoint.
            conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
            conn.execute("PRAGMA journal_size_limit=67108864")
            conn.execute("PRAGMA foreign_keys=ON")
            migrate(conn)
    except (sqlite3.DatabaseError, StoreError) as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, StoreError):
            raise
        raise StoreError(f"{path}: cannot open the store ({exc})", "is it a paper-digest SQLite file?") from exc
    conn.row_factory = sqlite3.Row
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        # Disk full, read-only file, I/O error: say what to fix instead of "unexpected ... report the traceback".
        if _WRITE_FAILURE.search(str(exc)):
            raise store_write_error(exc, "write") from exc
        raise


@contextlib.contextmanager
def background_checkpoints(conn: sqlite3.Connection, path: Path | None, *, every: float = 0.5) -> Iterator[None]:
    """While sending, copy the WAL into the database from another thread instead of in ``conn``'s commits.

    SQLite checkpoints in the commit that crosses the WAL limit: copying ~40 MB and an fsync stalled that
    commit ~70 ms, and the replies of every other open SMTP session waited behind it; that wait is the window
    in which a crash duplicates a message. A PASSIVE checkpoint on a connection of its own neither waits for
    nor blocks the writer, and the sqlite3 module releases the GIL while it works."""
    if path is None:  # an in-memory copy (dry run): no WAL
        yield
        return
    conn.execute("PRAGMA wal_autocheckpoint=0")
    stop = threading.Event()

    def checkpoint() -> None:
        other = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            while not stop.wait(every):
                other.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:  # the WAL grows until the send ends and autocheckpoint is back
            log.warning("background checkpoint stopped: %s", exc)
        finally:
            other.close()

    thread = threading.Thread(target=checkpoint, name="wal-checkpoint", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")


@contextlib.contextmanager
def run_lock(store_path: Path, *, wait: bool = False) -> Iterator[None]:
    """Hold the store's run lock: a cron run and `digest serve` never overlap. Raises LockedError if held."""
    lock_path = Path(f"{store_path}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError as exc:
            raise LockedError(
                f"another paper-digest run holds {lock_path}",
                "wait for it to finish (or use --wait); the lock frees itself when that process exits",
            ) from exc
        yield
    finally:
        os.close(fd)


_WRITE_FAILURE = re.compile(r"full|readonly|read-only|disk I/O|unable to open|locked|busy", re.IGNORECASE)


def store_write_error(exc: sqlite3.Error, what: str) -> StoreError:
    """A failed write to the store as an error that says what to fix (disk full, read-only, locked)."""
    text = str(exc)
    if "full" in text:
        hint = "free disk space where the store lives ([digest].store), then run again"
    elif "readonly" in text or "read-only" in text:
        hint = "make the store file and its folder writable by this user ([digest].store), then run again"
    elif "locked" in text or "busy" in text:
        hint = "another program holds the store open for writing; close it and run again"
    else:
        hint = "check the disk and the store file ([digest].store); `sqlite3 FILE 'PRAGMA integrity_check'`"
    return StoreError(f"could not {what} the store: {text}", hint)


def scratch_copy(conn: sqlite3.Connection) -> sqlite3.Connection:
    """An in-memory copy of the store, so a dry run goes through every motion and changes nothing."""
    scratch = sqlite3.connect(":memory:", isolation_level=None)
    conn.backup(scratch)
    scratch.row_factory = sqlite3.Row
    return scratch


def store_file(conn: sqlite3.Connection) -> Path | None:
    """The file behind ``conn`` (None for an in-memory copy)."""
    name = conn.execute("PRAGMA database_list").fetchone()[2]
    return Path(name) if name else None
