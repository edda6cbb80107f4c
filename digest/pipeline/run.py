"""The order of the stages: sources -> store -> match -> render -> deliver, plus feeds.

Only this module knows that order; the CLI and the scheduler call ``run_once``, ``deliver_due``,
``preview`` and ``write_feeds`` and nothing else. Each user is isolated: one user's failure is recorded
and the others go on. Papers are marked delivered only inside the transaction that follows the SMTP
server's acceptance (see ``digest.outbox``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import gc
import hashlib
import logging
import multiprocessing
import os
import signal
import sqlite3
import ssl
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from digest import config, matching, render, sources, store
from digest.config import cadence
from digest.deliver.email import (
    MailSettings,
    Outgoing,
    SendResult,
    compose,
    message_id,
    send_all,
    unsubscribe_mailto_url,
    unsubscribe_url,
)
from digest.errors import DeliveryError, DigestError, DumpError, StoreError
from digest.models import Digest, IngestReport, Match, Profile, RenderedEmail, RunReport, StoredPaper
from digest.pipeline import archive
from digest.pipeline.publish import FeedWriter, write_feeds
from digest.pipeline.settings import feed_url, mail_settings, preview_mail_settings, render_options, smtp_settings
from digest.sources import fetch
from digest.store import delivery

log = logging.getLogger(__name__)

# A deferred message is tried again after 15 min, 30, 60, ... capped at 6 h, until max_retry_age_hours.
RETRY_BASE = timedelta(minutes=15)
RETRY_CAP = timedelta(hours=6)
# Digests rendered and committed to the outbox per transaction.
QUEUE_BATCH = 16


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What one run does beyond the defaults."""

    users: tuple[str, ...] | None = None  # limit to these users
    dry_run: Path | None = None  # write .eml files (and feeds) here; the store is left untouched
    fetch: bool = True  # fetch the day's listing when [digest].source_url is set
    deliver: bool = True
    tls_context: ssl.SSLContext | None = None  # tests trust their own CA with this
    progress: Callable[[int, int], None] | None = None  # (messages done, total)
    stop: Callable[[], bool] = field(default=lambda: False)  # polled between messages (SIGTERM)
    wait_for_lock: bool = False  # wait for a concurrent run instead of raising LockedError


def _manage_hint(cfg: config.Config, profile: Profile) -> str:
    return f"Your profile is the [[users]] entry named {profile.name!r} in {cfg.path.name}; edit its keywords there."


def _unsubscribe_link(profile: Profile, mail: MailSettings) -> str:
    """The body's unsubscribe link: the one-click https URL, else the same mailto the header carries."""
    return (
        unsubscribe_url(profile.name, mail)
        or unsubscribe_mailto_url(profile.name, mail)
        or f"mailto:{mail.sender}?subject=unsubscribe"
    )


# ------------------------------------------------------------------------------------------ ingest


