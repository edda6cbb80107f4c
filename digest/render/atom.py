"""Atom feeds (RFC 4287) of papers: one per user and one of all new papers, written atomically.

Feeds are a pure function of their entries: ids are tag URIs derived from the paper's identity (or, for
entries that carry one, the id recorded when a feed first showed the paper: see digest/feed_ids.py),
``updated`` is when a paper was first seen and the feed's ``updated`` is the newest entry's, so
rebuilding from the same data gives the same bytes and readers see no churn.

A run that writes many feeds builds each paper's ``<entry>`` once with feedgen (``prepare_entries``, or lazily
with an ``EntryCache``) and serialises it once, exactly as lxml writes it inside a feed; each feed is then the bytes
of a feedgen header (built once per run with placeholders for the per-feed id, title and self link) joined with
those entries. feedgen stays the source of truth for every byte; the join only skips rebuilding and re-serialising
the same trees, and tests/test_feeds.py checks it against the plain feedgen build.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import hashlib
import html
import io
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from feedgen.entry import FeedEntry as FeedgenEntry
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem

from digest import identity
from digest.errors import RenderError
from digest.models import Hit, Match, Paper, StoredPaper

if TYPE_CHECKING:
    from lxml import etree

__all__ = [
    "EntryCache",
    "FeedEntry",
    "Note",
    "build_feed",
    "entry_id",
    "feed_entries",
    "feed_file",
    "feed_slug",
    "prepare_entries",
    "tag_uri",
    "write_feed",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_AUTHORS = 10  # one paper lists 533 authors; a feed entry does not need them all
MIDDLES = 50_000  # per-feed entry middles kept per run (EntryCache.middles): ~1 KB each
EXCERPT_CHARS = 600  # the abstract shown in an entry's content is cut near this length (never inside a highlight)
SHOWN_AUTHORS = 3  # the content's byline names the first few, then "et al."
# Characters XML 1.0 forbids (lxml refuses them); whitespace runs collapse to one space.
_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff\ud800-\udfff]")
_WS = re.compile(r"\s+")
_ARXIV = re.compile(r"^(?:arxiv:)?(\d{4}\.\d{4,5}|[a-z][a-z.-]*/\d{7})(?:v\d+)?$", re.IGNORECASE)
_AUTHORITY = re.compile(r"^(?:[^@\s,:/]+@)?[a-z0-9-]+(?:\.[a-z0-9-]+)*,\d{4}(?:-\d{2}(?:-\d{2})?)?$", re.IGNORECASE)
# A URL that _url() returns unchanged (nothing to strip, quote or reject): skips urlsplit + quote per feed.
_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~/-]*)?")
# Printable ASCII but & < > (and " in attributes; newline too in text) is what lxml writes as it is; a value
# with any other character is escaped by lxml itself (_escaped), which also refuses what XML forbids.
_NOT_PLAIN_TEXT = re.compile("[^\n -%'-;=?-~]")
_NOT_PLAIN_ATTR = re.compile("[^ !#-%'-;=?-~]")
# Placeholders for what differs between the feeds of one run; never seen in real values (checked anyway).
_SLOT_ID = "tag:slot.invalid,2000:x-digest-slot-id"
_SLOT_TITLE = "x-digest-slot-title"
_SLOT_SELF = "https://slot.invalid/x-digest-slot-self.xml"
_SLOT_ALT = "https://slot.invalid/x-digest-slot-alternate.html"
_TAIL = b"</feed>\n"
# Where the per-feed part of an entry's HTML content (highlighted excerpt, why it matched) goes in a cached entry.
_SLOT_BODY = "x-digest-slot-body"


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


@dataclass(frozen=True, slots=True, eq=False)  # compared by identity: it is a run's scratch space
class EntryCache:
    """Atom ``<entry>`` elements built once per run and shared by every feed built with it.

    Keyed by (entry id, paper, first-seen time): everything an entry depends on except the per-user
    ``reason`` and ``hits``, which make the middle of the HTML content (the highlighted excerpt and the why
    line; the id holds the authority, and a recorded id may differ from the one the paper gives today).
    Filled by ``prepare_entries`` or lazily by ``build_feed``. ``elements`` are built with a slot where that
    middle goes; ``fragments`` holds each element's bytes as they appear inside a feed, cut at the slot, and
    the bytes of the entry as a feed without notes shows it; ``heads`` the feed headers cut at the per-feed
    slots (None: the slots did not come out intact, so such feeds are built as trees); ``seen`` what was
    derived from each FeedEntry object.
    """

    elements: dict[tuple[str, Paper, datetime], etree._Element] = field(default_factory=dict, repr=False)
    ids: dict[tuple[str, Paper], str] = field(default_factory=dict, repr=False)  # entry_id() costs as much as a copy
    fragments: dict[tuple[str, Paper, datetime], _Fragment] = field(default_factory=dict, repr=False)
    heads: dict[tuple[object, ...], tuple[bytes, ...] | None] = field(default_factory=dict, repr=False)
    seen: dict[int, _Seen] = field(default_factory=dict, repr=False)  # by id() of a FeedEntry
    # The per-feed middle (excerpt + why) as bytes, by (paper key, reason, hits): users whose keywords hit a
    # paper alike share it (at 2,000 users the excerpt was most of the feeds stage). Capped at MIDDLES entries
    # so a run of many users with distinct hits does not hold every middle; past it they are built each time.
    middles: dict[tuple[str, str, tuple[Hit, ...]], bytes] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class _Fragment:
    """An entry's bytes inside a feed, cut where the per-feed middle of its content goes."""

    before: bytes
    after: bytes
    plain: bytes  # the whole entry with the middle a feed without notes shows


