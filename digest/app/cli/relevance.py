"""`digest suggest` (profile edits the votes argue for) and `digest evaluate` (replay dumps through the real
pipeline and measure what each day's digest showed)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from digest.app.cli.common import Context, cli, complete_users, config_with_user, echo_json

if TYPE_CHECKING:  # imported where a command needs it, so --help imports no stage
    pass


@cli.command()
@click.option("--user", required=True, shell_complete=complete_users, help="Whose votes to read.")
@click.option("--min-evidence", type=click.IntRange(min=1), default=2, show_default=True,
              help="Votes an edit needs behind it.")  # fmt: skip
@click.option("--limit", type=click.IntRange(min=1), default=5, show_default=True, help="Edits of each kind.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def suggest(obj: Context, user: str, min_evidence: int, limit: int, as_json: bool) -> None:
    """Propose edits to USER's keyword profile from their 👍/👎: an exclusion for a term behind repeated 👎, an
    addition for a term frequent in papers they liked that the keywords missed. Each is checked with the query
    parser and the matcher on every rated paper; nothing is applied: paste what you agree with.

    \b
    Examples:
      digest suggest --user ada
      digest suggest --user ada --min-evidence 3 --json
    """
    from digest.pipeline import suggest as suggesting

    cfg = config_with_user(obj, user, "--user")
    report = suggesting.suggest_edits(cfg, user, min_evidence=min_evidence, limit=limit)
    if as_json:
        echo_json({"user": report.user, "up": report.up, "down": report.down,
                   "edits": [{"kind": e.kind, "query": e.query, "evidence": e.evidence, "against": e.against,
                              "added": list(e.added), "removed": list(e.removed)} for e in report.edits]})  # fmt: skip
        return
    for line in suggesting.describe(report):
        click.echo(line)


def _read_ids(path: Path) -> frozenset[str]:
    """arXiv ids from a file: a JSON list, or one per line (# comments allowed)."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        return frozenset(str(item) for item in json.loads(text))
    return frozenset(line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip())


def _read_ratings(path: Path) -> dict[str, int]:
    """arXiv id (or paper key) -> vote from a CSV of `digest ratings export` (arxiv_id,title,vote,at)."""
    import csv

    found: dict[str, int] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            ident = (row.get("arxiv_id") or row.get("id") or "").strip()
            vote = (row.get("vote") or "up").strip().lower()
            if ident:
                found[ident] = 1 if vote in ("up", "+1", "1", "like", "yes") else -1
    return found


@cli.command()
@click.option("--user", required=True, shell_complete=complete_users, help="The profile to replay.")
@click.argument("dumps", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--labels",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="arXiv ids the user would call relevant (JSON list or one per line): simulate their votes.",
)
@click.option(
    "--ratings",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A CSV of real ratings (`digest ratings export`): replay them on what each digest showed.",
)
@click.option(
    "--rated",
    type=click.FloatRange(0, 1),
    default=1.0,
    show_default=True,
    help="With --labels: the share of shown papers the simulated user rates.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Which shown papers get rated.")
@click.option(
    "--from-day",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Score from this day on (a learner's warm-up).",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write what each day showed as JSON for ../shared/relevance/score.py.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def evaluate(
    obj: Context, user: str, dumps: tuple[Path, ...], labels: Path | None, ratings: Path | None, rated: float,
    seed: int, from_day: int, out: Path | None, as_json: bool,
) -> None:  # fmt: skip
    """Replay DUMPS (files or folders, in date order) day by day for USER through the real pipeline, in a
    temporary store with a fixed clock per day, and report what each digest showed. With --labels the
    simulated user votes on what was shown (up if labelled, down otherwise), so a learned ranker learns as
    it would from a real user; recall and precision are printed (precision is a lower bound when the labels
    are incomplete). The real store is never touched.

    \b
    Examples:
      digest evaluate --user ada ~/dumps/2024-*.json
      digest evaluate --user video ../shared/corpus/api_json_2024 --labels video.ids --rated 0.3 --from-day 60
    """
    from digest.pipeline.evaluate import evaluate as replay

    cfg = config_with_user(obj, user, "--user")
    files = sorted(p for d in dumps for p in (sorted(d.iterdir()) if d.is_dir() else [d]) if p.is_file())

    def progress(done: int, total: int) -> None:
        if obj.verbose:
            click.echo(f"day {done}/{total}", err=True)

    report = replay(
        cfg, os.environ, user, files,
        labels=_read_ids(labels) if labels else None, ratings=_read_ratings(ratings) if ratings else None,
        rated=rated, seed=seed, from_day=from_day, progress=progress,
    )  # fmt: skip
    if out is not None:
        # score.py reads "topics"; "suggestions" is the "Also for you" part of each day's list, in the same shape.
        data = {"ranker": report.ranker, "topics": report.rankings(), "suggestions": report.suggestions()}
        out.write_text(json.dumps(data, indent=1) + "\n")
    summary = {
        "user": report.user, "ranker": report.ranker, "days": len(report.days), "scored_days": len(report.scored),
        "recall": report.recall, "precision_lower_bound": report.precision, "shown_per_day": report.shown_per_day,
        "votes": sum(d.votes for d in report.days), "suggestions_shown": report.suggestions_shown,
        "suggestions_relevant": report.suggestions_hit if labels else None,
    }  # fmt: skip
    if as_json:
        echo_json(summary)
        return
    click.echo(f"{user}: {len(report.days)} days replayed with the {report.ranker} ranker, "
               f"{summary['votes']} votes cast")  # fmt: skip
    if report.recall is not None:
        click.echo(f"from day {from_day}: recall {report.recall:.3f}, precision >= {report.precision or 0:.3f}, "
                   f"{report.shown_per_day:.2f} papers a day")  # fmt: skip
    else:
        click.echo(f"from day {from_day}: {report.shown_per_day:.2f} papers a day (give --labels for recall)")
    if report.suggestions_shown or report.ranker != "keywords":  # the keyword ranker never suggests: no line
        hits = f", {report.suggestions_hit} of them relevant" if labels else ""
        click.echo(f'from day {from_day}: {report.suggestions_shown} "Also for you" suggestions shown{hits}')
    if out is not None:
        click.echo(f"wrote {out}")