def inbox_files(conn: sqlite3.Connection, inbox: Path) -> list[tuple[Path, os.stat_result]]:
    """Files in the inbox not ingested yet, in name order, with their stat. A file whose name, size and mtime
    match a file ingested before is skipped unread; any other is hashed and skipped if a dump with its content
    is in the store (and remembered by name, size and mtime, so it is not read again)."""
    if not inbox.is_dir():
        return []
    known = store.known_inbox_files(conn)
    fresh = []
    for path in sorted(inbox.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            stat = path.stat()
        except OSError:
            continue  # gone since the listing
        if known.get(path.name) == (stat.st_size, stat.st_mtime_ns):
            continue
        try:
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            fresh.append((path, stat))  # unreadable: reading it as a dump refuses it, named, and moves it aside
            continue
        if store.is_ingested(conn, sha):
            store.record_inbox_file(conn, path.name, stat.st_size, stat.st_mtime_ns, sha)
        else:
            fresh.append((path, stat))
    return fresh


def ingest_paths(
    conn: sqlite3.Connection,
    paths: Sequence[Path],
    *,
    now: datetime,
    inbox_stats: Mapping[Path, os.stat_result] | None = None,
) -> tuple[list[IngestReport], list[tuple[Path, str]]]:
    """Ingest each file; a refused dump is returned with its error and the others go on. Files listed in
    ``inbox_stats`` (inbox files, with their stat from before they were read) are remembered as ingested."""
    reports, refused = [], []
    for path in paths:
        try:
            dump = sources.read_dump(path)
            reports.append(store.ingest(conn, dump, now=now))
        except DumpError as exc:
            refused.append((path, str(exc)))
            continue
        stat = (inbox_stats or {}).get(path)
        if stat is not None:
            store.record_inbox_file(conn, path.name, stat.st_size, stat.st_mtime_ns, dump.sha256)
    return reports, refused


def quarantine(path: Path) -> Path:
    """Move a refused dump into the inbox's ``refused/`` folder, so later runs do not refuse it again."""
    folder = path.parent / "refused"
    folder.mkdir(exist_ok=True)
    target, n = folder / path.name, 0
    while target.exists():
        n += 1
        target = folder / f"{path.name}.{n}"
    return path.rename(target)


# ------------------------------------------------------------------------------------------ selection


@dataclass(frozen=True, slots=True)
class Window:
    """Which papers a user's digest looks at, by when paper-digest first saw them."""

    lower: datetime  # papers first seen at or after this (and not settled for the user) are offered
    scan_from: datetime  # matching papers first seen in [scan_from, lower) are recorded as dropped (too old)


def user_window(
    cfg: config.Config,
    profile: Profile,
    period: cadence.Period,
    *,
    added: datetime | None,
    last: delivery.LastDigest | None,
    now: datetime,
) -> Window:
    """The window of a user's digest for ``period``.

    A new user (no digest yet) gets the papers first seen up to ``backfill_days`` before they first appeared in
    the config. Afterwards the catch-up limit counts back from the end of the first period after the last
    digest (after downtime: the first missed one), so a catch-up digest covers every missed period; what
    matched before that bound (and after the last digest's own bound) and was never delivered is dropped,
    and counted."""
    first_seen_by_user = (added or now) - timedelta(days=cfg.digest.backfill_days)
    # The end of the first period with no digest: the one after the last digest, or a new user's first one.
    after = last.scheduled_at if last is not None else (added or now)
    first_missed_end = min(cadence.next_scheduled_after(profile, after), max(period.scheduled_at, after))
    lower = max(first_missed_end - timedelta(days=cfg.digest.catchup_max_age_days), first_seen_by_user)
    if first_missed_end >= period.scheduled_at:
        # No period was missed: the limit bounds how long unsent matches stay on offer, it never cuts what
        # arrived since the last digest (a monthly cadence, or a limit shorter than a week for a weekly one).
        lower = min(lower, last.papers_until if last is not None else first_seen_by_user)
    if last is None:
        considered = first_seen_by_user
    elif last.window_from is not None:
        considered = max(last.window_from, first_seen_by_user)  # what the last digest still offered
    else:
        considered = max(last.papers_until, first_seen_by_user)  # a digest from before schema v4
    if last is not None and last.failed_from is not None:
        # A digest that failed for good gave its papers back: look at them again (offer or drop them).
        considered = min(considered, last.failed_from)
    return Window(lower, min(lower, considered))


@dataclass(frozen=True, slots=True)
class Due:
    """A user whose period has no digest yet, with the window their digest looks at."""

    profile: Profile
    period: cadence.Period
    window: Window


def due_users(
    conn: sqlite3.Connection, cfg: config.Config, profiles: Sequence[Profile], *, now: datetime, force: bool = False
) -> list[Due]:
    """Users whose current period has no digest yet (``force``: every given user, as if due now). Read-only."""
    added = {row["name"]: datetime.fromisoformat(row["added_at"]) for row in conn.execute("SELECT * FROM subscribers")}
    gone = delivery.unsubscribed(conn)
    periods = {}
    for profile in profiles:
        if profile.name in gone and not force:
            continue
        period = cadence.current_period(profile, now)
        if force or not delivery.has_period(conn, profile.name, period.key):
            periods[profile.name] = (profile, period)
    last = delivery.last_digests(conn, list(periods))
    return [
        Due(profile, period, user_window(cfg, profile, period, added=added.get(name), last=last.get(name), now=now))
        for name, (profile, period) in periods.items()
    ]


def select_digests(conn: sqlite3.Connection, due: Sequence[Due], *, now: datetime) -> list[Digest]:
    """Every due user's digest: their matches among the papers of their window that are not settled for them
    (queued, delivered, archived or dropped), best first; the first ``max_papers`` are shown, the rest carried
    over; matches that left the window since the last digest, never delivered, are dropped. Read-only, so
    ``preview`` and ``run`` share it. All users are matched in one pass over one pool."""
    if not due:
        return []
    pool = store.list_papers(conn, since=min(d.window.scan_from for d in due), until=now + timedelta(seconds=1))
    first_seen = {sp.paper.key: sp.first_seen for sp in pool}
    settled = delivery.settled_among(conn, sorted(first_seen), [d.profile.name for d in due]) if pool else {}
    ranked = matching.match_all(matching.compile_profiles([d.profile for d in due]), [sp.paper for sp in pool])
    shas = sorted({sp.first_dump for sp in pool})
    names = store.dump_names(conn, shas) if shas else {}
    first_dump = {sp.paper.key: sp.first_dump for sp in pool}
    digests = []
    for d in due:
        name, done = d.profile.name, settled.get(d.profile.name, set())
        offered: list[Match] = []
        dropped: list[str] = []
        for m in ranked.get(name, ()):
            seen = first_seen[m.paper.key]
            if m.paper.key in done or seen < d.window.scan_from:
                continue
            if seen < d.window.lower:
                dropped.append(m.paper.key)
            else:
                offered.append(m)
        shown = offered[: max(d.profile.max_papers, 0)]
        dumps = sorted({Path(names[first_dump[m.paper.key]]).name for m in shown if first_dump[m.paper.key] in names})
        digests.append(
            Digest(
                profile=d.profile,
                matches=tuple(shown),
                generated_at=now,
                period=d.period.key,
                dumps=tuple(dumps),
                omitted=len(offered) - len(shown),
                overflow=tuple(offered[len(shown) :]),
                dropped=tuple(dropped),
                scheduled_at=d.period.scheduled_at,
                window_from=d.window.lower,
            )
        )
    return digests


def build_digests(
    profiles: Sequence[Profile],
    pools: Mapping[str, Sequence[StoredPaper]],
    *,
    periods: Mapping[str, str],
    now: datetime,
    dump_names: Sequence[str] = (),
) -> list[Digest]:
    """Match each profile against a given pool of papers (backtests: ``--dump``, ``--since``), keeping each
    profile's top ``max_papers``."""
    groups: dict[int, tuple[Sequence[StoredPaper], list[Profile]]] = {}
    for profile in profiles:
        pool = pools.get(profile.name, ())
        groups.setdefault(id(pool), (pool, []))[1].append(profile)
    top: dict[str, tuple[list[Match], int]] = {}
    for pool, members in groups.values():
        top.update(matching.match_top(matching.compile_profiles(members), [sp.paper for sp in pool]))
    digests = []
    for profile in profiles:
        kept, total = top.get(profile.name, ([], 0))
        digests.append(
            Digest(
                profile=profile,
                matches=tuple(kept),
                generated_at=now,
                period=periods[profile.name],
                dumps=tuple(dump_names),
                omitted=total - len(kept),
            )
        )
    return digests


# ------------------------------------------------------------------------------------------ planning


@dataclass
class Plan:
    """The due users of a run, matched and ready to render (see ``built_batches``) and store (``store_messages``)."""

    digests: list[Digest]  # due users with at least one paper to show
    cache: render.RenderCache | None
    mail: MailSettings | None
    empty: int = 0  # due users with no paper to show (their period is recorded as 'empty', not used up)
    queued: list[str] = field(default_factory=list)  # users whose message is in the outbox now
    pages: dict[int, str] = field(default_factory=dict)  # outbox row id -> user, digests queued with a page


def prepare(
    conn: sqlite3.Connection,
    cfg: config.Config,
    env: Mapping[str, str],
    *,
    now: datetime,
    run_id: int | None,
    users: Sequence[str] | None = None,
    stages: defaultdict[str, float] | None = None,
) -> Plan:
    """Find the users whose current period has no digest yet, match them all at once, and record the periods
    with nothing to show. Rendering and queueing happen per batch, in ``run_once``."""
    stages = stages if stages is not None else defaultdict(float)
    started = time.perf_counter()
    profiles = [p for p in cfg.profiles() if users is None or p.name in users]
    delivery.sync_subscribers(conn, [p.name for p in cfg.profiles()], now=now)
    due = due_users(conn, cfg, profiles, now=now)
    stages["select"] += time.perf_counter() - started
    if not due:
        return Plan([], None, None)
    started = time.perf_counter()
    digests = select_digests(conn, due, now=now)
    stages["match"] += time.perf_counter() - started
    started = time.perf_counter()
    empty = [d for d in digests if not d.matches]
    with store.transaction(conn):
        for digest in empty:
            delivery.add_message(
                conn, user=digest.profile.name, period=digest.period, scheduled_at=digest.scheduled_at or now,
                window_from=digest.window_from or now, run_id=run_id, papers_until=now, now=now, paper_keys=(),
                message=None, message_id=None, sender=None, recipient=None, dropped=digest.dropped,
            )  # fmt: skip
    stages["outbox"] += time.perf_counter() - started
    full = [d for d in digests if d.matches]
    if not full:
        return Plan([], None, None, empty=len(empty))
    started = time.perf_counter()
    cache = render.prepare_papers([m for d in full for m in d.matches], render_options(cfg))
    stages["render"] += time.perf_counter() - started
    return Plan(full, cache, mail_settings(cfg, env), empty=len(empty))


# A digest, its email, the message's bytes and (archive pages on) its archive page.
Built = tuple[Digest, RenderedEmail, bytes, str | None]


def build_messages(
    cfg: config.Config, plan_: Plan, digests: Sequence[Digest], *, now: datetime, stages: defaultdict[str, float]
) -> list[Built]:
    """Render and compose these users' digests, and their archive pages (no store access: safe in a forked
    process)."""
    assert plan_.cache is not None and plan_.mail is not None
    built: list[Built] = []
    pages = archive.enabled(cfg)
    for digest in digests:
        t0 = time.perf_counter()
        email = render_email(cfg, digest, plan_.cache, plan_.mail, now=now)
        t1 = time.perf_counter()
        data = compose(email, plan_.mail, now=now)
        t2 = time.perf_counter()
        page = archive.render_page(cfg, archive.page_digest(digest), plan_.cache, now=now) if pages else None
        built.append((digest, email, data, page))
        stages["render"] += t1 - t0 + time.perf_counter() - t2
        stages["compose"] += t2 - t1
    return built


def store_messages(
    conn: sqlite3.Connection, plan_: Plan, built: Sequence[Built], *, run_id: int | None, now: datetime
) -> list[str]:
    """Commit built digests to the outbox in one transaction, with the state of every matched paper (queued,
    carried over, archived, dropped); returns the users queued.

    With archive pages, what a digest matched beyond its email is listed on its page and recorded *archived*
    here, in the transaction that writes the message; without, it is carried over to the next digests."""
    assert plan_.mail is not None
    mail = plan_.mail
    queued = []
    with store.transaction(conn):
        for digest, email, data, page in built:
            profile = digest.profile
            shown = set(email.paper_keys)
            left = [m.paper.key for m in (*digest.matches, *digest.overflow) if m.paper.key not in shown]
            row_id = delivery.add_message(
                conn, user=profile.name, period=digest.period, scheduled_at=digest.scheduled_at or now,
                window_from=digest.window_from or now, run_id=run_id, papers_until=now, now=now,
                paper_keys=email.paper_keys, message=data,
                message_id=message_id(profile.name, digest.period, mail),
                sender=mail.sender, recipient=profile.email,
                carried=left if page is None else (), archived=left if page is not None else (),
                dropped=digest.dropped,
            )  # fmt: skip
            if row_id is not None:
                queued.append(profile.name)
                if page is not None:
                    plan_.pages[row_id] = profile.name
    plan_.queued.extend(queued)
    return queued


# What a forked renderer reads; set right before the pool forks, so the children inherit the matches and the
# render cache instead of receiving them pickled.
_FORK_STATE: tuple[config.Config, Plan, datetime] | None = None
# Below this many digests a process pool costs more than it saves.
PARALLEL_RENDER_MIN = 400
RENDER_CHUNK = 64


def _render_child(parent: int) -> None:
    """A forked renderer dies with this process: it holds a copy of the run lock's descriptor, and outliving a
    killed parent (blocked on its task queue forever) would hold the lock for every later run."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux, where fork is used)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(0)


def _build_chunk(start: int, end: int) -> tuple[list[tuple[RenderedEmail, bytes, str | None]], dict[str, float]]:
    assert _FORK_STATE is not None
    cfg, plan_, now = _FORK_STATE
    stages: defaultdict[str, float] = defaultdict(float)
    built = build_messages(cfg, plan_, plan_.digests[start:end], now=now, stages=stages)
    return [(email, data, page) for _, email, data, page in built], dict(stages)


def built_batches(
    cfg: config.Config, plan_: Plan, *, now: datetime, stages: defaultdict[str, float], stop: Callable[[], bool]
) -> Iterator[list[Built]]:
    """Every due digest rendered and composed, in batches, in order. With many digests (and ``fork``, i.e.
    Linux) the work runs in other processes while this one stores the previous batches and writes feeds: the
    run's CPU work then uses a second core before sending, instead of overlapping with sending in one thread,
    which held up the reading of the servers' replies."""
    global _FORK_STATE
    digests = plan_.digests
    workers = min(4, (os.cpu_count() or 1) - 1)
    # Forking a process that runs other threads (`digest serve`) could copy a lock some thread holds.
    forkable = "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1
    if len(digests) < PARALLEL_RENDER_MIN or workers < 1 or not forkable:
        for start in range(0, len(digests), QUEUE_BATCH):
            if stop():
                return
            yield build_messages(cfg, plan_, digests[start : start + QUEUE_BATCH], now=now, stages=stages)
        return
    _FORK_STATE = (cfg, plan_, now)
    chunks = [(start, min(start + RENDER_CHUNK, len(digests))) for start in range(0, len(digests), RENDER_CHUNK)]
    try:
        context, parent = multiprocessing.get_context("fork"), os.getpid()
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_render_child, initargs=(parent,)) as pool:
            # A few chunks ahead, not all: finished chunks wait in this process's memory.
            ahead = 2 * workers
            pending = collections.deque(pool.submit(_build_chunk, *chunk) for chunk in chunks[:ahead])
            for n, (start, _end) in enumerate(chunks):
                if stop():
                    for future in pending:
                        future.cancel()
                    return
                built, times = pending.popleft().result()
                if n + ahead < len(chunks):
                    pending.append(pool.submit(_build_chunk, *chunks[n + ahead]))
                for name, seconds in times.items():
                    stages[name] += seconds
                yield [(digests[start + i], email, data, page) for i, (email, data, page) in enumerate(built)]
    finally:
        _FORK_STATE = None


