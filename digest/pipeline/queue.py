"""Queue: render each planned digest into a message (in a forked pool for big runs) and commit it to the outbox."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import multiprocessing
import os
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime

from digest import config, render, store
from digest.deliver.email import (
    MailSettings,
    message_id,
    unsubscribe_mailto_url,
    unsubscribe_url,
)
from digest.models import Digest, Profile, RenderedEmail
from digest.pipeline import archive, feedback
from digest.pipeline.channels import channel_messages, message_parts
from digest.pipeline.plan import Plan
from digest.pipeline.settings import feed_url
from digest.store import delivery

# Digests rendered and committed to the outbox per transaction.
QUEUE_BATCH = 16


# A digest, its email, its message on each of its user's channels (ledger name -> bytes) and (archive pages on)
# its archive page.
Built = tuple[Digest, RenderedEmail, dict[str, bytes], str | None]


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
        links = digest_links(cfg, digest, plan_.mail)
        email = render.render_digest(digest, plan_.cache, links=links, now=now)
        t1 = time.perf_counter()
        data = channel_messages(cfg, digest, email, plan_.mail, now=now)
        t2 = time.perf_counter()
        page = None
        if pages:  # what the email showed, the overflow, with the same vote links
            shown = archive.page_digest(digest, email.paper_keys)
            page = archive.render_page(cfg, shown, plan_.cache, now=now, votes=links.votes)
        built.append((digest, email, data, page))
        stages["render"] += t1 - t0 + time.perf_counter() - t2
        stages["compose"] += t2 - t1
    return built


def store_messages(
    conn: store.Connection, plan_: Plan, built: Sequence[Built], *, run_id: int | None, now: datetime
) -> list[str]:
    """Commit built digests to the outbox in one transaction, with the state of every matched paper (queued,
    carried over, archived, dropped); returns the users queued.

    With archive pages, what a digest matched beyond its email is listed on its page and recorded *archived*
    here, in the transaction that writes the message; without, it is carried over to the next digests."""
    assert plan_.mail is not None
    mail = plan_.mail
    queued = []
    with store.transaction(conn):
        for digest, email, messages, page in built:
            if not messages:  # a user with no channel (the config refuses one): nothing to record
                continue
            profile = digest.profile
            shown = set(email.paper_keys)
            matched = [m.paper.key for m in (*digest.matches, *digest.overflow)]
            left = [key for key in matched if key not in shown]
            mid = message_id(profile.name, digest.period, mail)
            lead, *others = messages
            row_id = delivery.add_message(
                conn, user=profile.name, period=digest.period, scheduled_at=digest.scheduled_at or now,
                window_from=digest.window_from or now, run_id=run_id, papers_until=now, now=now,
                paper_keys=email.paper_keys, message=messages[lead], channel=lead,
                parts=message_parts(lead, messages[lead]), message_id=mid if lead == "email" else f"{lead}/{mid}",
                sender=mail.sender if lead == "email" else None, recipient=profile.email if lead == "email" else None,
                carried=left if page is None else (), archived=left if page is not None else (),
                dropped=digest.dropped, suggested=suggested_shown(digest, email.paper_keys, matched),
            )  # fmt: skip
            if row_id is not None:
                for name in others:  # the digest on the user's other channels, same papers, same period
                    delivery.add_message(
                        conn, user=profile.name, period=digest.period, scheduled_at=digest.scheduled_at or now,
                        window_from=digest.window_from or now, run_id=run_id, papers_until=now, now=now,
                        paper_keys=email.paper_keys, message=messages[name], channel=name, lead_id=row_id,
                        parts=message_parts(name, messages[name]), message_id=f"{name}/{mid}", sender=None,
                        recipient=None,
                    )  # fmt: skip
                queued.append(profile.name)
                if page is not None:
                    plan_.pages[row_id] = profile.name
    plan_.queued.extend(queued)
    return queued


def suggested_shown(digest: Digest, shown: Sequence[str], matched: Sequence[str]) -> list[tuple[str, str]]:
    """The "Also for you" papers the message shows (``shown``: its paper keys), (key, reason) in its order: what
    the store keeps so that pages and feeds rebuilt later label them as this digest did. A paper among the
    matches is shown as a match (render keeps each paper once, the matches first)."""
    reasons: dict[str, str] = {}
    for m in digest.suggestions:
        reasons.setdefault(m.paper.key, m.reason)
    skip = set(matched)
    return [(key, reasons[key]) for key in shown if key in reasons and key not in skip]


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


def _build_chunk(
    start: int, end: int
) -> tuple[list[tuple[RenderedEmail, dict[str, bytes], str | None]], dict[str, float]]:
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
    return render.render_digest(digest, cache, links=digest_links(cfg, digest, mail), now=now)


def digest_links(cfg: config.Config, digest: Digest, mail: MailSettings, *, pages: bool = True) -> render.DigestLinks:
    """The links of one user's digest: unsubscribe, feed, the profile hint, (archive pages on, and ``pages``)
    the digest's page for "View in browser" and "N more papers", and ([digest].base_url set) the thumbs-up/down
    links of each paper it can show: its matches, the overflow its page lists, its suggestions, signed with
    ``mail.secret`` (a preview's stand-in secret makes links that do not verify)."""
    profile = digest.profile
    url = archive.page_url(cfg, profile.name, digest.period) if pages and archive.enabled(cfg) else None
    papers = (*digest.matches, *(digest.overflow if url else ()), *digest.suggestions)
    votes = feedback.vote_urls(cfg, mail.secret, profile.name, [m.paper.key for m in papers]) if papers else {}
    return render.DigestLinks(
        unsubscribe_url=unsubscribe_link(profile, mail), feed_url=feed_url(cfg, profile),
        manage_hint=manage_hint(cfg, profile), view_url=url, more_url=url, votes=votes,
    )  # fmt: skip


def manage_hint(cfg: config.Config, profile: Profile) -> str:
    return f"Your profile is the [[users]] entry named {profile.name!r} in {cfg.path.name}; edit its keywords there."


def unsubscribe_link(profile: Profile, mail: MailSettings) -> str:
    """The body's unsubscribe link: the one-click https URL, else the same mailto the header carries."""
    return (
        unsubscribe_url(profile.name, mail)
        or unsubscribe_mailto_url(profile.name, mail)
        or f"mailto:{mail.sender}?subject=unsubscribe"
    )
