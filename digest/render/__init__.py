"""Rendering: digests (Markdown, HTML, text; ``digest``), Atom feeds (``atom``), the text-mapping helpers they
share (``textmap``)."""

from __future__ import annotations

from digest.render.atom import (
    EntryCache,
    FeedEntry,
    build_feed,
    entry_id,
    feed_entries,
    feed_file,
    feed_slug,
    tag_uri,
    write_feed,
)
from digest.render.digest import (
    DigestLinks,
    PageLinks,
    RenderCache,
    RenderOptions,
    anchor,
    html_size_estimate,
    make_environment,
    message_size_bound,
    paper_context,
    paper_links,
    prepare_papers,
    render_digest,
    render_page,
    render_part,
    safe_url,
    templates_dirs,
)

__all__ = [
    "DigestLinks",
    "EntryCache",
    "FeedEntry",
    "PageLinks",
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
