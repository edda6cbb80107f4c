"""Scenario folders (tests/scenarios/<name>/, in the style of rss2email's test/data): config and dumps in, the
messages, feeds and command output that come out compared byte for byte with expected/.

Each folder is copied to tmp_path and the real `digest` command runs there (in process, through `main()`) at
the fixed times its steps.toml names, against a real SMTP server. tests/scenarios/README.md describes the folder
layout; `pytest tests/test_scenarios.py --update-golden` rewrites every expected/ folder.
"""

from __future__ import annotations

import difflib
import os
import shutil
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import SECRET_ENV, Sink

from digest.app.cli import main
from digest.app.cli.common import CLOCK_ENV

SCENARIOS = Path(__file__).parent / "scenarios"
DEFAULT_AT = datetime(2026, 11, 23, 7, 5, tzinfo=UTC)  # a Monday, five minutes after the default send time
PORT_LINE = "port = 25025"  # the scenario's SMTP port, replaced by the port of the test's server
WORK = "<scenario>"  # what the copy's absolute path is shown as in expected command output


@dataclass(frozen=True)
class Step:
    """One `digest` command of a scenario, at a fixed time, after copying dumps/<inbox>/* into the inbox."""

    at: datetime
    args: tuple[str, ...]
    inbox: str | None = None  # a folder under dumps/ ("." for dumps/ itself), or None to add nothing
    collect: tuple[str, ...] = ()  # folders the command writes (e.g. a --dry-run --out), kept as expected output

    @property
    def label(self) -> str:
        return self.args[0] if self.args else "digest"


def load_steps(folder: Path) -> list[Step]:
    """The steps of steps.toml; without one, a single `digest run` at DEFAULT_AT with every dump of dumps/."""
    path = folder / "steps.toml"
    if not path.exists():
        return [Step(DEFAULT_AT, ("run",), ".")]
    steps = []
    for raw in tomllib.loads(path.read_text(encoding="utf-8"))["step"]:
        unknown = set(raw) - {"at", "args", "inbox", "collect"}
        assert not unknown, f"{path}: unknown step keys {sorted(unknown)}"
        at = raw["at"]
        assert isinstance(at, datetime) and at.tzinfo is not None, f"{path}: 'at' must be a TOML date-time with a zone"
        steps.append(Step(at, tuple(raw["args"]), raw.get("inbox"), tuple(raw.get("collect", ()))))
    return steps


def tree(root: Path) -> list[str]:
    """Every file under ``root`` as a relative POSIX path, sorted."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def run_scenario(
    source: Path, work: Path, sink: Sink, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> dict[str, bytes]:
    """Copy the scenario to ``work``, run its steps, and return what came out, by path under expected/."""
    work.mkdir()
    config = (source / "config.toml").read_text(encoding="utf-8")
    assert config.count(PORT_LINE) == 1, f"{source.name}/config.toml must have one line {PORT_LINE!r} under [smtp]"
    (work / "config.toml").write_text(config.replace(PORT_LINE, f"port = {sink.port}"), encoding="utf-8")
    (work / "inbox").mkdir()
    for key, value in SECRET_ENV.items():
        monkeypatch.setenv(key, value)
    for variable in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(variable, str(work / "xdg"))
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    monkeypatch.chdir(work)
    capsys.readouterr()  # only what the steps print
    out: dict[str, bytes] = {}
    for number, step in enumerate(load_steps(source), start=1):
        if step.inbox is not None:
            for dump in sorted((source / "dumps" / step.inbox).iterdir()):
                if dump.is_file():
                    shutil.copyfile(dump, work / "inbox" / dump.name)
        monkeypatch.setenv(CLOCK_ENV, step.at.isoformat())  # the CLI's fixed clock
        before = len(sink.messages)
        code = main(["--config", "config.toml", *step.args])
        stdout, stderr = capsys.readouterr()
        prefix = f"{number}-{step.label}"
        shown = f"$ digest {' '.join(step.args)}    # at {step.at.isoformat()}\n[exit {code}]\n{stdout}"
        shown += f"--- stderr\n{stderr}" if stderr else ""
        out[f"{prefix}/output.txt"] = shown.replace(str(work), WORK).encode()
        by_recipient: dict[str, list[bytes]] = {}
        for _sender, recipients, raw in sink.messages[before:]:
            by_recipient.setdefault(",".join(sorted(recipients)), []).append(raw)
        for recipients, messages in sorted(by_recipient.items()):
            for index, raw in enumerate(sorted(messages), start=1):
                suffix = f"-{index}" if len(messages) > 1 else ""
                out[f"{prefix}/mail/{recipients}{suffix}.eml"] = raw
        for folder in step.collect:
            for name in tree(work / folder):
                out[f"{prefix}/{folder}/{name}"] = (work / folder / name).read_bytes()
    for name in tree(work / "feeds") if (work / "feeds").is_dir() else []:
        out[f"feeds/{name}"] = (work / "feeds" / name).read_bytes()
    out["inbox.txt"] = "".join(f"{name}\n" for name in tree(work / "inbox")).encode()
    return out


def compare(expected_dir: Path, actual: dict[str, bytes], update: bool) -> None:
    """Compare ``actual`` with the files of ``expected_dir`` (all of them, and nothing more); ``update``
    rewrites the folder instead (as UPDATE_GOLDEN=1 does, like tests/golden/)."""
    if update or os.environ.get("UPDATE_GOLDEN") == "1":
        shutil.rmtree(expected_dir, ignore_errors=True)
        for name, data in actual.items():
            (expected_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (expected_dir / name).write_bytes(data)
        return
    assert expected_dir.is_dir(), f"{expected_dir} is missing; create it with pytest --update-golden"
    expected = set(tree(expected_dir))
    problems = []
    if missing := sorted(expected - set(actual)):
        problems.append(f"expected but not produced: {missing}")
    if extra := sorted(set(actual) - expected):
        problems.append(f"produced but not expected: {extra}")
    for name in sorted(expected & set(actual)):
        want, got = (expected_dir / name).read_bytes(), actual[name]
        if want != got:
            diff = difflib.unified_diff(
                want.decode(errors="replace").splitlines(keepends=True),
                got.decode(errors="replace").splitlines(keepends=True),
                f"expected/{name}",
                "actual",
                n=2,
            )
            problems.append("".join(diff)[:4000])
    if problems:
        pytest.fail(f"{expected_dir.parent.name}: output differs from expected/\n" + "\n".join(problems), pytrace=False)


@pytest.mark.parametrize("name", sorted(p.name for p in SCENARIOS.iterdir() if (p / "config.toml").is_file()))
def test_scenario(
    name: str,
    tmp_path: Path,
    sink: Sink,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    update_golden: bool,
) -> None:
    """The scenario's commands, run on a copy of its folder at its fixed times, produce exactly expected/."""
    source = SCENARIOS / name
    actual = run_scenario(source, tmp_path / name, sink, monkeypatch, capsys)
    compare(source / "expected", actual, update_golden)