def render_email(
    cfg: config.Config, digest: Digest, cache: render.RenderCache, mail: MailSettings, *, now: datetime
) -> RenderedEmail:
    """The email of one digest, as ``run`` queues it and ``preview`` shows it."""
    profile = digest.profile
    return render.render_digest(
        digest,
        cache,
        unsubscribe_url=_unsubscribe_link(profile, mail),
        feed_url=feed_url(cfg, profile),
        manage_hint=_manage_hint(cfg, profile),
        now=now,
        **_page_links(cfg, digest),
    )


def _page_links(cfg: config.Config, digest: Digest) -> dict[str, str | None]:
    """The email's links to its archive page ("View in browser", "N more papers"); None without pages."""
    url = archive.page_url(cfg, digest.profile.name, digest.period) if archive.enabled(cfg) else None
    return {"view_url": url, "more_url": url}


# ------------------------------------------------------------------------------------------ delivery


def _store_file(conn: sqlite3.Connection) -> Path | None:
    """The file behind ``conn`` (None for an in-memory copy)."""
    name = conn.execute("PRAGMA database_list").fetchone()[2]
    return Path(name) if name else None


def _retry_at(attempts: int, now: datetime) -> datetime:
    return now + min(RETRY_BASE * (2 ** max(attempts - 1, 0)), RETRY_CAP)


