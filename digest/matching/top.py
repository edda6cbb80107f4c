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

import numpy as np

from digest.matching.compiled import Matcher
from digest.matching.rank import Combo, Prepared, build_match, combo_score, filtered_candidates, order_key
from digest.models import Match

__all__ = ["ranked_lists"]

_INT = np.int64
_ROW = np.int32  # per-row arrays (profile ids, combo ids): millions of rows, half the memory of int64
# Groups of two keywords are deduplicated as one int64 (paper, query, query) when it fits, else one by one.
PACK_LIMIT = 2**62
_score = operator.itemgetter(3)
_prep = operator.itemgetter(0)


def _combo_id(combos: list[Combo], prep: Prepared, qids: tuple[int, ...], boost: bool) -> int:
    """The id of true queries ``qids`` on a paper in ``combos``, added on first use."""
    cid = (prep.boosted_combo_ids if boost else prep.combo_ids).get(qids)
    return _new_combo(combos, prep, qids, boost) if cid is None else cid


def _new_combo(combos: list[Combo], prep: Prepared, qids: tuple[int, ...], boost: bool) -> int:
    cid = (prep.boosted_combo_ids if boost else prep.combo_ids)[qids] = len(combos)
    combos.append((prep, qids, boost, combo_score(prep, qids, boost)))
    return cid


def ranked_lists(
    matcher: Matcher,
    preps: list[Prepared],
    holds: dict[int, list[int]],
    org_papers: dict[str, list[int]],
) -> list[tuple[list[Match], int]]:
    """Per profile (in order): its first ``max_papers`` Matches, best first (none if ``max_papers`` < 1), and its
    number of matches."""
    n_profiles = len(matcher.profiles)
    combos: list[Combo] = []
    singles = _single_combos(preps, holds, combos, len(matcher.queries))
    prof, cids = _merge_several(_plain_rows(matcher, singles), singles, len(matcher.queries), preps, combos)
    extra_prof: list[int] = []
    extra_cids: list[int] = []
    for pidx in [i for i, plain in enumerate(matcher.plain) if not plain]:
        found = _filtered_ids(pidx, holds, matcher, preps, org_papers, combos)
        extra_prof += [pidx] * len(found)
        extra_cids += found
    if extra_cids:
        prof = np.concatenate((prof, np.array(extra_prof, _ROW)))
        cids = np.concatenate((cids, np.array(extra_cids, _ROW)))
    if not combos:
        return [([], 0) for _ in range(n_profiles)]

    # Every combo ranked once; a profile's list is its rows sorted by (profile, combo rank).
    n_combos = len(combos)
    keys = np.fromiter(map(order_key, map(_score, combos), map(_prep, combos)), _INT, n_combos)
    by_rank = np.argsort(keys, kind="stable")
    ordinal = np.empty(n_combos, _ROW)
    ordinal[by_rank] = np.arange(n_combos, dtype=_ROW)
    counts = np.bincount(prof, minlength=n_profiles)
    rows = prof.astype(_INT)
    del prof
    rows *= n_combos
    rows += ordinal[cids]
    del cids
    rows.sort(kind="stable")  # a timsort: the rows are grouped by profile already
    kept_counts = np.minimum(counts, np.fromiter((p.max_papers for p in matcher.profiles), _INT, n_profiles))
    np.maximum(kept_counts, 0, out=kept_counts)
    some = np.flatnonzero(kept_counts)
    kept = rows[_ranges((np.cumsum(counts) - counts)[some], kept_counts[some])]
    del rows
    np.remainder(kept, n_combos, out=kept)  # each kept row's combo rank

    # Matches: one per kept combo, shared by every profile that kept it.
    distinct = np.flatnonzero(np.bincount(kept, minlength=n_combos))
    built = np.empty(n_combos, object)
    built[distinct] = np.fromiter(
        (build_match(matcher, *combos[cid]) for cid in by_rank[distinct].tolist()), object, len(distinct)
    )
    flat = built[kept].tolist()
    ends = np.cumsum(kept_counts)
    starts = ends - kept_counts
    return [
        (flat[start:end], count)
        for start, end, count in zip(starts.tolist(), ends.tolist(), counts.tolist(), strict=True)
    ]


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """starts[0], starts[0] + 1, ..., starts[0] + lengths[0] - 1, starts[1], ...: the ranges concatenated.

    ``lengths`` must all be positive. One array of the output's length is allocated (np.repeat + np.arange
    would take three).
    """
    out = np.ones(int(lengths.sum()), _INT)
    if len(out):
        out[0] = starts[0]
        # The first row of each later range jumps from the previous range's last value to its own start.
        out[np.cumsum(lengths[:-1])] = starts[1:] - starts[:-1] - lengths[:-1] + 1
        np.cumsum(out, out=out)
    return out


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
    by_query = np.fromiter(chain.from_iterable(cids_of.values()), _ROW, offset)
    return _Singles(np.array(ranks, _ROW), np.array(qids, _INT), by_query, start, length)


