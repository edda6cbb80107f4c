"""Authors: the author: scope, name matching rules, followed authors (profiles' authors), text scrapes without
names, the compiled path against the per-profile path and an independent oracle, and the config's notes."""

from __future__ import annotations

import dataclasses
import random
import re
import textwrap
import unicodedata
from functools import cache
from pathlib import Path

import pytest

from digest.config import load_config
from digest.config.rules import AUTHOR_NOTE, author_notes
from digest.errors import QueryError
from digest.matching.match import (
    FOLLOW_BOOST,
    ORG_BOOST,
    compile_profiles,
    match_all,
    match_profile,
    match_query,
    match_top,
    parse_query,
)
from digest.matching.query import AUTHORS, And, Or, Term
from digest.models import Hit, Paper, Profile
from digest.sources import read_dump

FIXTURES = Path(__file__).parent / "fixtures"


def paper(key: str, *authors: str, title: str = "A study", **fields: object) -> Paper:
    """A paper by ``authors`` (a text scrape's paper when there are none)."""
    return Paper(key=key, title=title, abstract="We study things.", authors=authors, **fields)  # type: ignore[arg-type]


def found(query: str, *authors: str) -> bool:
    """Whether ``query`` matches a paper by ``authors``."""
    return bool(match_query(query, [paper("p", *authors)]))


def profile(name: str = "ada", **fields: object) -> Profile:
    """A profile with an email derived from its name."""
    return Profile(name=name, email=f"{name}@example.org", **fields)  # type: ignore[arg-type]


# --- the scope -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "written", "prefix"),
    [
        ('author:"Yann LeCun"', "Yann LeCun", False),
        ("author:lecun", "lecun", False),
        ("AUTHOR:lecun", "lecun", False),
        ("au:lecun", "lecun", False),
        ("author:hinton*", "hinton*", True),
        ("author:Ruiz-Garcia", "Ruiz-Garcia", False),
    ],
)
def test_author_scope_parses_to_a_name_term(query: str, written: str, prefix: bool) -> None:
    """author: (or au:) makes a term of field "authors" whose pattern is the folded name."""
    root = parse_query(query).root
    assert isinstance(root, Term)
    assert (root.field, root.text, root.prefix) == (AUTHORS, written, prefix)
    assert root.pattern.startswith("@")


def test_author_scope_combines_with_other_terms() -> None:
    """author: scopes a group, and combines with unscoped terms like any field."""
    root = parse_query('diffusion AND author:"Kaiming He"').root
    assert isinstance(root, And)
    assert [(c.field, c.text) for c in root.children] == [("any", "diffusion"), (AUTHORS, "Kaiming He")]  # type: ignore[union-attr]
    group = parse_query("author:(lecun OR hinton*)").root
    assert isinstance(group, Or) and all(c.field == AUTHORS for c in group.children)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("query", "position", "words"),
    [
        ("author:", 7, "'author:' needs a term"),
        ("diffusion AND author:", 21, "'author:' needs a term"),
        ("author: lecun", 7, "'author:' needs a term"),
        ('author:"..."', 7, "no letters or digits"),
        ("author:/le.*/", 7, "not regular expressions"),
        ("writer:lecun", 0, "unknown field"),
    ],
)
def test_author_scope_errors(query: str, position: int, words: str) -> None:
    """A bad author: term is a QueryError with its position and a hint that shows the author: syntax."""
    with pytest.raises(QueryError) as info:
        parse_query(query)
    assert info.value.position == position
    assert words in info.value.message
    assert "author:" in info.value.hint


@pytest.mark.parametrize(
    ("query", "position", "words"),
    [("author:()", 8, "empty parentheses"), ("title:(author:lecun)", 7, "cannot be nested")],
)
def test_author_scope_follows_the_general_rules(query: str, position: int, words: str) -> None:
    """author: is a field scope like the others: no empty group, no nesting."""
    with pytest.raises(QueryError) as info:
        parse_query(query)
    assert (info.value.position, words in info.value.message) == (position, True)


