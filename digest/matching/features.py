"""Text features for the learned ranker: each paper as a sparse, L2-normalised vector of hashed terms.

Terms are the title's and abstract's words (lower case, two or more letters or digits, English stop words
left out) and the pairs of neighbouring words. A term's column is the CRC-32 of its
text modulo ``DIM``: no vocabulary is fitted, so a user's model trained last month scores today's papers, and
the columns are the same in every process and every release that keeps ``FEATURES_VERSION``. The title counts
``TITLE_WEIGHT`` times; counts are dampened (1 + log count). (Authors as terms, tried on the dev set, changed
nothing measurable, so they are left to the keyword profile's ``authors`` follows.)

``FeatureCache`` computes each paper's vector once per run, however many users see it, and keeps the papers
that ``rank`` is given in one block indexed by column, so that a user's few hundred weights find the entries
they score by binary search instead of touching every term of every paper.
"""

from __future__ import annotations

import itertools
import operator
import re
import zlib
from collections.abc import Iterable, Sequence

import numpy as np

from digest.models import Paper, Profile

__all__ = ["DIM", "FEATURES_VERSION", "FeatureCache", "Vector", "paper_terms", "profile_vector", "term_vector"]

FEATURES_VERSION = 2  # bump when the terms, weights or hashing change: stored models are then retrained
DIM_BITS = 20
DIM = 1 << DIM_BITS
_MASK = DIM - 1
TITLE_WEIGHT = 2.0

_KEY = operator.attrgetter("key")
_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_QUERY_TOKEN = re.compile(r'-?"[^"]*"|\S+')
_OPERATORS = frozenset({"OR", "AND", "NOT"})
# The Glasgow stop word list as scikit-learn ships it (ENGLISH_STOP_WORDS), so no import is needed for it.
_STOP_TEXT = """
    a about above across after afterwards again against all almost alone along already also although always am
    among amongst amoungst amount an and another any anyhow anyone anything anyway anywhere are around as at
    back be became because become becomes becoming been before beforehand behind being below beside besides
    between beyond bill both bottom but by call can cannot cant co con could couldnt cry de describe detail do
    done down due during each eg eight either eleven else elsewhere empty enough etc even ever every everyone
    everything everywhere except few fifteen fifty fill find fire first five for former formerly forty found
    four from front full further get give go had has hasnt have he hence her here hereafter hereby herein
    hereupon hers herself him himself his how however hundred i ie if in inc indeed interest into is it its
    itself keep last latter latterly least less ltd made many may me meanwhile might mill mine more moreover
    most mostly move much must my myself name namely neither never nevertheless next nine no nobody none noone
    nor not nothing now nowhere of off often on once one only onto or other others otherwise our ours ourselves
    out over own part per perhaps please put rather re same see seem seemed seeming seems serious several she
    should show side since sincere six sixty so some somehow someone something sometime sometimes somewhere
    still such system take ten than that the their them themselves then thence there thereafter thereby
    therefore therein thereupon these they thick thin third this those though three through throughout thru thus
    to together too top toward towards twelve twenty two un under until up upon us very via was we well were
    what whatever when whence whenever where whereafter whereas whereby wherein whereupon wherever whether which
    while whither who whoever whole whom whose why will with within without would yet you your yours yourself
    yourselves
"""
STOP_WORDS = frozenset(_STOP_TEXT.split())

Vector = tuple[np.ndarray, np.ndarray]  # (columns int32, ascending and distinct; values float32, L2 norm 1)
_EMPTY: Vector = (np.zeros(0, np.int32), np.zeros(0, np.float32))


def _words(text: str) -> list[str]:
    """The text's words and neighbouring word pairs (stop words left out before pairing)."""
    tokens = [t for t in _TOKEN.findall(text.lower()) if t not in STOP_WORDS]
    return tokens + [f"{a} {b}" for a, b in itertools.pairwise(tokens)]


def paper_terms(paper: Paper) -> dict[str, float]:
    """The paper's terms and their weighted counts (a title's terms count ``TITLE_WEIGHT`` times)."""
    counts: dict[str, float] = {}
    for term in _words(paper.abstract):
        counts[term] = counts.get(term, 0.0) + 1.0
    for term in _words(paper.title):
        counts[term] = counts.get(term, 0.0) + TITLE_WEIGHT
    return counts


def column(term: str) -> int:
    """The term's column: CRC-32 of its UTF-8 text modulo ``DIM`` (stable across processes, unlike ``hash``)."""
    return zlib.crc32(term.encode("utf-8")) & _MASK


