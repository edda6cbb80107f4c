"""Digests as plain text, Markdown and CSS-inlined HTML email (and as an archive page), assembled per user from
the fragments ``prepare_papers`` (digest/render/prepare.py) rendered once per run.

Per user this only escapes-and-splices highlights into pre-escaped text, fills slots (the vote links of each
paper too) and joins strings (microseconds), and keeps the message within its size budget: abstracts are
shortened, then the "Also for you" suggestions go, then papers move to the "N more" line. What a paper shows
(byline, links, TL;DR) is in ``papers``; the Jinja environment in ``environment``.
"""

from __future__ import annotations

import html as _html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.errors import RenderError
from digest.identity import paper_links
from digest.models import Digest, Match, RenderedEmail
from digest.render.environment import make_environment, templates_dirs
from digest.render.environment import render_template as _render_template
from digest.render.papers import anchor, paper_context, whole_cut
from digest.render.papers import authors_text as _authors  # noqa: F401  (tests/test_render.py uses the old name)
from digest.render.papers import match_spans as _spans
from digest.render.papers import stars as _stars  # noqa: F401  (tests/test_render.py uses the old name)
from digest.render.prepare import Prepared as _Prepared
from digest.render.prepare import RenderCache, RenderOptions, prepare_papers
from digest.render.prepare import fill as _fill
from digest.render.prepare import get_prepared as _get
from digest.render.prepare import skeleton as _skeleton
from digest.render.prepare import skeleton_key as _skeleton_key
from digest.render.textmap import Sizes as _Sizes
from digest.render.textmap import add_sizes as _add_sizes
from digest.render.textmap import b64_bound as _b64_bound
from digest.render.textmap import b64_size as _b64_size
from digest.render.textmap import clean as _clean
from digest.render.textmap import cut_offset as _cut  # noqa: F401  (tests and bench/bench_render.py use it from here)
from digest.render.textmap import escape as _escape  # noqa: F401  (tests and bench/bench_render.py use it from here)
from digest.render.textmap import html_size_estimate, safe_url
from digest.render.textmap import md_guard as _md_guard
from digest.render.textmap import md_inline as _md_inline
from digest.render.textmap import plain_web_urls as _plain_web_urls
from digest.render.textmap import qp_bound as _qp_bound
from digest.render.textmap import qp_of as _qp_of
from digest.render.textmap import qp_size as _qp_size
from digest.render.textmap import splice as _splice
from digest.render.textmap import text_sizes as _text_sizes

# Names defined in prepare/papers/environment stay importable from here, where they were first.
__all__ = ["RenderCache", "RenderOptions", "anchor", "html_size_estimate", "make_environment", "paper_links"]
__all__ += ["message_size_bound", "prepare_papers", "render_digest", "render_page", "render_part", "safe_url"]
__all__ += ["DigestLinks", "paper_context", "templates_dirs", "whole_cut"]

# Bytes of the whole message that are not the two body parts: headers (From, To, a subject of up to 200
# characters encoded, Date, Message-ID, List-*), the multipart boundaries and part headers.
HEADER_RESERVE = 2_000


@dataclass(frozen=True, slots=True)
class DigestLinks:
    """The per-user links and hint of a digest, as the pipeline decides them (``links=`` of ``render_digest``
    and ``render_part``, instead of the separate keywords)."""

    unsubscribe_url: str
    feed_url: str | None = None
    manage_hint: str = ""
    view_url: str | None = None  # the digest's archive page ("View in browser"); None without pages
    more_url: str | None = None  # where the papers that did not fit are listed ("N more papers")
    # paper key -> (thumbs-up URL, thumbs-down URL), signed for this user; papers missing have no vote links
    votes: Mapping[str, tuple[str, str]] = field(default_factory=dict)


Votes = Mapping[str, tuple[str, str]]


def _require_url(url: str, what: str) -> str:
    checked = safe_url(url)
    if checked is None:
        raise RenderError(f"{what} {url!r} is not an http(s) or mailto URL", f"fix the {what} setting")
    return checked


def _web_url(url: str | None, what: str) -> str | None:
    """An optional page link passed per call: None stays None, anything but http(s) is refused."""
    if not url:
        return None
    checked = safe_url(url)
    if checked is None or checked.startswith("mailto:"):
        raise RenderError(f"{what} {url!r} is not an http(s) URL", f"fix the {what}")
    return checked


