"""The learned ranker ("learned"): per user, a linear model over hashed terms trained on the user's thumbs.

The model is a balanced Rocchio profile: the mean vector of the papers a user liked (thumbs up and the
``like`` seeds) minus the mean vector of the papers they disliked (thumbs down and ``dislike`` seeds), each
class weighing the same however many votes it has, cut to its ``TOP_TERMS`` heaviest terms. A paper's score is
its dot product with it: positive when it looks more like what the user liked than like what they did not.
On the dev set (bench/bench_relevance.py) it finds as many of the papers the keywords miss as the plain loop's
logistic regression on corpus-fitted TF-IDF (whose vocabulary, fitted to every paper, a per-user state could not
keep), and it trains in under a millisecond with no solver: the same votes always give the same bytes.

It picks and orders the ``max_papers`` keyword matches a digest shows (``blend``: half keyword score, half
learned score on the keyword scale; the rest is carried over in keyword order, to be ranked again) and
suggests the best-scoring candidates the keywords missed that score above 0 (at most ``profile.suggestions``,
honouring the profile's exclusions and limits). Each match it places and each suggestion says why in one
line: the liked paper it is closest to and the terms that weigh most. With neither votes nor seeds the
keyword order is kept as it is, and suggestions come from the words of the profile's keywords (cold start).

State: one model per user as bytes (``encode``/``decode``, about 4 KB), stored by the pipeline between runs.
A run trains the users it is given votes for (``RankerContext.votes``: every vote in effect) or that have
seeds and no state, and loads every other user's state; ``states()`` hands back the states it trained.
Training depends only on the votes in effect and the seeds, never on their order, so retraining a user after
new votes gives exactly the state a first training on all of them would.
"""

from __future__ import annotations

import hashlib
import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from digest.matching.compiled import Matcher
from digest.matching.features import FEATURES_VERSION, FeatureCache, profile_vector
from digest.matching.match import compact_org, compile_profiles, match_all, org_keys
from digest.matching.ranker import Ranked, RankerContext, Seeds, Vote, blend, suggest
from digest.models import Match, Paper, Profile

__all__ = ["TOP_TERMS", "LearnedRanker", "UserModel", "decode", "encode", "state_is_current", "train"]

log = logging.getLogger(__name__)

TOP_TERMS = 512  # terms kept per user: 512 x 6 bytes (column int32, weight float16)
EXEMPLARS = 8  # liked papers kept to say "close to 'X' that you liked"
EXEMPLAR_TERMS = 24  # of each, its heaviest terms in the model
BLEND_WEIGHT = 0.5  # a match's new score: half its keyword score, half the learned score on that scale
REASON_TERMS = 3
TITLE_CHARS = 60
_MAGIC = b"PDLR"
_FORMAT = 1
_HEADER = struct.Struct("<4sBB8sIIHB")  # magic, format, features version, seeds fingerprint, liked, disliked, k, E


@dataclass(frozen=True, slots=True)
class Exemplar:
    """A liked paper kept in the model: its title (cut) and the model positions of its heaviest terms."""

    title: str
    positions: np.ndarray  # uint16, into UserModel.columns


@dataclass(frozen=True, slots=True)
class UserModel:
    """One user's model: sparse weights over hashed term columns, and what it was trained on."""

    columns: np.ndarray  # int32, ascending
    weights: np.ndarray  # float32 (float16 precision: what the state keeps)
    liked: int  # papers counted as liked (thumbs up and like seeds)
    disliked: int
    seeds: bytes  # fingerprint of the seeds it was trained with (state_is_current)
    exemplars: tuple[Exemplar, ...] = ()


def seeds_fingerprint(seeds: Seeds) -> bytes:
    """8 bytes that change when the liked or disliked seed papers change."""
    liked, disliked = seeds
    text = "\n".join(sorted(p.key for p in liked)) + "\0" + "\n".join(sorted(p.key for p in disliked))
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()


