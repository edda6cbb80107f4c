"""Keyword profiles: match papers against every profile at once, rank them, and say why.

## Keyword queries

Each entry of a profile's `keywords` is a query; a paper is picked when **any** of them matches, and
dropped when any query in `exclude` matches. Matching ignores case and Unicode variants (NFKC +
case folding on both the query and the paper).

- `GAN`: the whole word only: "GAN", "GANs", never "organ".
- `LLM`: "LLM", "LLMs" (a trailing *s*/*es* on the paper's word is tolerated), never "LLMOps".
- `"self-supervised"`: the words in order. Hyphen, en dash, underscore, slash and whitespace are all the
  same separator, so it also matches "self supervised" and "self_supervised"; other punctuation between
  two words (a comma, a full stop) breaks a phrase.
- `self-supervised`: an unquoted hyphenated term is the same as the quoted phrase (so are `GPT-4`, `TCP/IP`).
- `diffus*`: words starting with "diffus" (diffusion, diffusing). `*` only at the end of a word or phrase.
- `diffusion video`: both words (implicit AND); `diffusion AND video` is the same.
- `diffusion OR flow`: either word. AND binds tighter than OR.
- `diffusion -video` or `diffusion NOT video`: diffusion, but not papers that mention video.
- `(diffusion OR flow) -video`: parentheses group.
- `title:agent` (or `ti:agent`): only in the title. Also `abstract:` (`abs:`) and `org:` (the
  organization). Without a field a term looks in the title and the abstract.
- `title:(agent OR planner)`: a field scope applies to a whole group.
- `/gpt-?4o?/`: an opt-in regular expression ([regex](https://pypi.org/project/regex/) syntax,
  case-insensitive, on the original text, at most 200 characters). A pattern that runs longer than
  0.05 s on one paper counts as no match there and is logged; after 3 such timeouts in a run it is skipped.

Operators `OR`, `AND`, `NOT` must be written in capitals (lower-case "or" is a word to look for).
A query that is empty or only excludes (`-video`, `NOT video`) is rejected, as it would match almost
every paper; put exclusions in `exclude` instead. A syntax error names the position, e.g.
`unclosed quote at character 11` with a caret under the quote. `C++` and `C#` are words of their own.
Plural tolerance works one way: `LLMs` does not match "LLM". A profile without keywords whose
`organizations_mode` is "only" receives every paper from its organizations.

**Ranking.** Each distinct term found in a title scores 3, in an abstract 1, in `org:` 1, plus
0.5 × ln(count) for repeats; an organization listed in the profile (mode "boost") adds 2. Papers are
ordered by score, then upvotes, then newest first, then dump order. `min_score` and `min_upvotes`
filter; `organizations` with mode "only" keeps just papers from those organizations (compared without
case, spaces or punctuation, so "huggingface" matches "Hugging Face").
"""

from __future__ import annotations

import bisect
import dataclasses
import gc
import logging
import math
import operator
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import ahocorasick

from digest.errors import ConfigError, QueryError
from digest.models import Hit, Match, Paper, Profile
from digest.query import (
    ABSTRACT,
    ANY,
    ORG,
    TITLE,
    And,
    Node,
    Not,
    Query,
    Regex,
    Scan,
    Term,
    compile_regex,
    fold,
    leaves,
    parse_query,
    scan_text,
)

__all__ = [
    "QUERY_HELP",
    "Matcher",
    "Query",
    "compile_profiles",
    "match_all",
    "match_profile",
    "match_query",
    "parse_query",
]

QUERY_HELP = __doc__[__doc__.index("## Keyword queries") :]  # type: ignore[index]

log = logging.getLogger(__name__)

WEIGHTS = {TITLE: 3.0, ABSTRACT: 1.0, ORG: 1.0}
REPEAT_WEIGHT = 0.5
ORG_BOOST = 2.0
REGEX_TIMEOUT = 0.05  # seconds per regex per paper
REGEX_MAX_TIMEOUTS = 3  # after this many timeouts in one call a regex is skipped for the rest of it
REGEX_MAX_HITS = 50
_NO_IDS: frozenset[int] = frozenset()
_NO_ORGS: frozenset[str] = frozenset()
_LEAF, _NOT, _AND, _OR = 0, 1, 2, 3

# A compiled query node is a nested tuple (faster to walk than the AST):
# (_LEAF, term_id, field, written) | (_NOT, child) | (_AND, children) | (_OR, children)
_CNode = tuple[Any, ...]
# Evidence of a match: (term as written, term id, field), in the order found.
_Witness = list[tuple[str, int, str]]
# Per paper: term id -> field -> spans (scan offsets for automaton terms, original offsets for regexes).
_Hits = dict[int, dict[str, list[tuple[int, int]]]]


