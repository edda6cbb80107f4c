"""match_top's ranking: each profile's first ``max_papers`` matches and its count, ranked in numpy.

A profile's match on a paper is a *combo*: (paper, the profile's true keyword ids there, org boost). Combos get
ids as they are met and are shared by every profile with the same ones; Match objects are built once per combo
that some profile keeps.

With 100,000 profiles there are millions of (profile, paper) pairs but only ~100,000 distinct combos, so the
pairs never become Python objects: every (profile, keyword, paper) hit of the plain profiles is one row of flat
numpy arrays. A stable sort by (profile, paper) finds the papers a profile reaches through several keywords
(each gets one combo for all of them, scored in Python once per distinct combination); every combo is ranked
once (score desc, then the paper's tiebreak rank) and a second stable sort by (profile, that rank) gives each
profile's list, cut to ``max_papers``. Both sorts are timsorts over rows already grouped by profile, so they
cost little more than a pass. Profiles with exclusions or limits take the per-profile Python path
(``filtered_candidates``) and join the rows before the second sort.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING

import numpy as np

from digest.models import Match
from digest.rank import Combo, Prepared, build_match, combo_score, filtered_candidates, order_key

if TYPE_CHECKING:  # digest.match imports this module; the Matcher is only read here
    from digest.match import Matcher

__all__ = ["ranked_lists"]

_INT = np.int64
_score = operator.itemgetter(3)
_prep = operator.itemgetter(0)


def _combo_id(combos: list[Combo], prep: Prepared, qids: tuple[int, ...], boost: bool) -> int:
    """The id of true queries ``qids`` on a paper in ``combos``, added on first use."""
    cid = (prep.boosted if boost else prep.keys).get(qids)
    return _new_combo(combos, prep, qids, boost) if cid is None else cid


def _new_combo(combos: list[Combo], prep: Prepared, qids: tuple[int, ...], boost: bool) -> int:
    cid = (prep.boosted if boost else prep.keys)[qids] = len(combos)
    combos.append((prep, qids, boost, combo_score(prep, qids, boost)))
    return cid


def ranked_lists(
    matcher: Matcher,
    preps: list[Prepared],
    holds: dict[int, list[int]],
    org_papers: dict[str, list[int]],
) -> list[tuple[list[Match], int]]:
    """Per profile (in order): its first ``max_papers`` Matches, best first, and its number of matches."""
    n_profiles = len(matcher.profiles)
    combos: list[Combo] = []
    singles = _single_combos(preps, holds, combos, len(matcher.queries))
    prof, cids = _plain_rows(matcher, singles)
    if len(cids):
        prof, cids = _merge_several(prof, cids, singles, len(matcher.queries), preps, combos)
    extra_prof: list[int] = []
    extra_cids: list[int] = []
    for pidx in np.flatnonzero(~np.fromiter(matcher.plain, bool, n_profiles)).tolist():
        found = _filtered_ids(pidx, holds, matcher, preps, org_papers, combos)
        extra_prof += [pidx] * len(found)
        extra_cids += found
    if extra_cids:
        prof = np.concatenate((prof, np.array(extra_prof, _INT)))
        cids = np.concatenate((cids, np.array(extra_cids, _INT)))
    if not combos:
        return [([], 0) for _ in range(n_profiles)]

    # Every combo ranked once; a profile's list is its rows sorted by (profile, combo rank).
    n_combos = len(combos)
    keys = np.fromiter(map(order_key, map(_score, combos), map(_prep, combos)), _INT, n_combos)
    by_rank = np.argsort(keys, kind="stable")
    ordinal = np.empty(n_combos, _INT)
    ordinal[by_rank] = np.arange(n_combos, dtype=_INT)
    rows = prof * n_combos + ordinal[cids]
    rows.sort(kind="stable")
    row_prof = rows // n_combos
    rows -= row_prof * n_combos  # now the combo rank
    counts = np.bincount(row_prof, minlength=n_profiles)
    limits = np.fromiter((profile.max_papers for profile in matcher.profiles), _INT, n_profiles)
    position = np.arange(len(rows), dtype=_INT) - np.repeat(np.cumsum(counts) - counts, counts)
    kept = rows[position < np.repeat(limits, counts)]

    # Matches: one per kept combo, shared by every profile that kept it.
    distinct = np.flatnonzero(np.bincount(kept, minlength=n_combos))
    built = np.empty(n_combos, object)
    built[distinct] = np.fromiter(
        (build_match(matcher, *combos[cid]) for cid in by_rank[distinct].tolist()), object, len(distinct)
    )
    flat = built[kept].tolist()
    ends = np.cumsum(np.minimum(counts, np.maximum(limits, 0))).tolist()
    return [
        (flat[start:end], count) for start, end, count in zip(chain((0,), ends), ends, counts.tolist(), strict=False)
    ]


@dataclass(frozen=True, slots=True)
class _Singles:
    """The one-query combos (ids 0..n-1), numbered by paper rank then query id."""

    rank: np.ndarray  # per combo id: its paper's rank
    qid: np.ndarray  # per combo id: its query id
    by_query: np.ndarray  # combo ids grouped by query id, each group in paper rank order
    start: np.ndarray  # per query id: where its group starts in by_query
    length: np.ndarray  # per query id: its group's length (papers where it holds)


def _single_combos(preps: list[Prepared], holds: dict[int, list[int]], combos: list[Combo], n_queries: int) -> _Singles:
    """One combo per (keyword query, paper where it holds); ids in (paper rank, query id) order, so the combos of
    one paper are consecutive ids and sorting a paper's ids sorts their query ids."""
    per_paper: list[list[int]] = [[] for _ in preps]
    for qid in sorted(holds):
        for rank in holds[qid]:
            per_paper[rank].append(qid)
    cids_of: dict[int, list[int]] = {qid: [] for qid in sorted(holds)}
    ranks: list[int] = []
    qids: list[int] = []
    for rank, paper_qids in enumerate(per_paper):
        prep = preps[rank]
        for qid in paper_qids:
            cids_of[qid].append(_new_combo(combos, prep, (qid,), False))
        ranks += [rank] * len(paper_qids)
        qids += paper_qids
    start = np.zeros(n_queries, _INT)
    length = np.zeros(n_queries, _INT)
    offset = 0
    for qid, cids in cids_of.items():
        start[qid], length[qid] = offset, len(cids)
        offset += len(cids)
    by_query = np.fromiter(chain.from_iterable(cids_of.values()), _INT, offset)
    return _Singles(np.array(ranks, _INT), np.array(qids, _INT), by_query, start, length)


