"""The compiled form of every profile (``Matcher``): built by ``match.compile_profiles``, read by ``rank`` and
``top``. Its own module so the three import it instead of each other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from digest.matching.query import CompiledNode
from digest.models import Profile

__all__ = ["Matcher"]


@dataclass(frozen=True, slots=True, eq=False)  # eq by identity: numpy fields do not compare to a bool
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
    # Every profile's keyword query ids, profile after profile, each profile's sorted (= by query text) without
    # repeats; profile i's are keyword_qids[keyword_start[i]:keyword_start[i + 1]].
    keyword_qids: np.ndarray
    keyword_start: np.ndarray
    plain: tuple[bool, ...]  # per profile: no exclude, upvote, organization or score filter (the fast path)
    excludes: tuple[frozenset[int], ...]  # per profile: its exclude query ids
    orgs: tuple[frozenset[str], ...]  # per profile: compacted organization names

    def keyword_ids(self, pidx: int) -> tuple[int, ...]:
        """Profile ``pidx``'s keyword query ids, sorted."""
        return tuple(self.keyword_qids[self.keyword_start[pidx] : self.keyword_start[pidx + 1]].tolist())