@dataclass(frozen=True, slots=True)
class Matcher:
    """Every profile compiled together: one automaton over all distinct terms plus inverted indexes."""

    profiles: tuple[Profile, ...]
    automaton: Any  # ahocorasick.Automaton: " pattern" -> pattern index; None when there are no terms
    patterns: tuple[tuple[int, int, int], ...]  # per pattern: (length, exact term id, prefix term id); -1 = none
    n_terms: int  # term ids [0, n_terms) come from the automaton; regex ids follow
    regexes: tuple[tuple[str, Any, frozenset[str]], ...]  # per regex: ('/src/', compiled, fields it runs on)
    queries: tuple[_CNode, ...]  # per query id
    simple: tuple[tuple[tuple[int, str, str], ...], ...]  # per term id: (query id, field, written) of 1-term queries
    complex: tuple[tuple[int, ...], ...]  # per term id: ids of larger queries that use it
    keyword_queries: frozenset[int]  # ids of queries some profile uses as a keyword
    keyword_ids: tuple[tuple[int, ...], ...]  # per profile: its keyword query ids, sorted
    plain: tuple[bool, ...]  # per profile: no exclude, upvote, organization or score filter (the fast path)
    excludes: tuple[frozenset[int], ...]  # per profile: its exclude query ids
    orgs: tuple[frozenset[str], ...]  # per profile: compacted organization names
    org_only: dict[str, tuple[int, ...]]  # compact org -> profiles without keywords in mode "only"


def compact_org(name: str) -> str:
    """An organization name without case, spaces or punctuation ("Hugging Face" -> "huggingface")."""
    return "".join(ch for ch in fold(name)[0] if ch.isalnum())


def _compile_node(node: Node, term_ids: dict[tuple[str, bool], int], regex_ids: dict[str, int]) -> _CNode:
    if isinstance(node, Term):
        return (_LEAF, term_ids[(node.pattern, node.prefix)], node.field, node.text)
    if isinstance(node, Regex):
        return (_LEAF, regex_ids[node.pattern], node.field, node.text)
    if isinstance(node, Not):
        return (_NOT, _compile_node(node.child, term_ids, regex_ids))
    kind = _AND if isinstance(node, And) else _OR
    return (kind, tuple(_compile_node(child, term_ids, regex_ids) for child in node.children))


def _parse_for(profile: Profile, key: str, index: int, text: str) -> Query:
    try:
        return parse_query(text)
    except QueryError as exc:
        raise QueryError(f"profile {profile.name!r}, {key}[{index}]: {exc.message}", exc.hint, exc.position) from exc


def compile_profiles(profiles: Sequence[Profile]) -> Matcher:
    """Parse every profile's queries and build the shared automaton and indexes; raises QueryError."""
    query_ids: dict[str, int] = {}
    parsed: list[Query] = []

    def ids_of(profile: Profile, key: str) -> list[int]:
        texts = getattr(profile, key)
        try:  # fast path: every query already seen (the usual case with many profiles)
            return [query_ids[text] for text in texts]
        except KeyError:
            pass
        out = []
        for index, text in enumerate(texts):
            qid = query_ids.get(text)
            if qid is None:
                parsed.append(_parse_for(profile, key, index, text))
                qid = query_ids[text] = len(parsed) - 1
            out.append(qid)
        return out

    keyword_lists: list[tuple[int, ...]] = []
    exclude_sets: list[frozenset[int]] = []
    orgs: list[frozenset[str]] = []
    plain: list[bool] = []
    for profile in profiles:
        kw_ids = ids_of(profile, "keywords")
        # Sorted and unique, so a profile's true queries always come out in one canonical order.
        keyword_lists.append(tuple(sorted(set(kw_ids))))
        exclude_sets.append(frozenset(ids_of(profile, "exclude")) if profile.exclude else _NO_IDS)
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

    queries: list[_CNode] = []
    simple: list[list[tuple[int, str, str]]] = [[] for _ in range(total)]
    complex_: list[list[int]] = [[] for _ in range(total)]
    for qid, query in enumerate(parsed):
        node = _compile_node(query.root, term_ids, regex_ids)
        queries.append(node)
        if node[0] == _LEAF:
            simple[node[1]].append((qid, node[2], node[3]))
        else:
            for tid in dict.fromkeys(_leaf_ids(node)):
                complex_[tid].append(qid)

    org_only: dict[str, list[int]] = {}
    for pidx, profile in enumerate(profiles):
        if not keyword_lists[pidx] and profile.organizations_mode == "only":
            for org in orgs[pidx]:
                org_only.setdefault(org, []).append(pidx)
    return Matcher(
        profiles=tuple(profiles),
        automaton=automaton,
        patterns=tuple(patterns),
        n_terms=n_terms,
        regexes=tuple((f"/{src}/", compile_regex(src), frozenset(fields)) for src, fields in regex_srcs.items()),
        queries=tuple(queries),
        simple=tuple(tuple(s) for s in simple),
        complex=tuple(tuple(c) for c in complex_),
        keyword_queries=frozenset(qid for ids in keyword_lists for qid in ids),
        keyword_ids=tuple(keyword_lists),
        plain=tuple(plain),
        excludes=tuple(exclude_sets),
        orgs=tuple(orgs),
        org_only={org: tuple(ids) for org, ids in org_only.items()},
    )