def _store_write(what: str, action: Callable[[], None]) -> None:
    """Run a store write of the delivery ledger; a failure becomes a StoreError that says what to fix."""
    try:
        action()
    except StoreError as exc:
        # store.transaction turned the write failure into an error saying what to fix; say which write it was.
        if not isinstance(exc.__cause__, sqlite3.Error):
            raise
        raise store.store_write_error(exc.__cause__, what) from exc.__cause__


@dataclass(frozen=True, slots=True)
class Delivered:
    """What one delivery pass did."""

    sent: int = 0
    deferred: int = 0
    failed: int = 0
    stopped: bool = False


def _deliver(
    conn: sqlite3.Connection,
    cfg: config.Config,
    env: Mapping[str, str],
    rows: Sequence[delivery.OutboxRow],
    *,
    options: RunOptions,
    clock: Callable[[], datetime],
) -> Delivered:
    """Send (or, in a dry run, write as .eml) these outbox rows. Each message is committed in flight right
    before its end-of-data line is written and sent right after the server's reply; its bytes are read from
    the store one at a time, so memory stays flat."""
    counts = {"sent": 0, "deferred": 0, "failed": 0}
    total = len(rows)
    if options.dry_run is not None:
        options.dry_run.mkdir(parents=True, exist_ok=True)
        for row in rows:
            if options.stop():
                return Delivered(counts["sent"], stopped=True)
            name = f"{row.user}-{row.period.replace(':', '')}.eml"
            (options.dry_run / name).write_bytes(delivery.load_message(conn, row.id))
            counts["sent"] += 1
            if options.progress:
                options.progress(counts["sent"], total)
        return Delivered(counts["sent"])
    by_key: dict[str, delivery.OutboxRow] = {}

    def on_handover(item: Outgoing, handed_over: bool) -> None:
        row_id = by_key[item.key].id
        _store_write("record a message as in flight in", lambda: delivery.mark_handed_over(conn, row_id, handed_over))

    def on_result(item: Outgoing, result: SendResult) -> None:
        row = by_key.pop(item.key)
        stamp = clock()
        if result.status == "sent":
            _store_write(
                "record a sent message in",
                lambda: delivery.mark_sent(conn, row.id, code=result.code, reply=result.reply, now=stamp),
            )
        else:
            retry = _retry_at(row.attempts + 1, stamp) if result.status == "deferred" else None
            _store_write(
                "record a failed attempt in",
                lambda: delivery.mark_failed(
                    conn, row.id, status=result.status, code=result.code, reply=result.reply, now=stamp,
                    retry_at=retry,
                ),
            )  # fmt: skip
        counts[result.status] += 1
        if options.progress:
            options.progress(sum(counts.values()), total)

    taken: list[int] = []

    def messages() -> Iterator[Outgoing]:
        for row in rows:
            by_key[str(row.id)] = row
            taken.append(row.id)
            data = delivery.load_message(conn, row.id)
            yield Outgoing(str(row.id), row.sender or cfg.mail.sender, row.recipient or "", data)

    # A full garbage collection walks every object the run made (~70 ms at 10,000 users) and would stall the
    # reading of a reply that long; nothing made before sending is garbage that matters, so it is left out.
    gc.collect()
    gc.freeze()
    try:
        with store.background_checkpoints(conn, _store_file(conn)):
            summary = asyncio.run(
                send_all(
                    messages(), smtp_settings(cfg, env), on_result=on_result, on_handover=on_handover,
                    stop=options.stop, tls_context=options.tls_context,
                )
            )  # fmt: skip
    except DeliveryError:
        # A run-level refusal (login, STARTTLS, sender) comes before DATA and every other session finished its
        # message first: a row still in flight was never handed over, so it waits as it was, not as in flight.
        delivery.release_in_flight(conn, taken)
        raise
    finally:
        gc.unfreeze()
    if summary.unreachable:
        log.error("SMTP server unreachable: %s", summary.unreachable)
    stopped = options.stop() and sum(counts.values()) < total
    return Delivered(counts["sent"], counts["deferred"], counts["failed"], stopped)


