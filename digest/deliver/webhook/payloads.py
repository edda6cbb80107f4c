"""One digest as the request bodies a webhook target accepts: Slack Block Kit, Discord embeds, a Matrix
``m.room.message`` or plain JSON, each within the target's documented limits (a long digest is split into
several messages, never a paper across two) and with user and dump text escaped for the target's markup.

The "Also for you" papers (the ranker's suggestions the keywords missed, after the matches) are labelled as the
email labels them: under an "Also for you" heading (Slack, Matrix: again in each part that has some), each one's
embed headed so (Discord), ``"suggestion": true`` on each (JSON); their why line is the reason they were picked."""

from __future__ import annotations

import html
import json
import logging
import math
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from digest.errors import ConfigError
from digest.identity import paper_links, web_url
from digest.models import Digest, Match

__all__ = ["KINDS", "build_parts", "parcel_data"]

log = logging.getLogger(__name__)

KINDS = ("slack", "discord", "matrix", "json")

Part = dict[str, Any]

_CUT = "…"
_TITLE_MAX = 300  # characters of a title in a chat message (a dump may hold a 100 KB one)
_LINE_MAX = 300  # the authors line and the "why" line
_SUMMARY_MAX = 300  # the abstract (or AI summary) excerpt
_WHO_MAX = 80  # the user's name in a header
_AUTHORS_SHOWN = 3
_URL_MAX = 1900  # a longer URL is left out: it cannot be shortened, and must fit one 2,000-char Slack element
_TITLE_URL_MAX = 1000  # a title links only through a URL this short, so a paper's text stays within its limits
_SUGGESTED = "Also for you"  # the suggestions' label, as the email, the archive page and the feed have it

# Slack (https://docs.slack.dev/reference/block-kit/blocks): 50 blocks a message, section text 3,000 chars,
# header plain_text 150, context 10 elements of 2,000 chars; the notification text is kept to 3,000.
_SLACK_BLOCKS, _SLACK_SECTION, _SLACK_HEADER, _SLACK_ELEMENT, _SLACK_TEXT = 50, 3000, 150, 2000, 3000
# Discord (https://discord.com/developers/docs/resources/message#embed-object-embed-limits): content 2,000,
# 10 embeds, title 256, description 4,096, and 6,000 chars of embed text in one message.
_DISCORD_CONTENT, _DISCORD_EMBEDS, _DISCORD_TITLE, _DISCORD_TOTAL = 2000, 10, 256, 6000
_DISCORD_COLOR = 0xFFD21E  # Hugging Face yellow
# Matrix: an event is at most 65,536 bytes with its envelope (sender, room, ids, signatures): 60,000 for content.
_MATRIX_BYTES = 60_000
_JSON_PAPERS = 100  # papers in one plain-JSON body
_JSON_TITLE, _JSON_ABSTRACT, _JSON_FIELD, _JSON_AUTHORS = 1000, 5000, 1000, 100


def parcel_data(parts: Sequence[Part]) -> bytes:
    """The outbox bytes of a webhook digest: ``{"parts": [...]}`` as UTF-8 JSON (what ``WebhookChannel`` reads)."""
    return json.dumps({"parts": list(parts)}, ensure_ascii=False).encode("utf-8")


def build_parts(
    kind: str,
    digest: Digest,
    shown: Sequence[Match],
    *,
    view_url: str | None,
    feed_url: str | None,
    now: datetime,
) -> list[Part]:
    """The request bodies that deliver ``digest`` (showing ``shown``, in order) to a ``kind`` target, in order."""
    builder = _BUILDERS.get(kind)
    if builder is None:
        raise ConfigError(f"unknown webhook kind {kind!r}", f"use one of: {', '.join(KINDS)}")
    # A suggestion that is also a match is shown as a match, as render shows each paper once, matches first.
    matched = {m.paper.key for m in (*digest.matches, *digest.overflow)}
    suggested = {m.paper.key for m in digest.suggestions} - matched
    head = _head(digest, shown, suggested, view_url=view_url, feed_url=feed_url, now=now)
    items = [_item(match, number, match.paper.key in suggested) for number, match in enumerate(shown, 1)]
    parts = builder(head, items)
    log.debug("%s digest of %s for %s: %d papers in %d parts", kind, head.user, head.period, len(items), len(parts))
    return parts