def _leaf_ids(node: _CNode) -> list[int]:
    if node[0] == _LEAF:
        return [node[1]]
    if node[0] == _NOT:
        return _leaf_ids(node[1])
    return [tid for child in node[1] for tid in _leaf_ids(child)]


def _evaluate(node: _CNode, hits: _Hits) -> _Witness | None:
    """None when false, else the positive leaves that made it true (NOT contributes none)."""
    kind = node[0]
    if kind == _LEAF:
        found = hits.get(node[1])
        if not found:
            return None
        field = node[2]
        if field == ANY:
            out = [(node[3], node[1], f) for f in (TITLE, ABSTRACT) if f in found]
            return out or None
        return [(node[3], node[1], field)] if field in found else None
    if kind == _NOT:
        return None if _evaluate(node[1], hits) is not None else []
    result: _Witness | None
    if kind == _AND:
        result = []
        for child in node[1]:
            part = _evaluate(child, hits)
            if part is None:
                return None
            result += part
        return result
    result = None
    for child in node[1]:
        part = _evaluate(child, hits)
        if part is not None:
            result = part if result is None else result + part
    return result


@dataclass(slots=True)
class _Prepared:
    """One paper normalised once per call: its scans and, per term, where it hit."""

    paper: Paper
    scans: dict[str, Scan]
    hits: _Hits
    true: dict[int, _Witness] = dataclasses.field(default_factory=dict)  # query id -> witness, for true queries
    # (term id, field, written) -> (its hits, its score, its reason fragment); built on first use
    terms: dict[tuple[int, str, str], tuple[tuple[Hit, ...], float, str]] = dataclasses.field(default_factory=dict)
    # (query ids, org boost) -> (order key, rank, Match): profiles with the same true keywords share it
    entries: dict[tuple[tuple[int, ...], bool], _Entry] = dataclasses.field(default_factory=dict)
    org: str = ""  # compacted organization
    rank: int = 0  # position in tiebreak order: upvotes desc, newest first, input order
    n_papers: int = 1


def _scan_hits(matcher: Matcher, scan: Scan, field: str, hits: _Hits) -> None:
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


def _regex_hits(matcher: Matcher, paper: Paper, hits: _Hits, timeouts: list[int]) -> None:
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
    hits: _Hits = {}
    if matcher.automaton is not None:
        for field, scan in scans.items():
            _scan_hits(matcher, scan, field, hits)
    if matcher.regexes:
        _regex_hits(matcher, paper, hits, timeouts)
    return _Prepared(paper, scans, hits, org=compact_org(paper.organization) if paper.organization else "")


def _true_queries(matcher: Matcher, hits: _Hits) -> dict[int, _Witness]:
    """Query id -> witness for every query true on this paper, in a fixed order."""
    true: dict[int, _Witness] = {}
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
                witness = _evaluate(queries[qid], hits)
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


def _term_info(matcher: Matcher, prep: _Prepared, tid: int, field: str, written: str) -> tuple[Any, ...]:
    """One term's hits in one field of this paper, its score and its reason fragment (cached per paper)."""
    key = (tid, field, written)
    info = prep.terms.get(key)
    if info is None:
        spans = prep.hits[tid][field]
        count = len(spans)
        score = WEIGHTS[field] + (REPEAT_WEIGHT * math.log(count) if count > 1 else 0.0)
        hits = tuple(Hit(written, field, *_span(matcher, prep, tid, field, span)) for span in spans)
        info = prep.terms[key] = (hits, score, f'"{written}"' + (f" ×{count}" if count > 1 else ""))
    return info


