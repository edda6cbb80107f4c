"""`digest init`, `check`, `preview` and `match`: setting up and tuning a subscription."""

from __future__ import annotations

import os
import sqlite3
import tempfile
import webbrowser
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from digest.app.cli.common import EXIT_USAGE, Context, cli, complete_users, echo_json, parse_day, wall_clock
from digest.errors import DigestError

if TYPE_CHECKING:  # imported where a command needs them, so --help and --version import no stage
    from digest import config
    from digest.config.problems import ConfigProblem


@cli.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace an existing config file (the env file is never replaced).")
def init(path: Path | None, force: bool) -> None:
    """Write a commented starter config (to PATH, else the platform config dir) and, beside it, the env file
    holding a fresh signing secret.

    \b
    Examples:
      digest init
      digest init ./config.toml --force
    """
    from digest import config

    default = config.default_config_path(os.environ)
    target = config.write_starter_config(path or default, force=force)
    click.echo(f"wrote {target}")
    env_file = target.parent / config.ENV_FILE_NAME
    if config.write_env_file(env_file):
        click.echo(
            f"wrote {env_file} (mode 600) with a new random DIGEST_SECRET; keep it, it signs message ids "
            "and unsubscribe links; put the SMTP password there too if [smtp].username is set"
        )
    else:
        click.echo(f"kept {env_file} (it exists already; its secrets are left as they are)")
    again = "digest check" if target == default.resolve() else f"digest --config {target} check"
    click.echo(f"next: edit the config ([mail] sender, [smtp], one [[users]] table per subscriber), then run `{again}`")


def _organizations_seen(store_path: Path) -> list[str] | None:
    """Every organization name and handle in the store; None when there is no store yet."""
    from digest import pipeline

    if not store_path.exists():
        return None
    return pipeline.organizations_seen(store_path)


def _store_warning_problems(obj: Context, cfg: config.Config) -> list[ConfigProblem]:
    """What only `digest check` says: profiles relying on author names (text scrapes have none), and
    organizations configured but never seen in the store (nothing to say without a store)."""
    from digest import config
    from digest.config.problems import ConfigProblem

    notes = config.author_notes(cfg)
    if not any(user.organizations for user in cfg.users):
        return notes
    try:
        seen = _organizations_seen(obj.store_file())
    except (DigestError, sqlite3.Error) as exc:
        return [*notes, ConfigProblem(str(cfg.path), None, "", f"organizations not checked against the "
                                                    f"store: {exc}")]  # fmt: skip
    return notes if seen is None else [*notes, *config.organization_warnings(cfg, seen)]


def _store_warnings(obj: Context, cfg: config.Config) -> list[str]:
    return [str(w) for w in _store_warning_problems(obj, cfg)]


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the problems and warnings as JSON (also when invalid).")
@click.pass_obj
def check(obj: Context, as_json: bool) -> None:
    """Validate the config file and the secrets it names, and compare its organizations with the store; report
    every problem at once (exit 2 on any error; warnings alone exit 0).

    With --json: {"ok", "config", "problems": [{"file", "line", "key", "message", "hint"}], "warnings": [...]}
    (warnings in the same shape), on an invalid config too.

    \b
    Examples:
      digest check
      digest --config ./config.toml check --json | jq '.problems[].message'
    """
    from digest import config

    if as_json:
        _check_json(obj)
        return
    cfg = obj.config()  # an invalid file raises here, listing every problem; its warnings are printed
    errors = config.environment_problems(cfg, os.environ)
    warnings = _store_warnings(obj, cfg)
    for warning in warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    if errors:
        raise config.ConfigValidationError(errors, "fix the problems above, then run `digest check` again")
    count = len(cfg.warnings) + len(warnings)
    note = f"; {count} warning{'s' if count != 1 else ''} above" if count else ""
    click.echo(f"{cfg.path}: ok, {len(cfg.users)} users ({', '.join(u.name for u in cfg.users)}){note}")


def _check_json(obj: Context) -> None:
    """`check --json`: every problem as a record, also when the file cannot be loaded at all (exit 2 then)."""
    from digest import config
    from digest.config.problems import error_records, problem_record

    try:
        cfg = obj.config()
    except config.ConfigError as exc:
        where = obj.config_path or os.environ.get(config.CONFIG_ENV) or str(config.default_config_path(os.environ))
        echo_json({"ok": False, "config": where, "problems": error_records(exc, where),
                    "warnings": []})  # fmt: skip
        raise SystemExit(EXIT_USAGE) from None
    fix = "fix the problems above, then run `digest check` again"
    problems = [problem_record(p, fix) for p in config.environment_problems(cfg, os.environ)]
    warnings = [problem_record(w) for w in cfg.warnings]
    warnings += [problem_record(w) for w in _store_warning_problems(obj, cfg)]
    echo_json(
        {
            "ok": not problems,
            "config": str(cfg.path),
            "env_file": str(cfg.digest.env_file),
            "users": [u.name for u in cfg.users],
            "problems": problems,
            "warnings": warnings,
        }
    )
    if problems:
        raise SystemExit(EXIT_USAGE)


