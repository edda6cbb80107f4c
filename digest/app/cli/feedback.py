"""`digest feedback` and `digest ratings list/export/import`: a user's thumbs up and down from the command line,
and their ratings as CSV (to keep, to move to another user, or from a reference manager's export)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from digest.app.cli.common import (
    EXIT_FAILED,
    Context,
    DigestGroup,
    cli,
    complete_users,
    config_with_user,
    echo_json,
    wall_clock,
)

if TYPE_CHECKING:  # imported where a command needs them, so --help and --version import no stage
    from digest import pipeline

_THUMBS = {1: "👍", -1: "👎"}


@cli.command()
@click.argument("user", shell_complete=complete_users)
@click.argument("paper")
@click.argument("vote", type=click.Choice(["up", "down"], case_sensitive=False))
@click.pass_obj
def feedback(obj: Context, user: str, paper: str, vote: str) -> None:
    """Record USER's thumbs up or down on a stored PAPER, as the 👍/👎 links of a digest do; a later vote on the
    same paper replaces it.

    PAPER is an arXiv id (2405.01234, arXiv:2405.01234v2), an arxiv.org or huggingface.co/papers link, or the
    paper's title in quotes.

    \b
    Examples:
      digest feedback ada 2405.01234 up
      digest feedback ada https://huggingface.co/papers/2405.01234 down
      digest feedback ada "Attention Is All You Need" up
    """
    from digest import pipeline

    cfg = config_with_user(obj, user)
    value = 1 if vote.lower() == "up" else -1
    done = pipeline.record_vote(cfg, user, paper, value, now=wall_clock(), source="cli")
    ident = done.paper.arxiv_id or done.paper.key
    if not done.changed:
        note = " (already)"
    elif done.previous is not None:
        note = f" (was {_THUMBS[done.previous]})"
    else:
        note = ""
    click.echo(f"{user}: {_THUMBS[value]} {done.paper.title} [{ident}]{note}")


@cli.group(cls=DigestGroup)
def ratings() -> None:
    """A user's ratings: list them, export them as CSV, import a CSV or a list of papers.

    \b
    Examples:
      digest ratings list ada
      digest ratings export ada -o ada-ratings.csv
      digest ratings import bob ada-ratings.csv --dry-run
    """


@ratings.command(name="list")
@click.argument("user", shell_complete=complete_users)
@click.option("--json", "as_json", is_flag=True, help="Print the votes and seeds as JSON.")
@click.pass_obj
def list_(obj: Context, user: str, as_json: bool) -> None:
    """USER's votes, oldest first, and the seed papers of their `like` and `dislike`.

    \b
    Examples:
      digest ratings list ada
      digest ratings list ada --json | jq '.votes[].title'
    """
    from digest import pipeline

    cfg = config_with_user(obj, user)
    found = pipeline.list_ratings(cfg, user)
    if as_json:
        echo_json(
            {
                "votes": [
                    {
                        "paper_key": r.paper_key,
                        "arxiv_id": r.arxiv_id,
                        "title": r.title,
                        "vote": "up" if r.vote > 0 else "down",
                        "source": r.source,
                        "at": r.at,
                    }
                    for r in found.ratings
                ],
                "like": [p.arxiv_id or p.key for p in found.liked],
                "dislike": [p.arxiv_id or p.key for p in found.disliked],
                "seeds_not_in_store": found.unresolved_seeds,
            }
        )
        return
    for r in found.ratings:
        ident = r.arxiv_id or r.paper_key
        click.echo(f"{r.at:%Y-%m-%d %H:%M}  {_THUMBS[r.vote]}  {r.source:<6}  {ident:<16}  {r.title or '(not stored)'}")
    if not found.ratings:
        click.echo("no votes yet", err=True)
    if found.liked or found.disliked or found.unresolved_seeds:
        click.echo(f"seeds from the config: {len(found.liked)} liked, {len(found.disliked)} disliked")
    for ref in found.unresolved_seeds:
        click.echo(f"  not in the store yet (a seed once a dump lists it): {ref}")


@ratings.command()
@click.argument("user", shell_complete=complete_users)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE, not stdout.")
@click.pass_obj
def export(obj: Context, user: str, output: Path | None) -> None:
    """Write USER's votes as CSV: arxiv_id,title,vote,at (vote up or down), oldest first.

    \b
    Examples:
      digest ratings export ada > ada.csv
      digest ratings export ada -o ada.csv
    """
    from digest import pipeline

    cfg = config_with_user(obj, user)
    text = pipeline.export_ratings(cfg, user)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.FileError(str(output), exc.strerror) from None
    click.echo(f"wrote {output} ({max(text.count(chr(10)) - 1, 0)} votes)", err=True)


@ratings.command(name="import")
@click.argument("user", shell_complete=complete_users)
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--dry-run", is_flag=True, help="Check the file and say what would change; write nothing.")
@click.option(
    "--skip-unresolved", is_flag=True, help="Import the rows the store knows even if others name no stored paper."
)
@click.pass_obj
def import_(obj: Context, user: str, file: str, dry_run: bool, skip_unresolved: bool) -> None:
    """Record the votes in FILE as USER's, all or nothing.

    FILE is a CSV with a header naming any of arxiv_id, id, arxiv, url, doi, title (each row is found by its
    arXiv id or link, else its title) and optionally vote or rating (up/down, +1/-1, 1/0, yes/no, like/dislike;
    none means up, as in a reference manager's export of liked papers), or a plain list of arXiv ids, links or
    titles, one per line (all up); '-' reads standard input. A row that names no stored paper is reported with
    its line number and nothing is written, unless --skip-unresolved.

    \b
    Examples:
      digest ratings import bob ada-ratings.csv
      digest ratings import ada zotero-export.csv --dry-run
      digest ratings import ada liked.txt --skip-unresolved
    """
    from digest import pipeline

    cfg = config_with_user(obj, user)
    try:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        raise click.FileError(file, exc.strerror) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise click.BadParameter(f"{file} is not UTF-8 text (export it as UTF-8 CSV)", param_hint="FILE") from None
    name = "<stdin>" if file == "-" else file
    report = pipeline.import_ratings(
        cfg, user, text, name=name, now=wall_clock(), dry_run=dry_run, skip_unresolved=skip_unresolved
    )
    _report_import(report, name, dry_run=dry_run, skip_unresolved=skip_unresolved)


def _report_import(report: pipeline.ImportReport, name: str, *, dry_run: bool, skip_unresolved: bool) -> None:
    for problem in report.problems:
        click.secho(f"{name}:{problem.line}: {problem.message}: {problem.text}", fg="red", err=True)
    counts = f"{report.imported} new, {report.updated} changed, {report.unchanged} already so"
    skipped = f", {report.unresolved} not in the store" if report.unresolved else ""
    if report.written:
        click.echo(f"{name}: {report.rows} rows: {counts}{skipped}" + (" (skipped)" if skipped else ""))
        return
    if dry_run and not report.problems:
        click.echo(f"{name}: {report.rows} rows: would record {counts} (dry run, nothing written)")
        return
    if dry_run and report.invalid == 0 and skip_unresolved:
        click.echo(f"{name}: {report.rows} rows: would record {counts}{skipped} (dry run, nothing written)")
        return
    click.secho(
        f"error: {name}: nothing imported: {len(report.problems)} of {report.rows} rows could not be used "
        f"(would record {counts})",
        fg="red",
        err=True,
    )
    hint = "fix or remove the rows above"
    if report.unresolved and not report.invalid:
        hint = (
            "papers not in the store yet can go in the user's `like`/`dislike` in the config (seeds once a dump "
            "lists them); --skip-unresolved imports the rest"
        )
    click.echo(f"  hint: {hint}", err=True)
    raise SystemExit(EXIT_FAILED)
