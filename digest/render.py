"""Digests as Markdown, plain text and CSS-inlined HTML email, assembled from per-paper fragments.

Speed comes from doing the expensive work once per run: ``prepare_papers`` renders every paper's
card with Jinja and inlines its CSS (in the context of the real page) with per-user *slots* left
in it (title, abstract, reason). ``render_digest`` then only escapes-and-splices highlights into
pre-escaped text and joins strings. Page skeletons (header/footer) are rendered and inlined once
per distinct set of shared values (count, period, dumps...), with per-user values as slots too.
"""

from __future__ import annotations

import html as _html
import logging
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache, partial
from itertools import accumulate
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import css_inline
import jinja2
from markupsafe import Markup

from digest.errors import RenderError
from digest.models import Digest, Match, Paper, RenderedEmail
from digest.textmap import Esc as _Esc
from digest.textmap import b64_bound as _b64_bound
from digest.textmap import clean as _clean
from digest.textmap import cut_offset as _cut
from digest.textmap import escape as _escape
from digest.textmap import hit_spans as _hit_spans
from digest.textmap import html_size_estimate, safe_url
from digest.textmap import md_guard as _md_guard
from digest.textmap import md_inline as _md_inline
from digest.textmap import qp as _qp
from digest.textmap import splice as _splice
from digest.textmap import wrap_breaks as _wrap_breaks

__all__ = ["RenderCache", "RenderOptions", "html_size_estimate", "make_environment", "paper_links"]
__all__ += ["prepare_papers", "render_digest", "render_part", "safe_url"]
__all__ += ["templates_dirs"]

log = logging.getLogger(__name__)

HF_PAPERS = "https://huggingface.co/papers"
FORMATS = ("html", "md", "txt")
_ARXIV_RE = re.compile(r"^(?:arxiv:)?(\d{4}\.\d{4,5}|[a-z][a-z.-]*/\d{7})(?:v\d+)?$", re.IGNORECASE)


_Template = tuple[tuple[str, ...], tuple[str, ...]]  # literals, and the slot names between them


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """Knobs shared by every digest of a run."""

    abstract_chars: int = 600  # abstracts are cut at a word boundary near this length
    # Budget for the HTML part as sent (base64, bounded from the quoted-printable cost of its pieces): Gmail
    # clips a message whose HTML passes ~102 KB, and whether it counts encoded bytes is not documented.
    max_html_bytes: int = 90_000
    templates_dir: Path | None = None  # user overrides, searched before the default templates
    base_url: str | None = None  # where "N more papers" points when the user has no feed
    site_name: str = "Paper digest"
    lang: str = "en"
    wrap_width: int = 76  # text/plain and Markdown abstracts are wrapped at this column


@dataclass(frozen=True, slots=True)
class _Prepared:
    """One paper ready to be spliced into any user's digest."""

    paper: Paper
    title: dict[str, _Esc]
    abstract: dict[str, _Esc]
    cuts: tuple[int, ...]  # per abstract level: where the source abstract is cut
    trimmed: tuple[bool, ...]  # per abstract level: whether that cut drops anything
    parts: dict[tuple[str, bool], _Template]  # (format, trimmed) -> _fill template
    marks: dict[str, tuple[str, str]]  # "title" / "abstract" -> inlined highlight open/close tags
    # Quoted-printable cost of the HTML card (see _qp), so the size budget needs no per-user encoding:
    qp_fixed: tuple[int, int]  # per trimmed: literal parts + escaped title (+ ellipsis)
    qp_abstract: tuple[int, ...]  # per level: the escaped abstract up to the cut
    qp_marks: tuple[int, int]  # one title highlight, one abstract highlight
    lines: tuple[int, int]  # per trimmed: newlines in the literal parts


@dataclass(frozen=True, slots=True)
class RenderCache:
    """Everything prepared once per run; pass it to every ``render_digest`` call."""

    options: RenderOptions
    env: jinja2.Environment
    nonce: str
    slot_re: re.Pattern[str]
    levels: tuple[int, ...]
    papers: dict[str, _Prepared] = field(default_factory=dict)
    skeletons: dict[tuple[Any, ...], tuple[_Template, int, int]] = field(default_factory=dict)
    subjects: dict[tuple[Any, ...], str] = field(default_factory=dict)


# --- environment -------------------------------------------------------------------------------


def templates_dirs(override_dir: Path | None = None) -> list[Path]:
    """Template folders in search order: the user's override, then the packaged (or checkout) defaults."""
    here = Path(__file__).resolve().parent
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
        autoescape=lambda name: bool(name) and name.endswith((".html.j2", ".xml.j2")),
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


