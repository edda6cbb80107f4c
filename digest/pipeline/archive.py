"""Archive pages: every digest as a static HTML page (the email's look, every matched paper, those over
``max_papers`` too), and a paginated index of each user's past digests, written beside the feeds:

    <feeds output>/archive/<user slug>/<period>.html      one digest
    <feeds output>/archive/<user slug>/index.html         the newest digests (up to PER_PAGE)
    <feeds output>/archive/<user slug>/index-<k>.html     older ones, PER_PAGE each, k = 1 the oldest

served under <feeds base URL>/archive/ by `digest serve` or any static web server. Pages exist only when
[digest].base_url is set: the email then links to its page ("View in browser", and "N more papers"), and the
papers only the page lists are recorded *archived* for the user when the digest is queued (store/delivery.py).

Pages are derived data, written atomically (temp file + rename) after the digest is committed to the delivery.
The store records up to which outbox row every page is written (``store.archive.archive_marks``): a run that stopped
in between leaves that mark behind, and the next run writes the pages of the rows after it that are missing,
rebuilt from the store (the papers listed on the row, the "Also for you" ones with the reason the digest gave,
the matches matched again against the user's profile for the highlights and the why line), with the user's vote
links. Which papers were suggestions is what the store recorded when the digest was queued (schema v9), not what
today's profile says; only for a digest from before that is it inferred (a shown paper the keywords do not match
was a suggestion, listed without its why). Index pages are numbered from
the oldest so a full one never changes again: a run rewrites ``index.html`` and the two before it, whatever the
length of a user's history.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from digest import config, matching, render, store
from digest.errors import RenderError
from digest.models import Digest, Match, Profile
from digest.pipeline import feedback
from digest.pipeline.settings import feeds_base_url, render_options
from digest.render.atom import feed_slug, write_feed

__all__ = ["FOLDER", "PER_PAGE", "enabled", "index_name", "index_url", "page_digest", "page_name", "page_url"]
__all__ += ["render_index", "render_page", "repair", "user_dir", "write_index", "write_page"]

log = logging.getLogger(__name__)

FOLDER = "archive"
PER_PAGE = 30  # digests per index page
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def enabled(cfg: config.Config) -> bool:
    """Archive pages are written (and papers archived) only when there is a base URL to link them from."""
    return bool(cfg.digest.base_url)


def page_name(period: str) -> str:
    """The file name of a period's page: "2026-11-23.html", "2026-W47.html", "2026-11-23T07-00.html"."""
    return (_UNSAFE.sub("-", period).strip(".-") or "digest") + ".html"


def index_name(number: int, pages: int) -> str:
    """Index page ``number`` (1 = the oldest digests) of ``pages``: the newest is index.html."""
    return "index.html" if number >= pages else f"index-{number}.html"


def user_dir(out: Path, user: str) -> Path:
    """A user's archive folder inside the feeds folder (the feed's slug rule)."""
    return out / FOLDER / feed_slug(user)


def _user_url(cfg: config.Config, user: str) -> str:
    return f"{feeds_base_url(cfg)}/{FOLDER}/{quote(feed_slug(user))}"


def page_url(cfg: config.Config, user: str, period: str) -> str:
    """The URL of a digest's archive page."""
    return f"{_user_url(cfg, user)}/{quote(page_name(period))}"


def index_url(cfg: config.Config, user: str) -> str:
    """The URL of a user's archive index (the newest digests)."""
    return f"{_user_url(cfg, user)}/index.html"


def page_digest(digest: Digest, shown: Collection[str] | None = None) -> Digest:
    """The digest as its page shows it: every match in order, the mailed ones first, nothing left over, then the
    suggestions the email showed (``shown``: its paper keys; None: all of them); the parts a rebuilt page could
    not know (dump names, the dropped count) left out, so rebuilding gives the same bytes."""
    suggestions = digest.suggestions if shown is None else tuple(m for m in digest.suggestions if m.paper.key in shown)
    return replace(digest, matches=digest.matches + digest.overflow, overflow=(), omitted=0, dropped=(), dumps=(),
                   suggestions=suggestions)  # fmt: skip


def render_page(
    cfg: config.Config,
    digest: Digest,
    cache: render.RenderCache,
    *,
    now: datetime,
    votes: Mapping[str, tuple[str, str]] | None = None,
) -> str:
    """A digest's archive page (``digest`` as ``page_digest`` gives it), dated ``now`` to the second, each paper
    with its vote links in ``votes`` (``DigestLinks.votes``, as the email has them)."""
    feed = f"{feeds_base_url(cfg)}/{feed_slug(digest.profile.name)}.xml" if digest.profile.feed else None
    return render.render_page(digest, cache, now=now.replace(microsecond=0), feed_url=feed, votes=votes)


def write_page(out: Path, user: str, period: str, html: str) -> bool:
    """Write a page atomically; False when the file already held it."""
    try:
        return write_feed(user_dir(out, user) / page_name(period), html.encode("utf-8"), durable=False)
    except RenderError as exc:
        raise RenderError(str(exc).replace("feed", "archive page", 1), exc.hint) from exc


# ------------------------------------------------------------------------------------------ index pages


