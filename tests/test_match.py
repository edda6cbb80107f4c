"""Keyword profiles: the query language, matching on real seed papers, filters, ranking, offsets, errors."""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import re
import time
import unicodedata
from collections import Counter
from datetime import date
from functools import cache
from pathlib import Path

import pytest
import regex

import digest.matching.query as query_module
import digest.matching.top
from digest.errors import ConfigError, QueryError
from digest.matching.match import (
    ORG_BOOST,
    QUERY_HELP,
    compile_profiles,
    match_all,
    match_profile,
    match_query,
    match_top,
    match_top_stream,
    parse_query,
)
from digest.matching.query import ANY, And, Not, Query, Regex, Term, term_pattern
from digest.models import Match, Paper, Profile
from digest.sources import read_dump

FIXTURES = Path(__file__).parent / "fixtures"


@cache
def _seed_papers() -> tuple[Paper, ...]:
    """Every distinct paper of the seed dumps, read once."""
    papers: dict[str, Paper] = {}
    for path in sorted(FIXTURES.glob("0*.txt")):
        for paper in read_dump(path).papers:
            papers.setdefault(paper.key, paper)
    return tuple(papers.values())


@pytest.fixture
def seed_papers() -> tuple[Paper, ...]:
    """Every distinct paper of the five real seed dumps."""
    return _seed_papers()


def seed(title_start: str) -> Paper:
    """The seed paper whose title starts with ``title_start``."""
    return next(p for p in _seed_papers() if p.title.startswith(title_start))


def keys(matches: list[Match]) -> set[str]:
    """The keys of the matched papers."""
    return {m.paper.key for m in matches}


def profile(name: str = "alice", **fields: object) -> Profile:
    """A profile with an email derived from its name."""
    return Profile(name=name, email=f"{name}@example.org", **fields)  # type: ignore[arg-type]


def org_field(paper: Paper) -> str:
    """The org field as QUERY_HELP and org_text define it, rewritten here: the display name, then "(handle)"
    unless the handle's words already run in the display name."""
    display, handle = paper.organization or "", paper.org_handle or ""
    if not display or not handle:
        return display or handle
    d, h = (re.findall(r"[^\W_]+", unicodedata.normalize("NFKC", s).casefold()) for s in (display, handle))
    inside = any(d[i : i + len(h)] == h for i in range(len(d) - len(h) + 1))
    return display if not h or inside else f"{display} ({handle})"


def org_names(paper: Paper) -> set[str]:
    """The paper's display name and handle without case, spaces or punctuation (rewritten, not imported)."""
    names = (paper.organization or "", paper.org_handle or "")
    return {re.sub(r"[\W_]", "", unicodedata.normalize("NFKC", n).casefold()) for n in names} - {""}


def field_text(match: Match, field: str) -> str:
    """The original text of a hit's field."""
    paper = match.paper
    return {"title": paper.title, "abstract": paper.abstract, "org": org_field(paper)}[field]


# --- words, plurals, phrases, prefixes -------------------------------------------------------------


def test_gan_does_not_match_organ(seed_papers: tuple[Paper, ...]) -> None:
    """GAN is a whole word: seed abstracts with "organization"/"organize" do not match it."""
    assert any(re.search(r"organ", p.abstract, re.I) for p in seed_papers)
    assert match_query("GAN", seed_papers) == []


def test_gan_matches_gans_as_a_word() -> None:
    """GAN matches "GAN" and the plural "GANs" in a paper."""
    base = seed("KGym")
    paper = dataclasses.replace(base, abstract=base.abstract + " We compare against GANs and a GAN baseline.")
    (match,) = match_query("GAN", [paper])
    assert [paper.abstract[h.start : h.end] for h in match.hits] == ["GANs", "GAN"]


def test_llm_matches_llm_and_llms_but_not_llmops(seed_papers: tuple[Paper, ...]) -> None:
    """LLM matches LLM and LLMs (plural tolerance) but not LLMOps."""
    matches = match_query("LLM", seed_papers)
    found = {m.paper.abstract[h.start : h.end] for m in matches for h in m.hits if h.field == "abstract"}
    assert {"LLM", "LLMs"} <= found
    assert {word.casefold() for word in found} == {"llm", "llms"}
    ops = Paper(key="x:ops", title="Hogwild! Inference", abstract="A survey of LLMOps pipelines for serving.")
    assert match_query("LLM", [ops]) == []


def test_plural_tolerance_is_one_way() -> None:
    """LLMs does not match a paper that only says LLM."""
    paper = seed("All is Not Lost")
    singular = dataclasses.replace(paper, title="LLM Recovery", abstract="An LLM recovers.")
    assert match_query("LLMs", [singular]) == []
    assert match_query("LLM", [singular])


def test_es_plural_is_tolerated() -> None:
    """A trailing "es" on the paper's word is tolerated: process matches processes."""
    paper = Paper(key="x:p", title="Parallel processes", abstract="Scheduling many processes at once.")
    (match,) = match_query("process", [paper])
    assert {paper.title[h.start : h.end] for h in match.hits if h.field == "title"} == {"processes"}


def test_phrase_matches_across_hyphen_and_space(seed_papers: tuple[Paper, ...]) -> None:
    """The phrase "mixture-of-experts" matches both "Mixture-of-Experts" and "Mixture of Experts" in real papers."""
    texts = {
        field_text(m, h.field)[h.start : h.end]
        for m in match_query('"mixture-of-experts"', seed_papers)
        for h in m.hits
    }
    assert {"Mixture-of-Experts", "Mixture of Experts"} <= texts


def test_spaced_phrase_matches_hyphenated_text() -> None:
    """The phrase "self supervised" matches the seed's "self-supervised", and underscores/slashes/en dashes too."""
    base = seed(next(p.title for p in _seed_papers() if "self-supervised" in p.abstract))
    assert match_query('"self supervised"', [base])
    for sep in ("_", "/", "–", "  "):
        variant = dataclasses.replace(base, abstract=base.abstract.replace("self-supervised", f"self{sep}supervised"))
        assert match_query('"self-supervised"', [variant]), sep


def test_unquoted_hyphenated_term_is_a_phrase(seed_papers: tuple[Paper, ...]) -> None:
    """self-supervised unquoted matches exactly what the quoted phrase matches."""
    assert keys(match_query("fine-tuning", seed_papers)) == keys(match_query('"fine tuning"', seed_papers))
    assert match_query("fine-tuning", seed_papers)


