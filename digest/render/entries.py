"""What a feed entry says, before any XML: ``FeedEntry`` (one paper in a feed), its stable id (``entry_id``, a tag
URI), and its HTML content: byline, TL;DR and links around a per-feed *middle* (the abstract excerpt with the
profile's terms highlighted, and why it matched), followed by the feed's user's vote links (``vote_html``). Text
is cleaned of what XML 1.0 forbids and URLs checked here, so the feedgen adapter (``atomxml``) only assembles
elements. Stdlib only (and the paper-links rule).
"""

from __future__ import annotations

import bisect
import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache, partial
from urllib.parse import quote, urlsplit

from digest import identity
from digest.errors import RenderError
from digest.models import Hit, Match, Paper, StoredPaper

__all__ = ["FeedEntry", "Note", "checked_url", "clean_text", "content_parts", "entry_id", "feed_entries", "middle"]
__all__ += ["SUGGESTED", "VOTE_PARTS", "note_for", "paper_pages", "plain_url", "tag_uri", "utc", "vote_html"]

EXCERPT_CHARS = 600  # the abstract shown in an entry's content is cut near this length (never inside a highlight)
SHOWN_AUTHORS = 3  # the content's byline names the first few, then "et al."
SUGGESTED = "Also for you"  # an "Also for you" entry: its title's prefix, its category's label, its why line's label
# A user's vote links in an entry's content, around the thumbs-up and the thumbs-down URL (escaped).
VOTE_PARTS = (
    '<p><a href="',
    '" title="More like this">👍 More like this</a> · <a href="',
    '" title="Less like this">👎 Less like this</a></p>',
)
# Characters XML 1.0 forbids (lxml refuses them); whitespace runs collapse to one space.
_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff\ud800-\udfff]")
_WS = re.compile(r"\s+")
_ARXIV = re.compile(r"^(?:arxiv:)?(\d{4}\.\d{4,5}|[a-z][a-z.-]*/\d{7})(?:v\d+)?$", re.IGNORECASE)
_AUTHORITY = re.compile(r"^(?:[^@\s,:/]+@)?[a-z0-9-]+(?:\.[a-z0-9-]+)*,\d{4}(?:-\d{2}(?:-\d{2})?)?$", re.IGNORECASE)
# A URL that checked_url() returns unchanged (nothing to strip, quote or reject): skips urlsplit + quote per feed.
_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~/-]*)?")


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One paper in a feed; ``updated`` is when it was first seen (never the build time).

    ``fixed_id`` is the entry id recorded when a feed first showed the paper (digest/feed_ids.py); empty, the
    id is derived from the paper with ``entry_id``. A recorded id outlives config changes and re-keying."""

    paper: Paper
    updated: datetime
    reason: str = ""  # why it matched, for per-user feeds
    fixed_id: str = ""
    hits: tuple[Hit, ...] = ()  # where the profile's terms matched: highlighted in the abstract excerpt


# What one feed adds to an entry: why it matched and where (per-user feeds), by paper key (see ``build_feed``).
Note = tuple[str, tuple[Hit, ...]]


def clean_text(value: object) -> str:
    return _WS.sub(" ", _BAD_XML.sub(" ", str(value))).strip()


def plain_url(url: str) -> bool:
    """Whether ``checked_url`` returns ``url`` as it is, and HTML and XML escaping leave it so."""
    return _PLAIN_URL.fullmatch(url) is not None


def checked_url(url: str | None) -> str | None:
    if url and _PLAIN_URL.fullmatch(url):
        return url
    if not url or not (url := clean_text(url)) or " " in url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return quote(url, safe="/:?#[]@!$&*+,;=%~-._")


def utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def tag_uri(authority: str, specific: str) -> str:
    """An RFC 4151 tag URI, e.g. ``tag_uri("digest.example.org,2024", "feed/alice")``."""
    if not _AUTHORITY.match(authority):
        raise RenderError(
            f"feed id authority {authority!r} is not 'domain,YYYY'",
            "use a domain you control and the year you owned it, e.g. 'digest.example.org,2024'",
        )
    return f"tag:{authority}:{quote(specific, safe='/:-._~')}"


def entry_id(paper: Paper, authority: str) -> str:
    """A stable entry id: the version-less arXiv id when known, else the paper's title-hash key."""
    for candidate in (paper.arxiv_id, paper.key):
        m = _ARXIV.match(candidate or "")
        if m:
            return tag_uri(authority, f"paper/arxiv/{m.group(1)}")
    kind, _, rest = paper.key.partition(":")
    return tag_uri(authority, f"paper/{kind}/{rest}" if rest else f"paper/key/{paper.key}")


