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

The entries' text and ids are ``entries``; the feedgen/lxml calls ``atomxml``; feed files ``feedfile``. Their
public names stay importable from here.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from digest.errors import RenderError
from digest.models import Hit, Match, Paper, StoredPaper
from digest.render.atomxml import EPOCH
from digest.render.atomxml import SLOT_ALT as _SLOT_ALT
from digest.render.atomxml import SLOT_BODY as _SLOT_BODY
from digest.render.atomxml import SLOT_ID as _SLOT_ID
from digest.render.atomxml import SLOT_SELF as _SLOT_SELF
from digest.render.atomxml import SLOT_TITLE as _SLOT_TITLE
from digest.render.atomxml import TAIL as _TAIL
from digest.render.atomxml import atom_tree as _atom_tree
from digest.render.atomxml import entry_element as _entry_element
from digest.render.atomxml import escaped as _escaped
from digest.render.atomxml import generator as _generator
from digest.render.atomxml import in_feed as _in_feed
from digest.render.atomxml import serialise as _serialise
from digest.render.atomxml import xml_text as _xml_text
from digest.render.entries import VOTE_PARTS, FeedEntry, Note, entry_id, feed_entries, tag_uri
from digest.render.entries import checked_url as _url
from digest.render.entries import clean_text as _text
from digest.render.entries import middle as _middle
from digest.render.entries import note_for as _note
from digest.render.entries import plain_url as _plain_url
from digest.render.entries import utc as _utc
from digest.render.entries import vote_html as _vote_html
from digest.render.feedfile import feed_file, feed_slug, write_feed

if TYPE_CHECKING:
    from lxml import etree

    from digest.render.atomxml import FeedGenerator

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

MIDDLES = 50_000  # per-feed entry middles kept per run (EntryCache.middles): ~1 KB each


@dataclass(frozen=True, slots=True, eq=False)  # compared by identity: it is a run's scratch space
class EntryCache:
    """Atom ``<entry>`` elements built once per run and shared by every feed built with it.

    Keyed by (entry id, paper, first-seen time, suggested): everything an entry depends on except the per-user
    ``reason``, ``hits`` and vote links, which make the middle of the HTML content (the highlighted excerpt, the
    why line, the links; the id holds the authority, and a recorded id may differ from the one the paper gives
    today). ``suggested`` entries (a user's "Also for you" papers) differ in title and category.
    Filled by ``prepare_entries`` or lazily by ``build_feed``. ``elements`` are built with a slot where that
    middle goes; ``fragments`` holds each element's bytes as they appear inside a feed, cut at the slot, and
    the bytes of the entry as a feed without notes shows it; ``heads`` the feed headers cut at the per-feed
    slots (None: the slots did not come out intact, so such feeds are built as trees); ``seen`` what was
    derived from each FeedEntry object.
    """

    elements: dict[tuple[str, Paper, datetime, bool], etree._Element] = field(default_factory=dict, repr=False)
    ids: dict[tuple[str, Paper], str] = field(default_factory=dict, repr=False)  # entry_id() costs as much as a copy
    fragments: dict[tuple[str, Paper, datetime, bool], _Fragment] = field(default_factory=dict, repr=False)
    heads: dict[tuple[object, ...], tuple[bytes, ...] | None] = field(default_factory=dict, repr=False)
    seen: dict[int, _Seen] = field(default_factory=dict, repr=False)  # by id() of a FeedEntry
    # The per-feed middle (excerpt + why) as bytes, by (paper key, reason, hits, suggested): users whose keywords
    # hit a paper alike share it (at 2,000 users the excerpt was most of the feeds stage). Capped at MIDDLES
    # entries so a run of many users with distinct hits does not hold every middle; past it they are built each
    # time. The vote links, per user, are not part of it.
    middles: dict[tuple[str, str, tuple[Hit, ...], bool], bytes] = field(default_factory=dict, repr=False)


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
    suggested: _Fragment | None = None  # the entry as an "Also for you" paper


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


def _cached(cache: EntryCache, key: tuple[str, Paper, datetime, bool], eid: str, e: FeedEntry) -> etree._Element:
    """The cached element for ``e`` (``key`` is its cache key) with a slot for its content's middle, built on
    first use."""
    element = cache.elements.get(key)
    if element is None:
        element = _entry_element(eid, FeedEntry(e.paper, e.updated), slot=True, suggested=key[3])
        cache.elements[key] = element
    return element


def _from_cache(
    cache: EntryCache, eid: str, e: FeedEntry, note: Note, votes: tuple[str, str] | None, suggested: bool
) -> etree._Element:
    """A private copy of the cached element with this feed's middle and vote links in its content (the tree
    path)."""
    cached = _cached(cache, (eid, e.paper, _utc(e.updated), suggested), eid, e)
    content = cached.find("content")
    if content is None or (content.text or "").count(_SLOT_BODY) != 1:  # the slot string in the paper's own text
        return _entry_element(eid, e, note, votes=votes, suggested=suggested)
    element = copy.deepcopy(cached)
    middle = _middle(e.paper, *note, suggested) + _vote_html(votes)
    element.find("content").text = content.text.replace(_SLOT_BODY, middle)
    return element


