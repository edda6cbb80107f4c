"""The command line as a user meets it: test sends, check --json, -v anywhere, progress and dry-run wording, shell
completion of user names, and an example in every command's help."""

from __future__ import annotations

import email
import email.policy
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from conftest import SECRET_ENV, Sink, free_port, user_block, write_config
from rich.console import Console

from digest import store
from digest.app.cli import cli, complete_users, main
from digest.app.cli.service import _progress, _progress_label
from digest.store import delivery

README = Path(__file__).resolve().parents[1] / "README.md"
ADA = user_block("ada", "['LLM', '\"language model\"']")
TESTER = "tester@example.net"


@pytest.fixture
def config_file(tmp_path: Path, sink: Sink, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config with one user pointed at the sink, and the secret in the environment."""
    for key, value in SECRET_ENV.items():
        monkeypatch.setenv(key, value)
    return write_config(tmp_path, sink.port, ADA)


@pytest.fixture(autouse=True)
def _root_level() -> Iterator[None]:
    """-v raises the root logger's level; put it back after each test."""
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _stored(capsys: pytest.CaptureFixture[str], config_file: Path, dump: Path) -> Path:
    """Ingest ``dump`` into the config's store; the store file."""
    assert _run(capsys, "--config", str(config_file), "ingest", str(dump))[0] == 0
    return config_file.parent / "state" / "digest.db"


def _part(message: email.message.EmailMessage, kind: str) -> str:
    part = message.get_body(preferencelist=(kind,))
    assert part is not None
    return str(part.get_content())


# --------------------------------------------------------------------------- test send


def test_send_to_delivers_the_preview_and_records_nothing(
    capsys: pytest.CaptureFixture[str], config_file: Path, sink: Sink, seeds: list[Path]
) -> None:
    """preview --send-to mails what preview shows, as the real email, to the test address with "[test] " before
    the subject; the store file is byte-identical afterwards and has no outbox row."""
    db = _stored(capsys, config_file, seeds[0])
    base = ["--config", str(config_file), "preview", "--user", "ada"]
    code, eml, _ = _run(capsys, *base, "--format", "eml")
    assert code == 0
    shown = email.message_from_bytes(eml.encode("utf-8"), policy=email.policy.default)
    before = db.read_bytes()
    code, out, err = _run(capsys, *base, "--send-to", TESTER)
    assert code == 0, err
    assert f"to {TESTER} via 127.0.0.1:{sink.port}" in out and "nothing recorded" in out
    [(mail_from, rcpts, data)] = sink.messages
    sent = email.message_from_bytes(data, policy=email.policy.default)
    assert (mail_from, rcpts, sent["To"]) == ("digest@example.org", [TESTER], TESTER)
    assert sent["Subject"] == "[test] " + shown["Subject"]
    assert sent["Message-ID"] != shown["Message-ID"] and sent["List-Unsubscribe"] == shown["List-Unsubscribe"]
    assert _part(sent, "plain") == _part(shown, "plain")
    assert _part(sent, "html") == _part(shown, "html")
    assert db.read_bytes() == before
    with store.open_store(db, readonly=True) as conn:
        assert delivery.history(conn, users=None, limit=10) == []


def test_send_to_a_refusing_server_is_one_error_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], config_file: Path, sink: Sink, seeds: list[Path]
) -> None:
    """A recipient the server refuses gives a one-line error quoting the reply, exit 1, and no state change."""
    db = _stored(capsys, config_file, seeds[0])
    before = db.read_bytes()
    sink.reject[TESTER] = "550 5.1.1 no such mailbox"
    code, _, err = _run(capsys, "--config", str(config_file), "preview", "--user", "ada", "--send-to", TESTER)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1
    assert "did not accept the test message" in errors[0] and "550" in errors[0] and "no such mailbox" in errors[0]
    assert sink.messages == [] and db.read_bytes() == before


