"""The SQLite store: the diff against everything seen, idempotence, merging, transactions, migrations."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from digest import store
from digest.errors import LockedError, StoreError
from digest.models import Dump, Paper
from digest.sources import parse_dump, read_dump
from digest.store import delivery


def _dump(papers: list[Paper], name: str = "d") -> Dump:
    sha = hashlib.sha256(json.dumps([p.key for p in papers] + [name]).encode()).hexdigest()
    return Dump(name, sha, "json", tuple(papers))


def test_seeds_in_order_report_expected_new(conn: sqlite3.Connection, seeds: list[Path], now: datetime) -> None:
    """The five seeds in name order report 82, 30, 24, 102 and 52 new papers, 290 in all."""
    news = [store.ingest(conn, read_dump(p), now=now).new for p in seeds]
    assert news == [82, 30, 24, 102, 52]
    assert store.counts(conn) == {"papers": 290, "dumps": 5}


def test_same_dump_twice_changes_nothing(conn: sqlite3.Connection, seeds: list[Path], now: datetime) -> None:
    """A dump ingested twice reports 0 new and leaves every row as it was."""
    store.ingest(conn, read_dump(seeds[0]), now=now)
    before = conn.execute("SELECT * FROM papers ORDER BY key").fetchall()
    report = store.ingest(conn, read_dump(seeds[0]), now=now + timedelta(days=1))
    assert (report.new, report.already_ingested, report.found) == (0, True, 82)
    assert conn.execute("SELECT * FROM papers ORDER BY key").fetchall() == before


def test_corpus_paper_on_two_days_is_one_paper(conn: sqlite3.Connection, corpus: Path, now: datetime) -> None:
    """Paper 2604.07429, listed on two days, is stored once."""
    first = store.ingest(conn, read_dump(corpus / "api_json/2026-04-10.json"), now=now)
    second = store.ingest(conn, read_dump(corpus / "api_json/2026-04-16.json"), now=now)
    assert (first.new, second.new, second.seen) == (35, 21, 1)
    assert conn.execute("SELECT count(*) FROM papers WHERE arxiv_id = '2604.07429'").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM sightings WHERE paper_key = 'arxiv:2604.07429'").fetchone()[0] == 2


def test_text_then_json_merges_into_richer_record(conn: sqlite3.Connection, now: datetime) -> None:
    """A paper first seen without an id and later with one is the same paper, re-keyed to its arXiv id."""
    text = "Daily Papers\n\nHogwild! Inference: Parallel LLM Generation\n\n" + "Abstract sentence here. " * 20 + "\n"
    store.ingest(conn, parse_dump(text.encode(), "t.txt"), now=now)
    entry = {
        "paper": {
            "id": "2504.06261",
            "title": "Hogwild! Inference:\n  Parallel LLM Generation",
            "summary": "API abstract.",
            "upvotes": 9,
            "authors": [{"name": "A"}, {"name": "B"}],
        }
    }
    later = now + timedelta(days=2)
    report = store.ingest(conn, parse_dump(json.dumps([entry]).encode(), "a.json"), now=later)
    assert (report.new, report.seen) == (0, 1)
    [row] = store.list_papers(conn)
    assert row.paper.key == "arxiv:2504.06261" and row.paper.upvotes == 9 and row.paper.n_authors == 2
    assert row.first_seen == now  # first seen stays the text dump's time
    assert conn.execute("SELECT count(*) FROM sightings WHERE paper_key = 'arxiv:2504.06261'").fetchone()[0] == 2


def test_json_then_text_is_already_seen(conn: sqlite3.Connection, now: datetime) -> None:
    """A paper seen with an id and later in a text scrape (same title) is not new."""
    entry = {"paper": {"id": "2504.06261", "title": "Some Title", "summary": "S", "upvotes": 1}}
    store.ingest(conn, parse_dump(json.dumps([entry]).encode(), "a.json"), now=now)
    text = "Daily Papers\n\nSome title\n\n" + "Abstract sentence here. " * 20 + "\n"
    report = store.ingest(conn, parse_dump(text.encode(), "t.txt"), now=now)
    assert (report.new, report.seen) == (0, 1)
    assert store.list_papers(conn)[0].paper.arxiv_id == "2504.06261"


def test_upvotes_and_order_are_not_identity(conn: sqlite3.Connection, now: datetime) -> None:
    """The same papers in another order with other upvotes are not new."""
    a = Paper("arxiv:1", "A", "x", upvotes=1, arxiv_id="1")
    b = Paper("arxiv:2", "B", "y", upvotes=2, arxiv_id="2")
    store.ingest(conn, _dump([a, b], "one"), now=now)
    report = store.ingest(conn, _dump([Paper("arxiv:2", "B", "y", upvotes=50, arxiv_id="2"), a], "two"), now=now)
    assert report.new == 0
    assert {r.paper.key: r.paper.upvotes for r in store.list_papers(conn)} == {"arxiv:1": 1, "arxiv:2": 50}


def test_failed_ingest_changes_nothing(conn: sqlite3.Connection, store_path: Path, now: datetime) -> None:
    """An error half-way through an ingest rolls the whole dump back."""
    bad = Paper("arxiv:3", "C", "z", arxiv_id="3", authors=(object(),))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.ingest(conn, _dump([Paper("arxiv:1", "A", "x", arxiv_id="1"), bad]), now=now)
    assert store.counts(conn) == {"papers": 0, "dumps": 0}


def test_new_papers_since(conn: sqlite3.Connection, now: datetime) -> None:
    """new_papers_since returns only papers first seen at or after the time, newest first."""
    store.ingest(conn, _dump([Paper("arxiv:1", "A", "x", arxiv_id="1")], "one"), now=now)
    store.ingest(conn, _dump([Paper("arxiv:2", "B", "y", arxiv_id="2")], "two"), now=now + timedelta(hours=1))
    assert [r.paper.key for r in store.new_papers_since(conn, now + timedelta(minutes=1))] == ["arxiv:2"]
    assert [r.paper.key for r in store.list_papers(conn)] == ["arxiv:2", "arxiv:1"]


def test_list_papers_search_and_range(conn: sqlite3.Connection, seeds: list[Path], now: datetime) -> None:
    """Search matches title or abstract case-insensitively; the date range bounds first_seen."""
    store.ingest(conn, read_dump(seeds[1]), now=now)
    assert [r.paper.title[:7] for r in store.list_papers(conn, search="hogwild")] == ["Hogwild"]
    assert store.list_papers(conn, until=now) == []


def test_schema_is_versioned(store_path: Path) -> None:
    """A new store is at the latest schema version; reopening does not re-run migrations."""
    conn = store.open_store(store_path)
    assert store.schema_version(conn) == len(store.MIGRATIONS)
    conn.close()
    assert store.schema_version(store.open_store(store_path)) == len(store.MIGRATIONS)


def test_newer_schema_is_refused(store_path: Path) -> None:
    """A store from a newer paper-digest is refused with a hint, not silently used."""
    store_path.parent.mkdir(parents=True)
    raw = sqlite3.connect(store_path)
    raw.execute(f"PRAGMA user_version = {len(store.MIGRATIONS) + 5}")
    raw.close()
    with pytest.raises(StoreError, match="newer than this paper-digest"):
        store.open_store(store_path)


def test_not_a_database_is_refused(tmp_path: Path) -> None:
    """A file that is not SQLite gives a StoreError naming it."""
    path = tmp_path / "x.db"
    path.write_bytes(b"definitely not sqlite" * 100)
    with pytest.raises(StoreError, match=r"x\.db"):
        store.open_store(path)


def test_readonly_open_leaves_file_identical(store_path: Path, seeds: list[Path], now: datetime) -> None:
    """Reading through a read-only connection leaves the database bytes untouched."""
    conn = store.open_store(store_path)
    store.ingest(conn, read_dump(seeds[0]), now=now)
    conn.close()
    before = store_path.read_bytes()
    ro = store.open_store(store_path, readonly=True)
    assert len(store.list_papers(ro)) == 82
    ro.close()
    assert store_path.read_bytes() == before


def test_run_lock_excludes_a_second_holder(store_path: Path) -> None:
    """While one holder has the run lock a second one gets LockedError."""
    with store.run_lock(store_path), pytest.raises(LockedError), store.run_lock(store_path):
        pass
    with store.run_lock(store_path):  # released again
        pass


def test_first_seen_is_utc(conn: sqlite3.Connection) -> None:
    """first_seen is stored in UTC whatever zone the clock was in."""
    from zoneinfo import ZoneInfo

    local = datetime(2026, 3, 1, 9, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    store.ingest(conn, _dump([Paper("arxiv:1", "A", "x", arxiv_id="1")]), now=local)
    assert store.list_papers(conn)[0].first_seen == datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def test_feed_and_last_digest_queries_read_indexes(store_path: Path) -> None:
    """A user's feed keys, the latest digest per user and the settled papers of a pool come from indexes, not
    from a scan of the outbox, its message bodies or every user's history."""
    conn = store.open_store(store_path)

    def plan(sql: str, *params: object) -> str:
        return " | ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))

    feed = plan(
        "SELECT paper_key, outbox_id, position FROM user_papers WHERE user = ?1 AND state IN ('delivered', 'archived') "
        "ORDER BY 2 DESC, 3 LIMIT 10", "ada"
    )  # fmt: skip
    assert "user_papers_feed" in feed, feed
    latest = plan("SELECT * FROM outbox WHERE user = ? ORDER BY id DESC LIMIT 1", "ada")
    assert "outbox_user" in latest and "TEMP B-TREE" not in latest, latest
    settled = plan("SELECT user, paper_key FROM user_papers WHERE paper_key IN (SELECT value FROM json_each(?))", "[]")
    assert "PRIMARY KEY" in settled or "USING PRIMARY" in settled, settled


