"""Keyword profiles: match papers against every profile at once, rank them, and say why.

The query language is documented in ``QUERY_HELP`` (the module docstring of ``digest.matching.query``).

How it scales to 100,000 profiles: each distinct query text is parsed once; all distinct terms and phrases
go into one Aho-Corasick automaton that runs once over each paper's normalised title, abstract and org;
an index term -> queries means only queries with a hit are evaluated, once per paper, not per profile.
Each profile then merges the ranked lists of its true keywords (a paper reached through two keywords gets
one combined Match). Profiles with the same true keywords on a paper share one (frozen) Match object.

Author names are looked up, not scanned: each name of a paper gives a few keys (``compiled.name_keys``) found in
a dict of the keys ``author:`` terms accept, only when some profile names an author. A profile's followed
authors are one-term queries of their own (field FOLLOWS, ids after the texts'), listed with its keywords, so
every path below treats a follow as a keyword that holds.

``match_all`` returns every profile's full ranked list, profile by profile in Python. ``match_top`` returns only
what a digest shows, each profile's first ``max_papers`` matches and how many there were: it ranks every
(profile, paper) pair at once as rows of numpy arrays (``digest.matching.top``) and builds Match objects (hits, reasons)
only for the matches some profile keeps. Scores and Matches live in ``digest.matching.rank``.
"""

from __future__ import annotations

import gc
import heapq
import logging
import operator
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import chain, count

import ahocorasick
import numpy as np

from digest.errors import ConfigError, QueryError
from digest.matching.compiled import Matcher, author_term_ids, name_lookups
from digest.matching.query import (
    ABSTRACT,
    ANY,
    AUTHORS,
    FOLLOWS,
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
    follow_query,
    leaf_ids,
    leaves,
    parse_query,
    scan_text,
)
from digest.matching.rank import (
    FOLLOW_BOOST,
    ORG_BOOST,
    REPEAT_WEIGHT,
    WEIGHTS,
    Prepared,
    filtered_results,
    plain_results,
    query_entries,
    tiebreak_order,
)
from digest.matching.top import ranked_lists
from digest.models import Match, Paper, Profile

__all__ = [
    "FOLLOW_BOOST",
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
    "match_top",
    "match_top_stream",
    "org_keys",
    "org_text",
    "parse_query",
]


log = logging.getLogger(__name__)

REGEX_TIMEOUT = 0.05  # seconds per regex per paper
REGEX_MAX_TIMEOUTS = 3  # after this many timeouts in one call a regex is skipped for the rest of it
REGEX_MAX_HITS = 50
_NO_IDS: frozenset[int] = frozenset()
_NO_ORGS: frozenset[str] = frozenset()