# ---- what every kind shows --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Head:
    """The digest-wide text: header, archive and feed links, notes; raw (each kind escapes it)."""

    user: str  # the profile name (the JSON body's "user")
    header: str  # "5 new papers for Ada — 2026-11-23", "4 new papers + 1 suggestion for Ada — 2026-11-23"
    period: str
    count: int
    view_url: str | None
    feed_url: str | None
    notes: tuple[str, ...]  # what the last part adds: papers carried over or dropped
    generated_at: str

    @property
    def links(self) -> list[tuple[str, str]]:
        """The footer's (label, url) links: the archive page and the feed, when given."""
        pairs = (("View in browser", self.view_url), ("Atom feed", self.feed_url))
        return [(label, url) for label, url in pairs if url]


@dataclass(frozen=True, slots=True)
class _Item:
    """One shown paper as every chat kind renders it: one-line raw text fields and its links."""

    number: int  # 1-based position in the digest
    match: Match
    title: str
    url: str | None  # where the title links: the arXiv abstract, else the Hugging Face page
    meta: str  # "A, B, C et al. · Org · ▲ 42"
    reason: str  # why it matched, or (a suggestion) why it is suggested
    summary: str
    links: tuple[tuple[str, str], ...]  # (label, url), in the order a digest shows them
    suggested: bool = False  # an "Also for you" paper (they come after the matches)


def _one_line(text: str | None) -> str:
    """``text`` with every run of whitespace (line breaks included) made one space."""
    return " ".join(text.split()) if text else ""


def _head(
    digest: Digest,
    shown: Sequence[Match],
    suggested: Collection[str],
    *,
    view_url: str | None,
    feed_url: str | None,
    now: datetime,
) -> _Head:
    profile = digest.profile
    who = _clip(_one_line(profile.display_name) or profile.name, _WHO_MAX)
    period = _clip(_one_line(digest.period), 40)
    k = sum(m.paper.key in suggested for m in shown)
    n = len(shown) - k
    # Counted as the email's subject counts them: the keyword matches, then the suggestions.
    extra = f"{k} suggestion{'' if k == 1 else 's'}" if k else ""
    if n:
        header = f"{n} new paper{'' if n == 1 else 's'}{f' + {extra}' if extra else ''} for {who} — {period}"
    else:
        header = f"{extra or 'No new papers'} for {who} — {period}"
    notes = []
    if digest.overflow:
        more = len(digest.overflow)
        notes.append(f"{more} more matching paper{' comes' if more == 1 else 's come'} in the next digest.")
    if digest.dropped:
        old = len(digest.dropped)
        notes.append(
            f"{old} older matching paper{' was' if old == 1 else 's were'} left out (past the catch-up window)."
        )
    return _Head(
        user=profile.name,
        header=header,
        period=digest.period,
        count=len(shown),
        view_url=_url(view_url),
        feed_url=_url(feed_url),
        notes=tuple(notes),
        generated_at=now.isoformat(),
    )


def _url(url: str | None) -> str | None:
    """An http(s) URL fit to link (percent-encoded, so free of ``<>|()`` and spaces), else None."""
    safe = web_url(url)
    return safe if safe is not None and len(safe) <= _URL_MAX else None


def _item(match: Match, number: int, suggested: bool = False) -> _Item:
    paper = match.paper
    links = paper_links(paper)
    names = [name for name in (_one_line(a) for a in paper.authors) if name]
    total = max(paper.n_authors or 0, len(names))
    authors = ", ".join(_clip(name, 60) for name in names[:_AUTHORS_SHOWN])
    if authors and total > _AUTHORS_SHOWN:
        authors += " et al."
    upvotes = f"▲ {paper.upvotes}" if paper.upvotes is not None else ""
    meta = " · ".join(x for x in (authors, _clip(_one_line(paper.organization), 100), upvotes) if x)
    code = "Code" + (f" ★{links.code_stars}" if links.code_stars is not None else "")
    labelled = [("PDF", links.pdf), ("arXiv", links.arxiv), ("Hugging Face", links.hf)]
    labelled += [(code, links.code), ("Project", links.project)]
    best = _url(links.arxiv or links.hf)
    return _Item(
        number=number,
        match=match,
        title=_one_line(paper.title) or "(untitled)",
        url=best if best is not None and len(best) <= _TITLE_URL_MAX else None,
        meta=meta,
        reason=_one_line(match.reason),
        summary=_one_line(paper.ai_summary or paper.abstract),
        links=tuple((label, safe) for label, url in labelled if (safe := _url(url)) is not None),
        suggested=suggested,
    )