def test_papers_queued_delivered_and_dropped_per_user(store_path: Path) -> None:
    """A queued row's papers are settled for its user only; the sent commit makes them delivered, in order;
    a dropped paper stays dropped; the feed lists delivered and queued papers, newest digest first."""
    conn = store.open_store(store_path)
    day = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)

    def queue(user: str, period: str, keys: list[str], dropped: tuple[str, ...] = ()) -> int:
        with store.transaction(conn):
            row_id = delivery.add_message(
                conn, user=user, period=period, scheduled_at=day, window_from=day, run_id=None, papers_until=day,
                paper_keys=keys, message=b"m", message_id="i", sender="a@b", recipient="c@d", now=day, dropped=dropped,
            )  # fmt: skip
        assert row_id is not None
        return row_id

    first = queue("ada", "p1", ["k1", "k2"], dropped=("old",))
    assert delivery.settled_among(conn, ["k1", "k2", "old", "x"], ["ada", "bob"]) == {"ada": {"k1", "k2", "old"}}
    delivery.mark_sent(conn, first, code=250, reply="ok", now=day)
    queue("ada", "p2", ["k3"])
    queue("bob", "p1", ["k1"])
    assert delivery.feed_keys(conn, "ada", limit=10) == ["k3", "k1", "k2"]
    states = dict(conn.execute("SELECT paper_key, state FROM user_papers WHERE user = 'ada'").fetchall())
    assert states == {"k1": "delivered", "k2": "delivered", "old": "dropped"}
    assert delivery.settled_among(conn, ["k1"], ["ada", "bob"]) == {"ada": {"k1"}, "bob": {"k1"}}
    assert delivery.settled_among(conn, ["k1"], ["bob"]) == {"bob": {"k1"}}