# --- per user (microseconds) -------------------------------------------------------------------


_MARKS = {"md": (("**", "**"), ("**", "**")), "txt": (("", ""), ("", ""))}
_REASON = {"html": lambda r: _html.escape(_clean(r)), "md": _md_inline, "txt": _clean}


def _vote_url(url: str) -> str:
    checked = safe_url(url)
    if checked is None or checked.startswith("mailto:"):
        raise RenderError(f"vote URL {url!r} is not an http(s) URL", "fix [digest].base_url")
    return checked


def _attr(url: str) -> str:
    """A URL ``safe_url`` returned, escaped for an HTML attribute: of what ``html.escape`` changes it can only
    hold "&" (it percent-encodes quotes and angle brackets)."""
    return url.replace("&", "&amp;") if "&" in url else url


def _vote_links(cache: RenderCache, papers: Sequence[Match], votes: Votes | None, fmts: Sequence[str]) -> dict:
    """Per format, each paper's vote links (votes.<format>.j2 filled with its URLs), "" where ``votes`` has none."""
    found = [votes.get(m.paper.key) for m in papers] if votes else []
    if not any(found):
        return {fmt: [""] * len(papers) for fmt in fmts}
    checked = found
    if not _plain_web_urls([url for pair in found if pair for url in pair]):  # as vote_urls makes them: all are
        checked = [(_vote_url(pair[0]), _vote_url(pair[1])) if pair else None for pair in found]
    out = {}
    for fmt in fmts:
        template, esc = cache.votes.get(fmt), _attr if fmt == "html" else str
        if template is None:  # no paper prepared yet: nothing to vote on
            out[fmt] = [""] * len(papers)
        elif template[1] == ("up_url", "down_url"):  # the default templates: one join, no dict (per paper)
            a, b, c = template[0]
            out[fmt] = ["".join((a, esc(v[0]), b, esc(v[1]), c)) if v else "" for v in checked]
        else:
            out[fmt] = [_fill(template, {"up_url": esc(v[0]), "down_url": esc(v[1])}) if v else "" for v in checked]
    return out


def _card(
    pp: _Prepared,
    n: int,
    spans: tuple[list, list],
    reason: str,
    votes: str,
    level: int,
    fmt: str,
    used: list[str] | None = None,
) -> tuple[str, _Sizes]:
    """One paper for one user: highlights spliced into the pre-escaped text, slots filled (the values appended
    to ``used``), and the sizes of the card template's literals."""
    tspans, aspans = spans
    tcut = whole_cut(pp.title_cut, tspans)
    cut = whole_cut(pp.cuts[level], aspans)
    trimmed = cut < pp.abstract_end
    if fmt == "txt":
        tspans, aspans = [], []
    (to, tc), (ao, ac) = (pp.marks["title"], pp.marks["abstract"]) if fmt == "html" else _MARKS[fmt]
    abstract = _splice(pp.abstract[fmt], aspans, cut, ao, ac) + (" …" if trimmed else "")
    title = _splice(pp.title[fmt], tspans, tcut, to, tc)
    values = {
        "title": title + (" …" if tcut < pp.title_end else ""),
        "abstract": _md_guard(abstract) if fmt == "md" else abstract,
        "reason": reason,
        "n": str(n),
        "votes": votes,
    }
    template = pp.parts[(fmt, trimmed)]
    return _fill(template, values, used), template[2]


def _index(prepared: Sequence[_Prepared], fmt: str, first: int = 1) -> str:
    if fmt == "html":
        return "".join(pp.index["html"] for pp in prepared)
    return "".join(f"{i}. {pp.index[fmt]}\n" for i, pp in enumerate(prepared, first))


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo | Any:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _local_day(when: datetime, tz: str) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(_zone(tz)).date().isoformat()


def _subject(cache: RenderCache, day: str, period: str, count: int, total: int, suggested: int = 0) -> str:
    key = (day, period, count, total, suggested)
    subject = cache.subjects.get(key)
    if subject is None:
        ctx: dict[str, Any] = {"site_name": cache.options.site_name, "date": day, "period": period}
        ctx |= {"count": count, "total": total, "more": total - count, "suggested": suggested}
        # One line whatever the template does: CR/LF would end the header, "=?" would start an encoded-word.
        subject = _clean(_render_template(cache.env, "subject.txt.j2", ctx)).replace("=?", "= ?")[:200]
        if not subject:
            raise RenderError("subject.txt.j2 rendered an empty subject", "make the template print a subject")
        cache.subjects[key] = subject
    return subject


