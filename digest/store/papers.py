"""Papers, ingested dumps and inbox files: ingest (merge with what is stored), list, get, counts."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime

from digest.identity import title_fingerprint
from digest.models import Dump, IngestReport, Paper, StoredPaper
from digest.store.db import transaction

_PAPER_COLUMNS = (
    "key, title_fp, arxiv_id, title, abstract, authors, n_authors, organization, published, "
    "published_text, upvotes, first_seen, first_dump, last_seen, org_handle, project_page, github_repo, "
    "github_stars, ai_summary, thumbnail"
)

_PAPER_UPDATES = ", ".join(f"{c} = excluded.{c}" for c in _PAPER_COLUMNS.split(", ")[1:])


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _row_to_stored(row: sqlite3.Row) -> StoredPaper:
    paper = Paper(
        key=row["key"],
        title=row["title"],
        abstract=row["abstract"],
        authors=tuple(json.loads(row["authors"])),
        n_authors=row["n_authors"],
        organization=row["organization"],
        published=date.fromisoformat(row["published"]) if row["published"] else None,
        published_text=row["published_text"],
        upvotes=row["upvotes"],
        arxiv_id=row["arxiv_id"],
        org_handle=row["org_handle"],
        project_page=row["project_page"],
        github_repo=row["github_repo"],
        github_stars=row["github_stars"],
        ai_summary=row["ai_summary"],
        thumbnail=row["thumbnail"],
    )
    return StoredPaper(paper, datetime.fromisoformat(row["first_seen"]), row["first_dump"])


def _richness(paper: Paper) -> int:
    return sum(
        value not in (None, "", ())
        for value in (
            paper.arxiv_id,
            paper.authors,
            paper.n_authors,
            paper.organization,
            paper.published,
            paper.upvotes,
            paper.project_page,
            paper.github_repo,
            paper.ai_summary,
            paper.abstract,
            paper.org_handle,
        )
    )


def merge(old: Paper, new: Paper) -> Paper:
    """Keep the richer record, fill its gaps from the other; upvotes are the highest seen.

    Upvotes on the listing only grow in practice, so the highest count is the newest one whatever order the
    dumps arrive in: an old dump ingested late never lowers them (which could unmatch a min_upvotes profile).
    """
    base, other = (new, old) if _richness(new) > _richness(old) else (old, new)
    filled = {
        name: getattr(other, name)
        for name in (
            "authors",
            "n_authors",
            "organization",
            "org_handle",
            "published",
            "published_text",
            "arxiv_id",
            "project_page",
            "github_repo",
            "github_stars",
            "ai_summary",
            "thumbnail",
        )
        if getattr(base, name) in (None, "", ()) and getattr(other, name) not in (None, "", ())
    }
    merged = replace(base, **filled)
    for name in ("upvotes", "github_stars"):  # counts that only grow: the highest seen is the newest
        counts = [v for v in (getattr(old, name), getattr(new, name)) if v is not None]
        if counts:
            merged = replace(merged, **{name: max(counts)})
    if merged.arxiv_id:
        merged = replace(merged, key=f"arxiv:{merged.arxiv_id}")
    return merged


def _find_existing(conn: sqlite3.Connection, papers: Sequence[Paper]) -> dict[str, sqlite3.Row]:
    """Existing rows for these papers, by key or by title fingerprint, keyed by the incoming paper's key."""
    keys = [p.key for p in papers]
    fps = {p.key: title_fingerprint(p.title) for p in papers}
    rows_by_key: dict[str, sqlite3.Row] = {}
    rows_by_fp: dict[str, sqlite3.Row] = {}
    # json_each keeps this one statement however many papers a dump has (no 999-variable limit).
    for row in conn.execute(
        f"SELECT {_PAPER_COLUMNS} FROM papers WHERE key IN (SELECT value FROM json_each(?))", (json.dumps(keys),)
    ):
        rows_by_key[row["key"]] = row
    for row in conn.execute(
        f"SELECT {_PAPER_COLUMNS} FROM papers WHERE title_fp IN (SELECT value FROM json_each(?))",
        (json.dumps(sorted(set(fps.values()))),),
    ):
        rows_by_fp.setdefault(row["title_fp"], row)
    found: dict[str, sqlite3.Row] = {}
    for paper in papers:
        row = rows_by_key.get(paper.key)
        if row is None:
            candidate = rows_by_fp.get(fps[paper.key])
            # Same title but two different arXiv ids are two papers (rare, but it happens with re-posts).
            if candidate is not None and not (paper.arxiv_id and candidate["arxiv_id"]):
                row = candidate
        if row is not None:
            found[paper.key] = row
    return found


