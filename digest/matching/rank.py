"""Ranking for digest.match: scores, Match objects, and each profile's full ranked list (match_all).

A paper reaches a profile through the set of the profile's keyword queries that hold on it (its followed
authors are keyword queries too, of field FOLLOWS; plus an org boost). That combination's score, order and
Match depend only on the paper and the set, so they are cached per paper and shared by every profile with the
same set. ``match_all`` ranks (order key, rank, Match)
entries and so builds the Match of every combination it ranks. ``match_top`` (digest.top) ranks ints and
builds Matches only for the combinations some profile keeps.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain

from digest.matching.compiled import Matcher
from digest.matching.query import ABSTRACT, AUTHORS, FOLLOWS, ORG, TITLE, LeafHits, Scan, Witness
from digest.models import Hit, Match, Paper

__all__ = [
    "FOLLOW_BOOST",
    "ORG_BOOST",
    "REPEAT_WEIGHT",
    "WEIGHTS",
    "Combo",
    "Prepared",
    "build_match",
    "combo_score",
    "filtered_candidates",
    "filtered_results",
    "order_key",
    "plain_results",
    "query_entries",
    "tiebreak_order",
]

REPEAT_WEIGHT = 0.5
ORG_BOOST = 2.0
FOLLOW_BOOST = 2.0  # a followed author on the paper (plus the repeat bonus when the name fits several authors)
WEIGHTS = {TITLE: 3.0, ABSTRACT: 1.0, ORG: 1.0, AUTHORS: 3.0, FOLLOWS: FOLLOW_BOOST}

# A combo (digest.top): the paper, the true keyword query ids there, the org boost, and their score.
Combo = tuple["Prepared", tuple[int, ...], bool, float]


@dataclass(slots=True)
class Prepared:
    """One paper normalised once per call: its scans, per term where it hit, and its ranking caches."""

    paper: Paper
    scans: dict[str, Scan]
    hits: LeafHits
    true: dict[int, Witness] = dataclasses.field(default_factory=dict)  # query id -> witness, for true queries
    parts: dict[int, _Part] = dataclasses.field(default_factory=dict)  # true query id -> its part, on first use
    scores: dict[int, tuple[frozenset[tuple[int, str]], float]] = dataclasses.field(default_factory=dict)
    # match_all: (true keyword ids, org boost) -> its entry; profiles with the same ids share it
    entries: dict[tuple[tuple[int, ...], bool], _Entry] = dataclasses.field(default_factory=dict)
    combo_ids: dict[tuple[int, ...], int] = dataclasses.field(default_factory=dict)  # match_top: true ids -> combo id
    boosted_combo_ids: dict[tuple[int, ...], int] = dataclasses.field(default_factory=dict)  # the same, with org boost
    orgs: tuple[str, ...] = ()  # compacted organization display name and handle (digest.match.org_keys)
    rank: int = 0  # position in tiebreak order: upvotes desc, newest first, input order
    n_papers: int = 1


def tiebreak_order(papers: Sequence[Paper]) -> list[int]:
    """Paper indexes by upvotes desc, published desc (None last), then input order."""
    return sorted(
        range(len(papers)),
        key=lambda i: (
            -(papers[i].upvotes or 0),
            papers[i].published is None,
            -papers[i].published.toordinal() if papers[i].published else 0,  # type: ignore[union-attr]
            i,
        ),
    )


# --- scores -----------------------------------------------------------------------------------------
# Both entry points take a Match's score from combo_score, so match_top ranks with exactly the floats
# that match_all puts into its Matches.


def _witness_keys(witness: Iterable[tuple[str, int, str]]) -> dict[tuple[int, str], str]:
    """Distinct (term id, field) of a witness -> the term as first written."""
    keys: dict[tuple[int, str], str] = {}
    for written, tid, field in witness:
        keys.setdefault((tid, field), written)
    return keys


def _keys_score(prep: Prepared, keys: Iterable[tuple[int, str]]) -> float:
    score = 0.0
    for tid, field in keys:
        count = len(prep.hits[tid][field])
        score += WEIGHTS[field] + (REPEAT_WEIGHT * math.log(count) if count > 1 else 0.0)
    return score


def _query_score(prep: Prepared, qid: int) -> tuple[frozenset[tuple[int, str]], float]:
    found = prep.scores.get(qid)
    if found is None:
        keys = _witness_keys(prep.true[qid])
        found = prep.scores[qid] = (frozenset(keys), _keys_score(prep, keys))
    return found


def combo_score(prep: Prepared, qids: tuple[int, ...], boost: bool) -> float:
    """The score of the Match for true queries ``qids``: each distinct term counted once, rounded."""
    n = len(qids)
    if n == 1:
        score = (prep.scores.get(qids[0]) or _query_score(prep, qids[0]))[1]
    elif n == 2:  # the common merge, kept cheap
        keys_a, score = prep.scores.get(qids[0]) or _query_score(prep, qids[0])
        keys_b, score_b = prep.scores.get(qids[1]) or _query_score(prep, qids[1])
        if keys_a.isdisjoint(keys_b):
            score += score_b
        else:
            score = _shared_score(prep, qids)
    elif n:
        parts = [_query_score(prep, qid) for qid in qids]
        if sum(len(keys) for keys, _ in parts) == len(frozenset().union(*(keys for keys, _ in parts))):
            score = 0.0
            for _, part_score in parts:
                score += part_score
        else:
            score = _shared_score(prep, qids)
    else:
        score = 0.0
    if boost:
        score += ORG_BOOST
    return round(score, 6)


def _shared_score(prep: Prepared, qids: tuple[int, ...]) -> float:
    """The score of queries that share a term: each distinct (term, field) counted once."""
    return _keys_score(prep, _witness_keys(chain.from_iterable(map(prep.true.__getitem__, qids))))


def order_key(score: float, prep: Prepared) -> int:
    """One int that sorts by score desc, then by the paper's tiebreak rank."""
    return -round(score * 1_000_000) * prep.n_papers + prep.rank


