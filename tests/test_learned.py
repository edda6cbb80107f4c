"""The learned ranker ("learned"): per-user models from thumbs and seeds that reorder keyword matches and
suggest what the keywords missed, each with a reason, with states that round-trip and update exactly."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from digest import matching
from digest.matching import LearnedRanker, Ranked, RankerContext, Vote, rank_matches, ranker_states, state_is_current
from digest.matching.features import FeatureCache, profile_vector
from digest.matching.learned import decode, encode, train
from digest.models import Match, Paper, Profile

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
ADA = Profile(name="ada", email="ada@example.org", keywords=("model",), max_papers=10, suggestions=1)


def _paper(n: int, title: str, abstract: str) -> Paper:
    return Paper(key=f"arxiv:2611.{n:05d}", title=title, abstract=abstract, arxiv_id=f"2611.{n:05d}")


VIDEO = _paper(1, "Video diffusion model for long clips", "A video diffusion model generates long video clips.")
VIDEO2 = _paper(2, "Temporal video diffusion model", "We extend video diffusion with temporal attention for clips.")
ROBOT = _paper(3, "Robot grasping model", "A model for robot grasping with tactile sensors and robot arms.")
ROBOT2 = _paper(4, "Robot navigation model", "A robot navigation model for warehouses and robot fleets.")
CODE = _paper(5, "Code completion model", "A language model for code completion in large repositories.")
# Not matched by the keyword "model": candidates for suggestions.
CLIPS = _paper(6, "Generating video clips with diffusion", "Video diffusion for generating long video clips.")
SOUP = _paper(7, "A study of soup recipes", "Recipes of soups and broths across regions and seasons.")
ARMS = _paper(8, "Tactile robot arms", "Robot arms with tactile sensors for grasping.")


def _matches(papers: Sequence[Paper]) -> tuple[Match, ...]:
    """Keyword matches as the keyword order gives them: best first, scores descending."""
    return tuple(Match(p, float(len(papers) - i), (), 'abstract: "model"') for i, p in enumerate(papers))


def _ranker(
    votes: Mapping[str, Sequence[Vote]] | None = None,
    liked: Sequence[Paper] = (),
    disliked: Sequence[Paper] = (),
    states: Mapping[str, bytes] | None = None,
) -> matching.Ranker:
    seeds = {"ada": (tuple(liked), tuple(disliked))} if liked or disliked else {}
    context = RankerContext(now=NOW, votes=votes or {}, seeds=seeds, states=states or {})
    return matching.make_ranker("learned", context)


def _rank(ranker: matching.Ranker, matches: tuple[Match, ...], candidates: Sequence[Paper] = ()) -> Ranked:
    return rank_matches(ranker, ADA, matches, candidates=list(candidates), now=NOW)


def _keys(matches: Sequence[Match]) -> list[str]:
    return [m.paper.key for m in matches]


def _votes(*pairs: tuple[Paper, int], days: int = 1) -> list[Vote]:
    return [Vote(p, v, NOW - timedelta(days=days, minutes=i)) for i, (p, v) in enumerate(pairs)]


def test_learned_is_registered_and_hands_back_states() -> None:
    """RANKERS["learned"] builds a LearnedRanker that wants candidates; the keyword ranker has no states."""
    assert isinstance(_ranker(), LearnedRanker) and _ranker().wants_candidates
    assert ranker_states(matching.KeywordRanker()) == {}


def test_no_ratings_no_seeds_keeps_the_keyword_order() -> None:
    """Without votes or seeds the very tuple of matches comes back: same order, scores and reasons."""
    matches = _matches([ROBOT, CODE, VIDEO])
    ranked = _rank(_ranker(), matches, [SOUP])
    assert ranked.matches is matches
    assert ranker_states(_ranker()) == {}


def test_cold_start_suggests_from_the_profile_words_only_when_they_share_some() -> None:
    """With no votes or seeds a candidate sharing the keywords' words is suggested, saying so; none else."""
    profile = Profile(name="ada", email="", keywords=('"video diffusion"',), suggestions=1)
    ranked = rank_matches(_ranker(), profile, (), candidates=[SOUP, CLIPS], now=NOW)
    [suggestion] = ranked.suggestions
    assert suggestion.paper == CLIPS and suggestion.reason.startswith("suggested: words of your keywords (")
    assert '"video diffusion"' in suggestion.reason
    assert rank_matches(_ranker(), profile, (), candidates=[SOUP], now=NOW).suggestions == ()


