"""The Ranker seam: the keyword ranker is the identity, and a ranker registered in RANKERS really orders (and
may add to) what the pipeline plans, under the delivery rule's checks."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import SECRET_ENV, ingest_file, user_block, write_config

from digest import config, matching, pipeline, store
from digest.errors import ConfigError, DigestError
from digest.matching import KeywordRanker, Ranked, RankerContext, blend, rank_matches, rescore, suggest
from digest.models import Digest, Match, Paper, Profile
from digest.pipeline import plan
from digest.sources import read_dump

MONDAY = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
ADA = user_block("ada", "['LLM', '\"language model\"', 'agent']") + "max_papers = 3\n"
HAS_SUGGESTIONS = "suggestions" in {f.name for f in dataclasses.fields(Digest)}


class Reverse:
    """A toy ranker: the keyword order reversed, each match saying so."""

    wants_candidates = False

    def rank(
        self, profile: Profile, matches: Sequence[Match], *, candidates: Sequence[Paper] | None, now: datetime
    ) -> Ranked:
        return Ranked(tuple(rescore(m, -i, "toy: reversed") for i, m in enumerate(reversed(matches))))


class Suggesting:
    """A toy ranker: keeps the keyword order and suggests the first candidate it is offered."""

    wants_candidates = True

    def __init__(self) -> None:
        self.seen: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []

    def rank(
        self, profile: Profile, matches: Sequence[Match], *, candidates: Sequence[Paper] | None, now: datetime
    ) -> Ranked:
        offered = tuple(candidates or ())
        self.seen.append((profile.name, tuple(m.paper.key for m in matches), tuple(p.key for p in offered)))
        return Ranked(tuple(matches), tuple(suggest(p, 1.0, "toy: looks like papers you liked") for p in offered[:1]))


@pytest.fixture
def cfg(tmp_path: Path, seeds: list[Path]) -> config.Config:
    """ada (three keywords, max_papers 3) with the first seed dump ingested an hour before MONDAY's run."""
    loaded = config.load_config(write_config(tmp_path, 2525, ADA))
    ingest_file(loaded, seeds[0], MONDAY - timedelta(hours=1))
    return loaded


@pytest.fixture
def conn(cfg: config.Config) -> Iterator[sqlite3.Connection]:
    """The config's store, open."""
    with contextlib.closing(store.open_store(cfg.digest.store)) as connection:
        yield connection


def _planned(conn: sqlite3.Connection, cfg: config.Config, ranker: str) -> Digest:
    """ada's digest as the run would plan it with ``ranker``."""
    [digest] = plan.prepare(conn, cfg, SECRET_ENV, now=MONDAY, run_id=None, ranker=ranker).digests
    return digest


def _keys(matches: Sequence[Match]) -> list[str]:
    return [m.paper.key for m in matches]


def test_keyword_ranker_is_the_identity(seeds: list[Path]) -> None:
    """KeywordRanker returns the very tuple it was given, and suggests nothing."""
    matches = tuple(matching.match_query("LLM OR agent", read_dump(seeds[0]).papers))
    assert len(matches) > 3
    ranked = rank_matches(KeywordRanker(), Profile("ada", ""), matches, candidates=None, now=MONDAY)
    assert ranked.matches is matches and ranked.suggestions == ()


def test_keywords_is_the_registered_default() -> None:
    """RANKERS has "keywords" (the pipeline's default); an unknown name is a config error naming the known ones."""
    assert matching.DEFAULT_RANKER == "keywords"
    assert isinstance(matching.make_ranker("keywords", RankerContext(now=MONDAY)), KeywordRanker)
    with pytest.raises(ConfigError, match="unknown ranker 'oracle'") as caught:
        matching.make_ranker("oracle", RankerContext(now=MONDAY))
    assert "keywords" in caught.value.hint and "learned" in caught.value.hint


def test_planned_digest_keeps_the_keyword_order(conn: sqlite3.Connection, cfg: config.Config) -> None:
    """With the default ranker the plan shows the keyword order's first max_papers and carries over the rest."""
    papers = [sp.paper for sp in store.list_papers(conn, since=None, until=None)]
    expected = matching.match_profile(cfg.profiles()[0], papers)
    digest = _planned(conn, cfg, "keywords")
    assert _keys(digest.matches) == _keys(expected[:3])
    assert _keys(digest.overflow) == _keys(expected[3:]) and digest.omitted == len(expected) - 3


