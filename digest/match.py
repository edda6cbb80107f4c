"""Keyword profiles: match papers against every profile at once, rank them, and say why.

The query language is documented in ``QUERY_HELP`` (the module docstring of ``digest.query``).

How it scales to 100,000 profiles: each distinct query text is parsed once; all distinct terms and phrases
go into one Aho-Corasick automaton that runs once over each paper's normalised title, abstract and org;
an index term -> queries means only queries with a hit are evaluated, once per paper, not per profile.
Each profile then merges the ranked lists of its true keywords (a paper reached through two keywords gets
one combined Match). Profiles with the same true keywords on a paper share one (frozen) Match object.
"""

from __future__ import annotations

import bisect
import dataclasses
import gc
import logging
import math
import operator
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from typing import Any

import ahocorasick

from digest.errors import ConfigError, QueryError
from digest.models import Hit, Match, Paper, Profile
from digest.query import (
    ABSTRACT,
    ANY,
    LEAF,
    ORG,
    QUERY_HELP,
    TITLE,
    CompiledNode,
    LeafHits,
    Query,
    Scan,
    Term,
    Witness,
    compile_node,
    compile_regex,
    evaluate_witness,
    fold,
    leaf_ids,
    leaves,
    parse_query,
    scan_text,
)

__all__ = [
    "ORG_BOOST",
    "QUERY_HELP",
    "REPEAT_WEIGHT",
    "WEIGHTS",
    "Matcher",
    "Query",
    "compile_profiles",
    "match_all",
    "match_profile",
    "match_query",
    "parse_query",
]


log = logging.getLogger(__name__)

WEIGHTS = {TITLE: 3.0, ABSTRACT: 1.0, ORG: 1.0}
REPEAT_WEIGHT = 0.5
ORG_BOOST = 2.0
REGEX_TIMEOUT = 0.05  # seconds per regex per paper
REGEX_MAX_TIMEOUTS = 3  # after this many timeouts in one call a regex is skipped for the rest of it
REGEX_MAX_HITS = 50
_NO_IDS: frozenset[int] = frozenset()
_NO_ORGS: frozenset[str] = frozenset()
_NO_KEYS: frozenset[tuple[int, str]] = frozenset()


@dataclass(frozen=True, slots=True)
class Matcher:
    """Every profile compiled together: one automaton over all distinct terms, an index term -> queries.

    Queries are deduplicated by their text, so a query shared by many profiles is evaluated once per paper.
    """

    profiles: tuple[Profile, ...]
    automaton: Any  # ahocorasick.Automaton: " pattern" -> pattern index; None when there are no terms
    patterns: tuple[tuple[int, int, int], ...]  # per pattern: (length, exact term id, prefix term id); -1 = none
    n_terms: int  # term ids [0, n_terms) come from the automaton; regex ids follow
    regexes: tuple[tuple[str, Any, frozenset[str]], ...]  # per regex: ('/src/', compiled, fields it runs on)
    queries: tuple[CompiledNode, ...]  # per query id
    simple: tuple[tuple[tuple[int, str, str], ...], ...]  # per term id: (query id, field, written) of 1-term queries
    complex: tuple[tuple[int, ...], ...]  # per term id: ids of larger queries that use it
    keyword_queries: frozenset[int]  # ids of queries some profile uses as a keyword
    keyword_ids: tuple[tuple[int, ...], ...]  # per profile: its keyword query ids, sorted (= by query text)
    plain: tuple[bool, ...]  # per profile: no exclude, upvote, organization or score filter (the fast path)
    excludes: tuple[frozenset[int], ...]  # per profile: its exclude query ids
    orgs: tuple[frozenset[str], ...]  # per profile: compacted organization names


def compact_org(name: str) -> str:
    """An organization name without case, spaces or punctuation ("Hugging Face" -> "huggingface")."""
    return "".join(ch for ch in fold(name)[0] if ch.isalnum())