def test_v2_store_moves_its_message_bodies_to_their_own_table(tmp_path: Path) -> None:
    """Migrating a v2 store keeps the bodies of queued messages (now in outbox_messages) and drops sent ones."""
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    for step, script in enumerate(store.MIGRATIONS[:2]):
        old.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {step + 1};\nCOMMIT;")
    old.executemany(
        "INSERT INTO outbox (user, period, created_at, papers_until, message, status) VALUES (?, ?, 'x', 'x', ?, ?)",
        [("ada", "2026-11-23", b"From: a\r\n\r\nqueued\r\n", "pending"), ("bob", "2026-11-22", b"sent", "sent")],
    )
    old.commit()
    old.close()
    conn = store.open_store(path)
    assert store.schema_version(conn) == len(store.MIGRATIONS)
    assert delivery.load_message(conn, 1) == b"From: a\r\n\r\nqueued\r\n"
    assert delivery.load_message(conn, 2) == b""
    assert conn.execute("SELECT count(*) FROM outbox WHERE message IS NOT NULL").fetchone()[0] == 0
    assert [tuple(r) for r in conn.execute("SELECT user, status FROM outbox ORDER BY id")] == [
        ("ada", "pending"),
        ("bob", "sent"),
    ]


def test_prune_drops_old_sent_and_failed_bodies_only(store_path: Path) -> None:
    """Bodies sent or failed before the cutoff go; pending ones and newer sent ones stay, and so do all rows."""
    conn = store.open_store(store_path)
    day = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    with store.transaction(conn):
        ids = [
            delivery.add_message(
                conn,
                user=user,
                period="p",
                scheduled_at=day,
                window_from=day,
                run_id=None,
                papers_until=day,
                paper_keys=["k"],
                message=b"m",
                message_id="i",
                sender="a@b",
                recipient="c@d",
                now=day,
            )
            for user in ("old-sent", "new-sent", "old-failed", "old-pending")
        ]
    delivery.mark_sent(conn, ids[0], code=250, reply="ok", now=day)
    delivery.mark_sent(conn, ids[1], code=250, reply="ok", now=day + timedelta(days=10))
    delivery.mark_failed(conn, ids[2], status="failed", code=550, reply="no", now=day)
    assert delivery.prune_messages(conn, before=day + timedelta(days=5)) == 2
    assert [delivery.load_message(conn, i) for i in ids] == [b"", b"m", b"", b"m"]
    assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 4


