"""The `digest` command: parses arguments, calls the pipeline, turns DigestError into a message and exit code."""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, replace
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from digest.errors import ConfigError, DigestError, DumpError
from digest.models import IngestReport

if TYPE_CHECKING:  # imported where a command needs them, so --help and --version import no stage
    from digest import pipeline

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


CLOCK_ENV = "DIGEST_NOW"


def wall_clock() -> datetime:
    """The time every command works with: now, or the ISO time in DIGEST_NOW (a fixed clock, so that scenario
    tests and replays of a past day produce the same messages byte for byte)."""
    fixed = os.environ.get(CLOCK_ENV)
    if not fixed:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(fixed)
    except ValueError:
        raise click.UsageError(
            f"{CLOCK_ENV}={fixed!r} is not an ISO date-time (e.g. 2026-11-23T07:05:00+00:00)"
        ) from None
    if value.tzinfo is None:
        raise click.UsageError(f"{CLOCK_ENV}={fixed!r} has no time zone: add +00:00 or Z")
    return value.astimezone(UTC)


class Context:
    """What the group options decided, shared by every command."""

    def __init__(self, config_path: str | None, store_path: str | None, verbose: bool) -> None:
        self.config_path = config_path
        self.store_path = store_path
        self.verbose = verbose
        self._config: Any = None

    def config(self, *, required: bool = True) -> Any:
        """The loaded config; None when not ``required`` and no config file exists anywhere."""
        if self._config is None:
            from digest import config as config_mod

            explicit = self.config_path or os.environ.get(config_mod.CONFIG_ENV)
            if not required and not explicit and not config_mod.default_config_path(os.environ).exists():
                return None
            cfg = config_mod.load_config(config_mod.find_config_path(self.config_path, os.environ))
            if self.store_path:
                cfg = replace(cfg, digest=cfg.digest.model_copy(update={"store": Path(self.store_path).resolve()}))
            self._config = cfg
            for warning in cfg.warnings:
                click.secho(f"warning: {warning}", fg="yellow", err=True)
        return self._config

    def store_file(self, *, unvalidated: bool = False) -> Path:
        """The SQLite store: --store, else the config's [digest].store, else the platform data dir.
        ``unvalidated``: read [digest].store without validating the rest of the file (commands that need
        nothing else, such as `digest status`, answer in a fraction of the time); a file that cannot tell is
        loaded in full, which reports what is wrong with it."""
        if self.store_path:
            return Path(self.store_path)
        if unvalidated and self._config is None:
            from digest.config import paths

            explicit = self.config_path or os.environ.get(paths.CONFIG_ENV)
            found = explicit or (
                paths.default_config_path(os.environ) if paths.default_config_path(os.environ).exists() else None
            )
            if found is None:
                return paths.default_store_path(os.environ)
            light = paths.store_path_only(paths.find_config_path(self.config_path, os.environ), os.environ)
            if light is not None:
                return light
        cfg = self.config(required=False)
        if cfg is not None:
            return Path(cfg.digest.store)
        from digest import config as config_mod

        return config_mod.default_store_path(os.environ)


