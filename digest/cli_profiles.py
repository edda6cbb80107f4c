"""`digest init`, `check`, `preview` and `match`: setting up and tuning a subscription."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import webbrowser
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import click

from digest import compose, config, match, pipeline, render, store
from digest.cli import EXIT_USAGE, Context, _echo_json, _parse_day, cli
from digest.errors import DigestError
from digest.models import Paper, Profile


@cli.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace an existing config file (the env file is never replaced).")
def init(path: Path | None, force: bool) -> None:
    """Write a commented starter config (to PATH, else the platform config dir) and, beside it, the env file
    holding a fresh signing secret."""
    default = config.default_config_path(os.environ)
    target = config.write_starter_config(path or default, force=force)
    click.echo(f"wrote {target}")
    env_file = target.parent / config.ENV_FILE_NAME
    if config.write_env_file(env_file):
        click.echo(f"wrote {env_file} (mode 600) with a new random DIGEST_SECRET; keep it, it signs message ids "
                   "and unsubscribe links; put the SMTP password there too if [smtp].username is set")
    else:
        click.echo(f"kept {env_file} (it exists already; its secrets are left as they are)")
    again = "digest check" if target == default.resolve() else f"digest --config {target} check"
    click.echo(f"next: edit the config ([mail] sender, [smtp], one [[users]] table per subscriber), then run "
               f"`{again}`")


def _organizations_seen(store_path: Path) -> list[str] | None:
    """Every organization name and handle in the store; None when there is no store yet."""
    if not store_path.exists():
        return None
    with contextlib.closing(store.open_store(store_path, readonly=True)) as conn:
        return store.organizations_seen(conn)


def _store_warnings(obj: Context, cfg: config.Config) -> list[str]:
    """Organizations configured but never seen in the store (nothing to say without a store)."""
    if not any(user.organizations for user in cfg.users):
        return []
    try:
        seen = _organizations_seen(obj.store_file())
    except (DigestError, sqlite3.Error) as exc:
        return [f"organizations not checked against the store: {exc}"]
    return [] if seen is None else [str(w) for w in config.organization_warnings(cfg, seen)]


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def check(obj: Context, as_json: bool) -> None:
    """Validate the config file and the secrets it names, and compare its organizations with the store; report
    every problem at once (exit 2 on any error; warnings alone exit 0)."""
    cfg = obj.config()  # an invalid file raises here, listing every problem; its warnings are printed
    errors = config.environment_problems(cfg, os.environ)
    warnings = _store_warnings(obj, cfg)
    if as_json:
        _echo_json(
            {
                "config": str(cfg.path),
                "env_file": str(cfg.digest.env_file),
                "users": [u.name for u in cfg.users],
                "ok": not errors,
                "errors": [str(e) for e in errors],
                "warnings": [str(w) for w in cfg.warnings] + warnings,
            }
        )
        if errors:
            raise SystemExit(EXIT_USAGE)
        return
    for warning in warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    if errors:
        raise config.ConfigValidationError(errors, "fix the problems above, then run `digest check` again")
    count = len(cfg.warnings) + len(warnings)
    note = f"; {count} warning{'s' if count != 1 else ''} above" if count else ""
    click.echo(f"{cfg.path}: ok, {len(cfg.users)} users ({', '.join(u.name for u in cfg.users)}){note}")


def _now() -> datetime:
    return datetime.now(UTC)


@cli.command()
@click.option("--user", "user", required=True, help="The user (name in the config) to preview.")
@click.option("--format", "fmt", type=click.Choice(["md", "html", "text", "eml"]), default="md", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file, not stdout.")
@click.option("--open", "open_browser", is_flag=True, help="Write the HTML to a file and open it in a browser.")
@click.option("--dump", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Preview one dump file.")
@click.option("--since", metavar="DATE", help="Preview stored papers first seen since DATE (YYYY-MM-DD).")
@click.pass_obj
def preview(
    obj: Context, user: str, fmt: str, output: Path | None, open_browser: bool, dump: Path | None, since: str | None
) -> None:
    """Render what USER would receive right now; never sends, never changes the store."""
    cfg = obj.config()
    day = _parse_day(since, "--since")
    now = _now()
    digest, cache, links = pipeline.preview_digest(
        cfg, os.environ, user, now=now, dump=dump, since=day.date() if day else None
    )
    if open_browser:
        fmt = "html"
    if fmt == "md":
        body = render.render_part("md", digest, cache, now=now, **links)
    elif fmt == "text":
        body = render.render_part("txt", digest, cache, now=now, **links)
    elif fmt == "html":
        body = render.render_part("html", digest, cache, now=now, **links)
    else:
        email = render.render_digest(digest, cache, now=now, **links)
        mail = pipeline.preview_mail_settings(cfg, os.environ)
        body = compose.compose(email, mail, now=now).decode("utf-8")
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


@cli.command(name="match")
@click.argument("query")
@click.option("--since", metavar="DATE", help="Only papers first seen since DATE (YYYY-MM-DD).")
@click.option("--dump", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Match one dump file.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the matches as JSON.")
@click.pass_obj
def match_command(obj: Context, query: str, since: str | None, dump: Path | None, limit: int, as_json: bool) -> None:
    """Show which stored papers QUERY selects, best first, and why."""
    match.parse_query(query)  # a syntax error is reported before anything is read
    matcher = match.compile_profiles([Profile(name="query", email="", keywords=(query,), max_papers=limit)])
    seen = 0

    def counted(batches: Iterable[Sequence[Paper]]) -> Iterator[Sequence[Paper]]:
        nonlocal seen
        for batch in batches:
            seen += len(batch)
            yield batch

    if dump is not None:
        from digest.sources import read_dump

        [(found, total)] = match.match_top_stream(matcher, counted([read_dump(dump).papers])).values()
    else:
        # Streamed: the store is read a batch at a time and only the best `limit` matches are kept, so
        # matching years of history holds one batch of papers, not all of them.
        with contextlib.closing(store.open_store(obj.store_file(), readonly=True)) as conn:
            batches = store.iter_papers(conn, since=_parse_day(since, "--since"))
            [(found, total)] = match.match_top_stream(
                matcher, counted([sp.paper for sp in batch] for batch in batches)
            ).values()
    if as_json:
        _echo_json(
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
