"""The ranking seam: after keyword matching, a ``Ranker`` orders each profile's matches and may suggest papers the
keywords did not match. The pipeline builds one ranker per run (``make_ranker``: a factory of ``RANKERS``) and
calls it once per digest through ``rank_matches``, which holds every ranker to the delivery rule: the keyword
matches are reordered (and rescored), never dropped or duplicated; suggestions come only from the candidates.

``KeywordRanker`` ("keywords") is today's order, the identity. A learned ranker (thumbs up/down per user) plugs in
beside it: it blends its own score with the keyword score (``blend``) and says why in one line appended to the
match's reason, and proposes papers through ``suggest``. It sets ``wants_candidates`` so the pipeline hands it
the papers of the user's window that the keywords missed (computed only for rankers that ask).

A ranker that learns per user ("learned", ``digest.matching.learned``) gets from ``RankerContext`` the votes of
the users it must (re)train, every user's ``like``/``dislike`` seed papers, and the states it stored in earlier
runs; after the run, ``ranker_states(ranker)`` is what to store back (the users it trained, as bytes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from digest.errors import ConfigError, DigestError
from digest.models import Match, Paper, Profile

__all__ = ["DEFAULT_RANKER", "RANKERS", "KeywordRanker", "Ranked", "Ranker", "RankerContext", "RankerFactory", "Seeds"]
__all__ += ["Vote", "blend", "make_ranker", "rank_matches", "ranker_states", "rescore", "suggest"]

DEFAULT_RANKER = "keywords"


@dataclass(frozen=True, slots=True)
class Ranked:
    """What a ranker made of one profile's keyword matches.

    ``matches``: every keyword match it was given, each once, best first (a ranker may change a match's score
    and reason, never drop one: the digest cuts to ``max_papers`` after ranking and carries the rest over).
    ``suggestions``: papers the keywords did not match that the ranker proposes, best first, each a Match with
    no hits and the ranker's reason (``suggest``); always empty for ``KeywordRanker``."""

    matches: tuple[Match, ...]
    suggestions: tuple[Match, ...] = ()


@dataclass(frozen=True, slots=True)
class Vote:
    """A user's thumbs up (+1) or down (-1) on a paper they were sent: what a learned ranker trains on."""

    paper: Paper
    value: int
    at: datetime


Seeds = tuple[Sequence[Paper], Sequence[Paper]]  # a user's (liked, disliked) papers: profile.like, .dislike


@dataclass(frozen=True, slots=True)
class RankerContext:
    """What a factory in ``RANKERS`` gets to build the run's ranker (once per run, before any digest).

    All three mappings are by profile name. ``votes``: every vote in effect (the latest per paper) of each user
    the ranker must train: users whose votes changed since their stored state (``ranker_state.votes_until``),
    users with votes and no stored state, and users whose state is stale (``learned.state_is_current`` is
    False, e.g. their seeds changed); a user with a state and no entry here keeps that state. ``seeds``: each
    user's ``like`` and ``dislike`` papers as the store resolved them (unknown ones left out). ``states``: what
    ``ranker_states`` returned for this ranker in earlier runs (``ranker_state.state``)."""

    now: datetime
    votes: Mapping[str, Sequence[Vote]] = field(default_factory=dict)
    seeds: Mapping[str, Seeds] = field(default_factory=dict)
    states: Mapping[str, bytes] = field(default_factory=dict)


class Ranker(Protocol):
    """Orders one profile's keyword matches (and may suggest more); called once per digest of a run."""

    # True: ``rank`` gets ``candidates``, the unsettled papers of the user's window that no keyword matched
    # (not filtered by the profile's ``exclude`` queries or limits: a ranker that suggests must honour them),
    # or None where there is no window (a preview over a dump or the history). False: always None. With
    # None, ``rank`` suggests nothing.
    wants_candidates: bool

    def rank(
        self, profile: Profile, matches: Sequence[Match], *, candidates: Sequence[Paper] | None, now: datetime
    ) -> Ranked:
        """``matches`` (the keyword order: score, then upvotes and newest first) in this ranker's order."""
        ...