def render_index(
    cfg: config.Config,
    profile: Profile,
    entries: Sequence[tuple[int, str, datetime, int]],
    number: int,
    pages: int,
    *,
    env: object | None = None,
) -> str:
    """Index page ``number`` of ``pages`` of a user's archive: ``entries`` (row id, period, written, papers)
    newest first, links to the pages beside it."""
    env = env or render.make_environment(cfg.digest.templates)
    rows = [
        {"href": page_name(period), "period": period, "date": when.date().isoformat(), "papers": n}
        for _, period, when, n in entries
    ]
    ctx = {
        "user_name": profile.display_name or profile.name,
        "rows": rows,
        "number": number,
        "pages": pages,
        "newer": index_name(number + 1, pages) if number < pages else None,
        "older": index_name(number - 1, pages) if number > 1 else None,
        "feed": f"../../{feed_slug(profile.name)}.xml" if profile.feed else None,
    }
    try:
        return env.get_template("archive_index.html.j2").render(ctx)  # type: ignore[attr-defined]
    except Exception as exc:  # jinja2's errors: the template is the user's to fix
        raise RenderError(f"template archive_index.html.j2 failed: {exc}", "check the archive index template") from exc


def write_index(
    conn: store.Connection, cfg: config.Config, out: Path, profile: Profile, *, start: int, env: object | None = None
) -> list[Path]:
    """Rewrite a user's newest index pages (and any older one missing); returns the files that changed."""
    pages = max(1, -(-store.archive.archive_count(conn, profile.name, start=start) // PER_PAGE))
    folder = user_dir(out, profile.name)
    written = []
    for number in range(pages, 0, -1):
        path = folder / index_name(number, pages)
        # Full pages never change but for their "newer" link, which moves when the newest page fills up.
        if number < pages - 2 and path.exists():
            continue
        chunk = store.archive.archive_index(
            conn, profile.name, start=start, offset=(number - 1) * PER_PAGE, limit=PER_PAGE
        )[::-1]
        data = render_index(cfg, profile, chunk, number, pages, env=env).encode("utf-8")
        if write_feed(path, data, durable=False):
            written.append(path)
    return written


# ------------------------------------------------------------------------------------------ repair


def rebuild_digest(conn: store.Connection, profile: Profile, row: store.archive.ArchivedDigest) -> Digest:
    """The page digest of a stored row: its papers in order. The "Also for you" ones are those the store recorded
    as such, with their reason; the others were matches, matched again for highlights and the why line (one the
    profile no longer matches is listed without them: a match it was). A row from before the store recorded
    suggestions (``row.suggested`` None) falls back to inferring them: a mailed paper the keywords do not match is
    listed as a suggestion without its why; an archived one (always a match once) as a match without them."""
    keys = [*row.paper_keys, *row.archived]
    found = {sp.paper.key: sp.paper for sp in store.get_papers(conn, keys)}
    papers = [found[k] for k in keys if k in found]
    matched = {m.paper.key: m for m in matching.match_profile(profile, papers)} if papers else {}
    if row.suggested is not None:
        reasons = dict(row.suggested)
        suggested = tuple(Match(p, 0.0, (), reasons[p.key]) for p in papers if p.key in reasons)
        matches = tuple(matched.get(p.key) or Match(p, 0.0, (), "") for p in papers if p.key not in reasons)
    else:
        mailed = set(row.paper_keys)
        suggested = tuple(Match(p, 0.0, (), "") for p in papers if p.key in mailed and p.key not in matched)
        matches = tuple(
            matched.get(p.key) or Match(p, 0.0, (), "") for p in papers if p.key in matched or p.key not in mailed
        )
    return Digest(profile=profile, matches=matches, generated_at=row.created_at, period=row.period,
                  suggestions=suggested)  # fmt: skip


def repair(
    conn: store.Connection,
    cfg: config.Config,
    out: Path,
    *,
    written: Mapping[int, str] | None = None,
    profiles: Iterable[Profile] | None = None,
    secret: bytes | None = None,
) -> list[Path]:
    """Write the pages of every digest after the store's mark that this run did not write (``written``: row
    id -> user) and whose file is missing, then the indexes of the users concerned, and move the mark.
    ``secret`` (the mail settings' signing secret) signs the papers' vote links, as the run's own pages have
    them; without it the rebuilt pages have none. Returns the files that changed."""
    start, done = store.archive.archive_marks(conn)
    rows = store.archive.archive_rows_after(conn, max(done, start - 1))
    if not rows:
        return []
    by_name = {p.name: p for p in (profiles if profiles is not None else cfg.profiles())}
    written = written or {}
    changed: list[Path] = []
    users: set[str] = set()
    cache: render.RenderCache | None = None
    for row in rows:
        profile = by_name.get(row.user)
        if profile is None:
            continue  # a user gone from the config: nothing to render them with
        users.add(row.user)
        if row.id in written or (user_dir(out, row.user) / page_name(row.period)).exists():
            continue
        digest = rebuild_digest(conn, profile, row)
        cache = cache or render.prepare_papers((), render_options(cfg))
        keys = [m.paper.key for m in (*digest.matches, *digest.suggestions)]
        votes = feedback.vote_urls(cfg, secret, row.user, keys) if secret is not None else None
        if write_page(out, row.user, row.period, render_page(cfg, digest, cache, now=row.created_at, votes=votes)):
            changed.append(user_dir(out, row.user) / page_name(row.period))
        log.info("archive page of %s for %s rebuilt", row.user, row.period)
    env = render.make_environment(cfg.digest.templates)
    for user in sorted(users):
        changed += write_index(conn, cfg, out, by_name[user], start=start, env=env)
    store.archive.set_archive_done(conn, rows[-1].id)
    return changed
