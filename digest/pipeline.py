"""The order of the stages: sources -> store -> match -> render -> deliver, plus feeds.

Only this module knows that order; the CLI and the scheduler call ``run_once``, ``deliver_due``,
``preview`` and ``write_feeds`` and nothing else. Each user is isolated: one user's failure is recorded
and the others go on. Papers are marked delivered only inside the transaction that follows the SMTP
server's acceptance (see ``digest.outbox``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import sqlite3
import ssl
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from digest import cadence, compose, config, match, outbox, render, smtp, sources, store
from digest.errors import DigestError, DumpError
from digest.models import Digest, IngestReport, Match, Profile, RunReport, StoredPaper
from digest.publish import FeedWriter, write_feeds
from digest.settings import feed_url, mail_settings, preview_mail_settings, render_options, smtp_settings
from digest.sources import fetch

log = logging.getLogger(__name__)

# A deferred message is tried again after 15 min, 30, 60, ... capped at 6 h, until max_retry_age_hours.
RETRY_BASE = timedelta(minutes=15)
RETRY_CAP = timedelta(hours=6)
# Digests rendered and committed to the outbox per transaction while sending: small enough to keep the SMTP
# connections busy, large enough that commits are not the cost.
QUEUE_BATCH = 8


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


def _unsubscribe_link(profile: Profile, mail: compose.MailSettings) -> str:
    """The body's unsubscribe link: the one-click https URL, else the same mailto the header carries."""
    return (
        compose.unsubscribe_url(profile.name, mail)
        or compose.unsubscribe_mailto_url(profile.name, mail)
        or f"mailto:{mail.sender}?subject=unsubscribe"
    )


# ------------------------------------------------------------------------------------------ ingest


def inbox_files(conn: sqlite3.Connection, inbox: Path) -> list[Path]:
    """Files in the inbox not ingested yet (by content hash), in name order."""
    if not inbox.is_dir():
        return []
    fresh = []
    for path in sorted(inbox.iterdir()):
        visible = path.is_file() and not path.name.startswith(".")
        if visible and not store.is_ingested(conn, hashlib.sha256(path.read_bytes()).hexdigest()):
            fresh.append(path)
    return fresh


def ingest_paths(
    conn: sqlite3.Connection, paths: Sequence[Path], *, now: datetime
) -> tuple[list[IngestReport], list[tuple[Path, str]]]:
    """Ingest each file; a refused dump is returned with its error and the others go on."""
    reports, refused = [], []
    for path in paths:
        try:
            reports.append(store.ingest(conn, sources.read_dump(path), now=now))
        except DumpError as exc:
            refused.append((path, str(exc)))
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


# ------------------------------------------------------------------------------------------ matching


def _lower_bound(cfg: config.Config, added: datetime | None, mark: datetime | None, now: datetime) -> datetime:
    # first_seen has second resolution and the watermark itself was already offered, hence the +1 s.
    lower = (added or now) - timedelta(days=cfg.digest.backfill_days) if mark is None else mark + timedelta(seconds=1)
    return max(lower, now - timedelta(days=cfg.digest.catchup_max_age_days))


def candidate_pools(
    conn: sqlite3.Connection, cfg: config.Config, profiles: Sequence[Profile], *, now: datetime
) -> dict[str, list[StoredPaper]]:
    """Per user, the papers not offered yet: first seen after their last digest (or when they were added,
    minus the backfill window), never older than the catch-up limit, and never delivered to them before.
    Users with the same bounds share one list, so 10,000 users cost a handful of queries."""
    marks = outbox.watermarks(conn)
    added = {row["name"]: datetime.fromisoformat(row["added_at"]) for row in conn.execute("SELECT * FROM subscribers")}
    lowers = {p.name: _lower_bound(cfg, added.get(p.name), marks.get(p.name), now) for p in profiles}
    by_lower = {
        lower: store.list_papers(conn, since=lower, until=now + timedelta(seconds=1)) for lower in set(lowers.values())
    }
    keys = sorted({sp.paper.key for pool in by_lower.values() for sp in pool})
    delivered = outbox.delivered_among(conn, keys) if keys else {}
    pools = {}
    for name, lower in lowers.items():
        pool = by_lower[lower]
        done = delivered.get(name)
        pools[name] = [sp for sp in pool if sp.paper.key not in done] if done else pool
    return pools


