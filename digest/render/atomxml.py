"""The feedgen (and lxml) adapter for Atom feeds: one ``<entry>`` element from a ``FeedEntry``, a feed's header,
and the bytes lxml writes for them, exactly as they appear inside a feed, so feeds can be joined from bytes
serialised once (see ``atom``). Every use of feedgen and lxml is here.
"""

from __future__ import annotations

import copy
import io
import re
from datetime import UTC, datetime, time
from typing import TYPE_CHECKING

from feedgen.entry import FeedEntry as FeedgenEntry
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem

from digest.errors import RenderError
from digest.render.entries import SUGGESTED, FeedEntry, Note
from digest.render.entries import checked_url as _url
from digest.render.entries import clean_text as _text
from digest.render.entries import content_parts as _content_parts
from digest.render.entries import middle as _middle
from digest.render.entries import paper_pages as _links
from digest.render.entries import utc as _utc
from digest.render.entries import vote_html as _vote_html

if TYPE_CHECKING:
    from lxml import etree

__all__ = ["EPOCH", "MAX_AUTHORS", "SLOT_ALT", "SLOT_BODY", "SLOT_ID", "SLOT_SELF", "SLOT_TITLE", "TAIL"]
__all__ += ["atom_tree", "entry_element", "escaped", "generator", "in_feed", "serialise", "xml_text"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_AUTHORS = 10  # one paper lists 533 authors; a feed entry does not need them all
# Printable ASCII but & < > (and " in attributes; newline too in text) is what lxml writes as it is; a value
# with any other character is escaped by lxml itself (``escaped``), which also refuses what XML forbids.
_NOT_PLAIN_TEXT = re.compile("[^\n -%'-;=?-~]")
_NOT_PLAIN_ATTR = re.compile("[^ !#-%'-;=?-~]")
# Placeholders for what differs between the feeds of one run; never seen in real values (checked anyway).
SLOT_ID = "tag:slot.invalid,2000:x-digest-slot-id"
SLOT_TITLE = "x-digest-slot-title"
SLOT_SELF = "https://slot.invalid/x-digest-slot-self.xml"
SLOT_ALT = "https://slot.invalid/x-digest-slot-alternate.html"
TAIL = b"</feed>\n"
# Where the per-feed part of an entry's HTML content (highlighted excerpt, why it matched, the user's vote links)
# goes in a cached entry.
SLOT_BODY = "x-digest-slot-body"


def entry_element(
    eid: str,
    e: FeedEntry,
    note: Note | None = None,
    *,
    slot: bool = False,
    votes: tuple[str, str] | None = None,
    suggested: bool = False,
) -> etree._Element:
    """One ``<entry>`` built with feedgen, with the link attributes feedgen 1.0 drops put back. Its HTML
    content's middle is ``note`` (default: the entry's reason and hits) and the ``votes`` links, or with ``slot``
    a placeholder. A ``suggested`` entry (an "Also for you" paper of a user's feed) has its title prefixed and a
    category saying so."""
    p = e.paper
    page, arxiv = _links(p)
    fe = FeedgenEntry()
    fe.id(eid)
    fe.title((f"{SUGGESTED}: " if suggested else "") + (_text(p.title) or "(untitled)"))
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
    if suggested:
        fe.category({"term": "suggestion", "label": SUGGESTED})
    head, tail = _content_parts(p)
    reason, hits = note if note is not None else (e.reason, e.hits)
    body = SLOT_BODY if slot else _middle(p, reason, hits, suggested) + _vote_html(votes)
    fe.content(head + body + tail, type="html")
    element = fe.atom_entry()
    # feedgen 1.0 drops rel/type/title from entry links (a shadowed variable in FeedEntry.atom_entry),
    # which leaves several implicit rel="alternate" links; set them on its element tree ourselves.
    for link_el, attrs in zip(element.iterfind("link"), links, strict=True):
        for name, value in attrs.items():
            link_el.set(name, value)
    return element


def serialise(doc: etree._ElementTree) -> bytes:
    out = io.BytesIO()
    doc.write(out, pretty_print=True, xml_declaration=True, encoding="UTF-8")
    return out.getvalue()


def escaped(value: str, *, attribute: bool = False) -> bytes:
    """``value`` as lxml writes it in element text (or a double-quoted attribute) of a UTF-8 document."""
    if not (_NOT_PLAIN_ATTR if attribute else _NOT_PLAIN_TEXT).search(value):
        return value.encode()
    element = xml_elem("x", a=value) if attribute else xml_elem("x")
    if not attribute:
        element.text = value
    out = io.BytesIO()
    element.getroottree().write(out, encoding="UTF-8")  # b'<x a="..."/>' or b"<x>...</x>"
    return out.getvalue()[6:-3] if attribute else out.getvalue()[3:-4]


def generator(
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


def in_feed(element: etree._Element) -> bytes:
    """``element`` serialised exactly as it appears inside a feed: appended to an empty feedgen feed and cut out
    (lxml indents an element by its depth, and the feed's last header line is followed by it, not by ``</feed>``)."""
    feed, doc = generator(SLOT_ID, SLOT_TITLE, SLOT_SELF, SLOT_SELF, "a", "", "en", EPOCH)._create_atom()
    empty = serialise(doc)
    feed.append(copy.deepcopy(element))
    full = serialise(doc)
    start = len(empty) - len(TAIL)
    if not (empty.endswith(TAIL) and full.endswith(TAIL) and full[:start] == empty[:start]):
        raise RenderError(
            "lxml no longer serialises a feed as header + entries + </feed>",
            "build feeds without an EntryCache (build_feed(..., cache=None)) and report the lxml version",
        )
    return full[start : -len(TAIL)]


def xml_text(value: str) -> bytes:
    """``value`` as lxml writes it in element text (& < > escaped; the middle holds no CR and nothing XML
    forbids, so nothing else is)."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").encode()


def atom_tree(fg: FeedGenerator) -> tuple[etree._Element, etree._ElementTree]:
    """feedgen's feed element (no entries yet: append them) and its document."""
    return fg._create_atom()
