"""Send: hand queued messages to their channels, record sent / deferred (with backoff) / failed; give up on old ones.

Papers are marked delivered only inside the transaction that follows the server's acceptance (see
``digest.store.delivery``)."""

from __future__ import annotations

import gc
import json
import logging
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from digest import config, store
from digest.deliver.channel import Outcome, Parcel
from digest.errors import ConfigError, DeliveryError, DigestError, StoreError
from digest.pipeline.channels import make_channel
from digest.pipeline.options import RunOptions
from digest.store import delivery

log = logging.getLogger(__name__)


# A deferred message is tried again after 15 min, 30, 60, ... capped at 6 h, until max_retry_age_hours.
RETRY_BASE = timedelta(minutes=15)


RETRY_CAP = timedelta(hours=6)


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


class _StoreLedger:
    """The store's side of a delivery (``deliver.channel.Ledger``): each step is committed before the channel
    goes on, so a crash resends at most what was in flight."""

    def __init__(
        self,
        conn: store.Connection,
        rows: Mapping[str, delivery.OutboxRow],
        counts: dict[str, int],
        *,
        clock: Callable[[], datetime],
        progress: Callable[[], None],
    ) -> None:
        self.conn, self.rows, self.counts, self.clock, self.tick = conn, rows, counts, clock, progress
        self.reported: set[str] = set()
        self.paused_until: datetime | None = None  # the receiver asked the whole target to wait until then

    def handed_over(self, parcel: Parcel, handed_over: bool) -> None:
        row_id = self.rows[parcel.key].id
        _store_write(
            "record a message as in flight in", lambda: delivery.mark_handed_over(self.conn, row_id, handed_over)
        )

    def progress(self, parcel: Parcel, parts_done: int) -> None:
        row_id = self.rows[parcel.key].id
        _store_write("record a delivered part in", lambda: delivery.mark_progress(self.conn, row_id, parts_done))

    def result(self, parcel: Parcel, outcome: Outcome) -> None:
        row = self.rows[parcel.key]
        stamp = self.clock()
        if outcome.status == "sent":
            _store_write(
                "record a sent message in",
                lambda: delivery.mark_sent(self.conn, row.id, code=outcome.code, reply=outcome.reply, now=stamp),
            )
        else:
            retry = _retry_at(row.attempts + 1, stamp) if outcome.status == "deferred" else None
            if retry is not None and outcome.retry_after:  # the receiver said when (HTTP 429 Retry-After)
                retry = max(retry, stamp + timedelta(seconds=outcome.retry_after))
                self.paused_until = max(self.paused_until or retry, retry)
            _store_write(
                "record a failed attempt in",
                lambda: delivery.mark_failed(
                    self.conn, row.id, status=outcome.status, code=outcome.code, reply=outcome.reply, now=stamp,
                    retry_at=retry,
                ),
            )  # fmt: skip
        self.reported.add(parcel.key)
        self.counts[outcome.status] += 1
        self.tick()


def _dry_run_name(row: delivery.OutboxRow) -> str:
    """The file a dry run writes a row to: <user>-<period>.eml for email, .<webhook>.json for a webhook."""
    stem = f"{row.user}-{row.period.replace(':', '')}"
    if row.channel == "email":
        return stem + ".eml"
    return f"{stem}.{row.channel.partition(':')[2]}.json"