def test_registered_toy_ranker_reorders_the_planned_digest(
    conn: sqlite3.Connection, cfg: config.Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ranker registered in RANKERS is what the plan calls: the reversed order decides what is shown."""
    monkeypatch.setitem(matching.RANKERS, "reverse", lambda context: Reverse())
    keyword = _planned(conn, cfg, "keywords")
    everything = [*keyword.matches, *keyword.overflow]
    reversed_ = _planned(conn, cfg, "reverse")
    assert _keys(reversed_.matches) == _keys(everything[::-1][:3])
    assert _keys(reversed_.overflow) == _keys(everything[::-1][3:])
    assert all(m.reason.endswith("; toy: reversed") for m in reversed_.matches)


def test_preview_uses_the_ranker_and_renders_its_reason(
    cfg: config.Config, monkeypatch: pytest.MonkeyPatch, seeds: list[Path]
) -> None:
    """preview (what run would send, and a backtest over a dump) goes through the same seam, reasons included."""
    monkeypatch.setitem(matching.RANKERS, "reverse", lambda context: Reverse())
    for dump in (None, seeds[0]):
        plain, _, _ = pipeline.preview_digest(cfg, SECRET_ENV, "ada", now=MONDAY, dump=dump)
        digest, cache, links = pipeline.preview_digest(cfg, SECRET_ENV, "ada", now=MONDAY, dump=dump, ranker="reverse")
        # What run would send reverses every offered match, then cuts; a backtest reverses what the keywords kept.
        assert _keys(digest.matches) == _keys([*plain.matches, *plain.overflow][::-1][:3])
        body = pipeline.preview_body(cfg, SECRET_ENV, "md", digest, cache, links, now=MONDAY)
        assert body.count("toy: reversed") == len(digest.matches)


def test_ranker_gets_unmatched_unsettled_candidates_and_may_suggest(
    conn: sqlite3.Connection, cfg: config.Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ranker that wants candidates gets the window's papers no keyword matched; its suggestion passes the
    checks (and reaches the digest once Digest has a suggestions field)."""
    toy = Suggesting()
    monkeypatch.setitem(matching.RANKERS, "suggest", lambda context: toy)
    digest = _planned(conn, cfg, "suggest")
    [(name, matched, candidates)] = toy.seen
    pool = {sp.paper.key for sp in store.list_papers(conn, since=None, until=None)}
    assert name == "ada" and candidates and set(candidates) == pool - set(matched)
    assert _keys(digest.matches) == list(matched[:3])
    if HAS_SUGGESTIONS:
        assert _keys(digest.suggestions) == [candidates[0]]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "broken",
    [
        lambda ms, cands: Ranked(tuple(ms[1:])),  # drops a match
        lambda ms, cands: Ranked((ms[0], *ms)),  # shows one twice
        lambda ms, cands: Ranked(tuple(ms), (suggest(ms[0].paper, 1.0, "again"),)),  # suggests a keyword match
        lambda ms, cands: Ranked(tuple(ms), (suggest(cands[0], 1.0, "x"),) * 2),  # suggests one paper twice
    ],
)
def test_rank_matches_refuses_a_ranker_breaking_the_delivery_rule(seeds: list[Path], broken) -> None:
    """Dropping, repeating or inventing papers is refused, not planned."""
    papers = read_dump(seeds[0]).papers
    matches = tuple(matching.match_query("LLM", papers))
    keys = set(_keys(matches))
    candidates = [p for p in papers if p.key not in keys]

    class Broken:
        wants_candidates = True

        def rank(self, profile, ms, *, candidates, now):  # type: ignore[no-untyped-def]
            return broken(ms, candidates)

    with pytest.raises(DigestError, match="ranker Broken"):
        rank_matches(Broken(), Profile("ada", ""), matches, candidates=candidates, now=MONDAY)


def test_blend_rescore_and_suggest_keep_one_line_reasons() -> None:
    """blend mixes the two scores by weight; the ranker's why is appended to the keyword reason on one line."""
    paper = Paper(key="arxiv:2401.00001", title="T", abstract="A")
    match = Match(paper, 4.0, (), 'title: "LLM"')
    blended = blend(match, 2.0, weight=0.25, why="ranked up:\n  like 3 papers you liked")
    assert blended.score == pytest.approx(3.5) and blended.reason == 'title: "LLM"; ranked up: like 3 papers you liked'
    assert rescore(match, 9.0) == dataclasses.replace(match, score=9.0)
    assert blend(match, 100.0, weight=0.0).score == 4.0
    assert suggest(paper, 0.7, "similar to papers you liked") == Match(paper, 0.7, (), "similar to papers you liked")