def _paper_fragment(cache: EntryCache, eid: str, when: datetime, e: FeedEntry, suggested: bool = False) -> _Fragment:
    """The entry of ``e``'s paper as bytes inside a feed, serialised once per id, paper, time and kind (a
    suggestion or not), cut where its content's per-feed middle goes."""
    key = (eid, e.paper, when, suggested)
    found = cache.fragments.get(key)
    if found is None:
        data = _in_feed(_cached(cache, key, eid, e))
        slot = _SLOT_BODY.encode()
        plain = _middle(e.paper, "", ())
        if data.count(slot) == 1:
            before, _, after = data.partition(slot)
            found = _Fragment(before, after, before + _xml_text(plain) + after)
        else:  # the slot string in the paper's own text: such entries are built whole, every time
            entry = _entry_element(eid, FeedEntry(e.paper, e.updated), suggested=suggested)
            found = _Fragment(b"", b"", _in_feed(entry))
        cache.fragments[key] = found
    return found


_VOTE_BYTES = tuple(_xml_text(part) for part in VOTE_PARTS)


def _vote_bytes(votes: tuple[str, str]) -> bytes:
    """``vote_html(votes)`` as lxml writes it in the content's text, joined without escaping the usual URLs."""
    up, down = votes
    if _plain_url(up) and _plain_url(down):  # checked_url and both escapings leave them as they are
        return b"".join((_VOTE_BYTES[0], up.encode(), _VOTE_BYTES[1], down.encode(), _VOTE_BYTES[2]))
    return _xml_text(_vote_html(votes))


def _fragment(
    cache: EntryCache,
    authority: str,
    e: FeedEntry,
    notes: Mapping[str, Note] | None,
    votes: Mapping[str, tuple[str, str]] | None = None,
    suggested: Collection[str] = (),
) -> bytes:
    """The bytes of ``e``'s entry inside a feed, with this feed's note (why, highlights) and vote links in its
    content, marked as a suggestion when its paper is one of ``suggested``."""
    seen = _seen(cache, authority, e)
    flag = bool(suggested) and e.paper.key in suggested
    if flag:
        if seen.suggested is None:
            seen.suggested = _paper_fragment(cache, seen.eid, seen.when, e, True)
        found = seen.suggested
    else:
        if seen.fragment is None:
            seen.fragment = _paper_fragment(cache, seen.eid, seen.when, e)
        found = seen.fragment
    reason, hits = _note(e, notes)
    vote = votes.get(e.paper.key) if votes else None
    if not reason and not hits and vote is None:
        return found.plain
    if not found.before:
        return _in_feed(_entry_element(seen.eid, e, (reason, hits), votes=vote, suggested=flag))
    if not reason and not hits:
        middle = found.plain[len(found.before) : len(found.plain) - len(found.after)]
    else:
        key = (e.paper.key, reason, hits, flag)
        found_middle = cache.middles.get(key)
        if found_middle is None:
            found_middle = _xml_text(_middle(e.paper, reason, hits, flag))
            if len(cache.middles) < MIDDLES:
                cache.middles[key] = found_middle
        middle = found_middle
    if vote is None:
        return b"".join((found.before, middle, found.after))
    return b"".join((found.before, middle, _vote_bytes(vote), found.after))


def _head(cache: EntryCache, author: str, subtitle: str, lang: str, updated: datetime) -> tuple[bytes, ...] | None:
    """feedgen's header cut at the id, title, self-link and alternate-link slots, built once per run for each
    distinct rest."""
    key = (author, subtitle, lang, updated)
    if key in cache.heads:
        return cache.heads[key]
    fg = _generator(_SLOT_ID, _SLOT_TITLE, _SLOT_SELF, _SLOT_ALT, author, subtitle, lang, updated)
    data = _serialise(_atom_tree(fg)[1])
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
    votes: Mapping[str, tuple[str, str]] | None = None,
    suggested: Collection[str] = (),
) -> bytes:
    """The Atom document (UTF-8 bytes) for ``entries``: the same entries always give the same bytes.

    With ``cache`` (see ``prepare_entries``) the document is joined from bytes feedgen and lxml produced once
    per run; without, it is built and serialised as one feedgen tree. ``join=False`` builds the cached feed
    as one tree of copies of the cached elements (the slower method before byte joining, for comparison).
    All of them give the same bytes. ``notes`` (paper key -> (reason, hits)) is what this feed says about its
    papers (a user's feed: why each matched, the terms highlighted); an entry it does not name keeps its own.
    ``votes`` (paper key -> the feed's user's thumbs-up and thumbs-down URLs) adds those links to the entries'
    content; the papers in ``suggested`` are the user's "Also for you" papers: their entries' titles and
    categories say so, and their why line is labelled as a suggestion's.
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
        return _tree(chosen, fg, cache, notes, votes, suggested)
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
    parts += [_fragment(cache, authority, e, notes, votes, suggested) for _, _, e in chosen]
    parts.append(_TAIL)
    return b"".join(parts)


def _tree(
    chosen: list[tuple[str, datetime, FeedEntry]],
    fg: FeedGenerator,
    cache: EntryCache | None,
    notes: Mapping[str, Note] | None = None,
    votes: Mapping[str, tuple[str, str]] | None = None,
    suggested: Collection[str] = (),
) -> bytes:
    """The feed as one lxml tree: feedgen's header and each entry built (or, with ``cache``, copied)."""
    # The header comes from feedgen with no entries; entries are built (or copied) separately and appended,
    # exactly where feedgen's _create_atom would have put them.
    feed, doc = _atom_tree(fg)
    for eid, _, e in chosen:
        note, vote = _note(e, notes), votes.get(e.paper.key) if votes else None
        flag = e.paper.key in suggested
        if cache is None:
            feed.append(_entry_element(eid, e, note, votes=vote, suggested=flag))
        else:
            feed.append(_from_cache(cache, eid, e, note, vote, flag))
    return _serialise(doc)