def _parse_all(profiles: Sequence[Profile], texts: Sequence[str]) -> list[Query]:
    """Parse the distinct queries; a QueryError names the first profile and keyword (in order) that fails."""
    try:
        return [parse_query(text) for text in texts]
    except QueryError:
        for profile in profiles:
            for key in ("keywords", "exclude"):
                for index, text in enumerate(getattr(profile, key)):
                    try:
                        parse_query(text)
                    except QueryError as exc:
                        message = f"profile {profile.name!r}, {key}[{index}]: {exc.message}"
                        raise QueryError(message, exc.hint, exc.position) from exc
        raise


def compile_profiles(profiles: Sequence[Profile]) -> Matcher:
    """Parse every profile's queries and build the shared automaton and indexes; raises QueryError."""
    with _gc_paused():
        return _compile_profiles(profiles)


def _compile_profiles(profiles: Sequence[Profile]) -> Matcher:
    # Query ids follow the queries' text order, so a profile's keywords sorted by id come out in an order
    # that does not depend on the other profiles: combined Matches can then be shared between profiles.
    texts: set[str] = set()
    for profile in profiles:
        texts.update(profile.keywords, profile.exclude)
    ordered = sorted(texts, key=lambda text: (text.casefold(), text))
    parsed = _parse_all(profiles, ordered)
    query_ids = {text: qid for qid, text in enumerate(ordered)}

    keyword_lists: list[tuple[int, ...]] = []
    exclude_sets: list[frozenset[int]] = []
    orgs: list[frozenset[str]] = []
    plain: list[bool] = []
    for profile in profiles:
        keyword_lists.append(tuple(sorted(set(map(query_ids.__getitem__, profile.keywords)))))
        exclude_sets.append(frozenset(map(query_ids.__getitem__, profile.exclude)) if profile.exclude else _NO_IDS)
        org_set = (
            frozenset(filter(None, map(compact_org, profile.organizations))) if profile.organizations else _NO_ORGS
        )
        orgs.append(org_set)
        plain.append(not profile.exclude and not org_set and profile.min_upvotes <= 0 and profile.min_score <= 0)
    if len({profile.name for profile in profiles}) != len(profiles):
        seen: set[str] = set()
        dupe = next(p.name for p in profiles if p.name in seen or seen.add(p.name))  # type: ignore[func-returns-value]
        raise ConfigError(f"two profiles are named {dupe!r}", "give every profile a unique name")

    # Distinct terms (by normalised pattern and prefix flag) and regexes get ids.
    term_ids: dict[tuple[str, bool], int] = {}
    regex_srcs: dict[str, set[str]] = {}
    for query in parsed:
        for leaf in leaves(query.root):
            if isinstance(leaf, Term):
                term_ids.setdefault((leaf.pattern, leaf.prefix), len(term_ids))
            else:
                regex_srcs.setdefault(leaf.pattern, set()).update(
                    (TITLE, ABSTRACT) if leaf.field == ANY else (leaf.field,)
                )
    n_terms = len(term_ids)
    regex_ids = {src: n_terms + i for i, src in enumerate(regex_srcs)}
    total = n_terms + len(regex_ids)

    by_pattern: dict[str, list[int]] = {}
    for (pattern, prefix), tid in term_ids.items():
        slot = by_pattern.setdefault(pattern, [len(pattern), -1, -1])
        slot[2 if prefix else 1] = tid
    automaton = None
    patterns: list[tuple[int, int, int]] = []
    if by_pattern:
        automaton = ahocorasick.Automaton()
        for pattern, slot in by_pattern.items():
            automaton.add_word(pattern, len(patterns))
            patterns.append((slot[0], slot[1], slot[2]))
        automaton.make_automaton()

    queries: list[CompiledNode] = []
    simple: list[list[tuple[int, str, str]]] = [[] for _ in range(total)]
    complex_: list[list[int]] = [[] for _ in range(total)]
    for qid, query in enumerate(parsed):
        node = compile_node(query.root, term_ids, regex_ids)
        queries.append(node)
        if node[0] == LEAF:
            simple[node[1]].append((qid, node[2], node[3]))
        else:
            for tid in dict.fromkeys(leaf_ids(node)):
                complex_[tid].append(qid)

    return Matcher(
        profiles=tuple(profiles),
        automaton=automaton,
        patterns=tuple(patterns),
        n_terms=n_terms,
        regexes=tuple((f"/{src}/", compile_regex(src), frozenset(fields)) for src, fields in regex_srcs.items()),
        queries=tuple(queries),
        simple=tuple(tuple(s) for s in simple),
        complex=tuple(tuple(c) for c in complex_),
        keyword_queries=frozenset(chain.from_iterable(keyword_lists)),
        keyword_ids=tuple(keyword_lists),
        plain=tuple(plain),
        excludes=tuple(exclude_sets),
        orgs=tuple(orgs),
    )