@dataclass(slots=True, eq=False)
class _Seen:
    """What a cache derived from one FeedEntry object, found again by identity (see ``_seen``)."""

    entry: FeedEntry  # held, so no other object can take its id() while this record exists
    authority: str
    eid: str
    when: datetime
    fragment: _Fragment | None = None


def _cached_id(cache: EntryCache, authority: str, e: FeedEntry) -> str:
    """``e``'s recorded id, else the one derived from its paper (once per run)."""
    if e.fixed_id:
        return e.fixed_id
    eid = cache.ids.get((authority, e.paper))
    if eid is None:
        eid = cache.ids[authority, e.paper] = entry_id(e.paper, authority)
    return eid


def _seen(cache: EntryCache, authority: str, e: FeedEntry) -> _Seen:
    """The id, UTC time and entry bytes of ``e``, looked up by the object's identity.

    Callers pass the same FeedEntry objects feed after feed (FeedWriter keeps one per paper). Keying on the
    paper instead hashes every one of its fields, which in a run, with the papers pushed out of the CPU caches
    by rendering and sending in between, cost more than the rest of building a feed."""
    found = cache.seen.get(id(e))
    if found is None or found.authority != authority:
        found = cache.seen[id(e)] = _Seen(e, authority, _cached_id(cache, authority, e), _utc(e.updated))
    return found


def _text(value: object) -> str:
    return _WS.sub(" ", _BAD_XML.sub(" ", str(value))).strip()


def _url(url: str | None) -> str | None:
    if url and _PLAIN_URL.fullmatch(url):
        return url
    if not url or not (url := _text(url)) or " " in url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return quote(url, safe="/:?#[]@!$&*+,;=%~-._")


def _utc(when: datetime) -> datetime:
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


def feed_slug(name: str) -> str:
    """A file- and URL-safe name for a user's feed; distinct names never share a slug."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48]
    if slug != name:
        slug = f"{slug or 'user'}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
    return slug


def feed_file(name: str) -> str:
    """The file name of a user's feed in the feeds folder (the config refuses two feeds sharing one file)."""
    return f"{feed_slug(name)}.xml"


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


def _links(paper: Paper) -> tuple[str, str | None]:
    """The paper's Hugging Face page (or title search) and arXiv page."""
    links = identity.paper_links(paper)
    return links.hf, links.arxiv


