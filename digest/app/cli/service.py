"""`digest run`, `send`, `status`, `fetch`, `serve`, `unsubscribe`, `resubscribe`: the delivery side."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from digest.app.cli.common import EXIT_FAILED, Context, cli, complete_users, config_with_user, echo_json, wall_clock

if TYPE_CHECKING:  # imported where a command needs them, so --help and --version import no stage
    from rich.console import Console

    from digest import config, pipeline

DEFAULT_DRY_RUN_DIR = Path("digest-dry-run")


class _ConsoleLogHandler(logging.Handler):
    """Log records printed through a rich console, so they appear above its live progress bar, not through it."""

    def __init__(self, console: Console, like: logging.Handler | None) -> None:
        super().__init__(like.level if like else logging.NOTSET)
        self.console = console
        if like is not None and like.formatter is not None:
            self.setFormatter(like.formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.print(self.format(record), markup=False, highlight=False, emoji=False, soft_wrap=True)
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def _logging_through(console: Console) -> Iterator[None]:
    """While a bar is live, the root logger's terminal handlers write through its console."""
    root = logging.getLogger()
    terminal = [h for h in root.handlers if type(h) is logging.StreamHandler]  # basicConfig's, not files
    replacement = _ConsoleLogHandler(console, terminal[0] if terminal else None)
    for handler in terminal:
        root.removeHandler(handler)
    root.addHandler(replacement)
    try:
        yield
    finally:
        root.removeHandler(replacement)
        for handler in terminal:
            root.addHandler(handler)


def _progress_label(dry_run: bool) -> str:
    return "writing digests (dry run)" if dry_run else "sending digests"


@contextlib.contextmanager
def _progress(enabled: bool, label: str, console: Console | None = None) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on stderr while delivering (only on a terminal), saying what it counts ("sending
    digests 3/12"); it appears once the count is known and log lines print above it. Yields the callback."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = console or Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, transient=True, console=console) as progress, _logging_through(console):
        task = progress.add_task(label, total=None, visible=False)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total, visible=True)

        yield update


def _require_users(cfg: config.Config, users: tuple[str, ...]) -> None:
    """Refuse --user names the config does not have (a typo must not be a silent no-op)."""
    unknown = sorted(set(users) - {u.name for u in cfg.users})
    if unknown:
        raise click.BadParameter(f"no such user(s): {', '.join(unknown)}", param_hint="--user")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _summary(report: pipeline.RunReport, dry_run: Path | None = None) -> str:
    """One line for a run; a dry run says where its digests were written and that nothing was sent."""
    delivered = (
        f"{_plural(report.sent, 'digest')} written to {dry_run}/ (dry run, nothing sent)"
        if dry_run is not None
        else f"{_plural(report.sent, 'digest')} sent"
    )
    parts = [f"{_plural(len(report.dumps), 'dump')} read", f"{report.new_papers} new papers", delivered]
    if dry_run is None or report.deferred or report.failed:  # a dry run defers and fails nothing
        parts += [f"{report.deferred} deferred", f"{report.failed} failed"]
    parts.append(f"{_plural(len(report.feeds_written), 'feed')} written")
    return ", ".join(parts)