def _clip(text: str, limit: int, escape: Callable[[str], str] = str, measure: Callable[[str], int] = len) -> str:
    """``escape(text)``, cut to at most ``limit`` by ``measure`` with "…" where it was cut (never inside an escape)."""
    out = escape(text)
    if measure(out) <= limit:
        return out
    if limit < 1:
        return ""
    # Escaping never shortens text, so no raw prefix longer than ``limit`` fits: the search stays small.
    lo, hi = 0, min(len(text), limit)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if measure(escape(text[:mid].rstrip())) + 1 <= limit:
            lo = mid
        else:
            hi = mid - 1
    return escape(text[:lo].rstrip()) + _CUT


def _utf16(text: str) -> int:
    """Length in UTF-16 code units: what a JavaScript client counts; never less than the code-point count."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _fit_join(pieces: Sequence[str], sep: str, limit: int, measure: Callable[[str], int] = len) -> str:
    """``pieces`` joined by ``sep``, leaving out those that would take the result past ``limit``."""
    out = ""
    for piece in pieces:
        candidate = f"{out}{sep}{piece}" if out else piece
        if measure(candidate) <= limit:
            out = candidate
    return out


def _pack(costs: Sequence[tuple[int, ...]], room: tuple[int, ...]) -> list[list[int]]:
    """Greedy split of items (indexes, in order) into groups whose summed costs stay within ``room``."""
    groups: list[list[int]] = [[]]
    used = [0] * len(room)
    for index, cost in enumerate(costs):
        if groups[-1] and any(u + c > r for u, c, r in zip(used, cost, room, strict=True)):
            groups.append([])
            used = [0] * len(room)
        if any(c > r for c, r in zip(cost, room, strict=True)):
            log.warning("webhook payload: paper %d alone exceeds a message limit", index + 1)
        groups[-1].append(index)
        used = [u + c for u, c in zip(used, cost, strict=True)]
    return groups


def _part_label(part: int, parts: int) -> str:
    return f"part {part} of {parts}" if parts > 1 else ""


# ---- Slack: Block Kit over an incoming webhook ----------------------------------------------------------------


def _slack_escape(text: str) -> str:
    """Slack mrkdwn escaping: only & < > are control characters (a mention or link needs a literal "<")."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_link(url: str, label: str) -> str:
    """``<url|label>`` with ``label`` already escaped; a "|" in it would end the URL part early, so it is swapped."""
    return f"<{_slack_escape(url)}|{label.replace('|', '¦')}>"


def _slack_clip(text: str, limit: int) -> str:
    return _clip(text, limit, _slack_escape, _utf16)


def _slack_paper(item: _Item) -> list[Part]:
    title = _slack_clip(item.title, _TITLE_MAX)
    lines = [f"*{_slack_link(item.url, title) if item.url else title}*"]
    if item.meta:
        lines.append(_slack_clip(item.meta, _LINE_MAX))
    if item.reason:
        lines.append("_Why:_ " + _slack_clip(item.reason, _LINE_MAX))
    used = _utf16("\n".join(lines)) + 1
    if item.summary:
        lines.append(_slack_clip(item.summary, min(_SUMMARY_MAX, _SLACK_SECTION - used)))
    elements = [{"type": "mrkdwn", "text": _slack_link(url, _slack_escape(label))} for label, url in item.links]
    blocks: list[Part] = [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}]
    if elements:  # Slack refuses a context block without elements
        blocks.append({"type": "context", "elements": elements[:10]})
    return [*blocks, {"type": "divider"}]


def _slack_heading(text: str) -> Part:
    return {"type": "header", "text": {"type": "plain_text", "text": _clip(text, _SLACK_HEADER, str, _utf16)}}


def _slack(head: _Head, items: Sequence[_Item]) -> list[Part]:
    papers = [_slack_paper(item) for item in items]
    # Header and footer blocks, and the "Also for you" heading in every part, should its papers be suggestions.
    fixed = 2 + any(item.suggested for item in items)
    groups = _pack([(len(blocks),) for blocks in papers], (_SLACK_BLOCKS - fixed,))
    parts = []
    for n, group in enumerate(groups, 1):
        label = _part_label(n, len(groups))
        footer = [_slack_link(url, text) for text, url in head.links]
        footer += [label] if label else []
        footer += [_slack_clip(note, _SLACK_ELEMENT) for note in head.notes] if n == len(groups) else []
        blocks: list[Part] = [_slack_heading(head.header)]
        labelled = False
        for index in group:
            if items[index].suggested and not labelled:  # suggestions come last: one heading above them
                blocks.append(_slack_heading(_SUGGESTED))
                labelled = True
            blocks.extend(papers[index])
        if footer:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": t} for t in footer]})
        titles = "; ".join(items[i].title for i in group)
        text = f"{head.header}{f' ({label})' if label else ''}{': ' + titles if titles else ''}"
        parts.append(
            {"text": _slack_clip(text, _SLACK_TEXT), "blocks": blocks, "unfurl_links": False, "unfurl_media": False}
        )
    return parts