def _keyword_table(
    qids: np.ndarray, n_keywords: np.ndarray, n_queries: int, more: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(keyword_qids, keyword_start) from every profile's keyword ids as written (``n_keywords`` per profile), and
    ``more`` rows (profile * n_queries + query id) to add (the followed authors)."""
    rows = np.repeat(np.arange(len(n_keywords), dtype=np.int64) * n_queries, n_keywords)
    rows += qids
    if more is not None:
        rows = np.concatenate((rows, more))
    rows.sort(kind="stable")  # a timsort: sorts each profile's run
    fresh = np.ones(len(rows), bool)
    np.not_equal(rows[1:], rows[:-1], out=fresh[1:])
    owner, keyword_qids = np.divmod(rows[fresh], max(n_queries, 1))
    keyword_start = np.zeros(len(n_keywords) + 1, np.int64)
    np.cumsum(np.bincount(owner, minlength=len(n_keywords)), out=keyword_start[1:])
    return keyword_qids, keyword_start


_keywords = operator.attrgetter("keywords")
_excludes = operator.attrgetter("exclude")
_authors = operator.attrgetter("authors")


def compact_org(name: str) -> str:
    """An organization name without case, spaces or punctuation ("Hugging Face" -> "huggingface")."""
    return "".join(ch for ch in fold(name)[0] if ch.isalnum())


def org_keys(paper: Paper) -> tuple[str, ...]:
    """The paper's organization as profiles may name it: its display name and its handle, compacted, distinct.

    A profile's ``organizations`` entry matches when it equals either, so "facebook" and "AI at Meta" both pick
    Meta's papers, and "huggingface" matches "Hugging Face" even without a handle.
    """
    names = (paper.organization, paper.org_handle)
    return tuple(dict.fromkeys(filter(None, (compact_org(name) for name in names if name))))


def org_text(paper: Paper) -> str:
    """The text ``org:`` terms search and org Hit offsets point into.

    It is the display name, followed by the handle in parentheses when the handle's words are not already a
    run of the display name's: "AI at Meta (facebook)", "Hugging Face (huggingface)", but just "Google" for
    handle "google" and "Tencent Hunyuan" for "tencent", so a handle that repeats the name does not count
    twice. The parenthesis is a hard break, so a phrase never runs from the name into the handle.
    """
    display, handle = paper.organization or "", paper.org_handle or ""
    if not handle or not display:
        return display or handle
    words = scan_text(handle).text
    if not words.strip() or words in scan_text(display).text:
        return display
    return f"{display} ({handle})"


def _parse_all(profiles: Sequence[Profile], texts: Sequence[str], follows: Sequence[str] = ()) -> list[Query]:
    """Parse the distinct queries, then the followed authors; a QueryError names the first profile and keyword
    (or author, in order) that fails."""
    try:
        return [parse_query(text) for text in texts] + [follow_query(name) for name in follows]
    except QueryError:
        for profile in profiles:
            for key, parse in (("keywords", parse_query), ("exclude", parse_query), ("authors", follow_query)):
                for index, text in enumerate(getattr(profile, key)):
                    try:
                        parse(text)
                    except QueryError as exc:
                        message = f"profile {profile.name!r}, {key}[{index}]: {exc.message}"
                        raise QueryError(message, exc.hint, exc.position) from exc
        raise


def _follow_rows(profiles: Sequence[Profile], n_texts: int) -> tuple[list[str], np.ndarray | None]:
    """The distinct followed authors (in name order: query ids n_texts, n_texts + 1, ...) and one keyword-table row
    (profile * number of queries + query id) per profile and author it follows; ([], None) when none follows."""
    if not any(map(_authors, profiles)):
        return [], None
    follows = sorted({name for profile in profiles for name in profile.authors}, key=lambda n: (n.casefold(), n))
    fid = {name: n_texts + i for i, name in enumerate(follows)}
    n_queries = n_texts + len(follows)
    rows = [pidx * n_queries + fid[name] for pidx, profile in enumerate(profiles) for name in profile.authors]
    return follows, np.array(rows, np.int64)


def compile_profiles(profiles: Sequence[Profile]) -> Matcher:
    """Parse every profile's queries and build the shared automaton and indexes; raises QueryError."""
    with _gc_paused():
        return _compile_profiles(profiles)


def _compile_profiles(profiles: Sequence[Profile]) -> Matcher:
    # Query ids follow the queries' text order, so a profile's keywords sorted by id come out in an order
    # that does not depend on the other profiles: combined Matches can then be shared between profiles.
    # One C-level pass numbers every keyword text as first met (a defaultdict over a counter), then the ids are
    # renumbered in text order in numpy: reading 1.5 million keyword strings once, not twice, is most of it.
    first_ids: defaultdict[str, int] = defaultdict(count().__next__)
    n_keywords = np.fromiter(map(len, map(_keywords, profiles)), np.int64, len(profiles))
    met = np.fromiter(
        map(first_ids.__getitem__, chain.from_iterable(map(_keywords, profiles))), np.int64, int(n_keywords.sum())
    )
    deque(map(first_ids.__getitem__, chain.from_iterable(map(_excludes, profiles))), maxlen=0)
    ordered = sorted(first_ids, key=lambda text: (text.casefold(), text))
    follows, follow_rows = _follow_rows(profiles, len(ordered))  # query ids after the texts'
    parsed = _parse_all(profiles, ordered, follows)
    query_ids = {text: qid for qid, text in enumerate(ordered)}
    qid_of = query_ids.__getitem__
    renumber = np.empty(len(ordered), np.int64)
    renumber[np.fromiter(map(first_ids.__getitem__, ordered), np.int64, len(ordered))] = np.arange(len(ordered))
    keyword_qids, keyword_start = _keyword_table(renumber[met], n_keywords, len(parsed), follow_rows)

    exclude_sets = [frozenset(map(qid_of, profile.exclude)) if profile.exclude else _NO_IDS for profile in profiles]
    orgs = [
        frozenset(filter(None, map(compact_org, profile.organizations))) if profile.organizations else _NO_ORGS
        for profile in profiles
    ]
    plain = [
        not profile.exclude and not org_set and profile.min_upvotes <= 0 and profile.min_score <= 0
        for profile, org_set in zip(profiles, orgs, strict=True)
    ]
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
    names: tuple[dict[str, list[int]], dict[str, list[int]]] = ({}, {})  # name lookups -> term ids: exact, prefix
    for (pattern, prefix), tid in term_ids.items():
        if pattern[0] == "@":  # a name (author: or a followed author): looked up, not scanned
            for key in name_lookups(pattern):
                names[prefix].setdefault(key, []).append(tid)
            continue
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
        keyword_queries=frozenset(np.flatnonzero(np.bincount(keyword_qids, minlength=len(parsed))).tolist()),
        keyword_qids=keyword_qids,
        keyword_start=keyword_start,
        plain=tuple(plain),
        excludes=tuple(exclude_sets),
        orgs=tuple(orgs),
        author_exact={key: tuple(tids) for key, tids in names[0].items()},
        author_prefix={key: tuple(tids) for key, tids in names[1].items()},
    )


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
    texts = {TITLE: paper.title, ABSTRACT: paper.abstract, ORG: org_text(paper)}
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