@cli.command()
@click.option("--user", "users", multiple=True, shell_complete=complete_users, help="Only these users (repeatable).")
@click.option("--dry-run", is_flag=True, help="Write .eml files instead of sending; the store is not changed.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DRY_RUN_DIR,
    show_default=True,
    help="Folder for --dry-run output.",
)
@click.option("--no-fetch", is_flag=True, help="Do not fetch the day's listing even if source_url is set.")
@click.option("--wait", is_flag=True, help="Wait for a concurrent run instead of exiting with code 3.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing when there is nothing new (for cron).")
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON.")
@click.pass_obj
def run(
    obj: Context,
    users: tuple[str, ...],
    dry_run: bool,
    out: Path,
    no_fetch: bool,
    wait: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Do the whole job once: collect dumps, ingest, match, render, deliver, write feeds.

    \b
    Examples:
      digest run --dry-run --out /tmp/digests
      digest run -v
      digest run --quiet          # for cron: silent when there is nothing new
    """
    from digest import pipeline

    cfg = obj.config()
    _require_users(cfg, users)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with _progress(not as_json and not quiet, _progress_label(dry_run)) as progress:
            report = pipeline.run_once(
                cfg,
                os.environ,
                now=wall_clock(),
                options=pipeline.RunOptions(
                    users=users or None,
                    dry_run=out if dry_run else None,
                    fetch=not no_fetch,
                    progress=progress,
                    wait_for_lock=wait,
                    stop=stop.is_set,
                ),
                clock=lambda: wall_clock(),
            )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stop.is_set() and not any("stopped by a signal" in e for e in report.errors):
        report = replace(
            report, errors=(*report.errors, "stopped by a signal; unsent digests go out with the next run")
        )
    if as_json:
        echo_json(asdict(report))
    else:
        nothing = not report.new_papers and not report.sent and not report.deferred and not report.failed
        if not (quiet and nothing and not report.errors):
            summary = _summary(report, out if dry_run else None)
            click.echo(("nothing new today: " if nothing and not report.errors else "") + summary)
        for error in report.errors:
            click.secho(f"error: {error}", fg="red", err=True)
    if report.errors or report.failed:
        raise SystemExit(EXIT_FAILED)


@cli.command()
@click.option("--retry", is_flag=True, help="Resend deferred messages whose retry time has come.")
@click.option("--user", "users", multiple=True, shell_complete=complete_users, help="Only these users (repeatable).")
@click.option("--dry-run", is_flag=True, help="Write the due messages as .eml files instead of sending.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_DRY_RUN_DIR, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def send(obj: Context, retry: bool, users: tuple[str, ...], dry_run: bool, out: Path, as_json: bool) -> None:
    """Send what is due in the outbox (pending messages, and with --retry deferred ones) without ingesting.

    \b
    Examples:
      digest send
      digest send --retry --user ada
      digest send --dry-run --out /tmp/due
    """
    from digest import pipeline

    cfg = obj.config()
    _require_users(cfg, users)
    now = wall_clock()
    with _progress(not as_json, _progress_label(dry_run)) as progress:
        done = pipeline.send_due(
            cfg,
            os.environ,
            now=now,
            users=users or None,
            dry_run=out if dry_run else None,
            progress=progress,
            retry=retry,
            clock=lambda: wall_clock(),
        )
    if as_json:
        echo_json(asdict(done))
    else:
        if dry_run:
            click.echo(f"{_plural(done.sent, 'message')} written to {out}/ (dry run, nothing sent)")
        else:
            click.echo(f"{done.sent} sent, {done.deferred} deferred, {done.failed} failed")
        for error in done.errors:
            click.secho(f"error: {error}", fg="red", err=True)
        if done.deferred and not done.errors:
            click.secho(
                f"error: {_plural(done.deferred, 'message')} deferred by a temporary SMTP failure (`digest status` "
                "shows the server's reply); `digest send --retry` or the next run retries them",
                fg="red",
                err=True,
            )
    # Like `digest run`: a deferral is something a cron job must see, not a success.
    if done.failed or done.deferred:
        raise SystemExit(EXIT_FAILED)


@cli.command()
@click.option("--user", "users", multiple=True, help="Only these users (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def status(obj: Context, users: tuple[str, ...], limit: int, as_json: bool) -> None:
    """Show what was sent, deferred and failed, per user and per run.

    \b
    Examples:
      digest status
      digest status --user ada --limit 10
    """
    from digest import pipeline

    report = pipeline.status(obj.store_file(unvalidated=True), users=users, limit=limit)
    rows, runs, gone, unsent = report.messages, report.runs, report.unsubscribed, report.unsent
    if as_json:
        echo_json(
            {
                "messages": [{k: v for k, v in asdict(r).items() if k != "message"} for r in rows],
                "runs": runs,
                "unsubscribed": sorted(gone),
                "not_mailed": unsent,
            }
        )
        return
    click.echo("messages (newest first):")
    for r in rows:
        when = f"{r.sent_at:%Y-%m-%d %H:%M}" if r.sent_at else f"{r.created_at:%Y-%m-%d %H:%M}"
        detail = f" {r.last_code or ''} {r.last_reply or ''}".rstrip() if r.status in ("deferred", "failed") else ""
        papers = f"{len(r.paper_keys)} papers" if r.status != "empty" else "no matching papers"
        channel = f"  {r.channel}" if r.channel != "email" else ""
        parts = f" ({r.parts_done}/{r.parts} parts)" if r.parts > 1 and r.status != "sent" else ""
        click.echo(
            f"  {r.user:<16} {r.period:<17} {r.status:<9} {when}  {papers}  run {r.run_id}{channel}{parts}{detail}"
        )
    if not rows:
        click.echo("  (none yet)")
    click.echo("runs (newest first):")
    for run_row in runs:
        errors = run_row["summary"].get("errors") or []
        click.echo(
            f"  #{run_row['id']:<4} {run_row['started_at']}  {run_row['status']}" + (f"  {errors[0]}" if errors else "")
        )
    if gone:
        click.echo(f"unsubscribed: {', '.join(sorted(gone))}")
    for user, states in unsent.items():
        click.echo(f"matched for {user} but not mailed (newest first):")
        for item in states[:limit]:
            why = _WHY_NOT_MAILED.get(str(item["state"]), item["state"])
            click.echo(f"  {why}: {item['title'] or item['paper_key']}")
        if not states:
            click.echo("  (nothing: every matching paper was mailed)")
        elif len(states) > limit:
            click.echo(f"  ... and {len(states) - limit} more (--limit)")


# Why a matched paper did not (yet) reach a user by mail, per (user, paper) state.
_WHY_NOT_MAILED = {
    "queued": "queued (in a digest not accepted by the server yet)",
    "carried": "carried over (over max_papers; comes in the next digest)",
    "dropped": "dropped (never sent, now older than catchup_max_age_days)",
    "archived": "archived (listed on the digest's archive page, not mailed)",
}


@cli.command()
@click.option("--date", "day", type=click.DateTime(formats=["%Y-%m-%d"]), help="The listing's date (default: latest).")
@click.pass_obj
def fetch(obj: Context, day: datetime | None) -> None:
    """Download the daily-papers API listing into the inbox (nothing is written on failure).

    \b
    Examples:
      digest fetch
      digest fetch --date 2026-11-23
    """
    from digest import pipeline

    cfg = obj.config()
    if not cfg.digest.source_url:
        raise click.UsageError("no [digest].source_url in the config; set it to the daily-papers API URL")
    path = pipeline.fetch_listing(cfg, day.date() if day else None)
    click.echo(f"wrote {path}")


@cli.command()
@click.pass_obj
def serve(obj: Context) -> None:
    """Run the scheduler and the feeds/unsubscribe HTTP server until SIGTERM.

    \b
    Examples:
      digest serve
      digest --config ~/.config/paper-digest/config.toml serve -v
    """
    from digest.app import schedule

    cfg = obj.config()
    if not obj.verbose:
        logging.getLogger().setLevel(logging.INFO)
    schedule.serve(cfg, os.environ)


def _set_subscribed(obj: Context, user: str, subscribed: bool) -> None:
    from digest import pipeline

    cfg = config_with_user(obj, user)
    changed = pipeline.set_subscribed(cfg.digest.store, user, subscribed, now=wall_clock())
    state = "subscribed" if subscribed else "unsubscribed"
    click.echo(f"{user}: {state}" + ("" if changed else " (already)"))


@cli.command()
@click.argument("user", shell_complete=complete_users)
@click.pass_obj
def unsubscribe(obj: Context, user: str) -> None:
    """Stop sending to USER (what the one-click link does).

    \b
    Examples:
      digest unsubscribe ada
    """
    _set_subscribed(obj, user, False)


@cli.command()
@click.argument("user", shell_complete=complete_users)
@click.pass_obj
def resubscribe(obj: Context, user: str) -> None:
    """Send to USER again after an unsubscribe.

    \b
    Examples:
      digest resubscribe ada
    """
    _set_subscribed(obj, user, True)
