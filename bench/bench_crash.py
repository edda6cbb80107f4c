"""Crash benchmark: SIGKILL `digest run` at a random moment, run it again, count lost and duplicate messages.

Run: python bench/bench_crash.py [--trials N] [--users N] [--seed S] [--quick] [--dump FILE]
                                 [--calibration-runs N] [--checkout PATH] [--chunking]
                                 [--webhook {slack,discord,matrix,json}] [--webhook-delay S] [--max-papers N]
(defaults: 30 trials, 200 users, seed 1; --quick: 3 trials, 40 users; about 100 s for 30 trials here).

Not a timed test: a measurement of the "exactly once" promise (README, "Mail and delivery"; issue 11 target:
0 lost and at most 1 duplicate in 30 kills). Everything is a real process:

  * the SMTP server is an aiosmtpd sink in another process (bench/smtp_sink.py --record), which appends each
    accepted message's Message-ID and recipient to a file, flushed before it answers 250;
  * `digest run` is `python -m digest --config ... run` from this checkout, in its own process group, with a
    config like a real user's: N daily users due now, keyword profiles that match many papers of a real dump
    (../shared/corpus/api_json/2026-04-10.json when present, else tests/fixtures), [smtp] defaults
    (max_connections 4), a fresh store and the dump in the inbox.

First a few unkilled runs (calibration) measure, from outside, how long a whole run takes (process start to
exit: ingest, match, render, queue, send, feeds) and when the sink saw the first and last message. Then each
trial sets everything up afresh, starts `digest run`, SIGKILLs its process group at a moment drawn uniformly
from [0, median calibration duration) (seeded), runs `digest run` again to completion (the recovery run;
`digest send --retry` too if the store still has unsent rows afterwards) and compares what the sink accepted
with the expected one message per user:
  lost        users who never got a message;
  duplicates  accepted copies beyond the first of a Message-ID (the window README admits);
  extra       users who got two different Message-IDs (a second digest: never allowed).
A trial whose run finished before its kill moment is set up again with a new draw, so N trials are N kills.

With --webhook KIND every user also opted into one [[webhooks]] table "hook" of that kind (README, "Channels:
email and webhooks"), served by bench/webhook_sink.py in another process (--record: one JSON line per accepted
request, flushed before it answers; Matrix transaction ids kept like a homeserver's; --webhook-delay holds each
answer). A run sends the emails first, then the webhook parts one request at a time, so a kill lands in SMTP
sending, in webhook sending or elsewhere. A webhook digest carries the papers of the email, which its 100 KB
budget (Gmail clips past ~102 KB) holds to about 18 here (the others go to the archive page), and 16 papers
fill a Slack message: so with max_papers 20 (--max-papers) most Slack digests go out in 2 parts and a kill can
land between them (resuming from the part in flight); a Matrix event (60 KB) or a JSON body (100 papers) holds
them all, so those go out in one part. Counted per trial for the webhook, against the recovery run's store
(outbox rows of channel 'webhook:hook' and their ``parts``), from what the sink recorded:
  lost        users with no webhook row, or whose parts did not all arrive;
  duplicates  accepted requests beyond the first of an identity (Matrix txn id, Idempotency-Key, sha256 of a
              Slack body); for Matrix also the events stored twice (a part under two txn ids: never allowed);
  extra       users with two different bodies for one part, or parts of two periods.
The phase of a kill is read from the sink (webhook requests accepted before it) and from the store at the kill
(a webhook row in flight: handed over, no reply committed).
Exit code 0 whatever the figures: the last lines say PASS or FAIL.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS_DUMP = ROOT.parent / "shared" / "corpus" / "api_json" / "2026-04-10.json"
FIXTURE_DUMP = ROOT / "tests" / "fixtures" / "000_f4e371e0c0016fc2.txt"
SECRET = "bench-crash-secret-0123456789abcdef"
CHUNKING = False  # set by --chunking
TIMEOUT = 300.0  # seconds allowed to any one `digest` process
WEBHOOK: str | None = None  # --webhook: the kind of the users' [[webhooks]] table, or None (email only)
WEBHOOK_DELAY = 0.005  # --webhook-delay: seconds the webhook sink holds each answer
MAX_PAPERS = 20  # --max-papers: each user's max_papers
HOOK_CHANNEL = "webhook:hook"
HOOK_URL_ENV, HOOK_TOKEN_ENV, HOOK_TOKEN = "BENCH_HOOK_URL", "BENCH_HOOK_TOKEN", "syt_bench_crash_token"
# One fixed clock for every `digest` process of the benchmark (the CLI reads DIGEST_NOW), so a trial that spans
# midnight UTC cannot plan a second period; set in main().
CLOCK = ""
# Each profile has one broad term (so every user has a digest) and a few narrower ones; against
# 2026-04-10.json each broad term matches 16-20 of its 35 papers.
BROAD = ["model", "benchmark", "generat*", "framework", "evaluat*", "data*"]
TERMS = [
    "LLM",
    '"language model"',
    "reasoning",
    "agent*",
    "learning",
    "training",
    "vision",
    "video",
    "diffusion",
    '"reinforcement learning"',
    "multimodal",
    "efficient",
    "method*",
    "performance",
    "title:agent",
    "abstract:open-source",
    "robot*",
    "code",
    "retrieval",
    "3D",
]


# ------------------------------------------------------------------------------------------- the sink


class Sink:
    """bench/smtp_sink.py in its own process, recording every accepted message to ``record``."""

    def __init__(self, record: Path) -> None:
        self.record = record
        chunking = ["--chunking"] if CHUNKING else []
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "smtp_sink.py"), "--record", str(record), *chunking],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "PORT":
            self.close()
            raise SystemExit(f"the SMTP sink did not start: {line}")
        self.port = int(line[1])

    def accepted(self) -> list[tuple[float, str, str]]:
        """(time, Message-ID, recipients) of every message accepted so far."""
        if not self.record.exists():
            return []
        rows = []
        for line in self.record.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) == 3:  # a line being written right now is skipped
                rows.append((float(parts[0]), parts[1], parts[2]))
        return rows

    def close(self) -> None:
        """Quit, or kill after 10 s (only the sink this object started, by its handle)."""
        if self.proc.poll() is not None:
            return
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(timeout=10)


class HookSink:
    """bench/webhook_sink.py in its own process, recording every accepted request to ``record`` (JSON lines)."""

    def __init__(self, record: Path, delay: float) -> None:
        self.record = record
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "webhook_sink.py"), "--record", str(record), "--delay", str(delay),
             "--token", HOOK_TOKEN],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "PORT":
            self.close()
            raise SystemExit(f"the webhook sink did not start: {line}")
        self.port = int(line[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def accepted(self) -> list[dict[str, object]]:
        """Every request accepted so far, as recorded (a line being written right now is skipped)."""
        if not self.record.exists():
            return []
        rows = []
        for line in self.record.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):
                rows.append(json.loads(line))
        return rows

    close = Sink.close


# ------------------------------------------------------------------------------------------- the setup


def write_config(folder: Path, port: int, users: int, rng: random.Random, hook_url: str = "") -> Path:
    """A config as a real installation writes it: store, inbox and feeds in ``folder``, [smtp] defaults; with
    --webhook, a [[webhooks]] table "hook" every user opted into (its URL or token in the child's env)."""
    blocks = []
    for i in range(users):
        keywords = [rng.choice(BROAD), *rng.sample(TERMS, rng.randint(2, 4))]
        blocks.append(
            f'[[users]]\nname = "u{i:04d}"\nemail = "u{i:04d}@example.org"\nkeywords = {json.dumps(keywords)}\n'
            'cadence = "daily"\nsend_time = "00:00"\ntimezone = "UTC"\n'
            + (f'max_papers = {MAX_PAPERS}\nwebhooks = ["hook"]\n' if WEBHOOK else "")
        )
    hooks = ""
    if WEBHOOK == "matrix":
        hooks = (f'[[webhooks]]\nname = "hook"\nkind = "matrix"\nhomeserver = "{hook_url}"\n'
                 f'room_id = "!bench:example.org"\ntoken_env = "{HOOK_TOKEN_ENV}"\n\n')  # fmt: skip
    elif WEBHOOK:
        hooks = f'[[webhooks]]\nname = "hook"\nkind = "{WEBHOOK}"\nurl_env = "{HOOK_URL_ENV}"\n\n'
    path = folder / "config.toml"
    path.write_text(
        f"""[digest]
store = "state/digest.db"
inbox = "inbox"
base_url = "https://digest.example.org"
secret_env = "DIGEST_SECRET"
backfill_days = 7   # the default from issue 11 on; older code would send a new user nothing on day one

[mail]
sender = "digest@example.org"
sender_name = "Paper Digest"
list_id = "daily.digest.example.org"
unsubscribe_mailto = "unsubscribe@example.org"

[smtp]
host = "127.0.0.1"
port = {port}
security = "none"

[feeds]
output = "feeds"

"""
        + hooks
        + "\n".join(blocks),
        encoding="utf-8",
    )
    return path


# How each run that ended before its kill moment ended (exit code, stderr tail), printed with the trial.
ENDED_EARLY: list[str] = []

CHECKOUT = ROOT  # whose `digest` package the runs import (--checkout)


def child_env(hook_url: str = "") -> dict[str, str]:
    """The environment of every `digest` process: the secret, the fixed clock, the webhook's URL (slack,
    discord, json) or token (matrix), and the measured checkout first on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("DIGEST_CONFIG", "DIGEST_NOW")}
    env["DIGEST_SECRET"] = SECRET
    if CLOCK:
        env["DIGEST_NOW"] = CLOCK
    if WEBHOOK == "matrix":
        env[HOOK_TOKEN_ENV] = HOOK_TOKEN
    elif WEBHOOK:
        env[HOOK_URL_ENV] = f"{hook_url}/services/T0BENCH/B0BENCH/bench-crash-webhook-secret"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(CHECKOUT), env.get("PYTHONPATH", "")) if p)
    return env


@dataclass
class Setup:
    """One fresh installation: temp dir, sink, config, dump in the inbox."""

    folder: Path
    sink: Sink
    config: Path
    users: int
    hook: HookSink | None = None
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def create(cls, dump: Path, users: int, profile_seed: int) -> Setup:
        folder = Path(tempfile.mkdtemp(prefix="bench-crash-"))
        sink = hook = None
        try:
            (folder / "inbox").mkdir()
            shutil.copy(dump, folder / "inbox" / dump.name)
            sink = Sink(folder / "accepted.tsv")
            hook = HookSink(folder / "webhook.jsonl", WEBHOOK_DELAY) if WEBHOOK else None
            hook_url = hook.url if hook is not None else ""
            config = write_config(folder, sink.port, users, random.Random(profile_seed), hook_url)
        except BaseException:
            for started in (sink, hook):
                if started is not None:
                    started.close()
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return cls(folder, sink, config, users, hook)

    def digest(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        """Start `python -m digest --config CONFIG ARGS...` in its own process group; output to ``log``.*."""
        with open(self.folder / f"{log}.out", "wb") as out, open(self.folder / f"{log}.err", "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "digest", "--config", str(self.config), *args],
                cwd=self.folder,
                env=child_env(self.hook.url if self.hook is not None else ""),
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def run_to_end(self, *args: str, log: str) -> tuple[int | str, float]:
        """Run a `digest` command to its end (SIGKILL after TIMEOUT); (exit code or 'timeout', seconds)."""
        t0 = time.monotonic()
        proc = self.digest(*args, log=log)
        try:
            return proc.wait(timeout=TIMEOUT), time.monotonic() - t0
        except subprocess.TimeoutExpired:
            kill_group(proc)
            return "timeout", time.monotonic() - t0

    def stderr_tail(self, log: str) -> str:
        path = self.folder / f"{log}.err"
        text = path.read_text(encoding="utf-8", errors="replace").strip() if path.exists() else ""
        return " | ".join(text.splitlines()[-3:])

    def _query(self, sql: str) -> list[tuple[object, ...]]:
        """Rows of a read-only query of the store (empty if it cannot be read)."""
        path = self.folder / "state" / "digest.db"
        if not path.exists():
            return []
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as conn:
                return conn.execute(sql).fetchall()
        except sqlite3.Error:
            return []

    def outbox_statuses(self, channel: str | None = None) -> dict[str, int]:
        """Outbox rows per status (of one channel, or all), read straight from the store."""
        where = f"WHERE channel = '{channel}'" if channel else ""
        rows = self._query(f"SELECT status, COUNT(*) FROM outbox {where} GROUP BY status")
        return {str(s): int(n) for s, n in rows}  # type: ignore[call-overload]

    def in_flight(self) -> dict[str, int]:
        """Rows handed over with no reply committed, per channel (read right after a kill)."""
        rows = self._query("SELECT channel, COUNT(*) FROM outbox WHERE status = 'sending' AND handed_over = 1 "
                           "GROUP BY channel")  # fmt: skip
        return {str(c): int(n) for c, n in rows}  # type: ignore[call-overload]

    def hook_rows(self) -> list[tuple[str, str, int, str]]:
        """(user, period, parts, status) of each webhook outbox row that carries a digest."""
        rows = self._query(f"SELECT user, period, parts, status FROM outbox WHERE channel = '{HOOK_CHANNEL}' "
                           "AND status != 'empty' ORDER BY id")  # fmt: skip
        return [(str(u), str(p), int(n), str(s)) for u, p, n, s in rows]  # type: ignore[call-overload]

    def close(self) -> None:
        """Kill what is still running of the processes this setup started, stop the sink, remove the folder."""
        for proc in self.procs:
            if proc.poll() is None:
                kill_group(proc)
        self.sink.close()
        if self.hook is not None:
            self.hook.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group of a `digest` process this script started (its pid is the group id)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


# ------------------------------------------------------------------------------------------- measuring


@dataclass
class Calibration:
    seconds: float
    first_message: float | None  # seconds after the process started
    last_message: float | None
    recipients: set[str]
    messages: int
    code: int | str
    hook_requests: int = 0  # --webhook: requests the webhook sink accepted
    hook_first: float | None = None  # seconds after the process started
    hook_last: float | None = None
    hook_parts: Counter[int] = field(default_factory=Counter)  # webhook digests by their number of parts


def calibrate(dump: Path, users: int, profile_seed: int) -> Calibration:
    """One unkilled `digest run`, timed from outside: process start to exit, first and last accepted message."""
    setup = Setup.create(dump, users, profile_seed)
    try:
        start = time.time()
        code, seconds = setup.run_to_end("run", log="calibration")
        accepted = setup.sink.accepted()
        if code != 0:
            print(f"  calibration run exited {code}: {setup.stderr_tail('calibration')}")
        times = [t - start for t, _, _ in accepted]
        result = Calibration(
            seconds,
            min(times) if times else None,
            max(times) if times else None,
            {r for _, _, rcpts in accepted for r in rcpts.split(",")},
            len(accepted),
            code,
        )
        if setup.hook is not None:
            hook_times = [float(r["t"]) - start for r in setup.hook.accepted()]  # type: ignore[arg-type]
            result.hook_requests = len(hook_times)
            result.hook_first = min(hook_times) if hook_times else None
            result.hook_last = max(hook_times) if hook_times else None
            result.hook_parts = Counter(parts for _, _, parts, _ in setup.hook_rows())
        return result
    finally:
        setup.close()


@dataclass
class HookCount:
    """What the webhook sink got in one trial, against the recovery run's store."""

    digests: int = 0  # webhook outbox rows carrying a digest
    parts: int = 0  # their parts: the requests an uninterrupted run makes
    split: int = 0  # digests of 2 or more parts
    before_kill: int = 0  # requests the sink accepted from the killed run
    in_flight: int = 0  # webhook rows handed over with no reply committed, in the store at the kill
    resumed: int = 0  # split digests the killed run had begun and not finished (the recovery resumed them)
    accepted: int = 0
    lost: int = 0  # users with no webhook row or a part that never arrived
    duplicates: int = 0  # accepted requests beyond the first of an identity
    stored_duplicates: int = 0  # Matrix: parts stored as two events (under two txn ids); else = duplicates
    extra: int = 0  # users with two different bodies for one part, a part not planned, or two periods
    unsent_rows: int = 0
    unreadable: int = 0  # requests whose user and part the sink could not read
    notes: list[str] = field(default_factory=list)


def count_hook(setup: Setup, expected_users: set[str], before: list[dict[str, object]]) -> HookCount:
    """Compare what the webhook sink accepted with the parts the store planned (see the module docstring)."""
    assert setup.hook is not None
    h = HookCount()
    rows = setup.hook_rows()
    records = setup.hook.accepted()
    h.digests, h.parts = len(rows), sum(parts for _, _, parts, _ in rows)
    h.split = sum(1 for _, _, parts, _ in rows if parts > 1)
    h.accepted = len(records)
    h.unsent_rows = sum(1 for *_, status in rows if status != "sent")
    planned = {(user, period, part) for user, period, parts, _ in rows for part in range(1, parts + 1)}
    bodies: dict[tuple[object, object, object], set[object]] = {}
    for r in records:
        if r.get("user") is None or r.get("part") is None:
            h.unreadable += 1
        bodies.setdefault((r.get("user"), r.get("period"), r.get("part")), set()).add(r["identity"])
    copies = Counter(r["identity"] for r in records)
    h.duplicates = sum(n - 1 for n in copies.values())
    if WEBHOOK == "matrix":
        events = Counter((r.get("user"), r.get("period"), r.get("part")) for r in records if r.get("stored"))
        h.stored_duplicates = sum(n - 1 for n in events.values())
    else:  # a Slack channel shows every copy; a JSON receiver that honours Idempotency-Key would keep one
        h.stored_duplicates = h.duplicates
    with_rows = {user for user, *_ in rows}
    missing = sorted(key for key in planned if key not in bodies)
    lost = {user for user, _, _ in missing} | (expected_users - with_rows)
    h.lost = len(lost)
    for user in sorted(expected_users - with_rows):
        h.notes.append(f"webhook: {user} has no webhook outbox row")
    for user, period, part in missing[:10]:
        parts = next(n for u, p, n, _ in rows if (u, p) == (user, period))
        h.notes.append(f"webhook: {user} {period} part {part} of {parts} never arrived")
    odd = {str(key[0]) for key, ids in bodies.items() if len(ids) > 1 or key not in planned}
    periods: dict[object, set[object]] = {}
    for user, period, _ in bodies:
        periods.setdefault(user, set()).add(period)
    odd |= {str(user) for user, seen in periods.items() if len(seen) > 1}
    h.extra = len(odd)
    if odd:
        h.notes.append(f"webhook: users with two bodies for a part, a part not planned or two periods: {sorted(odd)}")
    h.before_kill = len(before)
    began = Counter((r.get("user"), r.get("period")) for r in before)
    h.resumed = sum(1 for u, p, parts, _ in rows if parts > 1 and 0 < began.get((u, p), 0) < parts)
    return h


@dataclass
class Trial:
    number: int
    kill_at: float
    before_kill: int = 0  # messages the sink accepted from the killed run
    recovery: int | str = 0
    recovery_seconds: float = 0.0
    retried: bool = False
    accepted: int = 0
    lost: int = 0
    duplicates: int = 0  # copies beyond the first, per Message-ID
    extra: int = 0  # users with more than one distinct Message-ID
    unsent_rows: int = 0  # outbox rows not 'sent' at the end (email rows, with --webhook)
    email_in_flight: int = 0  # email rows handed over with no reply committed, in the store at the kill
    hook: HookCount | None = None
    notes: list[str] = field(default_factory=list)


def trial(number: int, dump: Path, users: int, profile_seed: int, kill_at: float, expected: set[str]) -> Trial | None:
    """Kill a run ``kill_at`` s after it started, recover, count. None when the run ended before the kill."""
    setup = Setup.create(dump, users, profile_seed)
    try:
        result = Trial(number, kill_at)
        proc = setup.digest("run", log="killed")
        try:
            code = proc.wait(timeout=kill_at)
            # finished (or failed) before the kill moment: no kill happened; say how it ended
            ENDED_EARLY.append(f"exit {code} before {kill_at:.2f} s: {setup.stderr_tail('killed')[:300]}")
            return None
        except subprocess.TimeoutExpired:
            kill_group(proc)
        in_flight = setup.in_flight()  # the store as the kill left it
        result.email_in_flight = in_flight.get("email", 0)
        time.sleep(0.2)  # the sinks finish recording what they fully received before the kill
        result.before_kill = len(setup.sink.accepted())
        hook_before = setup.hook.accepted() if setup.hook is not None else []
        result.recovery, result.recovery_seconds = setup.run_to_end("run", log="recovery")
        if result.recovery != 0:
            result.notes.append(f"recovery run exited {result.recovery}: {setup.stderr_tail('recovery')}")
        statuses = setup.outbox_statuses()
        if any(statuses.get(s) for s in ("pending", "sending", "deferred")):
            result.retried = True  # README: deferred messages go out with `digest send --retry`
            code, _ = setup.run_to_end("send", "--retry", log="retry")
            if code != 0:
                result.notes.append(f"send --retry exited {code}: {setup.stderr_tail('retry')}")
            statuses = setup.outbox_statuses()
        if setup.hook is not None:
            statuses = setup.outbox_statuses("email")
        result.unsent_rows = sum(n for s, n in statuses.items() if s != "sent")
        if result.unsent_rows:
            result.notes.append(f"outbox not all sent: {statuses}")
        accepted = setup.sink.accepted()
        result.accepted = len(accepted)
        copies = Counter(mid for _, mid, _ in accepted)
        result.duplicates = sum(n - 1 for n in copies.values())
        ids_per_user: dict[str, set[str]] = {}
        for _, mid, rcpts in accepted:
            for r in rcpts.split(","):
                ids_per_user.setdefault(r, set()).add(mid)
        result.lost = len(expected - set(ids_per_user))
        result.extra = sum(1 for ids in ids_per_user.values() if len(ids) > 1)
        if setup.hook is not None:
            result.hook = count_hook(setup, {r.split("@", 1)[0] for r in expected}, hook_before)
            result.hook.in_flight = in_flight.get(HOOK_CHANNEL, 0)
            if result.hook.unsent_rows:
                result.hook.notes.append(f"webhook outbox not all sent: {setup.outbox_statuses(HOOK_CHANNEL)}")
            result.notes += result.hook.notes
        return result
    finally:
        setup.close()


def phase(t: Trial, users: int) -> str:
    """Where the kill landed, seen from the sink: before any message, while sending, after the last one."""
    if t.before_kill == 0:
        return "before sending"
    return "after sending" if t.before_kill >= users else "while sending"


def hook_phase(t: Trial) -> str:
    """Where the kill landed in webhook sending, seen from the webhook sink and the store at the kill."""
    h = t.hook
    assert h is not None
    if h.in_flight or 0 < h.before_kill < h.parts:
        return "while webhook sending"
    return "before webhook sending" if h.before_kill == 0 else "after webhook sending"


def _hook_line(t: Trial) -> str:
    h = t.hook
    assert h is not None
    line = (
        f"\n      webhook: {hook_phase(t)} ({h.before_kill} requests accepted; in flight in the store at the kill: "
        f"webhook {h.in_flight}, email {t.email_in_flight}{'; a split digest resumed' if h.resumed else ''}); "
        f"accepted {h.accepted} for {h.digests} "
        f"digests in {h.parts} parts, lost {h.lost}, duplicates {h.duplicates}"
    )
    if WEBHOOK == "matrix":
        line += f" (events stored twice {h.stored_duplicates})"
    return line + (f", users with 2+ bodies for a part {h.extra}" if h.extra else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30, help="kills (default 30)")
    parser.add_argument("--users", type=int, default=200, help="daily users due now (default 200)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the kill moments and the profiles")
    parser.add_argument("--calibration-runs", type=int, default=3, help="unkilled runs timed (default 3)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 trials, 40 users, 1 calibration run")
    parser.add_argument("--dump", type=Path, help="dump to put in the inbox (default: a real corpus dump)")
    parser.add_argument(
        "--checkout", type=Path, default=ROOT, help="measure the digest package of this checkout (a git worktree of "
        "an older commit, say; same venv) instead of this one"
    )  # fmt: skip
    parser.add_argument(
        "--chunking", action="store_true", help="the sink offers CHUNKING (BDAT), as Postfix, Exim and Gmail do; "
        "without it the sink speaks DATA only, like aiosmtpd out of the box"
    )  # fmt: skip
    parser.add_argument(
        "--webhook", choices=("slack", "discord", "matrix", "json"), help="every user also gets the digest on a "
        "webhook of this kind (bench/webhook_sink.py in another process); counted per channel"
    )  # fmt: skip
    parser.add_argument(
        "--webhook-delay", type=float, default=0.005, help="seconds the webhook sink holds each answer after "
        "recording the request (default 0.005: a fast endpoint; webhook sending then takes a third of a run, so "
        "about a third of the kills land in it)"
    )  # fmt: skip
    parser.add_argument(
        "--max-papers", type=int, default=20, help="each user's max_papers with --webhook (default 20: most Slack "
        "digests then go out in 2 parts)"
    )  # fmt: skip
    args = parser.parse_args()
    global CHUNKING, WEBHOOK, WEBHOOK_DELAY, MAX_PAPERS, CLOCK
    CHUNKING = args.chunking
    WEBHOOK, WEBHOOK_DELAY = args.webhook, args.webhook_delay
    MAX_PAPERS = args.max_papers
    CLOCK = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    # SIGTERM (and SIGINT) unwind through the `finally` blocks: no digest run, sink or temp dir is left behind.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(f"stopped by signal {signum}"))
    global CHECKOUT
    CHECKOUT = args.checkout.resolve()
    if not (CHECKOUT / "digest" / "__main__.py").exists():
        raise SystemExit(f"{CHECKOUT} holds no digest package")
    if args.quick:
        args.trials, args.users, args.calibration_runs = 3, 40, 1
    dump = args.dump or (CORPUS_DUMP if CORPUS_DUMP.exists() else FIXTURE_DUMP)
    rng = random.Random(args.seed)
    commit = subprocess.run(
        ["git", "-C", str(CHECKOUT), "log", "-1", "--format=%h %s"], capture_output=True, text=True, check=False
    ).stdout.strip()
    diff = subprocess.run(
        ["git", "-C", str(CHECKOUT), "diff", "HEAD", "--", "digest"], capture_output=True, check=False
    ).stdout
    dirty = f" + uncommitted changes in digest/ (diff sha1 {hashlib.sha1(diff).hexdigest()[:12]})" if diff else ""
    print(f"code: {CHECKOUT} at {commit[:90] or '(not a git checkout)'}{dirty}")
    server = "aiosmtpd with CHUNKING (BDAT)" if CHUNKING else "aiosmtpd, DATA only"
    print(f"dump: {dump} | users: {args.users} daily, due now | [smtp] defaults | {server} | seed {args.seed}")
    if WEBHOOK:
        print(f"webhook: every user also opted into a {WEBHOOK} webhook (bench/webhook_sink.py, answers held "
              f"{WEBHOOK_DELAY:g} s) | max_papers {MAX_PAPERS} | DIGEST_NOW={CLOCK}")  # fmt: skip
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    started = time.monotonic()

    print(f"\n== calibration: {args.calibration_runs} unkilled run(s), timed from outside")
    calibrations = []
    for i in range(args.calibration_runs):
        c = calibrate(dump, args.users, args.seed)
        calibrations.append(c)
        window = (
            f"sink saw messages from {c.first_message:.2f} s to {c.last_message:.2f} s"
            if c.first_message is not None
            else "sink saw no message"
        )
        print(f"  run {i + 1}: exit {c.code}, {c.seconds:.2f} s; {c.messages} messages to "
              f"{len(c.recipients)} users; {window}")  # fmt: skip
        if WEBHOOK:
            split = ", ".join(
                f"{n} in {parts} part{'s' if parts > 1 else ''}" for parts, n in sorted(c.hook_parts.items())
            )
            hook_window = (
                f"from {c.hook_first:.2f} s to {c.hook_last:.2f} s" if c.hook_first is not None and c.hook_last else ""
            )
            print(f"         webhook: {c.hook_requests} requests {hook_window}; digests {split or 'none'}")
    duration = statistics.median(c.seconds for c in calibrations)
    expected = set.union(*(c.recipients for c in calibrations))
    if not expected:
        print("  the unkilled runs delivered nothing: nothing to measure (is the code mid-change?)")
        print("target: 0 lost, <= 1 duplicate in 30 kills: FAIL (no baseline delivery)")
        return
    if len(expected) != args.users or any(c.messages != len(c.recipients) for c in calibrations):
        print(f"  WARNING: expected one message for each of {args.users} users; lost is counted over the "
              f"{len(expected)} users the unkilled runs delivered to")  # fmt: skip
    if WEBHOOK and any(c.hook_requests != sum(p * n for p, n in c.hook_parts.items()) for c in calibrations):
        print("  WARNING: an unkilled run's webhook requests differ from the parts its store planned")
    print(f"  kill moments drawn uniformly from [0, {duration:.2f} s) after the process starts")

    print(f"\n== {args.trials} trials: SIGKILL, then `digest run` to completion")
    trials: list[Trial] = []
    redraws = 0
    for number in range(1, args.trials + 1):
        result = None
        ENDED_EARLY.clear()
        for _ in range(5):
            kill_at = rng.uniform(0.0, duration)
            result = trial(number, dump, args.users, args.seed, kill_at, expected)
            if result is not None:
                break
            redraws += 1
        if result is None:
            print(f"  trial {number:2d}: the run ended before each of 5 kill moments; skipped")
            print("".join(f"      {how}\n" for how in ENDED_EARLY), end="")
            continue
        trials.append(result)
        t = result
        print(
            f"  trial {number:2d}: kill at {t.kill_at:5.2f} s ({phase(t, args.users)}, {t.before_kill:3d} accepted); "
            f"recovery exit {t.recovery} in {t.recovery_seconds:.2f} s{' + send --retry' if t.retried else ''}; "
            f"accepted {t.accepted}, lost {t.lost}, duplicates {t.duplicates}"
            + (f", users with 2+ Message-IDs {t.extra}" if t.extra else "")
            + (_hook_line(t) if t.hook is not None else "")
            + "".join(f"\n      redrawn: the run ended {how}" for how in ENDED_EARLY if not how.startswith("exit 0"))
            + "".join(f"\n      {note}" for note in t.notes)
        )

    kills = len(trials)
    lost = sum(t.lost for t in trials)
    dups = sum(t.duplicates for t in trials)
    with_dups = sum(1 for t in trials if t.duplicates)
    extra = sum(t.extra for t in trials)
    unsent = sum(t.unsent_rows for t in trials)
    elapsed = time.monotonic() - started
    print("\n== summary")
    print(f"  trials {kills}, kills {kills} (redrawn because the run ended before the kill: {redraws})")
    print(f"  lost total {lost} (users with no message)")
    print(f"  duplicate messages total {dups} (copies beyond the first of a Message-ID), in {with_dups} trials")
    print(f"  users with two different Message-IDs {extra}; outbox rows left unsent {unsent}")
    for name in ("before sending", "while sending", "after sending"):
        group = [t for t in trials if phase(t, args.users) == name]
        if group:
            print(f"  kills {name}: {len(group)}, duplicates {sum(t.duplicates for t in group)}")
    hook_ok = True
    if WEBHOOK:
        hooks = [t.hook for t in trials if t.hook is not None]
        h_lost = sum(h.lost for h in hooks)
        h_dups = sum(h.duplicates for h in hooks)
        h_stored = sum(h.stored_duplicates for h in hooks)
        h_extra = sum(h.extra for h in hooks)
        h_unsent = sum(h.unsent_rows for h in hooks)
        print(f"  webhook ({WEBHOOK}): lost total {h_lost} (users with no webhook digest or a part missing)")
        identity = {"matrix": "txn id", "json": "request with one Idempotency-Key"}.get(WEBHOOK, "body")
        print(f"  webhook duplicate requests total {h_dups} (accepted copies beyond the first of a {identity}), "
              f"in {sum(1 for h in hooks if h.duplicates)} trials")  # fmt: skip
        if WEBHOOK == "matrix":
            print(f"  webhook events stored twice total {h_stored} (a part kept under two txn ids), in "
                  f"{sum(1 for h in hooks if h.stored_duplicates)} trials")  # fmt: skip
        print(f"  webhook users with two different bodies for a part {h_extra}; webhook rows left unsent {h_unsent}; "
              f"requests not attributable to a user and part {sum(h.unreadable for h in hooks)}")  # fmt: skip
        for name in ("before webhook sending", "while webhook sending", "after webhook sending"):
            group = [t for t in trials if hook_phase(t) == name]
            if group:
                print(f"  kills {name}: {len(group)}, webhook duplicates "
                      f"{sum(t.hook.duplicates for t in group if t.hook)}, with a part in flight in the store "
                      f"{sum(1 for t in group if t.hook and t.hook.in_flight)}, resuming a split digest "
                      f"{sum(1 for t in group if t.hook and t.hook.resumed)}")  # fmt: skip
        counted = h_stored if WEBHOOK == "matrix" else h_dups
        hook_ok = h_lost == 0 and counted <= 1 and h_extra == 0 and h_unsent == 0
    print(f"  wall time {elapsed:.0f} s; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ok = lost == 0 and dups <= 1 and extra == 0 and unsent == 0
    verdict = "PASS" if ok else "FAIL"
    short = f" (on {kills} kills, fewer than 30: not conclusive)" if kills < 30 else ""
    print(f"target: 0 lost, <= 1 duplicate in 30 kills: {verdict}{short}")
    if WEBHOOK:
        what = "events stored twice" if WEBHOOK == "matrix" else "duplicate"
        print(f"webhook target: 0 lost, <= 1 {what} in 30 kills: {'PASS' if hook_ok else 'FAIL'}{short}")


if __name__ == "__main__":
    main()
