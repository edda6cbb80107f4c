"""`digest run`, `send`, `status`, `fetch`, `serve`, `unsubscribe`, `resubscribe`: the delivery side."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from digest import outbox, pipeline, store
from digest.cli import EXIT_FAILED, Context, _echo_json, cli
from digest.sources import fetch as fetch_mod

DEFAULT_DRY_RUN_DIR = Path("digest-dry-run")


@contextlib.contextmanager
def _progress(enabled: bool):
    """A rich progress bar on stderr while sending (only on a terminal); yields the callback."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    with Progress(TextColumn("sending"), BarColumn(), MofNCompleteColumn(), transient=True, console=None) as progress:
        task = progress.add_task("send", total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def _summary(report: pipeline.RunReport) -> str:
    dumps = len(report.dumps)
    parts = [
        f"{dumps} dump{'s' if dumps != 1 else ''} read",
        f"{report.new_papers} new papers",
        f"{report.sent} digests sent",
        f"{report.deferred} deferred",
        f"{report.failed} failed",
        f"{len(report.feeds_written)} feeds written",
    ]
    return ", ".join(parts)


@cli.command()
@click.option("--user", "users", multiple=True, help="Only these users (repeatable).")
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
    """Do the whole job once: collect dumps, ingest, match, render, deliver, write feeds."""
    cfg = obj.config()
    unknown = sorted(set(users) - {u.name for u in cfg.users})
    if unknown:
        raise click.BadParameter(f"no such user(s): {', '.join(unknown)}", param_hint="--user")
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with _progress(not as_json and not quiet) as progress:
            report = pipeline.run_once(
                cfg,
                os.environ,
                now=datetime.now(UTC),
                options=pipeline.RunOptions(
                    users=users or None,
                    dry_run=out if dry_run else None,
                    fetch=not no_fetch,
                    progress=progress,
                    wait_for_lock=wait,
                    stop=stop.is_set,
                ),
                clock=lambda: datetime.now(UTC),
            )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stop.is_set() and not any("stopped by a signal" in e for e in report.errors):
        report = replace(
            report, errors=(*report.errors, "stopped by a signal; unsent digests go out with the next run")
        )
    if as_json:
        _echo_json(asdict(report))
    else:
        nothing = not report.new_papers and not report.sent and not report.deferred and not report.failed
        if not (quiet and nothing and not report.errors):
            click.echo(("nothing new today: " if nothing and not report.errors else "") + _summary(report))
        if dry_run and report.sent:
            click.echo(f"dry run: wrote {report.sent} messages to {out}/ (nothing was sent or stored)")
        for error in report.errors:
            click.secho(f"error: {error}", fg="red", err=True)
    if report.errors or report.failed:
        raise SystemExit(EXIT_FAILED)


@cli.command()
@click.option("--retry", is_flag=True, help="Resend deferred messages whose retry time has come.")
@click.option("--user", "users", multiple=True, help="Only these users (repeatable).")
@click.option("--dry-run", is_flag=True, help="Write the due messages as .eml files instead of sending.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_DRY_RUN_DIR, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def send(obj: Context, retry: bool, users: tuple[str, ...], dry_run: bool, out: Path, as_json: bool) -> None:
    """Send what is due in the outbox (pending messages, and with --retry deferred ones) without ingesting."""
    cfg = obj.config()
    now = datetime.now(UTC)
    with store.run_lock(cfg.digest.store), contextlib.closing(store.open_store(cfg.digest.store)) as real:
        conn = pipeline.scratch_copy(real) if dry_run else real  # the copy is closed with the process
        with _progress(not as_json) as progress:
            options = pipeline.RunOptions(users=users or None, dry_run=out if dry_run else None, progress=progress)
            done = pipeline.deliver_due(
                conn, cfg, os.environ, now=now, options=options, clock=lambda: datetime.now(UTC), retry_deferred=retry
            )
    if as_json:
        _echo_json(asdict(done))
    else:
        counts = f"{done.sent} sent, {done.deferred} deferred, {done.failed} failed"
        click.echo(counts + (f" (written to {out}/)" if dry_run else ""))
        for error in done.errors:
            click.secho(f"error: {error}", fg="red", err=True)
    if done.failed:
        raise SystemExit(EXIT_FAILED)


@cli.command()
@click.option("--user", "users", multiple=True, help="Only these users (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def status(obj: Context, users: tuple[str, ...], limit: int, as_json: bool) -> None:
    """Show what was sent, deferred and failed, per user and per run."""
    with contextlib.closing(store.open_store(obj.store_file(), readonly=True)) as conn:
        rows = outbox.history(conn, users=users or None, limit=limit)
        runs = outbox.runs(conn, limit=10)
        gone = outbox.unsubscribed(conn)
        unsent = {user: outbox.user_paper_states(conn, user) for user in users}
    if as_json:
        _echo_json(
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
        click.echo(f"  {r.user:<16} {r.period:<17} {r.status:<9} {when}  {papers}  run {r.run_id}{detail}")
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
    """Download the daily-papers API listing into the inbox (nothing is written on failure)."""
    cfg = obj.config()
    if not cfg.digest.source_url:
        raise click.UsageError("no [digest].source_url in the config; set it to the daily-papers API URL")
    path = fetch_mod.fetch_listing(
        cfg.digest.source_url, cfg.digest.inbox, day=day.date() if day else None, timeout=cfg.digest.fetch_timeout
    )
    click.echo(f"wrote {path}")


@cli.command()
@click.pass_obj
def serve(obj: Context) -> None:
    """Run the scheduler and the feeds/unsubscribe HTTP server until SIGTERM."""
    from digest import schedule

    cfg = obj.config()
    if not obj.verbose:
        logging.getLogger().setLevel(logging.INFO)
    schedule.serve(cfg, os.environ)


def _set_subscribed(obj: Context, user: str, subscribed: bool) -> None:
    cfg = obj.config()
    if user not in {u.name for u in cfg.users}:
        raise click.BadParameter(f"no user named {user!r} in {cfg.path}", param_hint="USER")
    with contextlib.closing(store.open_store(cfg.digest.store)) as conn:
        changed = outbox.set_subscribed(conn, user, subscribed, now=datetime.now(UTC))
    state = "subscribed" if subscribed else "unsubscribed"
    click.echo(f"{user}: {state}" + ("" if changed else " (already)"))


@cli.command()
@click.argument("user")
@click.pass_obj
def unsubscribe(obj: Context, user: str) -> None:
    """Stop sending to USER (what the one-click link does)."""
    _set_subscribed(obj, user, False)


@cli.command()
@click.argument("user")
@click.pass_obj
def resubscribe(obj: Context, user: str) -> None:
    """Send to USER again after an unsubscribe."""
    _set_subscribed(obj, user, True)
