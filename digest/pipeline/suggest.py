"""`digest suggest`: edits to a keyword profile that the user's votes argue for, shown with their evidence.

Two kinds, never applied automatically (the profile is the user's text):
  * an exclusion for a term behind repeated 👎: it occurs in at least ``min_evidence`` papers the keywords
    matched and the user voted down, and in no paper they voted up;
  * an addition for a term frequent in papers the user voted up that the keywords did not match (suggestions
    they liked, imported ratings), and in no paper they voted down.
Each proposal is parsed by the query parser and tried with the real matcher on every rated paper, so what it
would have added or removed is computed, not guessed.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from digest import config, matching, store
from digest.errors import QueryError
from digest.models import Paper, Profile
from digest.pipeline.feedback import StoredVotes

__all__ = ["ProfileEdit", "SuggestReport", "suggest_edits"]

# Words that say nothing about a topic in paper titles and abstracts (with the profile's own words, never
# proposed): English function words and the vocabulary of every abstract.
_STOP_TEXT = """
a about above after again against all also among an and any are as at be been being between both but by can
could did do does doing during each few for from further had has have having here how however if in into is
it its itself just may more most much new no nor not novel of on only or other our ours out over own paper
papers per propose proposed proposes results same show shows so some such than that the their them then
there these they this those through to under until up use used uses using very via was we well were what
when where which while who why will with within without would yet approach approaches method methods model
models performance task tasks work based data dataset datasets experiments demonstrate existing state art
first across different large framework including significantly significant two three one achieve achieves
achieving furthermore moreover recent recently extensive study studies introduce introduces present presents
et al vs ie eg
"""
_STOP = frozenset(_STOP_TEXT.split())
# Two characters at least ("kv", "3d", "rl" name topics), one of them a letter.
_WORD = re.compile(r"(?=[a-z0-9+-]*[a-z])[a-z0-9][a-z0-9+-]*[a-z0-9+]")


@dataclass(frozen=True, slots=True)
class ProfileEdit:
    """One proposed edit: a query to add to ``keywords`` or to ``exclude``, with its evidence."""

    kind: str  # "add" | "exclude"
    query: str  # as it would be written in the profile (parsed by the query parser)
    evidence: int  # votes for it: 👍 papers it would add, or 👎 papers it would remove
    added: tuple[str, ...] = ()  # titles of rated papers it would have added (keywords) ...
    removed: tuple[str, ...] = ()  # ... or removed (exclude), whatever their vote
    against: int = 0  # of those, papers voted the other way

    def line(self) -> str:
        """The edit as TOML to paste, with its evidence as a comment."""
        key = "keywords" if self.kind == "add" else "exclude"
        vote = "👍" if self.kind == "add" else "👎"
        return f"{key} += [{_toml(self.query)}]  # {self.evidence} {vote}, {self.against} against"


@dataclass(frozen=True, slots=True)
class SuggestReport:
    """What `digest suggest` found for one user."""

    user: str
    up: int
    down: int
    edits: tuple[ProfileEdit, ...]


def _toml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _terms(paper: Paper) -> set[str]:
    """The paper's candidate terms: words and two-word phrases of its title and abstract, minus stop words."""
    words = _WORD.findall(f"{paper.title} {paper.abstract}".lower())
    found = {w for w in words if w not in _STOP}
    found |= {f"{a} {b}" for a, b in itertools.pairwise(words) if a not in _STOP and b not in _STOP}
    return found


def _profile_words(profile: Profile) -> set[str]:
    return set(_WORD.findall(" ".join((*profile.keywords, *profile.exclude)).lower()))


def _query_for(term: str) -> str:
    return f'"{term}"' if " " in term or "-" in term else term


def _matched(profile: Profile, papers: Sequence[Paper]) -> set[str]:
    return {m.paper.key for m in matching.match_profile(profile, papers)} if papers else set()


def _weight(paper: Paper, term: str) -> int:
    """How strongly a paper carries a term: twice in its title, once in its abstract."""
    return 2 * paper.title.lower().count(term) + paper.abstract.lower().count(term)