def build_digests(
    profiles: Sequence[Profile],
    pools: Mapping[str, Sequence[StoredPaper]],
    *,
    periods: Mapping[str, str],
    now: datetime,
    dump_names: Sequence[str] = (),
) -> list[Digest]:
    """Match every profile against its own pool of papers, keeping each profile's top ``max_papers``.

    Users whose pools are the same list (the usual case: same watermark, nothing delivered twice) share one
    automaton and one pass over the papers; only the matches a digest shows are built in full."""
    groups: dict[int, tuple[Sequence[StoredPaper], list[Profile]]] = {}
    for profile in profiles:
        pool = pools.get(profile.name, ())
        groups.setdefault(id(pool), (pool, []))[1].append(profile)
    top: dict[str, tuple[list[Match], int]] = {}
    for pool, members in groups.values():
        top.update(match.match_top(match.compile_profiles(members), [sp.paper for sp in pool]))
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
    """The due users of a run, matched and ready to render one by one (see ``enqueue_digests``)."""

    digests: list[Digest]  # due users with at least one matching paper
    cache: render.RenderCache | None
    mail: compose.MailSettings | None
    empty: int = 0  # due users with no matching paper (their period is recorded as 'empty')
    queued: list[str] = field(default_factory=list)  # users whose message is in the outbox now


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
    """Find the users whose current period has no digest yet, match them all at once (one automaton), and
    record the periods with no matching paper. Rendering and queueing happen per batch in ``enqueue_digests``."""
    stages = stages if stages is not None else defaultdict(float)
    started = time.perf_counter()
    profiles = [p for p in cfg.profiles() if users is None or p.name in users]
    outbox.sync_subscribers(conn, [p.name for p in cfg.profiles()], now=now)
    gone = outbox.unsubscribed(conn)
    due: list[Profile] = []
    periods: dict[str, str] = {}
    for profile in profiles:
        if profile.name in gone:
            continue
        period = cadence.current_period(profile, now)
        if not outbox.has_period(conn, profile.name, period.key):
            due.append(profile)
            periods[profile.name] = period.key
    if not due:
        return Plan([], None, None)
    pools = candidate_pools(conn, cfg, due, now=now)
    shas = sorted({sp.first_dump for pool in {id(p): p for p in pools.values()}.values() for sp in pool})
    names = sorted({Path(n).name for n in store.dump_names(conn, shas).values()})
    stages["select"] += time.perf_counter() - started
    started = time.perf_counter()
    digests = build_digests(due, pools, periods=periods, now=now, dump_names=names)
    stages["match"] += time.perf_counter() - started
    started = time.perf_counter()
    empty = [d for d in digests if not d.matches]
    with store.transaction(conn):
        for digest in empty:
            outbox.add_message(
                conn, user=digest.profile.name, period=digest.period, run_id=run_id, papers_until=now, now=now,
                paper_keys=(), message=None, message_id=None, sender=None, recipient=None,
            )  # fmt: skip
    stages["outbox"] += time.perf_counter() - started
    full = [d for d in digests if d.matches]
    if not full:
        return Plan([], None, None, empty=len(empty))
    started = time.perf_counter()
    cache = render.prepare_papers([m for d in full for m in d.matches], render_options(cfg))
    stages["render"] += time.perf_counter() - started
    return Plan(full, cache, mail_settings(cfg, env), empty=len(empty))