# ---- Discord: execute webhook with one embed per paper --------------------------------------------------------

_DISCORD_SPECIAL = re.compile(r"([\\*_~`|<>\[\]()#@])")


def _discord_escape(text: str) -> str:
    """Discord markdown escaping: a backslash before every character that formats, quotes, links or mentions."""
    return _DISCORD_SPECIAL.sub(r"\\\1", text)


def _discord_clip(text: str, limit: int) -> str:
    return _clip(text, limit, _discord_escape, _utf16)


def _discord_embed(item: _Item) -> Part:
    lines = []
    if item.meta:
        lines.append(_discord_clip(item.meta, _LINE_MAX))
    if item.reason:
        lines.append("**Why:** " + _discord_clip(item.reason, _LINE_MAX))
    if item.summary:
        lines.append(_discord_clip(item.summary, _SUMMARY_MAX))
    links = _fit_join([f"[{label}]({url})" for label, url in item.links], " · ", 2000, _utf16)
    if links:
        lines.append(links)
    embed: Part = {"title": _discord_clip(item.title, _DISCORD_TITLE), "description": "\n".join(lines)}
    if item.suggested:  # the author line sits above the title: each suggestion's embed says what it is
        embed["author"] = {"name": _SUGGESTED}
    if item.url:
        embed["url"] = item.url
    embed["color"] = _DISCORD_COLOR
    return embed


def _discord_text(embed: Part) -> int:
    """The characters of an embed that count toward Discord's 6,000 a message (the author's name is one)."""
    return _utf16(embed["title"]) + _utf16(embed["description"]) + _utf16(embed.get("author", {}).get("name", ""))


def _discord(head: _Head, items: Sequence[_Item]) -> list[Part]:
    embeds = [_discord_embed(item) for item in items]
    costs = [(1, _discord_text(e)) for e in embeds]
    groups = _pack(costs, (_DISCORD_EMBEDS, _DISCORD_TOTAL))
    parts = []
    for n, group in enumerate(groups, 1):
        label = _part_label(n, len(groups))
        first = f"**{_discord_clip(head.header, 400)}**" + (f" ({label})" if label else "")
        # <url> inside a masked link keeps Discord from adding a preview embed of the archive page.
        links = [f"[{text}](<{url}>)" for text, url in head.links]
        lines = [first, _fit_join(links, " · ", _DISCORD_CONTENT - _utf16(first) - 1, _utf16)]
        if n == len(groups):
            lines += [_discord_escape(note) for note in head.notes]
        content = _fit_join([line for line in lines if line], "\n", _DISCORD_CONTENT, _utf16)
        parts.append(
            {
                "content": content,
                "embeds": [embeds[i] for i in group],
                "allowed_mentions": {"parse": []},  # a title saying @everyone pings nobody
            }
        )
    return parts


# ---- Matrix: one m.room.message event per part ------------------------------------------------------------------


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _matrix_paper(item: _Item) -> tuple[str, str]:
    """The paper's plain-text lines and its HTML ``<li>``."""
    title = _clip(item.title, _TITLE_MAX)
    meta, reason, summary = (
        _clip(item.meta, _LINE_MAX),
        _clip(item.reason, _LINE_MAX),
        _clip(item.summary, _SUMMARY_MAX),
    )
    plain = [f"{item.number}. {title}"] + [f"   {x}" for x in (item.url, meta) if x]
    plain += [f"   Why: {reason}"] if reason else []
    plain += [f"   {summary}"] if summary else []
    plain += ["   " + " | ".join(f"{label}: {url}" for label, url in item.links)] if item.links else []
    head = f'<a href="{_esc(item.url)}"><b>{_esc(title)}</b></a>' if item.url else f"<b>{_esc(title)}</b>"
    rows = [head] + ([_esc(meta)] if meta else []) + ([f"<i>Why:</i> {_esc(reason)}"] if reason else [])
    rows += [_esc(summary)] if summary else []
    if item.links:
        rows.append(" · ".join(f'<a href="{_esc(url)}">{_esc(label)}</a>' for label, url in item.links))
    return "\n".join(plain) + "\n\n", f"<li><p>{'<br>'.join(rows)}</p></li>"