def test_a_liked_paper_pulls_similar_papers_up() -> None:
    """A like seed about video diffusion moves the video papers above the higher keyword scores, and each
    says which liked paper it is close to and through which terms."""
    matches = _matches([ROBOT, CODE, ROBOT2, VIDEO2])
    ranked = _rank(_ranker(liked=[VIDEO]), matches)
    assert _keys(ranked.matches)[0] == VIDEO2.key
    top = ranked.matches[0]
    assert f'close to "{VIDEO.title}" that you liked' in top.reason and '"video diffusion"' in top.reason
    assert top.reason.startswith('abstract: "model"; learned: ') and "\n" not in top.reason


def test_a_disliked_term_pushes_papers_down() -> None:
    """Thumbs down on robot papers sends the best keyword match, a robot paper, below the others, saying why."""
    matches = _matches([ROBOT, CODE, VIDEO])
    votes = {"ada": _votes((ROBOT2, -1), (ARMS, -1))}
    ranked = _rank(_ranker(votes), matches)
    assert _keys(ranked.matches)[-1] == ROBOT.key
    assert "like papers you rated down (" in ranked.matches[-1].reason and '"robot' in ranked.matches[-1].reason


def test_suggestions_come_from_candidates_only_with_reasons() -> None:
    """Suggestions: at most profile.suggestions, only candidates, best first, each with a one-line reason."""
    matches = _matches([ROBOT, CODE])
    ranker = _ranker({"ada": _votes((VIDEO, 1), (ROBOT2, -1))})
    ranked = _rank(ranker, matches, [SOUP, CLIPS, ARMS])
    [suggestion] = ranked.suggestions
    assert suggestion.paper == CLIPS and suggestion.hits == ()
    assert suggestion.reason.startswith(f'suggested: close to "{VIDEO.title}" that you liked (')
    two = Profile(name="ada", email="", keywords=("model",), suggestions=2)
    assert len(rank_matches(ranker, two, matches, candidates=[SOUP, CLIPS, ARMS], now=NOW).suggestions) == 1
    assert rank_matches(ranker, two, matches, candidates=None, now=NOW).suggestions == ()


def test_suggestions_honour_the_profile_exclusions_and_limits() -> None:
    """A candidate an ``exclude`` query matches, or under ``min_upvotes``, is never suggested."""
    ranker = _ranker({"ada": _votes((VIDEO, 1), (ROBOT, -1))})
    excluding = Profile(name="ada", email="", keywords=("model",), exclude=("clips",), suggestions=1)
    assert rank_matches(ranker, excluding, (), candidates=[CLIPS], now=NOW).suggestions == ()
    picky = Profile(name="ada", email="", keywords=("model",), min_upvotes=5, suggestions=1)
    assert rank_matches(ranker, picky, (), candidates=[CLIPS], now=NOW).suggestions == ()
    none = Profile(name="ada", email="", keywords=("model",), suggestions=0)
    assert rank_matches(ranker, none, (), candidates=[CLIPS], now=NOW).suggestions == ()


def test_the_digest_shows_the_learned_top_and_carries_the_rest_in_keyword_order() -> None:
    """Past max_papers the matches stay as the keywords ordered them, unchanged, for the next digest."""
    profile = Profile(name="ada", email="", keywords=("model",), max_papers=1)
    matches = _matches([ROBOT, CODE, ROBOT2, VIDEO2])
    ranked = rank_matches(_ranker(liked=[VIDEO]), profile, matches, candidates=[], now=NOW)
    assert ranked.matches[0].paper == VIDEO2 and "learned: " in ranked.matches[0].reason
    assert ranked.matches[1:] == tuple(m for m in matches if m.paper != VIDEO2)


def test_state_round_trips_through_bytes() -> None:
    """encode/decode keep the model; a ranker loading the state ranks exactly as the one that trained it."""
    votes = {"ada": _votes((VIDEO, 1), (ROBOT, -1), (CODE, 1))}
    first = _ranker(votes, liked=[VIDEO2])
    trained = _rank(first, _matches([ROBOT2, CODE, VIDEO2]), [SOUP, CLIPS, ARMS])
    state = ranker_states(first)["ada"]
    model = decode(state)
    assert model is not None and encode(model) == state and 0 < len(model.columns) <= 512
    loaded = _ranker(liked=[VIDEO2], states={"ada": state})
    assert _rank(loaded, _matches([ROBOT2, CODE, VIDEO2]), [SOUP, CLIPS, ARMS]) == trained
    assert ranker_states(loaded) == {}  # nothing changed: nothing to store back
    assert decode(b"not a state") is None and decode(state[:3]) is None