def _examples(votes: Sequence[Vote], seeds: Seeds) -> dict[str, tuple[Paper, int, datetime | None]]:
    """paper key -> (paper, +1/-1, when): the seeds, then each paper's latest vote (a vote overrides a seed)."""
    out: dict[str, tuple[Paper, int, datetime | None]] = {}
    liked, disliked = seeds
    for papers, value in ((liked, 1), (disliked, -1)):
        for paper in papers:
            out[paper.key] = (paper, value, None)
    for vote in sorted(votes, key=lambda v: (v.at, v.value)):
        if vote.value in (1, -1):
            out[vote.paper.key] = (vote.paper, vote.value, vote.at)
    return out


class Sums:
    """Adds sparse vectors by compact column id (one per ranker; ids are below the run's vocabulary)."""

    def add(self, ids: np.ndarray, weights: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Sums of ``weights`` by id, as (distinct ids ascending, sums). A dense count over the vocabulary when
        it is not much larger than the entries (one pass, no sort), else a sort of the entries."""
        if size <= 16 * len(ids):
            acc = np.bincount(ids, weights=weights, minlength=size)
            distinct = np.flatnonzero(acc)
            return distinct, acc[distinct]
        distinct, inverse = np.unique(ids, return_inverse=True)
        return distinct, np.bincount(inverse, weights=weights, minlength=len(distinct))


def train(
    votes: Sequence[Vote],
    seeds: Seeds,
    features: FeatureCache,
    *,
    top_terms: int = TOP_TERMS,
    sums: Sums | None = None,
) -> UserModel | None:
    """The model of the votes in effect and the seeds (None when there are neither), the papers' vectors from
    ``features``. The order of ``votes`` does not matter: papers are added in the order of their keys."""
    examples = _examples(votes, seeds)
    if not examples:
        return None
    keys = sorted(examples)
    pos = [examples[k][0] for k in keys if examples[k][1] > 0]
    neg = [examples[k][0] for k in keys if examples[k][1] < 0]
    ids, vals, lengths = features.entries(pos + neg)
    # Each class weighs the same: a mean of what was liked minus a mean of what was not.
    scale = np.repeat([1.0 / max(len(pos), 1), -1.0 / max(len(neg), 1)], [len(pos), len(neg)])
    ids, sums_ = (sums or Sums()).add(ids, vals * np.repeat(scale, lengths), features.vocabulary)
    if len(ids) > top_terms:  # the heaviest terms (a deterministic cut: same sums, same terms)
        keep = _heaviest(sums_, top_terms)
        ids, sums_ = ids[keep], sums_[keep]
    cols = features.hashed(ids)
    ascending = np.argsort(cols)
    cols, weights = cols[ascending], sums_[ascending].astype(np.float16).astype(np.float32)
    nonzero = weights != 0
    cols, weights = cols[nonzero].astype(np.int32), weights[nonzero]
    liked = sorted(
        (item for item in examples.values() if item[1] > 0),
        key=lambda item: (item[2] is not None, item[2] or datetime.min, item[0].key),
        reverse=True,
    )
    kept = [paper for paper, _, _ in liked[:EXEMPLARS]]
    exemplars = _exemplars(features, kept, cols, weights)
    return UserModel(cols, weights, len(pos), len(neg), seeds_fingerprint(seeds), exemplars)


def _heaviest(sums: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest ``|sums|``: the set ``np.argpartition(-|sums|, k - 1)[:k]`` gives.

    A full argpartition of every term a user's papers have was the dearest step of training, so the terms
    above a bound taken from a sample are partitioned instead. When the k-th largest weight is tied with a
    weight left out, the set depends on how argpartition breaks the tie: then the full one decides, as before."""
    weight = np.abs(sums)
    sample = weight[::8]
    j = k // 4  # the sample's j-th largest: about 8j = 2k terms weigh as much or more
    if j and len(sample) > j:
        bound = np.partition(sample, len(sample) - j)[len(sample) - j]
        above = np.flatnonzero(weight >= bound)
        if len(above) > k:
            part = np.argpartition(-weight[above], k - 1)[:k]
            kth = weight[above[part]].min()
            if np.count_nonzero(weight[above] >= kth) == k:  # no tie at the cut: the set is the same
                return above[part]
    return np.argpartition(-weight, k - 1)[:k]


def _exemplars(
    features: FeatureCache, papers: Sequence[Paper], columns: np.ndarray, weights: np.ndarray
) -> tuple[Exemplar, ...]:
    """Each liked paper's title and the positions of its positively weighted model terms, heaviest first (ties
    in column order); papers with none are left out. All papers in one pass of numpy operations."""
    if not papers or not len(columns):
        return ()
    vectors = [features.vector(p) for p in papers]
    cols = np.concatenate([c for c, _ in vectors])
    vals = np.concatenate([v for _, v in vectors])
    paper = np.repeat(np.arange(len(vectors)), [len(c) for c, _ in vectors])
    at = features.positions(columns, cols)
    contrib = weights[at] * vals  # (at -1 where absent: any weight, dropped below)
    keep = np.flatnonzero((at >= 0) & (contrib > 0))
    order = keep[np.lexsort((-contrib[keep], paper[keep]))]  # stable: ties keep their column order
    paper, positions = paper[order], at[order]
    first = np.searchsorted(paper, np.arange(len(papers) + 1))
    return tuple(
        Exemplar(
            _cut(papers[i].title), positions[first[i] : min(first[i + 1], first[i] + EXEMPLAR_TERMS)].astype(np.uint16)
        )
        for i in range(len(papers))
        if first[i + 1] > first[i]
    )


def _cut(title: str) -> str:
    title = " ".join(title.split())
    return title if len(title) <= TITLE_CHARS else title[: TITLE_CHARS - 1].rstrip() + "…"


def encode(model: UserModel) -> bytes:
    """The model as bytes (what ``ranker_state.state`` holds)."""
    k = len(model.columns)
    parts = [
        _HEADER.pack(
            _MAGIC, _FORMAT, FEATURES_VERSION, model.seeds, model.liked, model.disliked, k, len(model.exemplars)
        ),
        model.columns.astype("<i4").tobytes(),
        model.weights.astype("<f2").tobytes(),
    ]
    for ex in model.exemplars:
        title = ex.title.encode("utf-8")[:255]
        parts.append(struct.pack("<BB", len(title), len(ex.positions)) + title + ex.positions.astype("<u2").tobytes())
    return b"".join(parts)


def decode(state: bytes) -> UserModel | None:
    """The model ``encode`` wrote, or None for bytes of another format or features version."""
    if len(state) < _HEADER.size:
        return None
    magic, fmt, features, seeds, liked, disliked, k, n_ex = _HEADER.unpack_from(state)
    if magic != _MAGIC or fmt != _FORMAT or features != FEATURES_VERSION:
        return None
    at = _HEADER.size
    columns = np.frombuffer(state, "<i4", k, at).astype(np.int32)
    at += 4 * k
    weights = np.frombuffer(state, "<f2", k, at).astype(np.float32)
    at += 2 * k
    exemplars = []
    for _ in range(n_ex):
        n_title, n_pos = struct.unpack_from("<BB", state, at)
        at += 2
        title = state[at : at + n_title].decode("utf-8", "ignore")
        at += n_title
        exemplars.append(Exemplar(title, np.frombuffer(state, "<u2", n_pos, at).copy()))
        at += 2 * n_pos
    return UserModel(columns, weights, liked, disliked, seeds, tuple(exemplars))


def state_is_current(state: bytes, seeds: Seeds) -> bool:
    """Whether a stored state can be used as is: same format and features, trained with these seeds. When it is
    not, the pipeline should hand the ranker the user's votes so that it retrains them."""
    # The header says it all: decoding the whole model here, and again when the ranker loads it, cost a
    # tenth of a day-2 run.
    if len(state) < _HEADER.size:
        return False
    magic, fmt, features, fingerprint, *_ = _HEADER.unpack_from(state)
    return (
        magic == _MAGIC and fmt == _FORMAT and features == FEATURES_VERSION and fingerprint == seeds_fingerprint(seeds)
    )


class LearnedRanker:
    """The "learned" ranker of one run: loads or trains each user's model, reorders their keyword matches and
    suggests what the keywords missed. Papers are turned into vectors once per run, whoever sees them."""

    wants_candidates = True

    def __init__(
        self,
        context: RankerContext,
        *,
        top_terms: int = TOP_TERMS,
        weight: float = BLEND_WEIGHT,
        floor: float | None = 0.0,
    ) -> None:
        self._votes = context.votes
        self._seeds = context.seeds
        self._stored = context.states
        self._top_terms = top_terms
        self._weight = weight
        self._floor = floor  # a suggestion must score above it (0: closer to what the user liked); None: any
        self._features = FeatureCache()
        self._sums = Sums()
        self._trained: dict[str, bytes] = {}
        self._excluders: dict[tuple[str, ...], Matcher] = {}
        self._priors: dict[tuple[str, ...], UserModel] = {}

    def states(self) -> dict[str, bytes]:
        """The states this run trained (by profile name), for the pipeline to store; other users' stay."""
        return dict(self._trained)

    def model(self, profile: Profile) -> UserModel | None:
        """The user's model: trained on their votes when the context has them (or from the seeds when there is
        no stored state), else the stored one. None: no votes, no seeds (the keyword order is kept)."""
        name = profile.name
        seeds = self._seeds.get(name, ((), ()))
        stored = self._stored.get(name)
        model = decode(stored) if stored is not None else None
        if name in self._votes or stored is None:
            model = self._train(self._votes.get(name, ()), seeds)
            if model is not None or stored is not None:
                empty = UserModel(np.zeros(0, np.int32), np.zeros(0, np.float32), 0, 0, seeds_fingerprint(seeds))
                self._trained[name] = encode(model or empty)
        elif model is None:  # a state of another format, and no votes to retrain it with: the seeds, this once
            log.warning("ranker state of %r is outdated and no votes were given: using its seeds only", name)
            model = self._train((), seeds)
        elif model.seeds != seeds_fingerprint(seeds):
            log.info("ranker state of %r predates its seeds: pass its votes to retrain it", name)
        return model if model is not None and len(model.columns) else None

    def _train(self, votes: Sequence[Vote], seeds: Seeds) -> UserModel | None:
        return train(votes, seeds, self._features, top_terms=self._top_terms, sums=self._sums)

    def rank(
        self, profile: Profile, matches: Sequence[Match], *, candidates: Sequence[Paper] | None, now: datetime
    ) -> Ranked:
        """The matches reordered by the user's model (unchanged without one) and up to ``profile.suggestions``
        of the candidates, best first, each with its reason."""
        offered = matches if isinstance(matches, tuple) else tuple(matches)
        pool = self._suggestable(profile, candidates) if profile.suggestions > 0 else []
        learned = self.model(profile)
        if learned is None and not pool:
            return Ranked(offered)
        model = learned if learned is not None else self._prior(profile)
        papers = [*(m.paper for m in offered), *pool] if learned is not None else pool
        rows = self._features.rows(papers)  # first: it adds new papers to the block that scores() scores
        scores = self._features.scores(model.columns, model.weights)[rows]
        pool_scores = scores[len(papers) - len(pool) :]
        picks = self._picks(profile, pool, pool_scores, cold=learned is None)
        explain = _Explainer(self._features, model)
        if learned is None:
            said = explain.terms([pool[i] for i in picks], pool_scores[picks])
            whys = [f"suggested: words of your keywords ({terms})" for terms in said]
            return Ranked(offered, self._suggestions(pool, pool_scores, picks, whys))
        order, learned_scores = self._order(offered, scores)
        shown = order[: max(profile.max_papers, 0)]  # the digest shows these: each says why in full
        whys = explain.whys(
            [*(offered[i].paper for i in shown), *(pool[i] for i in picks)],
            np.concatenate([scores[shown], pool_scores[picks]]),
        )
        out = [
            blend(offered[i], float(learned_scores[i]), weight=self._weight, why=f"learned: {why}")
            for i, why in zip(shown.tolist(), whys, strict=False)
        ]
        # The rest is carried over, in keyword order, unchanged: the next digest ranks it again.
        taken = set(shown.tolist())
        out += [m for i, m in enumerate(offered) if i not in taken]
        suggested = self._suggestions(pool, pool_scores, picks, [f"suggested: {why}" for why in whys[len(shown) :]])
        return Ranked(tuple(out), suggested)

    def _prior(self, profile: Profile) -> UserModel:
        """The cold start: the words of the profile's keywords as weights."""
        found = self._priors.get(profile.keywords)
        if found is None:
            cols, vals = profile_vector(profile)
            found = self._priors[profile.keywords] = UserModel(cols, vals, 0, 0, b"")
        return found

    def _order(self, offered: tuple[Match, ...], scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The matches' order by blended score, and their learned scores on the keyword scale: the best keyword
        score for a paper the model has no opinion on, twice that for the user's highest-scoring paper today, 0
        for the lowest (so a liked paper can pass any match the model is neutral about)."""
        if not offered:
            return np.zeros(0, np.int64), np.zeros(0)
        scale = float(np.max(np.abs(scores))) or 1.0
        top = max(m.score for m in offered)
        learned = top * (1.0 + np.clip(scores[: len(offered)] / scale, -1.0, 1.0))
        blended = (1.0 - self._weight) * np.array([m.score for m in offered]) + self._weight * learned
        return np.argsort(-blended, kind="stable"), learned

    def _picks(self, profile: Profile, pool: Sequence[Paper], scores: np.ndarray, *, cold: bool) -> list[int]:
        """The best-scoring candidates (above the floor, outside the profile's exclusions), best first."""
        floor = 0.0 if cold else self._floor
        above = np.flatnonzero(scores > floor) if floor is not None else np.arange(len(scores))
        order = above[np.argsort(-scores[above], kind="stable")].tolist()
        picks: list[int] = []
        want = profile.suggestions
        while order and len(picks) < want:
            batch, order = order[: 4 * want], order[4 * want :]
            excluded = self._excluded(profile, [pool[i] for i in batch])
            picks += [i for i in batch if pool[i].key not in excluded][: want - len(picks)]
        return picks

    @staticmethod
    def _suggestions(pool: Sequence[Paper], scores: np.ndarray, picks: list[int], whys: list[str]) -> tuple[Match, ...]:
        return tuple(suggest(pool[i], float(scores[i]), why) for i, why in zip(picks, whys, strict=True))

    def _suggestable(self, profile: Profile, candidates: Sequence[Paper] | None) -> list[Paper]:
        """The candidates the profile's limits allow (its exclusions are checked on the best ones only)."""
        papers = list(candidates or ())
        if profile.min_upvotes > 0:
            papers = [p for p in papers if (p.upvotes or 0) >= profile.min_upvotes]
        if profile.organizations and profile.organizations_mode == "only":
            orgs = {compact_org(o) for o in profile.organizations}
            papers = [p for p in papers if orgs.intersection(org_keys(p))]
        return papers

    def _excluded(self, profile: Profile, papers: Sequence[Paper]) -> set[str]:
        """Keys of the papers one of the profile's ``exclude`` queries matches."""
        if not profile.exclude:
            return set()
        matcher = self._excluders.get(profile.exclude)
        if matcher is None:
            matcher = compile_profiles([Profile(name="exclude", email="", keywords=profile.exclude)])
            self._excluders[profile.exclude] = matcher
        return {m.paper.key for m in match_all(matcher, papers).get("exclude", ())}


class _Explainer:
    """Reasons for one user's papers under their model; each call explains a batch of papers with a fixed
    number of numpy operations."""

    def __init__(self, features: FeatureCache, model: UserModel) -> None:
        self._features = features
        self._columns = model.columns
        self._weights = model.weights
        self._titles = [ex.title for ex in model.exemplars]
        # exemplar x model position: 1 where the exemplar has that term
        self._members = np.zeros((len(model.exemplars), len(model.columns)), np.float32)
        if model.exemplars:
            held = [ex.positions.astype(np.int64) for ex in model.exemplars]
            self._members[np.repeat(np.arange(len(held)), [len(h) for h in held]), np.concatenate(held)] = 1.0

    def _entries(self, papers: Sequence[Paper], signs: np.ndarray) -> tuple[np.ndarray, ...]:
        """The papers' terms the model has and that weigh in their paper's direction (``signs``): paper index,
        column, model position and contribution (positive), best first within each paper."""
        vectors = [self._features.vector(p) for p in papers]
        cols = np.concatenate([c for c, _ in vectors] or [np.zeros(0, np.int32)])
        vals = np.concatenate([v for _, v in vectors] or [np.zeros(0, np.float32)])
        paper = np.repeat(np.arange(len(vectors)), [len(c) for c, _ in vectors])
        at = self._features.positions(self._columns, cols)
        held = np.flatnonzero(at >= 0)
        paper, cols, at = paper[held], cols[held], at[held]
        weighed = self._weights[at] * vals[held] * signs[paper]
        keep = np.flatnonzero(weighed > 0)
        order = keep[np.lexsort((-weighed[keep], paper[keep]))]
        return paper[order], cols[order], at[order], weighed[order]

    def terms(
        self, papers: Sequence[Paper], scores: np.ndarray, entries: tuple[np.ndarray, ...] | None = None
    ) -> list[str]:
        """Per paper, its ``REASON_TERMS`` heaviest terms in its score's direction, quoted and joined."""
        paper, cols, _, _ = entries or self._entries(papers, np.where(scores < 0, -1.0, 1.0).astype(np.float32))
        first = np.searchsorted(paper, np.arange(len(papers)))
        top = np.arange(len(paper)) - first[paper] < REASON_TERMS
        out: list[list[str]] = [[] for _ in papers]
        names: dict[int, str] = {}
        last = -1
        for i, col in zip(paper[top].tolist(), cols[top].tolist(), strict=True):
            if i != last:
                names, last = self._features.term_names(papers[i]), i
            out[i].append(f'"{names.get(col, "?")}"')
        return [", ".join(found) for found in out]

    def closest(self, papers: Sequence[Paper], entries: tuple[np.ndarray, ...]) -> list[str | None]:
        """Per paper, the kept liked paper sharing the most positive weight with it (None: none shares any)."""
        if not self._titles or not papers:
            return [None] * len(papers)
        paper, _, at, weighed = entries
        members = self._members[:, at] * weighed  # exemplars x entries
        # One bincount for every (exemplar, paper): each bin still adds its entries in their order.
        n = len(papers)
        bins = (np.arange(len(members))[:, None] * n + paper).ravel()
        shared = np.bincount(bins, weights=members.ravel(), minlength=len(members) * n).reshape(len(members), n)
        best = np.argmax(shared, axis=0)
        return [self._titles[b] if shared[b, i] > 0 else None for i, b in enumerate(best.tolist())]

    def whys(self, papers: Sequence[Paper], scores: np.ndarray) -> list[str]:
        """Per paper, one line: the liked paper it is closest to and its heaviest terms, or the terms that pull
        it down."""
        entries = self._entries(papers, np.where(scores < 0, -1.0, 1.0).astype(np.float32))
        terms = self.terms(papers, scores, entries)
        titles = self.closest(papers, entries)  # (a paper scoring below 0 has no positive entries left)
        out = []
        for said, title, score in zip(terms, titles, scores.tolist(), strict=True):
            if score < 0:
                out.append(f"like papers you rated down ({said})" if said else "like papers you rated down")
            elif not said:
                out.append("no terms from your ratings")
            else:
                out.append(f'close to "{title}" that you liked ({said})' if title else f"terms you liked ({said})")
        return out
