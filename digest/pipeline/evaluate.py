"""`digest evaluate`: replay dumps day by day through the real pipeline for one user, and measure what showed.

Every day is a real `digest run`: the day's dump is ingested into a temporary store at 06:00 of its day, the
run plans, ranks, renders and queues the user's digest at 07:05 with a fixed clock, and a recording channel
takes the place of the user's own (the ledger moves as in a real run; nothing leaves the machine). Then the
simulated user rates what that digest showed: with ``labels`` (the arXiv ids they would call relevant) a
thumbs-up for a labelled paper and a thumbs-down otherwise, for every shown paper or a seeded fraction of them
(real users rate a few); with ``ratings`` (a real user's ratings) the ones they gave. The votes go into the
temporary store the way `digest serve` records them, so the next day's run learns from them. Each day also
says which shown papers were "Also for you" suggestions (as the ledger recorded the delivered digest), so the
report tells how many suggestions were shown and how many of them were relevant.
"""

from __future__ import annotations

import contextlib
import random
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from digest import config, sources, store
from digest.deliver.channel import Ledger, Outcome, Parcel
from digest.pipeline.ingest import ingest_paths
from digest.pipeline.options import RunOptions
from digest.pipeline.run import run_once
from digest.store import delivery

__all__ = ["EvalDay", "EvalReport", "evaluate"]

STAND_IN_SECRET = "evaluate-only-secret-0123456789abcdef"  # the temporary store's links are never sent
_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})")


@dataclass(frozen=True, slots=True)
class EvalDay:
    """One replayed day: the dump, what the digest showed (arXiv ids, else paper keys) and the votes cast."""

    day: str
    listed: int  # papers in the day's dump
    shown: tuple[str, ...]
    # Of ``shown``, the "Also for you" papers: what the store recorded as the digest's suggestions when it was
    # queued (the ranker's picks the keywords missed), in the digest's order.
    suggested: tuple[str, ...] = ()
    relevant_listed: int = 0  # labelled papers in the dump (with labels)
    relevant_shown: int = 0
    relevant_suggested: int = 0  # labelled papers among ``suggested``: the suggestions that hit
    shown_listed: int = 0  # shown papers that the day's dump lists (score.py ignores the others)
    votes: int = 0


@dataclass(frozen=True, slots=True)
class EvalReport:
    """A replay: every day, and recall and precision (a lower bound: labels miss papers) from ``from_day`` on."""

    user: str
    ranker: str
    days: tuple[EvalDay, ...]
    from_day: int = 0
    scored: tuple[EvalDay, ...] = field(default=(), repr=False)

    @property
    def recall(self) -> float | None:
        listed = sum(d.relevant_listed for d in self.scored)
        return sum(d.relevant_shown for d in self.scored) / listed if listed else None

    @property
    def precision(self) -> float | None:
        shown = sum(d.shown_listed for d in self.scored)
        return sum(d.relevant_shown for d in self.scored) / shown if shown else None

    @property
    def shown_per_day(self) -> float:
        return sum(len(d.shown) for d in self.scored) / len(self.scored) if self.scored else 0.0

    @property
    def suggestions_shown(self) -> int:
        """How many "Also for you" papers the scored days showed."""
        return sum(len(d.suggested) for d in self.scored)

    @property
    def suggestions_hit(self) -> int:
        """Of ``suggestions_shown``, the labelled ones (relevant papers the keywords alone would have missed)."""
        return sum(d.relevant_suggested for d in self.scored)

    def rankings(self) -> dict[str, dict[str, list[str]]]:
        """What each day's digest showed, as ``../shared/relevance/score.py`` reads it."""
        return {self.user: {d.day: list(d.shown) for d in self.days}}

    def suggestions(self) -> dict[str, dict[str, list[str]]]:
        """The "Also for you" part of what each day's digest showed, in the shape of ``rankings``."""
        return {self.user: {d.day: list(d.suggested) for d in self.days}}


class _Recorder:
    """A channel that accepts every parcel at once: evaluate's stand-in for email and webhooks."""

    name = "evaluate"

    def deliver(self, parcels: Iterable[Parcel], ledger: Ledger, *, stop: Callable[[], bool]) -> None:
        for parcel in parcels:
            ledger.handed_over(parcel, True)
            ledger.result(parcel, Outcome("sent", 250, "recorded by digest evaluate"))


def _day_of(path: Path, index: int) -> date:
    found = _DATE.search(path.name)
    if found:
        with contextlib.suppress(ValueError):
            return date.fromisoformat(found.group(1))
    return date(2000, 1, 1) + timedelta(days=index)


