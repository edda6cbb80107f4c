"""Preview: what `run` would send a user if their period were due now, or their digests over a past span."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

from digest import config, matching, render, sources, store
from digest.config import cadence
from digest.models import Digest, Paper, Profile
from digest.pipeline.plan import due_users, ranker_context, select_digests
from digest.pipeline.queue import digest_links
from digest.pipeline.settings import preview_mail_settings, render_options


def _ranker(cfg: config.Config, name: str, profile: Profile, *, now: datetime) -> matching.Ranker:
    """The ranker a run would use for this user, from the user's votes and seeds in the store (if any yet)."""
    if name == matching.DEFAULT_RANKER or not cfg.digest.store.exists():
        return matching.make_ranker(name, matching.RankerContext(now=now))
    with contextlib.closing(store.open_store(cfg.digest.store, readonly=True)) as conn:
        return matching.make_ranker(name, ranker_context(conn, name, [profile], now=now))


def _backtest_digest(
    profile: Profile,
    batches: Iterable[Sequence[Paper]],
    *,
    dumps: Sequence[str],
    now: datetime,
    ranker: matching.Ranker,
) -> Digest:
    """The profile's best ``max_papers`` matches among papers that arrive in batches (one dump, or the store's
    history a batch at a time, so years of it never sit in memory at once), in ``ranker``'s order (it reorders
    what the keywords kept; a backtest has no window, so no candidates to suggest from)."""
    [(kept, total)] = matching.match_top_stream(matching.compile_profiles([profile]), batches).values()
    order = matching.rank_matches(ranker, profile, tuple(kept), candidates=None, now=now)
    return Digest(
        profile=profile,
        matches=order.matches,
        generated_at=now,
        period=cadence.current_period(profile, now).key,
        dumps=tuple(dumps),
        omitted=total - len(kept),
    )


def _history_digest(
    cfg: config.Config, profile: Profile, since: date, *, now: datetime, ranker: matching.Ranker
) -> Digest:
    """``preview --since``: the backtest over every stored paper first seen since ``since``."""
    with contextlib.closing(store.open_store(cfg.digest.store, readonly=True)) as conn:
        batches = store.iter_papers(conn, since=datetime.combine(since, datetime.min.time(), UTC))
        papers = ([sp.paper for sp in batch] for batch in batches)
        digest = _backtest_digest(profile, papers, dumps=(), now=now, ranker=ranker)
        shown = store.get_papers(conn, [m.paper.key for m in digest.matches])
        names = store.dump_names(conn, sorted({sp.first_dump for sp in shown})) if shown else {}
    return replace(digest, dumps=tuple(sorted({Path(n).name for n in names.values()})))


def preview_digest(
    cfg: config.Config,
    env: Mapping[str, str],
    user: str,
    *,
    now: datetime,
    dump: Path | None = None,
    since: date | None = None,
    ranker: str | None = None,
) -> tuple[Digest, render.RenderCache, render.DigestLinks]:
    """What ``user`` would receive if their period were due now (same selection as ``run``: window, carried
    over papers, nothing already delivered, the same ``ranker``), or from one dump, or from stored papers since
    a date. Never writes."""
    profile = cfg.user(user).profile()
    name = ranker or cfg.digest.ranker
    run_ranker = _ranker(cfg, name, profile, now=now)
    if dump is not None:
        papers = [sources.read_dump(dump).papers]
        digest = _backtest_digest(profile, papers, dumps=(dump.name,), now=now, ranker=run_ranker)
    elif since is not None:
        digest = _history_digest(cfg, profile, since, now=now, ranker=run_ranker)
    else:
        with contextlib.closing(store.open_store(cfg.digest.store, readonly=True)) as conn:
            # A user not yet in the store counts as added now, as the next run would record them.
            due = due_users(conn, cfg, [profile], now=now, force=True)
            [digest] = select_digests(conn, due, now=now, ranker=run_ranker)
    cache = render.prepare_papers((*digest.matches, *digest.suggestions), render_options(cfg))
    # Only a preview of what `run` would send has a page to link to.
    pages = dump is None and since is None
    return digest, cache, digest_links(cfg, digest, preview_mail_settings(cfg, env), pages=pages)