def _candidates(
    liked: Sequence[Paper], disliked: Sequence[Paper], matched: set[str], known: set[str], *, kind: str, least: int
) -> list[tuple[str, int]]:
    """Terms with at least ``least`` papers of evidence and none against, best first."""
    if kind == "exclude":
        evidence = [p for p in disliked if p.key in matched]
        against = list(liked)
    else:
        evidence = [p for p in liked if p.key not in matched]
        against = list(disliked)
    counts: Counter[str] = Counter()
    for paper in evidence:
        counts.update(_terms(paper))
    blocked = set().union(*(_terms(p) for p in against)) if against else set()
    found = [(t, n) for t, n in counts.items() if n >= least and t not in blocked and not (set(t.split()) & known)]
    weight = {t: sum(_weight(p, t) for p in evidence) for t, _ in found}
    # More papers first; then the term they carry most (titles count twice), a phrase before a word.
    return sorted(found, key=lambda item: (-item[1], -weight[item[0]], -item[0].count(" "), item[0]))


def suggest_edits(cfg: config.Config, user: str, *, min_evidence: int = 2, limit: int = 5) -> SuggestReport:
    """The edits the user's votes argue for; raises ConfigError for an unknown user."""
    profile = cfg.user(user).profile()
    with contextlib.closing(store.open_store(cfg.digest.store, readonly=True)) as conn:
        votes = StoredVotes(conn, [user])[user]
    liked = [v.paper for v in votes if v.value > 0]
    disliked = [v.paper for v in votes if v.value < 0]
    rated = [*liked, *disliked]
    up = {p.key for p in liked}
    matched = _matched(profile, rated)
    known = _profile_words(profile)
    edits: list[ProfileEdit] = []
    effects: set[tuple[tuple[str, ...], tuple[str, ...]] | None] = set()
    for kind in ("exclude", "add"):
        made = 0
        for term, _count in _candidates(liked, disliked, matched, known, kind=kind, least=min_evidence):
            edit = _try(profile, rated, matched, up, _query_for(term), kind=kind)
            effect = (edit.added, edit.removed) if edit is not None else None
            # One edit per effect: terms that would change the same papers are the same advice.
            if edit is not None and edit.evidence >= min_evidence and effect not in effects:
                edits.append(edit)
                effects.add(effect)
                made += 1
            if made >= limit:
                break
    return SuggestReport(user, len(liked), len(disliked), tuple(edits))


def _try(
    profile: Profile, rated: Sequence[Paper], matched: set[str], up: set[str], query: str, *, kind: str
) -> ProfileEdit | None:
    """The edit's effect on the rated papers, computed by the real parser and matcher (None if it does not
    parse or changes nothing)."""
    try:
        matching.parse_query(query)
    except QueryError:
        return None
    if kind == "exclude":
        after = _matched(replace(profile, exclude=(*profile.exclude, query)), rated)
        changed = [p for p in rated if p.key in matched and p.key not in after]
        evidence = sum(1 for p in changed if p.key not in up)
    else:
        after = _matched(replace(profile, keywords=(*profile.keywords, query)), rated)
        changed = [p for p in rated if p.key in after and p.key not in matched]
        evidence = sum(1 for p in changed if p.key in up)
    if not changed:
        return None
    titles = tuple(p.title for p in changed)
    return ProfileEdit(
        kind, query, evidence, added=titles if kind == "add" else (), removed=titles if kind == "exclude" else (),
        against=len(changed) - evidence,
    )  # fmt: skip


def describe(report: SuggestReport, *, show: int = 3) -> Iterable[str]:
    """The report as text to read and paste."""
    yield f"# {report.user}: {report.up} 👍 and {report.down} 👎 so far"
    if not report.edits:
        yield "# no edit has enough evidence yet (each needs repeated votes and none against)"
        return
    for edit in report.edits:
        yield edit.line()
        papers = edit.added or edit.removed
        verb = "would have added" if edit.kind == "add" else "would have removed"
        for title in papers[:show]:
            yield f"#   {verb}: {title}"
        if len(papers) > show:
            yield f"#   ... and {len(papers) - show} more"