@dataclass(slots=True)
class _Prepared:
    """One paper normalised once per call: its scans and, per term, where it hit."""

    paper: Paper
    scans: dict[str, Scan]
    hits: LeafHits
    true: dict[int, Witness] = dataclasses.field(default_factory=dict)  # query id -> witness, for true queries
    parts: dict[int, _Part] = dataclasses.field(default_factory=dict)  # true query id -> its part, on first use
    # (query ids, org boost) -> (order key, rank, Match): profiles with the same true keywords share it
    entries: dict[tuple[tuple[int, ...], bool], _Entry] = dataclasses.field(default_factory=dict)
    org: str = ""  # compacted organization
    rank: int = 0  # position in tiebreak order: upvotes desc, newest first, input order
    n_papers: int = 1


def _scan_hits(matcher: Matcher, scan: Scan, field: str, hits: LeafHits) -> None:
    s = scan.text
    patterns = matcher.patterns
    for end, pid in matcher.automaton.iter(s):
        length, exact, prefix = patterns[pid]
        e = end + 1  # first char after the pattern
        start = e - length + 1  # first char of the first word
        if prefix >= 0:
            hits.setdefault(prefix, {}).setdefault(field, []).append((start, s.index(" ", e)))
        if exact >= 0:
            c = s[e]
            if c == " ":
                b = e
            elif c == "s" and s[e + 1] == " ":
                b = e + 1
            elif c == "e" and s[e + 1] == "s" and s[e + 2] == " ":
                b = e + 2
            else:
                continue
            hits.setdefault(exact, {}).setdefault(field, []).append((start, b))


def _regex_hits(matcher: Matcher, paper: Paper, hits: LeafHits, timeouts: list[int]) -> None:
    texts = {TITLE: paper.title, ABSTRACT: paper.abstract, ORG: paper.organization or ""}
    for index, (src, compiled, fields) in enumerate(matcher.regexes):
        if timeouts[index] >= REGEX_MAX_TIMEOUTS:
            continue
        rid = matcher.n_terms + index
        found: dict[str, list[tuple[int, int]]] = {}
        deadline = time.perf_counter() + REGEX_TIMEOUT
        try:
            for field in (TITLE, ABSTRACT, ORG):
                if field not in fields or not texts[field]:
                    continue
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    raise TimeoutError
                spans = []
                for m in compiled.finditer(texts[field], timeout=remaining):
                    if m.end() > m.start():
                        spans.append(m.span())
                        if len(spans) >= REGEX_MAX_HITS:
                            break
                if spans:
                    found[field] = spans
        except TimeoutError:
            timeouts[index] += 1
            log.warning("regex %s timed out on paper %s; counted as no match", src, paper.key)
            if timeouts[index] >= REGEX_MAX_TIMEOUTS:
                log.warning("regex %s timed out %d times; skipped for the remaining papers", src, timeouts[index])
            continue
        if found:
            hits[rid] = found


def _prepare(matcher: Matcher, paper: Paper, timeouts: list[int]) -> _Prepared:
    scans = {TITLE: scan_text(paper.title), ABSTRACT: scan_text(paper.abstract)}
    if paper.organization:
        scans[ORG] = scan_text(paper.organization)
    hits: LeafHits = {}
    if matcher.automaton is not None:
        for field, scan in scans.items():
            _scan_hits(matcher, scan, field, hits)
    if matcher.regexes:
        _regex_hits(matcher, paper, hits, timeouts)
    return _Prepared(paper, scans, hits, org=compact_org(paper.organization) if paper.organization else "")


