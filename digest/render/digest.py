"""Digests as plain text, Markdown and CSS-inlined HTML email, assembled from per-paper fragments.

Speed comes from doing the expensive work once per run: ``prepare_papers`` renders every paper's
card (and its line in the index) with Jinja and inlines its CSS (in the context of the real page)
with per-user *slots* left in it (number, title, abstract, reason). ``render_digest`` then only
escapes-and-splices highlights into pre-escaped text and joins strings. Page skeletons
(header/footer) are rendered and inlined once per distinct set of shared values (count, period,
which links are set...), with per-user values as slots too.
"""

from __future__ import annotations

import html as _html
import logging
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache, partial
from pathlib import Path
from textwrap import fill as _fill_lines
from typing import Any, TypedDict
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import css_inline
import jinja2
from markupsafe import Markup

from digest.errors import RenderError
from digest.identity import paper_links
from digest.models import Digest, Match, Paper, PaperLinks, RenderedEmail
from digest.render.textmap import Esc as _Esc
from digest.render.textmap import b64_size as _b64_size
from digest.render.textmap import clean as _clean
from digest.render.textmap import cut_offset as _cut
from digest.render.textmap import escape as _escape
from digest.render.textmap import hit_spans as _hit_spans
from digest.render.textmap import html_size_estimate, safe_url
from digest.render.textmap import md_guard as _md_guard
from digest.render.textmap import md_inline as _md_inline
from digest.render.textmap import qp as _qp
from digest.render.textmap import qp_bound as _qp_bound
from digest.render.textmap import qp_size as _qp_size
from digest.render.textmap import splice as _splice
from digest.render.textmap import wrap_breaks as _wrap_breaks

__all__ = ["RenderCache", "RenderOptions", "anchor", "html_size_estimate", "make_environment", "paper_links"]
__all__ += ["message_size_bound", "prepare_papers", "render_digest", "render_page", "render_part", "safe_url"]
__all__ += ["DigestLinks", "PageLinks", "paper_context", "templates_dirs", "whole_cut"]

log = logging.getLogger(__name__)

FORMATS = ("html", "md", "txt")
# Bytes of the whole message that are not the two body parts: headers (From, To, a subject of up to 200
# characters encoded, Date, Message-ID, List-*), the multipart boundaries and part headers.
HEADER_RESERVE = 2_000
TLDR_LABEL = "TL;DR (Hugging Face AI summary):"
_ANCHOR_BAD = re.compile(r"[^A-Za-z0-9]+")


_Template = tuple[tuple[str, ...], tuple[str, ...]]  # literals, and the slot names between them



class PageLinks(TypedDict):
    """A digest's links to its archive page: "View in browser" and "N more papers" (None without pages)."""

    view_url: str | None
    more_url: str | None


class DigestLinks(PageLinks):
    """The per-user links and hint of a digest: the keyword arguments ``render_digest`` and ``render_part`` take
    besides ``now``."""

    unsubscribe_url: str
    feed_url: str | None
    manage_hint: str

@dataclass(frozen=True, slots=True)
class RenderOptions:
    """Knobs shared by every digest of a run."""

    abstract_chars: int = 600  # abstracts are cut at a word boundary near this length (never inside a highlight)
    # Budget for the whole message as sent (headers, text/plain as quoted-printable, text/html as base64): Gmail
    # clips a message past ~102 KB. Over it, abstracts are shortened, then papers move to the "N more" line.
    max_message_bytes: int = 100_000
    # Bytes kept free per shown paper for per-user links added later (relevance feedback: 👍/👎 in both parts).
    reserve_per_paper: int = 300
    title_chars: int = 300  # titles are shown cut near this length (the store keeps them whole)
    templates_dir: Path | None = None  # user overrides, searched before the default templates
    base_url: str | None = None  # the site's public URL (kept for templates; links come per call)
    site_name: str = "Paper digest"
    lang: str = "en"
    wrap_width: int = 76  # text/plain and Markdown abstracts are wrapped at this column
    thumbnails: bool = False  # show the listing's thumbnail image beside each paper (remote image)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """One paper ready to be spliced into any user's digest."""

    paper: Paper
    title: dict[str, _Esc]
    abstract: dict[str, _Esc]
    title_cut: int  # where the source title is cut for display
    title_end: int  # length of the title without trailing space: a cut before it drops something
    abstract_end: int  # length of the abstract without trailing space: a cut before it drops something
    cuts: tuple[int, ...]  # per abstract level: where the source abstract is cut
    parts: dict[tuple[str, bool], _Template]  # (format, abstract trimmed) -> _fill template
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
    papers: dict[str, _Prepared] = field(default_factory=dict)
    skeletons: dict[tuple[Any, ...], _Template] = field(default_factory=dict)
    subjects: dict[tuple[Any, ...], str] = field(default_factory=dict)


