"""Delivery benchmark: compose + send ~50 KB digests to an aiosmtpd sink running in a separate process.

Run: python bench/bench_send.py [--quick] [--count N] [--reps R] [--connections C]
Prints, as medians over R repetitions in one run:
  * compose µs/message: our hand-built bytes vs the stdlib EmailMessage (policy=SMTP, quoted-printable);
  * msg/s and client CPU ms/message for
      baseline  EmailMessage build + smtplib with a new connection per message (the rss2email pattern),
      ours      compose() + send_all() (aiosmtplib, C reused connections), composing lazily while sending,
      send-only send_all() alone on the ceiling's prebuilt bytes (the client library cost, apples to apples),
      ceiling   smtplib in C threads, one persistent connection each, bytes built beforehand
                (the most this sink accepted from any client here);
  * the ratios ours/baseline and ours/ceiling, and the sink's CPU ms/message.
Client CPU is os.times() of this process (threads included); sink CPU is os.times() of the sink process.
"""

from __future__ import annotations

import argparse
import asyncio
import email.policy
import itertools
import os
import random
import smtplib
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from html import escape
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digest.deliver.email import (  # noqa: E402
    MailSettings,
    Outgoing,
    SendResult,
    SmtpSettings,
    compose,
    send_all,
    unsubscribe_url,
)
from digest.models import RenderedEmail  # noqa: E402

SEEDS = sorted((ROOT / "tests" / "fixtures").glob("0*.txt"))
NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
SENDER = "bounces@example.org"
MAIL = MailSettings(
    sender="digest@example.org",
    sender_name="Paper Digest",
    list_id="daily.digest.example.org",
    domain="digest.example.org",
    secret=b"bench-secret-0123456789abcdef",
    unsubscribe_mailto="unsubscribe@example.org",
    unsubscribe_base_url="https://digest.example.org",
)
CELL = (
    "padding:12px 16px;border-bottom:1px solid #e5e7eb;background-color:#ffffff;color:#111827;"
    "font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;font-size:15px;line-height:1.5"
)
LINK = "color:#1d4ed8;text-decoration:underline;font-weight:600;font-size:17px"
META = "color:#4b5563;background-color:#ffffff;font-size:13px;margin:4px 0 8px 0"


def seed_papers() -> list[tuple[str, str]]:
    """(title, abstract) pairs scraped from the seed dumps: a short line followed by a long one."""
    papers = []
    for path in SEEDS:
        blocks = [b.strip() for b in path.read_text(encoding="utf-8").split("\n\n") if b.strip()]
        for title, abstract in itertools.pairwise(blocks):
            if 20 < len(title) < 250 and "\n" not in title and len(abstract) > 600:
                papers.append((title, abstract))
    return papers


def digests(count: int, per_digest: int = 11) -> list[RenderedEmail]:
    """``count`` realistic rendered digests (~18 KB Markdown + ~30 KB inlined HTML each)."""
    papers = seed_papers()
    rng = random.Random(7)
    out = []
    for i in range(count):
        picked = rng.sample(papers, per_digest)
        user = f"user{i:05d}"
        link = unsubscribe_url(user, MAIL)
        md = [f"# Paper digest — 2026-11-23\n\n{per_digest} new papers matched your keywords.\n"]
        rows = []
        for n, (title, abstract) in enumerate(picked):
            url = f"https://arxiv.org/abs/2411.{10000 + n + i % 5000:05d}"
            md.append(f"## [{title}]({url})\n\n*matched: diffusion, LLM* · ▲ {n * 7}\n\n")
            md.append(textwrap.fill(abstract, 76) + "\n")
            rows.append(
                f'<tr><td style="{CELL}"><a href="{url}" style="{LINK}">{escape(title)}</a>'
                f'<p style="{META}">matched: <strong>diffusion</strong>, <strong>LLM</strong> · ▲ {n * 7}</p>'
                f'<p style="margin:0;color:#111827;background-color:#ffffff">{escape(abstract)}</p></td></tr>\n'
            )
        md.append(f"\n---\nUnsubscribe: {link}\n")
        html = (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Paper digest</title>'
            '<meta name="color-scheme" content="light dark"></head><body style="margin:0;background-color:#f3f4f6">'
            '<table role="presentation" cellpadding="0" cellspacing="0" border="0" width="100%">\n'
            + "".join(rows)
            + f'<tr><td style="{CELL}"><a href="{link}" style="{LINK}">Unsubscribe</a></td></tr>'
            "</table></body></html>\n"
        )
        out.append(
            RenderedEmail(
                user, f"{user}@example.com", "Paper digest — 2026-11-23 (11 new)", "".join(md), html, "2026-11-23"
            )
        )
    return out