def _matrix_part(head: _Head, papers: Sequence[tuple[str, str, bool]], start: int, label: str, last: bool) -> Part:
    """One event: the header, ``papers`` ((plain text, ``<li>``, suggested), numbered from ``start``), the
    suggestions under their own heading after the matches, and the footer (its notes on the ``last`` part)."""
    links = head.links
    notes = list(head.notes) if last else []
    title = head.header + (f" ({label})" if label else "")
    first = next((i for i, (_, _, suggested) in enumerate(papers) if suggested), len(papers))
    body = f"{title}\n\n" + "".join(plain for plain, _, _ in papers[:first])
    if first < len(papers):
        body += f"{_SUGGESTED}:\n\n" + "".join(plain for plain, _, _ in papers[first:])
    body += "\n".join([f"{text}: {url}" for text, url in links] + notes)
    foot = [f'<a href="{_esc(url)}">{_esc(text)}</a>' for text, url in links] + [_esc(note) for note in notes]
    formatted = f"<h4>{_esc(title)}</h4>"
    if first:
        formatted += f'<ol start="{start}">' + "".join(li for _, li, _ in papers[:first]) + "</ol>"
    if first < len(papers):  # the numbering goes on, as in the email
        formatted += f'<p><b>{_SUGGESTED}</b></p><ol start="{start + first}">'
        formatted += "".join(li for _, li, _ in papers[first:]) + "</ol>"
    if foot:
        formatted += f"<p>{' · '.join(foot)}</p>"
    return {
        "msgtype": "m.notice",  # the convention for automated messages: clients and bots do not answer them
        "body": body.strip(),
        "format": "org.matrix.custom.html",
        "formatted_body": formatted,
        "m.mentions": {},  # intentional mentions (spec v1.7): none, so "@room" in a title notifies nobody
    }


def _json_size(value: Any) -> int:
    """Bytes of ``value`` as JSON with non-ASCII escaped: never less than the UTF-8 body actually sent."""
    return len(json.dumps(value))


def _matrix(head: _Head, items: Sequence[_Item]) -> list[Part]:
    papers = [(*_matrix_paper(item), item.suggested) for item in items]
    # JSON escapes character by character, so a part's size is its skeleton plus each paper's escaped text. The
    # skeleton has the "Also for you" heading and its list whenever a part could have them.
    worst = len(items) + 1
    empty = [("", "", False)] + ([("", "", True)] if any(item.suggested for item in items) else [])
    room = _MATRIX_BYTES - _json_size(_matrix_part(head, empty, worst, _part_label(worst, worst), True))
    groups = _pack([(_json_size(plain) - 2 + _json_size(li) - 2,) for plain, li, _ in papers], (room,))
    return [
        _matrix_part(
            head,
            [papers[i] for i in group],
            group[0] + 1 if group else 1,
            _part_label(n, len(groups)),
            n == len(groups),
        )
        for n, group in enumerate(groups, 1)
    ]


# ---- plain JSON ----------------------------------------------------------------------------------------------


def _json_paper(match: Match, suggested: bool) -> Part:
    paper = match.paper
    links = paper_links(paper)
    return {
        "key": paper.key,
        "arxiv_id": paper.arxiv_id,
        "title": _clip(_one_line(paper.title), _JSON_TITLE),
        "authors": [_clip(_one_line(a), 200) for a in paper.authors[:_JSON_AUTHORS]],
        "organization": _clip(_one_line(paper.organization), 300) or None,
        "upvotes": paper.upvotes,
        "score": match.score if math.isfinite(match.score) else None,  # NaN is not JSON
        # An "Also for you" paper: the ranker's pick the keywords missed; "reason" then says why it was picked.
        "suggestion": suggested,
        "reason": _clip(_one_line(match.reason), _JSON_FIELD),
        "abstract": _clip(paper.abstract.strip(), _JSON_ABSTRACT),
        "links": {
            "pdf": links.pdf,
            "arxiv": links.arxiv,
            "hf": links.hf,
            "code": links.code,
            "project": links.project,
        },
    }


def _json(head: _Head, items: Sequence[_Item]) -> list[Part]:
    groups = _pack([(1,)] * len(items), (_JSON_PAPERS,))
    return [
        {
            "user": head.user,
            "period": head.period,
            "generated_at": head.generated_at,
            "view_url": head.view_url,
            "feed_url": head.feed_url,
            "part": n,
            "parts": len(groups),
            "papers": [_json_paper(items[i].match, items[i].suggested) for i in group],
        }
        for n, group in enumerate(groups, 1)
    ]


_BUILDERS: dict[str, Callable[[_Head, Sequence[_Item]], list[Part]]] = {
    "slack": _slack,
    "discord": _discord,
    "matrix": _matrix,
    "json": _json,
}
