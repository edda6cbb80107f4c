"""Feed benchmark: 10,000 per-user Atom feeds of 10 entries from 300 papers: joined bytes vs element copies vs feedgen.

Run: python bench/bench_feeds.py [--quick] [--users N] [--entries E] [--reps R] [--no-pin] [--dir DIR] [--ids N]
Papers are the real ones of tests/fixtures/00*.txt (abstracts ~1,500 characters), padded to --papers (300)
with renamed copies; a third get an arXiv id, some an organization and a project URL, all a first-seen time.
Each user gets --entries (10) seeded-random papers as StoredPaper (what pipeline.write_feeds passes). Build
times are CPU time of this process pinned to one CPU (the machine is shared), medians of --reps passes over
all users:
  * prepare_entries() once per run (feedgen builds every paper's <entry> once, lxml serialises it once);
  * build_feed(..., cache=) per user, the new path: a cached feedgen header with the per-feed id, title and
    self link escaped into its slots, joined with the cached entry bytes;
  * build_feed(..., cache=, join=False) per user, the previous cached path: feedgen header + deep-copied
    cached entry elements + lxml serialisation of the whole tree;
  * build_feed(...) per user without a cache (the naive baseline: feedgen entries and _text over every abstract);
  * all three again with a per-user `reason` and abstract hits on every entry (a user's feed: the content's
    middle, the highlighted excerpt and the why line, is made per feed and spliced into the cached bytes);
  * and again with, besides those notes, the user's signed 👍/👎 links on every entry and one entry of the ten
    an "Also for you" suggestion (its own cached entry: title prefix and category), as FeedWriter builds a
    user's feed with the signing secret; signing those links (feedback.vote_urls, two per entry) is timed apart;
and write_feed(durable=False) per file, as FeedWriter writes them (temp file, rename, no fsync), as wall time:
new files, unchanged bytes, changed bytes; then build + write per user, the figure a run pays per feed (the
outbox query FeedWriter.write_user runs first is not included). File writes cost kernel time that varies
several-fold on this VM from one minute to the next: compare them within one run, and try --dir /dev/shm.
Then what entry ids fixed at first use (digest/feed_ids.py) add to a run, in a real SQLite store holding --ids
(30,000: about 580 days of dumps) recorded ids: the one query that reads them all, recording a day's 50 new
papers in one transaction, and build_feed per feed when every entry carries its recorded id (as FeedWriter's do).
Every user's joined feed is checked byte-for-byte against both other builds on a sample before timing.
--quick: 1,000 users, 1 rep.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digest import store  # noqa: E402
from digest.models import Hit, Paper, StoredPaper  # noqa: E402
from digest.pipeline.feedback import vote_urls  # noqa: E402
from digest.render.atom import FeedEntry, build_feed, feed_entries, prepare_entries, tag_uri, write_feed  # noqa: E402
from digest.sources import read_dump  # noqa: E402
from digest.store import feed_ids  # noqa: E402

AUTHORITY = "digest.example.org,2024"
BASE = "https://digest.example.org/feeds"
T0 = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
ORGS = ["Google DeepMind", "Meta AI", "Tsinghua University", "Hugging Face", None, None]
SECRET = b"bench-secret-0123456789abcdef0123"
VOTE_CFG = SimpleNamespace(digest=SimpleNamespace(base_url="https://digest.example.org"))  # what vote_urls reads


def sign(u: int, entries: Sequence[FeedEntry]) -> dict[str, tuple[str, str]]:
    """User u's vote links for these entries, as FeedWriter.write_user signs them."""
    return vote_urls(VOTE_CFG, SECRET, f"user{u}", [e.paper.key for e in entries])  # type: ignore[arg-type]


