"""Rendering benchmark: 10,000 users x 10 papers, cached fragments vs naive per-user rendering.

Run: python bench/bench_render.py [--quick] [--users N] [--no-pin]
Papers are the 290 real ones of tests/fixtures/00*.txt (abstracts ~1,500 characters), some given an
arXiv id, organization and upvotes, and (as the API JSON has them) author names, an AI summary (TL;DR),
a code repository with stars and a project page. Each user gets 10 seeded-random papers with 2-5 highlighted hits.
The process is pinned to one CPU (unless --no-pin). Times are CPU time of this process (the machine is
shared, so wall time would count other jobs). It prints, as medians of 3 repetitions:
  * prepare_papers() once per run (Jinja + css-inline of every card, in page context);
  * render_digest() per user (subject + Markdown text + inlined HTML), digests/s on one core, with each
    paper's thumbs-up/down links signed for the user by feedback.vote_urls (as queue.digest_links does when
    [digest].base_url is set; the signing is part of the per-user cost), and without vote links;
  * naive A: per user, Jinja Markdown templates -> `markdown` package -> base.html.j2 -> css-inline;
  * naive B: per user, Jinja of the full HTML and Markdown templates -> css-inline (no `markdown`);
and the ratios against both. Naive runs use a sample of users (they are ~100x slower).
--quick: 1,000 users, smaller naive samples.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import css_inline  # noqa: E402
import markdown  # noqa: E402
from markupsafe import Markup  # noqa: E402

from digest.models import Digest, Hit, Match, Paper, Profile  # noqa: E402
from digest.pipeline.feedback import vote_urls  # noqa: E402
from digest.render import DigestLinks, RenderOptions, message_size_bound, prepare_papers, render_digest  # noqa: E402
from digest.render import digest as render  # noqa: E402
from digest.sources import read_dump  # noqa: E402

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
SECRET = b"bench-secret-0123456789abcdef0123"
# What feedback.vote_urls reads of the config: the base URL the vote links point to.
VOTE_CFG = SimpleNamespace(digest=SimpleNamespace(base_url="https://digest.example.org"))
PAPERS_PER_USER = 10
ORGS = ["Google DeepMind", "Meta AI", "Tsinghua University", "Hugging Face", "Alibaba Qwen", None, None]


def load_papers(rng: random.Random) -> list[Paper]:
    """The seed dumps' papers, a third of them given an arXiv id, plus organizations and upvotes."""
    seen: dict[str, Paper] = {}
    for path in sorted((ROOT / "tests" / "fixtures").glob("00*.txt")):
        for p in read_dump(path).papers:
            seen.setdefault(p.key, p)
    papers = []
    for i, p in enumerate(seen.values()):
        extra = {"organization": rng.choice(ORGS), "upvotes": rng.randint(0, 300)}
        extra |= {"authors": tuple(f"Author {i}-{j}" for j in range(rng.randint(1, 12)))}
        extra |= {"ai_summary": " ".join(p.abstract.split()[:35])}
        if i % 2 == 0:
            extra |= {"github_repo": f"https://github.com/example/repo{i}", "github_stars": rng.randint(0, 20_000)}
        if i % 4 == 0:
            extra |= {"project_page": f"https://example.github.io/project{i}/"}
        if i % 3 == 0:
            aid = f"24{i % 12 + 1:02d}.{10000 + i:05d}"
            extra |= {"arxiv_id": aid, "key": f"arxiv:{aid}"}
        papers.append(replace(p, **extra))
    return papers