def test_phrase_does_not_cross_other_punctuation() -> None:
    """A phrase does not match across a full stop or comma between its words."""
    paper = seed("KGym")  # "... Linux kernel. Unlike application-level software ..."
    assert "kernel. Unlike" in paper.abstract
    assert match_query('"kernel unlike"', [paper]) == []
    assert match_query('"linux kernel"', [paper])


def test_phrase_words_must_be_adjacent(seed_papers: tuple[Paper, ...]) -> None:
    """A phrase is the words in order: "learning reinforcement" does not match "reinforcement learning"."""
    assert match_query('"reinforcement learning"', seed_papers)
    assert match_query('"learning reinforcement"', seed_papers) == []


def test_prefix_wildcard(seed_papers: tuple[Paper, ...]) -> None:
    """parallel* matches Parallelism/parallelization; every hit starts with the prefix."""
    words = {
        field_text(m, h.field)[h.start : h.end].casefold()
        for m in match_query("parallel*", seed_papers)
        for h in m.hits
    }
    assert {"parallel", "parallelism"} <= words
    assert all(w.startswith("parallel") for w in words)


def test_plain_word_is_not_a_prefix(seed_papers: tuple[Paper, ...]) -> None:
    """parallel (no *) does not match "parallelism"."""
    words = {
        field_text(m, h.field)[h.start : h.end].casefold() for m in match_query("parallel", seed_papers) for h in m.hits
    }
    assert words == {"parallel"}


def test_cplusplus_is_a_word_of_its_own(seed_papers: tuple[Paper, ...]) -> None:
    """C++ matches "C++" and the letter C alone does not match "C++"."""
    cpp = match_query("C++", seed_papers)
    assert "Closing the Performance Gap with Modern C++" in {m.paper.title for m in cpp}
    modern = seed("Closing the Performance Gap")
    assert all(modern.title[h.start : h.end] != "C" for m in match_query("C", [modern]) for h in m.hits)


def test_nfkc_and_casefold_apply_to_text_and_query() -> None:
    """Full-width letters and the ﬁ ligature match their plain forms, in both directions."""
    paper = Paper(key="x:n", title="ＬＬＭ serving with ﬁne-tuning", abstract="Straße and STRASSE.")
    assert match_query("llm", [paper])
    assert match_query('"fine tuning"', [paper])
    assert match_query("ＦＩＮＥ-tuning", [paper])
    (match,) = match_query("strasse", [paper])
    assert [paper.abstract[h.start : h.end] for h in match.hits] == ["Straße", "STRASSE"]


# --- boolean operators and fields ------------------------------------------------------------------


def test_implicit_and_is_intersection(seed_papers: tuple[Paper, ...]) -> None:
    """`a b` and `a AND b` match the papers matching both."""
    both = keys(match_query("LLM inference", seed_papers))
    assert both == keys(match_query("LLM", seed_papers)) & keys(match_query("inference", seed_papers))
    assert both == keys(match_query("LLM AND inference", seed_papers))
    assert 0 < len(both) < len(keys(match_query("LLM", seed_papers)))


def test_or_is_union(seed_papers: tuple[Paper, ...]) -> None:
    """`a OR b` matches the papers matching either."""
    either = keys(match_query("kernel OR compiler", seed_papers))
    assert either == keys(match_query("kernel", seed_papers)) | keys(match_query("compiler", seed_papers))


def test_not_and_minus_exclude(seed_papers: tuple[Paper, ...]) -> None:
    """`a -b` and `a NOT b` keep papers with a but without b."""
    expected = keys(match_query("LLM", seed_papers)) - keys(match_query("inference", seed_papers))
    assert keys(match_query("LLM -inference", seed_papers)) == expected
    assert keys(match_query("LLM NOT inference", seed_papers)) == expected
    assert keys(match_query("LLM AND NOT inference", seed_papers)) == expected
    assert expected


def test_and_binds_tighter_than_or_and_parentheses_group(seed_papers: tuple[Paper, ...]) -> None:
    """`a OR b c` is a OR (b c); `(a OR b) c` groups the OR."""

    def q(text: str) -> set[str]:
        return keys(match_query(text, seed_papers))

    assert q("kernel OR speculative decoding") == q("kernel") | (q("speculative") & q("decoding"))
    assert q("(kernel OR speculative) decoding") == (q("kernel") | q("speculative")) & q("decoding")
    assert q("kernel OR speculative decoding") != q("(kernel OR speculative) decoding")


def test_lowercase_or_is_a_word() -> None:
    """Operators are capitals only: `kernel or linux` requires the word "or"."""
    paper = seed("KGym")
    query = parse_query("kernel or linux")
    assert isinstance(query.root, And) and len(query.root.children) == 3
    assert match_query("kernel or linux", [paper]) == []


def test_title_scope_and_alias(seed_papers: tuple[Paper, ...]) -> None:
    """title:/ti: only look in titles; every hit is in the title."""
    in_title = match_query("title:LLM", seed_papers)
    assert keys(in_title) == keys(match_query("ti:LLM", seed_papers))
    assert keys(in_title) == {p.key for p in seed_papers if re.search(r"\bLLMs?\b", p.title, re.I)}
    assert {h.field for m in in_title for h in m.hits} == {"title"}


def test_abstract_scope_and_alias(seed_papers: tuple[Paper, ...]) -> None:
    """abstract:/abs: only look in abstracts."""
    only_abs = match_query("abs:kernel", seed_papers)
    assert keys(only_abs) == keys(match_query("abstract:kernel", seed_papers))
    assert {h.field for m in only_abs for h in m.hits} == {"abstract"}
    assert keys(match_query("kernel", seed_papers)) >= keys(only_abs)


def test_field_scope_applies_to_a_group(seed_papers: tuple[Paper, ...]) -> None:
    """title:(a OR b) is title:a OR title:b."""
    assert keys(match_query("title:(kernel OR compiler)", seed_papers)) == keys(
        match_query("title:kernel OR title:compiler", seed_papers)
    )


