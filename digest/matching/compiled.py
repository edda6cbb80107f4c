"""The compiled form of every profile (``Matcher``): built by ``match.compile_profiles``, read by ``rank`` and
``top``. Its own module so the three import it instead of each other. Also the name keys ``author:`` terms and
followed authors are compiled to (``name_lookups``) and a paper's author names are looked up by (``name_keys``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import product
from typing import Any

import numpy as np

from digest.matching.query import PARTICLES, CompiledNode, name_parts
from digest.models import Profile

__all__ = ["Matcher", "author_term_ids", "name_keys", "name_lookups"]


@dataclass(frozen=True, slots=True, eq=False)  # eq by identity: numpy fields do not compare to a bool
class Matcher:
    """Every profile compiled together: one automaton over all distinct terms, an index term -> queries.

    Queries are deduplicated by their text, so a query shared by many profiles is evaluated once per paper.
    """

    profiles: tuple[Profile, ...]
    automaton: Any  # ahocorasick.Automaton: " pattern" -> pattern index; None when there are no terms
    patterns: tuple[tuple[int, int, int], ...]  # per pattern: (length, exact term id, prefix term id); -1 = none
    n_terms: int  # term ids [0, n_terms) come from the automaton or are names; regex ids follow
    regexes: tuple[tuple[str, Any, frozenset[str]], ...]  # per regex: ('/src/', compiled, fields it runs on)
    queries: tuple[CompiledNode, ...]  # per query id: the keyword and exclude texts, then the followed authors
    simple: tuple[tuple[tuple[int, str, str], ...], ...]  # per term id: (query id, field, written) of 1-term queries
    complex: tuple[tuple[int, ...], ...]  # per term id: ids of larger queries that use it
    keyword_queries: frozenset[int]  # ids of queries some profile uses as a keyword (or follows)
    # Every profile's keyword query ids (its followed authors' included), profile after profile, each profile's
    # sorted (= by query text, then by followed name) without repeats; profile i's are
    # keyword_qids[keyword_start[i]:keyword_start[i + 1]].
    keyword_qids: np.ndarray
    keyword_start: np.ndarray
    plain: tuple[bool, ...]  # per profile: no exclude, upvote, organization or score filter (the fast path)
    excludes: tuple[frozenset[int], ...]  # per profile: its exclude query ids
    orgs: tuple[frozenset[str], ...]  # per profile: compacted organization names
    # Name terms (author: and followed authors): name key (see name_keys) -> term ids; prefix terms by their
    # lookups' prefix. Both empty when no profile names an author: papers' authors are then never looked at.
    author_exact: dict[str, tuple[int, ...]]
    author_prefix: dict[str, tuple[int, ...]]

    def keyword_ids(self, pidx: int) -> tuple[int, ...]:
        """Profile ``pidx``'s keyword query ids, sorted."""
        return tuple(self.keyword_qids[self.keyword_start[pidx] : self.keyword_start[pidx + 1]].tolist())


# --- names --------------------------------------------------------------------------------------------------
# A name is matched by set intersection: a paper's author name gives a few keys (name_keys), a name term a few
# lookups (name_lookups), and they match when one lookup is one key. Keys carry a tag:
#   "t part"          each name part (a one-word term: author:li)
#   "s p1 p2 .. pn"   each run of two or more parts that ends the name (author:"van der Maaten", Ruiz-Garcia)
#   "n g1 .. gk sur"  the given names then the surname, each given name as written or as its initial, which
#                     is marked "g~" when the paper has the full name (so the term "Y. LeCun" finds
#                     "Yann LeCun" through "n y~ lecun", while "Yann LeCun" looks up "n yann lecun" and
#                     "n y lecun", the paper's "Y. LeCun", never "Yoshua LeCun"'s "n y~ lecun")
#   "m g1 sur"        the same without middle names, for a paper name that has them ("Geoffrey E. Hinton")
# Only the first MAX_VARIED given names vary (a name part beyond them must be written the same way).
MAX_VARIED = 4


def _split(parts: tuple[str, ...] | list[str]) -> tuple[tuple[str, ...], str]:
    """(given names, surname): the surname is the last part with the particles before it (never the first)."""
    cut = len(parts) - 1
    while cut > 1 and parts[cut - 1] in PARTICLES:
        cut -= 1
    return tuple(parts[:cut]), " ".join(parts[cut:])


def _forms(given: tuple[str, ...], *, term: bool) -> list[tuple[str, ...]]:
    """Each given name's forms: a paper's full name as itself or "g~"; a term's full name as itself or its
    initial (the paper wrote the initial); a term's initial as itself or "g~" (the paper wrote the full name)."""
    out: list[tuple[str, ...]] = []
    for i, g in enumerate(given):
        if i >= MAX_VARIED:
            out.append((g,))
        elif len(g) > 1:
            out.append((g, g[0]) if term else (g, g[0] + "~"))
        else:
            out.append((g, g + "~") if term else (g,))
    return out


def _names(tag: str, forms: list[tuple[str, ...]], surname: str) -> Iterator[str]:
    for combo in product(*forms):
        yield f"{tag} {' '.join(combo)} {surname}"


@lru_cache(maxsize=65536)
def name_keys(name: str) -> tuple[str, ...]:
    """The keys of one of a paper's author names (see above)."""
    parts = name_parts(name)
    keys = [f"t {part}" for part in parts]
    keys += [f"s {' '.join(parts[j:])}" for j in range(len(parts) - 1)]
    given, surname = _split(parts)
    if given:
        forms = _forms(given, term=False)
        keys += _names("n", forms, surname)
        if len(given) > 1:
            keys += _names("m", forms[:1], surname)
    return tuple(dict.fromkeys(keys))


def name_lookups(pattern: str) -> tuple[str, ...]:
    """The keys a name term (``Term.pattern``, "@yann lecun") matches (see above); for a prefix term, the
    keys' beginnings (its last name part is the prefix)."""
    parts = pattern[1:].split()
    if len(parts) == 1:
        return (f"t {parts[0]}",)
    given, surname = _split(parts)
    forms = _forms(given, term=True)
    lookups = [f"s {' '.join(parts)}", *_names("n", forms, surname)]
    if len(given) == 1:  # the paper's name may have middle names
        lookups += _names("m", forms, surname)
    elif all(len(g) == 1 for g in given[1:]):  # middle initials the paper's name may lack
        lookups += _names("n", forms[:1], surname)
    return tuple(dict.fromkeys(lookups))


def author_term_ids(exact: dict[str, tuple[int, ...]], prefix: dict[str, tuple[int, ...]], name: str) -> set[int]:
    """The ids of the name terms that match one author name."""
    found: set[int] = set()
    for key in name_keys(name):
        tids = exact.get(key)
        if tids:
            found.update(tids)
        if prefix:  # every beginning of the key's last name part
            for end in range(key.rfind(" ") + 2, len(key) + 1):
                tids = prefix.get(key[:end])
                if tids:
                    found.update(tids)
    return found