# --- Match objects ----------------------------------------------------------------------------------


def _span(matcher: Matcher, prep: Prepared, tid: int, field: str, span: tuple[int, int]) -> tuple[int, int]:
    """Map a hit to offsets in the original field text."""
    if tid >= matcher.n_terms:
        return span
    scan = prep.scans[field]
    first = bisect.bisect_left(scan.starts, span[0])
    last = bisect.bisect_right(scan.starts, span[1] - 1) - 1
    return scan.ostarts[first], scan.oends[last]


def _part(matcher: Matcher, prep: Prepared, witness: Witness) -> _Part:
    """Hits and reason fragments of the distinct terms in ``witness``."""
    keys = _witness_keys(witness)
    hits: dict[str, list[Hit]] = {TITLE: [], ABSTRACT: [], ORG: [], AUTHORS: []}
    fragments: dict[str, list[str]] = {TITLE: [], ABSTRACT: [], ORG: [], AUTHORS: [], FOLLOWS: []}
    for (tid, field), written in keys.items():
        spans = prep.hits[tid][field]
        count = len(spans)
        if field in _NAME_FIELDS:  # spans are author indexes; a follow reads `follows: Name`
            hits[AUTHORS] += [Hit(written, AUTHORS, *span) for span in spans]
        else:
            hits[field] += [Hit(written, field, *_span(matcher, prep, tid, field, span)) for span in spans]
        if field == FOLLOWS:
            fragments[FOLLOWS].append(written)
        else:
            fragments[field].append(f'"{written}"' + (f" ×{count}" if count > 1 else ""))
    names = None
    if hits[AUTHORS]:
        names = (_sorted_hits(hits[AUTHORS]), ", ".join(fragments[AUTHORS]), ", ".join(fragments[FOLLOWS]))
    return (
        frozenset(keys),
        *(tuple(sorted(hits[field], key=_hit_start)) for field in _FIELDS),
        *(", ".join(fragments[field]) for field in _FIELDS),
        names,
    )  # type: ignore[return-value]


def _sorted_hits(hits: Iterable[Hit]) -> tuple[Hit, ...]:
    """Author hits by author, without repeats (an author: term and a follow may name the same author)."""
    return tuple(sorted(dict.fromkeys(hits), key=_hit_start))


def _merged_names(parts: Sequence[_Part]) -> _Names | None:
    """The author hits and reasons of several parts put together (None when none has any)."""
    names = [part[7] for part in parts if part[7] is not None]
    if not names:
        return None
    return (
        _sorted_hits(chain.from_iterable(n[0] for n in names)),
        ", ".join(n[1] for n in names if n[1]),
        ", ".join(n[2] for n in names if n[2]),
    )