def feed_entries(
    items: Iterable[FeedEntry | StoredPaper | Match | Paper],
    first_seen: Mapping[str, datetime] | None = None,
    *,
    ids: Mapping[str, str] | None = None,
) -> list[FeedEntry]:
    """Feed entries from stored papers (their ``first_seen``) or matches/papers plus a key -> first-seen map;
    ``ids`` (paper key -> recorded entry id) fixes the ids of the papers it holds."""
    out = []
    ids = ids or {}
    for item in items:
        if isinstance(item, FeedEntry):
            out.append(item)
        elif isinstance(item, StoredPaper):
            out.append(FeedEntry(item.paper, item.first_seen, fixed_id=ids.get(item.paper.key, "")))
        else:
            paper, reason, hits = (item.paper, item.reason, item.hits) if isinstance(item, Match) else (item, "", ())
            if first_seen is None or paper.key not in first_seen:
                raise RenderError(
                    f"no first-seen time for paper {paper.key}",
                    "pass first_seen={key: datetime} from the store so feed dates come from the data",
                )
            out.append(FeedEntry(paper, first_seen[paper.key], reason, ids.get(paper.key, ""), hits))
    return out


def paper_pages(paper: Paper) -> tuple[str, str | None]:
    """The paper's Hugging Face page (or title search) and arXiv page."""
    links = identity.paper_links(paper)
    return links.hf, links.arxiv


def _html(value: object) -> str:
    """Text for the entry's HTML content: cleaned like every other feed text, then HTML-escaped."""
    return html.escape(clean_text(value), quote=False)


def _byline(paper: Paper) -> str:
    """Organization, then the first few authors ("et al." for the rest; the count when only that is known)."""
    names = [n for n in (clean_text(a) for a in paper.authors) if n]
    total = max(paper.n_authors or 0, len(names))
    if names:
        authors = ", ".join(names[:SHOWN_AUTHORS]) + (" et al." if total > SHOWN_AUTHORS else "")
    else:
        authors = f"{total} author{'s' if total != 1 else ''}" if total else ""
    return " · ".join(s for s in (clean_text(paper.organization or ""), authors) if s)


def content_parts(paper: Paper) -> tuple[str, str]:
    """The HTML content around its per-feed middle: byline and TL;DR before it, the links after."""
    head = []
    if byline := _byline(paper):
        head.append(f"<p>{html.escape(byline, False)}</p>")
    if tldr := _html(paper.ai_summary or ""):
        head.append(f"<p><b>TL;DR</b> <small>(Hugging Face's AI summary)</small>: {tldr}</p>")
    links = identity.paper_links(paper)
    code = "Code"
    if links.code_stars is not None:
        code = f"Code ★{links.code_stars:,}"
    candidates = [("PDF", links.pdf), ("arXiv", links.arxiv), ("Hugging Face", links.hf), (code, links.code)]
    candidates.append(("Project page", links.project))
    shown = [(label, href) for label, url in candidates if (href := checked_url(url))]
    tail = " · ".join(f'<a href="{html.escape(href)}">{html.escape(label, False)}</a>' for label, href in shown)
    return "".join(head), f"<p>{tail}</p>" if tail else ""