def test_org_scope_matches_organization_words() -> None:
    """org:apple matches the organization field only, with offsets into it."""
    paper = seed("Mirror Speculative Decoding")
    assert paper.organization == "Apple"
    (match,) = match_query("org:apple", [paper])
    assert [(h.field, paper.organization[h.start : h.end]) for h in match.hits] == [("org", "Apple")]
    assert match_query("apple", [paper]) == []  # default fields are title + abstract


# --- profile filters ---------------------------------------------------------------------------------


def test_any_keyword_matches(seed_papers: tuple[Paper, ...]) -> None:
    """A profile matches papers matching any of its keywords."""
    result = match_profile(profile(keywords=("kernel", "compiler")), seed_papers)
    assert keys(result) == keys(match_query("kernel OR compiler", seed_papers))


def test_exclusions_drop_papers(seed_papers: tuple[Paper, ...]) -> None:
    """A paper matching an exclude query is dropped whatever else matched."""
    plain = keys(match_profile(profile(keywords=("LLM",)), seed_papers))
    excluded = keys(
        match_profile(profile(keywords=("LLM",), exclude=("inference", '"speculative decoding"')), seed_papers)
    )
    dropped = keys(match_query("inference", seed_papers)) | keys(match_query('"speculative decoding"', seed_papers))
    assert excluded == plain - dropped
    assert excluded and excluded != plain


def test_min_upvotes(seed_papers: tuple[Paper, ...]) -> None:
    """min_upvotes drops papers with fewer upvotes (None counts as 0)."""
    result = match_profile(profile(keywords=("parallel",), min_upvotes=3), seed_papers)
    assert result and all((m.paper.upvotes or 0) >= 3 for m in result)
    everything = match_profile(profile(keywords=("parallel",)), seed_papers)
    assert keys(result) == {m.paper.key for m in everything if (m.paper.upvotes or 0) >= 3}


def _with_orgs() -> list[Paper]:
    """Three real LLM-serving papers given organizations by hand."""
    base = [seed("KGym"), seed("FastSwitch"), seed("Llumnix")]
    orgs = ["Hugging Face", "Alibaba", None]
    return [dataclasses.replace(p, organization=o) for p, o in zip(base, orgs, strict=True)]


def test_organizations_only_keeps_listed_orgs() -> None:
    """Mode "only" keeps papers of the listed organizations, compared without case or spaces."""
    papers = _with_orgs()
    result = match_profile(
        profile(keywords=('"large language model"',), organizations=("huggingface",), organizations_mode="only"), papers
    )
    assert [m.paper.organization for m in result] == ["Hugging Face"]


def test_organizations_boost_adds_to_score() -> None:
    """Mode "boost" keeps every match and adds ORG_BOOST for a listed organization, saying so."""
    papers = _with_orgs()
    plain = {m.paper.key: m for m in match_profile(profile(keywords=('"large language model"',)), papers)}
    boosted = {
        m.paper.key: m
        for m in match_profile(
            profile(keywords=('"large language model"',), organizations=("ALIBABA",), organizations_mode="boost"),
            papers,
        )
    }
    assert boosted.keys() == plain.keys()
    ali = papers[1].key
    assert boosted[ali].score == pytest.approx(plain[ali].score + ORG_BOOST)
    assert 'org boost: "Alibaba"' in boosted[ali].reason
    assert boosted[papers[0].key].score == plain[papers[0].key].score


def test_org_only_profile_without_keywords_gets_all_org_papers() -> None:
    """A profile with no keywords in mode "only" receives every paper from its organizations."""
    result = match_profile(profile(organizations=("Hugging Face",), organizations_mode="only"), _with_orgs())
    assert [m.paper.organization for m in result] == ["Hugging Face"]
    assert result[0].hits == () and result[0].reason == 'org: "Hugging Face"'


# --- organizations by handle or display name (real API entries: tests/fixtures/orgs/) ----


@cache
def _api_papers() -> tuple[Paper, ...]:
    """Three real 2026-04-16 API entries: TREX (internlm / "Intern Large Models"), a Princeton paper
    (princetonu / "Princeton University") and one without an organization."""
    return read_dump(FIXTURES / "orgs" / "api_2026-04-16.json").papers


def _trex() -> Paper:
    paper = next(p for p in _api_papers() if p.title.startswith("TREX"))
    assert (paper.organization, paper.org_handle) == ("Intern Large Models", "internlm")
    return paper


def _both_ways(profiles: list[Profile], papers: tuple[Paper, ...]) -> dict[str, list[Match]]:
    """match_all's lists, after checking that match_top gives the same (cut to max_papers, with the count)."""
    matcher = compile_profiles(profiles)
    full, top = match_all(matcher, papers), match_top(matcher, papers)
    for prof in profiles:
        assert top[prof.name] == (full[prof.name][: prof.max_papers], len(full[prof.name])), prof.name
    return full


@pytest.mark.parametrize("name", ["internlm", "InternLM", "INTERN-LM", "Intern Large Models", "intern large models"])
def test_organizations_only_matches_handle_or_display_name(name: str) -> None:
    """Mode "only" picks a paper named by its handle or its display name, without case, spaces or punctuation,
    with and without keywords, the same in match_all and match_top."""
    papers = _api_papers()
    found = _both_ways(
        [
            profile("bare", organizations=(name,), organizations_mode="only"),
            profile("train", keywords=("train*",), organizations=(name,), organizations_mode="only"),
        ],
        papers,
    )
    assert [m.paper for m in found["bare"]] == [_trex()]
    assert found["bare"][0].reason == 'org: "Intern Large Models"'
    assert [m.paper for m in found["train"]] == [_trex()]
    assert len(match_query("train*", papers)) == 3  # the org rule did the picking


def test_organizations_boost_by_handle() -> None:
    """Mode "boost" adds ORG_BOOST to the paper of the named handle only, and says so with the display name."""
    papers = _api_papers()
    found = _both_ways(
        [
            profile("plain", keywords=("benchmark*",)),
            profile("boost", keywords=("benchmark*",), organizations=("InternLM",)),
            profile("name", keywords=("benchmark*",), organizations=("Intern Large Models",)),
        ],
        papers,
    )
    plain = {m.paper.key: m for m in found["plain"]}
    boosted = {m.paper.key: m for m in found["boost"]}
    assert boosted.keys() == plain.keys() and len(plain) == 3
    trex = _trex().key
    assert found["plain"][0].paper.key != trex and found["boost"][0].paper.key == trex  # the boost moved it up
    for key, match in boosted.items():
        assert match.score == pytest.approx(plain[key].score + (ORG_BOOST if key == trex else 0.0))
    assert boosted[trex].reason.endswith('org boost: "Intern Large Models" +2')
    assert found["name"] == found["boost"]