def test_v4_store_keeps_every_paper_in_a_smaller_rowid_table(tmp_path: Path, seeds: list[Path], now: datetime) -> None:
    """Migrating a v4 store (papers WITHOUT ROWID, one url column) keeps every paper and column; the new table
    is a rowid table in first-seen order, smaller on disk; a url becomes the code or project link (v6); ingest
    still merges into it."""
    path = tmp_path / "v4.db"
    old = sqlite3.connect(path, isolation_level=None)
    for step, script in enumerate(store.MIGRATIONS[:4]):
        old.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {step + 1};\nCOMMIT;")
    v4_columns = [c for c in _columns(old, "papers")]
    old.execute("BEGIN")
    for day, seed in enumerate(seeds):
        dump, stamp = read_dump(seed), (now + timedelta(days=day)).isoformat(timespec="seconds")
        old.execute("INSERT INTO dumps VALUES (?, ?, 'text', ?, 0, 0, '[]')", (dump.sha256, dump.name, stamp))
        for i, p in enumerate(dump.papers):
            url = ["https://github.com/a/b", "https://a.example/project", None][i % 3]
            old.execute(
                f"INSERT OR IGNORE INTO papers ({', '.join(v4_columns)}) VALUES ({', '.join('?' * len(v4_columns))})",
                (p.key, p.key[-12:], p.arxiv_id, p.title, p.abstract, json.dumps(p.authors), p.n_authors,
                 p.organization, None, p.published_text, p.upvotes, url, stamp, dump.sha256, stamp, None),
            )  # fmt: skip
    old.execute("COMMIT")
    before = {r[0]: r for r in old.execute("SELECT * FROM papers")}
    old.execute("VACUUM")
    v4_pages = old.execute("SELECT count(*) FROM dbstat WHERE name = 'papers'").fetchone()[0]
    old.close()

    conn = store.open_store(path)
    assert store.schema_version(conn) == len(store.MIGRATIONS)
    kept = [c for c in v4_columns if c != "url"]
    after = {r["key"]: r for r in conn.execute("SELECT * FROM papers")}
    assert after.keys() == before.keys()
    for key, row in before.items():
        new = after[key]
        assert tuple(new[c] for c in kept) == tuple(row[v4_columns.index(c)] for c in kept)
        url = row[v4_columns.index("url")]
        assert (new["github_repo"], new["project_page"], new["url"]) == (
            url if url and "github.com" in url else None,
            url if url and "github.com" not in url else None,
            None,
        )
    conn.execute("VACUUM")
    v5_pages = conn.execute("SELECT count(*) FROM dbstat WHERE name = 'papers'").fetchone()[0]
    assert v5_pages < v4_pages * 0.8, (v4_pages, v5_pages)
    firsts = [r[0] for r in conn.execute("SELECT first_seen FROM papers ORDER BY id")]
    assert firsts == sorted(firsts)
    # A paper seen again is updated in place: its row keeps its id.
    key, rowid = conn.execute("SELECT key, id FROM papers ORDER BY id LIMIT 1").fetchone()
    again = next(p for p in read_dump(seeds[0]).papers if p.key == key)
    store.ingest(conn, _dump([again], "again"), now=now + timedelta(days=9))
    row = conn.execute("SELECT id, last_seen > first_seen FROM papers WHERE key = ?", (key,)).fetchone()
    assert tuple(row) == (rowid, 1)


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