# --- the name rules ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "author"),
    [
        ('author:"Yann LeCun"', "Yann LeCun"),
        ('author:"Yann LeCun"', "Y. LeCun"),
        ('author:"Yann LeCun"', "Y LeCun"),
        ('author:"yann lecun"', "YANN LECUN"),
        ('author:"Y. LeCun"', "Yann LeCun"),
        ('author:"Y LeCun"', "Yoshua LeCun"),
        ("author:lecun", "Yann LeCun"),
        ("author:LeCun", "Y. LeCun"),
        ("author:muller", "Thomas Müller"),
        ("author:Müller", "Thomas Muller"),
        ('author:"Thomas Muller"', "THOMAS MÜLLER"),
        ('author:"Lukasz Kaiser"', "Łukasz Kaiser"),
        ('author:"Soren Hauberg"', "Søren Hauberg"),
        ("author:skocaj", "Danijel Skočaj"),
        ("author:obrien", "Conor O'Brien"),
        ("author:li", "Fei-Fei Li"),
        ("author:li", "Li Deng"),
        ('author:"Fei-Fei Li"', "Fei Fei Li"),
        ('author:"Fei-Fei Li"', "F.-F. Li"),
        ('author:"Jean-Baptiste Alayrac"', "J.-B. Alayrac"),
        ('author:"Jean-Baptiste Alayrac"', "Jean Baptiste Alayrac"),
        ('author:"J. Alayrac"', "Jean-Baptiste Alayrac"),
        ("author:Ruiz-Garcia", "María Ruiz García"),
        ('author:"Ruiz Garcia"', "María Ruiz-García"),
        ('author:"Maria Ruiz-Garcia"', "M. Ruiz-García"),
        ("author:kemelmacher-shlizerman", "Ira Kemelmacher-Shlizerman"),
        ('author:"van der Maaten"', "Laurens van der Maaten"),
        ('author:"L. van der Maaten"', "Laurens van der Maaten"),
        ('author:"Geoffrey Hinton"', "Geoffrey E. Hinton"),
        ('author:"G. Hinton"', "Geoffrey Everest Hinton"),
        ('author:"Geoffrey E. Hinton"', "Geoffrey Hinton"),
        ('author:"Geoffrey E. Hinton"', "Geoffrey Everest Hinton"),
        ('author:"Kelsey R. Allen"', "Kelsey R. Allen"),
        ("author:hinton*", "Geoffrey Hintonian"),
        ('author:"Geoffrey Hin*"', "Geoffrey Hinton"),
        ("author:hin*", "Hinrich Schütze"),
    ],
)
def test_names_that_match(query: str, author: str) -> None:
    """Case, accents, initials, hyphens, compound surnames and middle names as a researcher expects."""
    assert found(query, "Somebody Else", author)


@pytest.mark.parametrize(
    ("query", "author"),
    [
        ("author:li", "Wei Lin"),
        ("author:li", "Ana Oliveira"),
        ("author:li", "Lichen Wang"),
        ("author:lin", "Fei-Fei Li"),
        ('author:"Yann LeCun"', "Yoshua LeCun"),
        ('author:"Yann LeCun"', "Yann Le"),
        ('author:"Kaiming He"', "Kaiming Hei"),
        ('author:"Kaiming He"', "Kai He"),
        ('author:"Kaiming He"', "He Kaiming"),
        ('author:"Kaiming He"', "Kaiming"),
        ('author:"Geoffrey E. Hinton"', "Geoffrey X. Hinton"),
        ('author:"Jean-Baptiste Alayrac"', "Jean Alayrac"),
        ('author:"Ruiz Garcia"', "María García"),
        ("author:hinton*", "Geoffrey Hin"),
        ("author:lecun", "Yann Lecunn"),
        ("lecun", "Yann LeCun"),  # an unscoped term looks in the title and abstract only
    ],
)
def test_names_that_do_not_match(query: str, author: str) -> None:
    """Never a substring of another name, a different first name, another order or a longer surname."""
    assert not found(query, author)


