"""Preparing a run's papers once, for every user: ``prepare_papers`` renders each paper's card (and its line in
the index) with Jinja and inlines its CSS in the context of the real page, with per-user *slots* left in it
(number, title, abstract, reason, votes); page skeletons (header/footer) are rendered and inlined once per
distinct set of shared values, and a paper's vote links (votes.<format>.j2, their URLs per-user slots) once per
run. All become ``Template``s that ``fill`` completes per user by joining strings.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from digest.errors import RenderError
from digest.models import Match, Paper
from digest.render.environment import inline_css as _inline
from digest.render.environment import make_environment
from digest.render.environment import render_template as _render_template
from digest.render.papers import paper_context
from digest.render.papers import shorten as _shorten
from digest.render.textmap import Esc as _Esc
from digest.render.textmap import clean as _clean
from digest.render.textmap import cut_offset as _cut

if TYPE_CHECKING:
    import jinja2  # for types only: environment.py is the adapter
from digest.render.textmap import Sizes as _Sizes
from digest.render.textmap import escape as _escape
from digest.render.textmap import md_inline as _md_inline
from digest.render.textmap import text_sizes as _text_sizes
from digest.render.textmap import wrap_breaks as _wrap_breaks

__all__ = ["FORMATS", "Prepared", "RenderCache", "RenderOptions", "Template", "fill", "get_prepared"]
__all__ += ["prepare_papers", "skeleton", "skeleton_key"]

log = logging.getLogger(__name__)

FORMATS = ("html", "md", "txt")

# Literals, the slot names between them, and the sizes of the literals (a filled template's size is that plus its
# values': only those are measured per user).
Template = tuple[tuple[str, ...], tuple[str, ...], _Sizes]


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """Knobs shared by every digest of a run."""

    abstract_chars: int = 600  # abstracts are cut at a word boundary near this length (never inside a highlight)
    # Budget for the whole message as sent (headers, text/plain as quoted-printable, text/html as base64): Gmail
    # clips a message past ~102 KB. Over it, abstracts are shortened, then papers move to the "N more" line.
    max_message_bytes: int = 100_000
    # Bytes kept free per shown paper that has no vote links (👍/👎 in both parts, ~0.9 KB as sent): room for
    # the links a later setting adds. Papers with vote links are measured with them instead.
    reserve_per_paper: int = 300
    title_chars: int = 300  # titles are shown cut near this length (the store keeps them whole)
    templates_dir: Path | None = None  # user overrides, searched before the default templates
    base_url: str | None = None  # the site's public URL (kept for templates; links come per call)
    site_name: str = "Paper digest"
    lang: str = "en"
    wrap_width: int = 76  # text/plain and Markdown abstracts are wrapped at this column
    thumbnails: bool = False  # show the listing's thumbnail image beside each paper (remote image)


@dataclass(frozen=True, slots=True)
class Prepared:
    """One paper ready to be spliced into any user's digest."""

    paper: Paper
    title: dict[str, _Esc]
    abstract: dict[str, _Esc]
    title_cut: int  # where the source title is cut for display
    title_end: int  # length of the title without trailing space: a cut before it drops something
    abstract_end: int  # length of the abstract without trailing space: a cut before it drops something
    cuts: tuple[int, ...]  # per abstract level: where the source abstract is cut
    parts: dict[tuple[str, bool], Template]  # (format, abstract trimmed) -> ``fill`` template
    index: dict[str, str]  # format -> the paper's line in the index (html: inlined <li>; md/txt: the title)
    marks: dict[str, tuple[str, str]]  # "title" / "abstract" -> inlined highlight open/close tags


