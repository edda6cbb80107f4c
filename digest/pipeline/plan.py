"""Plan: who is due, each user's window of papers, the digests (matches) to send, all chosen before any render."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from digest import config, matching, render, store
from digest.config import cadence
from digest.deliver.email import (
    MailSettings,
)
from digest.models import Digest, Match, Paper, Profile, StoredPaper
from digest.pipeline.settings import mail_settings, render_options
from digest.store import delivery


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
    conn: store.Connection, cfg: config.Config, profiles: Sequence[Profile], *, now: datetime, force: bool = False
) -> list[Due]:
    """Users whose current period has no digest yet (``force``: every given user, as if due now). Read-only."""
    added = delivery.subscribers_added(conn)
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


def select_digests(
    conn: store.Connection, due: Sequence[Due], *, now: datetime, ranker: matching.Ranker | None = None
) -> list[Digest]:
    """Every due user's digest: their matches among the papers of their window that are not settled for them
    (queued, delivered, archived or dropped), in the order of ``ranker`` (default: the keywords' order, best
    first); the first ``max_papers`` are shown, the rest carried over; matches that left the window since the
    last digest, never delivered, are dropped. Read-only, so ``preview`` and ``run`` share it. All users are
    matched in one pass over one pool, then ranked one by one."""
    if not due:
        return []
    ranker = ranker if ranker is not None else matching.KeywordRanker()
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
        matched = ranked.get(name, ())
        for m in matched:
            seen = first_seen[m.paper.key]
            if m.paper.key in done or seen < d.window.scan_from:
                continue
            if seen < d.window.lower:
                dropped.append(m.paper.key)
            else:
                offered.append(m)
        candidates = _candidates(pool, d.window, done, matched) if ranker.wants_candidates else None
        order = matching.rank_matches(ranker, d.profile, tuple(offered), candidates=candidates, now=now)
        shown = order.matches[: max(d.profile.max_papers, 0)]
        dumps = sorted({Path(names[first_dump[m.paper.key]]).name for m in shown if first_dump[m.paper.key] in names})
        digests.append(
            Digest(
                profile=d.profile,
                matches=shown,
                generated_at=now,
                period=d.period.key,
                dumps=tuple(dumps),
                omitted=len(order.matches) - len(shown),
                overflow=order.matches[len(shown) :],
                dropped=tuple(dropped),
                scheduled_at=d.period.scheduled_at,
                window_from=d.window.lower,
                suggestions=order.suggestions[: max(d.profile.suggestions, 0)],
            )
        )
    return digests


def ranker_context(
    conn: store.Connection, name: str, profiles: Sequence[Profile], *, now: datetime
) -> matching.RankerContext:
    """What the run's ranker is built from. For a learning ranker: every due user's like/dislike seeds, the
    model each saved last time, and the votes of the users it must (re)train: those with votes since their
    saved model, with votes and no model, or whose model no longer fits their seeds. The others keep their
    model as it is, so a run trains only the users who voted."""
    if name == matching.DEFAULT_RANKER or not profiles:
        return matching.RankerContext(now=now)
    from digest.pipeline import feedback

    users = [p.name for p in profiles]
    seeds = {
        user: (tuple(liked), tuple(disliked)) for user, (liked, disliked) in feedback.seeds_for(conn, profiles).items()
    }
    saved = store.feedback.load_states(conn, name, users)
    voted = store.feedback.voters_since(conn, {u: saved[u][1] if u in saved else None for u in users})
    train = [
        u for u in users
        if u in voted or (u in saved and not matching.state_is_current(saved[u][0], seeds.get(u, ((), ()))))
    ]  # fmt: skip
    # Read one user at a time as the ranker trains them: never every user's votes at once.
    votes = feedback.StoredVotes(conn, train)
    return matching.RankerContext(
        now=now, votes=votes, seeds=seeds, states={u: state for u, (state, _) in saved.items() if u not in train}
    )


def save_ranker_states(
    conn: store.Connection, name: str, ranker: matching.Ranker, context: matching.RankerContext, *, now: datetime
) -> None:
    """Keep the models a learning ranker trained this run, each with the time of the newest vote it saw (the
    next run retrains a user only if they voted after it)."""
    from digest.pipeline import feedback

    trained = matching.ranker_states(ranker)
    if trained:
        votes = context.votes
        if isinstance(votes, feedback.StoredVotes):  # the newest vote each model saw, not read twice
            until = {u: votes.newest(u) or now for u in trained}
        else:
            until = {u: max((v.at for v in votes.get(u, ())), default=now) for u in trained}
        store.feedback.save_states(conn, name, {u: (state, until[u]) for u, state in trained.items()}, now)


def _candidates(
    pool: Sequence[StoredPaper], window: Window, settled: set[str], matched: Sequence[Match]
) -> list[Paper]:
    """What a ranker may suggest to a user: the papers of their window no keyword matched, not settled for them."""
    skip = settled | {m.paper.key for m in matched}
    return [sp.paper for sp in pool if sp.first_seen >= window.lower and sp.paper.key not in skip]


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
    conn: store.Connection,
    cfg: config.Config,
    env: Mapping[str, str],
    *,
    now: datetime,
    run_id: int | None,
    users: Sequence[str] | None = None,
    stages: defaultdict[str, float] | None = None,
    ranker: str | None = None,
) -> Plan:
    """Find the users whose current period has no digest yet, match them all at once, order each user's matches
    with ``ranker`` (a name in ``matching.RANKERS``; default [digest].ranker),
    and record the periods with nothing to show. Rendering and
    queueing happen per batch, in ``run_once``."""
    stages = stages if stages is not None else defaultdict(float)
    started = time.perf_counter()
    profiles = [p for p in cfg.profiles() if users is None or p.name in users]
    delivery.sync_subscribers(conn, [p.name for p in cfg.profiles()], now=now)
    due = due_users(conn, cfg, profiles, now=now)
    stages["select"] += time.perf_counter() - started
    if not due:
        return Plan([], None, None)
    started = time.perf_counter()
    name = ranker or cfg.digest.ranker
    context = ranker_context(conn, name, [d.profile for d in due], now=now)
    run_ranker = matching.make_ranker(name, context)
    digests = select_digests(conn, due, now=now, ranker=run_ranker)
    save_ranker_states(conn, name, run_ranker, context, now=now)
    stages["match"] += time.perf_counter() - started
    started = time.perf_counter()
    empty = [d for d in digests if not d.matches and not d.suggestions]
    with store.transaction(conn):
        for digest in empty:
            delivery.add_message(
                conn, user=digest.profile.name, period=digest.period, scheduled_at=digest.scheduled_at or now,
                window_from=digest.window_from or now, run_id=run_id, papers_until=now, now=now, paper_keys=(),
                message=None, message_id=None, sender=None, recipient=None, dropped=digest.dropped,
            )  # fmt: skip
    stages["outbox"] += time.perf_counter() - started
    full = [d for d in digests if d.matches or d.suggestions]
    if not full:
        return Plan([], None, None, empty=len(empty))
    started = time.perf_counter()
    cache = render.prepare_papers([m for d in full for m in (*d.matches, *d.suggestions)], render_options(cfg))
    stages["render"] += time.perf_counter() - started
    return Plan(full, cache, mail_settings(cfg, env), empty=len(empty))