def test_incremental_update_equals_training_on_all_votes_in_effect() -> None:
    """A user whose votes changed is retrained from the votes in effect (a later vote replacing an earlier one
    on the same paper), giving the bytes a first training on them gives, whatever their order."""
    before = _votes((VIDEO, 1), (ROBOT, -1), days=3)
    first = _ranker({"ada": before}, liked=[VIDEO2])
    _rank(first, _matches([CODE]))
    old = ranker_states(first)["ada"]
    changed = [*before, *_votes((ROBOT, 1), (SOUP, -1), days=1)]  # ROBOT now up
    update = _ranker({"ada": changed}, liked=[VIDEO2], states={"ada": old})
    _rank(update, _matches([CODE]))
    in_effect = [v for v in changed if not (v.paper == ROBOT and v.value == -1)]
    fresh = _ranker({"ada": list(reversed(in_effect))}, liked=[VIDEO2])
    _rank(fresh, _matches([CODE]))
    assert ranker_states(update)["ada"] == ranker_states(fresh)["ada"] != old


def test_state_is_current_until_the_seeds_change() -> None:
    """A state names the seeds it was trained with; other seeds make it stale (the pipeline then passes votes)."""
    ranker = _ranker({"ada": _votes((ROBOT, -1))}, liked=[VIDEO])
    _rank(ranker, _matches([CODE]))
    state = ranker_states(ranker)["ada"]
    assert state_is_current(state, ([VIDEO], ()))
    assert not state_is_current(state, ([VIDEO, CLIPS], ()))
    assert not state_is_current(b"junk", ([VIDEO], ()))


def test_training_is_deterministic_and_keeps_at_most_top_terms() -> None:
    """Same votes, same model; the model keeps its heaviest terms only."""
    votes = _votes((VIDEO, 1), (ROBOT, -1), (CODE, 1), (SOUP, -1))
    one = train(votes, ((), ()), FeatureCache(), top_terms=8)
    two = train(list(reversed(votes)), ((), ()), FeatureCache(), top_terms=8)
    assert one is not None and two is not None and encode(one) == encode(two)
    assert len(one.columns) == 8 and list(one.columns) == sorted(one.columns)
    assert train((), ((), ()), FeatureCache()) is None


def test_profile_words_leave_out_operators_scopes_and_exclusions() -> None:
    """The cold-start prior reads the keywords' words only."""
    profile = Profile(name="x", email="", keywords=('title:"video diffusion" OR diffus*', '-robot AND "KV cache"'))
    assert len(profile_vector(profile)[0]) == len(
        profile_vector(Profile("y", "", ("video diffusion diffus KV cache",)))[0]
    )


@pytest.mark.parametrize("value", [1, -1])
def test_a_single_class_still_ranks(value: int) -> None:
    """Only thumbs up (or only down) is still a model: it ranks without a second class."""
    ranker = _ranker({"ada": _votes((VIDEO, value))})
    ranked = _rank(ranker, _matches([ROBOT, VIDEO2]))
    assert _keys(ranked.matches)[0 if value == 1 else 1] == VIDEO2.key


def test_each_term_weighs_on_its_own_column() -> None:
    """A paper's vector puts each term's dampened count on that term's column, checked against a plain
    computation: a title word (counted twice) outweighs an abstract word seen once, wherever their columns sort.
    (The vector once put the counts in the terms' order onto the columns' sorted order.)"""
    from math import log, sqrt

    from digest.matching.features import column, paper_terms, term_vector

    papers = [VIDEO, ROBOT, CODE, SOUP, _paper(9, "Zebra", "aardvark aardvark aardvark yak")]
    for paper in papers:
        counts = paper_terms(paper)
        expected: dict[int, float] = {}
        for term, count in counts.items():
            expected[column(term)] = expected.get(column(term), 0.0) + count
        norm = sqrt(sum((1 + log(c)) ** 2 for c in expected.values()))
        cols, vals = term_vector(counts)
        assert dict(zip(cols.tolist(), vals.tolist(), strict=True)) == pytest.approx(
            {c: (1 + log(n)) / norm for c, n in expected.items()}, rel=1e-5
        )


def test_heaviest_terms_are_the_set_a_full_argpartition_gives() -> None:
    """The sampled cut keeps exactly the terms a full argpartition keeps, ties at the cut included."""
    import numpy as np

    from digest.matching.learned import _heaviest

    rng = np.random.default_rng(0)
    for n in (600, 5000, 20000):
        for sums in (rng.standard_normal(n), np.round(rng.standard_normal(n), 1), np.full(n, 0.5)):
            expected = np.argpartition(-np.abs(sums), 511)[:512]
            assert sorted(_heaviest(sums, 512).tolist()) == sorted(expected.tolist())