_SPACE = re.compile(r"\s")


@lru_cache(maxsize=8192)
def _abstract_text(abstract: str) -> tuple[str, tuple[int, ...], bool, int, bool]:
    """Once per abstract (its hash is kept in the string): the text with each character XML forbids and each
    whitespace character made one space (offsets unchanged, so hits still point at their terms), where its
    spaces are, whether it has runs of them to collapse, its length without trailing spaces, and whether any of
    it needs HTML escaping."""
    text = _SPACE.sub(" ", _BAD_XML.sub(" ", abstract))
    spaces = tuple(i for i, c in enumerate(text) if c == " ")
    return text, spaces, "  " in text, len(text.rstrip()), any(c in text for c in "&<>")


def _excerpt(abstract: str, hits: tuple[Hit, ...], limit: int = EXCERPT_CHARS) -> str:
    """The abstract as HTML, cut at a word boundary near ``limit`` (never inside a highlight), the matched
    terms in ``<mark><b>``; when the first highlight lies past the cut, the excerpt starts a little before it."""
    text, spaces, runs, size, special = _abstract_text(abstract)
    esc = partial(html.escape, quote=False) if special else str
    spans: list[list[int]] = []
    for start, end in sorted((max(h.start, 0), min(h.end, len(text))) for h in hits if h.field == "abstract"):
        if start >= end:
            continue
        if spans and start <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    begin, end = 0, len(text)
    if spans and spans[0][1] > limit - limit // 4:
        first = spans[0][0]
        i = bisect.bisect_left(spaces, max(first - limit // 4, 0))
        begin = spaces[i] + 1 if i < len(spaces) and spaces[i] < first else first
    if size - begin > limit:
        i = bisect.bisect_right(spaces, begin + limit) - 1
        cut = spaces[i] if i >= 0 and spaces[i] >= begin + limit // 2 else begin + limit
        for start, stop in spans:
            if start < cut < stop:  # a highlighted phrase is never cut in half
                cut = stop
        end = cut
    pieces, pos = (["… "] if begin else []), begin
    for start, stop in spans:
        if start >= end:
            break
        if start < begin:
            continue
        # <b> inside <mark>: sanitizers that drop <mark> (feedparser's, and readers built on it) keep the bold.
        pieces += [esc(text[pos:start]), "<mark><b>", esc(text[start:stop])]
        pieces.append("</b></mark>")
        pos = stop
    pieces.append(esc(text[pos:end]))
    out = "".join(pieces)
    out = (_WS.sub(" ", out) if runs else out).strip()
    if out and end < size:
        out += " …"
    return out


def middle(paper: Paper, reason: str, hits: tuple[Hit, ...], suggested: bool = False) -> str:
    """The per-feed part of an entry's content: the highlighted abstract excerpt and why it matched (or, for an
    "Also for you" suggestion, why it is suggested)."""
    excerpt = _excerpt(paper.abstract, hits)
    out = f"<p>{excerpt}</p>" if excerpt else ""
    if why := _html(reason):
        out += f"<p><b>{SUGGESTED if suggested else 'Why it matched'}:</b> {why}</p>"
    return out


def vote_html(votes: tuple[str, str] | None) -> str:
    """A user's thumbs-up and thumbs-down links of an entry (after its middle, before its links); "" without them
    or when either is not an http(s) URL."""
    if not votes:
        return ""
    up, down = checked_url(votes[0]), checked_url(votes[1])
    if up is None or down is None:
        return ""
    return html.escape(up).join((VOTE_PARTS[0], html.escape(down).join(VOTE_PARTS[1:])))


def note_for(e: FeedEntry, notes: Mapping[str, Note] | None) -> Note:
    """Why ``e`` is in this feed and where it matched: the feed's note for its paper, else the entry's own."""
    if notes:
        found = notes.get(e.paper.key)
        if found is not None:
            return found
    return e.reason, e.hits
