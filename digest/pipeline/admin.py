"""One-off operations the command line and the HTTP service ask for: ingest named dumps, list and search papers,
status, send what is due, fetch a listing, render a preview in one format, (un)subscribe, resolve an
unsubscribe token. The app layer calls these (and the rest of ``digest.pipeline``), never the stages below."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digest import store
from digest.store import delivery

if TYPE_CHECKING:
    from digest import config, render
    from digest.models import Digest, IngestReport, Match, Paper, StoredPaper
    from digest.pipeline.send import SendReport

# Each operation imports the stages it uses when called: `digest status` (and the HTTP service's unsubscribe)
# load the store alone, not matching (numpy), render (Jinja, lxml) or the mail and HTTP clients.

__all__ = [
    "IngestSession",
    "StatusReport",
    "check_address",
    "check_query",
    "fetch_listing",
    "ingest_session",
    "list_papers",
    "match_query",
    "organizations_seen",
    "preview_body",
    "send_due",
    "set_subscribed",
    "status",
    "user_for_token",
]


@dataclass(frozen=True, slots=True)
class IngestSession:
    """An open store under the run lock, for `digest ingest`: one dump at a time, each in its own transaction."""

    conn: store.Connection

    def ingest_file(self, path: Path, *, now: datetime) -> IngestReport:
        """Read and ingest one dump file (DumpError when it cannot be read: nothing of it is stored)."""
        from digest import sources

        return store.ingest(self.conn, sources.read_dump(path), now=now)

    def ingest_bytes(self, data: bytes, name: str, *, now: datetime) -> IngestReport:
        """Parse and ingest a dump given as bytes (standard input)."""
        from digest import sources

        return store.ingest(self.conn, sources.parse_dump(data, name), now=now)


@contextlib.contextmanager
def ingest_session(store_path: Path) -> Iterator[IngestSession]:
    """Take the run lock (waiting for a run in progress), open the store, yield a session."""
    with store.run_lock(store_path, wait=True), contextlib.closing(store.open_store(store_path)) as conn:
        yield IngestSession(conn)


def list_papers(
    store_path: Path, *, since: datetime | None, until: datetime | None, search: str | None, limit: int
) -> list[StoredPaper]:
    """Stored papers, newest first (read only)."""
    with contextlib.closing(store.open_store(store_path, readonly=True)) as conn:
        return store.list_papers(conn, since=since, until=until, search=search, limit=limit)


def organizations_seen(store_path: Path) -> list[str]:
    """Every organization name and handle in the store (read only)."""
    with contextlib.closing(store.open_store(store_path, readonly=True)) as conn:
        return store.organizations_seen(conn)


def check_query(query: str) -> None:
    """Raise QueryError when ``query`` does not parse."""
    from digest import matching

    matching.parse_query(query)


def check_address(value: str) -> str:
    """A plain ASCII address (IDN domains in punycode), checked as the config checks addresses."""
    from digest.deliver.email import validate_address

    return validate_address(value)


def match_query(
    query: str, *, limit: int, dump: Path | None, store_path: Path, since: datetime | None
) -> tuple[list[Match], int, int]:
    """The best ``limit`` papers ``query`` selects from a dump or the store, how many match, how many were read.

    Streamed: the store is read a batch at a time and only the best ``limit`` matches are kept, so matching
    years of history holds one batch of papers, not all of them."""
    from digest import matching, sources
    from digest.models import Profile

    matcher = matching.compile_profiles([Profile(name="query", email="", keywords=(query,), max_papers=limit)])
    seen = 0

    def counted(batches: Iterable[Sequence[Paper]]) -> Iterator[Sequence[Paper]]:
        nonlocal seen
        for batch in batches:
            seen += len(batch)
            yield batch

    if dump is not None:
        [(found, total)] = matching.match_top_stream(matcher, counted([sources.read_dump(dump).papers])).values()
    else:
        with contextlib.closing(store.open_store(store_path, readonly=True)) as conn:
            batches = store.iter_papers(conn, since=since)
            [(found, total)] = matching.match_top_stream(
                matcher, counted([sp.paper for sp in batch] for batch in batches)
            ).values()
    return found, total, seen


def preview_body(
    cfg: config.Config,
    env: Mapping[str, str],
    fmt: str,
    digest: Digest,
    cache: render.RenderCache,
    links: render.DigestLinks,
    *,
    now: datetime,
) -> str:
    """A previewed digest in one format: "md", "text", "html" or "eml" (the whole message)."""
    from digest import render
    from digest.deliver.email import compose
    from digest.pipeline.settings import preview_mail_settings

    if fmt in ("md", "text", "html"):
        return render.render_part("txt" if fmt == "text" else fmt, digest, cache, now=now, links=links)
    email = render.render_digest(digest, cache, now=now, links=links)
    return compose(email, preview_mail_settings(cfg, env), now=now).decode("utf-8")


def send_due(
    cfg: config.Config,
    env: Mapping[str, str],
    *,
    now: datetime,
    users: tuple[str, ...] | None,
    dry_run: Path | None,
    progress: Callable[[int, int], None] | None,
    retry: bool,
    clock: Callable[[], datetime],
) -> SendReport:
    """`digest send`: under the run lock, send (or with ``dry_run``, write as .eml files from a scratch copy of
    the store) the messages that are due."""
    from digest.pipeline.options import RunOptions
    from digest.pipeline.send import deliver_due
    from digest.store import scratch_copy

    with store.run_lock(cfg.digest.store), contextlib.closing(store.open_store(cfg.digest.store)) as real:
        conn = scratch_copy(real) if dry_run is not None else real  # the copy is closed with the process
        options = RunOptions(users=users, dry_run=dry_run, progress=progress)
        return deliver_due(conn, cfg, env, now=now, options=options, clock=clock, retry_deferred=retry)


@dataclass(frozen=True, slots=True)
class StatusReport:
    """What `digest status` shows."""

    messages: list[delivery.OutboxRow]
    runs: list[dict[str, Any]]
    unsubscribed: set[str]
    unsent: dict[str, list[dict[str, object]]]


def status(store_path: Path, *, users: tuple[str, ...], limit: int) -> StatusReport:
    """Messages (newest first), the last runs, who unsubscribed, and for ``users`` each paper's state."""
    with contextlib.closing(store.open_store(store_path, readonly=True)) as conn:
        return StatusReport(
            messages=delivery.history(conn, users=users or None, limit=limit),
            runs=delivery.runs(conn, limit=10),
            unsubscribed=delivery.unsubscribed(conn),
            unsent={user: delivery.user_paper_states(conn, user) for user in users},
        )


def fetch_listing(cfg: config.Config, day: date | None) -> Path:
    """Fetch the day's listing from [digest].source_url into the inbox; the path written."""
    from digest.sources import fetch

    return fetch.fetch_listing(cfg.digest.source_url, cfg.digest.inbox, day=day, timeout=cfg.digest.fetch_timeout)


def set_subscribed(store_path: Path, user: str, subscribed: bool, *, now: datetime) -> bool:
    """(Un)subscribe ``user`` (one short transaction, no run lock); whether anything changed."""
    with contextlib.closing(store.open_store(store_path)) as conn:
        return delivery.set_subscribed(conn, user, subscribed, now=now)


def user_for_token(token: str, names: Sequence[str], secret: bytes) -> str | None:
    """The user an unsubscribe token names, or None when it does not verify."""
    from digest.deliver.email import verify_unsubscribe_token

    return verify_unsubscribe_token(token, names, secret)