def term_vector(counts: dict[str, float]) -> Vector:
    """Weighted term counts as a hashed, dampened (1 + log count), L2-normalised vector."""
    if not counts:
        return _EMPTY
    crc = zlib.crc32
    cols = np.fromiter((crc(t.encode("utf-8")) & _MASK for t in counts), np.int64, len(counts))
    raw = np.fromiter(counts.values(), np.float64, len(counts))
    # np.unique sorts the columns: the counts must follow them (through ``inverse``), and terms sharing a
    # column add up.
    cols, inverse = np.unique(cols, return_inverse=True)
    vals = 1.0 + np.log(np.bincount(inverse, weights=raw, minlength=len(cols)))
    vals /= max(float(np.sqrt(vals @ vals)), 1e-12)
    return cols.astype(np.int32), vals.astype(np.float32)


def profile_words(profile: Profile) -> str:
    """The words of the profile's keywords, without operators, field scopes, exclusions, wildcards or quotes."""
    words = []
    for query in profile.keywords:
        for token in _QUERY_TOKEN.findall(query):
            if token.startswith("-") or token in _OPERATORS:
                continue
            words.append(token.split(":", 1)[-1].strip('"()*'))
    return " ".join(words)


def profile_vector(profile: Profile) -> Vector:
    """The profile's keywords as a vector: the prior that picks suggestions before any rating or seed."""
    return term_vector(dict.fromkeys(_words(profile_words(profile)), 1.0))