def email_message(e: RenderedEmail) -> bytes:
    """The straightforward stdlib build of the same message (what the baseline does per message)."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = Address(MAIL.sender_name, addr_spec=MAIL.sender)
    msg["To"] = e.to
    msg["Subject"] = e.subject
    msg["Date"] = format_datetime(NOW)
    msg["Message-ID"] = make_msgid(domain=MAIL.domain)
    msg["List-Id"] = f"{MAIL.sender_name} <{MAIL.list_id}>"
    msg["List-Unsubscribe"] = f"<{unsubscribe_url(e.user, MAIL)}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(e.text, cte="quoted-printable")
    msg.add_alternative(e.html, subtype="html", cte="quoted-printable")
    return msg.as_bytes()


class Sink:
    """The aiosmtpd sink subprocess."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "smtp_sink.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        assert line[0] == "PORT", line
        self.port = int(line[1])

    def stats(self) -> tuple[int, float]:
        """(messages received so far, sink CPU seconds so far)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        messages, _, cpu = self.proc.stdout.readline().split()
        return int(messages), float(cpu)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("quit\n")
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # only the sink we started, by its handle
            self.proc.wait()


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def measure(sink: Sink, n: int, fn: Callable[[], None]) -> tuple[float, float, float]:
    """Run ``fn`` (which must deliver ``n`` messages); return (msg/s, client CPU ms/msg, sink CPU ms/msg)."""
    count0, sink0 = sink.stats()
    cpu0, t0 = cpu(), time.perf_counter()
    fn()
    wall, client = time.perf_counter() - t0, cpu() - cpu0
    count1, sink1 = sink.stats()
    if count1 - count0 != n:
        raise SystemExit(f"sink received {count1 - count0} messages, expected {n}")
    return n / wall, client / n * 1000, (sink1 - sink0) / n * 1000


def baseline(port: int, emails: list[RenderedEmail]) -> None:
    """EmailMessage + smtplib, one new connection per message."""
    for e in emails:
        data = email_message(e)
        with smtplib.SMTP("127.0.0.1", port, local_hostname="bench.test") as client:
            client.sendmail(SENDER, [e.to], data)


def ours(port: int, emails: list[RenderedEmail] | list[Outgoing], connections: int) -> None:
    """compose() + send_all() over reused aiosmtplib connections (send_all() only when given Outgoing)."""
    smtp = SmtpSettings(
        host="127.0.0.1", port=port, security="none", max_connections=connections, helo_name="bench.test"
    )
    messages = (
        e if isinstance(e, Outgoing) else Outgoing(e.user, SENDER, e.to, compose(e, MAIL, now=NOW)) for e in emails
    )  # composed on demand, as sessions free up
    failures: list[SendResult] = []

    def on_result(msg: Outgoing, result: SendResult) -> None:
        if result.status != "sent":
            failures.append(result)

    asyncio.run(send_all(messages, smtp, on_result=on_result))
    if failures:
        raise SystemExit(f"{len(failures)} messages not sent, e.g. {failures[0]}")


def ceiling(port: int, datas: list[tuple[str, bytes]], threads: int) -> None:
    """smtplib, one persistent connection per thread, bytes prepared beforehand."""

    def work(chunk: list[tuple[str, bytes]]) -> None:
        with smtplib.SMTP("127.0.0.1", port, local_hostname="bench.test") as client:
            for to, data in chunk:
                client.sendmail(SENDER, [to], data)

    workers = [threading.Thread(target=work, args=(datas[i::threads],)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def compose_times(sample: list[RenderedEmail], reps: int) -> tuple[float, float, int, int]:
    """Median µs/message for compose() and for EmailMessage, and the message sizes."""
    ours_t, std_t = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        for e in sample:
            compose(e, MAIL, now=NOW)
        ours_t.append((time.perf_counter() - t0) / len(sample) * 1e6)
        t0 = time.perf_counter()
        for e in sample:
            email_message(e)
        std_t.append((time.perf_counter() - t0) / len(sample) * 1e6)
    return (
        statistics.median(ours_t),
        statistics.median(std_t),
        len(compose(sample[0], MAIL, now=NOW)),
        len(email_message(sample[0])),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 messages, baseline on 100")
    parser.add_argument("--count", type=int, default=2000, help="messages per run of ours and ceiling")
    parser.add_argument("--baseline-count", type=int, default=200, help="messages per baseline run (it is slow)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    if args.quick:
        args.count, args.baseline_count = 300, 100

    emails = digests(args.count)
    sizes = [len(e.text.encode()) + len(e.html.encode()) for e in emails[:50]]
    print(f"{args.count} digests, {statistics.mean(sizes) / 1024:.1f} KB of text+HTML each before encoding")
    ours_us, std_us, ours_size, std_size = compose_times(emails[:100], 5)
    print("\ncompose, µs/message (median of 5 passes over 100 messages)")
    print(f"  hand-built compose()  {ours_us:8.0f} µs  {ours_size / 1024:6.1f} KB on the wire")
    print(f"  EmailMessage(SMTP)    {std_us:8.0f} µs  {std_size / 1024:6.1f} KB on the wire")
    print(f"  speed-up              {std_us / ours_us:8.1f}x")

    prebuilt = [(e.to, compose(e, MAIL, now=NOW)) for e in emails]
    prebuilt_out = [Outgoing(e.user, SENDER, to, data) for e, (to, data) in zip(emails, prebuilt, strict=True)]
    load_before = os.getloadavg()
    sink = Sink()
    rows: dict[str, list[tuple[float, float, float]]] = {"baseline": [], "ours": [], "send-only": [], "ceiling": []}
    try:
        for _ in range(args.reps):
            rows["baseline"].append(
                measure(sink, args.baseline_count, lambda: baseline(sink.port, emails[: args.baseline_count]))
            )
            rows["ours"].append(measure(sink, args.count, lambda: ours(sink.port, emails, args.connections)))
            rows["send-only"].append(measure(sink, args.count, lambda: ours(sink.port, prebuilt_out, args.connections)))
            rows["ceiling"].append(measure(sink, args.count, lambda: ceiling(sink.port, prebuilt, args.connections)))
    finally:
        sink.close()

    labels = {
        "baseline": f"baseline: EmailMessage + smtplib, new connection per message ({args.baseline_count} msgs)",
        "ours": f"ours: compose() + send_all(), {args.connections} reused aiosmtplib connections",
        "send-only": "ours, send_all() only, on the ceiling's prebuilt bytes",
        "ceiling": f"ceiling: smtplib, {args.connections} threads x persistent connection, prebuilt bytes",
    }
    print(f"\ndelivery to the aiosmtpd sink (separate process), median of {args.reps} runs of {args.count} messages")
    print(f"  load average before: {' '.join(f'{x:.2f}' for x in load_before)} on {os.cpu_count()} CPUs")
    print(f"  {'':<84} {'msg/s':>7} {'(min-max)':>13} {'client ms/msg':>14} {'sink ms/msg':>12}")
    med: dict[str, float] = {}
    for name, runs in rows.items():
        rates = [r[0] for r in runs]
        med[name] = statistics.median(rates)
        client = statistics.median(r[1] for r in runs)
        sink_ms = statistics.median(r[2] for r in runs)
        span = f"({min(rates):.0f}-{max(rates):.0f})"
        print(f"  {labels[name]:<84} {med[name]:7.0f} {span:>13} {client:14.2f} {sink_ms:12.2f}")

    # Runs of one repetition are back to back, so their ratio is less exposed to other work on the machine.
    def paired(name: str, ref: str) -> float:
        return statistics.median(a[0] / b[0] for a, b in zip(rows[name], rows[ref], strict=True))

    print(f"\n  {'ratio':<20} {'of medians':>10} {'median of per-run ratios':>26}")
    for name, ref, target in (
        ("ours", "baseline", ">= 2x"),
        ("ours", "ceiling", ">= 80%"),
        ("send-only", "ceiling", ""),
    ):
        label = f"{name} / {ref}"
        of_medians, per_run = med[name] / med[ref], paired(name, ref)
        if ref == "baseline":
            print(f"  {label:<20} {of_medians:9.2f}x {per_run:25.2f}x   (target {target})")
        else:
            print(f"  {label:<20} {of_medians:10.0%} {per_run:26.0%}   {f'(target {target})' if target else ''}")
    load = os.getloadavg()
    print(f"\n  load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