def give_up(conn: sqlite3.Connection, cfg: config.Config, *, now: datetime) -> list[delivery.OutboxRow]:
    """Settle what stopped runs left: a message handed over twice without a recorded reply counts as sent
    (see ``digest.outbox``); rows older than the retry limit are given up (their papers return to their
    users' pools, so a run does this before planning). Returns the rows given up."""
    for row in delivery.settle_handed_over(conn, now=now):
        log.warning("the digest of %s for %s was handed over twice with no reply recorded: assumed accepted",
                    row.user, row.period)  # fmt: skip
    gave_up = delivery.expire(conn, now=now, max_age=timedelta(hours=cfg.smtp.max_retry_age_hours))
    for row in gave_up:
        log.error("gave up on the digest of %s for %s: %s", row.user, row.period, row.last_reply or "never sent")
    return gave_up


def due_rows(
    conn: sqlite3.Connection,
    *,
    now: datetime,
    users: Sequence[str] | None = None,
    retry_deferred: bool = True,
) -> list[delivery.OutboxRow]:
    """Outbox rows to send now (call ``give_up`` first)."""
    return [r for r in delivery.due(conn, now=now, users=users) if retry_deferred or r.status != "deferred"]


def _gave_up_error(gave_up: Sequence[delivery.OutboxRow]) -> str:
    users = ", ".join(sorted({r.user for r in gave_up}))
    return (
        f"gave up on {len(gave_up)} digest(s) ({users}): not accepted within [smtp].max_retry_age_hours; their "
        "papers go into the next digests (`digest status` shows the server's last reply)"
    )


