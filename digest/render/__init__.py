"""Rendering: digests (Markdown, HTML, text; ``digest``, from the fragments ``prepare`` renders once per run with
the Jinja ``environment``; what a paper shows is ``papers``), Atom feeds (``atom``: entries in ``entries``, the
feedgen adapter ``atomxml``, files ``feedfile``), the text-mapping helpers they share (``textmap``)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from digest.identity import paper_links
    from digest.render.atom import EntryCache, build_feed
    from digest.render.digest import DigestLinks, message_size_bound, render_digest, render_page, render_part
    from digest.render.entries import FeedEntry, entry_id, feed_entries, tag_uri
    from digest.render.environment import make_environment, templates_dirs
    from digest.render.feedfile import feed_file, feed_slug, write_feed
    from digest.render.papers import anchor, paper_context
    from digest.render.prepare import RenderCache, RenderOptions, prepare_papers
    from digest.render.textmap import html_size_estimate, safe_url

__all__ = [
    "DigestLinks",
    "EntryCache",
    "FeedEntry",
    "RenderCache",
    "RenderOptions",
    "anchor",
    "build_feed",
    "entry_id",
    "feed_entries",
    "feed_file",
    "feed_slug",
    "html_size_estimate",
    "make_environment",
    "message_size_bound",
    "paper_context",
    "paper_links",
    "prepare_papers",
    "render_digest",
    "render_page",
    "render_part",
    "safe_url",
    "tag_uri",
    "templates_dirs",
    "write_feed",
]

# Each public name's module, imported on first use (PEP 562): a caller that needs one module (feed file names,
# entry ids) does not load Jinja, css-inline and feedgen with it.
_WHERE = {
    "DigestLinks": "digest.render.digest",
    "EntryCache": "digest.render.atom",
    "FeedEntry": "digest.render.entries",
    "RenderCache": "digest.render.prepare",
    "RenderOptions": "digest.render.prepare",
    "anchor": "digest.render.papers",
    "build_feed": "digest.render.atom",
    "entry_id": "digest.render.entries",
    "feed_entries": "digest.render.entries",
    "feed_file": "digest.render.feedfile",
    "feed_slug": "digest.render.feedfile",
    "html_size_estimate": "digest.render.textmap",
    "make_environment": "digest.render.environment",
    "message_size_bound": "digest.render.digest",
    "paper_context": "digest.render.papers",
    "paper_links": "digest.identity",
    "prepare_papers": "digest.render.prepare",
    "render_digest": "digest.render.digest",
    "render_page": "digest.render.digest",
    "render_part": "digest.render.digest",
    "safe_url": "digest.render.textmap",
    "tag_uri": "digest.render.entries",
    "templates_dirs": "digest.render.environment",
    "write_feed": "digest.render.feedfile",
}


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