def paper_links(paper: Paper) -> dict[str, str | None]:
    """The paper's Hugging Face page (or a title search), arXiv page and project page."""
    return _id_links(paper) | {"project": safe_url(paper.project_page or paper.github_repo)}


def _id_links(paper: Paper) -> dict[str, str | None]:
    m = next((m for c in (paper.arxiv_id, paper.key) if (m := _ARXIV_RE.match(c or ""))), None)
    if m is None:
        return {"paper": f"{HF_PAPERS}?q={quote_plus(_clean(paper.title)[:300])}", "arxiv": None, "project": None}
    return {"paper": f"{HF_PAPERS}/{m[1]}", "arxiv": f"https://arxiv.org/abs/{m[1]}", "project": None}


def _meta(paper: Paper) -> list[str]:
    n, up = paper.n_authors or len(paper.authors), paper.upvotes
    when = paper.published.isoformat() if paper.published else _clean(paper.published_text or "")
    authors = f"{n} author{'s' if n != 1 else ''}" if n else ""
    upvotes = f"{up} upvote{'s' if up != 1 else ''}" if up is not None else ""
    return [m for m in (_clean(paper.organization or ""), authors, when, upvotes) if m]


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


def _prepare_into(cache: RenderCache, papers: Sequence[Paper]) -> None:
    unique = list({p.key: p for p in papers}.values())
    if not unique:
        return
    t = partial(_tok, cache)
    ctxs = [
        {"paper": p, "links": paper_links(p), "meta": _meta(p), "has_abstract": bool(_clean(p.abstract).strip())}
        for p in unique
    ]
    # Each slot carries a probe highlight so the inlined <mark> styling can be read back per slot.
    probe = {
        n: Markup(f"{t(n)}<mark><strong>{t(n + '_hl')}</strong></mark>{t(n + '_end')}") for n in ("title", "abstract")
    }
    cards = [
        f"{t(f'b{i}x{int(tr)}')}"
        + _render_template(cache.env, "paper.html.j2", {**ctx, **probe, "trimmed": tr, "reason": Markup(t("reason"))})
        + t("e")
        for i, ctx in enumerate(ctxs)
        for tr in (False, True)
    ]
    # Cards are inlined inside the real page so descendant selectors apply as they will per user.
    page = _inline(_render_skeleton(cache, "html", (1, 1, "", "", (), True, True, 0), "".join(cards)))
    n = cache.nonce
    found = {
        (int(i), tr == "1"): body for i, tr, body in re.findall(f"{n}_b(\\d+)x([01])_{n}(.*?){n}_e_{n}", page, re.S)
    }
    probe_re = re.compile(f"{n}_(title|abstract)_{n}(.*?){n}_\\1_hl_{n}(.*?){n}_\\1_end_{n}", re.S)
    for i, p in enumerate(unique):
        split: dict[tuple[str, bool], list[str]] = {}
        marks: dict[str, tuple[str, str]] = {}

        for tr in (False, True):
            if (i, tr) not in found:
                raise RenderError("paper.html.j2 lost its slot markers", "print title, abstract and reason as text")
            marks.update((m[1], (m[2], m[3])) for m in probe_re.finditer(found[(i, tr)]))
            split[("html", tr)] = cache.slot_re.split(probe_re.sub(lambda m: t(m[1]), found[(i, tr)]))
            for fmt in ("md", "txt"):
                ctx = {**ctxs[i], "trimmed": tr, **{k: t(k) for k in ("title", "abstract", "reason")}}
                split[(fmt, tr)] = cache.slot_re.split(_render_template(cache.env, f"paper.{fmt}.j2", ctx))
        marks.setdefault("title", ("<mark><strong>", "</strong></mark>"))
        marks.setdefault("abstract", marks["title"])
        breaks = _wrap_breaks(p.abstract, cache.options.wrap_width)
        title = {f: _escape(p.title if _clean(p.title).strip() else "(untitled)", f) for f in FORMATS}
        abstract = {f: _escape(p.abstract, f, breaks if f != "html" else frozenset()) for f in FORMATS}
        cuts = tuple(_cut(p.abstract, level) for level in cache.levels)
        lits = [split[("html", tr)][0::2] for tr in (False, True)]
        fixed = [sum(map(_qp, lit)) + _qp(title["html"].text) for lit in lits]
        cache.papers[p.key] = _Prepared(
            p,
            title,
            abstract,
            cuts,
            tuple(cut < len(p.abstract.rstrip()) for cut in cuts),
            {k: _compile(cache, v, f"paper.{k[0]}.j2") for k, v in split.items()},
            marks,
            (fixed[0], fixed[1] + _qp(" …")),
            tuple(_qp(abstract["html"].text[: cut + abstract["html"].shift[cut]]) for cut in cuts),
            (_qp("".join(marks["title"])), _qp("".join(marks["abstract"]))),
            (sum(x.count("\n") for x in lits[0]), sum(x.count("\n") for x in lits[1])),
        )


