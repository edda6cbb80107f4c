"""Send: hand queued messages to the channel, record sent / deferred (with backoff) / failed; give up on old ones.

Papers are marked delivered only inside the transaction that follows the server's acceptance (see
``digest.store.delivery``)."""

from __future__ import annotations

import asyncio
import gc
import logging
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from digest import config, store
from digest.deliver.email import (
    Outgoing,
    SendResult,
    send_all,
)
from digest.errors import DeliveryError, StoreError
from digest.pipeline.options import RunOptions
from digest.pipeline.settings import smtp_settings
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


def deliver_rows(
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
        with store.background_checkpoints(conn, store.store_file(conn)):
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
    errors = (gave_up_error(gave_up),) if gave_up else ()
    rows = due_rows(conn, now=now, users=options.users, retry_deferred=retry_deferred)
    if not rows:
        return SendReport(failed=len(gave_up), errors=errors)
    done = deliver_rows(conn, cfg, env, rows, options=options, clock=clock or (lambda: now))
    return SendReport(done.sent, done.deferred, done.failed + len(gave_up), errors)