def _true_queries(matcher: Matcher, hits: LeafHits) -> dict[int, Witness]:
    """Query id -> witness for every query true on this paper, in a fixed order."""
    true: dict[int, Witness] = {}
    tried: set[int] = set()
    simple, complex_, queries = matcher.simple, matcher.complex, matcher.queries
    for tid, fields in hits.items():
        for qid, field, written in simple[tid]:
            if field == ANY:
                found = [(written, tid, f) for f in (TITLE, ABSTRACT) if f in fields]
                if found:
                    true[qid] = found
            elif field in fields:
                true[qid] = [(written, tid, field)]
        for qid in complex_[tid]:
            if qid not in tried:
                tried.add(qid)
                witness = evaluate_witness(queries[qid], hits)
                if witness is not None:
                    true[qid] = witness
    return true


def _span(matcher: Matcher, prep: _Prepared, tid: int, field: str, span: tuple[int, int]) -> tuple[int, int]:
    """Map a hit to offsets in the original field text."""
    if tid >= matcher.n_terms:
        return span
    scan = prep.scans[field]
    first = bisect.bisect_left(scan.starts, span[0])
    last = bisect.bisect_right(scan.starts, span[1] - 1) - 1
    return scan.ostarts[first], scan.oends[last]


def _part(matcher: Matcher, prep: _Prepared, witness: Witness) -> _Part:
    """Score, hits and reason fragments of the distinct terms in ``witness``."""
    keys: dict[tuple[int, str], str] = {}
    for written, tid, field in witness:
        keys.setdefault((tid, field), written)
    score = 0.0
    hits: dict[str, list[Hit]] = {TITLE: [], ABSTRACT: [], ORG: []}
    fragments: dict[str, list[str]] = {TITLE: [], ABSTRACT: [], ORG: []}
    for (tid, field), written in keys.items():
        spans = prep.hits[tid][field]
        count = len(spans)
        score += WEIGHTS[field] + (REPEAT_WEIGHT * math.log(count) if count > 1 else 0.0)
        hits[field] += [Hit(written, field, *_span(matcher, prep, tid, field, span)) for span in spans]
        fragments[field].append(f'"{written}"' + (f" ×{count}" if count > 1 else ""))
    return (
        frozenset(keys),
        score,
        *(tuple(sorted(hits[field], key=_hit_start)) for field in _FIELDS),
        *(tuple(fragments[field]) for field in _FIELDS),
    )  # type: ignore[return-value]


def _merged_part(matcher: Matcher, prep: _Prepared, qids: tuple[int, ...]) -> _Part:
    """The part of several true queries: their parts added up when they share no term."""
    parts = []
    for qid in qids:
        part = prep.parts.get(qid)
        if part is None:
            part = prep.parts[qid] = _part(matcher, prep, prep.true[qid])
        parts.append(part)
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2 and parts[0][0].isdisjoint(parts[1][0]):  # the common case, kept cheap
        a, b = parts
        return (
            _NO_KEYS,  # a merged part is never merged again
            a[1] + b[1],
            _merge_hits(a[2], b[2]),
            _merge_hits(a[3], b[3]),
            _merge_hits(a[4], b[4]),
            a[5] + b[5],
            a[6] + b[6],
            a[7] + b[7],
        )
    keys = frozenset().union(*map(_part_keys, parts))
    if len(keys) < sum(map(len, map(_part_keys, parts))):  # a term shared by two queries counts once
        return _part(matcher, prep, list(chain.from_iterable(map(prep.true.__getitem__, qids))))
    # Each part's hits are sorted; sorting the concatenation is a cheap merge of runs.
    return (
        keys,
        sum(map(_part_score, parts)),
        tuple(sorted(chain.from_iterable(map(_part_title, parts)), key=_hit_start)),
        tuple(sorted(chain.from_iterable(map(_part_abstract, parts)), key=_hit_start)),
        tuple(sorted(chain.from_iterable(map(_part_org, parts)), key=_hit_start)),
        tuple(chain.from_iterable(map(_part_title_reason, parts))),
        tuple(chain.from_iterable(map(_part_abstract_reason, parts))),
        tuple(chain.from_iterable(map(_part_org_reason, parts))),
    )