def _scratch_config(cfg: config.Config, user: str, folder: Path) -> config.Config:
    """The config with one daily user at 07:00 UTC and a temporary store, no feeds, no archive pages."""
    daily = cfg.user(user).model_copy(
        update={"cadence": "daily", "send_time": "07:00", "timezone": "UTC", "feed": False}
    )
    digest = cfg.digest.model_copy(
        update={"store": folder / "evaluate.db", "inbox": folder / "inbox", "base_url": "", "source_url": "",
                "catchup_max_age_days": 1, "backfill_days": 1}
    )  # fmt: skip
    mail = cfg.mail.model_copy(update={"unsubscribe_mailto": cfg.mail.unsubscribe_mailto or cfg.mail.sender})
    feeds = cfg.feeds.model_copy(update={"output": folder / "feeds"})
    return replace(cfg, digest=digest, mail=mail, feeds=feeds, users=(daily,))


def _label_of(key: str, arxiv: Mapping[str, str]) -> str:
    return arxiv.get(key) or key


def evaluate(
    cfg: config.Config,
    env: Mapping[str, str],
    user: str,
    dumps: Sequence[Path],
    *,
    labels: frozenset[str] | None = None,
    ratings: Mapping[str, int] | None = None,
    rated: float = 1.0,
    seed: int = 0,
    from_day: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> EvalReport:
    """Replay ``dumps`` (in date order: a YYYY-MM-DD in each name, else the order given) for ``user``; see the
    module docstring. ``labels`` and ``ratings`` name papers by arXiv id (or paper key)."""
    rng = random.Random(seed)
    env = {**env, cfg.digest.secret_env: env.get(cfg.digest.secret_env) or STAND_IN_SECRET}
    days: list[EvalDay] = []
    ordered = sorted(enumerate(dumps), key=lambda item: (_day_of(item[1], item[0]), item[0]))
    with tempfile.TemporaryDirectory(prefix="digest-evaluate-") as tmp:
        scratch = _scratch_config(cfg, user, Path(tmp))
        for n, (index, path) in enumerate(ordered):
            day = _day_of(path, index)
            morning = datetime.combine(day, time(6, 0), tzinfo=UTC)
            with contextlib.closing(store.open_store(scratch.digest.store)) as conn:
                _, refused = ingest_paths(conn, [path], now=morning)
            if refused:  # a broken dump is no day (as score.py counts days)
                continue
            listed = sources.read_dump(path).papers
            arxiv = {p.key: p.arxiv_id for p in listed if p.arxiv_id}
            now = morning + timedelta(hours=1, minutes=5)
            run_once(scratch, env, now=now, options=RunOptions(fetch=False, deliver_to=_Recorder()))
            with contextlib.closing(store.open_store(scratch.digest.store)) as conn:
                rows = [r for r in delivery.history(conn, users=[user], limit=5) if r.created_at == now]
                keys = list(dict.fromkeys(k for r in rows for k in r.paper_keys))
                shown = tuple(_label_of(k, arxiv) for k in keys)
                # What the recording channel accepted as "Also for you", as the ledger recorded the digest.
                delivered = delivery.suggestions_of(conn, [r.id for r in rows if r.status == "sent"])
                suggested = tuple(_label_of(k, arxiv) for k in keys if k in delivered)
                votes = _rate(conn, user, keys, shown, labels, ratings, rated, rng, now=now)
            names = {_label_of(p.key, arxiv) for p in listed}
            relevant = names & labels if labels is not None else set()
            days.append(EvalDay(path.stem, len(listed), shown, suggested, relevant_listed=len(relevant),
                                relevant_shown=len(relevant & set(shown)), shown_listed=len(names & set(shown)),
                                relevant_suggested=len(relevant & set(suggested)), votes=votes))  # fmt: skip
            if progress:
                progress(n + 1, len(ordered))
    return EvalReport(user, cfg.digest.ranker, tuple(days), from_day, tuple(days[from_day:]))


def _rate(
    conn: store.Connection,
    user: str,
    keys: Sequence[str],
    shown: Sequence[str],
    labels: frozenset[str] | None,
    ratings: Mapping[str, int] | None,
    rated: float,
    rng: random.Random,
    *,
    now: datetime,
) -> int:
    """The simulated user's votes on what the digest showed, recorded as `digest serve` records a click."""
    cast = 0
    for key, name in zip(keys, shown, strict=True):
        if ratings is not None:
            vote = ratings.get(name) or ratings.get(key)
        elif labels is not None:
            vote = (1 if name in labels else -1) if rng.random() < rated else None
        else:
            vote = None
        if vote:
            store.feedback.record_vote(conn, user, key, vote, "eval", now)
            cast += 1
    return cast