@dataclass(frozen=True, slots=True)
class SendReport:
    """What `digest send` did: counts, and the digests given up before sending (failed includes them)."""

    sent: int = 0
    deferred: int = 0
    failed: int = 0
    errors: tuple[str, ...] = ()


def deliver_due(
    conn: sqlite3.Connection,
    cfg: config.Config,
    env: Mapping[str, str],
    *,
    now: datetime,
    options: RunOptions = RunOptions(),
    clock: Callable[[], datetime] | None = None,
    retry_deferred: bool = True,
) -> SendReport:
    """Send every due outbox row (or write it as .eml in a dry run)."""
    gave_up = give_up(conn, cfg, now=now)
    errors = (_gave_up_error(gave_up),) if gave_up else ()
    rows = due_rows(conn, now=now, users=options.users, retry_deferred=retry_deferred)
    if not rows:
        return SendReport(failed=len(gave_up), errors=errors)
    done = _deliver(conn, cfg, env, rows, options=options, clock=clock or (lambda: now))
    return SendReport(done.sent, done.deferred, done.failed + len(gave_up), errors)


# ------------------------------------------------------------------------------------------ one run


def scratch_copy(conn: sqlite3.Connection) -> sqlite3.Connection:
    """An in-memory copy of the store, so a dry run goes through every motion and changes nothing."""
    scratch = sqlite3.connect(":memory:", isolation_level=None)
    conn.backup(scratch)
    scratch.row_factory = sqlite3.Row
    return scratch


def _ingest_inbox(
    conn: sqlite3.Connection, cfg: config.Config, options: RunOptions, *, now: datetime, errors: list[str]
) -> list[IngestReport]:
    found = inbox_files(conn, cfg.digest.inbox)
    stats = dict(found)
    paths = [path for path, _ in found]
    if options.fetch and cfg.digest.source_url:
        try:
            fetched = fetch.fetch_listing(
                cfg.digest.source_url,
                cfg.digest.inbox if options.dry_run is None else options.dry_run,
                timeout=cfg.digest.fetch_timeout,
            )
            if fetched not in paths:
                paths.append(fetched)
        except DigestError as exc:
            errors.append(str(exc))
    reports, refused = ingest_paths(conn, paths, now=now, inbox_stats=stats)
    for path, message in refused:
        # A refused dump left in the inbox would fail every later run too: one report, then it moves.
        if options.dry_run is None and path.parent == cfg.digest.inbox:
            try:
                moved = quarantine(path)
                message += f" (moved to {moved}; fix it and move it back into the inbox to retry)"
            except OSError as exc:
                message += f" (could not move it to {path.parent / 'refused'}: {exc.strerror})"
        log.error("dump refused: %s", message)
        errors.append(message)
    return reports