def _merge_hits(a: tuple[Hit, ...], b: tuple[Hit, ...]) -> tuple[Hit, ...]:
    return tuple(sorted(a + b, key=_hit_start)) if a and b else a or b


def _entry(matcher: Matcher, prep: _Prepared, qids: tuple[int, ...], boost: bool) -> _Entry:
    """The ranked Match for the queries ``qids`` that hold on this paper (cached: profiles share it)."""
    key = (qids, boost)
    entry = prep.entries.get(key)
    if entry is None:
        match = _build_match(matcher, prep, qids, boost)
        entry = prep.entries[key] = (_order_key(match.score, prep), prep.rank, match)
    return entry


def _build_match(matcher: Matcher, prep: _Prepared, qids: tuple[int, ...], boost: bool) -> Match:
    _, score, title, abstract, org, *fragments = _merged_part(matcher, prep, qids) if qids else _EMPTY_PART
    parts = [f"{field}: {', '.join(terms)}" for field, terms in zip(_FIELDS, fragments, strict=True) if terms]
    organization = prep.paper.organization
    if boost:
        score += ORG_BOOST
        parts.append(f'org boost: "{organization}" +{ORG_BOOST:g}')
    elif not qids:
        parts.append(f'org: "{organization}"')
    return Match(
        paper=prep.paper, score=round(score, 6), hits=title + abstract + org, reason="; ".join(parts) or "matched"
    )


# What a set of true queries contributes to a Match: its distinct (term id, field) keys, its score, its
# hits in the title, abstract and org (each sorted by offset), and its reason fragments for each field.
_Part = tuple[
    frozenset[tuple[int, str]],
    float,
    tuple[Hit, ...],
    tuple[Hit, ...],
    tuple[Hit, ...],
    tuple[str, ...],
    tuple[str, ...],
    tuple[str, ...],
]
_EMPTY_PART: _Part = (frozenset(), 0.0, (), (), (), (), (), ())
(
    _part_keys,
    _part_score,
    _part_title,
    _part_abstract,
    _part_org,
    _part_title_reason,
    _part_abstract_reason,
    _part_org_reason,
) = (operator.itemgetter(i) for i in range(8))
_FIELDS = (TITLE, ABSTRACT, ORG)
_hit_start = operator.attrgetter("start", "end")


def _tiebreak_order(papers: Sequence[Paper]) -> list[int]:
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


def _plain_results(
    keyword_ids: tuple[int, ...],
    by_query: dict[int, list[_Entry]],
    masks: dict[int, int],
    matches_of: dict[int, list[Match]],
    matcher: Matcher,
    preps: list[_Prepared],
) -> list[Match]:
    """A plain profile's ranked matches: the lists of its true keywords, merged (the hot path)."""
    true_ids = list(filter(by_query.__contains__, keyword_ids))
    if not true_ids:
        return []
    if len(true_ids) == 1:
        return matches_of[true_ids[0]].copy()
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


def _filtered_results(
    pidx: int,
    by_query: dict[int, list[_Entry]],
    matcher: Matcher,
    preps: list[_Prepared],
    org_papers: dict[str, list[int]],
) -> list[Match]:
    """A profile with exclusions, upvote, organization or score limits: every candidate checked."""
    profile = matcher.profiles[pidx]
    candidates: dict[int, list[int]] = {}
    for qid in matcher.keyword_ids[pidx]:
        for entry in by_query.get(qid, ()):
            candidates.setdefault(entry[1], []).append(qid)
    orgs = matcher.orgs[pidx]
    if not matcher.keyword_ids[pidx] and profile.organizations_mode == "only":
        for org in orgs:
            for pi in org_papers.get(org, ()):
                candidates[pi] = []
    excludes = matcher.excludes[pidx]
    out: list[_Entry] = []
    for pi, qids in candidates.items():
        prep = preps[pi]
        paper = prep.paper
        if not excludes.isdisjoint(prep.true.keys()) or (paper.upvotes or 0) < profile.min_upvotes:
            continue
        boost = False
        if orgs:
            in_org = prep.org in orgs
            if profile.organizations_mode == "only":
                if not in_org:
                    continue
            else:
                boost = in_org
        entry = _entry(matcher, prep, tuple(qids), boost)
        if entry[2].score >= profile.min_score:
            out.append(entry)
    out.sort(key=_entry_key)
    return list(map(_entry_match, out))