def _now() -> datetime:
    return wall_clock()


def _address(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """--send-to: a plain ASCII address (IDN domains in punycode), checked as the config checks addresses."""
    from digest import pipeline

    if value is None:
        return None
    try:
        return pipeline.check_address(value)
    except DigestError as exc:
        raise click.BadParameter(exc.message) from None


@cli.command()
@click.option(
    "--user", "user", required=True, shell_complete=complete_users, help="The user (name in the config) to preview."
)
@click.option("--format", "fmt", type=click.Choice(["md", "html", "text", "eml"]), default="md", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file, not stdout.")
@click.option("--open", "open_browser", is_flag=True, help="Write the HTML to a file and open it in a browser.")
@click.option("--dump", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Preview one dump file.")
@click.option("--since", metavar="DATE", help="Preview stored papers first seen since DATE (YYYY-MM-DD).")
@click.option(
    "--send-to", metavar="ADDRESS", callback=_address,
    help='Send it as the real email to ADDRESS ("[test] " before the subject) through [smtp]; records nothing.',
)  # fmt: skip
@click.pass_obj
def preview(
    obj: Context,
    user: str,
    fmt: str,
    output: Path | None,
    open_browser: bool,
    dump: Path | None,
    since: str | None,
    send_to: str | None,
) -> None:
    """Render what USER would receive right now; never changes the store. With --send-to, send that digest once
    to ADDRESS as a test (the outbox, the delivered papers and the store stay exactly as they were).

    \b
    Examples:
      digest preview --user ada
      digest preview --user ada --open
      digest preview --user ada --since 2026-01-01 --format eml --output ada.eml
      digest preview --user ada --send-to me@example.org
    """
    from digest import pipeline

    cfg = obj.config()
    day = parse_day(since, "--since")
    now = _now()
    if send_to is not None:
        _send_trial(cfg, user, send_to, now=now, dump=dump, since=day)
        return
    digest, cache, links = pipeline.preview_digest(
        cfg, os.environ, user, now=now, dump=dump, since=day.date() if day else None
    )
    if open_browser:
        fmt = "html"
    body = pipeline.preview_body(cfg, os.environ, fmt, digest, cache, links, now=now)
    if open_browser:
        handle, name = tempfile.mkstemp(prefix=f"digest-{user}-", suffix=".html")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(body)
        click.echo(f"wrote {name}", err=True)
        webbrowser.open(Path(name).as_uri())
        return
    if output:
        output.write_text(body, encoding="utf-8")
        click.echo(f"wrote {output} ({len(digest.matches)} papers)", err=True)
    else:
        click.echo(body, nl=not body.endswith("\n"))
    if not digest.matches:
        click.echo(f"note: nothing matches {user}'s profile in these papers", err=True)


def _send_trial(
    cfg: config.Config, user: str, to: str, *, now: datetime, dump: Path | None, since: datetime | None
) -> None:
    """preview --send-to: the whole work is trial.send_trial; an option that only shapes local output is refused
    rather than ignored."""
    from digest.pipeline import trial

    ctx = click.get_current_context()
    for name, flag in (("fmt", "--format"), ("output", "--output"), ("open_browser", "--open")):
        if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE:
            raise click.UsageError(f"{flag} does not go with --send-to (the test is sent as the real email)")
    sent = trial.send_trial(cfg, os.environ, user, to, now=now, dump=dump, since=since.date() if since else None)
    papers = f"{sent.papers} paper{'s' if sent.papers != 1 else ''}"
    click.echo(f"sent a test digest of {user} ({papers}) to {sent.to} via {sent.server}; nothing recorded")
    if not sent.papers:
        click.echo(f"note: nothing matches {user}'s profile in these papers", err=True)


@cli.command(name="match")
@click.argument("query")
@click.option("--since", metavar="DATE", help="Only papers first seen since DATE (YYYY-MM-DD).")
@click.option("--dump", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Match one dump file.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the matches as JSON.")
@click.pass_obj
def match_command(obj: Context, query: str, since: str | None, dump: Path | None, limit: int, as_json: bool) -> None:
    """Show which stored papers QUERY selects, best first, and why.

    \b
    Examples:
      digest match 'title:diffus* -survey'
      digest match '"language model" AND agent' --since 2026-11-01 --json
    """
    from digest import pipeline

    pipeline.check_query(query)  # a syntax error is reported before anything is read
    found, total, seen = pipeline.match_query(
        query,
        limit=limit,
        dump=dump,
        store_path=obj.store_file(),
        since=parse_day(since, "--since") if dump is None else None,
    )
    if as_json:
        echo_json(
            [
                {
                    "key": m.paper.key,
                    "title": m.paper.title,
                    "score": m.score,
                    "reason": m.reason,
                    "hits": [asdict(h) for h in m.hits],
                }
                for m in found[:limit]
            ]
        )
        return
    for m in found[:limit]:
        click.echo(f"{m.score:5.1f}  {m.paper.title}")
        click.echo(f"       {m.reason}")
    click.echo(f"{total} of {seen} papers match", err=True)