def make_digests(papers: list[Paper], n_users: int, rng: random.Random) -> list[Digest]:
    words = {p.key: [m.span() for m in re.finditer(r"[A-Za-z]{5,}", p.abstract)] for p in papers}
    digests = []
    for u in range(n_users):
        matches = []
        for p in rng.sample(papers, PAPERS_PER_USER):
            spans = rng.sample(words[p.key], min(len(words[p.key]), rng.randint(2, 5)))
            hits = [Hit(p.abstract[s:e], "abstract", s, e) for s, e in spans]
            title_words = [m.span() for m in re.finditer(r"[A-Za-z]{5,}", p.title)]
            if title_words:
                s, e = rng.choice(title_words)
                hits.append(Hit(p.title[s:e], "title", s, e))
            reason = "; ".join(f'abstract: "{h.term}"' for h in hits[:3])
            matches.append(Match(p, float(len(hits)), tuple(hits), reason))
        profile = Profile(name=f"user{u}", email=f"user{u}@example.org", display_name=f"User {u}")
        digests.append(Digest(profile, tuple(matches), NOW, "2026-11-23", ("000_f4e371e0c0016fc2.txt",)))
    return digests


def links(u: int) -> dict[str, str]:
    return {
        "unsubscribe_url": f"https://digest.example.org/u/{u:022d}",
        "feed_url": f"https://digest.example.org/feeds/user{u}.xml",
        "manage_hint": "edit your [[users]] entry in config.toml",
        "view_url": f"https://digest.example.org/archive/user{u}/2026-11-23.html",
    }


def naive_context(cache: render.RenderCache, d: Digest, fmt: str, link: dict[str, str]) -> dict:
    """Real per-user values for the same templates (what the cache turns into slots)."""
    esc = "html" if fmt == "html" else "md"
    mark = ("<mark><strong>", "</strong></mark>") if fmt == "html" else ("**", "**")
    title_mark = ("<mark>", "</mark>") if fmt == "html" else mark
    cards, index = [], []
    for k, m in enumerate(d.matches, 1):
        p = m.paper
        cut = render._cut(p.abstract, cache.levels[0])
        trimmed = cut < len(p.abstract.rstrip())
        ts, as_ = render._spans(m)
        abstract = render._splice(render._escape(p.abstract, esc), as_, cut, *mark) + (" …" if trimmed else "")
        ctx = {
            **render.paper_context(p, cache.options),
            "n": k,
            "trimmed": trimmed,
            "title": Markup(render._splice(render._escape(p.title, esc), ts, len(p.title), *title_mark)),
            "abstract": Markup(abstract),
            "reason": m.reason if fmt == "html" else render._md_inline(m.reason),
            "votes": "",  # the naive renders leave vote links out (less work than the cached path does)
        }
        cards.append(cache.env.get_template(f"paper.{fmt}.j2").render(ctx))
        if fmt == "html":
            index.append(cache.env.get_template("index_item.html.j2").render(ctx | {"title": p.title}))
        else:
            index.append(f"{k}. {render._md_inline(p.title)}\n")
    n = len(d.matches)
    return {
        "site_name": "Paper digest",
        "lang": "en",
        "count": n,
        "total": n,
        "more": 0,
        "dropped": 0,
        "period": d.period,
        "date": "2026-11-23",
        "dumps": list(d.dumps),
        "subject": f"Paper digest — 2026-11-23 ({n} papers)",
        "user_name": d.profile.display_name,
        "more_url": None,
        "view_url": None,
        "web_page": False,
        "suggested": 0,
        "suggestions": "",
        "suggestions_index": "",
        **link,
        "papers": Markup("".join(cards)),
        "index": Markup("".join(index)),
    }


def naive_markdown_pipeline(cache, inliner, d: Digest, link: dict[str, str]) -> tuple[str, str]:
    """Naive A: Markdown from Jinja, HTML from the `markdown` package, then css-inline, all per user."""
    text = cache.env.get_template("digest.md.j2").render(naive_context(cache, d, "md", link))
    body = markdown.markdown(text)
    page = cache.env.from_string(
        '{% extends "base.html.j2" %}{% block content %}<tr><td class="papers">{{ body }}</td></tr>{% endblock %}'
    ).render(lang="en", subject="Paper digest", body=Markup(body))
    return text, inliner.inline(page)


def naive_templates(cache, inliner, d: Digest, link: dict[str, str]) -> tuple[str, str]:
    """Naive B: full Jinja render of the HTML and Markdown templates and css-inline, all per user."""
    text = cache.env.get_template("digest.md.j2").render(naive_context(cache, d, "md", link))
    page = cache.env.get_template("digest.html.j2").render(naive_context(cache, d, "html", link))
    return text, inliner.inline(page)


