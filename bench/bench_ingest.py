"""Ingest benchmark: parse throughput per format, and the diff of a 300-paper dump against a 1M-paper store.

Run: python bench/bench_ingest.py [--quick]
Prints papers/s for text and JSON dumps, time per HTML page for each BeautifulSoup backend, and the time to
ingest+diff 300 papers (150 seen, 150 new) against a store of 1,000,000 papers, beside the naive baseline of
loading every stored key into a Python set, measured in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digest import store  # noqa: E402
from digest.identity import title_fingerprint  # noqa: E402
from digest.models import Dump, Paper  # noqa: E402
from digest.sources import parse_dump  # noqa: E402
from digest.sources.html import parse_html  # noqa: E402
from digest.store import papers as stored_papers  # noqa: E402

SEED = ROOT / "tests" / "fixtures" / "001_3a61c802f475e377.txt"
CORPUS = ROOT.parent / "shared" / "corpus"


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def text_dump(n: int) -> bytes:
    """A text scrape of n papers in the blank-line layout, with metadata lines, built from a real seed."""
    base = parse_dump(SEED.read_bytes(), "seed").papers
    parts = ["new", "Daily Papers", "byAK and the research community", "Sep 10"]
    for i in range(n):
        p = base[i % len(base)]
        parts += [f"{p.title} #{i}", p.abstract, "  • 7 authors", "·", "Apr 8 6"]
    return "\n\n".join(parts).encode()


def json_dump(n: int) -> bytes:
    rng = random.Random(1)
    base = parse_dump(SEED.read_bytes(), "seed").papers
    entries = []
    for i in range(n):
        p = base[i % len(base)]
        entries.append(
            {
                "paper": {
                    "id": f"{2400 + i // 99999}.{i % 99999:05d}",
                    "title": p.title,
                    "summary": p.abstract,
                    "upvotes": rng.randint(0, 200),
                    "publishedAt": "2025-05-01T00:00:00.000Z",
                    "authors": [{"name": f"Author {j}", "hidden": False} for j in range(6)],
                },
                "publishedAt": "2025-05-01T00:00:00.000Z",
                "numComments": 1,
            }
        )
    return json.dumps(entries).encode()


def bench_parse(n: int) -> None:
    print(f"== parse throughput ({n} papers per dump, median of 5)")
    for fmt, data in (("text", text_dump(n)), ("json", json_dump(n))):
        seconds = median_time(lambda data=data: parse_dump(data, "bench"), 5)
        print(f"  {fmt:5} {n / seconds:>10,.0f} papers/s   ({seconds * 1000:.1f} ms, {len(data) / 1e6:.1f} MB)")
    page = CORPUS / "html" / "huggingface_papers_2024-08-01.html"
    if not page.exists():
        print("  html: ../shared/corpus not present, skipped")
        return
    html = page.read_text(encoding="utf-8")
    results = {}
    for parser in ("lxml", "html.parser"):
        for strain in (True, False):
            results[(parser, strain)] = median_time(lambda p=parser, s=strain: parse_html(html, parser=p, strain=s), 7)
    base = results[("html.parser", False)]
    for (parser, strain), seconds in sorted(results.items(), key=lambda kv: kv[1]):
        label = f"{parser}{' + SoupStrainer' if strain else ' (whole tree)'}"
        print(f"  html  {label:28} {seconds * 1000:7.1f} ms/page (13 papers)  x{base / seconds:.1f} vs html.parser")


def build_store(path: Path, n: int) -> list[str]:
    """A store holding n papers with arXiv-like keys, built in one fast transaction."""
    conn = store.open_store(path)
    conn.execute("PRAGMA synchronous=OFF")
    stamp = "2025-01-01T00:00:00+00:00"
    conn.execute("BEGIN")
    conn.execute(
        "INSERT INTO dumps (sha256, name, format, ingested_at, papers, new_papers) VALUES ('x', 'x', 'json', ?, 0, 0)",
        (stamp,),
    )
    keys = [f"arxiv:{2000 + i // 90000}.{i % 90000:05d}" for i in range(n)]
    conn.executemany(
        "INSERT INTO papers (key, title_fp, arxiv_id, title, abstract, first_seen, first_dump, last_seen) "
        "VALUES (?, ?, ?, ?, '', ?, 'x', ?)",
        ((k, title_fingerprint(k), k[6:], k, stamp, stamp) for k in keys),
    )
    conn.execute("COMMIT")
    conn.close()
    return keys


def bench_diff(n_store: int) -> None:
    print(f"== ingest + diff of 300 papers (150 seen, 150 new) against {n_store:,} stored papers")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.db"
        start = time.perf_counter()
        keys = build_store(path, n_store)
        print(f"  built store in {time.perf_counter() - start:.1f} s ({path.stat().st_size / 1e6:.0f} MB)")
        rng = random.Random(7)
        seen = rng.sample(keys, 150)
        papers = [Paper(k, f"title {k}", "", arxiv_id=k[6:]) for k in seen]
        papers += [Paper(f"arxiv:9999.{i:05d}", f"New paper {i}", "", arxiv_id=f"9999.{i:05d}") for i in range(150)]
        now = datetime(2026, 11, 23, tzinfo=UTC)

        cold_conn = store.open_store(path)
        start = time.perf_counter()
        stored_papers._find_existing(cold_conn, papers)
        cold_lookup = time.perf_counter() - start
        lookups = [median_time(lambda: stored_papers._find_existing(cold_conn, papers), 1) for _ in range(7)]
        cold_conn.close()

        ingests = []
        for rep in range(5):
            conn = store.open_store(path)
            dump = Dump(f"d{rep}", hashlib.sha256(f"{rep}".encode()).hexdigest(), "json", tuple(papers))
            start = time.perf_counter()
            report = store.ingest(conn, dump, now=now)
            ingests.append(time.perf_counter() - start)
            conn.close()
            assert report.new == (150 if rep == 0 else 0), report

        def naive() -> None:
            raw = sqlite3.connect(path)
            known = {row[0] for row in raw.execute("SELECT key FROM papers")}
            [p.key in known for p in papers]
            raw.close()

        naive_s = median_time(naive, 3)
        warm = statistics.median(lookups)
        print(f"  diff lookup (key + title fingerprint): first {cold_lookup * 1000:.2f} ms, warm {warm * 1000:.2f} ms")
        print(f"  whole ingest transaction (diff + insert + commit): median {statistics.median(ingests) * 1000:.1f} ms")
        print(f"  baseline, load all keys into a set: {naive_s * 1000:.0f} ms  -> diff is x{naive_s / warm:.0f} faster")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS of this process: {rss:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes for a smoke run")
    args = parser.parse_args()
    bench_parse(2_000 if args.quick else 20_000)
    bench_diff(50_000 if args.quick else 1_000_000)


if __name__ == "__main__":
    main()
