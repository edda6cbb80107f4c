"""End-to-end benchmark: `digest run` for 10,000 users over a 300-paper dump, against an aiosmtpd sink.

Run: python bench/bench_run.py [--quick] [--users N] [--naive-users N]
Our pipeline runs in a child process (so its peak memory is its own) through pipeline.run_once: ingest,
match (one automaton), render (pre-rendered fragments), compose (hand-built MIME), outbox, send (aiosmtplib,
reused connections), feeds. The naive pipeline (per-user regex, per-user Jinja + markdown + css-inline,
EmailMessage, smtplib with a new connection per mail) runs in this process on a sample of users and is
scaled up linearly; the output says so. Both send to the same kind of sink, a separate aiosmtpd process.
Half of the naive sample runs before ours and half after, so drift in the machine's speed weighs on both.
"""

from __future__ import annotations

import argparse
import email.policy
import json
import os
import random
import re
import resource
import smtplib
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

TERMS = [
    "LLM",
    '"language model"',
    '"reinforcement learning"',
    "GPU",
    "inference",
    "parallel",
    '"code generation"',
    "benchmark",
    "agent",
    "kernel",
    "compiler",
    "diffusion",
    "transformer",
    "attention",
    '"KV cache"',
    '"speculative decoding"',
    "quantization",
    "fine-tuning",
    "reasoning",
    "serving",
    "distributed",
    "pipeline",
    '"mixture-of-experts"',
    "retrieval",
    '"program repair"',
    "test-time",
    "scaling",
    "memory",
    "latency",
    "throughput",
    "Rust",
    "verification",
    "security",
    "graph",
    "scheduling",
    "federated",
    '"continual learning"',
    "RLHF",
    "prompt*",
    "multi-agent",
    "evaluation",
    "dataset",
    "optimization",
    "sparse",
    "training",
    "hardware",
    "CUDA",
    "HPC",
    "cloud",
    "serverless",
    "microservice",
    "database",
    "SQL",
    "query",
    "vision",
    "multimodal",
    "video",
    "robot",
    "planning",
    '"tree search"',
    "causal",
    '"time series"',
    "anomaly",
    "fault",
    "checkpoint*",
    "compression",
    "pruning",
    "distillation",
    '"long context"',
    '"chain-of-thought"',
    "title:efficient",
    "abstract:open-source",
    "MPI",
    "concurren*",
    "bug*",
    "test*",
]


def make_dump(path: Path, n: int) -> None:
    """A daily-papers API JSON dump of n papers built from the seed scrapes (real titles and abstracts)."""
    from digest.sources import read_dump

    seen, papers = set(), []
    for seed in sorted((ROOT / "tests" / "fixtures").glob("0*.txt")):
        for p in read_dump(seed).papers:
            if p.key not in seen:
                seen.add(p.key)
                papers.append(p)
    rng = random.Random(3)
    entries = []
    for i in range(n):
        p = papers[i % len(papers)]
        title = p.title if i < len(papers) else f"{p.title} (v{i})"
        entries.append(
            {
                "paper": {
                    "id": f"2611.{10000 + i:05d}",
                    "title": title,
                    "summary": p.abstract,
                    "upvotes": rng.randint(0, 150),
                    "publishedAt": "2026-11-20T00:00:00.000Z",
                    "authors": [{"name": f"A{j}"} for j in range(5)],
                },
                "publishedAt": "2026-11-23T00:00:00.000Z",
            }
        )
    path.write_text(json.dumps(entries))


def make_config(folder: Path, port: int, users: int) -> Path:
    rng = random.Random(11)
    blocks = []
    for i in range(users):
        keywords = rng.sample(TERMS, rng.randint(3, 5))
        blocks.append(
            f'[[users]]\nname = "u{i}"\nemail = "u{i}@example.org"\nkeywords = {json.dumps(keywords)}\n'
            'max_papers = 10\ncadence = "daily"\nsend_time = "07:00"\ntimezone = "UTC"\n'
        )
    path = folder / "config.toml"
    path.write_text(
        f"""[digest]
store = "digest.db"
inbox = "inbox"
base_url = "https://digest.example.org"
[mail]
sender = "digest@example.org"
[smtp]
host = "127.0.0.1"
port = {port}
security = "none"
max_connections = 4
[feeds]
output = "feeds"
"""
        + "\n".join(blocks)
    )
    return path


