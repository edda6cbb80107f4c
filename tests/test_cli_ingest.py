"""`digest ingest` and `digest papers` from the command line: reports, JSON, exit codes, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from digest.app.cli import main


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_ingest_folder_prints_one_line_per_dump(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, seeds: list[Path]
) -> None:
    """A folder of dumps is read in name order, one report line each."""
    code, out, _ = _run(capsys, "--store", str(tmp_path / "s.db"), "ingest", str(seeds[0].parent))
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 5
    assert lines[0].endswith("text, 82 papers, 82 new, 0 already seen")
    assert lines[4].endswith("text, 78 papers, 52 new, 26 already seen")


def test_ingest_json_report(capsys: pytest.CaptureFixture[str], tmp_path: Path, seeds: list[Path]) -> None:
    """--json prints the same report as JSON; a second run reports the dump as already ingested."""
    db = str(tmp_path / "s.db")
    _run(capsys, "--store", db, "ingest", str(seeds[0]))
    code, out, _ = _run(capsys, "--store", db, "ingest", "--json", str(seeds[0]))
    [report] = json.loads(out)
    assert code == 0 and report["new"] == 0 and report["already_ingested"] and report["format"] == "text"


def test_refused_dump_exits_1_and_stores_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A bad dump gives a one-line error naming the file, exit 1, and no change."""
    bad = tmp_path / "trunc.json"
    bad.write_text('[{"paper": {"id": "2401.0')
    db = str(tmp_path / "s.db")
    code, out, err = _run(capsys, "--store", db, "ingest", str(bad))
    assert code == 1 and out == ""
    assert err.splitlines()[0].startswith(f"error: {bad}:1:") and "Traceback" not in err
    code, out, _ = _run(capsys, "--store", db, "papers", "--json")
    assert json.loads(out) == []


def test_good_dumps_still_ingest_beside_a_bad_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, seeds: list[Path]
) -> None:
    """One refused dump does not stop the others; the exit code still says something was refused."""
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    code, out, err = _run(capsys, "--store", str(tmp_path / "s.db"), "ingest", str(empty), str(seeds[0]))
    assert code == 1 and "82 new" in out and "empty" in err


def test_stdin_dump(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """'-' reads a dump from standard input."""
    import io

    data = json.dumps([{"paper": {"id": "2401.00001", "title": "T", "summary": "S"}}]).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, out, _ = _run(capsys, "--store", str(tmp_path / "s.db"), "ingest", "-")
    assert code == 0 and out.startswith("<stdin>: json, 1 papers, 1 new")


def test_papers_lists_newest_first_with_filters(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, seeds: list[Path]
) -> None:
    """`digest papers` filters by a search word and prints JSON for scripts."""
    db = str(tmp_path / "s.db")
    _run(capsys, "--store", db, "ingest", str(seeds[1]))
    code, out, _ = _run(capsys, "--store", db, "papers", "--search", "hogwild", "--json")
    [paper] = json.loads(out)
    assert code == 0 and paper["title"].startswith("Hogwild!") and paper["upvotes"] == 6
    code, _, err = _run(capsys, "--store", db, "papers", "--since", "not-a-date")
    assert code == 2 and "--since" in err


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown option is a usage error with exit code 2."""
    code, _, err = _run(capsys, "ingest", "--no-such-option")
    assert code == 2 and "no-such-option" in err


def test_console_script_end_to_end(tmp_path: Path, seeds: list[Path]) -> None:
    """The installed `digest` entry point runs as a real process with the documented exit codes."""
    cmd = [sys.executable, "-m", "digest", "--store", str(tmp_path / "s.db"), "ingest", str(seeds[0])]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "82 new" in done.stdout
    (tmp_path / "bin.dat").write_bytes(b"\x00\x01\x02" * 10)
    done = subprocess.run([*cmd[:-1], str(tmp_path / "bin.dat")], capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "binary" in done.stderr and "Traceback" not in done.stderr


def test_json_report_lists_every_path_when_some_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, seeds: list[Path]
) -> None:
    """--json gives one entry per path, in order, refused ones with their error and hint; exit 1."""
    bad = tmp_path / "nested.json"
    bad.write_bytes(b"[" * 100000)
    missing = tmp_path / "missing.txt"
    code, out, err = _run(capsys, "--store", str(tmp_path / "s.db"), "ingest", "--json", str(bad), str(seeds[0]),
                          str(missing))  # fmt: skip
    reports = json.loads(out)
    assert code == 1 and err == "" and [r["refused"] for r in reports] == [True, False, True]
    assert reports[0]["name"] == str(bad) and "nested too deeply" in reports[0]["error"] and reports[0]["hint"]
    assert reports[1]["new"] == 82 and str(missing) in reports[2]["error"]


def test_ignored_fields_are_listed_as_notes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The human report counts the notes and lists each (entry, title start, field) on stderr."""
    entries = [{"paper": {"id": "2401.00001", "title": "T", "summary": "S", "upvotes": "7", "organization": True}}]
    dump = tmp_path / "d.json"
    dump.write_text(json.dumps(entries))
    code, out, err = _run(capsys, "--store", str(tmp_path / "s.db"), "ingest", str(dump))
    assert code == 0 and out.strip().endswith("2 problems noted (entries dropped or fields ignored)")
    assert err.splitlines() == [
        "  note: entry 0 ('T'): paper.organization ignored (expected an object or text, got a boolean (true))",
        "  note: entry 0 ('T'): paper.upvotes ignored (expected a whole number, got a string '7')",
    ]