def timed(fn, items) -> float:
    """CPU seconds per item for one pass over ``items`` (wall time on this shared machine counts other jobs)."""
    t0 = time.process_time()
    for i, item in enumerate(items):
        fn(i, item)
    return (time.process_time() - t0) / len(items)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--users", type=int, default=None)
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    n_users = args.users or (1_000 if args.quick else 10_000)
    n_naive_a, n_naive_b = (20, 100) if args.quick else (60, 300)
    rng = random.Random(1234)
    papers = load_papers(rng)
    digests = make_digests(papers, n_users, rng)
    print(f"{len(papers)} papers, {n_users} users x {PAPERS_PER_USER} papers, cpus={sorted(os.sched_getaffinity(0))}")

    options = RenderOptions(abstract_chars=600)
    prep = []
    for _ in range(args.reps):
        t0 = time.process_time()
        cache = prepare_papers(papers, options)
        prep.append(time.process_time() - t0)
    print(f"prepare_papers ({len(papers)} papers, once per run): median {statistics.median(prep) * 1e3:.0f} ms")

    sizes: list[int] = []
    voted_sizes: list[int] = []

    def fast(i: int, d: Digest) -> None:
        email = render_digest(d, cache, **links(i), now=NOW)
        if i < 200:
            sizes.append(message_size_bound(email.html, email.text))

    def voted(i: int, d: Digest) -> None:
        # As queue.digest_links builds them: each shown paper's vote links signed for this user, then rendered.
        votes = vote_urls(VOTE_CFG, SECRET, d.profile.name, [m.paper.key for m in d.matches])  # type: ignore[arg-type]
        email = render_digest(d, cache, links=DigestLinks(**links(i), votes=votes), now=NOW)
        if i < 200:
            voted_sizes.append(message_size_bound(email.html, email.text))

    render_digest(digests[0], cache, **links(0), now=NOW)  # first call fills the skeleton cache
    fast_s = statistics.median(timed(fast, digests) for _ in range(args.reps))
    voted_s = statistics.median(timed(voted, digests) for _ in range(args.reps))
    inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
    naive_a = statistics.median(
        timed(lambda i, d: naive_markdown_pipeline(cache, inliner, d, links(i)), digests[:n_naive_a])
        for _ in range(args.reps)
    )
    naive_b = statistics.median(
        timed(lambda i, d: naive_templates(cache, inliner, d, links(i)), digests[:n_naive_b]) for _ in range(args.reps)
    )
    total = statistics.median(prep) + voted_s * n_users
    print(
        f"cached render_digest with vote links: {voted_s * 1e6:.0f} us/digest = {1 / voted_s:,.0f} digests/s "
        f"(signing + HTML + text, one core)"
    )
    print(f"cached render_digest, no vote links: {fast_s * 1e6:.0f} us/digest = {1 / fast_s:,.0f} digests/s")
    msg_kb, voted_kb = statistics.median(sizes) / 1e3, statistics.median(voted_sizes) / 1e3
    print(f"  whole run incl. prepare: {total:.2f} s for {n_users} users (with vote links)")
    print(f"  message as sent: ~{voted_kb:.1f} KB with vote links, ~{msg_kb:.1f} KB without")
    print(f"naive A (jinja md + markdown pkg + css-inline per user, {n_naive_a} users): {naive_a * 1e6:,.0f} us/digest")
    print(f"naive B (jinja html+md + css-inline per user, {n_naive_b} users): {naive_b * 1e6:,.0f} us/digest")
    print(f"ratio vs naive A: {naive_a / voted_s:.1f}x   ratio vs naive B: {naive_b / voted_s:.1f}x (with vote links)")
    print(f"target >= 2,000 digests/s with vote links: {'ok' if 1 / voted_s >= 2000 else 'MISSED'}; "
          f">= 10x naive A: {'ok' if naive_a / voted_s >= 10 else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