def _plain_rows(matcher: Matcher, singles: _Singles) -> tuple[np.ndarray, np.ndarray]:
    """(profile, single combo id) of every (plain profile, keyword, paper where it holds), grouped by profile."""
    n_profiles = len(matcher.profiles)
    per_profile = np.fromiter(map(len, matcher.keyword_ids), _INT, n_profiles)
    qids = np.fromiter(chain.from_iterable(matcher.keyword_ids), _INT, int(per_profile.sum()))
    owner = np.repeat(np.arange(n_profiles, dtype=_INT), per_profile)
    papers = singles.length[qids] * np.repeat(np.fromiter(matcher.plain, bool, n_profiles), per_profile)
    true = np.flatnonzero(papers)
    qids, owner, papers = qids[true], owner[true], papers[true]
    ends = np.cumsum(papers)
    # Row r of keyword entry e is that query's combo number (r - first row of e).
    first = np.repeat(singles.start[qids] - (ends - papers), papers)
    first += np.arange(int(ends[-1]) if len(ends) else 0, dtype=_INT)
    return np.repeat(owner, papers), singles.by_query[first]


def _merge_several(
    prof: np.ndarray, cids: np.ndarray, singles: _Singles, n_queries: int, preps: list[Prepared], combos: list[Combo]
) -> tuple[np.ndarray, np.ndarray]:
    """The rows sorted by (profile, single combo id), each paper a profile reaches through several keywords
    replaced by one row of the combo of all of them."""
    n_singles = len(singles.rank)
    rows = prof * n_singles + cids
    rows.sort(kind="stable")  # a timsort: the rows are already grouped by profile
    prof = rows // n_singles
    cids = rows - prof * n_singles
    paper = singles.rank[cids]
    later = np.zeros(len(rows), bool)  # the same (profile, paper) as the row before
    np.logical_and(prof[1:] == prof[:-1], paper[1:] == paper[:-1], out=later[1:])
    if not later.any():
        return prof, cids
    heads = np.flatnonzero(~later)
    sizes = np.diff(np.append(heads, len(rows)))
    several = sizes > 1
    first, size = heads[several], sizes[several]
    group_cid = np.empty(len(first), _INT)
    pairs = np.flatnonzero(size == 2)
    if len(pairs) and len(preps) * n_queries * n_queries < 2**62:
        # Two keywords (most groups): one Python call per distinct (paper, query, query).
        a, b = cids[first[pairs]], cids[first[pairs] + 1]
        code = (singles.rank[a] * n_queries + singles.qid[a]) * n_queries + singles.qid[b]
        distinct, which = np.unique(code, return_inverse=True)
        made = []
        for value in distinct.tolist():
            rank, rest = divmod(value, n_queries * n_queries)
            made.append(_combo_id(combos, preps[rank], divmod(rest, n_queries), False))
        group_cid[pairs] = np.array(made, _INT)[which]
        others = np.flatnonzero(size != 2)
    else:
        others = np.arange(len(first))
    for g, start, n in zip(others.tolist(), first[others].tolist(), size[others].tolist(), strict=True):
        members = cids[start : start + n]
        group_cid[g] = _combo_id(combos, preps[int(paper[start])], tuple(singles.qid[members].tolist()), False)
    cids[first] = group_cid
    keep = ~later
    return prof[keep], cids[keep]


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