def test_org_query_finds_the_handle() -> None:
    """org:internlm finds the handle, with offsets into "Intern Large Models (internlm)"; org:intern finds the
    display name once; a handle that repeats the display name's words is not searched twice."""
    papers = _api_papers()
    (match,) = match_query("org:internlm", papers)
    assert match.paper == _trex() and match.reason == 'org: "internlm"'
    assert [org_field(match.paper)[h.start : h.end] for h in match.hits] == ["internlm"]
    assert org_field(match.paper) == "Intern Large Models (internlm)"
    (intern,) = match_query("org:intern", papers)
    assert [(h.start, h.end) for h in intern.hits] == [(0, 6)]
    princeton = next(p for p in papers if p.org_handle == "princetonu")
    assert [m.paper for m in match_query("org:princetonu", papers)] == [princeton]
    assert [m.paper for m in match_query('org:"princeton university"', papers)] == [princeton]
    tencent = dataclasses.replace(princeton, organization="Tencent Hunyuan", org_handle="tencent")
    (once,) = match_query("org:tencent", [tencent])
    assert len(once.hits) == 1 and once.score == 1.0


def test_org_phrase_does_not_run_from_name_into_handle() -> None:
    """The handle is a field part of its own: a phrase spanning display name and handle does not match."""
    assert match_query('org:"models internlm"', _api_papers()) == []


def test_handle_without_display_name_still_matches() -> None:
    """A paper with only a handle (as an old store row might hold) is matched by it and named by it."""
    paper = dataclasses.replace(_trex(), organization=None)
    (match,) = match_profile(profile(organizations=("internlm",), organizations_mode="only"), [paper])
    assert match.reason == 'org: "internlm"'
    assert [h.field for h in match_query("org:internlm", [paper])[0].hits] == ["org"]


def test_min_score_filters_weak_matches(seed_papers: tuple[Paper, ...]) -> None:
    """min_score drops matches scoring below it."""
    result = match_profile(profile(keywords=("LLM",), min_score=3.0), seed_papers)
    assert result and all(m.score >= 3.0 for m in result)
    assert keys(result) == {m.paper.key for m in match_query("LLM", seed_papers) if m.score >= 3.0}


def test_profile_without_keywords_matches_nothing(seed_papers: tuple[Paper, ...]) -> None:
    """A profile with no keywords (and no org-only rule) gets no papers."""
    assert match_profile(profile(), seed_papers) == []


# --- ranking and explanations ------------------------------------------------------------------------


def test_title_hits_outrank_abstract_hits() -> None:
    """A term in the title scores 3, in the abstract 1, with a log bonus for repeats."""
    paper = seed("KGym")  # title and abstract both say "Large Language Models"; "kBench" only in the abstract
    (match,) = match_query("kBench", [paper])
    count = len(re.findall(r"\bkBench\b", paper.abstract))
    assert count > 1
    assert match.score == pytest.approx(1.0 + 0.5 * math.log(count))
    (title_match,) = match_query('title:"large language models"', [paper])
    assert title_match.score == 3.0


def test_ranking_by_score_then_upvotes_then_recency_then_input_order() -> None:
    """Order: score desc, upvotes desc (None = 0), published desc (None last), then input order."""
    base = seed("KGym")

    def p(key: str, title: str, upvotes: int | None, published: date | None) -> Paper:
        return dataclasses.replace(base, key=key, title=title, upvotes=upvotes, published=published)

    papers = [
        p("a", "Benchmark", None, None),
        p("b", "Benchmark", 5, date(2024, 1, 1)),
        p("c", "Benchmark", 5, date(2025, 1, 1)),
        p("d", "Kernel benchmark", 0, None),  # higher score: two title terms
        p("e", "Benchmark", None, None),
        p("f", "Benchmark", 0, date(2020, 1, 1)),
    ]
    result = match_profile(profile(keywords=("benchmark", "kernel")), papers)
    assert [m.paper.key for m in result] == ["d", "c", "b", "f", "a", "e"]


def test_reason_names_fields_terms_and_counts() -> None:
    """The reason is one line: fields, quoted terms as written (keywords in A-Z order), ×count for repeats."""
    paper = seed("KGym")
    (match,) = match_profile(profile(keywords=("title:kernel", "LLM", "kBench")), [paper])
    n_llm = len(re.findall(r"\bLLMs?\b", paper.abstract))
    n_kbench = len(re.findall(r"\bkBench\b", paper.abstract))
    assert match.reason == f'title: "kernel"; abstract: "kBench" ×{n_kbench}, "LLM" ×{n_llm}'
    assert "\n" not in match.reason


def test_match_hits_are_sorted_by_field_then_offset() -> None:
    """Hits come title first, then abstract, each by start offset."""
    (match,) = match_profile(profile(keywords=("LLM", "kernel", "Linux")), [seed("KGym")])
    order = {"title": 0, "abstract": 1, "org": 2}
    assert list(match.hits) == sorted(match.hits, key=lambda h: (order[h.field], h.start, h.end))


def test_offsets_point_at_the_matched_words(seed_papers: tuple[Paper, ...]) -> None:
    """Every hit's offsets slice the original title/abstract to the matched word(s)."""
    queries = ["LLM", '"speculative decoding"', "fine-tuning", "parallel*", "C++", "title:agent", "kernel"]
    for query in queries:
        body = query.split(":")[-1].strip('"')
        pattern = term_pattern(body.rstrip("*"))
        for match in match_query(query, seed_papers):
            for hit in match.hits:
                assert hit.term == body
                text = field_text(match, hit.field)[hit.start : hit.end]
                got = term_pattern(text)
                if body.endswith("*"):
                    assert got.startswith(pattern), (query, text)
                else:
                    assert got in (pattern, pattern + "s", pattern + "es"), (query, text)


