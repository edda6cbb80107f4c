"""Matching: the query language (``query``), profiles compiled together (``compiled``), the scan and the
per-profile lists (``match``), scores (``rank``), top-k selection (``top``), the seam a ranker other than
the keywords plugs into (``ranker``) and the learned per-user ranker behind it (``learned``, on ``features``)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from digest.matching.learned import LearnedRanker, state_is_current
    from digest.matching.match import (
        ORG_BOOST,
        QUERY_HELP,
        REPEAT_WEIGHT,
        WEIGHTS,
        Matcher,
        Query,
        compact_org,
        compile_profiles,
        match_all,
        match_profile,
        match_query,
        match_top,
        match_top_stream,
        org_keys,
        org_text,
        parse_query,
    )
    from digest.matching.ranker import (
        DEFAULT_RANKER,
        RANKERS,
        KeywordRanker,
        Ranked,
        Ranker,
        RankerContext,
        RankerFactory,
        Seeds,
        Vote,
        blend,
        make_ranker,
        rank_matches,
        ranker_states,
        rescore,
        suggest,
    )

__all__ = [
    "DEFAULT_RANKER",
    "ORG_BOOST",
    "QUERY_HELP",
    "RANKERS",
    "REPEAT_WEIGHT",
    "WEIGHTS",
    "KeywordRanker",
    "LearnedRanker",
    "Matcher",
    "Query",
    "Ranked",
    "Ranker",
    "RankerContext",
    "RankerFactory",
    "Seeds",
    "Vote",
    "blend",
    "compact_org",
    "compile_profiles",
    "make_ranker",
    "match_all",
    "match_profile",
    "match_query",
    "match_top",
    "match_top_stream",
    "org_keys",
    "org_text",
    "parse_query",
    "rank_matches",
    "ranker_states",
    "rescore",
    "state_is_current",
    "suggest",
]

# Each public name's module, imported on first use (PEP 562): a caller that needs one module (the config
# checking a query parses: query) does not load numpy and the automaton with it.
_WHERE = {
    "DEFAULT_RANKER": "digest.matching.ranker",
    "KeywordRanker": "digest.matching.ranker",
    "LearnedRanker": "digest.matching.learned",
    "Matcher": "digest.matching.match",
    "ORG_BOOST": "digest.matching.match",
    "QUERY_HELP": "digest.matching.match",
    "Query": "digest.matching.match",
    "RANKERS": "digest.matching.ranker",
    "REPEAT_WEIGHT": "digest.matching.match",
    "Ranked": "digest.matching.ranker",
    "Ranker": "digest.matching.ranker",
    "RankerContext": "digest.matching.ranker",
    "RankerFactory": "digest.matching.ranker",
    "Seeds": "digest.matching.ranker",
    "Vote": "digest.matching.ranker",
    "WEIGHTS": "digest.matching.match",
    "blend": "digest.matching.ranker",
    "compact_org": "digest.matching.match",
    "compile_profiles": "digest.matching.match",
    "make_ranker": "digest.matching.ranker",
    "match_all": "digest.matching.match",
    "match_profile": "digest.matching.match",
    "match_query": "digest.matching.match",
    "match_top": "digest.matching.match",
    "match_top_stream": "digest.matching.match",
    "org_keys": "digest.matching.match",
    "org_text": "digest.matching.match",
    "parse_query": "digest.matching.match",
    "rank_matches": "digest.matching.ranker",
    "ranker_states": "digest.matching.ranker",
    "rescore": "digest.matching.ranker",
    "state_is_current": "digest.matching.learned",
    "suggest": "digest.matching.ranker",
}


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