def _merged_part(matcher: Matcher, prep: Prepared, qids: tuple[int, ...]) -> _Part:
    """The part of several true queries: their parts put together when they share no term."""
    parts = []
    for qid in qids:
        part = prep.parts.get(qid)
        if part is None:
            part = prep.parts[qid] = _part(matcher, prep, prep.true[qid])
        parts.append(part)
    if len(parts) == 1:
        return parts[0]
    keys = frozenset().union(*map(_part_keys, parts))
    if len(keys) < sum(map(len, map(_part_keys, parts))):  # a term shared by two queries counts once
        return _part(matcher, prep, list(chain.from_iterable(map(prep.true.__getitem__, qids))))
    # Each part's hits are sorted; sorting the concatenation is a cheap merge of runs.
    return (
        keys,
        tuple(sorted(chain.from_iterable(map(_part_title, parts)), key=_hit_start)),
        tuple(sorted(chain.from_iterable(map(_part_abstract, parts)), key=_hit_start)),
        tuple(sorted(chain.from_iterable(map(_part_org, parts)), key=_hit_start)),
        ", ".join(filter(None, map(_part_title_reason, parts))),
        ", ".join(filter(None, map(_part_abstract_reason, parts))),
        ", ".join(filter(None, map(_part_org_reason, parts))),
        _merged_names(parts),
    )


def _merge_hits(a: tuple[Hit, ...], b: tuple[Hit, ...]) -> tuple[Hit, ...]:
    """Two offset-sorted runs of hits, merged."""
    if not a or not b:
        return a or b
    if len(a) == 1 and len(b) == 1:  # one hit each: the usual case
        return (a[0], b[0]) if (a[0].start, a[0].end) <= (b[0].start, b[0].end) else (b[0], a[0])
    return tuple(sorted(a + b, key=_hit_start))


def build_match(matcher: Matcher, prep: Prepared, qids: tuple[int, ...], boost: bool, score: float) -> Match:
    """The Match of true queries ``qids`` on a paper; ``score`` is their combo_score."""
    if len(qids) == 2 and not boost:  # the common merge (most matches of a large run), kept cheap
        parts = prep.parts
        a = parts.get(qids[0]) or _query_part(matcher, prep, qids[0])
        b = parts.get(qids[1]) or _query_part(matcher, prep, qids[1])
        if a[0].isdisjoint(b[0]) and a[7] is None and b[7] is None:
            title, abstract, org = _merge_hits(a[1], b[1]), _merge_hits(a[2], b[2]), _merge_hits(a[3], b[3])
            reasons = []
            if a[4] or b[4]:
                reasons.append(f"title: {a[4]}, {b[4]}" if a[4] and b[4] else "title: " + (a[4] or b[4]))
            if a[5] or b[5]:
                reasons.append(f"abstract: {a[5]}, {b[5]}" if a[5] and b[5] else "abstract: " + (a[5] or b[5]))
            if a[6] or b[6]:
                reasons.append(f"org: {a[6]}, {b[6]}" if a[6] and b[6] else "org: " + (a[6] or b[6]))
            return Match(prep.paper, score, title + abstract + org, "; ".join(reasons))
    part = _merged_part(matcher, prep, qids) if qids else _EMPTY_PART
    reasons = []
    if part[4]:
        reasons.append("title: " + part[4])
    if part[5]:
        reasons.append("abstract: " + part[5])
    if part[6]:
        reasons.append("org: " + part[6])
    hits = part[1] + part[2] + part[3]
    if part[7] is not None:
        hits += part[7][0]
        if part[7][1]:
            reasons.append("author: " + part[7][1])
        if part[7][2]:
            reasons.append("follows: " + part[7][2])
    if boost or not qids:
        name = prep.paper.organization or prep.paper.org_handle  # the display name reads better than a handle
        reasons.append(f'org boost: "{name}" +{ORG_BOOST:g}' if boost else f'org: "{name}"')
    return Match(prep.paper, score, hits, "; ".join(reasons) or "matched")


def _query_part(matcher: Matcher, prep: Prepared, qid: int) -> _Part:
    part = prep.parts[qid] = _part(matcher, prep, prep.true[qid])
    return part


# What a set of true queries contributes to a Match: its distinct (term id, field) keys, its hits in the
# title, abstract and org (each sorted by offset), its reason for each field ('"LLM" ×3, "GAN"' or ""), and
# for author: terms and followed authors their hits (by author) and reasons ('"Kaiming He"', 'Yann LeCun'), or
# None (most parts: the common merge in build_match checks just that).
_Names = tuple[tuple[Hit, ...], str, str]
_Part = tuple[
    frozenset[tuple[int, str]], tuple[Hit, ...], tuple[Hit, ...], tuple[Hit, ...], str, str, str, _Names | None
]
_EMPTY_PART: _Part = (frozenset(), (), (), (), "", "", "", None)
(
    _part_keys,
    _part_title,
    _part_abstract,
    _part_org,
    _part_title_reason,
    _part_abstract_reason,
    _part_org_reason,
) = (operator.itemgetter(i) for i in range(7))
_FIELDS = (TITLE, ABSTRACT, ORG)
_NAME_FIELDS = (AUTHORS, FOLLOWS)
_hit_start = operator.attrgetter("start", "end")