def test_offsets_survive_nfkc_length_changes() -> None:
    """Offsets map back through NFKC/casefold length changes (ligatures, ß, combining accents)."""
    title = "Eﬃcient ﬁne-tuning for Straße de\u0301cor: LLMs"
    paper = Paper(key="x:o", title=title, abstract="")
    for query, expected in [
        ("efficient", "Eﬃcient"),
        ('"fine tuning"', "ﬁne-tuning"),
        ("strasse", "Straße"),
        ("LLM", "LLMs"),
        ("décor", "de\u0301cor"),
    ]:
        (match,) = match_query(query, [paper])
        assert [title[h.start : h.end] for h in match.hits] == [expected], query


def test_hit_term_is_the_term_as_written() -> None:
    """Hit.term keeps the user's spelling, e.g. "Self-Supervised" and "diffus*"."""
    base = seed("KGym")
    paper = dataclasses.replace(base, abstract="Self-supervised diffusion models.")
    (match,) = match_profile(profile(keywords=('"Self-Supervised"', "diffus*")), [paper])
    assert {h.term for h in match.hits} == {"Self-Supervised", "diffus*"}


def test_same_term_in_two_keywords_counts_once() -> None:
    """Two keywords sharing a term count its hits once."""
    paper = seed("KGym")
    (once,) = match_profile(profile(keywords=("kernel",)), [paper])
    (twice,) = match_profile(profile(keywords=("kernel", "kernel Linux")), [paper])
    linux_only = match_query("Linux", [paper])[0]
    assert twice.score == pytest.approx(once.score + linux_only.score)
    assert len(twice.hits) == len(once.hits) + len(linux_only.hits)


# --- syntax errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "position", "words"),
    [
        ('diffusion "self supervised', 10, "unclosed quote"),
        ("diffusion OR", 12, "expected a term"),
        ("OR diffusion", 0, "OR needs a term"),
        ("(diffusion video", 0, "never closed"),
        ("diffusion video)", 15, "unmatched ')'"),
        ("diffusion ()", 11, "empty parentheses"),
        ("title: diffusion", 6, "needs a term"),
        ("by:smith", 0, "unknown field"),
        ("diff*usion", 4, "'*' is only allowed at the end"),
        ("diffusion - video", 10, "'-' must be followed"),
        ("title:(abs:video)", 7, "cannot be nested"),
        ("/(unclosed/", 10, "invalid regular expression"),
        ("/never closed", 0, "unclosed regular expression"),
        ('"!!"', 0, "no letters or digits"),
        ("AND", 0, "AND needs a term"),
    ],
)
def test_syntax_error_position(query: str, position: int, words: str) -> None:
    """Syntax errors raise QueryError with the offset and a caret under it."""
    with pytest.raises(QueryError) as info:
        parse_query(query)
    error = info.value
    assert error.position == position
    assert words in error.message
    lines = error.message.splitlines()
    assert lines[-2] == "  " + query
    assert lines[-1] == "  " + " " * position + "^"
    assert error.hint


@pytest.mark.parametrize("query", ["", "   ", "-video", "NOT video", "NOT (video OR audio)", "video OR -audio"])
def test_empty_and_not_only_queries_are_rejected(query: str) -> None:
    """Empty queries and queries that match papers lacking all their terms are rejected."""
    with pytest.raises(QueryError) as info:
        parse_query(query)
    assert info.value.position == 0


def test_exclusion_with_a_positive_term_is_accepted() -> None:
    """`diffusion -video` parses into And(Term, Not(Term))."""
    root = parse_query("diffusion -video").root
    assert isinstance(root, And)
    assert isinstance(root.children[0], Term) and isinstance(root.children[1], Not)


def test_double_negation_cancels() -> None:
    """`--video` and `NOT -video` are just video."""
    assert isinstance(parse_query("NOT -video").root, Term)


