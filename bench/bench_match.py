"""Matching benchmark: compile + match 300 synthetic papers against 1,000 and 100,000 keyword profiles.

Run: python bench/bench_match.py [--quick]
A seeded generator builds a 5,000-term vocabulary (words and 2-4 word phrases), 300 papers (titles ~80
characters, abstracts ~1,600) of filler prose with Zipf-drawn vocabulary terms, and profiles of 10-20
keywords (words, quoted phrases, hyphenated phrases; max_papers 20). For each size it times, interleaved
under the same load, compile_profiles + match_top (each profile's first max_papers matches and its count:
what a digest shows) and compile_profiles + match_all (every profile's full list), parse cache cleared each
time, and checks that match_top is match_all cut to max_papers. It repeats both at 10 keywords per profile
(the setup of shared/notes/performance-limits.md) and on "broad" profiles (3-6 frequent words, ~100 matches
each, so most are cut), then with authors: the same papers given 3-12 names each from a pool of 3,000,
matched by the same large set of profiles (none names an author, so the names are never looked at: it should
time like the first run at that size), then by those profiles with 20% following 1-5 authors and 10% given an
author: keyword. Last it runs a naive baseline in the same process (one compiled ``\b(?:t1|t2|...)\b``-style
regex per user, looped over users x papers), checks that it picks the same (user, paper) pairs, and prints the
ratios. Peak RSS is the process high-water mark (ru_maxrss) after the
first run of each: match_top runs first, so its figure is not inflated by match_all's.
--quick uses 1,000 and 10,000 profiles and 200 naive users.
"""

from __future__ import annotations

import argparse
import gc
import random
import re
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digest.matching.match import compile_profiles, match_all, match_top, parse_query  # noqa: E402
from digest.models import Paper, Profile  # noqa: E402

N_PAPERS = 300


def make_vocabulary(rng: random.Random) -> tuple[list[str], list[str], list[str]]:
    """(unigrams, multi-word terms, filler words): pseudo-words from syllables, no overlap between sets."""
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["ion", "ent", "ar", "or", "ex"]
    words: set[str] = set()
    while len(words) < 1400:
        w = "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))
        if not w.endswith(("s", "e")):  # keep the plural rule from creating accidental overlaps
            words.add(w)
    pool = sorted(words)
    rng.shuffle(pool)
    unigrams, content, filler = pool[:180], pool[180:900], pool[900:]
    phrases: set[str] = set()
    for n, count in ((2, 2200), (3, 1200), (4, 1420)):
        while sum(1 for p in phrases if p.count(" ") == n - 1) < count:
            phrases.add(" ".join(rng.choice(content + unigrams) for _ in range(n)))
    return unigrams, sorted(phrases), filler


def zipf_picker(rng: random.Random, terms: list[str], s: float = 0.8):
    weights = [1.0 / (rank + 1) ** s for rank in range(len(terms))]
    order = terms[:]
    rng.shuffle(order)
    cum: list[float] = []
    total = 0.0
    for w in weights:
        total += w
        cum.append(total)

    def pick() -> str:
        return order[min(len(order) - 1, _bisect(cum, rng.random() * total))]

    return pick