def ingest(conn: sqlite3.Connection, dump: Dump, *, now: datetime) -> IngestReport:
    """Record a parsed dump in one transaction and report how many of its papers are new."""
    unique: dict[str, Paper] = {}
    for paper in dump.papers:
        unique[paper.key] = merge(unique[paper.key], paper) if paper.key in unique else paper
    papers = list(unique.values())
    with transaction(conn):
        if conn.execute("SELECT 1 FROM dumps WHERE sha256 = ?", (dump.sha256,)).fetchone():
            return IngestReport(dump.name, dump.format, len(papers), 0, len(papers), True, dump.skipped)
        existing = _find_existing(conn, papers)
        stamp = now.astimezone(UTC).isoformat(timespec="seconds")
        conn.execute(
            "INSERT INTO dumps (sha256, name, format, ingested_at, papers, new_papers, skipped) "
            "VALUES (?, ?, ?, ?, ?, 0, ?)",
            (dump.sha256, dump.name, dump.format, stamp, len(papers), json.dumps(list(dump.skipped))),
        )
        new = 0
        for paper in papers:
            row = existing.get(paper.key)
            if row is None:
                new += 1
                record, first_seen, first_dump, old_key = paper, stamp, dump.sha256, None
            else:
                record = merge(_row_to_stored(row).paper, paper)
                first_seen, first_dump, old_key = row["first_seen"], row["first_dump"], row["key"]
            if old_key is not None and old_key != record.key:
                # A text-scrape paper has gained its arXiv id: re-key it and its sightings.
                conn.execute("DELETE FROM papers WHERE key = ?", (old_key,))
                conn.execute("UPDATE sightings SET paper_key = ? WHERE paper_key = ?", (record.key, old_key))
                # Its per-user state and feed entry id follow it: delivered stays delivered, same entry id.
                conn.execute(
                    "UPDATE OR IGNORE user_papers SET paper_key = ? WHERE paper_key = ?", (record.key, old_key)
                )
                conn.execute("DELETE FROM user_papers WHERE paper_key = ?", (old_key,))
                conn.execute(
                    "UPDATE outbox SET paper_keys = replace(paper_keys, ?, ?) WHERE status IN ('pending', 'sending', "
                    "'deferred') AND instr(paper_keys, ?) > 0",
                    (json.dumps(old_key), json.dumps(record.key), json.dumps(old_key)),
                )
                conn.execute("UPDATE OR IGNORE feed_ids SET paper_key = ? WHERE paper_key = ?", (record.key, old_key))
                conn.execute("DELETE FROM feed_ids WHERE paper_key = ?", (old_key,))
                # Votes follow too (a vote already on the new key, the later one, wins).
                conn.execute("UPDATE OR IGNORE ratings SET paper_key = ? WHERE paper_key = ?", (record.key, old_key))
                conn.execute("DELETE FROM ratings WHERE paper_key = ?", (old_key,))
            conn.execute(
                # An upsert, not INSERT OR REPLACE: the row keeps its place (and rowid) in the table.
                f"INSERT INTO papers ({_PAPER_COLUMNS}) VALUES ({', '.join('?' * 20)}) ON CONFLICT (key) DO UPDATE "
                f"SET {_PAPER_UPDATES}",
                (
                    record.key,
                    title_fingerprint(record.title),
                    record.arxiv_id,
                    record.title,
                    record.abstract,
                    json.dumps(list(record.authors), ensure_ascii=False),
                    record.n_authors,
                    record.organization,
                    _iso(record.published),
                    record.published_text,
                    record.upvotes,
                    first_seen,
                    first_dump,
                    stamp,
                    record.org_handle,
                    record.project_page,
                    record.github_repo,
                    record.github_stars,
                    record.ai_summary,
                    record.thumbnail,
                ),
            )
            conn.execute("INSERT OR IGNORE INTO sightings (paper_key, dump) VALUES (?, ?)", (record.key, dump.sha256))
        conn.execute("UPDATE dumps SET new_papers = ? WHERE sha256 = ?", (new, dump.sha256))
    return IngestReport(dump.name, dump.format, len(papers), new, len(papers) - new, False, dump.skipped)