def config_with_user(obj: Context, user: str, param_hint: str = "USER") -> Any:
    """The config, refusing a user it does not name (a usage error, exit 2)."""
    cfg = obj.config()
    if user not in {u.name for u in cfg.users}:
        raise click.BadParameter(f"no user named {user!r} in {cfg.path}", param_hint=param_hint)
    return cfg


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _verbose(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``-v`` given after a subcommand: the same as before it."""
    obj = ctx.find_object(Context)
    if value and obj is not None and not ctx.resilient_parsing:
        obj.verbose = True
        logging.getLogger().setLevel(logging.INFO)


def verbose_option() -> click.Option:
    """The ``-v/--verbose`` every subcommand accepts too, so `digest run -v` works as `digest -v run` does."""
    return click.Option(
        ["-v", "--verbose"], is_flag=True, expose_value=False, callback=_verbose,
        help="Log progress and show tracebacks on errors (also accepted before the command).",
    )  # fmt: skip


class DigestGroup(click.Group):
    """The `digest` group: every command added to it also takes ``-v/--verbose`` after its name."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if not any("--verbose" in p.opts for p in cmd.params if isinstance(p, click.Option)):
            cmd.params.append(verbose_option())
        super().add_command(cmd, name)


def _config_for_completion(ctx: click.Context) -> Path | None:
    """The config file a completing command line would use (--config, $DIGEST_CONFIG, the default); never
    raises."""
    from digest import config as config_mod

    root = ctx.find_root()
    given = root.params.get("config_path") or os.environ.get(config_mod.CONFIG_ENV)
    try:
        return Path(given).expanduser() if given else config_mod.default_config_path(os.environ)
    except Exception:  # completion must never crash the shell
        return None


def complete_users(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion of user names from the config's [[users]] tables. The file is only read as TOML (not
    validated, nothing printed), so a config with mistakes still completes; an unreadable one completes nothing."""
    import tomllib

    path = _config_for_completion(ctx)
    try:
        users = tomllib.loads(path.read_text("utf-8"))["users"] if path else []
        names = [u["name"] for u in users if isinstance(u, dict) and isinstance(u.get("name"), str)]
    except Exception:
        return []
    return [name for name in names if name.startswith(incomplete)]


@click.group(cls=DigestGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config", "config_path", metavar="PATH", help="Config file (else $DIGEST_CONFIG, else the platform config dir)."
)
@click.option("--store", "store_path", metavar="PATH", help="SQLite store (overrides [digest].store).")
@click.option("-v", "--verbose", is_flag=True, help="Log progress and show tracebacks on errors.")
@click.version_option(package_name="paper-digest")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, store_path: str | None, verbose: bool) -> None:
    """paper-digest: daily digests of the Hugging Face Daily Papers listing.

    -v/--verbose and --help work before or after the command. Shell completion (commands, options, user names
    from the config): eval "$(_DIGEST_COMPLETE=bash_source digest)" in ~/.bashrc (zsh_source, fish_source for
    the other shells).

    \b
    Examples:
      digest init && digest check
      digest ingest tests/fixtures/
      digest preview --user ada --send-to me@example.org
      digest run -v
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if verbose:  # also when logging was set up before (basicConfig then does nothing)
        logging.getLogger().setLevel(logging.INFO)
    ctx.obj = Context(config_path, store_path, verbose)


def _expand_paths(paths: Sequence[str]) -> Iterator[tuple[str, Path | None, DumpError | None]]:
    """Yield (name, path, error) per dump; folders give their files in name order; '-' is standard input. A
    folder that cannot be listed gives its error in place of a dump."""
    for raw in paths:
        if raw == "-":
            yield "<stdin>", None, None
            continue
        path = Path(raw)
        if not path.is_dir():
            yield raw, path, None
            continue
        try:
            children = sorted(path.iterdir())
        except OSError as exc:
            yield raw, path, DumpError(f"{raw}: cannot list the folder ({exc.strerror})", "check its permissions")
            continue
        for child in children:
            if child.is_file() and not child.name.startswith("."):
                yield str(child), child, None


def _ingest_one(session: pipeline.IngestSession, name: str, path: Path | None, now: datetime) -> IngestReport:
    if path is None:
        return session.ingest_bytes(sys.stdin.buffer.read(), name, now=now)
    return session.ingest_file(path, now=now)


def report_line(report: IngestReport) -> str:
    """One human line per ingested dump."""
    if report.already_ingested:
        return f"{report.name}: {report.format}, {report.found} papers, already ingested (0 new)"
    line = f"{report.name}: {report.format}, {report.found} papers, {report.new} new, {report.seen} already seen"
    if report.skipped:
        line += f", {len(report.skipped)} problems noted (entries dropped or fields ignored)"
    return line


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (also for refused dumps).")
@click.pass_obj
def ingest(obj: Context, paths: tuple[str, ...], as_json: bool) -> None:
    """Ingest dump files or folders ('-' reads standard input) and report what is new.

    A dump that cannot be read is refused whole (nothing of it is stored) and the others go on; the exit code
    is 1 when any was refused."""
    from digest import pipeline

    with pipeline.ingest_session(obj.store_file()) as session:
        _ingest_all(session, paths, as_json, obj.verbose)


def _ingest_all(session: pipeline.IngestSession, paths: tuple[str, ...], as_json: bool, verbose: bool) -> None:
    reports: list[dict[str, Any]] = []
    refused = 0
    now = wall_clock()
    name: str | None = None
    try:
        for name, path, error in _expand_paths(paths):
            try:
                if error is not None:
                    raise error
                report = _ingest_one(session, name, path, now)
            except DumpError as exc:
                refused += 1
                reports.append({"name": name, "refused": True, "error": exc.message, "hint": exc.hint})
                if not as_json:
                    _print_error(exc, verbose)
                continue
            reports.append({**asdict(report), "refused": False})
            if not as_json:
                click.echo(report_line(report))
                for problem in report.skipped:
                    click.echo(f"  note: {problem}", err=True)
    except BaseException as exc:
        # Not a dump's fault (the store failed, or a bug): the report still lists what was done, then the error
        # itself is shown as usual.
        if as_json:
            reports.append({"name": name, "refused": True, "error": _one_line(exc), "hint": "nothing more was read"})
        raise
    finally:
        if as_json:
            echo_json(reports)
    if refused:
        raise SystemExit(EXIT_FAILED)


def _one_line(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, DigestError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def parse_day(value: str | None, param: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
    except ValueError as exc:
        raise click.BadParameter(f"expected a date like 2026-11-23, got {value!r}", param_hint=param) from exc


@cli.command()
@click.option("--since", metavar="DATE", help="Only papers first seen on or after this date (YYYY-MM-DD).")
@click.option("--until", metavar="DATE", help="Only papers first seen before this date (YYYY-MM-DD).")
@click.option("--search", metavar="WORD", help="Only papers whose title or abstract contains WORD.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the papers as JSON.")
@click.pass_obj
def papers(obj: Context, since: str | None, until: str | None, search: str | None, limit: int, as_json: bool) -> None:
    """List stored papers, newest first.

    \b
    Examples:
      digest papers --since 2026-11-01 --search diffusion
      digest papers --limit 5 --json
    """
    from digest import pipeline

    rows = pipeline.list_papers(
        obj.store_file(),
        since=parse_day(since, "--since"),
        until=parse_day(until, "--until"),
        search=search,
        limit=limit,
    )
    if as_json:
        echo_json([{**asdict(r.paper), "first_seen": r.first_seen, "first_dump": r.first_dump} for r in rows])
        return
    for row in rows:
        p = row.paper
        ident = p.arxiv_id or "-"
        extra = ", ".join(x for x in (p.organization, f"{p.upvotes} upvotes" if p.upvotes is not None else None) if x)
        click.echo(f"{row.first_seen:%Y-%m-%d}  {ident:<11} {p.title}" + (f"  ({extra})" if extra else ""))
    if not rows:
        click.echo("no papers match", err=True)


def _print_error(exc: DigestError, verbose: bool) -> None:
    first, *rest = exc.message.splitlines() or [""]
    click.secho(f"error: {first}", fg="red", err=True)
    for line in rest:
        click.secho(f"error: {line}", fg="red", err=True)
    if exc.hint:
        click.echo(f"  hint: {exc.hint}", err=True)
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)


def main(argv: Sequence[str] | None = None, *, runner: Callable[..., Any] | None = None) -> int:
    """Entry point of the `digest` console script; returns the exit code."""
    verbose = any(arg in ("-v", "--verbose") for arg in (argv if argv is not None else sys.argv[1:]))
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="digest", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return EXIT_FAILED
    except ConfigError as exc:
        _print_error(exc, verbose)
        return exc.exit_code
    except DigestError as exc:
        _print_error(exc, verbose)
        return exc.exit_code
    except SystemExit as exc:
        return int(exc.code or 0)
    except Exception as exc:
        if verbose:
            traceback.print_exc()
        click.secho(f"error: unexpected {type(exc).__name__}: {exc}", fg="red", err=True)
        click.echo("  hint: run again with --verbose and report the traceback", err=True)
        return EXIT_FAILED
    return EXIT_OK


def entry() -> None:
    """Console-script wrapper that exits with main()'s code."""
    raise SystemExit(main())


# The ingest command's body belongs to the ingest work; its help example is attached here instead.
ingest.help = (
    (ingest.help or "")
    + """

\b
Examples:
  digest ingest tests/fixtures/000_f4e371e0c0016fc2.txt
  digest ingest --json ~/dumps/
  curl -s https://huggingface.co/api/daily_papers | digest ingest -
"""
)