def test_author_hit_is_reported_by_author_index() -> None:
    """An author: hit is a Hit of field "authors" whose offsets are the author's index, and reads `author: "..."`."""
    p = paper("p", "Ross Girshick", "Kaiming He", title="Masked autoencoders")
    (match,) = match_query('autoencoder* AND author:"Kaiming He"', [p])
    assert match.hits == (Hit("autoencoder*", "title", 7, 19), Hit("Kaiming He", "authors", 1, 2))
    assert match.reason == 'title: "autoencoder*"; author: "Kaiming He"'
    assert match.score == 6.0  # 3 for the title, 3 for the author


def test_author_term_counts_each_matching_author() -> None:
    """A surname shared by three authors is three hits, scored with the repeat bonus."""
    (match,) = match_query("author:li", [paper("p", "Yang Li", "Wei Lin", "Yi Li", "Yu Li")])
    assert [(h.start, h.end) for h in match.hits] == [(0, 1), (2, 3), (3, 4)]
    assert match.reason == 'author: "li" ×3'


def test_author_exclusion_drops_the_paper() -> None:
    """An exclude query may use author: as well."""
    papers = [paper("a", "Yann LeCun", title="Energy models"), paper("b", "Kaiming He", title="Energy models")]
    found_ = match_profile(profile(keywords=("energy",), exclude=("author:lecun",)), papers)
    assert [m.paper.key for m in found_] == ["b"]


# --- followed authors --------------------------------------------------------------------------------------------


def test_a_followed_author_matches_without_any_keyword() -> None:
    """Any paper by a followed author matches, scored with the follow boost, reason `follows: Name`."""
    papers = [paper("a", "Kaiming He"), paper("b", "Yann LeCun"), paper("c", "K. He", "Ross Girshick")]
    matches = match_profile(profile(keywords=("zzznothing",), authors=("Kaiming He",)), papers)
    assert [m.paper.key for m in matches] == ["a", "c"]
    assert {m.reason for m in matches} == {"follows: Kaiming He"}
    assert {m.score for m in matches} == {FOLLOW_BOOST}
    assert matches[1].hits == (Hit("Kaiming He", "authors", 0, 1),)


def test_a_follow_adds_its_boost_to_keyword_hits() -> None:
    """A paper that hits a keyword and has a followed author ranks above the keyword-only papers."""
    papers = [paper("a", "Someone Else", title="Diffusion"), paper("b", "Kaiming He", title="Diffusion")]
    matches = match_profile(profile(keywords=("diffusion",), authors=("Kaiming He", "Yann LeCun")), papers)
    assert [(m.paper.key, m.score) for m in matches] == [("b", 3.0 + FOLLOW_BOOST), ("a", 3.0)]
    assert matches[0].reason == 'title: "diffusion"; follows: Kaiming He'


def test_a_profile_may_follow_authors_only() -> None:
    """No keywords at all: the followed authors' papers, several follows named in one reason."""
    papers = [paper("a", "Yann LeCun", "Kaiming He"), paper("b", "Somebody"), paper("c", "Yann LeCun")]
    matches = match_profile(profile(authors=("Yann LeCun", "Kaiming He")), papers)
    assert [(m.paper.key, m.reason) for m in matches] == [
        ("a", "follows: Kaiming He, Yann LeCun"),
        ("c", "follows: Yann LeCun"),
    ]
    assert matches[0].score == 2 * FOLLOW_BOOST


def test_follow_and_author_term_on_the_same_name_report_one_hit() -> None:
    """author:"X" as a keyword and X followed: both score, the author is one Hit."""
    (match,) = match_profile(
        profile(keywords=('author:"Kaiming He"',), authors=("Kaiming He",)), [paper("a", "Kaiming He")]
    )
    assert match.score == 3.0 + FOLLOW_BOOST
    assert match.hits == (Hit("Kaiming He", "authors", 0, 1),)
    assert match.reason == 'author: "Kaiming He"; follows: Kaiming He'