def _dry_run(conn: store.Connection, rows: Sequence[delivery.OutboxRow], options: RunOptions) -> Delivered:
    """Write each row's message (an .eml file, or a webhook's request bodies as JSON) instead of sending."""
    assert options.dry_run is not None
    options.dry_run.mkdir(parents=True, exist_ok=True)
    for n, row in enumerate(rows, 1):
        if options.stop():
            return Delivered(n - 1, stopped=True)
        data = delivery.load_message(conn, row.id)
        if row.channel != "email":  # the bodies, one per request, as the endpoint would receive them
            data = (json.dumps(json.loads(data)["parts"], indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        (options.dry_run / _dry_run_name(row)).write_bytes(data)
        if options.progress:
            options.progress(n, len(rows))
    return Delivered(len(rows))


def _parcel(conn: store.Connection, cfg: config.Config, row: delivery.OutboxRow) -> Parcel:
    return Parcel(
        key=str(row.id), user=row.user, period=row.period, data=delivery.load_message(conn, row.id),
        message_id=row.message_id or f"{row.channel}:{row.user}:{row.period}",
        recipient=row.recipient or "", sender=row.sender or cfg.mail.sender, parts_done=row.parts_done,
    )  # fmt: skip


def deliver_rows(
    conn: store.Connection,
    cfg: config.Config,
    env: Mapping[str, str],
    rows: Sequence[delivery.OutboxRow],
    *,
    options: RunOptions,
    clock: Callable[[], datetime],
) -> Delivered:
    """Deliver (or, in a dry run, write to files) these outbox rows, channel by channel, email first. Each
    message is committed in flight right before it is handed over and sent right after it is accepted; its
    bytes are read from the store one at a time, so memory stays flat. A channel refused as a whole (SMTP
    login, a webhook's missing secret) leaves its rows due and the other channels still go; the first such
    error is raised at the end."""
    if options.dry_run is not None:
        return _dry_run(conn, rows, options)
    counts = {"sent": 0, "deferred": 0, "failed": 0}
    total = len(rows)

    def tick() -> None:
        if options.progress:
            options.progress(sum(counts.values()), total)

    by_channel: dict[str, list[delivery.OutboxRow]] = {}
    for row in sorted(rows, key=lambda r: r.channel != "email"):
        by_channel.setdefault(row.channel, []).append(row)
    refused: list[DigestError] = []
    # A full garbage collection walks every object the run made (~70 ms at 10,000 users) and would stall the
    # reading of a reply that long; nothing made before sending is garbage that matters, so it is left out.
    gc.collect()
    gc.freeze()
    try:
        with store.background_checkpoints(conn, store.store_file(conn)):
            for name, group in by_channel.items():
                if options.stop():
                    break
                try:
                    _deliver_channel(conn, cfg, env, name, group, counts, options=options, clock=clock, tick=tick)
                except (DeliveryError, ConfigError) as exc:
                    refused.append(exc)
    finally:
        gc.unfreeze()
    if refused:
        raise refused[0]
    stopped = options.stop() and sum(counts.values()) < total
    return Delivered(counts["sent"], counts["deferred"], counts["failed"], stopped)


def _deliver_channel(
    conn: store.Connection,
    cfg: config.Config,
    env: Mapping[str, str],
    name: str,
    rows: Sequence[delivery.OutboxRow],
    counts: dict[str, int],
    *,
    options: RunOptions,
    clock: Callable[[], datetime],
    tick: Callable[[], None],
) -> None:
    by_key = {str(row.id): row for row in rows}
    ledger = _StoreLedger(conn, by_key, counts, clock=clock, progress=tick)
    channel = options.deliver_to or make_channel(cfg, env, name, tls_context=options.tls_context)
    if channel is None:  # a webhook taken out of the config: its digests cannot go anywhere
        for row in rows:
            ledger.result(
                _parcel(conn, cfg, row),
                Outcome("failed", None, f"{name} is no longer in {cfg.path.name}: not delivered on it"),
            )
        return
    taken: list[int] = []

    def parcels() -> Iterator[Parcel]:
        for row in rows:
            taken.append(row.id)
            yield _parcel(conn, cfg, row)

    try:
        channel.deliver(parcels(), ledger, stop=options.stop)
        if ledger.paused_until is not None:
            # A rate limit is the target's, not one digest's: the digests it did not get to wait as long.
            waiting = [row.id for row in rows if str(row.id) not in ledger.reported]
            delivery.postpone(conn, waiting, until=ledger.paused_until)
    except DeliveryError:
        # A channel-wide refusal (login, STARTTLS, sender) comes before any hand-over of the parcels still
        # unanswered: a row left in flight was never handed over, so it waits as it was, not as in flight.
        delivery.release_in_flight(conn, taken)
        raise


def give_up(conn: store.Connection, cfg: config.Config, *, now: datetime) -> list[delivery.OutboxRow]:
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
    conn: store.Connection,
    *,
    now: datetime,
    users: Sequence[str] | None = None,
    retry_deferred: bool = True,
) -> list[delivery.OutboxRow]:
    """Outbox rows to send now (call ``give_up`` first)."""
    return [r for r in delivery.due(conn, now=now, users=users) if retry_deferred or r.status != "deferred"]


def gave_up_error(gave_up: Sequence[delivery.OutboxRow]) -> str:
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
    conn: store.Connection,
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
    errors = (gave_up_error(gave_up),) if gave_up else ()
    rows = due_rows(conn, now=now, users=options.users, retry_deferred=retry_deferred)
    if not rows:
        return SendReport(failed=len(gave_up), errors=errors)
    done = deliver_rows(conn, cfg, env, rows, options=options, clock=clock or (lambda: now))
    return SendReport(done.sent, done.deferred, done.failed + len(gave_up), errors)