def _inline(page: str) -> str:
    try:
        return _inliner().inline(page)
    except Exception as exc:  # css-inline raises its own InlineError and ValueError
        raise RenderError(f"CSS inlining failed: {exc}", "check style.css and the HTML templates") from exc


@lru_cache(maxsize=1)
def _inliner() -> css_inline.CSSInliner:
    return css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


def _render_skeleton(cache: RenderCache, fmt: str, key: tuple[Any, ...], papers: str | None = None) -> str:
    count, total, period, day, dumps, has_feed, has_manage, dropped = key
    t = (lambda n: Markup(_tok(cache, n))) if fmt == "html" else (lambda n: _tok(cache, n))
    ctx = {"site_name": cache.options.site_name, "lang": cache.options.lang, "period": period, "date": day}
    ctx |= {"count": count, "total": total, "more": total - count, "dumps": list(dumps), "dropped": dropped}
    ctx |= {
        **{n: t(n) for n in ("subject", "user_name", "unsubscribe_url", "more_url")},
        "feed_url": t("feed_url") if has_feed else None,
        "manage_hint": t("manage_hint") if has_manage else None,
        "papers": t("papers") if papers is None else Markup(papers),
    }
    return _render_template(cache.env, f"digest.{fmt}.j2", ctx)


def _skeleton(cache: RenderCache, fmt: str, key: tuple[Any, ...]) -> tuple[_Template, int, int]:
    """The page around the papers as a ``_fill`` template, with its literals' QP cost and newline count."""
    found = cache.skeletons.get((fmt, *key))
    if found is None:
        text = _render_skeleton(cache, fmt, key)
        parts = cache.slot_re.split(_inline(text) if fmt == "html" else text)
        found = (
            _compile(cache, parts, f"digest.{fmt}.j2"),
            sum(map(_qp, parts[0::2])),
            sum(x.count("\n") for x in parts[0::2]),
        )
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


def _card(pp: _Prepared, spans: tuple[list, list], reason: str, level: int, fmt: str) -> str:
    """One paper for one user: highlights spliced into the pre-escaped text, slots filled."""
    cut, trimmed = pp.cuts[level], pp.trimmed[level]
    tspans, aspans = spans if fmt != "txt" else ([], [])
    (to, tc), (ao, ac) = (pp.marks["title"], pp.marks["abstract"]) if fmt == "html" else _MARKS[fmt]
    abstract = _splice(pp.abstract[fmt], aspans, cut, ao, ac) + (" …" if trimmed else "")
    values = {
        "title": _splice(pp.title[fmt], tspans, len(pp.title[fmt].shift) - 1, to, tc),
        "abstract": _md_guard(abstract) if fmt == "md" else abstract,
        "reason": reason,
    }
    return _fill(pp.parts[(fmt, trimmed)], values)


def _card_qp(pp: _Prepared, spans: tuple[list, list], reason_qp: int, level: int) -> tuple[int, int]:
    """The HTML card's QP cost and newline count, from the numbers prepared with the paper."""
    cut, trimmed = pp.cuts[level], pp.trimmed[level]
    marks = len(spans[0]) * pp.qp_marks[0] + sum(s < cut for s, _ in spans[1]) * pp.qp_marks[1]
    return pp.qp_fixed[trimmed] + pp.qp_abstract[level] + marks + reason_qp, pp.lines[trimmed]


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
        ctx = {"site_name": cache.options.site_name, "date": day, "period": period}
        ctx |= {"count": count, "total": total, "more": total - count}
        # One line whatever the template does: CR/LF would end the header, "=?" would start an encoded-word.
        subject = _clean(_render_template(cache.env, "subject.txt.j2", ctx)).replace("=?", "= ?")[:200]
        if not subject:
            raise RenderError("subject.txt.j2 rendered an empty subject", "make the template print a subject")
        cache.subjects[key] = subject
    return subject


def _values(fmt: str, subject: str, name: str, urls: tuple[str, str | None, str], hint: str) -> dict[str, str]:
    unsub, feed, more = urls
    text = {"html": _html.escape, "md": _md_inline, "txt": _clean}[fmt]
    url = _html.escape if fmt == "html" else str
    return {
        **{"subject": text(subject), "user_name": text(name), "manage_hint": text(hint), "papers": ""},
        **{"unsubscribe_url": url(unsub), "feed_url": url(feed or ""), "more_url": url(more)},
    }