def test_exclusions_beat_follows() -> None:
    """A paper by a followed author that an exclude query matches is dropped."""
    papers = [paper("a", "Kaiming He", title="A survey of detection"), paper("b", "Kaiming He", title="Detection")]
    for prof in (
        profile(authors=("Kaiming He",), exclude=("survey",)),
        profile(keywords=("detection",), authors=("Kaiming He",), exclude=("survey",)),
    ):
        assert [m.paper.key for m in match_profile(prof, papers)] == ["b"]
        assert match_top(compile_profiles([prof]), papers)[prof.name][1] == 1


def test_limits_apply_to_follows() -> None:
    """min_upvotes and organizations "only" filter a followed author's papers like keyword matches."""
    papers = [
        paper("a", "Kaiming He", upvotes=1, organization="AI at Meta", org_handle="facebook"),
        paper("b", "Kaiming He", upvotes=9),
        paper("c", "Someone", upvotes=9, organization="AI at Meta", org_handle="facebook"),
    ]
    assert [m.paper.key for m in match_profile(profile(authors=("Kaiming He",), min_upvotes=5), papers)] == ["b"]
    only = profile(authors=("Kaiming He",), organizations=("facebook",), organizations_mode="only")
    matches = match_profile(only, papers)
    assert [(m.paper.key, m.reason) for m in matches] == [("a", "follows: Kaiming He"), ("c", 'org: "AI at Meta"')]
    boost = match_profile(profile(authors=("Kaiming He",), organizations=("facebook",)), papers)
    assert {m.paper.key: m.score for m in boost} == {"a": FOLLOW_BOOST + ORG_BOOST, "b": FOLLOW_BOOST}


def test_a_followed_name_without_letters_names_the_profile() -> None:
    """A profile built in code with a followed "name" of punctuation fails to compile, naming the entry."""
    with pytest.raises(QueryError, match=r"profile 'ada', authors\[1\]"):
        compile_profiles([profile(authors=("Kaiming He", "..."))])


# --- text scrapes carry no names ---------------------------------------------------------------------------------


def test_text_scrape_papers_never_match_author_terms_or_follows() -> None:
    """A real text scrape's papers have a count of authors and no names: author: and follows never match them."""
    papers = read_dump(FIXTURES / "001_3a61c802f475e377.txt").papers
    assert papers and all(p.authors == () for p in papers)
    assert sum(1 for p in papers if p.n_authors) > 40
    profiles = [
        profile("terms", keywords=("author:wang", "author:li", "author:a*", 'author:"Kaiming He"')),
        profile("follows", authors=("Wang", "Li", "Kaiming He")),
        profile("both", keywords=("model*",), authors=("Wang",)),
    ]
    result = match_all(compile_profiles(profiles), papers)
    assert result["terms"] == [] and result["follows"] == []
    assert result["both"] and all("follows" not in m.reason for m in result["both"])


# --- the compiled path against the per-profile path and an oracle -------------------------------------------------

_GIVEN = ["Yann", "Yoshua", "Kaiming", "Kai", "Jean-Baptiste", "Jean", "Fei-Fei", "Łukasz", "Søren", "José",
          "Geoffrey", "Li", "Wei", "María", "Ana", "Hinrich", "Ira", "Conor", "Xing Han", "Lichen", "Le"]  # fmt: skip
_MIDDLE = ["E.", "R.", "Everest", "A.", "Q"]
_SURNAME = ["LeCun", "Bengio", "He", "Li", "Lin", "Oliveira", "Müller", "Muller", "Ruiz-García", "García",
            "van der Maaten", "von Neumann", "Hinton", "Hintonian", "Schütze", "O'Brien", "Kemelmacher-Shlizerman",
            "Lù", "Song", "de la Cruz", "Wang", "Wong", "Le Cun"]  # fmt: skip