def _plain_rows(matcher: Matcher, singles: _Singles) -> np.ndarray:
    """One row per (plain profile, keyword, paper where it holds): profile x number of singles + single combo id,
    grouped by profile."""
    n_profiles = len(matcher.profiles)
    per_profile = np.diff(matcher.keyword_start)
    qids = matcher.keyword_qids
    papers = singles.length[qids]
    if not all(matcher.plain):
        papers[~np.repeat(np.fromiter(matcher.plain, bool, n_profiles), per_profile)] = 0
    true = np.flatnonzero(papers)
    owner = np.repeat(np.arange(n_profiles, dtype=_INT), per_profile)[true]
    qids, papers = qids[true], papers[true]
    cids = singles.by_query[_ranges(singles.start[qids], papers)]
    rows = np.repeat(owner * len(singles.rank), papers)
    rows += cids
    return rows


def _merge_several(
    rows: np.ndarray, singles: _Singles, n_queries: int, preps: list[Prepared], combos: list[Combo]
) -> tuple[np.ndarray, np.ndarray]:
    """(profile, combo id) of every row, sorted by profile, each paper a profile reaches through several keywords
    reduced to one row: the combo of all of them."""
    n_singles = max(len(singles.rank), 1)
    rows.sort(kind="stable")  # a timsort: the rows are already grouped by profile
    prof = np.floor_divide(rows, n_singles, out=np.empty(len(rows), _ROW), casting="unsafe")
    cids = np.remainder(rows, n_singles, out=rows).astype(_ROW)
    del rows
    paper = singles.rank[cids]
    later = np.zeros(len(cids), bool)  # the same (profile, paper) as the row before
    np.logical_and(prof[1:] == prof[:-1], paper[1:] == paper[:-1], out=later[1:])
    del paper
    if not later.any():
        return prof, cids
    # A group (a paper reached through several keywords) is a row and the run of ``later`` rows after it.
    edges = np.diff(later.view(np.int8), prepend=0, append=0)
    runs = np.flatnonzero(edges == 1)
    first, size = runs - 1, np.flatnonzero(edges == -1) - runs + 1
    del edges
    group_cid = np.empty(len(first), _ROW)
    pairs = np.flatnonzero(size == 2)
    if len(pairs) and len(preps) * n_queries * n_queries < PACK_LIMIT:
        # Two keywords (most groups): one Python call per distinct (paper, query, query).
        a, b = cids[first[pairs]], cids[first[pairs] + 1]
        code = (singles.rank[a].astype(_INT) * n_queries + singles.qid[a]) * n_queries + singles.qid[b]
        distinct, which = np.unique(code, return_inverse=True)
        made = []
        for value in distinct.tolist():
            rank, rest = divmod(value, n_queries * n_queries)
            made.append(_combo_id(combos, preps[rank], divmod(rest, n_queries), False))
        group_cid[pairs] = np.array(made, _ROW)[which]
        others = np.flatnonzero(size != 2)
    else:
        others = np.arange(len(first))
    for g, start, n in zip(others.tolist(), first[others].tolist(), size[others].tolist(), strict=True):
        members = cids[start : start + n]
        rank = int(singles.rank[members[0]])
        group_cid[g] = _combo_id(combos, preps[rank], tuple(singles.qid[members].tolist()), False)
    cids[first] = group_cid
    keep = np.logical_not(later, out=later)
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