def _entry(matcher: Matcher, prep: _Prepared, qids: tuple[int, ...], boost: bool) -> _Entry:
    """The ranked Match for the queries ``qids`` that hold on this paper (cached: profiles share it)."""
    key = (qids, boost)
    entry = prep.entries.get(key)
    if entry is None:
        match = _build_match(matcher, prep, qids, boost)
        entry = prep.entries[key] = (_order_key(match.score, prep), prep.rank, match)
    return entry


def _build_match(matcher: Matcher, prep: _Prepared, qids: tuple[int, ...], boost: bool) -> Match:
    distinct: dict[tuple[int, str], str] = {}
    for qid in qids:
        for written, tid, field in prep.true[qid]:
            distinct.setdefault((tid, field), written)
    score = 0.0
    by_field: dict[str, tuple[list[Hit], list[str]]] = {TITLE: ([], []), ABSTRACT: ([], []), ORG: ([], [])}
    for (tid, field), written in distinct.items():
        term_hits, term_score, fragment = _term_info(matcher, prep, tid, field, written)
        score += term_score
        field_hits, fragments = by_field[field]
        field_hits += term_hits
        fragments.append(fragment)
    hits: list[Hit] = []
    parts: list[str] = []
    for field, (field_hits, fragments) in by_field.items():
        if fragments:
            hits += sorted(field_hits, key=_hit_start) if len(fragments) > 1 else field_hits
            parts.append(f"{field}: {', '.join(fragments)}")
    organization = prep.paper.organization
    if boost:
        score += ORG_BOOST
        parts.append(f'org boost: "{organization}" +{ORG_BOOST:g}')
    elif not qids:
        parts.append(f'org: "{organization}"')
    return Match(paper=prep.paper, score=round(score, 6), hits=tuple(hits), reason="; ".join(parts) or "matched")


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
    keyword_ids: tuple[int, ...], by_query: dict[int, list[_Entry]], matcher: Matcher, preps: list[_Prepared]
) -> list[Match]:
    """A plain profile's ranked matches: the lists of its true keywords, merged (the hot path)."""
    true_ids = list(filter(by_query.__contains__, keyword_ids))
    if not true_ids:
        return []
    if len(true_ids) == 1:
        return list(map(_entry_match, by_query[true_ids[0]]))
    merged = list(chain.from_iterable(map(by_query.__getitem__, true_ids)))
    by_paper = dict(zip(map(_entry_paper, merged), merged, strict=True))
    if len(by_paper) < len(merged):
        # Papers reached through two or more keywords get one Match for all of them.
        for pi, count in Counter(map(_entry_paper, merged)).items():
            if count > 1:
                prep = preps[pi]
                qids = tuple(filter(prep.true.__contains__, true_ids))
                by_paper[pi] = prep.entries.get((qids, False)) or _entry(matcher, prep, qids, False)
        merged = list(by_paper.values())
    merged.sort(key=_entry_key)
    return list(map(_entry_match, merged))


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


def match_all(matcher: Matcher, papers: Sequence[Paper]) -> dict[str, list[Match]]:
    """Profile name -> its ranked matches (after exclusions and filters, not cut to max_papers)."""
    # The fan-out allocates millions of small lists and tuples and no reference cycles; with 100,000
    # profiles the cyclic collector's passes over them cost about a third of the run, so it waits.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _match_all(matcher, papers)
    finally:
        if gc_was_enabled:
            gc.enable()


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
    for entries in by_query.values():
        entries.sort(key=_entry_key)
    # Profile by profile, merging the small per-query lists, is far cheaper than appending each paper to
    # 100,000 scattered per-profile lists.
    out: dict[str, list[Match]] = {}
    plain, keyword_ids = matcher.plain, matcher.keyword_ids
    for pidx, profile in enumerate(matcher.profiles):
        if plain[pidx]:
            out[profile.name] = _plain_results(keyword_ids[pidx], by_query, matcher, preps)
        else:
            out[profile.name] = _filtered_results(pidx, by_query, matcher, preps, org_papers)
    return out


def match_profile(profile: Profile, papers: Sequence[Paper]) -> list[Match]:
    """Ranked matches of one profile (convenience wrapper over compile_profiles + match_all)."""
    return match_all(compile_profiles([profile]), papers)[profile.name]


def match_query(query: str, papers: Sequence[Paper]) -> list[Match]:
    """Ranked matches of a single query, as `digest match 'QUERY'` shows them; raises QueryError."""
    return match_profile(Profile(name="query", email="", keywords=(query,)), papers)