def _values(fmt: str, subject: str, name: str, urls: dict[str, str | None], hint: str) -> dict[str, str]:
    texts: dict[str, Callable[[str], str]] = {"html": _html.escape, "md": _md_inline, "txt": _clean}
    text = texts[fmt]
    url = _html.escape if fmt == "html" else str
    values = {"subject": text(subject), "user_name": text(name), "manage_hint": text(hint), "papers": "", "index": ""}
    values |= {"suggestions": "", "suggestions_index": ""}
    return values | {k: url(v or "") for k, v in urls.items()}


def message_size_bound(html: str, text: str) -> int:
    """An upper bound of the message ``compose`` builds from these parts: base64 HTML (exact), quoted-printable
    text (bounded) and ``HEADER_RESERVE`` for the headers and MIME structure."""
    return HEADER_RESERVE + (_b64_size(html) if html else 0) + (_qp_size(text) if text else 0)


def _fits(parts: Mapping[str, str], sizes: Mapping[str, _Sizes], text_fmt: str | None, budget: int) -> bool:
    """``message_size_bound`` of the HTML part and the ``text_fmt`` part of ``parts`` (``sizes``: their measures)
    ``<= budget``, trying a cheap, looser bound of the text part first (the exact quoted-printable size costs
    ~200 us for a 15 KB text; most digests are far below the budget)."""
    html = sizes.get("html")
    base = HEADER_RESERVE + (_b64_bound(html[1], html[2]) if html and html[0] else 0)
    text = sizes.get(text_fmt) if text_fmt else None
    if text_fmt is None or text is None or not text[0]:
        return base <= budget
    if base + _qp_bound(_qp_of(text), text[2]) <= budget:
        return True
    return base + _qp_size(parts[text_fmt]) <= budget


def _suggestions(digest: Digest, matches: Sequence[Match]) -> tuple[Match, ...]:
    """The digest's suggestions that are not among ``matches`` (nor repeated): each paper is shown once."""
    seen = {m.paper.key for m in matches}
    out = []
    for m in digest.suggestions:
        if m.paper.key not in seen:
            seen.add(m.paper.key)
            out.append(m)
    return tuple(out)