# --- environment -------------------------------------------------------------------------------


def templates_dirs(override_dir: Path | None = None) -> list[Path]:
    """Template folders in search order: the user's override, then the packaged (or checkout) defaults."""
    here = Path(__file__).resolve().parents[1]  # the digest package
    dirs = [override_dir] if override_dir is not None else []
    installed, checkout = here / "templates", here.parent / "templates"
    dirs.append(installed if installed.is_dir() else checkout)
    return dirs


def make_environment(override_dir: Path | None = None) -> jinja2.Environment:
    """A Jinja2 environment: override folder first, autoescape for .html.j2/.xml.j2, StrictUndefined."""
    if override_dir is not None and not Path(override_dir).is_dir():
        raise RenderError(
            f"template folder {override_dir} does not exist",
            "create it or remove the `templates` setting from the config",
        )
    loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(d)) for d in templates_dirs(override_dir)])
    env = jinja2.Environment(
        loader=loader,
        autoescape=lambda name: name is not None and name.endswith((".html.j2", ".xml.j2")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = _md_inline
    env.filters["clean"] = _clean
    return env


def _render_template(env: jinja2.Environment, name: str, ctx: dict[str, Any]) -> str:
    try:
        return env.get_template(name).render(ctx)
    except jinja2.TemplateNotFound as exc:
        raise RenderError(f"template {exc.name} not found", "restore it or fix the override folder") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(
            f"template {exc.filename or name} line {exc.lineno}: {exc.message}", "fix the template syntax"
        ) from exc
    except jinja2.TemplateError as exc:
        raise RenderError(f"template {name} failed: {exc}", "check the variables the template uses") from exc


# --- links, metadata and hits ------------------------------------------------------------------


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


def _shorten(text: str, limit: int) -> tuple[str, bool]:
    """``clean`` text cut at a word boundary near ``limit`` characters, and whether anything was cut."""
    text = _clean(text)
    if len(text) <= limit:
        return text, False
    return text[: _cut(text, limit)], True


def _authors(paper: Paper, shown: int = 3) -> str:
    """The first few author names with "et al.", or the count when only a count is known."""
    names = [name for a in paper.authors if (name := _shorten(a, 80)[0])]
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
    return [m for m in (_shorten(paper.organization or "", 120)[0], when, upvotes) if m]


def _stars(n: int | None) -> str:
    if n is None:
        return ""
    return f"★ {n / 1000:.1f}k".replace(".0k", "k") if n >= 10_000 else f"★ {n:,}"


def _link_list(links: PaperLinks) -> list[tuple[str, str]]:
    """(label, URL) in the fixed order: PDF, arXiv, Hugging Face, Code (with stars), Project page."""
    code = f"Code {_stars(links.code_stars)}".rstrip()
    found = [("PDF", links.pdf), ("arXiv", links.arxiv), ("Hugging Face", links.hf), (code, links.code)]
    return [(label, url) for label, url in (*found, ("Project page", links.project)) if url]


def anchor(paper: Paper) -> str:
    """The id of a paper's entry in a digest (the index links to ``#<anchor>``)."""
    return "p-" + _ANCHOR_BAD.sub("-", paper.key).strip("-")[:80]


def paper_context(paper: Paper, options: RenderOptions) -> dict[str, Any]:
    """What the paper templates get besides the per-user slots (number, title, abstract, reason, trimmed)."""
    links = paper_links(paper)
    tldr = _shorten(paper.ai_summary or "", 400)
    tldr_text = tldr[0] + (" …" if tldr[1] else "")
    thumb = safe_url(paper.thumbnail) if options.thumbnails else None
    return {
        "paper": paper,
        "links": links,
        "link_list": _link_list(links),
        "anchor": anchor(paper),
        "authors": _authors(paper),
        "meta": _meta(paper),
        "tldr": tldr_text,
        "tldr_label": TLDR_LABEL,
        "tldr_wrapped": _fill_lines(f"{TLDR_LABEL} {tldr_text}", options.wrap_width) if tldr_text else "",
        "thumbnail": thumb if thumb and not thumb.startswith("mailto:") else None,
        "has_abstract": bool(_clean(paper.abstract).strip()),
    }


def _spans(match: Match) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
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


# --- preparing papers (once per run) -----------------------------------------------------------


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
    slots = {"reason": Markup(t("reason")), "n": Markup(t("n"))}
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
    # Cards are inlined inside the real page so descendant selectors apply as they will per user.
    key = _skeleton_key(1, 1, "", "", (), has_feed=True, has_manage=True, dropped=0)
    page = _inline(_render_skeleton(cache, "html", key, "".join(cards), "".join(items)))
    n = cache.nonce
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
                ctx = {**ctxs[i], "trimmed": tr, **{k: t(k) for k in ("title", "abstract", "reason", "n")}}
                split[(fmt, tr)] = cache.slot_re.split(_render_template(cache.env, f"paper.{fmt}.j2", ctx))
        for name, default in _PROBES.items():
            marks.setdefault(name, default)
        breaks = _wrap_breaks(p.abstract, opts.wrap_width)
        title = {f: _escape(p.title if _clean(p.title).strip() else "(untitled)", f) for f in FORMATS}
        abstract = {f: _escape(p.abstract, f, breaks if f != "html" else frozenset()) for f in FORMATS}
        shown_title = p.title if _clean(p.title).strip() else "(untitled)"
        cache.papers[p.key] = _Prepared(
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


def _inline(page: str) -> str:
    try:
        return _inliner().inline(page)
    except Exception as exc:  # css-inline raises its own InlineError and ValueError
        raise RenderError(f"CSS inlining failed: {exc}", "check style.css and the HTML templates") from exc


@lru_cache(maxsize=1)
def _inliner() -> css_inline.CSSInliner:
    return css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


def _skeleton_key(
    count: int, total: int, period: str, day: str, dumps: tuple[str, ...], *, has_feed: bool = False,
    has_manage: bool = False, dropped: int = 0, has_unsubscribe: bool = True, has_view: bool = False,
    has_more_url: bool = False, page: bool = False,
) -> tuple[Any, ...]:  # fmt: skip
    return (count, total, period, day, dumps, has_feed, has_manage, dropped, has_unsubscribe, has_view,
            has_more_url, page)  # fmt: skip


def _render_skeleton(
    cache: RenderCache, fmt: str, key: tuple[Any, ...], papers: str | None = None, index: str | None = None
) -> str:
    count, total, period, day, dumps, has_feed, has_manage, dropped, has_unsub, has_view, has_more, page = key
    t = (lambda n: Markup(_tok(cache, n))) if fmt == "html" else (lambda n: _tok(cache, n))
    ctx = {"site_name": cache.options.site_name, "lang": cache.options.lang, "period": period, "date": day}
    ctx |= {"count": count, "total": total, "more": total - count, "dumps": list(dumps), "dropped": dropped}
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


def _skeleton(cache: RenderCache, fmt: str, key: tuple[Any, ...]) -> _Template:
    """The page around the papers as a ``_fill`` template."""
    found = cache.skeletons.get((fmt, *key))
    if found is None:
        text = _render_skeleton(cache, fmt, key)
        found = _compile(cache, cache.slot_re.split(_inline(text) if fmt == "html" else text), f"digest.{fmt}.j2")
        cache.skeletons[(fmt, *key)] = found
    return found


def _compile(cache: RenderCache, parts: list[str], name: str) -> _Template:
    """Split parts (literal, slot, literal, ...) into literals and slot names for ``_fill``."""
    if any(cache.nonce.lower() in lit.lower() for lit in parts[0::2]):
        raise RenderError(
            f"{name} changes a per-user value (a filter on title, abstract, reason, user_name, a URL...)",
            "print those values as they are; they are filled in per user after rendering",
        )
    return tuple(parts[0::2]), tuple(parts[1::2])


def _fill(template: _Template, values: dict[str, str]) -> str:
    lits, names = template
    out = [""] * (2 * len(names) + 1)
    out[0::2] = lits  # slice assignment and one join: ~1 us, where str.format_map re-parses kilobytes
    out[1::2] = [values[n] for n in names]
    return "".join(out)


# --- per user (microseconds) -------------------------------------------------------------------


def _get(cache: RenderCache, paper: Paper) -> _Prepared:
    pp = cache.papers.get(paper.key)
    if pp is None or (pp.paper is not paper and pp.paper != paper):
        log.debug("paper %s was not prepared for this run; preparing it now", paper.key)
        _prepare_into(cache, [paper])
        pp = cache.papers[paper.key]
    return pp


_MARKS = {"md": (("**", "**"), ("**", "**")), "txt": (("", ""), ("", ""))}
_REASON = {"html": lambda r: _html.escape(_clean(r)), "md": _md_inline, "txt": _clean}


def _card(pp: _Prepared, n: int, spans: tuple[list, list], reason: str, level: int, fmt: str) -> str:
    """One paper for one user: highlights spliced into the pre-escaped text, slots filled."""
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
    }
    return _fill(pp.parts[(fmt, trimmed)], values)


def _index(prepared: Sequence[_Prepared], count: int, fmt: str) -> str:
    if fmt == "html":
        return "".join(pp.index["html"] for pp in prepared[:count])
    return "".join(f"{i}. {pp.index[fmt]}\n" for i, pp in enumerate(prepared[:count], 1))


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


def _subject(cache: RenderCache, day: str, period: str, count: int, total: int) -> str:
    key = (day, period, count, total)
    subject = cache.subjects.get(key)
    if subject is None:
        ctx: dict[str, Any] = {"site_name": cache.options.site_name, "date": day, "period": period}
        ctx |= {"count": count, "total": total, "more": total - count}
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
    return values | {k: url(v or "") for k, v in urls.items()}


def message_size_bound(html: str, text: str) -> int:
    """An upper bound of the message ``compose`` builds from these parts: base64 HTML (exact), quoted-printable
    text (bounded) and ``HEADER_RESERVE`` for the headers and MIME structure."""
    return HEADER_RESERVE + (_b64_size(html) if html else 0) + (_qp_size(text) if text else 0)


def _fits(html: str, text: str, budget: int) -> bool:
    """``message_size_bound(html, text) <= budget``, trying a cheap, looser bound of the text part first (the
    exact quoted-printable size costs ~200 us for a 15 KB text; most digests are far below the budget)."""
    base = HEADER_RESERVE + (_b64_size(html) if html else 0)
    if not text:
        return base <= budget
    if base + _qp_bound(_qp(text), text.count("\n")) <= budget:
        return True
    return base + _qp_size(text) <= budget


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
    page: bool = False,
) -> tuple[dict[str, str], str, tuple[str, ...]]:
    """The parts ``fmts`` of one digest. Unless ``page``, the shown papers and abstract lengths are chosen so
    the message of the HTML part (if in ``fmts``) and ``text_fmt`` fits the size budget."""
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
    prepared = [_get(cache, m.paper) for m in matches]
    spans = [_spans(m) for m in matches]
    reasons = {f: [_REASON[f](m.reason) for m in matches] for f in fmts}
    extra = max(digest.omitted - (len(digest.overflow) if page else 0), 0)
    total = len(matches) + extra

    def build(level: int, count: int) -> dict[str, str]:
        key = _skeleton_key(
            count, total, digest.period, day, dumps, has_feed=urls["feed_url"] is not None, has_manage=bool(hint),
            dropped=len(digest.dropped), has_unsubscribe=urls["unsubscribe_url"] is not None,
            has_view=urls["view_url"] is not None, has_more_url=urls["more_url"] is not None, page=page,
        )  # fmt: skip
        subject = _subject(cache, day, digest.period, count, total)
        out = {}
        for fmt in fmts:
            values = _values(fmt, subject, name, urls, hint)
            values["index"] = _index(prepared, count, fmt)
            values["papers"] = "".join(
                _card(prepared[i], i + 1, spans[i], reasons[fmt][i], level, fmt) for i in range(count)
            )
            out[fmt] = _fill(_skeleton(cache, fmt, key), values)
        return out

    def fits(out: dict[str, str], count: int) -> bool:
        budget = opts.max_message_bytes - count * opts.reserve_per_paper
        return _fits(out.get("html", ""), out[text_fmt] if text_fmt else "", budget)

    count = len(matches)
    out = build(0, count)
    if not page and matches and not fits(out, count):
        # Gmail clips past ~102 KB: shorten abstracts first, then move papers to the "N more" line. Rare (a
        # broad profile, huge abstracts), so each try assembles the parts and measures them.
        for level in range(1, len(cache.levels)):
            out = build(level, count)
            if fits(out, count):
                break
        else:
            level = len(cache.levels) - 1
            lo, hi = 1, count - 1  # the largest count that fits, by bisection (one paper is always shown)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if fits(build(level, mid), mid) else (lo, mid - 1)
            count = lo
            out = build(level, count)
    return out, _subject(cache, day, digest.period, count, total), tuple(m.paper.key for m in matches[:count])


def render_digest(
    digest: Digest,
    cache: RenderCache,
    *,
    unsubscribe_url: str,
    feed_url: str | None = None,
    manage_hint: str = "",
    view_url: str | None = None,
    more_url: str | None = None,
    now: datetime | None = None,
) -> RenderedEmail:
    """One user's email: subject, text/plain (plain text) and HTML.

    ``view_url``: the digest's web page ("View in browser" near the top). ``more_url``: where the papers that
    did not fit are listed (the "N more papers" line links there); without it they come in the next digest.
    ``html`` is "" when the profile's formats leave HTML out; ``paper_keys`` lists the papers shown (the
    size budget may drop some). ``now`` (default ``digest.generated_at``) dates the subject and summary.
    """
    fmts = ("txt", "html") if "html" in digest.profile.formats else ("txt",)
    out, subject, keys = _render(
        digest, cache, fmts, text_fmt="txt", unsubscribe_url=unsubscribe_url, feed_url=feed_url, view_url=view_url,
        more_url=more_url, manage_hint=manage_hint, now=now,
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
    unsubscribe_url: str,
    feed_url: str | None = None,
    manage_hint: str = "",
    view_url: str | None = None,
    more_url: str | None = None,
    now: datetime | None = None,
) -> str:
    """One part alone: "txt" (the text/plain part), "html" (the CSS-inlined HTML body) or "md" (the same as
    Markdown, what `digest preview --format md` prints). The message's budget decides what every part shows."""
    fmts = ("txt", "html") if "html" in digest.profile.formats else ("txt",)
    out = _render(digest, cache, tuple(dict.fromkeys((*fmts, fmt))), text_fmt="txt", manage_hint=manage_hint,
                  now=now, unsubscribe_url=unsubscribe_url, feed_url=feed_url, view_url=view_url,
                  more_url=more_url)[0]  # fmt: skip
    return out[fmt]


def render_page(
    digest: Digest,
    cache: RenderCache,
    *,
    now: datetime | None = None,
    feed_url: str | None = None,
    unsubscribe_url: str | None = None,
    more_url: str | None = None,
) -> str:
    """The digest as a standalone HTML document with the email's look, for an archive page: every match, the
    shown ones and the overflow (``digest.matches`` + ``digest.overflow``), abstracts at full configured length,
    no size budget. Links are optional: ``feed_url`` (Atom feed), ``unsubscribe_url``, ``more_url`` (where
    matches beyond ``digest.overflow`` are listed, if any)."""
    kw = {"unsubscribe_url": unsubscribe_url, "feed_url": feed_url, "view_url": None, "more_url": more_url}
    return _render(digest, cache, ("html",), text_fmt=None, manage_hint="", now=now, page=True, **kw)[0]["html"]
