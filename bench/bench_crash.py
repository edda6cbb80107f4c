"""Crash benchmark: SIGKILL `digest run` at a random moment, run it again, count lost and duplicate messages.

Run: python bench/bench_crash.py [--trials N] [--users N] [--seed S] [--quick] [--dump FILE]
                                 [--calibration-runs N] [--checkout PATH]
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
Exit code 0 whatever the figures: the last line says PASS or FAIL.
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


# ------------------------------------------------------------------------------------------- the setup


def write_config(folder: Path, port: int, users: int, rng: random.Random) -> Path:
    """A config as a real installation writes it: store, inbox and feeds in ``folder``, [smtp] defaults."""
    blocks = []
    for i in range(users):
        keywords = [rng.choice(BROAD), *rng.sample(TERMS, rng.randint(2, 4))]
        blocks.append(
            f'[[users]]\nname = "u{i:04d}"\nemail = "u{i:04d}@example.org"\nkeywords = {json.dumps(keywords)}\n'
            'cadence = "daily"\nsend_time = "00:00"\ntimezone = "UTC"\n'
        )
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
        + "\n".join(blocks),
        encoding="utf-8",
    )
    return path


CHECKOUT = ROOT  # whose `digest` package the runs import (--checkout)


def child_env() -> dict[str, str]:
    """The environment of every `digest` process: the secret, and the measured checkout first on the path."""
    env = {k: v for k, v in os.environ.items() if k != "DIGEST_CONFIG"}
    env["DIGEST_SECRET"] = SECRET
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(CHECKOUT), env.get("PYTHONPATH", "")) if p)
    return env


@dataclass
class Setup:
    """One fresh installation: temp dir, sink, config, dump in the inbox."""

    folder: Path
    sink: Sink
    config: Path
    users: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def create(cls, dump: Path, users: int, profile_seed: int) -> Setup:
        folder = Path(tempfile.mkdtemp(prefix="bench-crash-"))
        sink = None
        try:
            (folder / "inbox").mkdir()
            shutil.copy(dump, folder / "inbox" / dump.name)
            sink = Sink(folder / "accepted.tsv")
            config = write_config(folder, sink.port, users, random.Random(profile_seed))
        except BaseException:
            if sink is not None:
                sink.close()
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return cls(folder, sink, config, users)

    def digest(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        """Start `python -m digest --config CONFIG ARGS...` in its own process group; output to ``log``.*."""
        with open(self.folder / f"{log}.out", "wb") as out, open(self.folder / f"{log}.err", "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "digest", "--config", str(self.config), *args],
                cwd=self.folder,
                env=child_env(),
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

    def outbox_statuses(self) -> dict[str, int]:
        """Outbox rows per status, read straight from the store (empty if it cannot be read)."""
        path = self.folder / "state" / "digest.db"
        if not path.exists():
            return {}
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as conn:
                return dict(conn.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall())
        except sqlite3.Error:
            return {}

    def close(self) -> None:
        """Kill what is still running of the processes this setup started, stop the sink, remove the folder."""
        for proc in self.procs:
            if proc.poll() is None:
                kill_group(proc)
        self.sink.close()
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
        return Calibration(
            seconds,
            min(times) if times else None,
            max(times) if times else None,
            {r for _, _, rcpts in accepted for r in rcpts.split(",")},
            len(accepted),
            code,
        )
    finally:
        setup.close()


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
    unsent_rows: int = 0  # outbox rows not 'sent' at the end
    notes: list[str] = field(default_factory=list)


def trial(number: int, dump: Path, users: int, profile_seed: int, kill_at: float, expected: set[str]) -> Trial | None:
    """Kill a run ``kill_at`` s after it started, recover, count. None when the run ended before the kill."""
    setup = Setup.create(dump, users, profile_seed)
    try:
        result = Trial(number, kill_at)
        proc = setup.digest("run", log="killed")
        try:
            proc.wait(timeout=kill_at)
            return None  # finished (or failed) before the kill moment: no kill happened
        except subprocess.TimeoutExpired:
            kill_group(proc)
        time.sleep(0.2)  # the sink finishes recording what it fully received before the kill
        result.before_kill = len(setup.sink.accepted())
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
        return result
    finally:
        setup.close()


def phase(t: Trial, users: int) -> str:
    """Where the kill landed, seen from the sink: before any message, while sending, after the last one."""
    if t.before_kill == 0:
        return "before sending"
    return "after sending" if t.before_kill >= users else "while sending"


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
    args = parser.parse_args()
    global CHUNKING
    CHUNKING = args.chunking
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
    print(f"code: {CHECKOUT} at {commit[:90]}{dirty}")
    server = "aiosmtpd with CHUNKING (BDAT)" if CHUNKING else "aiosmtpd, DATA only"
    print(f"dump: {dump} | users: {args.users} daily, due now | [smtp] defaults | {server} | seed {args.seed}")
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
    duration = statistics.median(c.seconds for c in calibrations)
    expected = set.union(*(c.recipients for c in calibrations))
    if not expected:
        print("  the unkilled runs delivered nothing: nothing to measure (is the code mid-change?)")
        print("target: 0 lost, <= 1 duplicate in 30 kills: FAIL (no baseline delivery)")
        return
    if len(expected) != args.users or any(c.messages != len(c.recipients) for c in calibrations):
        print(f"  WARNING: expected one message for each of {args.users} users; lost is counted over the "
              f"{len(expected)} users the unkilled runs delivered to")  # fmt: skip
    print(f"  kill moments drawn uniformly from [0, {duration:.2f} s) after the process starts")

    print(f"\n== {args.trials} trials: SIGKILL, then `digest run` to completion")
    trials: list[Trial] = []
    redraws = 0
    for number in range(1, args.trials + 1):
        result = None
        for _ in range(5):
            kill_at = rng.uniform(0.0, duration)
            result = trial(number, dump, args.users, args.seed, kill_at, expected)
            if result is not None:
                break
            redraws += 1
        if result is None:
            print(f"  trial {number:2d}: the run ended before each of 5 kill moments; skipped")
            continue
        trials.append(result)
        t = result
        print(
            f"  trial {number:2d}: kill at {t.kill_at:5.2f} s ({phase(t, args.users)}, {t.before_kill:3d} accepted); "
            f"recovery exit {t.recovery} in {t.recovery_seconds:.2f} s{' + send --retry' if t.retried else ''}; "
            f"accepted {t.accepted}, lost {t.lost}, duplicates {t.duplicates}"
            + (f", users with 2+ Message-IDs {t.extra}" if t.extra else "")
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
    print(f"  wall time {elapsed:.0f} s; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ok = lost == 0 and dups <= 1 and extra == 0 and unsent == 0
    verdict = "PASS" if ok else "FAIL"
    if kills < 30:
        verdict += f" (on {kills} kills, fewer than 30: not conclusive)"
    print(f"target: 0 lost, <= 1 duplicate in 30 kills: {verdict}")


if __name__ == "__main__":
    main()