def _order_key(score: float, prep: _Prepared) -> int:
    """One int that sorts by score desc, then by the paper's tiebreak rank."""
    return -round(score * 1_000_000) * prep.n_papers + prep.rank


# An entry is (order key, paper index, Match); the key is unique per paper within one profile's list.
_Entry = tuple[int, int, Match]
_entry_key = operator.itemgetter(0)
_entry_paper = operator.itemgetter(1)
_entry_match = operator.itemgetter(2)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (reference counting still frees everything)."""
    # Compiling and matching 100,000 profiles allocate millions of small tuples and lists but no reference
    # cycles; the collector's repeated passes over them cost 20-30% of the run, so it waits until the end.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def match_all(matcher: Matcher, papers: Sequence[Paper]) -> dict[str, list[Match]]:
    """Profile name -> its ranked matches (after exclusions and filters, not cut to max_papers)."""
    with _gc_paused():
        return _match_all(matcher, papers)


def _match_all(matcher: Matcher, papers: Sequence[Paper]) -> dict[str, list[Match]]:
    timeouts = [0] * len(matcher.regexes)
    preps: list[_Prepared] = []
    by_query: dict[int, list[_Entry]] = {}  # keyword query id -> its one-query Match on every paper it holds
    org_papers: dict[str, list[int]] = {}
    keyword_queries = matcher.keyword_queries
    for rank, pi in enumerate(_tiebreak_order(papers)):
        prep = _prepare(matcher, papers[pi], timeouts)
        prep.true = _true_queries(matcher, prep.hits)
        prep.rank, prep.n_papers = rank, len(papers)
        preps.append(prep)
        if prep.org:
            org_papers.setdefault(prep.org, []).append(rank)
        for qid in prep.true:
            if qid in keyword_queries:
                by_query.setdefault(qid, []).append(_entry(matcher, prep, (qid,), False))
    masks: dict[int, int] = {}  # keyword query id -> bit set of the papers (by rank) where it holds
    matches_of: dict[int, list[Match]] = {}  # keyword query id -> its ranked matches
    for qid, entries in by_query.items():
        entries.sort(key=_entry_key)
        masks[qid] = sum(1 << rank for rank in map(_entry_paper, entries))
        matches_of[qid] = list(map(_entry_match, entries))
    # Profile by profile, merging the small per-query lists, is far cheaper than appending each paper to
    # 100,000 scattered per-profile lists.
    out: dict[str, list[Match]] = {}
    plain, keyword_ids = matcher.plain, matcher.keyword_ids
    for pidx, profile in enumerate(matcher.profiles):
        if plain[pidx]:
            out[profile.name] = _plain_results(keyword_ids[pidx], by_query, masks, matches_of, matcher, preps)
        else:
            out[profile.name] = _filtered_results(pidx, by_query, matcher, preps, org_papers)
    return out


def match_profile(profile: Profile, papers: Sequence[Paper]) -> list[Match]:
    """Ranked matches of one profile (convenience wrapper over compile_profiles + match_all)."""
    return match_all(compile_profiles([profile]), papers)[profile.name]


def match_query(query: str, papers: Sequence[Paper]) -> list[Match]:
    """Ranked matches of a single query, as `digest match 'QUERY'` shows them; raises QueryError."""
    return match_profile(Profile(name="query", email="", keywords=(query,)), papers)