def filtered_candidates(
    pidx: int, holds: dict[int, list[int]], matcher: Matcher, preps: list[Prepared], org_papers: dict[str, list[int]]
) -> Iterator[tuple[Prepared, tuple[int, ...], bool]]:
    """(paper, true keyword ids, org boost) of each paper that passes a profile's exclusions and limits.

    ``min_score`` is left to the caller, which knows the score.
    """
    profile = matcher.profiles[pidx]
    candidates: dict[int, list[int]] = {}
    keyword_ids = matcher.keyword_ids(pidx)
    for qid in keyword_ids:
        for rank in holds.get(qid, ()):
            candidates.setdefault(rank, []).append(qid)
    orgs = matcher.orgs[pidx]
    if not profile.keywords and profile.organizations_mode == "only":  # every paper of its organizations
        for org in orgs:
            for rank in org_papers.get(org, ()):
                candidates.setdefault(rank, [])  # a followed author's paper keeps its follow
    excludes = matcher.excludes[pidx]
    for rank, qids in candidates.items():
        prep = preps[rank]
        if not excludes.isdisjoint(prep.true.keys()) or (prep.paper.upvotes or 0) < profile.min_upvotes:
            continue
        boost = False
        if orgs:
            in_org = not orgs.isdisjoint(prep.orgs)  # the profile named the paper's handle or its display name
            if profile.organizations_mode == "only":
                if not in_org:
                    continue
            else:
                boost = in_org
        yield prep, tuple(qids), boost


# --- match_all: every match, as (order key, paper rank, Match) entries -------------------------------

# The order key is unique per paper within one profile's list.
_Entry = tuple[int, int, Match]
_entry_key = operator.itemgetter(0)
_entry_paper = operator.itemgetter(1)
_entry_match = operator.itemgetter(2)


def _entry(matcher: Matcher, prep: Prepared, qids: tuple[int, ...], boost: bool) -> _Entry:
    """The ranked Match for the queries ``qids`` that hold on this paper (cached: profiles share it)."""
    key = (qids, boost)
    entry = prep.entries.get(key)
    if entry is None:
        match = build_match(matcher, prep, qids, boost, combo_score(prep, qids, boost))
        entry = prep.entries[key] = (order_key(match.score, prep), prep.rank, match)
    return entry


def query_entries(matcher: Matcher, preps: list[Prepared], ranks: list[int], qid: int) -> list[_Entry]:
    """One keyword query's entries on the papers (by rank) where it holds, ranked."""
    entries = [_entry(matcher, preps[rank], (qid,), False) for rank in ranks]
    entries.sort(key=_entry_key)
    return entries


def plain_results(
    keyword_ids: Sequence[int],
    by_query: dict[int, list[_Entry]],
    masks: dict[int, int],
    matcher: Matcher,
    preps: list[Prepared],
) -> list[Match]:
    """A plain profile's ranked matches: the lists of its true keywords, merged (the hot path)."""
    true_ids = list(filter(by_query.__contains__, keyword_ids))
    if not true_ids:
        return []
    if len(true_ids) == 1:
        return list(map(_entry_match, by_query[true_ids[0]]))
    # Papers reached through two or more keywords (bit i = paper of rank i) get one Match for all of them.
    seen = several = 0
    for qid in true_ids:
        mask = masks[qid]
        several |= seen & mask
        seen |= mask
    if not several:
        return list(map(_entry_match, sorted(chain.from_iterable(map(by_query.__getitem__, true_ids)), key=_entry_key)))
    merged = list(chain.from_iterable(map(by_query.__getitem__, true_ids)))
    by_paper = dict(zip(map(_entry_paper, merged), merged, strict=True))
    while several:
        lowest = several & -several
        several ^= lowest
        prep = preps[lowest.bit_length() - 1]
        qids = tuple(filter(prep.true.__contains__, true_ids))
        by_paper[prep.rank] = prep.entries.get((qids, False)) or _entry(matcher, prep, qids, False)
    return list(map(_entry_match, sorted(by_paper.values(), key=_entry_key)))


def filtered_results(
    pidx: int, holds: dict[int, list[int]], matcher: Matcher, preps: list[Prepared], org_papers: dict[str, list[int]]
) -> list[Match]:
    """A profile with exclusions, upvote, organization or score limits: every candidate checked."""
    min_score = matcher.profiles[pidx].min_score
    out: list[_Entry] = []
    for prep, qids, boost in filtered_candidates(pidx, holds, matcher, preps, org_papers):
        entry = _entry(matcher, prep, qids, boost)
        if entry[2].score >= min_score:
            out.append(entry)
    out.sort(key=_entry_key)
    return list(map(_entry_match, out))