def _select(
    entries: Iterable[FeedEntry], authority: str, max_entries: int, cache: EntryCache | None = None
) -> list[tuple[str, datetime, FeedEntry]]:
    """(id, UTC time, entry) for each paper once (at its earliest time), newest first, at most ``max_entries``."""
    by_id: dict[str, tuple[datetime, FeedEntry]] = {}
    for e in entries:
        if cache is None:
            eid, when = e.fixed_id or entry_id(e.paper, authority), _utc(e.updated)
        else:
            seen = _seen(cache, authority, e)
            eid, when = seen.eid, seen.when
        old = by_id.get(eid)
        if old is None or when < old[0]:
            by_id[eid] = (when, e)
    ordered = sorted(by_id.items(), key=lambda kv: (-kv[1][0].timestamp(), kv[0]))
    return [(eid, when, e) for eid, (when, e) in ordered[: max(max_entries, 0)]]


def _html(value: object) -> str:
    """Text for the entry's HTML content: cleaned like every other feed text, then HTML-escaped."""
    return html.escape(_text(value), quote=False)


def _byline(paper: Paper) -> str:
    """Organization, then the first few authors ("et al." for the rest; the count when only that is known)."""
    names = [n for n in (_text(a) for a in paper.authors) if n]
    total = max(paper.n_authors or 0, len(names))
    if names:
        authors = ", ".join(names[:SHOWN_AUTHORS]) + (" et al." if total > SHOWN_AUTHORS else "")
    else:
        authors = f"{total} author{'s' if total != 1 else ''}" if total else ""
    return " · ".join(s for s in (_text(paper.organization or ""), authors) if s)


def _content_parts(paper: Paper) -> tuple[str, str]:
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
    shown = [(label, href) for label, url in candidates if (href := _url(url))]
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


def _middle(paper: Paper, reason: str, hits: tuple[Hit, ...]) -> str:
    """The per-feed part of an entry's content: the highlighted abstract excerpt and why it matched."""
    excerpt = _excerpt(paper.abstract, hits)
    out = f"<p>{excerpt}</p>" if excerpt else ""
    if why := _html(reason):
        out += f"<p><b>Why it matched:</b> {why}</p>"
    return out


def _note(e: FeedEntry, notes: Mapping[str, Note] | None) -> Note:
    """Why ``e`` is in this feed and where it matched: the feed's note for its paper, else the entry's own."""
    if notes:
        found = notes.get(e.paper.key)
        if found is not None:
            return found
    return e.reason, e.hits


def _entry_element(eid: str, e: FeedEntry, note: Note | None = None, *, slot: bool = False) -> etree._Element:
    """One ``<entry>`` built with feedgen, with the link attributes feedgen 1.0 drops put back. Its HTML
    content's middle is ``note`` (default: the entry's reason and hits), or with ``slot`` a placeholder."""
    p = e.paper
    page, arxiv = _links(p)
    fe = FeedgenEntry()
    fe.id(eid)
    fe.title(_text(p.title) or "(untitled)")
    fe.updated(_utc(e.updated))
    if p.published:
        fe.published(datetime.combine(p.published, time(), UTC))
    links = [{"href": page, "rel": "alternate", "type": "text/html"}]
    if arxiv:
        links.append({"href": arxiv, "rel": "related", "type": "text/html", "title": "arXiv"})
    if project := _url(p.project_page or p.github_repo):
        links.append({"href": project, "rel": "related", "title": "project page"})
    fe.link(links)
    for name in [n for n in (_text(a) for a in p.authors[:MAX_AUTHORS]) if n]:
        fe.author({"name": name})
    head, tail = _content_parts(p)
    reason, hits = note if note is not None else (e.reason, e.hits)
    fe.content(head + (_SLOT_BODY if slot else _middle(p, reason, hits)) + tail, type="html")
    element = fe.atom_entry()
    # feedgen 1.0 drops rel/type/title from entry links (a shadowed variable in FeedEntry.atom_entry),
    # which leaves several implicit rel="alternate" links; set them on its element tree ourselves.
    for link_el, attrs in zip(element.iterfind("link"), links, strict=True):
        for name, value in attrs.items():
            link_el.set(name, value)
    return element


