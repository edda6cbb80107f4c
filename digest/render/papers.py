"""What a paper shows in a digest, whoever receives it: its anchor, byline, metadata line, link list and TL;DR
(``paper_context``, what the paper templates get), and where a match's hits are highlighted (``match_spans``,
``whole_cut``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from textwrap import fill as _fill_lines
from typing import TYPE_CHECKING, Any

from digest.identity import paper_links
from digest.models import Match, Paper, PaperLinks
from digest.render.textmap import clean as _clean
from digest.render.textmap import cut_offset as _cut
from digest.render.textmap import hit_spans as _hit_spans
from digest.render.textmap import safe_url

if TYPE_CHECKING:
    from digest.render.prepare import RenderOptions

__all__ = ["TLDR_LABEL", "anchor", "authors_text", "match_spans", "paper_context", "shorten", "stars", "whole_cut"]

TLDR_LABEL = "TL;DR (Hugging Face AI summary):"
_ANCHOR_BAD = re.compile(r"[^A-Za-z0-9]+")


def shorten(text: str, limit: int) -> tuple[str, bool]:
    """``clean`` text cut at a word boundary near ``limit`` characters, and whether anything was cut."""
    text = _clean(text)
    if len(text) <= limit:
        return text, False
    return text[: _cut(text, limit)], True


def authors_text(paper: Paper, shown: int = 3) -> str:
    """The first few author names with "et al.", or the count when only a count is known."""
    names = [name for a in paper.authors if (name := shorten(a, 80)[0])]
    n = max(paper.n_authors or 0, len(names))
    if not names:
        return f"{n} author{'s' if n != 1 else ''}" if n else ""
    if n <= shown:
        return ", ".join(names[:shown])
    return f"{', '.join(names[:shown])} et al. ({n} authors)"


def _meta(paper: Paper) -> list[str]:
    up = paper.upvotes
    when = paper.published.isoformat() if paper.published else _clean(paper.published_text or "")
    upvotes = f"{up} upvote{'s' if up != 1 else ''}" if up is not None else ""
    return [m for m in (shorten(paper.organization or "", 120)[0], when, upvotes) if m]


def stars(n: int | None) -> str:
    """A star count as shown beside the Code link: "★ 1,234", "★ 12.3k" (none when unknown)."""
    if n is None:
        return ""
    return f"★ {n / 1000:.1f}k".replace(".0k", "k") if n >= 10_000 else f"★ {n:,}"


def _link_list(links: PaperLinks) -> list[tuple[str, str]]:
    """(label, URL) in the fixed order: PDF, arXiv, Hugging Face, Code (with stars), Project page."""
    code = f"Code {stars(links.code_stars)}".rstrip()
    found = [("PDF", links.pdf), ("arXiv", links.arxiv), ("Hugging Face", links.hf), (code, links.code)]
    return [(label, url) for label, url in (*found, ("Project page", links.project)) if url]


def anchor(paper: Paper) -> str:
    """The id of a paper's entry in a digest (the index links to ``#<anchor>``)."""
    return "p-" + _ANCHOR_BAD.sub("-", paper.key).strip("-")[:80]


def paper_context(paper: Paper, options: RenderOptions) -> dict[str, Any]:
    """What the paper templates get besides the per-user slots (number, title, abstract, reason, trimmed)."""
    links = paper_links(paper)
    tldr = shorten(paper.ai_summary or "", 400)
    tldr_text = tldr[0] + (" …" if tldr[1] else "")
    thumb = safe_url(paper.thumbnail) if options.thumbnails else None
    return {
        "paper": paper,
        "links": links,
        "link_list": _link_list(links),
        "anchor": anchor(paper),
        "authors": authors_text(paper),
        "meta": _meta(paper),
        "tldr": tldr_text,
        "tldr_label": TLDR_LABEL,
        "tldr_wrapped": _fill_lines(f"{TLDR_LABEL} {tldr_text}", options.wrap_width) if tldr_text else "",
        "thumbnail": thumb if thumb and not thumb.startswith("mailto:") else None,
        "has_abstract": bool(_clean(paper.abstract).strip()),
    }


def match_spans(match: Match) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Title and abstract (start, end) hit spans, whitespace-trimmed, merged when only spaces part them."""
    title: list[tuple[int, int]] = []
    abstract: list[tuple[int, int]] = []
    for h in match.hits:
        if h.field == "title":
            title.append((h.start, h.end))
        elif h.field == "abstract":
            abstract.append((h.start, h.end))
    return _hit_spans(match.paper.title, title), _hit_spans(match.paper.abstract, abstract)


def whole_cut(cut: int, spans: Sequence[tuple[int, int]]) -> int:
    """``cut`` moved to the end of a highlighted span it would fall inside: a highlight is never cut in half."""
    for s, e in spans:
        if s < cut < e:
            return e
        if s >= cut:
            break
    return cut