def _bisect(cum: list[float], x: float) -> int:
    lo, hi = 0, len(cum)
    while lo < hi:
        mid = (lo + hi) // 2
        if cum[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


def render_term(rng: random.Random, term: str) -> str:
    """How a term appears in a paper: sometimes capitalised, hyphenated or pluralised."""
    if " " in term and rng.random() < 0.3:
        term = term.replace(" ", "-")
    if rng.random() < 0.2:
        term += "s"
    if rng.random() < 0.2:
        term = term.title()
    return term


def make_text(rng: random.Random, length: int, pick, filler: list[str], term_rate: float) -> str:
    out: list[str] = []
    size = 0
    while size < length:
        piece = render_term(rng, pick()) if rng.random() < term_rate else rng.choice(filler)
        if rng.random() < 0.07:
            piece += rng.choice([",", ".", ";", ":"])
        out.append(piece)
        size += len(piece) + 1
    return " ".join(out)


def make_papers(rng: random.Random, terms: list[str], filler: list[str]) -> list[Paper]:
    pick = zipf_picker(rng, terms)
    papers = []
    for i in range(N_PAPERS):
        title = make_text(rng, 80, pick, filler, 0.15)
        abstract = make_text(rng, 1600, pick, filler, 0.08)
        papers.append(Paper(key=f"p{i}", title=title, abstract=abstract, upvotes=rng.randint(0, 50)))
    return papers


def make_profiles(
    rng: random.Random, n: int, unigrams: list[str], phrases: list[str], sizes: tuple[int, int] = (10, 20)
) -> list[Profile]:
    profiles = []
    for i in range(n):
        keywords = []
        for _ in range(rng.randint(*sizes)):
            if rng.random() < 0.1:
                keywords.append(rng.choice(unigrams))
            else:
                phrase = rng.choice(phrases)
                keywords.append(phrase.replace(" ", "-") if rng.random() < 0.3 else f'"{phrase}"')
        profiles.append(Profile(name=f"u{i}", email=f"u{i}@example.org", keywords=tuple(keywords)))
    return profiles


def with_authors(rng: random.Random, papers: list[Paper], filler: list[str]) -> tuple[list[Paper], list[str]]:
    """The papers with 3-12 author names each from a pool of 3,000 ("Bakime Tovar", some initials, accents)."""
    pool = sorted({f"{rng.choice(filler).title()} {rng.choice(filler).title()}" for _ in range(3000)})
    pool = [n.replace("a", "á", 1) if i % 7 == 0 else n for i, n in enumerate(pool)]
    named = [replace(p, authors=tuple(rng.sample(pool, rng.randint(3, 12)))) for p in papers]
    return named, pool


def make_author_profiles(rng: random.Random, profiles: list[Profile], names: list[str]) -> list[Profile]:
    """The profiles, 20% of them following 1-5 authors and 10% with an author: keyword (full name, initial + surname,
    or surname)."""
    out = []
    for profile in profiles:
        if rng.random() < 0.2:
            profile = replace(profile, authors=tuple(rng.sample(names, rng.randint(1, 5))))
        if rng.random() < 0.1:
            first, last = rng.choice(names).split()
            term = rng.choice([f'"{first} {last}"', f'"{first[0]}. {last}"', last])
            profile = replace(profile, keywords=(*profile.keywords, f"author:{term}"))
        out.append(profile)
    return out


def make_broad_profiles(rng: random.Random, n: int, unigrams: list[str], papers: list[Paper]) -> list[Profile]:
    """Profiles of 3-6 of the 60 words found in most papers: ~100 matches each, most of them cut."""
    texts = [f" {p.title.lower()} {p.abstract.lower()} " for p in papers]
    frequent = sorted(unigrams, key=lambda w: -sum(f" {w}" in text for text in texts))[:60]
    return [
        Profile(name=f"b{i}", email=f"b{i}@example.org", keywords=tuple(rng.sample(frequent, rng.randint(3, 6))))
        for i in range(n)
    ]


_SEP = r"[\s\-\u2010-\u2013_/]+"


def naive_regexes(profiles: list[Profile]) -> list[re.Pattern[str]]:
    """One regex per user with the same semantics (whole words, plural s/es, phrase separators)."""
    compiled = []
    for profile in profiles:
        alts = [
            _SEP.join(re.escape(w) for w in re.split(r"[\s\-\"]+", kw.strip('"').lower())) for kw in profile.keywords
        ]
        compiled.append(re.compile(r"(?<![^\W_])(?:" + "|".join(alts) + r")(?:e?s)?(?![^\W_])"))
    return compiled


def run_naive(profiles: list[Profile], papers: list[Paper]) -> set[tuple[str, str]]:
    texts = [(p.key, p.title.lower(), p.abstract.lower()) for p in papers]
    pairs = set()
    for profile, rx in zip(profiles, naive_regexes(profiles), strict=True):
        for key, title, abstract in texts:
            if rx.search(title) or rx.search(abstract):
                pairs.add((profile.name, key))
    return pairs


def run_fast(profiles: list[Profile], papers: list[Paper], match: Callable) -> tuple[float, float, float, dict]:
    """(compile wall s, match wall s, total CPU s, result) of compile_profiles + ``match``."""
    parse_query.cache_clear()  # every repetition parses its queries, as a fresh `digest run` would
    cpu = time.process_time()
    start = time.perf_counter()
    matcher = compile_profiles(profiles)
    compiled = time.perf_counter()
    result = match(matcher, papers)
    done = time.perf_counter()
    return compiled - start, done - compiled, time.process_time() - cpu, result


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_pair(label: str, profiles: list[Profile], papers: list[Paper], reps: int) -> dict[str, tuple[float, dict]]:
    """compile + match_top and compile + match_all, interleaved ``reps`` times; prints the medians.

    Interleaving puts both under the same machine load. Each function's peak RSS is read after its first run:
    match_top runs first, and a previous result is freed before each run.
    """
    runs: dict[str, list[tuple[float, float, float]]] = {"match_top": [], "match_all": []}
    rss: dict[str, float] = {}
    results: dict[str, dict] = {}
    for rep in range(reps):
        for match in (match_top, match_all):
            if rep < reps - 1 or match is match_top:
                results.clear()  # free the previous results; the last match_all run keeps match_top's to compare
            gc.collect()  # the garbage of the previous run, so no run pays for another's
            c, m, cpu, results[match.__name__] = run_fast(profiles, papers, match)
            runs[match.__name__].append((c, m, cpu))
            rss.setdefault(match.__name__, peak_rss_mb())
    out = {}
    for name, times in runs.items():
        totals = [c + m for c, m, _ in times]
        result = results[name]
        if name == "match_top":
            kept = sum(len(matches) for matches, _ in result.values())
            pairs = sum(total for _, total in result.values())
            counts = f"{kept:,} matches kept of {pairs:,} = {pairs / len(profiles):.1f} per profile"
        else:
            pairs = sum(len(v) for v in result.values())
            counts = f"{pairs:,} matches = {pairs / len(profiles):.1f} per profile"
        median = statistics.median(totals)
        print(
            f"{name}, {len(profiles):>7,} profiles x {len(papers)} papers{label}: "
            f"compile {statistics.median(c for c, _, _ in times):.3f} s, "
            f"match {statistics.median(m for _, m, _ in times):.3f} s, "
            f"total {median:.3f} s (min {min(totals):.3f}, max {max(totals):.3f}; median of {reps}; "
            f"CPU {statistics.median(cpu for _, _, cpu in times):.3f} s); {counts}; peak RSS {rss[name]:.0f} MB"
        )
        out[name] = (median, result)
    top, full = out["match_top"][0], out["match_all"][0]
    same = same_cut(out["match_top"][1], out["match_all"][1], profiles)
    print(f"  match_top / match_all = {top / full:.2f}; match_top = match_all cut to max_papers: {same}")
    return out


def same_cut(top: dict, full: dict, profiles: list[Profile]) -> str:
    """Whether match_top's result is match_all's cut to each profile's max_papers, plus the totals."""
    wrong = sum(1 for p in profiles if top[p.name] != (full[p.name][: p.max_papers], len(full[p.name])))
    return "identical" if not wrong and len(top) == len(full) else f"DIFFER for {wrong} profiles"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (1k and 10k profiles, 200 naive users)")
    args = parser.parse_args()
    small, large = (1_000, 10_000) if args.quick else (1_000, 100_000)
    naive_users = 200 if args.quick else 1_000
    reps = 3  # per size; 5 at the small size (the machine is shared: medians of interleaved runs)

    rng = random.Random(20261123)
    unigrams, phrases, filler = make_vocabulary(rng)
    papers = make_papers(rng, unigrams + phrases, filler)
    profiles = make_profiles(rng, large, unigrams, phrases)
    print(f"vocabulary: {len(unigrams)} words + {len(phrases)} phrases; {len(papers)} papers")
    print(
        f"mean title {statistics.mean(len(p.title) for p in papers):.0f} chars, "
        f"abstract {statistics.mean(len(p.abstract) for p in papers):.0f} chars; "
        f"profiles of 10-20 keywords (10% words, 90% phrases); peak RSS {peak_rss_mb():.0f} MB"
    )

    medians: dict[tuple[int, str], float] = {}
    small_all: dict = {}
    for size in (small, large):
        pair = bench_pair("", profiles[:size], papers, 5 if size == small else reps)
        for name, (median, _) in pair.items():
            medians[size, name] = median
        if size == small:
            small_all = pair["match_all"][1]
        del pair  # keep the peak RSS of the next step honest
    ten = make_profiles(random.Random(5), large, unigrams, phrases, sizes=(10, 10))
    bench_pair(" (10 keywords each, as in the notes)", ten, papers, reps)
    del ten
    broad = make_broad_profiles(random.Random(6), large // 5, unigrams, papers)
    bench_pair(" (broad: 3-6 frequent words each)", broad, papers, reps)
    del broad
    named, names = with_authors(random.Random(8), papers, filler)
    bench_pair(" with 3-12 author names each, no profile naming one", profiles, named, reps)
    following = make_author_profiles(random.Random(9), profiles, names)
    bench_pair(" with names; 20% follow 1-5 authors, 10% have an author: keyword", following, named, reps)
    del named, following

    naive_profiles = profiles[:naive_users]
    start = time.perf_counter()
    naive_pairs = run_naive(naive_profiles, papers)
    naive_time = time.perf_counter() - start
    names = {p.name for p in naive_profiles}
    fast_pairs = {(name, m.paper.key) for name, matches in small_all.items() if name in names for m in matches}
    agree = "identical" if naive_pairs == fast_pairs else f"DIFFER ({len(naive_pairs ^ fast_pairs)} pairs)"
    per_user_naive = naive_time / naive_users
    print(
        f"naive per-user regex, {naive_users:,} users x {len(papers)} papers: {naive_time:.2f} s (1 run, "
        f"{per_user_naive * 1e3:.2f} ms/user); (user, paper) pairs vs match_all: {agree}"
    )
    for size in (small, large):
        naive = per_user_naive * size
        how = "measured" if size == naive_users else "extrapolated"
        top, full = medians[size, "match_top"], medians[size, "match_all"]
        print(
            f"at {size:,} users: naive {naive:.1f} s ({how}); compile + match_top {top:.3f} s -> "
            f"{naive / top:.0f}x faster; compile + match_all {full:.3f} s -> {naive / full:.0f}x; "
            f"match_top / match_all = {top / full:.2f}"
        )
    print(f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