def test_send_to_an_unreachable_server_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, seeds: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With nothing listening on the SMTP port the test send fails at once with exit 1, naming the server."""
    for key, value in SECRET_ENV.items():
        monkeypatch.setenv(key, value)
    port = free_port()
    config_file = write_config(tmp_path, port, ADA)
    db = _stored(capsys, config_file, seeds[0])
    before = db.read_bytes()
    code, _, err = _run(capsys, "--config", str(config_file), "preview", "--user", "ada", "--send-to", TESTER)
    assert code == 1 and f"error: cannot reach the SMTP server 127.0.0.1:{port}" in err
    assert db.read_bytes() == before


def test_send_to_checks_the_address_and_the_options(capsys: pytest.CaptureFixture[str], config_file: Path) -> None:
    """A malformed address, and an option that only shapes local output, are usage errors (exit 2)."""
    base = ["--config", str(config_file), "preview", "--user", "ada"]
    code, _, err = _run(capsys, *base, "--send-to", "not an address")
    assert code == 2 and "--send-to" in err
    code, _, err = _run(capsys, *base, "--send-to", TESTER, "--format", "html")
    assert code == 2 and "--format does not go with --send-to" in err


# --------------------------------------------------------------------------- check --json


def test_check_json_lists_the_problems_of_an_invalid_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """check --json on an invalid file prints every problem with file, line, key, message and hint; exit 2."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[[users]]\nname = "x"\nemial = "x@example.org"\nkeywords = ["(a"]\n')
    code, out, _ = _run(capsys, "--config", str(bad), "check", "--json")
    result = json.loads(out)
    assert code == 2 and result["ok"] is False and result["warnings"] == []
    by_key = {p["key"]: p for p in result["problems"]}
    assert by_key["users[0].emial"]["line"] == 3 and "did you mean" in by_key["users[0].emial"]["message"]
    assert by_key["users[0].keywords[0]"]["line"] == 4 and by_key["users[0].keywords[0]"]["file"] == str(bad)
    assert all(p["hint"] and set(p) == {"file", "line", "key", "message", "hint"} for p in result["problems"])


def test_check_json_on_a_missing_file_and_on_a_valid_config(
    capsys: pytest.CaptureFixture[str], config_file: Path, tmp_path: Path
) -> None:
    """A missing config is one problem with its hint; a valid config is ok with no problems (exit 0)."""
    code, out, _ = _run(capsys, "--config", str(tmp_path / "none.toml"), "check", "--json")
    [problem] = json.loads(out)["problems"]
    assert code == 2 and "not found" in problem["message"] and "digest init" in problem["hint"]
    code, out, _ = _run(capsys, "--config", str(config_file), "check", "--json")
    result = json.loads(out)
    assert code == 0 and result["ok"] is True and result["problems"] == [] and result["users"] == ["ada"]


# --------------------------------------------------------------------------- -v anywhere, progress, dry run


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_before_or_after_the_command(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, config_file: Path, seeds: list[Path],
    where: str,
) -> None:  # fmt: skip
    """`digest -v run` and `digest run -v` both run and log the run's progress at INFO."""
    shutil.copy(seeds[0], config_file.parent / "inbox")
    args = ["-v", "run"] if where == "before" else ["run", "-v"]
    logging.getLogger().setLevel(logging.WARNING)
    code, out, err = _run(capsys, "--config", str(config_file), *args)
    assert code == 0, err
    assert "1 digest sent" in out
    assert any(r.levelno == logging.INFO and r.name.startswith("digest.") for r in caplog.records)


def test_verbose_after_the_command_shows_tracebacks(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """An error under `check -v` prints the traceback as `-v check` does."""
    code, _, err = _run(capsys, "--config", str(tmp_path / "none.toml"), "check", "-v")
    assert code == 2 and "Traceback" in err


def test_dry_run_says_written_not_sent(
    capsys: pytest.CaptureFixture[str], config_file: Path, sink: Sink, seeds: list[Path], tmp_path: Path
) -> None:
    """A dry run reports the digests written to the folder and that nothing was sent."""
    shutil.copy(seeds[0], config_file.parent / "inbox")
    out_dir = tmp_path / "dry"
    code, out, _ = _run(capsys, "--config", str(config_file), "run", "--dry-run", "--out", str(out_dir))
    assert code == 0 and f"1 digest written to {out_dir}/ (dry run, nothing sent)" in out
    assert "digest sent" not in out and "digests sent" not in out and sink.messages == []


def test_progress_bar_names_what_it_counts_and_logs_print_above_it() -> None:
    """The bar is labelled, is hidden until the count is known (never "0/?"), and log lines are whole lines
    printed through its console."""
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        with _progress(True, _progress_label(dry_run=True), console) as update:
            assert update is not None and handler not in root.handlers
            logging.getLogger("digest.test").info("a log line")
            update(1, 2)
            update(2, 2)
    finally:
        root.removeHandler(handler)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buffer.getvalue())
    assert "\nINFO digest.test: a log line\n" in "\n" + plain.replace("\r", "\n")
    assert "writing digests (dry run)" in plain and "2/2" in plain and "/?" not in plain
    with _progress(True, _progress_label(dry_run=False), Console(file=io.StringIO())) as update:
        assert update is None  # not a terminal: no bar


# --------------------------------------------------------------------------- shell completion


def _complete(words: str, cword: int, env: dict[str, str]) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", "from digest.app.cli import entry; entry()"],
        env={**os.environ, **env, "_DIGEST_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line.startswith("plain,")]


def test_user_names_complete_from_the_config(tmp_path: Path) -> None:
    """`digest preview --user <TAB>` offers the config's user names (from $DIGEST_CONFIG or --config)."""
    config_file = write_config(tmp_path, 2525, ADA + user_block("alan", "['x']") + user_block("bob", "['y']"))
    assert _complete("digest preview --user ", 3, {"DIGEST_CONFIG": str(config_file)}) == ["ada", "alan", "bob"]
    words = f"digest --config {config_file} run --user a"
    assert _complete(words, 5, {"DIGEST_CONFIG": ""}) == ["ada", "alan"]


def test_completion_never_fails_on_a_bad_or_missing_config(tmp_path: Path) -> None:
    """A config with invalid keys still completes its names; one that is not TOML, or absent, completes none."""
    sloppy = tmp_path / "sloppy.toml"
    sloppy.write_text('[[users]]\nname = "zed"\nemial = 3\n')
    assert _complete("digest unsubscribe ", 2, {"DIGEST_CONFIG": str(sloppy)}) == ["zed"]
    broken = tmp_path / "broken.toml"
    broken.write_text("[[users]\nname = ")
    assert _complete("digest preview --user ", 3, {"DIGEST_CONFIG": str(broken)}) == []
    assert _complete("digest preview --user ", 3, {"DIGEST_CONFIG": str(tmp_path / "none.toml")}) == []


def test_complete_users_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The completion callback filters by the typed prefix and reads --config from the root context."""
    config_file = write_config(tmp_path, 2525, ADA + user_block("bob", "['y']"))
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    root = click.Context(cli, info_name="digest")
    root.params["config_path"] = str(config_file)
    ctx = click.Context(cli.commands["preview"], parent=root)
    param = next(p for p in cli.commands["preview"].params if p.name == "user")
    assert complete_users(ctx, param, "b") == ["bob"]


# --------------------------------------------------------------------------- help and README


def _help(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, out, _ = _run(capsys, *args, "--help")
    assert code == 0
    return out


def test_every_command_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    """Each command's --help (and the group's) ends its description with an Examples: block of real commands
    for that command, laid out one per line."""
    for name in ["", *cli.commands]:
        out = _help(capsys, *([name] if name else []))
        assert "\nExamples:\n" in "\n" + "\n".join(line.strip() for line in out.splitlines()), f"digest {name}"
        block = out.split("Examples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
        assert block and all(line.startswith("    digest ") for line in block if "digest" in line[:12]), name
        assert any(line.strip().startswith(f"digest {name}".strip()) or f"digest {name}" in line for line in block)


def test_every_command_takes_verbose_after_its_name(capsys: pytest.CaptureFixture[str]) -> None:
    """Every command lists -v/--verbose in its own help."""
    for name in cli.commands:
        assert "-v, --verbose" in _help(capsys, name), name


def test_every_command_is_in_the_readme_table() -> None:
    """The README's command table has a row for every command."""
    rows = [line for line in README.read_text(encoding="utf-8").splitlines() if line.startswith("| `digest ")]
    for name in cli.commands:
        assert any(f"`digest {name}" in row for row in rows), f"digest {name} missing from the README's table"