def _render(
    digest: Digest,
    cache: RenderCache,
    fmts: Sequence[str],
    *,
    text_fmt: str | None,
    unsubscribe_url: str | None,
    feed_url: str | None,
    view_url: str | None,
    more_url: str | None,
    manage_hint: str,
    now: datetime | None,
    votes: Votes | None = None,
    page: bool = False,
) -> tuple[dict[str, str], str, tuple[str, ...]]:
    """The parts ``fmts`` of one digest: the keyword matches, then the "Also for you" suggestions. Unless
    ``page``, the shown papers and abstract lengths are chosen so the message of the HTML part (if in ``fmts``)
    and ``text_fmt`` fits the size budget: abstracts are shortened first, then suggestions go, then matches."""
    opts, profile = cache.options, digest.profile
    urls = {
        "unsubscribe_url": _require_url(unsubscribe_url, "unsubscribe URL") if unsubscribe_url else None,
        "feed_url": _require_url(feed_url, "feed URL") if feed_url else None,
        "view_url": _web_url(view_url, "view-in-browser URL"),
        "more_url": _web_url(more_url, "more-papers URL"),
    }
    hint = _clean(manage_hint or "")
    name = _clean(profile.display_name or profile.name) or profile.email
    day = _local_day(now or digest.generated_at, profile.timezone)
    dumps = tuple(_clean(d) for d in digest.dumps)
    matches = (*digest.matches, *digest.overflow) if page else digest.matches
    shown = (*matches, *_suggestions(digest, matches))  # the keyword matches, then the suggestions
    n_matches = len(matches)
    prepared = [_get(cache, m.paper) for m in shown]
    spans = [_spans(m) for m in shown]
    reasons = {f: [_REASON[f](m.reason) for m in shown] for f in fmts}
    links = _vote_links(cache, shown, votes, fmts)
    unvoted = [0]  # papers without vote links among the first i (the budget keeps room for theirs)
    for vote in links[fmts[0]]:
        unvoted.append(unvoted[-1] + (not vote))
    extra = max(digest.omitted - (len(digest.overflow) if page else 0), 0)
    total = n_matches + extra

    measured = () if page else ("html", text_fmt)  # the parts of the message whose size is budgeted

    def cards(fmt: str, level: int, start: int, end: int, first: int) -> tuple[str, _Sizes | None]:
        r, v = reasons[fmt], links[fmt]
        used: list[str] | None = [] if fmt in measured else None
        made = [
            _card(prepared[i], first + i - start, spans[i], r[i], v[i], level, fmt, used) for i in range(start, end)
        ]
        text = "".join(c for c, _ in made)
        if used is None:
            return text, None
        sizes = _text_sizes("".join(used))  # the per-user bytes; the cards' literals are measured once per run
        for _, literals in made:
            sizes = _add_sizes(sizes, literals)
        return text, sizes

    def build(level: int, count: int, suggested: int) -> tuple[dict[str, str], dict[str, _Sizes]]:
        key = _skeleton_key(
            count, total, digest.period, day, dumps, has_feed=urls["feed_url"] is not None, has_manage=bool(hint),
            dropped=len(digest.dropped), has_unsubscribe=urls["unsubscribe_url"] is not None,
            has_view=urls["view_url"] is not None, has_more_url=urls["more_url"] is not None, page=page,
            suggested=suggested,
        )  # fmt: skip
        subject = _subject(cache, day, digest.period, count, total, suggested)
        end = n_matches + suggested
        out, sizes = {}, {}
        for fmt in fmts:
            values = _values(fmt, subject, name, urls, hint)
            values["index"] = _index(prepared[:count], fmt)
            values["papers"], papers = cards(fmt, level, 0, count, 1)
            made = {"papers": papers}
            if suggested:
                values["suggestions_index"] = _index(prepared[n_matches:end], fmt, count + 1)
                values["suggestions"], made["suggestions"] = cards(fmt, level, n_matches, end, count + 1)
            skeleton = _skeleton(cache, fmt, key)
            out[fmt] = _fill(skeleton, values)
            if fmt in measured:  # the skeleton's literals (once per run), its slots' values, the cards
                total_sizes = _add_sizes(
                    skeleton[2], _text_sizes("".join(values[n] for n in skeleton[1] if n not in made))
                )
                for n in skeleton[1]:
                    found = made.get(n)
                    if found is not None:
                        total_sizes = _add_sizes(total_sizes, found)
                sizes[fmt] = total_sizes
        return out, sizes

    def fits(built: tuple[dict[str, str], dict[str, _Sizes]], count: int, suggested: int) -> bool:
        room = unvoted[count] + unvoted[n_matches + suggested] - unvoted[n_matches]
        return _fits(*built, text_fmt, opts.max_message_bytes - room * opts.reserve_per_paper)

    count, suggested = n_matches, len(shown) - n_matches
    out = build(0, count, suggested)
    if not page and shown and not fits(out, count, suggested):
        # Gmail clips past ~102 KB: shorten abstracts first, then drop suggestions (the last first), then move
        # papers to the "N more" line. Rare (a broad profile, huge abstracts), so each try assembles the parts
        # and measures them.
        for level in range(1, len(cache.levels)):
            out = build(level, count, suggested)
            if fits(out, count, suggested):
                break
        else:
            level = len(cache.levels) - 1
            floor = 0 if count else 1  # one paper is always shown
            while suggested > floor and not fits(out, count, suggested):
                suggested -= 1
                out = build(level, count, suggested)
            if count > 1 and not fits(out, count, suggested):
                lo, hi = 1, count - 1  # the largest count that fits, by bisection
                while lo < hi:
                    mid = (lo + hi + 1) // 2
                    lo, hi = (mid, hi) if fits(build(level, mid, 0), mid, 0) else (lo, mid - 1)
                count = lo
                out = build(level, count, 0)
    keys = tuple(m.paper.key for m in (*matches[:count], *shown[n_matches : n_matches + suggested]))
    return out[0], _subject(cache, day, digest.period, count, total, suggested), keys


