"""Render a sample digest to HTML and screenshot it with headless Chromium.

Run: python bench/screenshot.py [--out docs/screenshot.png] [--width 800] [--height 1800] [--dark]
     python bench/screenshot.py --both   (docs/screenshot.png at 800 px and docs/screenshot-mobile.png at 390 px)
The digest holds six papers from tests/fixtures (one given a hostile title with <think>, &, $ and
LaTeX) with a few highlighted terms, given what the API JSON listing has (author names, Hugging Face's
AI summary, a code repository with stars, a project page). Needs `chromium` on PATH (Debian:
apt-get install -y chromium). --dark asks Chromium for prefers-color-scheme: dark, to check the
dark-mode block.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digest.models import Digest, Hit, Match, Profile  # noqa: E402
from digest.render import RenderOptions, prepare_papers, render_digest  # noqa: E402
from digest.sources import read_dump  # noqa: E402

TLDRS = (
    "A benchmark and a scheduler that serve prompts with independent sub-tasks in parallel, cutting LLM latency.",
    "Runtime distributions of sequential SAT local search predict how well it speeds up in parallel.",
    "Speculative decoding that drafts on a second device in parallel, hiding the draft model's cost.",
    None,
)
TERMS = ("speculative decoding", "LLM", "parallel", "serving", "inference")


def sample_digest() -> Digest:
    papers = list(read_dump(ROOT / "tests" / "fixtures" / "003_dff01c8f9ab61c1d.txt").papers[:6])
    papers[0] = replace(
        papers[0],
        title="<think>Plan</think> & $\\nabla^2$ Speculative decoding for LLM serving — τ-ζ",
        organization="Acme AI",
        upvotes=128,
        arxiv_id="2501.01234",
        key="arxiv:2501.01234",
        github_repo="https://github.com/example/acme",
        github_stars=1834,
        project_page="https://acme.example.org/specdec/",
    )
    papers[1] = replace(
        papers[1],
        organization="Tsinghua University",
        upvotes=42,
        arxiv_id="2406.05678",
        key="arxiv:2406.05678",
        github_repo="https://github.com/example/thu",
        github_stars=96,
    )
    for i, p in enumerate(papers):
        first = p.abstract.split(". ")[0].strip().rstrip(".")
        names = ("Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov")[: 2 + i % 4]
        papers[i] = replace(
            p,
            authors=names,
            n_authors=len(names) + (9 if i % 2 else 0),
            ai_summary=TLDRS[i] if i < len(TLDRS) else f"{first[:200]}.",
        )
    matches = []
    for p in papers:
        hits = [
            Hit(t, fld, m.start(), m.end())
            for t in TERMS
            for fld, text in (("title", p.title), ("abstract", p.abstract))
            for m in re.finditer(rf"\b{re.escape(t)}\b", text, re.IGNORECASE)
        ]
        found = sorted({h.term for h in hits})
        matches.append(Match(p, float(len(hits)), tuple(hits), "; ".join(f'"{t}"' for t in found) or "organization"))
    profile = Profile(name="alice", email="alice@example.org", display_name="Alice")
    when = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
    return Digest(profile, tuple(matches), when, "2026-11-23", ("003_dff01c8f9ab61c1d.txt",), omitted=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    ap.add_argument("--width", type=int, default=800)
    ap.add_argument("--height", type=int, default=1800)
    ap.add_argument("--dark", action="store_true")
    ap.add_argument("--both", action="store_true", help="desktop (800 px) and mobile (390 px) into docs/")
    args = ap.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("chromium not found: apt-get install -y chromium")
    digest = sample_digest()
    cache = prepare_papers(digest.matches, RenderOptions(abstract_chars=400))
    email = render_digest(
        digest,
        cache,
        unsubscribe_url="https://digest.example.org/u/AbCdEf0123456789xyzABC",
        feed_url="https://digest.example.org/feeds/alice.xml",
        view_url="https://digest.example.org/archive/alice/2026-11-23.html",
    )
    shots = [(args.out, args.width, args.height)]
    if args.both:
        shots = [(ROOT / "docs" / "screenshot.png", 800, 1800), (ROOT / "docs" / "screenshot-mobile.png", 390, 1700)]
    for out, width, height in shots:
        shoot(chromium, email.html, out, width, height, dark=args.dark)
        print(f"{out} ({width}x{height}; {len(email.html):,} bytes of HTML, subject {email.subject!r})")


def shoot(chromium: str, html: str, out: Path, width: int, height: int, *, dark: bool) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "digest.html"
        page.write_text(html, encoding="utf-8")
        cmd = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp}/profile", f"--screenshot={out.resolve()}",
            f"--window-size={width},{height}", "--hide-scrollbars",
        ]  # fmt: skip
        if dark:
            cmd.append("--force-dark-mode")
        subprocess.run([*cmd, page.as_uri()], check=True, capture_output=True, timeout=120)


if __name__ == "__main__":
    main()
