"""Matching: the query language (``query``), profiles compiled together (``compiled``), the scan and the
per-profile lists (``match``), scores (``rank``) and top-k selection (``top``)."""

from __future__ import annotations

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

__all__ = [
    "ORG_BOOST",
    "QUERY_HELP",
    "REPEAT_WEIGHT",
    "WEIGHTS",
    "Matcher",
    "Query",
    "compact_org",
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