def start_sink() -> tuple[subprocess.Popen[str], int]:
    sink = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "smtp_sink.py")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert sink.stdout is not None
    port = int(sink.stdout.readline().split()[1])
    return sink, port


def sink_stats(sink: subprocess.Popen[str]) -> tuple[int, float]:
    assert sink.stdin is not None and sink.stdout is not None
    sink.stdin.write("stats\n")
    sink.stdin.flush()
    messages, _, cpu = sink.stdout.readline().split()
    return int(messages), float(cpu)


def child(config: str) -> None:
    """Run our pipeline once and print a JSON line with its figures."""
    from datetime import UTC, datetime

    from digest import config as config_mod
    from digest import pipeline

    cfg = config_mod.load_config(Path(config))
    env = {"DIGEST_SECRET": "bench-secret-0123456789abcdef"}
    t0, c0 = time.perf_counter(), os.times()
    report = pipeline.run_once(cfg, env, now=datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    wall, c1 = time.perf_counter() - t0, os.times()
    print(
        json.dumps(
            {
                "wall": wall,
                # child processes count too, should a run ever start any
                "cpu": (c1.user - c0.user)
                + (c1.system - c0.system)
                + (c1.children_user - c0.children_user)
                + (c1.children_system - c0.children_system),
                "sent": report.sent,
                "failed": report.failed,
                "deferred": report.deferred,
                "new": report.new_papers,
                "stages": dict(report.stages),
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "worker_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            }
        )
    )


def naive(dump: Path, config: Path, port: int, users: int, skip: int = 0) -> dict[str, float]:
    """The straightforward pipeline for ``users`` users (after the first ``skip``), producing the same kind of
    digest from the same templates: one regex per user over every paper, the full Jinja render + `markdown` +
    css-inline per user (bench_render's "naive A"), EmailMessage, and smtplib with a new connection per message."""
    from datetime import UTC, datetime

    import css_inline
    from bench_render import naive_markdown_pipeline

    from digest import config as config_mod
    from digest import render
    from digest.models import Digest, Hit, Match
    from digest.sources import read_dump

    papers = list(read_dump(dump).papers)
    profiles = config_mod.load_config(config).profiles()[skip : skip + users]
    cache = render.prepare_papers([], render.RenderOptions())  # only its Jinja environment is used
    inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
    now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    split = {"match": 0.0, "render": 0.0, "mime": 0.0, "send": 0.0}
    t0, c0 = time.perf_counter(), os.times()
    for profile in profiles:
        s = time.perf_counter()
        words = [re.escape(k.split(":")[-1].strip('"*')) for k in profile.keywords]
        pattern = re.compile(r"\b(?:" + "|".join(words) + r")\b", re.IGNORECASE)
        matches = []
        for paper in papers:
            hits = [Hit(m.group(0), "title", m.start(), m.end()) for m in pattern.finditer(paper.title)]
            hits += [Hit(m.group(0), "abstract", m.start(), m.end()) for m in pattern.finditer(paper.abstract)]
            if hits:
                reason = ", ".join(sorted({h.term for h in hits}))
                matches.append(Match(paper, float(len(hits)), tuple(hits), reason))
        matches.sort(key=lambda m: -m.score)
        split["match"] += time.perf_counter() - s
        if not matches:
            continue
        s = time.perf_counter()
        digest = Digest(profile, tuple(matches[: profile.max_papers]), now, "2026-11-23", ("daily_papers.json",))
        links = {
            "unsubscribe_url": f"https://digest.example.org/u/{profile.name}",
            "feed_url": f"https://digest.example.org/feeds/{profile.name}.xml",
            "manage_hint": "edit your [[users]] entry in config.toml",
        }
        text, html = naive_markdown_pipeline(cache, inliner, digest, links)
        split["render"] += time.perf_counter() - s
        s = time.perf_counter()
        msg = EmailMessage(policy=email.policy.SMTP)
        msg["From"], msg["To"], msg["Subject"] = "digest@example.org", profile.email, "Paper digest"
        msg["Date"] = format_datetime(now)
        msg.set_content(text, cte="quoted-printable")
        msg.add_alternative(html, subtype="html", cte="quoted-printable")
        data = msg.as_bytes()
        split["mime"] += time.perf_counter() - s
        s = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail("digest@example.org", [profile.email], data)
        split["send"] += time.perf_counter() - s
    c1 = os.times()
    return {"wall": time.perf_counter() - t0, "cpu": (c1.user - c0.user) + (c1.system - c0.system), **split}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 users, naive sample of 100")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--naive-users", type=int, default=1_000)
    parser.add_argument("--papers", type=int, default=300)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    users, naive_users = (1_000, 100) if args.quick else (args.users, args.naive_users)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "inbox").mkdir()
        dump = folder / "inbox" / "daily_papers.json"
        make_dump(dump, args.papers)
        sink, port = start_sink()
        try:
            config = make_config(folder, port, users)
            # The naive sample runs half before and half after our run, so a machine that speeds up or slows
            # down during the benchmark (this shared VM drifts by 10-30%) weighs on both sides alike.
            first = naive(dump, config, port, naive_users // 2)
            before, sink_cpu0 = sink_stats(sink)
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(config)], capture_output=True, text=True, check=True
            )
            ours = json.loads(done.stdout.strip().splitlines()[-1])
            received, sink_cpu1 = sink_stats(sink)
            second = naive(dump, config, port, naive_users - naive_users // 2, skip=naive_users // 2)
            naive_figures = {k: first[k] + second[k] for k in first}
            print(f"== ours: digest run, {users:,} users x {args.papers} papers (one process, sink in another)")
            print(
                f"  wall {ours['wall']:.2f} s, CPU {ours['cpu']:.2f} s (children included), peak RSS "
                f"{ours['peak_mb']:.0f} MB (largest child {ours['worker_peak_mb']:.0f} MB)"
            )
            print(
                f"  sent {ours['sent']:,} (sink received {received - before:,}), failed {ours['failed']}, "
                f"deferred {ours['deferred']}; sink CPU {sink_cpu1 - sink_cpu0:.1f} s"
            )
            print("  stages (s): " + ", ".join(f"{k} {v:.2f}" for k, v in ours["stages"].items()))
            per_user_ours = ours["wall"] / users
            scale = users / naive_users
            print(
                f"== naive pipeline on {naive_users:,} users (half before our run, half after), "
                f"scaled x{scale:.0f} to {users:,}"
            )
            print(
                f"  wall {naive_figures['wall']:.2f} s ({naive_figures['wall'] * scale:.1f} s scaled; halves "
                f"{first['wall']:.2f} + {second['wall']:.2f} s), CPU {naive_figures['cpu']:.2f} s "
                f"({naive_figures['cpu'] * scale:.1f} s scaled)"
            )
            print(
                "  split (s, unscaled): "
                + ", ".join(f"{k} {naive_figures[k]:.2f}" for k in ("match", "render", "mime", "send"))
            )
            per_user_naive = naive_figures["wall"] / naive_users
            print(
                f"== per user: ours {per_user_ours * 1000:.2f} ms, naive {per_user_naive * 1000:.2f} ms "
                f"-> x{per_user_naive / per_user_ours:.1f} faster (target >= 8x); peak memory target < 500 MB"
            )
        finally:
            assert sink.stdin is not None
            sink.stdin.write("quit\n")
            sink.stdin.flush()
            sink.wait(timeout=10)


if __name__ == "__main__":
    main()
