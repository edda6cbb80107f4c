"""History benchmark: does a daily run cost the same after a year as on day one?

Run: python bench/bench_history.py [--quick] [--users N] [--sizes 1000,10000,100000]

For each size, a store is built with that many papers over 365 days (real titles and abstracts from the
project's fixtures, one dump a day, ingested through the store as `digest ingest` does; the last 40 days hold
20 papers a day at every size, so the run's catch-up window and the users' feeds see the same daily volume)
and a year of delivery history for every user (one sent digest a day of three papers each: 365 outbox rows
and ~1,100 delivered papers per user, and a fixed feed entry id for every paper). Then a real day is put in the inbox
and one daily `digest run` (ingest, match, render, outbox, sending to a local aiosmtpd sink in another
process, feeds) runs in a child process. Its wall time and peak RSS are reported, and the ratio against the
smallest history, all in this one invocation; the sizes run round robin (--repeats times, the best counts),
so drift in the machine's speed weighs on every size alike. Then `digest preview --since <first day of the
history>` runs over each store in a child process (peak RSS).

Targets (issue 12): the run at 100k stored papers within 1.25x of the run at 1k; preview --since over 100k
papers under 150 MB peak RSS.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DAY = ROOT.parent / "shared" / "corpus" / "api_json" / "2026-04-10.json"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_run import make_config, make_dump, sink_stats, start_sink  # noqa: E402

DAYS = 365
FIRST_DAY = datetime(2025, 11, 23, 6, 0, tzinfo=UTC)
RUN_AT = FIRST_DAY + timedelta(days=DAYS, hours=2)  # 08:00 the day after the history ends: every user is due
PER_DIGEST = 3
RECENT_DAYS, RECENT_PER_DAY = 40, 20  # deeper than a feed (100 entries, 3 a day) and the 7-day catch-up


def _seed_papers() -> list[tuple[str, str]]:
    from digest.sources import read_dump

    seen, out = set(), []
    for seed in sorted((ROOT / "tests" / "fixtures").glob("0*.txt")):
        for p in read_dump(seed).papers:
            if p.key not in seen:
                seen.add(p.key)
                out.append((p.title, p.abstract))
    return out


def build_store(folder: Path, n_papers: int, users: int) -> None:
    """A store holding ``n_papers`` papers over a year and a year of daily digests for every user."""
    from digest import store
    from digest.models import Dump, Paper

    seeds = _seed_papers()
    rng = random.Random(n_papers)
    conn = store.open_store(folder / "digest.db")
    # The last RECENT_DAYS hold the same RECENT_PER_DAY papers at every size (what a run's catch-up window
    # sees, as on any real day); the rest of the history is spread over the days before them.
    older = n_papers - RECENT_DAYS * RECENT_PER_DAY
    spread = DAYS - RECENT_DAYS
    per_day = [older // spread + (1 if d < older % spread else 0) for d in range(spread)]
    per_day += [RECENT_PER_DAY] * RECENT_DAYS
    day_keys: list[list[str]] = []
    serial = 0
    for day, count in enumerate(per_day):
        at = FIRST_DAY + timedelta(days=day)
        papers = []
        for _ in range(count):
            title, abstract = seeds[serial % len(seeds)]
            arxiv = f"{19 + serial // 1_200_000:02d}{1 + serial // 100_000 % 12:02d}.{serial % 100_000:05d}"
            papers.append(
                Paper(
                    key=f"arxiv:{arxiv}",
                    title=f"{title} ({serial})",
                    abstract=abstract,
                    authors=tuple(f"Author {j}" for j in range(4)),
                    n_authors=4,
                    published=at.date(),
                    upvotes=rng.randint(0, 150),
                    arxiv_id=arxiv,
                )
            )
            serial += 1
        sha = hashlib.sha256(f"{n_papers}/{day}".encode()).hexdigest()
        store.ingest(conn, Dump(f"{at:%Y-%m-%d}.json", sha, "json", tuple(papers)), now=at)
        day_keys.append([p.key for p in papers])
    added = (FIRST_DAY - timedelta(days=1)).isoformat(timespec="seconds")
    with conn:
        conn.executemany(
            "INSERT INTO subscribers (name, added_at) VALUES (?, ?)", [(f"u{i}", added) for i in range(users)]
        )
        outbox_id = 0
        for day in range(DAYS):
            sent = FIRST_DAY + timedelta(days=day, hours=1)
            window_from = (sent - timedelta(days=1)).isoformat(timespec="seconds")
            stamp = sent.isoformat(timespec="seconds")
            rows, delivered = [], []
            for i in range(users):
                outbox_id += 1
                keys = rng.sample(day_keys[day], min(PER_DIGEST, len(day_keys[day])))
                rows.append((outbox_id, f"u{i}", f"{sent:%Y-%m-%d}", stamp, window_from, stamp, stamp,
                             json.dumps(keys), f"<{outbox_id}@bench>", "sent", 1, stamp))  # fmt: skip
                delivered += [(k, f"u{i}", "delivered", outbox_id, pos, stamp) for pos, k in enumerate(keys)]
            conn.executemany(
                "INSERT INTO outbox (id, user, period, scheduled_at, window_from, created_at, papers_until, "
                "paper_keys, message_id, status, attempts, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.executemany(
                "INSERT INTO user_papers (paper_key, user, state, outbox_id, position, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                delivered,
            )
        # Every historic paper has been in the global feed, so each has its fixed entry id.
        conn.execute(
            "INSERT INTO feed_ids (paper_key, entry_id) SELECT key, 'tag:bench.example,2025:' || key FROM papers"
        )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def child_run(config: str) -> None:
    """One daily run over the prepared store; prints a JSON line with its figures."""
    from digest import config as config_mod
    from digest import pipeline

    cfg = config_mod.load_config(Path(config))
    started = time.perf_counter()
    report = pipeline.run_once(cfg, {"DIGEST_SECRET": "bench-secret-0123456789abcdef"}, now=RUN_AT)
    print(json.dumps({"wall": time.perf_counter() - started, "sent": report.sent, "new": report.new_papers,
                      "failed": report.failed, "stages": dict(report.stages)}))  # fmt: skip


def measure_run(folder: Path, port: int, users: int, day: Path) -> dict[str, float]:
    """Copy the built store, drop the real day into the inbox, run once; figures of the run."""
    work = folder / "run"
    if work.exists():
        subprocess.run(["rm", "-rf", str(work)], check=True)
    (work / "inbox").mkdir(parents=True)
    src = sqlite3.connect(folder / "digest.db")
    dst = sqlite3.connect(work / "digest.db")
    src.backup(dst)
    src.close()
    dst.close()
    (work / "inbox" / day.name).write_bytes(day.read_bytes())
    config = make_config(work, port, users)
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stderr is not None
    _, status, usage = os.wait4(proc.pid, 0)
    out, err = proc.stdout.read(), proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"run failed:\n{err}")
    figures = json.loads(out.strip().splitlines()[-1])
    figures["peak_mb"] = usage.ru_maxrss / 1024
    return figures


def measure_preview(folder: Path, port: int, users: int) -> tuple[float, float]:
    """`digest preview --since <first day>` for one user over the whole history: (wall s, peak RSS MB)."""
    config = make_config(folder, port, users)
    argv = [sys.executable, "-m", "digest", "--config", str(config), "preview", "--user", "u0",
            "--since", f"{FIRST_DAY:%Y-%m-%d}", "--output", str(folder / "preview.md")]  # fmt: skip
    started = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's digest, whatever is installed
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=folder, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    err = proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"preview failed:\n{err}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 users; sizes 1,000 and 10,000")
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeats", type=int, default=3, help="runs per size, round robin; the best counts")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_run(args.child)
        return
    users = 200 if args.quick else args.users
    sizes = [1_000, 10_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        day = SHARED_DAY
        if not day.exists():
            day = root / "daily_papers.json"
            make_dump(day, 40)
        sink, port = start_sink()
        try:
            folders = {}
            for size in sizes:
                folders[size] = root / f"h{size}"
                folders[size].mkdir()
                started = time.perf_counter()
                build_store(folders[size], size, users)
                db_mb = (folders[size] / "digest.db").stat().st_size / 1e6
                print(f"built {size:>7,} papers x {users:,} users x {DAYS} days of digests: "
                      f"{time.perf_counter() - started:.1f} s, store {db_mb:.1f} MB", flush=True)  # fmt: skip
            # Round robin, best of --repeats per size: this shared machine's speed drifts by tens of percent
            # within minutes, and each size then sees the same spread of conditions.
            order = [size for _ in range(args.repeats) for size in sizes]
            runs: dict[int, list[dict[str, float]]] = {size: [] for size in sizes}
            for size in order:
                before, _ = sink_stats(sink)
                figures = measure_run(folders[size], port, users, day)
                received, _ = sink_stats(sink)
                figures["received"] = received - before
                runs[size].append(figures)
            print(f"== daily run: {users:,} users, one real day ({day.name}) on top of the history")
            base = min(r["wall"] for r in runs[sizes[0]])
            for size in sizes:
                best = min(runs[size], key=lambda r: r["wall"])
                stages = ", ".join(f"{k} {v:.2f}" for k, v in best["stages"].items())
                print(f"  {size:>7,} papers: wall {best['wall']:.2f} s (x{best['wall'] / base:.2f} of {sizes[0]:,}), "
                      f"peak RSS {best['peak_mb']:.0f} MB, sent {best['sent']:,} (sink got {best['received']:,}); "
                      f"stages (s): {stages}")  # fmt: skip
            for size in sizes:
                walls = ", ".join(f"{r['wall']:.2f}" for r in runs[size])
                print(f"  every run at {size:,} papers, in order: {walls} s")
            print("== preview --since the first day, one user, over the whole history")
            for size in sizes:
                wall, peak = measure_preview(folders[size], port, users)
                print(f"  {size:>7,} papers: wall {wall:.2f} s, peak RSS {peak:.0f} MB")
            print(f"targets: run at {sizes[-1]:,} within 1.25x of {sizes[0]:,}; preview at 100,000 under 150 MB")
        finally:
            sink.kill()


if __name__ == "__main__":
    main()