def enqueue_digests(
    conn: sqlite3.Connection,
    cfg: config.Config,
    plan_: Plan,
    digests: Sequence[Digest],
    *,
    run_id: int | None,
    now: datetime,
    stages: defaultdict[str, float] | None = None,
) -> list[outbox.OutboxRow]:
    """Render and compose these users' digests and commit them to the outbox in one transaction; returns the
    new rows (a period that already has a row is skipped)."""
    stages = stages if stages is not None else defaultdict(float)
    assert plan_.cache is not None and plan_.mail is not None
    mail = plan_.mail
    render_s = compose_s = 0.0
    built = []
    for digest in digests:
        profile = digest.profile
        t0 = time.perf_counter()
        email = render.render_digest(
            digest,
            plan_.cache,
            unsubscribe_url=_unsubscribe_link(profile, mail),
            feed_url=feed_url(cfg, profile),
            manage_hint=_manage_hint(cfg, profile),
            now=now,
        )
        t1 = time.perf_counter()
        built.append((digest, email, compose.compose(email, mail, now=now)))
        render_s += t1 - t0
        compose_s += time.perf_counter() - t1
    t2 = time.perf_counter()
    rows = []
    with store.transaction(conn):
        for digest, email, data in built:
            profile = digest.profile
            row_id = outbox.add_message(
                conn, user=profile.name, period=digest.period, run_id=run_id, papers_until=now, now=now,
                paper_keys=email.paper_keys, message=data,
                message_id=compose.message_id(profile.name, digest.period, mail),
                sender=mail.sender, recipient=profile.email,
            )  # fmt: skip
            if row_id is not None:
                rows.append(
                    outbox.OutboxRow(
                        id=row_id,
                        user=profile.name,
                        period=digest.period,
                        status="pending",
                        recipient=profile.email,
                        sender=mail.sender,
                        message_id=None,
                        message=data,
                        paper_keys=email.paper_keys,
                        attempts=0,
                        last_code=None,
                        last_reply=None,
                        created_at=now,
                        sent_at=None,
                        run_id=run_id,
                    )
                )
    plan_.queued.extend(row.user for row in rows)
    stages["render"] += render_s
    stages["compose"] += compose_s
    stages["outbox"] += time.perf_counter() - t2
    return rows


# ------------------------------------------------------------------------------------------ delivery


def _retry_at(attempts: int, now: datetime) -> datetime:
    return now + min(RETRY_BASE * (2 ** max(attempts - 1, 0)), RETRY_CAP)


def _deliver(
    conn: sqlite3.Connection,
    cfg: config.Config,
    env: Mapping[str, str],
    rows: Iterable[outbox.OutboxRow],
    *,
    total: int,
    options: RunOptions,
    clock: Callable[[], datetime],
) -> tuple[int, int, int]:
    """Send (or, in a dry run, write as .eml) the outbox rows as ``rows`` yields them.

    ``rows`` may be lazy: a run renders and queues each new digest while the server is busy with the previous
    ones, so the CPU work of the run overlaps with the server's.
    """
    counts = {"sent": 0, "deferred": 0, "failed": 0}
    if options.dry_run is not None:
        options.dry_run.mkdir(parents=True, exist_ok=True)
        for row in rows:
            if options.stop():
                break
            name = f"{row.user}-{row.period.replace(':', '')}.eml"
            data = row.message if row.message is not None else outbox.load_message(conn, row.id)
            (options.dry_run / name).write_bytes(data)
            counts["sent"] += 1
            if options.progress:
                options.progress(counts["sent"], total)
        return counts["sent"], 0, 0
    by_key: dict[str, outbox.OutboxRow] = {}

    def on_result(item: smtp.Outgoing, result: smtp.SendResult) -> None:
        row = by_key.pop(item.key)
        stamp = clock()
        if result.status == "sent":
            outbox.mark_sent(
                conn, row.id, code=result.code, reply=result.reply, now=stamp, user=row.user, paper_keys=row.paper_keys
            )
        else:
            retry = _retry_at(row.attempts + 1, stamp) if result.status == "deferred" else None
            outbox.mark_failed(
                conn, row.id, status=result.status, code=result.code, reply=result.reply, now=stamp, retry_at=retry
            )
        counts[result.status] += 1
        if options.progress:
            options.progress(sum(counts.values()), total)

    def messages() -> Iterator[smtp.Outgoing]:
        for row in rows:
            if options.stop():
                return  # SIGTERM: what is not queued or not sent waits for the next run
            by_key[str(row.id)] = row
            # A row queued by this run carries its bytes (just committed); a row from the store is read back.
            data = row.message if row.message is not None else outbox.load_message(conn, row.id)
            yield smtp.Outgoing(str(row.id), row.sender or cfg.mail.sender, row.recipient or "", data)

    summary = asyncio.run(
        smtp.send_all(messages(), smtp_settings(cfg, env), on_result=on_result, tls_context=options.tls_context)
    )
    if summary.unreachable:
        log.error("SMTP server unreachable: %s", summary.unreachable)
    return counts["sent"], counts["deferred"], counts["failed"]