RankerFactory = Callable[[RankerContext], Ranker]


class KeywordRanker:
    """Today's order, unchanged: the keyword score, then the listing's tiebreak. Suggests nothing."""

    wants_candidates = False

    def rank(
        self, profile: Profile, matches: Sequence[Match], *, candidates: Sequence[Paper] | None, now: datetime
    ) -> Ranked:
        """The identity (the same tuple when given one, so ``rank_matches`` has nothing to check)."""
        return Ranked(matches if isinstance(matches, tuple) else tuple(matches))


def _keyword_ranker(context: RankerContext) -> Ranker:
    return KeywordRanker()


def _learned_ranker(context: RankerContext) -> Ranker:
    from digest.matching.learned import LearnedRanker  # numpy and the features load only for this ranker

    return LearnedRanker(context)


RANKERS: dict[str, RankerFactory] = {"keywords": _keyword_ranker, "learned": _learned_ranker}


def ranker_states(ranker: Ranker) -> Mapping[str, bytes]:
    """The per-user states ``ranker`` trained in this run (by profile name), for the pipeline to store as
    ``ranker_state`` rows (``votes_until``: the newest ``Vote.at`` it was given for that user, or the run's
    ``now`` when it was given none); empty for a ranker that keeps no state."""
    states = getattr(ranker, "states", None)
    return states() if callable(states) else {}


def make_ranker(name: str, context: RankerContext) -> Ranker:
    """The run's ranker: ``RANKERS[name]`` built with ``context``."""
    factory = RANKERS.get(name)
    if factory is None:
        raise ConfigError(f"unknown ranker {name!r}", f"use one of: {', '.join(sorted(RANKERS))}")
    return factory(context)


def rank_matches(
    ranker: Ranker,
    profile: Profile,
    matches: tuple[Match, ...],
    *,
    candidates: Sequence[Paper] | None,
    now: datetime,
) -> Ranked:
    """``ranker.rank(...)`` for one digest, checked: the same keyword matches (by paper) in any order, and
    suggestions only from ``candidates``, each once. A ranker breaking that would lose or repeat papers."""
    ranked = ranker.rank(profile, matches, candidates=candidates, now=now)
    if ranked.matches is not matches and sorted(m.paper.key for m in ranked.matches) != sorted(
        m.paper.key for m in matches
    ):
        raise DigestError(
            f"ranker {type(ranker).__name__} changed which papers matched {profile.name!r}, not only their order",
            "a ranker reorders (and rescores) the keyword matches; it never drops or adds one",
        )
    if ranked.suggestions:
        allowed = {p.key for p in candidates or ()}
        keys = [m.paper.key for m in ranked.suggestions]
        if len(set(keys)) != len(keys) or not allowed.issuperset(keys):
            raise DigestError(
                f"ranker {type(ranker).__name__} suggested papers outside its candidates for {profile.name!r}",
                "suggest each paper once, only from `candidates` (set wants_candidates to get them)",
            )
    return ranked


def _reason(reason: str, why: str) -> str:
    why = " ".join(why.split())  # one line
    return f"{reason}; {why}" if reason and why else reason or why


def rescore(match: Match, score: float, why: str = "") -> Match:
    """``match`` with the ranker's ``score``, and ``why`` (one line, e.g. "ranked up: like 3 papers you 👍")
    appended to its keyword reason."""
    return Match(match.paper, score, match.hits, _reason(match.reason, why))  # dataclasses.replace, 5x faster


def blend(match: Match, learned: float, *, weight: float, why: str = "") -> Match:
    """``match`` rescored ``(1 - weight) * keyword score + weight * learned`` (``learned`` on the keyword
    scores' scale; ``weight`` 0 keeps the keyword score), with ``why`` appended to its reason."""
    return rescore(match, (1.0 - weight) * match.score + weight * learned, why)


def suggest(paper: Paper, score: float, why: str) -> Match:
    """A suggestion: ``paper`` (which no keyword matched) with the ranker's score and one-line reason."""
    return Match(paper, score, (), _reason("", why))