def load_papers(n: int, rng: random.Random) -> list[StoredPaper]:
    """The seed dumps' papers, padded to ``n`` with renamed copies, each with a first-seen time."""
    seen: dict[str, Paper] = {}
    for path in sorted((ROOT / "tests" / "fixtures").glob("00*.txt")):
        for p in read_dump(path).papers:
            seen.setdefault(p.key, p)
    base = list(seen.values())
    out = []
    for i in range(n):
        p = base[i % len(base)]
        if i >= len(base):
            p = replace(p, key=f"title:pad{i:04d}", title=f"{p.title} (part {i // len(base) + 1})")
        extra: dict[str, object] = {"organization": rng.choice(ORGS)}
        if i % 3 == 0:
            aid = f"24{i % 12 + 1:02d}.{10000 + i:05d}"
            extra |= {"arxiv_id": aid, "key": f"arxiv:{aid}"}
        if i % 4 == 0:
            extra["github_repo"] = f"https://github.com/example/repo{i}"
        out.append(StoredPaper(replace(p, **extra), T0 + timedelta(minutes=7 * i), "sha"))
    return out


def header(u: int) -> dict[str, object]:
    """The per-user feed arguments pipeline.write_feeds passes."""
    return {
        "feed_id": tag_uri(AUTHORITY, f"feed/user/user{u}"),
        "title": f"Paper digest for User {u}",
        "self_url": f"{BASE}/user{u}.xml",
        "alternate_url": "https://digest.example.org",
        "authority": AUTHORITY,
        "author": "Paper digest",
        "max_entries": 50,
    }


def cpu_per_item(fn: Callable[[int], object], n: int, reps: int) -> float:
    """Median over ``reps`` passes of CPU seconds per call of ``fn(0..n-1)``."""
    runs = []
    for _ in range(reps):
        t0 = time.process_time()
        for u in range(n):
            fn(u)
        runs.append((time.process_time() - t0) / n)
    return statistics.median(runs)


def _hits(paper: Paper, u: int) -> tuple[Hit, ...]:
    """Two or three abstract hits of a few characters, placed per user (the shape match.Hit has)."""
    n = len(paper.abstract)
    spots = [(u * 37 + k * 211) % max(n - 12, 1) for k in range(2 + u % 2)]
    return tuple(Hit("term", "abstract", a, min(a + 8, n)) for a in spots if n > 12)


def wall_per_write(folder: Path, blobs: Sequence[bytes], shift: int) -> tuple[float, int]:
    """Wall seconds per write_feed of ``blobs[(u + shift) % n]`` to user u's file, and how many changed."""
    n = len(blobs)
    changed = 0
    t0 = time.perf_counter()
    for u in range(n):
        changed += write_feed(folder / f"user{u}.xml", blobs[(u + shift) % n], durable=False)
    return (time.perf_counter() - t0) / n, changed