def _author_hits(matcher: Matcher, authors: tuple[str, ...], hits: LeafHits) -> None:
    """Each name term's hits: the indexes (i, i + 1) of the authors it matches, as AUTHORS and FOLLOWS hits."""
    found: dict[int, list[tuple[int, int]]] = {}
    exact, prefix = matcher.author_exact, matcher.author_prefix
    for index, name in enumerate(authors):
        for tid in author_term_ids(exact, prefix, name):
            found.setdefault(tid, []).append((index, index + 1))
    for tid, spans in found.items():
        hits[tid] = {AUTHORS: spans, FOLLOWS: spans}  # name terms have ids of their own ("@" patterns)


def _prepare(matcher: Matcher, paper: Paper, timeouts: list[int]) -> Prepared:
    scans = {TITLE: scan_text(paper.title), ABSTRACT: scan_text(paper.abstract)}
    if paper.organization or paper.org_handle:
        scans[ORG] = scan_text(org_text(paper))
    hits: LeafHits = {}
    if matcher.automaton is not None:
        for field, scan in scans.items():
            _scan_hits(matcher, scan, field, hits)
    if matcher.regexes:
        _regex_hits(matcher, paper, hits, timeouts)
    if paper.authors and (matcher.author_exact or matcher.author_prefix):
        _author_hits(matcher, paper.authors, hits)
    return Prepared(paper, scans, hits, orgs=org_keys(paper))


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
            # Re-enabled as is, the collector's next pass would walk every object the call returned (0.2 s
            # for 100,000 profiles): freeze + unfreeze hands them to the oldest generation without a walk.
            # Skipped when the program froze objects itself (unfreeze would undo that).
            if not gc.get_freeze_count():
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def _prepare_all(
    matcher: Matcher, papers: Sequence[Paper]
) -> tuple[list[Prepared], dict[int, list[int]], dict[str, list[int]]]:
    """Every paper scanned and evaluated once, in tiebreak order (index = rank); keyword query id -> ranks
    of the papers where it holds; compacted organization (display name or handle) -> ranks of its papers, each
    paper listed under both of its names so a profile finds it by either."""
    timeouts = [0] * len(matcher.regexes)
    preps: list[Prepared] = []
    holds: dict[int, list[int]] = {}
    org_papers: dict[str, list[int]] = {}
    keyword_queries = matcher.keyword_queries
    for rank, pi in enumerate(tiebreak_order(papers)):
        prep = _prepare(matcher, papers[pi], timeouts)
        prep.true = _true_queries(matcher, prep.hits)
        prep.rank, prep.n_papers = rank, len(papers)
        preps.append(prep)
        for org in prep.orgs:
            org_papers.setdefault(org, []).append(rank)
        for qid in prep.true:
            if qid in keyword_queries:
                holds.setdefault(qid, []).append(rank)
    return preps, holds, org_papers