def _cached(cache: EntryCache, key: tuple[str, Paper, datetime], eid: str, e: FeedEntry) -> etree._Element:
    """The cached element for ``e`` (``key`` is its cache key) with a slot for its content's middle, built on
    first use."""
    element = cache.elements.get(key)
    if element is None:
        element = cache.elements[key] = _entry_element(eid, FeedEntry(e.paper, e.updated), slot=True)
    return element


def _from_cache(cache: EntryCache, eid: str, e: FeedEntry, note: Note) -> etree._Element:
    """A private copy of the cached element with this feed's middle in its content (the tree path)."""
    cached = _cached(cache, (eid, e.paper, _utc(e.updated)), eid, e)
    content = cached.find("content")
    if content is None or (content.text or "").count(_SLOT_BODY) != 1:  # the slot string in the paper's own text
        return _entry_element(eid, e, note)
    element = copy.deepcopy(cached)
    element.find("content").text = content.text.replace(_SLOT_BODY, _middle(e.paper, *note))
    return element


def _serialise(doc: etree._ElementTree) -> bytes:
    out = io.BytesIO()
    doc.write(out, pretty_print=True, xml_declaration=True, encoding="UTF-8")
    return out.getvalue()


def _escaped(value: str, *, attribute: bool = False) -> bytes:
    """``value`` as lxml writes it in element text (or a double-quoted attribute) of a UTF-8 document."""
    if not (_NOT_PLAIN_ATTR if attribute else _NOT_PLAIN_TEXT).search(value):
        return value.encode()
    element = xml_elem("x", a=value) if attribute else xml_elem("x")
    if not attribute:
        element.text = value
    out = io.BytesIO()
    element.getroottree().write(out, encoding="UTF-8")  # b'<x a="..."/>' or b"<x>...</x>"
    return out.getvalue()[6:-3] if attribute else out.getvalue()[3:-4]


def _generator(
    feed_id: str, title: str, self_href: str, alt_href: str, author: str, subtitle: str, lang: str, updated: datetime
) -> FeedGenerator:
    """The feed's header in feedgen; the arguments are already cleaned (``_text``, ``_url``)."""
    fg = FeedGenerator()
    fg.id(feed_id)
    fg.title(title)
    if subtitle:
        fg.subtitle(subtitle)
    fg.author({"name": author})
    fg.link(href=self_href, rel="self", type="application/atom+xml")
    fg.link(href=alt_href, rel="alternate", type="text/html")
    fg.language(lang)
    fg.generator("paper-digest")
    # feedgen defaults every updated to now(); the newest entry's time keeps rebuilds byte-identical.
    fg.updated(updated)
    return fg


def _in_feed(element: etree._Element) -> bytes:
    """``element`` serialised exactly as it appears inside a feed: appended to an empty feedgen feed and cut out
    (lxml indents an element by its depth, and the feed's last header line is followed by it, not by ``</feed>``)."""
    feed, doc = _generator(_SLOT_ID, _SLOT_TITLE, _SLOT_SELF, _SLOT_SELF, "a", "", "en", EPOCH)._create_atom()
    empty = _serialise(doc)
    feed.append(copy.deepcopy(element))
    full = _serialise(doc)
    start = len(empty) - len(_TAIL)
    if not (empty.endswith(_TAIL) and full.endswith(_TAIL) and full[:start] == empty[:start]):
        raise RenderError(
            "lxml no longer serialises a feed as header + entries + </feed>",
            "build feeds without an EntryCache (build_feed(..., cache=None)) and report the lxml version",
        )
    return full[start : -len(_TAIL)]