def _random_name(rng: random.Random) -> str:
    given = rng.choice(_GIVEN)
    if rng.random() < 0.25:  # initials: "J.-B.", "Y." or "Y"
        given = "-".join(part[0] + rng.choice([".", ""]) for part in given.split("-"))
    middle = f" {rng.choice(_MIDDLE)}" if rng.random() < 0.2 else ""
    name = f"{given}{middle} {rng.choice(_SURNAME)}"
    return rng.choice([name, name, name, name.upper(), unicodedata.normalize("NFD", name)])


def _random_query(rng: random.Random, names: list[str]) -> str:
    """A name term: a real name, its surname, an initialised or shortened form, a prefix or a made-up name."""
    name = rng.choice(names)
    words = name.split()
    shape = rng.random()
    if shape < 0.3:
        return f'"{name}"'
    if shape < 0.5:
        return words[-1] if "'" not in words[-1] else f'"{words[-1]}"'
    if shape < 0.65:
        return f'"{words[0][0]}. {" ".join(words[1:])}"'
    if shape < 0.75:
        return f'"{words[0]} {words[-1]}"'
    if shape < 0.85:
        return re.sub(r"\W", "", words[-1])[: rng.randint(1, 4)] + "*"
    return f'"{_random_name(rng)}"'


# The oracle: the rules of QUERY_HELP written out pairwise, sharing no code with the matcher.
_LETTERS = {"ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "æ": "ae", "œ": "oe", "ı": "i"}
_PARTICLES = {"al", "bin", "da", "das", "de", "del", "della", "den", "der", "di", "do", "dos", "du", "el", "ibn", "la",
              "le", "st", "ten", "ter", "van", "von", "zu"}  # fmt: skip


@cache
def _parts(name: str) -> tuple[str, ...]:
    text = "".join(_LETTERS.get(c, c) for c in name.casefold())
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = re.sub(r"['`\u2018\u2019\u02bc\u00b4]", "", unicodedata.normalize("NFKC", text).casefold())
    return tuple(re.findall(r"[^\W_]+", text))


def _surname_at(parts: tuple[str, ...]) -> int:
    cut = len(parts) - 1
    while cut > 1 and parts[cut - 1] in _PARTICLES:
        cut -= 1
    return cut


def _oracle(query: str, author: str) -> bool:
    """Whether the name term ``query`` (as written after author:) matches ``author``, by the documented rules."""
    prefix = query.endswith("*")
    q, a = _parts(query.strip('"').rstrip("*")), _parts(author)

    def same(x: tuple[str, ...], y: tuple[str, ...]) -> bool:  # the last part may be a prefix
        if len(x) != len(y):
            return False
        return x[:-1] == y[:-1] and (y[-1].startswith(x[-1]) if prefix else x[-1] == y[-1])

    def fits(x: str, y: str) -> bool:  # a given name, or an initial for it either way
        return x == y or (len(x) == 1 < len(y) and y[0] == x) or (len(y) == 1 < len(x) and x[0] == y)

    if len(q) == 1:
        return any(same(q, (part,)) for part in a)
    if any(same(q, a[j:]) for j in range(len(a) - 1)):
        return True
    qc, ac = _surname_at(q), _surname_at(a)
    if not ac or not same(q[qc:], a[ac:]):
        return False
    qg, ag = q[:qc], a[:ac]
    if len(qg) == len(ag):
        return all(map(fits, qg, ag))
    if len(qg) == 1 or (len(ag) == 1 and all(len(g) == 1 for g in qg[1:])):
        return fits(qg[0], ag[0])
    return False


def _author_papers(rng: random.Random, n: int) -> list[Paper]:
    papers = []
    for i in range(n):
        authors = tuple(_random_name(rng) for _ in range(rng.choice([0, 1, 2, 3, 5])))
        title = rng.choice(["Diffusion models", "A survey of agents", "Vision transformers", "Energy"])
        papers.append(paper(f"p{i}", *authors, title=title, upvotes=rng.randint(0, 9)))
    return papers


def test_name_terms_agree_with_the_oracle() -> None:
    """On 300 papers of random names, 1,000 random author: terms compiled together match exactly the papers the
    pairwise oracle picks (case, accents, initials, middle names, hyphens, particles, prefixes)."""
    rng = random.Random(20261123)
    papers = _author_papers(rng, 300)
    names = [a for p in papers for a in p.authors]
    queries = list(dict.fromkeys(_random_query(rng, names) for _ in range(1000)))
    profiles = [profile(f"q{i}", keywords=(f"author:{q}",), max_papers=500) for i, q in enumerate(queries)]
    result = match_all(compile_profiles(profiles), papers)
    total = 0
    for prof, query in zip(profiles, queries, strict=True):
        expected = {p.key for p in papers if any(_oracle(query, a) for a in p.authors)}
        assert {m.paper.key for m in result[prof.name]} == expected, query
        total += len(expected)
    assert total > 2000


def test_real_names_agree_with_the_oracle(corpus: Path) -> None:
    """On real API JSON days, terms built from the real author names match what the oracle picks."""
    papers = [p for path in sorted((corpus / "api_json_2024").glob("*.json"))[:5] for p in read_dump(path).papers]
    names = [a for p in papers for a in p.authors]
    rng = random.Random(5)
    queries = list(dict.fromkeys(_random_query(rng, names) for _ in range(400)))
    profiles = [profile(f"q{i}", keywords=(f"author:{q}",), max_papers=500) for i, q in enumerate(queries)]
    result = match_all(compile_profiles(profiles), papers)
    for prof, query in zip(profiles, queries, strict=True):
        expected = {p.key for p in papers if any(_oracle(query, a) for a in p.authors)}
        assert {m.paper.key for m in result[prof.name]} == expected, query


def test_compiled_profiles_give_the_per_profile_results() -> None:
    """2,000 random profiles of author: terms, follows, keywords, exclusions and limits compiled together (the fast
    path of 100,000 profiles): match_top and match_all give each profile what compiling it alone gives."""
    rng = random.Random(15)
    papers = _author_papers(rng, 120)
    names = [a for p in papers for a in p.authors]

    def keyword() -> str:
        term = f"author:{_random_query(rng, names)}"
        return rng.choice([term, term, "diffusion", "agent*", f"title:transformers OR {term}", f"energy -{term}"])

    profiles = []
    for i in range(2000):
        n_follows = rng.randint(0, 3)
        follows = tuple(rng.choice(names) if rng.random() < 0.7 else _random_name(rng) for _ in range(n_follows))
        keywords = tuple(keyword() for _ in range(rng.randint(0 if follows else 1, 3)))
        profiles.append(
            profile(
                f"u{i}",
                keywords=keywords,
                authors=follows,
                exclude=rng.choice([(), (), (), ("survey",), (f"author:{_random_query(rng, names)}",)]),
                min_upvotes=rng.choice([0, 0, 0, 3]),
                min_score=rng.choice([0.0, 0.0, 0.0, 4.0]),
                max_papers=rng.randint(1, 15),
            )
        )
    matcher = compile_profiles(profiles)
    full, top = match_all(matcher, papers), match_top(matcher, papers)
    for prof in profiles:
        assert top[prof.name] == (full[prof.name][: prof.max_papers], len(full[prof.name])), prof
    for prof in rng.sample(profiles, 300):
        assert full[prof.name] == match_profile(prof, papers), prof
    followed = [m for prof in profiles for m in full[prof.name] if "follows: " in m.reason]
    assert len(followed) > 1000
    assert any(len(top[p.name][0]) < top[p.name][1] for p in profiles if p.authors)  # cuts happen


def test_follow_results_agree_with_the_oracle() -> None:
    """Each followed name picks exactly the papers with an author the oracle matches (exclusions aside)."""
    rng = random.Random(21)
    papers = _author_papers(rng, 150)
    names = [a for p in papers for a in p.authors]
    follows = list(dict.fromkeys(rng.choice(names) for _ in range(300)))
    profiles = [profile(f"f{i}", authors=(name,), max_papers=500) for i, name in enumerate(follows)]
    result = match_all(compile_profiles(profiles), papers)
    for prof, name in zip(profiles, follows, strict=True):
        expected = {p.key for p in papers if any(_oracle(f'"{name}"', a) for a in p.authors)}
        assert {m.paper.key for m in result[prof.name]} == expected, name
        assert all(m.reason == f"follows: {name}" for m in result[prof.name])


def test_profiles_without_authors_are_unchanged_by_papers_names() -> None:
    """Without any author: term or follow, author names are never looked at (the same Matches either way)."""
    rng = random.Random(2)
    papers = _author_papers(rng, 60)
    nameless = [dataclasses.replace(p, authors=()) for p in papers]
    profiles = [profile("a", keywords=("diffusion", "agent*")), profile("b", keywords=("energy",))]
    matcher = compile_profiles(profiles)
    assert not matcher.author_exact and not matcher.author_prefix
    with_names, without = match_all(matcher, papers), match_all(matcher, nameless)
    assert {k: [(m.paper.key, m.score, m.reason) for m in v] for k, v in with_names.items()} == {
        k: [(m.paper.key, m.score, m.reason) for m in v] for k, v in without.items()
    }


# --- the config --------------------------------------------------------------------------------------------------

_CONFIG = """\
[mail]
sender = "digest@example.org"
unsubscribe_mailto = "unsubscribe@example.org"

[[users]]
name = "ada"
email = "ada@example.org"
keywords = ["diffusion"]

[[users]]
name = "bob"
email = "bob@example.org"
authors = ["Kaiming He", "Yann LeCun"]

[[users]]
name = "eve"
email = "eve@example.org"
keywords = ["diffusion", 'author:"Kaiming He" OR vision']
exclude = ["author:lecun"]
"""


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "config.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_config(path)


def test_a_user_may_follow_authors_without_keywords(tmp_path: Path) -> None:
    """authors alone is enough for a user (no "expected at least one query")."""
    cfg = _load(tmp_path, _CONFIG)
    assert cfg.profiles()[1].authors == ("Kaiming He", "Yann LeCun")
    assert cfg.profiles()[1].keywords == ()


def test_an_author_without_letters_is_a_problem(tmp_path: Path) -> None:
    """A followed "name" of punctuation is refused at its line."""
    from digest.config import ConfigValidationError

    with pytest.raises(ConfigValidationError) as info:
        _load(tmp_path, _CONFIG.replace('"Yann LeCun"]', '"Yann LeCun", "--"]'))
    (problem,) = info.value.problems
    assert problem.path == "users[1].authors[2]"
    assert 'expected an author\'s name such as "Kaiming He", got "--"' in problem.message


def test_author_notes_say_where_text_scrapes_cannot_match(tmp_path: Path) -> None:
    """author_notes points at each authors list and each query with author:, saying text scrapes carry no names;
    none of it is among the warnings every command prints."""
    cfg = _load(tmp_path, _CONFIG)
    notes = author_notes(cfg)
    lines = _CONFIG.splitlines()
    assert [(n.path, n.line) for n in notes] == [
        ("users[1].authors", lines.index('authors = ["Kaiming He", "Yann LeCun"]') + 1),
        ("users[2].keywords[1]", lines.index("""keywords = ["diffusion", 'author:"Kaiming He" OR vision']""") + 1),
        ("users[2].exclude[0]", lines.index('exclude = ["author:lecun"]') + 1),
    ]
    assert all(n.message.startswith(AUTHOR_NOTE) for n in notes)
    assert "text scrapes only carry a count" in AUTHOR_NOTE
    assert "never drops" in notes[2].message
    assert not cfg.warnings
    assert author_notes(_load(tmp_path, _CONFIG.split('[[users]]\nname = "bob"')[0])) == []