def is_ingested(conn: sqlite3.Connection, sha256: str) -> bool:
    """True when a dump with this content hash is already in the store."""
    return conn.execute("SELECT 1 FROM dumps WHERE sha256 = ?", (sha256,)).fetchone() is not None


def known_inbox_files(conn: sqlite3.Connection) -> dict[str, tuple[int, int]]:
    """Inbox file name -> (size, mtime in ns) when that file was ingested (or found already ingested)."""
    return {row[0]: (row[1], row[2]) for row in conn.execute("SELECT name, size, mtime_ns FROM inbox_files")}


def record_inbox_file(conn: sqlite3.Connection, name: str, size: int, mtime_ns: int, sha256: str) -> None:
    """Remember that the inbox file ``name`` with this size and mtime holds the dump ``sha256``."""
    with transaction(conn):
        conn.execute(
            "INSERT INTO inbox_files (name, size, mtime_ns, sha256) VALUES (?, ?, ?, ?) ON CONFLICT (name) "
            "DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256",
            (name, size, mtime_ns, sha256),
        )


def list_papers(
    conn: sqlite3.Connection,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    search: str | None = None,
    limit: int | None = None,
) -> list[StoredPaper]:
    """Stored papers, newest first, optionally first seen in [since, until) and containing ``search``."""
    return [sp for batch in iter_papers(conn, since=since, until=until, search=search, limit=limit) for sp in batch]


def iter_papers(
    conn: sqlite3.Connection,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    search: str | None = None,
    limit: int | None = None,
    batch: int = 2000,
) -> Iterator[list[StoredPaper]]:
    """``list_papers`` in batches of ``batch`` papers, read as they are consumed: a caller that keeps only
    what it needs of each batch (``digest match``, ``preview --since``) holds one batch, not the history."""
    clauses, params = [], []
    if since is not None:
        clauses.append("first_seen >= ?")
        params.append(since.astimezone(UTC).isoformat(timespec="seconds"))
    if until is not None:
        clauses.append("first_seen < ?")
        params.append(until.astimezone(UTC).isoformat(timespec="seconds"))
    if search:
        clauses.append("(instr(lower(title), lower(?)) > 0 OR instr(lower(abstract), lower(?)) > 0)")
        params.extend([search, search])
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = f"SELECT {_PAPER_COLUMNS} FROM papers {where} ORDER BY first_seen DESC, key DESC"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    cursor = conn.execute(sql, params)
    while rows := cursor.fetchmany(batch):
        yield [_row_to_stored(row) for row in rows]


def new_papers_since(conn: sqlite3.Connection, since: datetime) -> list[StoredPaper]:
    """Papers first seen at or after ``since``, newest first."""
    return list_papers(conn, since=since)


def get_papers(conn: sqlite3.Connection, keys: Sequence[str]) -> list[StoredPaper]:
    """Stored papers for these keys, in the given order (unknown keys skipped)."""
    rows = conn.execute(
        f"SELECT {_PAPER_COLUMNS} FROM papers WHERE key IN (SELECT value FROM json_each(?))", (json.dumps(list(keys)),)
    )
    found = {row["key"]: _row_to_stored(row) for row in rows}
    return [found[k] for k in keys if k in found]


def dump_names(conn: sqlite3.Connection, shas: Sequence[str]) -> dict[str, str]:
    """Map dump hashes to the names they were ingested under."""
    rows = conn.execute(
        "SELECT sha256, name FROM dumps WHERE sha256 IN (SELECT value FROM json_each(?))", (json.dumps(list(shas)),)
    )
    return {row["sha256"]: row["name"] for row in rows}


def organizations_seen(conn: sqlite3.Connection) -> list[str]:
    """Every organization display name and handle the stored papers carry."""
    rows = conn.execute(
        "SELECT organization FROM papers WHERE organization IS NOT NULL AND organization != '' "
        "UNION SELECT org_handle FROM papers WHERE org_handle IS NOT NULL AND org_handle != ''"
    )
    return [row[0] for row in rows]


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """How many papers and dumps the store holds."""
    return {
        "papers": conn.execute("SELECT count(*) FROM papers").fetchone()[0],
        "dumps": conn.execute("SELECT count(*) FROM dumps").fetchone()[0],
    }


def first_ingested(conn: sqlite3.Connection) -> str | None:
    """When the store's first dump was ingested (ISO text), or None when it has none."""
    row = conn.execute("SELECT min(ingested_at) FROM dumps").fetchone()
    return row[0] if row and row[0] else None