class FeatureCache:
    """Paper vectors for one run, each computed once (by paper key), and the block of papers being ranked.

    ``rows(papers)`` puts papers into the block (a paper's row never changes) and returns their rows;
    ``scores(columns, weights)`` scores every row of the block with a sparse weight vector."""

    def __init__(self) -> None:
        self._vectors: dict[str, Vector] = {}
        self._terms: dict[str, dict[int, str]] = {}
        self._row: dict[str, int] = {}
        self._pending: list[Vector] = []  # vectors of rows not indexed yet, in row order
        self._indexed = 0
        self._entries = (np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.float32))
        self._distinct = np.zeros(0, np.int32)
        self._offsets = np.zeros(1, np.int64)
        # column -> its index in _distinct (-1: no paper of the block has it): a model's columns find their
        # entries with one lookup instead of a binary search per user. 4 MB, allocated at the first index.
        self._where = np.zeros(0, np.int32)
        self._scratch = np.zeros(0, np.int32)  # all -1 between calls of positions()
        # Training papers, flat: each paper's terms as compact ids (the run's vocabulary, in order of first
        # sight) and values, appended to arrays that double when full; slot -> (start, end).
        self._slot: dict[str, int] = {}
        self._bounds: list[tuple[int, int]] = []
        self._starts = np.zeros(0, np.int64)
        self._ends = np.zeros(0, np.int64)
        self._ids = np.zeros(1 << 16, np.int32)
        self._vals = np.zeros(1 << 16, np.float32)
        self._used = 0
        self._compact: dict[int, int] = {}
        self._hashed = np.zeros(1 << 16, np.int32)

    def vector(self, paper: Paper) -> Vector:
        """The paper's vector (computed on first use)."""
        found = self._vectors.get(paper.key)
        if found is None:
            found = self._vectors[paper.key] = term_vector(paper_terms(paper))
        return found

    def vectors(self, papers: Iterable[Paper]) -> list[Vector]:
        return [self.vector(p) for p in papers]

    @property
    def vocabulary(self) -> int:
        """How many distinct columns the training papers of this run have (compact ids are below it)."""
        return len(self._compact)

    def entries(self, papers: Sequence[Paper]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The papers' terms, flat: compact column ids, values, and each paper's number of terms."""
        slot = self._slot
        slots = [slot.get(p.key, -1) for p in papers]
        if -1 in slots:
            slots = [s if s >= 0 else self._add(p) for s, p in zip(slots, papers, strict=True)]
        if len(self._starts) < len(self._bounds):
            self._starts = np.array([a for a, _ in self._bounds], np.int64)
            self._ends = np.array([b for _, b in self._bounds], np.int64)
        at = np.array(slots, np.int64)
        starts = self._starts[at]
        lengths = self._ends[at] - starts
        ends = np.cumsum(lengths)
        entry = np.repeat(starts - ends + lengths, lengths) + np.arange(int(ends[-1]) if len(ends) else 0)
        return self._ids[entry], self._vals[entry], lengths

    def hashed(self, ids: np.ndarray) -> np.ndarray:
        """The hashed columns of compact ids."""
        return self._hashed[ids]

    def _add(self, paper: Paper) -> int:
        """Put a paper's terms into the flat training arrays; its slot."""
        found = self._slot.get(paper.key)
        if found is not None:
            return found
        cols, vals = self.vector(paper)
        compact = self._compact
        ids = [compact.setdefault(c, len(compact)) for c in cols.tolist()]
        if len(compact) > len(self._hashed):
            self._hashed = np.resize(self._hashed, 2 * len(compact))
        self._hashed[ids] = cols
        end = self._used + len(ids)
        if end > len(self._ids):
            self._ids = np.resize(self._ids, 2 * end)
            self._vals = np.resize(self._vals, 2 * end)
        self._ids[self._used : end] = ids
        self._vals[self._used : end] = vals
        self._bounds.append((self._used, end))
        self._used = end
        found = self._slot[paper.key] = len(self._bounds) - 1
        return found

    def positions(self, columns: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Each of ``cols``'s index in ``columns`` (distinct columns, e.g. a model's), -1 where it is not there.
        A table over every column filled for the call and emptied after it: a few microseconds where a binary
        search of a paper batch's terms in a model's took 15 to 20."""
        if not len(self._scratch):
            self._scratch = np.full(DIM, -1, np.int32)
        self._scratch[columns] = np.arange(len(columns), dtype=np.int32)
        try:
            return self._scratch[cols]
        finally:
            self._scratch[columns] = -1

    def term_names(self, paper: Paper) -> dict[int, str]:
        """Column -> the paper's term that hashes there (for reasons); the title's terms win a collision."""
        found = self._terms.get(paper.key)
        if found is None:
            found = {}
            for term in paper_terms(paper):
                found.setdefault(column(term), term)
            self._terms[paper.key] = found
        return found

    def rows(self, papers: Sequence[Paper]) -> np.ndarray:
        """Each paper's row in the block (added to it when new)."""
        row = self._row
        try:
            return np.fromiter(map(row.__getitem__, map(_KEY, papers)), np.int64, len(papers))
        except KeyError:
            pass
        found = [row.get(p.key, -1) for p in papers]
        if -1 in found:
            for i, paper in enumerate(papers):
                if found[i] == -1:
                    at = row.get(paper.key)
                    if at is None:
                        at = row[paper.key] = len(row)
                        self._pending.append(self.vector(paper))
                    found[i] = at
        return np.array(found, np.int64)

    def index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
        """The block by column: the distinct columns (ascending), the offset of each one's first entry (one
        more offset at the end), and the row and value of each entry, entries sorted by column; and the number
        of rows. A model's few hundred columns find their entries by binary search in the distinct columns."""
        if self._pending:
            lengths = [len(cols) for cols, _ in self._pending]
            start = self._indexed
            cols, rows, vals = self._entries
            cols = np.concatenate([cols, *(c for c, _ in self._pending)])
            rows = np.concatenate([rows, np.repeat(np.arange(start, start + len(lengths)), lengths)])
            vals = np.concatenate([vals, *(v for _, v in self._pending)])
            order = np.argsort(cols, kind="stable")
            self._entries = cols[order], rows[order], vals[order]
            self._distinct, first = np.unique(self._entries[0], return_index=True)
            self._offsets = np.append(first, len(cols))
            if not len(self._where):
                self._where = np.full(DIM, -1, np.int32)
            self._where[self._distinct] = np.arange(len(self._distinct), dtype=np.int32)
            self._indexed += len(self._pending)
            self._pending = []
        _, rows, vals = self._entries
        return self._distinct, self._offsets, rows, vals, self._indexed

    def scores(self, columns: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Every block row's dot product with the sparse weights (``columns`` ascending)."""
        _, offsets, rows, vals, n = self.index()
        if not n:
            return np.zeros(0)
        at = self._where[columns]
        held = np.flatnonzero(at >= 0)
        at = at[held]
        lo, counts = offsets[at], offsets[at + 1] - offsets[at]
        total = int(counts.sum())
        if not total:
            return np.zeros(n)
        ends = np.cumsum(counts)
        entry = np.repeat(lo - ends + counts, counts) + np.arange(total)
        return np.bincount(rows[entry], weights=vals[entry] * np.repeat(weights[held], counts), minlength=n)