def _paper_fragment(cache: EntryCache, eid: str, when: datetime, e: FeedEntry) -> _Fragment:
    """The entry of ``e``'s paper as bytes inside a feed, serialised once per id, paper and time, cut where
    its content's per-feed middle goes."""
    key = (eid, e.paper, when)
    found = cache.fragments.get(key)
    if found is None:
        data = _in_feed(_cached(cache, key, eid, e))
        slot = _SLOT_BODY.encode()
        plain = _middle(e.paper, "", ())
        if data.count(slot) == 1:
            before, _, after = data.partition(slot)
            found = _Fragment(before, after, before + _xml_text(plain) + after)
        else:  # the slot string in the paper's own text: such entries are built whole, every time
            found = _Fragment(b"", b"", _in_feed(_entry_element(eid, FeedEntry(e.paper, e.updated))))
        cache.fragments[key] = found
    return found


def _xml_text(value: str) -> bytes:
    """``value`` as lxml writes it in element text (& < > escaped; the middle holds no CR and nothing XML
    forbids, so nothing else is)."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").encode()


def _fragment(cache: EntryCache, authority: str, e: FeedEntry, notes: Mapping[str, Note] | None) -> bytes:
    """The bytes of ``e``'s entry inside a feed, with this feed's note (why, highlights) in its content."""
    seen = _seen(cache, authority, e)
    if seen.fragment is None:
        seen.fragment = _paper_fragment(cache, seen.eid, seen.when, e)
    found = seen.fragment
    reason, hits = _note(e, notes)
    if not reason and not hits:
        return found.plain
    if not found.before:
        return _in_feed(_entry_element(seen.eid, e, (reason, hits)))
    key = (e.paper.key, reason, hits)
    middle = cache.middles.get(key)
    if middle is None:
        middle = _xml_text(_middle(e.paper, reason, hits))
        if len(cache.middles) < MIDDLES:
            cache.middles[key] = middle
    return b"".join((found.before, middle, found.after))


def _head(cache: EntryCache, author: str, subtitle: str, lang: str, updated: datetime) -> tuple[bytes, ...] | None:
    """feedgen's header cut at the id, title, self-link and alternate-link slots, built once per run for each
    distinct rest."""
    key = (author, subtitle, lang, updated)
    if key in cache.heads:
        return cache.heads[key]
    fg = _generator(_SLOT_ID, _SLOT_TITLE, _SLOT_SELF, _SLOT_ALT, author, subtitle, lang, updated)
    data = _serialise(fg._create_atom()[1])
    slots = [s.encode() for s in (_SLOT_ID, _SLOT_TITLE, _SLOT_SELF, _SLOT_ALT)]
    pieces = None
    if data.endswith(_TAIL) and all(data.count(s) == 1 for s in slots):
        at = [data.index(s) for s in slots]
        if at == sorted(at):
            ends = [i + len(s) for i, s in zip(at, slots, strict=True)]
            pieces = (data[: at[0]], *(data[ends[n] : at[n + 1]] for n in range(3)), data[ends[3] : -len(_TAIL)])
    cache.heads[key] = pieces
    return pieces


def prepare_entries(
    items: Iterable[FeedEntry | StoredPaper | Match | Paper],
    *,
    authority: str,
    first_seen: Mapping[str, datetime] | None = None,
    cache: EntryCache | None = None,
) -> EntryCache:
    """Build and serialise each paper's ``<entry>`` once per run; pass the result to ``build_feed(..., cache=)``."""
    cache = EntryCache() if cache is None else cache
    for e in feed_entries(items, first_seen):
        _paper_fragment(cache, _cached_id(cache, authority, e), _utc(e.updated), e)
    return cache