def test_simple_queries_parse_as_the_full_parser_does(seed_papers: tuple[Paper, ...]) -> None:
    """A lone ASCII word or phrase (parse_query's fast path) gives the Query the lexer and parser give."""
    texts = {"LLM", "  GAN ", "TCP/IP", "self_supervised", "GPT-4", "x1-y2-z3", '"a / b_c"', " 'quoted' ", "C++"}
    for paper in seed_papers:
        texts.update(re.findall(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+", paper.abstract))
        texts.update(f'"{phrase}"' for phrase in re.findall(r"[A-Za-z]+ [A-Za-z]+", paper.title))
    assert len(texts) > 200
    for text in texts:
        parser = query_module._Parser(text, query_module._lex(text))  # the slow path, by hand
        assert parse_query(text) == Query(text, parser.parse_or(ANY)), text


def test_compile_names_the_profile_and_keyword_in_errors() -> None:
    """A bad query in a profile says which profile and which keyword, keeping the position."""
    with pytest.raises(QueryError) as info:
        compile_profiles([profile("ann", keywords=("ok",)), profile("bob", keywords=("ok", 'z "quote', "a)"))])
    assert info.value.message.startswith("profile 'bob', keywords[1]: unclosed quote")
    assert info.value.position == 2


def test_duplicate_profile_names_are_rejected() -> None:
    """Two profiles with one name would collide in the result dict."""
    with pytest.raises(ConfigError):
        compile_profiles([profile("a", keywords=("x",)), profile("a", keywords=("y",))])


def test_query_help_documents_the_language() -> None:
    """QUERY_HELP is a Markdown section covering every operator and field."""
    assert QUERY_HELP.startswith("## Keyword queries")
    needles = ("`GAN`", '"self-supervised"', "`diffus*`", "OR", "-video", "title:", "ti:", "abs:", "org:", "/gpt")
    for needle in (*needles, "author:", "au:", "follows:"):
        assert needle in QUERY_HELP


# --- regex -------------------------------------------------------------------------------------------


def test_regex_matches_case_insensitively_with_offsets(seed_papers: tuple[Paper, ...]) -> None:
    """/spec\\w+ decoding/ matches on the original text; offsets are the regex span."""
    result = match_query(r"/spec\w+ decoding/", seed_papers)
    assert result
    for match in result:
        for hit in match.hits:
            assert re.fullmatch(r"spec\w+ decoding", field_text(match, hit.field)[hit.start : hit.end], re.I)


def test_pathological_regex_finishes_fast(caplog: pytest.LogCaptureFixture) -> None:
    """(a+)+$ and (a|aa)+$ on long runs of "a" finish fast; a timeout is logged and counts as no match."""
    papers = [Paper(key=f"x:{i}", title="a" * 40 + "!", abstract="a" * 5000 + "!" + " kernel") for i in range(20)]
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="digest.matching.match"):
        assert match_query("/(a+)+$/", papers) == []
        assert match_query("/(a|aa)+$/", papers) == []
        assert len(match_profile(profile(keywords=("/(a|aa)+$/", "kernel")), papers)) == 20
    assert time.perf_counter() - started < 1.5
    assert any("timed out" in record.getMessage() for record in caplog.records)


def test_regex_is_opt_in() -> None:
    """Without slashes, regex characters are just punctuation between words."""
    paper = Paper(key="x:r", title="gpt 4o", abstract="")
    assert match_query("gpt-4o", [paper])
    assert isinstance(parse_query("/gpt-?4o?/").root, Regex)


# --- automaton vs naive evaluation ----------------------------------------------------------------


_SOFT = r"[\s\-\u2010-\u2013_/]+"
_NOT_WORD_BEFORE = r"(?<![^\W_])"
_NOT_WORD_AFTER = r"(?![^\W_])(?!(?:\+\+|#)(?![^\W_]))"


@cache
def _leaf_regex(leaf: Term) -> regex.Pattern[str]:
    """The reference regex of a term: whole words, soft separators, plural s/es unless a prefix."""
    words = leaf.pattern.split()
    body = _SOFT.join(regex.escape(w) for w in words)
    tail = "" if leaf.prefix else "(?:e?s)?" + _NOT_WORD_AFTER
    return regex.compile(_NOT_WORD_BEFORE + body + tail)


@cache
def _folded(text: str) -> str:
    """NFKC + casefold of the whole string (the matcher folds per character cluster)."""
    return unicodedata.normalize("NFKC", text).casefold()


@cache
def _naive_hits(leaf: Term | Regex, paper: Paper, field: str) -> int:
    """How often a leaf occurs in a field, overlapping occurrences included."""
    text = {"title": paper.title, "abstract": paper.abstract, "org": org_field(paper)}[field]
    if isinstance(leaf, Regex):
        return sum(1 for m in regex.finditer(leaf.pattern, text, regex.IGNORECASE) if m.end() > m.start())
    return len(_leaf_regex(leaf).findall(_folded(text), overlapped=True))


def _naive_witness(node, paper: Paper) -> list[tuple[str, str, int]] | None:  # type: ignore[no-untyped-def]
    """Naive evaluation of one query on one paper: positive (term, field, count) evidence or None."""
    if isinstance(node, Term | Regex):
        fields = ("title", "abstract") if node.field == "any" else (node.field,)
        out = [(node.text, f, n) for f in fields if (n := _naive_hits(node, paper, f))]
        return out or None
    if isinstance(node, Not):
        return None if _naive_witness(node.child, paper) is not None else []
    parts = [_naive_witness(child, paper) for child in node.children]
    if isinstance(node, And):
        return None if any(p is None for p in parts) else [x for p in parts for x in p]  # type: ignore[union-attr]
    true = [p for p in parts if p is not None]
    return [x for p in true for x in p] if true else None


def _term_key(written: str) -> str:
    """Terms written differently ("LLM", "llm") are one term."""
    return written if written.startswith("/") else term_pattern(written.rstrip("*"))


def _naive_match_profile(prof: Profile, papers: list[Paper]) -> list[tuple[str, float, frozenset]]:
    """Per-profile, per-paper evaluation without automaton or indexes: (key, score, hit counts) ranked."""
    orgs = {re.sub(r"[\W_]", "", unicodedata.normalize("NFKC", o).casefold()) for o in prof.organizations}
    rows = []
    for index, paper in enumerate(papers):
        if any(_naive_witness(parse_query(q).root, paper) is not None for q in prof.exclude):
            continue
        if (paper.upvotes or 0) < prof.min_upvotes:
            continue
        in_org = not orgs.isdisjoint(org_names(paper))
        if orgs and prof.organizations_mode == "only" and not in_org:
            continue
        evidence: dict[tuple[str, bool, str], int] = {}
        matched = False
        for q in prof.keywords:
            witness = _naive_witness(parse_query(q).root, paper)
            if witness is not None:
                matched = True
                for text, field, count in witness:
                    evidence.setdefault((_term_key(text), text.endswith("*"), field), count)
        if not matched and not (not prof.keywords and orgs and prof.organizations_mode == "only" and in_org):
            continue
        weights = {"title": 3.0, "abstract": 1.0, "org": 1.0}
        score = sum(weights[f] + (0.5 * math.log(n) if n > 1 else 0.0) for (_, _, f), n in evidence.items())
        if in_org and prof.organizations_mode == "boost":
            score += ORG_BOOST
        score = round(score, 6)
        if score < prof.min_score:
            continue
        published = paper.published.toordinal() if paper.published else 0
        rank = (-score, -(paper.upvotes or 0), paper.published is None, -published, index)
        rows.append((rank, paper.key, score, frozenset(evidence.items())))
    return [row[1:] for row in sorted(rows)]


def _actual(match: Match) -> tuple[str, float, frozenset]:
    """A Match as (key, score, hit counts per term and field), comparable with the reference."""
    counts = Counter((_term_key(h.term), h.term.endswith("*"), h.field) for h in match.hits)
    return match.paper.key, match.score, frozenset(counts.items())


def _random_profiles(rng: random.Random, papers: list[Paper], n: int) -> list[Profile]:
    """Profiles of random words, phrases, prefixes, fields, booleans, regexes and filters from real text."""
    words = sorted({w for p in papers[:60] for w in re.findall(r"[A-Za-z]{4,}", p.title + " " + p.abstract[:300])})
    vocab = rng.sample(words, 90)
    phrases = []
    for p in rng.sample(papers, 40):
        tokens = re.findall(r"[A-Za-z]+(?:[- ][A-Za-z]+)", p.abstract)
        if tokens:
            phrases.append(rng.choice(tokens))

    def term() -> str:
        kind = rng.random()
        if kind < 0.55:
            return rng.choice(vocab)
        if kind < 0.75:
            phrase = rng.choice(phrases)
            return phrase if "-" in phrase else f'"{phrase}"'
        if kind < 0.85:
            return rng.choice(vocab)[:5] + "*"
        if kind < 0.92:
            return rng.choice(["title:", "ti:", "abs:"]) + rng.choice(vocab)
        if kind < 0.95:
            return rng.choice(["org:apple", "org:face", "org:facebook", "org:meta", r"/spec\w+/"])
        return rng.choice(vocab).upper()

    def query() -> str:
        shape = rng.random()
        if shape < 0.5:
            return term()
        if shape < 0.65:
            return f"{term()} OR {term()}"
        if shape < 0.75:
            return f"{term()} {term()}"
        if shape < 0.85:
            return f"{term()} -{term()}"
        return f"({term()} OR {term()}) NOT {term()}"

    profiles = []
    for i in range(n):
        profiles.append(
            Profile(
                name=f"u{i}",
                email=f"u{i}@example.org",
                keywords=tuple(query() for _ in range(rng.randint(1, 6))),
                exclude=tuple(query() for _ in range(rng.choice([0, 0, 0, 1]))),
                min_upvotes=rng.choice([0, 0, 0, 2, 5]),
                organizations=rng.choice([(), (), (), ("Apple",), ("hugging face", "OpenAI"), ("FACEBOOK",)]),
                organizations_mode=rng.choice(["boost", "only"]),
                min_score=rng.choice([0.0, 0.0, 0.0, 2.0, 4.0]),
            )
        )
    return profiles


def _varied(rng: random.Random, papers: tuple[Paper, ...]) -> list[Paper]:
    """The papers with random upvotes, dates and organizations, so every tiebreak and org rule is used."""
    varied = []
    for p in papers:
        upvotes = rng.choice([None, 0, 1, 3, 8])
        published = rng.choice([None, date(2025, 1, rng.randint(1, 28))])
        organization, org_handle = rng.choice(_ORGS)
        varied.append(
            dataclasses.replace(
                p, upvotes=upvotes, published=published, organization=organization, org_handle=org_handle
            )
        )
    return varied


# (display name, handle) as the API gives them; None where there is no handle (a bare string in a dump).
_ORGS = [
    (None, None),
    (None, None),
    ("Apple", "apple"),
    ("Hugging Face", "huggingface"),
    ("OpenAI", None),
    ("AI at Meta", "facebook"),
]


def test_automaton_agrees_with_naive_evaluation(seed_papers: tuple[Paper, ...]) -> None:
    """On every seed paper, 300 random profiles give the same ranked papers, scores and hits both ways."""
    rng = random.Random(7)
    papers = _varied(rng, seed_papers)
    profiles = _random_profiles(rng, papers, 300)
    fast = match_all(compile_profiles(profiles), papers)
    total = 0
    for prof in profiles:
        expected = _naive_match_profile(prof, papers)
        assert [_actual(m) for m in fast[prof.name]] == expected, prof
        total += len(expected)
    assert total > 1000  # the profiles really match things


def test_match_all_equals_match_profile_one_by_one(seed_papers: tuple[Paper, ...]) -> None:
    """Compiling profiles together gives each the same matches as compiling it alone."""
    profiles = _random_profiles(random.Random(3), list(seed_papers), 8)
    together = match_all(compile_profiles(profiles), seed_papers)
    for prof in profiles:
        assert together[prof.name] == match_profile(prof, seed_papers)


@pytest.mark.parametrize("packed", [True, False], ids=["packed-pairs", "pairs-one-by-one"])
def test_match_top_is_match_all_cut_to_max_papers(
    seed_papers: tuple[Paper, ...], packed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """For 300 random profiles with max_papers 1-30, match_top gives match_all's first max_papers and the total
    (papers reached through two keywords are merged by both of match_top's paths)."""
    if not packed:
        monkeypatch.setattr(digest.matching.top, "PACK_LIMIT", 0)
    rng = random.Random(13)
    papers = _varied(rng, seed_papers)
    profiles = [dataclasses.replace(p, max_papers=rng.randint(1, 30)) for p in _random_profiles(rng, papers, 300)]
    profiles += [  # the same keywords as another profile (shared Matches), and organizations without keywords
        dataclasses.replace(profiles[0], name="twin", max_papers=3),
        profile("apple", organizations=("apple",), organizations_mode="only", max_papers=2),
        profile("meta", organizations=("Facebook",), organizations_mode="only", max_papers=2),  # by handle
        profile("meta-llm", keywords=("LLM",), organizations=("facebook",), max_papers=5),  # boost by handle
        profile("meta-name", organizations=("ai at meta",), organizations_mode="only", max_papers=40),
    ]
    matcher = compile_profiles(profiles)
    full, top = match_all(matcher, papers), match_top(matcher, papers)
    assert list(top) == list(full)
    for prof in profiles:
        assert top[prof.name] == (full[prof.name][: prof.max_papers], len(full[prof.name])), prof
    cut = [p for p in profiles if len(full[p.name]) > p.max_papers]
    assert len(cut) > 100
    assert any(p.exclude for p in cut) and any(p.min_upvotes for p in cut) and any(p.min_score for p in cut)
    assert {p.organizations_mode for p in cut if p.organizations} == {"only", "boost"}
    assert any(not (p.exclude or p.organizations or p.min_upvotes or p.min_score) for p in cut)
    by_handle = [m.paper for m in full["meta"]]
    assert by_handle and by_handle == [m.paper for m in full["meta-name"]]  # by handle = by display name
    assert all(p.org_handle == "facebook" for p in by_handle)
    assert any("org boost" in m.reason for m in full["meta-llm"])


def test_match_top_merges_a_paper_reached_through_several_keywords(seed_papers: tuple[Paper, ...]) -> None:
    """A paper hit by two, three or four of a profile's keywords is one Match with every keyword's hits, ranked as
    match_all ranks it; profiles with the same keywords share that Match."""
    paper = seed_papers[0]
    words = list(dict.fromkeys(w for w in re.findall(r"[A-Za-z]{7,}", paper.title)))[:4]
    assert len(words) == 4, paper.title
    profiles = [profile(f"p{n}", keywords=tuple(words[:n]), max_papers=50) for n in range(2, len(words) + 1)]
    profiles.append(profile("twin", keywords=tuple(reversed(words[:2])), max_papers=50))
    matcher = compile_profiles(profiles)
    full, top = match_all(matcher, seed_papers), match_top(matcher, seed_papers)
    for prof in profiles:
        matches, total = top[prof.name]
        assert (matches, total) == (full[prof.name][:50], len(full[prof.name]))
        merged = next(m for m in matches if m.paper is paper)
        assert {h.term for h in merged.hits} == set(prof.keywords)
        assert len({m.paper.key for m in matches}) == len(matches)  # one Match per paper
    twin = next(m for m in top["twin"][0] if m.paper is paper)
    assert twin is next(m for m in top["p2"][0] if m.paper is paper)


def test_match_top_counts_what_it_cuts(seed_papers: tuple[Paper, ...]) -> None:
    """A profile capped at one paper gets its best match and the number of all its matches."""
    prof = profile(keywords=("LLM",), max_papers=1)
    every = match_profile(prof, seed_papers)
    assert len(every) > 1
    assert match_top(compile_profiles([prof]), seed_papers) == {"alice": ([every[0]], len(every))}


def test_match_top_with_max_papers_below_one_keeps_nothing(seed_papers: tuple[Paper, ...]) -> None:
    """A profile built in code with max_papers 0 or -1 keeps no matches but still counts them."""
    every = len(match_profile(profile(keywords=("LLM",)), seed_papers))
    profiles = [profile("zero", keywords=("LLM",), max_papers=0), profile("minus", keywords=("LLM",), max_papers=-1)]
    assert match_top(compile_profiles(profiles), seed_papers) == {"zero": ([], every), "minus": ([], every)}


def test_match_top_on_no_papers() -> None:
    """No papers: every profile gets no matches and a count of zero."""
    assert match_top(compile_profiles([profile(keywords=("LLM",)), profile("b")]), []) == {
        "alice": ([], 0),
        "b": ([], 0),
    }


def test_match_all_lists_every_profile(seed_papers: tuple[Paper, ...]) -> None:
    """Every profile gets a key, with an empty list when nothing matched."""
    result = match_all(compile_profiles([profile("a", keywords=("zzzzunlikely",)), profile("b")]), seed_papers)
    assert result == {"a": [], "b": []}


def test_match_all_on_no_papers() -> None:
    """No papers: every profile gets an empty list."""
    assert match_all(compile_profiles([profile(keywords=("LLM",))]), []) == {"alice": []}


def test_is_deterministic(seed_papers: tuple[Paper, ...]) -> None:
    """Two runs give identical results."""
    profiles = _random_profiles(random.Random(11), list(seed_papers), 30)
    assert match_all(compile_profiles(profiles), seed_papers) == match_all(compile_profiles(profiles), seed_papers)


def test_corpus_organizations(corpus: Path) -> None:
    """On the real API JSON, org:tencent and organizations "only" pick the Tencent papers."""
    papers = read_dump(corpus / "api_json" / "2026-04-10.json").papers
    tencent = {p.key for p in papers if p.organization and "tencent" in p.organization.lower()}
    assert tencent
    assert keys(match_query("org:tencent", papers)) == tencent
    only = match_profile(profile(organizations=("Tencent", "Tencent Hunyuan"), organizations_mode="only"), papers)
    assert keys(only) == {p.key for p in papers if p.organization in ("Tencent", "Tencent Hunyuan")}


@pytest.mark.parametrize("day", ["2026-04-10", "2026-04-16"])
def test_corpus_every_organization_by_handle_or_name(corpus: Path, day: str) -> None:
    """On a real day, every organization is found by its handle and by its display name (mode "only", any case),
    boosted by its handle, and match_all and match_top agree on all of it."""
    papers = read_dump(corpus / "api_json" / f"{day}.json").papers
    orgs = sorted({(p.org_handle, p.organization) for p in papers if p.org_handle and p.organization})
    assert len(orgs) > 10 and len(orgs) == len({p.org_handle for p in papers if p.org_handle})
    profiles = []
    for i, (handle, name) in enumerate(orgs):
        profiles += [
            profile(f"handle{i}", organizations=(handle.upper(),), organizations_mode="only"),
            profile(f"name{i}", organizations=(name.lower(),), organizations_mode="only"),
            profile(f"boost{i}", keywords=("model*",), organizations=(handle,), max_papers=5),
        ]
    found = _both_ways([*profiles, profile("plain", keywords=("model*",))], papers)
    plain = {m.paper.key: m.score for m in found["plain"]}
    for i, (handle, _name) in enumerate(orgs):
        expected = {p.key for p in papers if p.org_handle == handle}
        assert keys(found[f"handle{i}"]) == keys(found[f"name{i}"]) == expected, handle
        for m in found[f"boost{i}"]:
            assert m.score == pytest.approx(plain[m.paper.key] + (ORG_BOOST if m.paper.key in expected else 0.0))


@pytest.mark.parametrize("size", [1, 7, 50])
def test_streamed_top_equals_top_over_everything(seed_papers: tuple[Paper, ...], size: int) -> None:
    """match_top_stream over batches gives match_top's answer over the whole pool (order, ties, totals)."""
    rng = random.Random(size)
    # Ties on score and upvotes across batches: every paper twice, the copies differing only by key.
    pool = [*seed_papers, *(dataclasses.replace(p, key=f"{p.key}#2") for p in seed_papers)]
    rng.shuffle(pool)
    profiles = [
        Profile(name="broad", email="", keywords=("LLM", "model*", "learning"), max_papers=25),
        Profile(name="narrow", email="", keywords=('"reinforcement learning"',), max_papers=3),
        Profile(name="filtered", email="", keywords=("agent",), exclude=("survey",), min_upvotes=5, max_papers=10),
        Profile(name="none", email="", keywords=("zzzunmatched",), max_papers=5),
    ]
    matcher = compile_profiles(profiles)
    batches = [pool[i : i + size] for i in range(0, len(pool), size)]
    streamed = match_top_stream(matcher, batches)
    whole = match_top(matcher, pool)
    for profile in profiles:
        kept, total = streamed[profile.name]
        want_kept, want_total = whole[profile.name]
        assert total == want_total, profile.name
        assert [(m.paper.key, m.score, m.reason) for m in kept] == [
            (m.paper.key, m.score, m.reason) for m in want_kept
        ], profile.name
    assert streamed["broad"][1] > 25  # the case where the cut across batches matters