def _write_archive(action: Callable[[], object], errors: list[str]) -> bool:
    """Write archive pages; a failure is reported and the run goes on (the next run writes what is missing)."""
    try:
        action()
    except DigestError as exc:
        log.error("archive pages: %s", exc)
        errors.append(f"archive pages not written: {exc} (the next run writes them)")
        return False
    return True


def run_once(
    cfg: config.Config,
    env: Mapping[str, str],
    *,
    now: datetime,
    options: RunOptions = RunOptions(),
    clock: Callable[[], datetime] | None = None,
) -> RunReport:
    """The whole job once: collect and ingest dumps, plan due digests, queue them all, deliver, write feeds.

    Sending does nothing but I/O and a commit per step, so a server's reply is committed as soon as it
    arrives. Idempotent."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(store.run_lock(cfg.digest.store, wait=options.wait_for_lock))
        if options.stop():  # asked to stop while waiting for the lock (SIGTERM during `digest serve`)
            return RunReport(errors=("stopped by a signal before the run started",))
        real = stack.enter_context(contextlib.closing(store.open_store(cfg.digest.store)))
        conn = real
        if options.dry_run is not None:
            conn = stack.enter_context(contextlib.closing(scratch_copy(real)))
        run_id = delivery.start_run(conn, now=now)
        errors: list[str] = []
        status = "failed"
        try:
            stages: defaultdict[str, float] = defaultdict(float)
            started = time.perf_counter()
            reports = _ingest_inbox(conn, cfg, options, now=now, errors=errors)
            stages["ingest"] = time.perf_counter() - started
            gave_up = give_up(conn, cfg, now=now) if options.deliver else []
            plan_ = prepare(conn, cfg, env, now=now, run_id=run_id, users=options.users, stages=stages)
            feed_dir = options.dry_run / "feeds" if options.dry_run is not None else None
            writer = FeedWriter.for_run(conn, cfg, feed_dir)
            fed: set[str] = set()
            profiles = {d.profile.name: d.profile for d in plan_.digests}
            pages = archive.enabled(cfg)
            if pages:
                delivery.archive_marks(conn)  # archive pages start with the first run that has them
            # Why each paper of a user's feed matched, for the papers their earlier digests showed.
            writer.explain([d.profile for d in plan_.digests if d.profile.feed])

            # Every digest is rendered and committed before the first message goes out: rendering during
            # sending would hold up the reading of the servers' replies, and that delay is the window in
            # which a crash duplicates a message (measured: a 3.2 ms median, 67 ms at worst, against 0.4 ms).
            for built in built_batches(cfg, plan_, now=now, stages=stages, stop=options.stop):
                t0 = time.perf_counter()
                users = store_messages(conn, plan_, built, run_id=run_id, now=now)
                t1 = time.perf_counter()
                stages["outbox"] += t1 - t0
                queued = set(users)
                for digest, _, _, page in built:
                    name = digest.profile.name
                    if name not in queued:
                        continue
                    writer.note(name, (*digest.matches, *digest.overflow))
                    if page is not None and not _write_archive(
                        lambda d=digest, p=page: archive.write_page(writer.out, d.profile.name, d.period, p), errors
                    ):
                        # Not written: the next run's repair must find it missing, not take it as written.
                        for row_id in [r for r, user in plan_.pages.items() if user == name]:
                            del plan_.pages[row_id]
                t2 = time.perf_counter()
                stages["archive"] += t2 - t1
                for user in users:
                    if profiles[user].feed:
                        writer.write_user(profiles[user])
                        fed.add(user)
                stages["feeds"] += time.perf_counter() - t2
            if pages:
                # The indexes, and the pages a stopped run left unwritten; the store's mark moves past them.
                started = time.perf_counter()
                _write_archive(lambda: archive.repair(conn, cfg, writer.out, written=plan_.pages), errors)
                stages["archive"] += time.perf_counter() - started
            plan_.digests.clear()  # what sending needs is in the outbox; the matches can go
            plan_.cache = None
            done = Delivered()
            if options.deliver and not options.stop():
                started = time.perf_counter()
                rows = due_rows(conn, now=now, users=options.users)
                done = _deliver(conn, cfg, env, rows, options=options, clock=clock or (lambda: now))
                stages["send"] = time.perf_counter() - started
            if gave_up:
                errors.append(_gave_up_error(gave_up))
            if done.deferred:
                errors.append(
                    f"{done.deferred} digest(s) deferred by a temporary SMTP failure (`digest status` shows the "
                    "server's reply); the next run retries them"
                )
            if options.stop():
                errors.append("stopped by a signal: what was not sent waits for the next run (a message still "
                              "in flight is sent once more, with the same Message-ID)")  # fmt: skip
            started = time.perf_counter()
            pending_feeds = [name for name in plan_.queued if name not in fed]
            written = write_feeds(conn, cfg, users=options.users, changed_users=pending_feeds, writer=writer)
            stages["feeds"] += time.perf_counter() - started
            if options.dry_run is None:
                delivery.prune_messages(conn, before=now - timedelta(days=cfg.digest.keep_sent_days))
            failed = done.failed + len(gave_up)
            status = "failed" if errors or failed else "ok"
            report = RunReport(
                dumps=tuple(reports),
                new_papers=sum(r.new for r in reports),
                sent=done.sent,
                deferred=done.deferred,
                failed=failed,
                feeds_written=tuple(str(p) for p in written),
                errors=tuple(errors),
                stages=tuple(stages.items()),
            )
            log.info(
                "run %d: %d dumps, %d new papers, %d digests planned (%d periods with no match), "
                "%d sent, %d deferred, %d failed, %d feeds written",
                run_id, len(reports), report.new_papers, len(plan_.queued), plan_.empty, done.sent, done.deferred,
                failed, len(written),
            )  # fmt: skip
            return report
        except BaseException as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            try:
                delivery.finish_run(conn, run_id, status, {"errors": errors}, now=clock() if clock else now)
            except sqlite3.Error as exc:  # never hide the run's own outcome behind a bookkeeping failure
                log.error("could not record the end of run %d: %s", run_id, exc)


# ------------------------------------------------------------------------------------------ preview


def _history_digest(cfg: config.Config, profile: Profile, since: date, *, now: datetime) -> Digest:
    """``preview --since``: the profile's best matches among every stored paper first seen since ``since``,
    streamed from the store a batch at a time (years of history would otherwise sit in memory at once)."""
    with contextlib.closing(store.open_store(cfg.digest.store, readonly=True)) as conn:
        batches = store.iter_papers(conn, since=datetime.combine(since, datetime.min.time(), UTC))
        [(kept, total)] = matching.match_top_stream(
            matching.compile_profiles([profile]), ([sp.paper for sp in batch] for batch in batches)
        ).values()
        shown = store.get_papers(conn, [m.paper.key for m in kept])
        names = store.dump_names(conn, sorted({sp.first_dump for sp in shown})) if shown else {}
    return Digest(
        profile=profile,
        matches=tuple(kept),
        generated_at=now,
        period=cadence.current_period(profile, now).key,
        dumps=tuple(sorted({Path(n).name for n in names.values()})),
        omitted=total - len(kept),
    )


def preview_digest(
    cfg: config.Config,
    env: Mapping[str, str],
    user: str,
    *,
    now: datetime,
    dump: Path | None = None,
    since: date | None = None,
) -> tuple[Digest, render.RenderCache, dict[str, str | None]]:
    """What ``user`` would receive if their period were due now (same selection as ``run``: window, carried
    over papers, nothing already delivered), or from one dump, or from stored papers since a date. Never
    writes."""
    profile = next((p for p in cfg.profiles() if p.name == user), None)
    if profile is None:
        names = ", ".join(p.name for p in cfg.profiles()) or "none"
        raise config.ConfigError(f"no user named {user!r} in {cfg.path}", f"users in this config: {names}")
    if dump is not None:
        parsed = sources.read_dump(dump)
        pool = [StoredPaper(p, now, parsed.sha256) for p in parsed.papers]
        period = cadence.current_period(profile, now).key
        [digest] = build_digests(
            [profile], {profile.name: pool}, periods={profile.name: period}, now=now, dump_names=[dump.name]
        )
    elif since is not None:
        digest = _history_digest(cfg, profile, since, now=now)
    else:
        with contextlib.closing(store.open_store(cfg.digest.store, readonly=True)) as conn:
            # A user not yet in the store counts as added now, as the next run would record them.
            [digest] = select_digests(conn, due_users(conn, cfg, [profile], now=now, force=True), now=now)
    cache = render.prepare_papers(digest.matches, render_options(cfg))
    unsubscribe = _unsubscribe_link(profile, preview_mail_settings(cfg, env))
    links = {
        "unsubscribe_url": unsubscribe,
        "feed_url": feed_url(cfg, profile),
        "manage_hint": _manage_hint(cfg, profile),
        # Only a preview of what `run` would send has a page to link to.
        **(_page_links(cfg, digest) if dump is None and since is None else {"view_url": None, "more_url": None}),
    }
    return digest, cache, links