def build_feed(
    entries: Iterable[FeedEntry],
    *,
    feed_id: str,
    title: str,
    self_url: str,
    alternate_url: str,
    authority: str,
    author: str = "paper-digest",
    subtitle: str | None = None,
    max_entries: int = 50,
    lang: str = "en",
    cache: EntryCache | None = None,
    join: bool = True,
    notes: Mapping[str, Note] | None = None,
) -> bytes:
    """The Atom document (UTF-8 bytes) for ``entries``: the same entries always give the same bytes.

    With ``cache`` (see ``prepare_entries``) the document is joined from bytes feedgen and lxml produced once
    per run; without, it is built and serialised as one feedgen tree. ``join=False`` builds the cached feed
    as one tree of copies of the cached elements (the slower method before byte joining, for comparison).
    All of them give the same bytes. ``notes`` (paper key -> (reason, hits)) is what this feed says about its
    papers (a user's feed: why each matched, the terms highlighted); an entry it does not name keeps its own.
    """
    self_href, alt_href = _url(self_url), _url(alternate_url)
    if self_href is None or alt_href is None:
        raise RenderError(
            f"feed URLs must be http(s): self={self_url!r} alternate={alternate_url!r}", "fix the feed base URL"
        )
    chosen = _select(entries, authority, max_entries, cache)
    title, author = _text(title) or "paper-digest", _text(author) or "paper-digest"
    subtitle = _text(subtitle) if subtitle else ""
    updated = max((when for _, when, _ in chosen), default=EPOCH)
    head = _head(cache, author, subtitle, lang, updated) if cache is not None and join and feed_id else None
    if head is None or cache is None:  # no cache, not joining, or an id feedgen refuses: the tree feedgen builds
        fg = _generator(feed_id, title, self_href, alt_href, author, subtitle, lang, updated)
        return _tree(chosen, fg, cache, notes)
    parts = [
        head[0],
        _escaped(feed_id),
        head[1],
        _escaped(title),
        head[2],
        _escaped(self_href, attribute=True),
        head[3],
        _escaped(alt_href, attribute=True),
        head[4],
    ]
    parts += [_fragment(cache, authority, e, notes) for _, _, e in chosen]
    parts.append(_TAIL)
    return b"".join(parts)


def _tree(
    chosen: list[tuple[str, datetime, FeedEntry]],
    fg: FeedGenerator,
    cache: EntryCache | None,
    notes: Mapping[str, Note] | None = None,
) -> bytes:
    """The feed as one lxml tree: feedgen's header and each entry built (or, with ``cache``, copied)."""
    # The header comes from feedgen with no entries; entries are built (or copied) separately and appended,
    # exactly where feedgen's _create_atom would have put them.
    feed, doc = fg._create_atom()
    for eid, _, e in chosen:
        note = _note(e, notes)
        feed.append(_entry_element(eid, e, note) if cache is None else _from_cache(cache, eid, e, note))
    return _serialise(doc)


def write_feed(path: Path, data: bytes, *, durable: bool = True) -> bool:
    """Write ``data`` to ``path`` atomically (temp file + rename); False when the file already held it.

    ``durable=False`` skips the fsync: readers still never see a half-written file, but after a power cut
    the file may be empty until it is written again."""
    target = os.fspath(path)
    try:
        try:
            old = os.stat(target)
        except FileNotFoundError:
            old = None
        if old is not None and old.st_size == len(data):
            with open(target, "rb") as f:
                if f.read() == data:
                    return False
        mode = old.st_mode & 0o777 if old is not None else 0o644  # readers (a web server) need the usual mode
        # A name of our own per process (feeds are written under the run lock); no mkstemp/chmod per file,
        # which cost more than building the feed when a run writes 10,000 of them. Plain os calls and no mkdir
        # per file (only when the folder is missing): ~15 us less per changed feed.
        folder, name = os.path.split(target)
        tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        try:
            fd = os.open(tmp, flags, mode)
        except FileNotFoundError:  # the first feed of a new folder
            os.makedirs(folder, exist_ok=True)
            fd = os.open(tmp, flags, mode)
        try:
            try:
                os.fchmod(fd, mode)  # os.open applies the umask
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise RenderError(
            f"cannot write feed {path}: {exc.strerror or exc}", "check that the feed folder exists and is writable"
        ) from exc
    return True
