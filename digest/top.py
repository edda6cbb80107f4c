"""match_top's ranking: each profile's first ``max_papers`` matches and its count.

A profile's match on a paper is a *combo*: (paper, the profile's true keyword ids there, org boost). Combos get
ids as they are met and are shared by every profile with the same ones. Pass 1 finds each profile's true
keywords and its papers reached through several of them (one combo for all of them, in place of one per
keyword); pass 2 sorts every combo once into rank order (score desc, then the paper's tiebreak rank) and
ranks each profile's list as small ints (ordinals), which Python sorts several times faster than wide keys.
Match objects are built afterwards, once per combo some profile kept.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import chain, filterfalse
from typing import TYPE_CHECKING

from digest.models import Match
from digest.rank import Combo, Prepared, build_match, combo_score, filtered_candidates, order_key

if TYPE_CHECKING:  # digest.match imports this module; the Matcher is only read here
    from digest.match import Matcher

__all__ = ["kept_matches", "select_top"]

_NONE: tuple[()] = ()
# Per profile: its kept combo ids (or ordinals), best first, and its number of matches.
Selected = list[tuple[list[int], int]]


def _combo_id(combos: list[Combo], prep: Prepared, qids: tuple[int, ...], boost: bool) -> int:
    """The id of true queries ``qids`` on a paper in ``combos``, added on first use."""
    cid = (prep.boosted if boost else prep.keys).get(qids)
    return _new_combo(combos, prep, qids, boost) if cid is None else cid


def _new_combo(combos: list[Combo], prep: Prepared, qids: tuple[int, ...], boost: bool) -> int:
    cid = (prep.boosted if boost else prep.keys)[qids] = len(combos)
    combos.append((prep, qids, boost, combo_score(prep, qids, boost)))
    return cid


def select_top(
    matcher: Matcher,
    preps: list[Prepared],
    holds: dict[int, list[int]],
    org_papers: dict[str, list[int]],
) -> tuple[Selected, list[Combo]]:
    """Per profile (in order): the ranks of its first ``max_papers`` combos and its number of matches; and
    every combo met, in rank order."""
    combos: list[Combo] = []
    ids_of: dict[int, list[int]] = {}  # keyword query id -> the one-query combo ids of the papers where it holds
    singles: list[dict[int, int]] = [{} for _ in preps]  # paper rank -> keyword query id -> that combo id
    for qid, ranks in holds.items():
        ids = ids_of[qid] = [_new_combo(combos, preps[rank], (qid,), False) for rank in ranks]
        for rank, cid in zip(ranks, ids, strict=True):
            singles[rank][qid] = cid
    found = _first_pass(matcher, preps, holds, org_papers, combos, ids_of, singles)
    # Pass 2: every combo is known now; rank them all once, then each profile's own.
    order = sorted(range(len(combos)), key=lambda cid: order_key(combos[cid][3], combos[cid][0]))
    ordinal = [0] * len(order)
    for position, cid in enumerate(order):
        ordinal[cid] = position
    rank_of = ordinal.__getitem__
    ranks_of = {qid: sorted(map(rank_of, ids)) for qid, ids in ids_of.items()}
    get_ranks = ranks_of.__getitem__
    selected = []
    for profile, (true_ids, combined, drop) in zip(matcher.profiles, found, strict=True):
        if drop:
            dropped = set(map(rank_of, drop))
            ranks = chain(chain.from_iterable(map(get_ranks, true_ids)), map(rank_of, combined))
            ranked = sorted(filterfalse(dropped.__contains__, ranks))
        elif combined:  # a filtered profile: its combo ids
            ranked = sorted(map(rank_of, combined))
        elif len(true_ids) == 1:
            ranked = ranks_of[true_ids[0]]
        else:
            ranked = sorted(chain.from_iterable(map(get_ranks, true_ids)))
        selected.append((ranked[: profile.max_papers], len(ranked)))
    return selected, [combos[cid] for cid in order]


def _first_pass(
    matcher: Matcher,
    preps: list[Prepared],
    holds: dict[int, list[int]],
    org_papers: dict[str, list[int]],
    combos: list[Combo],
    ids_of: dict[int, list[int]],
    singles: list[dict[int, int]],
) -> list[tuple[Sequence[int], Sequence[int], Sequence[int]]]:
    """Pass 1, per profile: (its true keyword ids, the combos of its papers with several, their one-query combos).

    A filtered profile gives ((), its combo ids, ()). This is the hot loop of match_top: C-level calls where
    it can be.
    """
    # Papers as 4-bit counters (paper of rank i = bits 4i..4i+3): summing a profile's masks counts, per paper,
    # how many of its keywords hold there, for up to 15 keywords at once.
    counters = {qid: sum(1 << 4 * rank for rank in ranks) for qid, ranks in holds.items()}
    low = sum(1 << 4 * rank for rank in range(len(preps)))
    trues, cached = [prep.true for prep in preps], [prep.keys for prep in preps]
    has_ids = ids_of.__contains__
    get_counter = counters.__getitem__
    out: list[tuple[Sequence[int], Sequence[int], Sequence[int]]] = []
    append = out.append
    plain, keyword_ids = matcher.plain, matcher.keyword_ids
    for pidx in range(len(matcher.profiles)):
        if not plain[pidx]:
            append((_NONE, _filtered_ids(pidx, holds, matcher, preps, org_papers, combos), _NONE))
            continue
        true_ids = list(filter(has_ids, keyword_ids[pidx]))
        if len(true_ids) < 2:
            append((true_ids, _NONE, _NONE))
            continue
        if len(true_ids) < 16:
            count = sum(map(get_counter, true_ids))
            several = (count >> 1 | count >> 2 | count >> 3) & low  # bit 4i set: paper i counted twice or more
        else:
            seen = several = 0
            for mask in map(get_counter, true_ids):
                several |= seen & mask
                seen |= mask
        if not several:
            append((true_ids, _NONE, _NONE))
            continue
        combined = []
        drop: list[int] = []
        while several:
            bit = several.bit_length() - 1
            several ^= 1 << bit
            rank = bit >> 2
            qids = tuple(filter(trues[rank].__contains__, true_ids))
            cid = cached[rank].get(qids)
            combined.append(_new_combo(combos, preps[rank], qids, False) if cid is None else cid)
            drop += map(singles[rank].__getitem__, qids)
        append((true_ids, combined, drop))
    return out


def _filtered_ids(
    pidx: int,
    holds: dict[int, list[int]],
    matcher: Matcher,
    preps: list[Prepared],
    org_papers: dict[str, list[int]],
    combos: list[Combo],
) -> list[int]:
    """A filtered profile's combo ids, one per paper that passes its exclusions and limits."""
    min_score = matcher.profiles[pidx].min_score
    out = []
    for prep, qids, boost in filtered_candidates(pidx, holds, matcher, preps, org_papers):
        cid = _combo_id(combos, prep, qids, boost)
        if combos[cid][3] >= min_score:
            out.append(cid)
    return out


class _Built(dict[int, Match]):
    """Combo rank -> Match, each built on its first lookup (profiles that kept the same combination share it)."""

    # A dict subclass so that the lookups run in C (map over each profile's ranks) and only a miss calls Python.
    def __init__(self, matcher: Matcher, combos: list[Combo]) -> None:
        super().__init__()
        self.matcher = matcher
        self.combos = combos

    def __missing__(self, key: int) -> Match:
        prep, qids, boost, score = self.combos[key]
        match = self[key] = build_match(self.matcher, prep, qids, boost, score)
        return match


def kept_matches(matcher: Matcher, combos: list[Combo], selected: Selected) -> Iterator[list[Match]]:
    """Each profile's kept combo ranks as Matches, built once per combination that some profile kept."""
    get = _Built(matcher, combos).__getitem__
    for ranks, _ in selected:
        yield list(map(get, ranks))