def due_rows(
    conn: sqlite3.Connection,
    cfg: config.Config,
    *,
    now: datetime,
    users: Sequence[str] | None = None,
    retry_deferred: bool = True,
) -> list[outbox.OutboxRow]:
    """Outbox rows to send now, after giving up on those older than the retry limit."""
    outbox.expire(conn, now=now, max_age=timedelta(hours=cfg.smtp.max_retry_age_hours))
    return [r for r in outbox.due(conn, now=now, users=users) if retry_deferred or r.status == "pending"]


def deliver_due(
    conn: sqlite3.Connection,
    cfg: config.Config,
    env: Mapping[str, str],
    *,
    now: datetime,
    options: RunOptions = RunOptions(),
    clock: Callable[[], datetime] | None = None,
    retry_deferred: bool = True,
) -> tuple[int, int, int]:
    """Send every due outbox row (or write it as .eml in a dry run); returns (sent, deferred, failed)."""
    rows = due_rows(conn, cfg, now=now, users=options.users, retry_deferred=retry_deferred)
    if not rows:
        return 0, 0, 0
    return _deliver(conn, cfg, env, rows, total=len(rows), options=options, clock=clock or (lambda: now))


# ------------------------------------------------------------------------------------------ one run


def scratch_copy(conn: sqlite3.Connection) -> sqlite3.Connection:
    """An in-memory copy of the store, so a dry run goes through every motion and changes nothing."""
    scratch = sqlite3.connect(":memory:", isolation_level=None)
    conn.backup(scratch)
    scratch.row_factory = sqlite3.Row
    return scratch