def _masks(holds: dict[int, list[int]]) -> dict[int, int]:
    """Keyword query id -> bit set of the papers (bit i = rank i) where it holds."""
    return {qid: sum(1 << rank for rank in ranks) for qid, ranks in holds.items()}


def match_all(matcher: Matcher, papers: Sequence[Paper]) -> dict[str, list[Match]]:
    """Profile name -> its ranked matches (after exclusions and filters, not cut to max_papers)."""
    with _gc_paused():
        return _match_all(matcher, papers)


def _match_all(matcher: Matcher, papers: Sequence[Paper]) -> dict[str, list[Match]]:
    preps, holds, org_papers = _prepare_all(matcher, papers)
    # keyword query id -> its one-query Match on every paper it holds, ranked
    by_query = {qid: query_entries(matcher, preps, ranks, qid) for qid, ranks in holds.items()}
    masks = _masks(holds)
    # Profile by profile, merging the small per-query lists, is far cheaper than appending each paper to
    # 100,000 scattered per-profile lists.
    out: dict[str, list[Match]] = {}
    plain, keyword_qids, bounds = matcher.plain, matcher.keyword_qids.tolist(), matcher.keyword_start.tolist()
    for pidx, profile in enumerate(matcher.profiles):
        if plain[pidx]:
            keyword_ids = keyword_qids[bounds[pidx] : bounds[pidx + 1]]
            out[profile.name] = plain_results(keyword_ids, by_query, masks, matcher, preps)
        else:
            out[profile.name] = filtered_results(pidx, holds, matcher, preps, org_papers)
    return out


def match_top(matcher: Matcher, papers: Sequence[Paper]) -> dict[str, tuple[list[Match], int]]:
    """Profile name -> (its first max_papers ranked matches, as match_all gives them; how many it has).

    A max_papers below 1 (the config requires 1 or more) keeps no matches."""
    with _gc_paused():
        return _match_top(matcher, papers)


def _match_top(matcher: Matcher, papers: Sequence[Paper]) -> dict[str, tuple[list[Match], int]]:
    preps, holds, org_papers = _prepare_all(matcher, papers)
    lists = ranked_lists(matcher, preps, holds, org_papers)
    return {profile.name: found for profile, found in zip(matcher.profiles, lists, strict=True)}


def _stream_order(match: Match, index: int) -> tuple[int, int, bool, int, int]:
    """match_top's order across batches: score (as rank.order_key rounds it), then the tiebreak of
    rank.tiebreak_order with ``index``, the paper's place in the whole stream, as the input order."""
    paper = match.paper
    published = paper.published
    return (-round(match.score * 1_000_000), -(paper.upvotes or 0), published is None,
            -published.toordinal() if published else 0, index)  # fmt: skip


def match_top_stream(matcher: Matcher, batches: Iterable[Sequence[Paper]]) -> dict[str, tuple[list[Match], int]]:
    """``match_top`` over papers that arrive in batches (a store's whole history), holding one batch and each
    profile's best ``max_papers`` at a time: the same result as ``match_top`` over the batches concatenated.
    A paper's score depends on that paper alone, so ranking per batch and merging is exact."""
    best: dict[str, list[tuple[tuple[int, int, bool, int, int], Match]]] = {p.name: [] for p in matcher.profiles}
    totals = dict.fromkeys(best, 0)
    keep = {p.name: max(p.max_papers, 0) for p in matcher.profiles}
    offset = 0
    for batch in batches:
        index = {paper.key: offset + i for i, paper in enumerate(batch)}
        for name, (kept, total) in match_top(matcher, batch).items():
            totals[name] += total
            ranked = [(_stream_order(m, index[m.paper.key]), m) for m in kept]
            best[name] = heapq.nsmallest(keep[name], best[name] + ranked, key=operator.itemgetter(0))
        offset += len(batch)
    return {name: ([m for _, m in found], totals[name]) for name, found in best.items()}


def match_profile(profile: Profile, papers: Sequence[Paper]) -> list[Match]:
    """Ranked matches of one profile (convenience wrapper over compile_profiles + match_all)."""
    return match_all(compile_profiles([profile]), papers)[profile.name]


def match_query(query: str, papers: Sequence[Paper]) -> list[Match]:
    """Ranked matches of a single query, as `digest match 'QUERY'` shows them; raises QueryError."""
    return match_profile(Profile(name="query", email="", keywords=(query,)), papers)