def _render(
    digest: Digest,
    cache: RenderCache,
    fmts: Sequence[str],
    *,
    unsubscribe_url: str,
    feed_url: str | None,
    manage_hint: str,
    now: datetime | None,
) -> tuple[dict[str, str], str, tuple[str, ...]]:
    opts, profile = cache.options, digest.profile
    feed = _require_url(feed_url, "feed URL") if feed_url else None
    urls = (_require_url(unsubscribe_url, "unsubscribe URL"), feed, feed or safe_url(opts.base_url) or HF_PAPERS)
    hint = _clean(manage_hint or "")
    name = _clean(profile.display_name or profile.name) or profile.email
    day = _local_day(now or digest.generated_at, profile.timezone)
    dumps = tuple(_clean(d) for d in digest.dumps)
    matches = digest.matches
    prepared = [_get(cache, m.paper) for m in matches]
    spans = [_spans(m) for m in matches]
    reasons = {f: [_REASON[f](m.reason) for m in matches] for f in fmts}
    total = len(matches) + max(digest.omitted, 0)

    def frame(fmt: str, count: int) -> tuple[tuple[_Template, int, int], dict[str, str]]:
        key = (count, total, digest.period, day, dumps, feed is not None, bool(hint), len(digest.dropped))
        subject = _subject(cache, day, digest.period, count, total)
        return _skeleton(cache, fmt, key), _values(fmt, subject, name, urls, hint)

    def page(fmt: str, level: int, count: int) -> str:
        (parts, _, _), values = frame(fmt, count)
        values["papers"] = "".join(_card(prepared[i], spans[i], reasons[fmt][i], level, fmt) for i in range(count))
        return _fill(parts, values)

    level, count = 0, len(matches)
    if "html" in fmts and matches:
        # Gmail clips past ~102 KB: shorten abstracts first, then drop papers behind a "N more" link.
        # Sizes come from costs prepared per paper, so only the chosen page is ever assembled.
        reason_qp = [_qp(r) for r in reasons["html"]]

        def cost(level: int, count: int) -> int:
            ((_, slots), q, lines), values = frame("html", count)
            q += sum(_qp(values[name]) for name in slots)
            for i in range(count):
                cq, cl = _card_qp(prepared[i], spans[i], reason_qp[i], level)
                q, lines = q + cq, lines + cl
            return _b64_bound(q, lines)

        budget = opts.max_html_bytes
        level = next((lv for lv in range(len(cache.levels)) if cost(lv, count) <= budget), len(cache.levels) - 1)
        if cost(level, count) > budget:
            per_card = [_b64_bound(*_card_qp(prepared[i], spans[i], reason_qp[i], level)) for i in range(count)]
            room = budget - (cost(level, 1) - per_card[0])
            count = max(1, sum(1 for used in accumulate(per_card) if used <= room))
            while count > 1 and cost(level, count) > budget:
                count -= 1
    out = {fmt: page(fmt, level, count) for fmt in fmts}
    return out, _subject(cache, day, digest.period, count, total), tuple(m.paper.key for m in matches[:count])


def render_digest(
    digest: Digest,
    cache: RenderCache,
    *,
    unsubscribe_url: str,
    feed_url: str | None = None,
    manage_hint: str = "",
    now: datetime | None = None,
) -> RenderedEmail:
    """One user's email: subject, text/plain (Markdown, or plain text for the "text" format) and HTML.

    ``html`` is "" when the profile's formats leave HTML out; ``paper_keys`` lists the papers shown (the
    size budget may drop some). ``now`` (default ``digest.generated_at``) dates the subject and summary.
    """
    formats = digest.profile.formats
    text_fmt = "txt" if "text" in formats and "markdown" not in formats else "md"
    fmts = (text_fmt, "html") if "html" in formats else (text_fmt,)
    out, subject, keys = _render(
        digest, cache, fmts, unsubscribe_url=unsubscribe_url, feed_url=feed_url, manage_hint=manage_hint, now=now
    )
    return RenderedEmail(
        user=digest.profile.name,
        to=digest.profile.email,
        subject=subject,
        text=out[text_fmt],
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
    now: datetime | None = None,
) -> str:
    """One part alone: "md" (the Markdown text part, what `digest preview` prints), "txt" (plain text without
    Markdown markup) or "html" (the CSS-inlined HTML body)."""
    fmts = (fmt, "html") if fmt != "html" else ("html",)  # the HTML budget decides what every part shows
    kw = {"unsubscribe_url": unsubscribe_url, "feed_url": feed_url, "manage_hint": manage_hint, "now": now}
    return _render(digest, cache, fmts, **kw)[0][fmt]