def render_digest(
    digest: Digest,
    cache: RenderCache,
    *,
    unsubscribe_url: str = "",
    feed_url: str | None = None,
    manage_hint: str = "",
    view_url: str | None = None,
    more_url: str | None = None,
    now: datetime | None = None,
    links: DigestLinks | None = None,
) -> RenderedEmail:
    """One user's email: subject, text/plain (plain text) and HTML.

    ``view_url``: the digest's web page ("View in browser" near the top). ``more_url``: where the papers that
    did not fit are listed (the "N more papers" line links there); without it they come in the next digest.
    ``html`` is "" when the profile's formats leave HTML out; ``paper_keys`` lists the papers shown, the
    keyword matches then the "Also for you" suggestions (the size budget may drop some). ``now`` (default
    ``digest.generated_at``) dates the subject and summary. ``links`` gives all the links and the hint at once
    (then the separate keywords are not used), and the vote links of each paper (``links.votes``).
    """
    votes = None
    if links is not None:
        unsubscribe_url, feed_url, manage_hint = links.unsubscribe_url, links.feed_url, links.manage_hint
        view_url, more_url, votes = links.view_url, links.more_url, links.votes
    if not unsubscribe_url:  # every digest carries a way out
        raise TypeError("give links= or unsubscribe_url=")
    fmts = ("txt", "html") if "html" in digest.profile.formats else ("txt",)
    out, subject, keys = _render(
        digest, cache, fmts, text_fmt="txt", unsubscribe_url=unsubscribe_url, feed_url=feed_url, view_url=view_url,
        more_url=more_url, manage_hint=manage_hint, now=now, votes=votes,
    )  # fmt: skip
    return RenderedEmail(
        user=digest.profile.name,
        to=digest.profile.email,
        subject=subject,
        text=out["txt"],
        html=out.get("html", ""),
        period=digest.period,
        paper_keys=keys,
    )


def render_part(
    fmt: str,
    digest: Digest,
    cache: RenderCache,
    *,
    unsubscribe_url: str = "",
    feed_url: str | None = None,
    manage_hint: str = "",
    view_url: str | None = None,
    more_url: str | None = None,
    now: datetime | None = None,
    links: DigestLinks | None = None,
) -> str:
    """One part alone: "txt" (the text/plain part), "html" (the CSS-inlined HTML body) or "md" (the same as
    Markdown, what `digest preview --format md` prints). The message's budget decides what every part shows."""
    votes = None
    if links is not None:
        unsubscribe_url, feed_url, manage_hint = links.unsubscribe_url, links.feed_url, links.manage_hint
        view_url, more_url, votes = links.view_url, links.more_url, links.votes
    if not unsubscribe_url:  # every digest carries a way out
        raise TypeError("give links= or unsubscribe_url=")
    fmts = ("txt", "html") if "html" in digest.profile.formats else ("txt",)
    out = _render(digest, cache, tuple(dict.fromkeys((*fmts, fmt))), text_fmt="txt", manage_hint=manage_hint,
                  now=now, unsubscribe_url=unsubscribe_url, feed_url=feed_url, view_url=view_url,
                  more_url=more_url, votes=votes)[0]  # fmt: skip
    return out[fmt]


def render_page(
    digest: Digest,
    cache: RenderCache,
    *,
    now: datetime | None = None,
    feed_url: str | None = None,
    unsubscribe_url: str | None = None,
    more_url: str | None = None,
    votes: Votes | None = None,
) -> str:
    """The digest as a standalone HTML document with the email's look, for an archive page: every match, the
    shown ones and the overflow (``digest.matches`` + ``digest.overflow``), then the "Also for you" suggestions,
    abstracts at full configured length, no size budget. Links are optional: ``feed_url`` (Atom feed),
    ``unsubscribe_url``, ``more_url`` (where matches beyond ``digest.overflow`` are listed, if any), ``votes``
    (paper key -> the user's thumbs-up and thumbs-down URLs, as ``DigestLinks.votes``)."""
    kw = {"unsubscribe_url": unsubscribe_url, "feed_url": feed_url, "view_url": None, "more_url": more_url}
    return _render(digest, cache, ("html",), text_fmt=None, manage_hint="", now=now, page=True, votes=votes, **kw)[0][
        "html"
    ]