@dataclass(frozen=True, slots=True)
class RenderCache:
    """Everything prepared once per run; pass it to every ``render_digest`` call."""

    options: RenderOptions
    env: jinja2.Environment
    nonce: str
    slot_re: re.Pattern[str]
    levels: tuple[int, ...]
    papers: dict[str, Prepared] = field(default_factory=dict)
    skeletons: dict[tuple[Any, ...], Template] = field(default_factory=dict)
    subjects: dict[tuple[Any, ...], str] = field(default_factory=dict)
    # format -> a paper's vote links (votes.<format>.j2) with up_url and down_url slots, made with the first paper
    votes: dict[str, Template] = field(default_factory=dict)


def _tok(cache: RenderCache, name: str) -> str:
    return f"{cache.nonce}_{name}_{cache.nonce}"


def _levels(chars: int) -> tuple[int, ...]:
    chars = max(chars, 50)
    return tuple(sorted({chars, min(chars, 320), min(chars, 160)}, reverse=True))


def prepare_papers(
    items: Iterable[Paper | Match], options: RenderOptions | None = None, *, env: jinja2.Environment | None = None
) -> RenderCache:
    """Render and CSS-inline every paper's fragments once; the result serves every user of the run."""
    options = options or RenderOptions()
    nonce = "PD" + secrets.token_hex(6).upper()
    cache = RenderCache(
        options=options,
        env=env or make_environment(options.templates_dir),
        nonce=nonce,
        slot_re=re.compile(f"{nonce}_([a-z0-9_]+)_{nonce}"),
        levels=_levels(options.abstract_chars),
    )
    _prepare_into(cache, [it.paper if isinstance(it, Match) else it for it in items])
    return cache


_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_PROBES = {"title": ("<mark>", "</mark>"), "abstract": ("<mark><strong>", "</strong></mark>")}
_INDEX_CHARS = 140