def wall_per_user(
    folder: Path,
    users: Sequence[list[FeedEntry]],
    heads: Sequence[dict[str, object]],
    builds: dict[str, Callable[[list[FeedEntry], dict[str, object]], bytes]],
    n: int,
) -> dict[str, tuple[float, float]]:
    """Per build method, wall seconds per user of build + write_feed(durable=False) of a new file, and of the
    write alone. The methods take turns user by user (each into its own folder), so they share the noise."""
    totals = dict.fromkeys(builds, 0.0)
    writes = dict.fromkeys(builds, 0.0)
    for name in builds:
        (folder / name).mkdir()
    for u in range(n):
        for name, build in builds.items():
            t0 = time.perf_counter()
            data = build(users[u], heads[u])
            t1 = time.perf_counter()
            write_feed(folder / name / f"user{u}.xml", data, durable=False)
            t2 = time.perf_counter()
            totals[name] += t2 - t0
            writes[name] += t2 - t1
    return {name: (totals[name] / n, writes[name] / n) for name in builds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--users", type=int, default=None)
    ap.add_argument("--papers", type=int, default=300)
    ap.add_argument("--entries", type=int, default=10, help="papers per user's feed")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--dir", type=Path, default=None, help="where to write the feed files (default: a temp dir)")
    ap.add_argument("--ids", type=int, default=30_000, help="entry ids already recorded in the store")
    args = ap.parse_args()
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    n_users = args.users or (1_000 if args.quick else 10_000)
    reps = args.reps or (1 if args.quick else 3)
    rng = random.Random(1234)
    stored = load_papers(args.papers, rng)
    users = [feed_entries(rng.sample(stored, args.entries)) for _ in range(n_users)]
    heads = [header(u) for u in range(n_users)]
    # Per-user feeds carry why each paper matched and where (a reason and a few abstract hits to highlight),
    # as FeedWriter passes them: notes by paper key beside the run's shared entries.
    noted = [
        {**heads[u], "notes": {e.paper.key: (f'abstract: "term{u % 97}" x{u % 5 + 1}', _hits(e.paper, u)) for e in es}}
        for u, es in enumerate(users)
    ]
    # A user's feed as FeedWriter writes it with the signing secret: the notes, each entry's vote links, and the
    # user's "Also for you" papers (one of their entries here).
    voted = [{**noted[u], "votes": sign(u, es), "suggested": {es[u % len(es)].paper.key}} for u, es in enumerate(users)]
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print(f"{len(stored)} papers, {n_users} users x {args.entries} entries, {reps} rep(s), cpus={cpus}")

    prep = []
    for _ in range(max(reps, 3)):
        t0 = time.process_time()
        cache = prepare_entries(stored, authority=AUTHORITY)
        prep.append(time.process_time() - t0)
    prep_s = statistics.median(prep)
    print(f"prepare_entries ({len(cache.fragments)} entries, once per run): median {prep_s * 1e3:.0f} ms")

    sample = range(min(n_users, 1_000))
    for label, kws in (("", heads), (" with per-user notes", noted), (" with notes, votes, suggestions", voted)):
        same = all(
            build_feed(users[u], **kws[u], cache=cache)
            == build_feed(users[u], **kws[u], cache=cache, join=False)
            == build_feed(users[u], **kws[u])
            for u in sample
        )
        print(f"joined == copied == uncached bytes on {len(sample)} users{label}: {same}")
        if not same:
            raise SystemExit("the three builds differ")

    methods: dict[str, Callable[[list[FeedEntry], dict[str, object]], bytes]] = {
        "joined (new)": lambda es, h: build_feed(es, **h, cache=cache),
        "copied (old cached)": lambda es, h: build_feed(es, **h, cache=cache, join=False),
        "uncached feedgen": lambda es, h: build_feed(es, **h),
    }
    n_r = min(n_users, 2_000)
    plain = {k: cpu_per_item(lambda u, f=f: f(users[u], heads[u]), n_users, reps) for k, f in methods.items()}
    why = {k: cpu_per_item(lambda u, f=f: f(users[u], noted[u]), n_r, reps) for k, f in methods.items()}
    votes = {k: cpu_per_item(lambda u, f=f: f(users[u], voted[u]), n_r, reps) for k, f in methods.items()}
    signing = cpu_per_item(lambda u: sign(u, users[u]), n_r, reps)
    new = plain["joined (new)"]
    print(f"build_feed per feed, CPU (one core); ratio = that method's time / joined; with notes: {n_r} users")
    for k in methods:
        print(
            f"  {k:20s} {plain[k] * 1e6:6.0f} us/feed = {1 / plain[k]:7,.0f} feeds/s  x{plain[k] / new:5.1f}"
            f"   | with notes {why[k] * 1e6:6.0f} us  x{why[k] / why['joined (new)']:5.1f}"
            f"   | + votes, a suggestion {votes[k] * 1e6:6.0f} us"
        )
    print(f"  signing a feed's vote links (feedback.vote_urls, {2 * args.entries} URLs): {signing * 1e6:6.0f} us/feed")
    print(
        f"  {n_users} feeds: joined {prep_s + new * n_users:.2f} s incl. prepare, copied "
        f"{prep_s + plain['copied (old cached)'] * n_users:.2f} s, uncached {plain['uncached feedgen'] * n_users:.2f} s"
    )

    blobs = [build_feed(users[u], **heads[u], cache=cache) for u in range(n_users)]
    size_kb = statistics.median(len(b) for b in blobs) / 1e3
    folder = Path(tempfile.mkdtemp(prefix="bench-feeds-", dir=args.dir))
    try:
        new_s, new_n = wall_per_write(folder, blobs, 0)
        same_s, same_n = wall_per_write(folder, blobs, 0)
        diff_s, diff_n = wall_per_write(folder, blobs, 1)
        shutil.rmtree(folder)
        folder.mkdir()
        n_w = min(n_users, 2_000)
        both = wall_per_user(folder, users, heads, {k: methods[k] for k in list(methods)[:2]}, n_w)
    finally:
        shutil.rmtree(folder)
    print(f"write_feed, durable=False ({size_kb:.1f} KB median, wall time, {folder.parent}):")
    print(f"  new file (temp + rename):        {new_s * 1e6:6.0f} us/file ({new_n} written)")
    print(f"  unchanged bytes (read, compare): {same_s * 1e6:6.0f} us/file ({same_n} written)")
    print(f"  changed bytes (temp + replace):  {diff_s * 1e6:6.0f} us/file ({diff_n} written)")
    print(f"build + write of a new file per user, wall time ({n_w} users):")
    for k, (total, write_part) in both.items():
        print(f"  {k:20s} {total * 1e6:6.0f} us/user (of which write {write_part * 1e6:.0f} us)")
    fixed_ids(stored, users, heads, args.ids, reps, args.dir)


def fixed_ids(
    stored: list[StoredPaper], users: list[list[FeedEntry]], heads: list[dict[str, object]], n_ids: int, reps: int,
    where: Path | None,
) -> None:  # fmt: skip
    """What a run pays for entry ids fixed at first use: reading the recorded ids, recording new ones, and
    building feeds whose entries carry their ids."""
    folder = Path(tempfile.mkdtemp(prefix="bench-feed-ids-", dir=where))
    try:
        conn = store.open_store(folder / "digest.db")
        history = {f"title:h{i:019d}": tag_uri(AUTHORITY, f"paper/title/h{i:019d}") for i in range(n_ids)}
        feed_ids.record(conn, history)
        # What a run reads: the ids of the papers its feeds show (a few hundred), not the whole table.
        wanted = list(history)[-500:]
        loads = []
        for _ in range(max(reps, 5)):
            t0 = time.perf_counter()
            ids = feed_ids.load(conn, wanted)
            loads.append(time.perf_counter() - t0)
        assert len(ids) == len(wanted)
        records = []
        for day in range(max(reps, 5)):
            new = {f"title:d{day}-{i:03d}": tag_uri(AUTHORITY, f"paper/title/d{day}-{i:03d}") for i in range(50)}
            t0 = time.perf_counter()
            feed_ids.record(conn, new)
            records.append(time.perf_counter() - t0)
        conn.close()
    finally:
        shutil.rmtree(folder)
    print(f"fixed entry ids (feed_ids), wall time, a store of {n_ids:,} recorded ids:")
    print(f"  read 500 papers' ids, one query:     {statistics.median(loads) * 1e3:6.1f} ms")
    print(f"  record 50 new ids, one transaction:  {statistics.median(records) * 1e3:6.1f} ms")
    recorded = {sp.paper.key: tag_uri(AUTHORITY, f"paper/fixed/{i}") for i, sp in enumerate(stored)}
    carried = [[FeedEntry(e.paper, e.updated, fixed_id=recorded[e.paper.key]) for e in es] for es in users]
    cache = prepare_entries([FeedEntry(sp.paper, sp.first_seen, fixed_id=recorded[sp.paper.key]) for sp in stored],
                            authority=AUTHORITY)  # fmt: skip
    n = len(users)
    if not all(build_feed(carried[u], **heads[u], cache=cache) == build_feed(carried[u], **heads[u])
               for u in range(min(n, 1_000))):  # fmt: skip
        raise SystemExit("fixed ids: the joined and uncached builds differ")
    joined = cpu_per_item(lambda u: build_feed(carried[u], **heads[u], cache=cache), n, reps)
    print(f"  build_feed per feed, joined, entries with their recorded ids: {joined * 1e6:6.0f} us/feed (CPU)")


if __name__ == "__main__":
    main()