def run_once(
    cfg: config.Config,
    env: Mapping[str, str],
    *,
    now: datetime,
    options: RunOptions = RunOptions(),
    clock: Callable[[], datetime] | None = None,
) -> RunReport:
    """The whole job once: collect and ingest dumps, plan due digests, deliver, write feeds. Idempotent."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(store.run_lock(cfg.digest.store, wait=options.wait_for_lock))
        if options.stop():  # asked to stop while waiting for the lock (SIGTERM during `digest serve`)
            return RunReport(errors=("stopped by a signal before the run started",))
        real = stack.enter_context(contextlib.closing(store.open_store(cfg.digest.store)))
        conn = real
        if options.dry_run is not None:
            conn = stack.enter_context(contextlib.closing(scratch_copy(real)))
        run_id = outbox.start_run(conn, now=now)
        errors: list[str] = []
        status = "failed"
        try:
            paths = inbox_files(conn, cfg.digest.inbox)
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
            stages: defaultdict[str, float] = defaultdict(float)
            started = time.perf_counter()
            reports, refused = ingest_paths(conn, paths, now=now)
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
            stages["ingest"] = time.perf_counter() - started
            plan_ = prepare(conn, cfg, env, now=now, run_id=run_id, users=options.users, stages=stages)
            sent = deferred = failed = 0
            started = time.perf_counter()
            before = sum(stages[k] for k in ("render", "compose", "outbox", "feeds"))
            feed_dir = options.dry_run / "feeds" if options.dry_run is not None else None
            writer = FeedWriter.for_run(conn, cfg, feed_dir)
            fed: set[str] = set()

            def fresh() -> Iterator[outbox.OutboxRow]:
                # Each user's digest is rendered, queued and their feed written while the SMTP server is busy
                # with the messages before it.
                profiles = {d.profile.name: d.profile for d in plan_.digests}
                for start in range(0, len(plan_.digests), QUEUE_BATCH):
                    batch = plan_.digests[start : start + QUEUE_BATCH]
                    for row in enqueue_digests(conn, cfg, plan_, batch, run_id=run_id, now=now, stages=stages):
                        if profiles[row.user].feed:
                            t0 = time.perf_counter()
                            writer.write_user(profiles[row.user])
                            fed.add(row.user)
                            stages["feeds"] += time.perf_counter() - t0
                        yield row

            if options.deliver:
                old = due_rows(conn, cfg, now=now, users=options.users)
                sent, deferred, failed = _deliver(
                    conn, cfg, env, itertools.chain(old, fresh()), total=len(old) + len(plan_.digests),
                    options=options, clock=clock or (lambda: now),
                )  # fmt: skip
            else:
                for _ in fresh():
                    if options.stop():
                        break
            if deferred:
                errors.append(
                    f"{deferred} digest(s) deferred by a temporary SMTP failure (`digest status` shows the server's "
                    "reply); the next run retries them"
                )
            queued_s = sum(stages[k] for k in ("render", "compose", "outbox", "feeds")) - before
            stages["send"] = time.perf_counter() - started - queued_s
            started = time.perf_counter()
            pending_feeds = [name for name in plan_.queued if name not in fed]
            written = write_feeds(conn, cfg, users=options.users, changed_users=pending_feeds, writer=writer)
            stages["feeds"] += time.perf_counter() - started
            if options.dry_run is None:
                outbox.prune_messages(conn, before=now - timedelta(days=cfg.digest.keep_sent_days))
            status = "failed" if errors or failed else "ok"
            report = RunReport(
                dumps=tuple(reports),
                new_papers=sum(r.new for r in reports),
                sent=sent,
                deferred=deferred,
                failed=failed,
                feeds_written=tuple(str(p) for p in written),
                errors=tuple(errors),
                stages=tuple(stages.items()),
            )
            log.info(
                "run %d: %d dumps, %d new papers, %d digests planned (%d periods with no match), "
                "%d sent, %d deferred, %d failed, %d feeds written",
                run_id,
                len(reports),
                report.new_papers,
                len(plan_.queued),
                plan_.empty,
                sent,
                deferred,
                failed,
                len(written),
            )
            return report
        except BaseException as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            try:
                outbox.finish_run(conn, run_id, status, {"errors": errors}, now=clock() if clock else now)
            except sqlite3.Error as exc:  # never hide the run's own outcome behind a bookkeeping failure
                log.error("could not record the end of run %d: %s", run_id, exc)


# ------------------------------------------------------------------------------------------ preview


def preview_digest(
    cfg: config.Config,
    env: Mapping[str, str],
    user: str,
    *,
    now: datetime,
    dump: Path | None = None,
    since: date | None = None,
) -> tuple[Digest, render.RenderCache, dict[str, str | None]]:
    """What ``user`` would receive now (or from one dump, or from stored papers since a date); never writes."""
    profile = next((p for p in cfg.profiles() if p.name == user), None)
    if profile is None:
        names = ", ".join(p.name for p in cfg.profiles()) or "none"
        raise config.ConfigError(f"no user named {user!r} in {cfg.path}", f"users in this config: {names}")
    dump_names: list[str] = []
    if dump is not None:
        parsed = sources.read_dump(dump)
        pool = [StoredPaper(p, now, parsed.sha256) for p in parsed.papers]
        dump_names = [dump.name]
    else:
        conn = store.open_store(cfg.digest.store, readonly=True)
        try:
            if since is not None:
                pool = store.list_papers(conn, since=datetime.combine(since, datetime.min.time(), UTC))
            else:
                # Exactly what the next run would consider (a user not yet in the store counts as added now).
                pool = candidate_pools(conn, cfg, [profile], now=now)[user]
            shas = sorted({sp.first_dump for sp in pool})
            dump_names = sorted({Path(n).name for n in store.dump_names(conn, shas).values()})
        finally:
            conn.close()
    period = cadence.current_period(profile, now).key
    [digest] = build_digests(
        [profile], {profile.name: pool}, periods={profile.name: period}, now=now, dump_names=dump_names
    )
    cache = render.prepare_papers(digest.matches, render_options(cfg))
    unsubscribe = _unsubscribe_link(profile, preview_mail_settings(cfg, env))
    links = {
        "unsubscribe_url": unsubscribe,
        "feed_url": feed_url(cfg, profile),
        "manage_hint": _manage_hint(cfg, profile),
    }
    return digest, cache, links