def _prepare_into(cache: RenderCache, papers: Sequence[Paper]) -> None:
    unique = list({p.key: p for p in papers}.values())
    if not unique:
        return
    t = partial(_tok, cache)
    opts = cache.options
    ctxs = [paper_context(p, opts) for p in unique]
    shortened = [_shorten(p.title, _INDEX_CHARS) for p in unique]
    index_titles = [(s + " …" if cut else s) or "(untitled)" for s, cut in shortened]
    # Each slot carries a probe highlight so the inlined <mark> styling can be read back per slot.
    probe = {n: Markup(f"{t(n)}{o}{t(n + '_hl')}{c}{t(n + '_end')}") for n, (o, c) in _PROBES.items()}
    slots = {"reason": Markup(t("reason")), "n": Markup(t("n")), "votes": Markup(t("votes"))}
    cards = [
        f"{t(f'b{i}x{int(tr)}')}"
        + _render_template(cache.env, "paper.html.j2", {**ctx, **probe, **slots, "trimmed": tr})
        + t("e")
        for i, ctx in enumerate(ctxs)
        for tr in (False, True)
    ]
    items = [
        f"{t(f'i{i}')}" + _render_template(cache.env, "index_item.html.j2", {**ctx, "title": index_titles[i]}) + t("e")
        for i, ctx in enumerate(ctxs)
    ]
    if "html" not in cache.votes:  # the vote links, inlined where a card prints them (once per run)
        urls = {"up_url": Markup(t("up_url")), "down_url": Markup(t("down_url"))}
        votes = Markup(f"{t('v')}{_render_template(cache.env, 'votes.html.j2', urls).rstrip()}{t('ve')}")
        ctx = {**ctxs[0], **probe, **slots, "trimmed": False, "votes": votes}
        cards.append(_render_template(cache.env, "paper.html.j2", ctx))
    # Cards are inlined inside the real page so descendant selectors apply as they will per user.
    key = skeleton_key(1, 1, "", "", (), has_feed=True, has_manage=True, dropped=0)
    page = _inline(_render_skeleton(cache, "html", key, "".join(cards), "".join(items)))
    n = cache.nonce
    if "html" not in cache.votes:
        _prepare_votes(cache, re.search(f"{n}_v_{n}(.*?){n}_ve_{n}", page, re.S))
    found = {
        (int(i), tr == "1"): body for i, tr, body in re.findall(f"{n}_b(\\d+)x([01])_{n}(.*?){n}_e_{n}", page, re.S)
    }
    found_items = {int(i): body for i, body in re.findall(f"{n}_i(\\d+)_{n}(.*?){n}_e_{n}", page, re.S)}
    probe_re = re.compile(f"{n}_(title|abstract)_{n}(.*?){n}_\\1_hl_{n}(.*?){n}_\\1_end_{n}", re.S)
    for i, p in enumerate(unique):
        split: dict[tuple[str, bool], list[str]] = {}
        marks: dict[str, tuple[str, str]] = {}
        if i not in found_items:
            raise RenderError("index_item.html.j2 or digest.html.j2 lost the index", "print {{ index }} as it is")
        for tr in (False, True):
            if (i, tr) not in found:
                raise RenderError("paper.html.j2 lost its slot markers", "print title, abstract and reason as text")
            marks.update((m[1], (m[2], m[3])) for m in probe_re.finditer(found[(i, tr)]))
            split[("html", tr)] = cache.slot_re.split(probe_re.sub(lambda m: t(m[1]), found[(i, tr)]))
            for fmt in ("md", "txt"):
                ctx = {**ctxs[i], "trimmed": tr, **{k: t(k) for k in ("title", "abstract", "reason", "n", "votes")}}
                split[(fmt, tr)] = cache.slot_re.split(_render_template(cache.env, f"paper.{fmt}.j2", ctx))
        for name, default in _PROBES.items():
            marks.setdefault(name, default)
        breaks = _wrap_breaks(p.abstract, opts.wrap_width)
        title = {f: _escape(p.title if _clean(p.title).strip() else "(untitled)", f) for f in FORMATS}
        abstract = {f: _escape(p.abstract, f, breaks if f != "html" else frozenset()) for f in FORMATS}
        shown_title = p.title if _clean(p.title).strip() else "(untitled)"
        cache.papers[p.key] = Prepared(
            paper=p,
            title=title,
            abstract=abstract,
            title_cut=_cut(shown_title, max(opts.title_chars, 20)),
            title_end=len(shown_title.rstrip()),
            abstract_end=len(p.abstract.rstrip()),
            cuts=tuple(_cut(p.abstract, level) for level in cache.levels),
            parts={k: _compile(cache, v, f"paper.{k[0]}.j2") for k, v in split.items()},
            index={"html": found_items[i], "md": _md_inline(index_titles[i]), "txt": index_titles[i]},
            marks=marks,
        )


def _prepare_votes(cache: RenderCache, inlined: re.Match[str] | None) -> None:
    """The vote links of every format as ``fill`` templates: HTML as inlined in a card (``inlined``; None when
    paper.html.j2 prints no votes, then it shows none), Markdown and text as their templates render."""
    # Characters past U+FFFF (the 👍/👎 of the default template) as references: one would make each user's
    # whole HTML a string of 4 bytes a character, slower to join, measure and encode.
    html = _ASTRAL.sub(lambda m: f"&#{ord(m[0])};", inlined[1]) if inlined else ""
    cache.votes["html"] = _compile(cache, cache.slot_re.split(html), "votes.html.j2")
    for fmt in ("md", "txt"):
        text = _render_template(cache.env, f"votes.{fmt}.j2", {k: _tok(cache, k) for k in ("up_url", "down_url")})
        text = text.rstrip("\n") if fmt == "md" else text  # md: on the links line; txt: whole lines
        cache.votes[fmt] = _compile(cache, cache.slot_re.split(text), f"votes.{fmt}.j2")


def skeleton_key(
    count: int, total: int, period: str, day: str, dumps: tuple[str, ...], *, has_feed: bool = False,
    has_manage: bool = False, dropped: int = 0, has_unsubscribe: bool = True, has_view: bool = False,
    has_more_url: bool = False, page: bool = False, suggested: int = 0,
) -> tuple[Any, ...]:  # fmt: skip
    """What a page skeleton depends on (its key in ``RenderCache.skeletons``, with the format); ``suggested``: how
    many "Also for you" papers follow the ``count`` keyword matches."""
    return (count, total, period, day, dumps, has_feed, has_manage, dropped, has_unsubscribe, has_view,
            has_more_url, page, suggested)  # fmt: skip


def _render_skeleton(
    cache: RenderCache, fmt: str, key: tuple[Any, ...], papers: str | None = None, index: str | None = None
) -> str:
    count, total, period, day, dumps, has_feed, has_manage, dropped, has_unsub, has_view, has_more, page, suggested = (
        key
    )
    t = (lambda n: Markup(_tok(cache, n))) if fmt == "html" else (lambda n: _tok(cache, n))
    ctx = {"site_name": cache.options.site_name, "lang": cache.options.lang, "period": period, "date": day}
    ctx |= {"count": count, "total": total, "more": total - count, "dumps": list(dumps), "dropped": dropped}
    ctx |= {"suggested": suggested, "suggestions": t("suggestions"), "suggestions_index": t("suggestions_index")}
    ctx |= {
        **{n: t(n) for n in ("subject", "user_name")},
        "unsubscribe_url": t("unsubscribe_url") if has_unsub else None,
        "feed_url": t("feed_url") if has_feed else None,
        "view_url": t("view_url") if has_view else None,
        "more_url": t("more_url") if has_more else None,
        "manage_hint": t("manage_hint") if has_manage else None,
        "papers": t("papers") if papers is None else Markup(papers),
        "index": t("index") if index is None else Markup(index),
        "web_page": page,
    }
    return _render_template(cache.env, f"digest.{fmt}.j2", ctx)


def skeleton(cache: RenderCache, fmt: str, key: tuple[Any, ...]) -> Template:
    """The page around the papers as a ``fill`` template."""
    found = cache.skeletons.get((fmt, *key))
    if found is None:
        text = _render_skeleton(cache, fmt, key)
        found = _compile(cache, cache.slot_re.split(_inline(text) if fmt == "html" else text), f"digest.{fmt}.j2")
        cache.skeletons[(fmt, *key)] = found
    return found


def _compile(cache: RenderCache, parts: list[str], name: str) -> Template:
    """Split parts (literal, slot, literal, ...) into literals and slot names for ``fill``, with the literals'
    sizes."""
    if any(cache.nonce.lower() in lit.lower() for lit in parts[0::2]):
        raise RenderError(
            f"{name} changes a per-user value (a filter on title, abstract, reason, user_name, a URL...)",
            "print those values as they are; they are filled in per user after rendering",
        )
    return tuple(parts[0::2]), tuple(parts[1::2]), _text_sizes("".join(parts[0::2]))


def fill(template: Template, values: dict[str, str], used: list[str] | None = None) -> str:
    """``template`` with each slot replaced by its value in ``values``; the values as filled in, in order, are
    appended to ``used`` (what makes the output's size beside the template's literals)."""
    lits, names = template[0], template[1]
    out = [""] * (2 * len(names) + 1)
    out[0::2] = lits  # slice assignment and one join: ~1 us, where str.format_map re-parses kilobytes
    out[1::2] = filled = [values[n] for n in names]
    if used is not None:
        used += filled
    return "".join(out)


def get_prepared(cache: RenderCache, paper: Paper) -> Prepared:
    """``paper`` as the run prepared it (prepared now, with a debug line, if the run did not)."""
    pp = cache.papers.get(paper.key)
    if pp is None or (pp.paper is not paper and pp.paper != paper):
        log.debug("paper %s was not prepared for this run; preparing it now", paper.key)
        _prepare_into(cache, [paper])
        pp = cache.papers[paper.key]
    return pp
