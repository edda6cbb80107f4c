"""The `digest` commands end to end (in process), their exit codes, and meta checks on help and the README."""

from __future__ import annotations

import email
import email.policy
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SECRET_ENV, SEEDS, Sink, user_block, write_config

from digest import store
from digest.app.cli import cli, main

README = Path(__file__).resolve().parents[1] / "README.md"
ADA = user_block("ada", "['LLM', '\"language model\"']")


@pytest.fixture
def config_file(tmp_path: Path, sink: Sink, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config with one user pointed at the sink, and the secret in the environment."""
    for key, value in SECRET_ENV.items():
        monkeypatch.setenv(key, value)
    return write_config(tmp_path, sink.port, ADA)


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_every_command_has_help_and_is_in_the_readme(capsys: pytest.CaptureFixture[str]) -> None:
    """Each command prints help and is documented in the README's command table."""
    readme = README.read_text(encoding="utf-8")
    for name in cli.commands:
        code, out, _ = _run(capsys, name, "--help")
        assert code == 0 and "Usage:" in out
        assert f"`digest {name}" in readme, f"digest {name} missing from README"


def test_readme_starts_with_install_and_test_commands() -> None:
    """The README's first lines are the install-and-run command and the test command that .ci/run uses."""
    head = README.read_text(encoding="utf-8").splitlines()[:6]
    assert any("pip install -e '.[test]'" in line and "digest ingest" in line for line in head)
    assert "python -m pytest" in head
    assert "python -m pytest" in (README.parent / ".ci" / "run").read_text()


def test_check_ok_and_errors_exit_2(capsys: pytest.CaptureFixture[str], config_file: Path, tmp_path: Path) -> None:
    """check says ok for a good config; a bad one lists every problem with file:line and exits 2."""
    code, out, _ = _run(capsys, "--config", str(config_file), "check")
    assert code == 0 and "ok, 1 users" in out
    bad = tmp_path / "bad.toml"
    bad.write_text('[[users]]\nname = "x"\nemial = "x@example.org"\nkeywords = ["(a"]\n')
    code, _, err = _run(capsys, "--config", str(bad), "check")
    assert code == 2
    assert f"{bad}:3:" in err and "emial" in err and "keywords[0]" in err


def test_missing_config_is_exit_2_with_init_hint(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without any config file a command that needs one exits 2 and suggests `digest init`."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "nothing"))
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    code, _, err = _run(capsys, "check")
    assert code == 2 and "digest init" in err


def test_init_writes_a_config_that_checks(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """init writes the starter config, refuses to overwrite it, and the result validates (the secret comes from
    the env file init wrote beside it, not from the environment)."""
    monkeypatch.delenv("DIGEST_SECRET", raising=False)
    target = tmp_path / "conf" / "config.toml"
    assert _run(capsys, "init", str(target))[0] == 0
    code, _, err = _run(capsys, "init", str(target))
    assert code == 2 and "--force" in err
    assert _run(capsys, "--config", str(target), "check")[0] == 0


def test_preview_formats_and_store_untouched(
    capsys: pytest.CaptureFixture[str], config_file: Path, seeds: list[Path], tmp_path: Path
) -> None:
    """preview prints Markdown, text, HTML or a parseable .eml, and the store file does not change."""
    db = str(tmp_path / "state" / "digest.db")
    _run(capsys, "--store", db, "ingest", str(seeds[0]))
    before = Path(db).read_bytes()
    base = ["--config", str(config_file), "preview", "--user", "ada", "--since", "2000-01-01"]
    code, md, _ = _run(capsys, *base)
    assert code == 0 and md.startswith("# ") and "**LLM" in md
    code, text, _ = _run(capsys, *base, "--format", "text")
    assert code == 0 and "**" not in text
    code, html, _ = _run(capsys, *base, "--format", "html")
    assert code == 0 and html.lstrip().lower().startswith("<!doctype html")
    out = tmp_path / "ada.eml"
    code, _, err = _run(capsys, *base, "--format", "eml", "--output", str(out))
    msg = email.message_from_bytes(out.read_bytes(), policy=email.policy.default)
    assert code == 0 and msg["To"] == "ada@example.org" and "wrote" in err
    assert Path(db).read_bytes() == before


def test_preview_against_one_dump(capsys: pytest.CaptureFixture[str], config_file: Path, seeds: list[Path]) -> None:
    """preview --dump backtests a profile on a dump without any store."""
    code, out, _ = _run(capsys, "--config", str(config_file), "preview", "--user", "ada", "--dump", str(seeds[3]))
    assert code == 0 and out.count("\n### ") == 20  # the header no longer names dump files (issue 13)


def test_preview_unknown_user_is_a_config_error(capsys: pytest.CaptureFixture[str], config_file: Path) -> None:
    """An unknown --user names the users that exist and exits 2."""
    code, _, err = _run(capsys, "--config", str(config_file), "preview", "--user", "nobody", "--since", "2000-01-01")
    assert code == 2 and "'nobody'" in err and "ada" in err


def test_match_shows_reasons_and_bad_query_position(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, seeds: list[Path]
) -> None:
    """match lists selected papers with why; a syntax error gives its position and exit 2."""
    db = str(tmp_path / "s.db")
    _run(capsys, "--store", db, "ingest", str(seeds[1]))
    code, out, err = _run(capsys, "--store", db, "match", "title:hogwild")
    assert code == 0 and "Hogwild!" in out and "title" in out and "1 of 49" in err
    code, out, _ = _run(capsys, "--store", db, "match", "--json", "kernel -survey")
    assert code == 0 and all("kernel" in m["reason"].lower() for m in json.loads(out))
    code, _, err = _run(capsys, "--store", db, "match", '"unclosed')
    assert code == 2 and ("position" in err.lower() or "character" in err.lower())


def test_run_status_and_exit_codes(
    capsys: pytest.CaptureFixture[str], config_file: Path, sink: Sink, seeds: list[Path]
) -> None:
    """run sends, a second run says nothing new (exit 0), status shows the message, a broken dump exits 1."""
    inbox = config_file.parent / "inbox"
    shutil.copy(seeds[0], inbox)
    code, out, _ = _run(capsys, "--config", str(config_file), "run")
    assert code == 0 and "1 digest sent" in out and sink.recipients() == ["ada@example.org"]
    code, out, _ = _run(capsys, "--config", str(config_file), "run")
    assert code == 0 and out.startswith("nothing new today")
    code, out, _ = _run(capsys, "--config", str(config_file), "status", "--json")
    status = json.loads(out)
    assert code == 0 and status["messages"][0]["status"] == "sent" and status["messages"][0]["user"] == "ada"
    (inbox / "broken.json").write_text("[{")
    code, _, err = _run(capsys, "--config", str(config_file), "run")
    assert code == 1 and "broken.json" in err


def test_run_while_locked_exits_3(capsys: pytest.CaptureFixture[str], config_file: Path) -> None:
    """A run that finds another holding the lock exits 3 with a hint."""
    with store.run_lock(config_file.parent / "state" / "digest.db"):
        code, _, err = _run(capsys, "--config", str(config_file), "run")
    assert code == 3 and "--wait" in err


def test_run_dry_run_and_json(
    capsys: pytest.CaptureFixture[str], config_file: Path, sink: Sink, seeds: list[Path], tmp_path: Path
) -> None:
    """run --dry-run --json reports a message written to the folder and nothing sent to the server."""
    shutil.copy(seeds[0], config_file.parent / "inbox")
    out_dir = tmp_path / "dry"
    code, out, _ = _run(capsys, "--config", str(config_file), "run", "--dry-run", "--out", str(out_dir), "--json")
    assert code == 0 and json.loads(out)["sent"] == 1 and sink.messages == []
    assert len(list(out_dir.glob("*.eml"))) == 1


def test_unsubscribe_and_resubscribe(capsys: pytest.CaptureFixture[str], config_file: Path) -> None:
    """unsubscribe records the user; status lists them; resubscribe undoes it; unknown users are refused."""
    assert _run(capsys, "--config", str(config_file), "unsubscribe", "ada")[0] == 0
    code, out, _ = _run(capsys, "--config", str(config_file), "status")
    assert code == 0 and "unsubscribed: ada" in out
    assert _run(capsys, "--config", str(config_file), "resubscribe", "ada")[0] == 0
    assert _run(capsys, "--config", str(config_file), "unsubscribe", "zed")[0] == 2


def test_run_unknown_user_is_usage_error(capsys: pytest.CaptureFixture[str], config_file: Path) -> None:
    """--user with a name not in the config exits 2."""
    code, _, err = _run(capsys, "--config", str(config_file), "run", "--user", "zed")
    assert code == 2 and "zed" in err


def test_run_with_smtp_down_exits_1_and_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, seeds: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the SMTP server cannot be reached the digests are deferred and the run exits 1 saying why."""
    from conftest import free_port

    for key, value in SECRET_ENV.items():
        monkeypatch.setenv(key, value)
    config_file = write_config(tmp_path, free_port(), ADA)
    shutil.copy(seeds[0], config_file.parent / "inbox")
    code, out, err = _run(capsys, "--config", str(config_file), "run")
    assert code == 1 and "1 deferred" in out and "deferred by a temporary SMTP failure" in err


# --------------------------------------------------------------------------- secrets and the env file


def test_check_reports_a_missing_secret_until_the_env_file_has_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without DIGEST_SECRET anywhere check exits 2 naming the variable and the env file; with the file, ok."""
    monkeypatch.delenv("DIGEST_SECRET", raising=False)
    config_file = write_config(tmp_path, sink.port, ADA)
    env_file = tmp_path / "env"
    code, out, err = _run(capsys, "--config", str(config_file), "check")
    assert code == 2 and "ok" not in out
    assert "DIGEST_SECRET is not set" in err and f"{env_file}, which does not exist" in err
    assert f"{config_file}:" in err and "digest.secret_env" in err and f">> {env_file}" in err
    code, out, _ = _run(capsys, "--config", str(config_file), "check", "--json")
    assert code == 2 and json.loads(out)["ok"] is False and json.loads(out)["env_file"] == str(env_file)
    env_file.write_text("# secrets\nexport DIGEST_SECRET='0123456789abcdef-from-file'\n")
    env_file.chmod(0o600)
    code, out, _ = _run(capsys, "--config", str(config_file), "check")
    assert code == 0 and "ok, 1 users" in out


def test_check_reports_a_missing_smtp_password_and_an_open_env_file(
    capsys: pytest.CaptureFixture[str], config_file: Path
) -> None:
    """With [smtp].username set and no password, check names DIGEST_SMTP_PASSWORD; a world-readable env file
    is refused with the chmod that fixes it."""
    text = config_file.read_text().replace('security = "none"', 'security = "none"\nusername = "me"')
    config_file.write_text(text)
    code, _, err = _run(capsys, "--config", str(config_file), "check")
    assert code == 2 and "smtp.password_env" in err and "DIGEST_SMTP_PASSWORD is not set" in err
    env_file = config_file.parent / "env"
    env_file.write_text("DIGEST_SMTP_PASSWORD=pw\n")
    env_file.chmod(0o644)
    code, _, err = _run(capsys, "--config", str(config_file), "check")
    assert code == 2 and "every user may read" in err and f"chmod 600 {env_file}" in err
    env_file.chmod(0o600)
    assert _run(capsys, "--config", str(config_file), "check")[0] == 0


def test_init_writes_a_private_env_file_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """init writes env (mode 600, a fresh DIGEST_SECRET) beside the config and says so; --force keeps it."""
    monkeypatch.delenv("DIGEST_SECRET", raising=False)
    target = tmp_path / "conf" / "config.toml"
    code, out, _ = _run(capsys, "init", str(target))
    env_file = target.parent / "env"
    assert code == 0 and f"wrote {env_file} (mode 600)" in out and "DIGEST_SECRET" in out
    assert env_file.stat().st_mode & 0o777 == 0o600
    before = env_file.read_text()
    code, out, _ = _run(capsys, "init", "--force", str(target))
    assert code == 0 and f"kept {env_file}" in out and env_file.read_text() == before


# --------------------------------------------------------------------------- organizations against the store


ORG_USERS = """
[[users]]
name = "ada"
email = "ada@example.org"
keywords = ["LLM"]
organizations = ["bytedance-seed", "Midea AI Research Center", "facebook"]

[[users]]
name = "meta"
email = "meta@example.org"
organizations = ["facebook", "meta-llama"]
organizations_mode = "only"
"""


def test_check_warns_about_organizations_a_text_store_never_had(
    capsys: pytest.CaptureFixture[str], config_file: Path, seeds: list[Path]
) -> None:
    """Text scrapes carry no organization: every configured one is warned about (file:line), the "only" profile
    can only be empty, and check still exits 0; without a store it says nothing about organizations."""
    config_file = write_config(config_file.parent, 2525, ORG_USERS)
    code, out, err = _run(capsys, "--config", str(config_file), "check")
    assert code == 0 and "never seen" not in err
    assert _run(capsys, "--config", str(config_file), "ingest", str(seeds[0]))[0] == 0
    code, out, err = _run(capsys, "--config", str(config_file), "check")
    lines = config_file.read_text().splitlines()
    only_line = next(i for i, line in enumerate(lines, 1) if "organizations_mode" in line)
    assert code == 0 and "ok, 2 users" in out and "6 warnings above" in out
    assert err.count("was never seen in the store") == 5 and "dumps before 2025-10" in err
    assert f"warning: {config_file}:{only_line}: users[1].organizations_mode:" in err and "stays empty" in err


def test_check_matches_organization_handles_and_names_in_a_real_store(
    capsys: pytest.CaptureFixture[str], config_file: Path, corpus: Path
) -> None:
    """After ingesting real API JSON, handles and display names both count as seen; the rest are warned about."""
    config_file = write_config(config_file.parent, 2525, ORG_USERS)
    assert _run(capsys, "--config", str(config_file), "ingest", str(corpus / "api_json" / "2026-04-16.json"))[0] == 0
    code, out, _ = _run(capsys, "--config", str(config_file), "check", "--json")
    warnings = json.loads(out)["warnings"]
    assert code == 0 and json.loads(out)["ok"] is True
    assert [w["key"] for w in warnings] == [
        "users[0].organizations[2]", "users[1].organizations[0]", "users[1].organizations[1]",
        "users[1].organizations_mode",
    ]  # fmt: skip


# --------------------------------------------------------------------------- the shipped cron and systemd files


CRON = README.parent / "cron"
VENV_DIGEST = Path(sys.prefix) / "bin" / "digest"


def _cron_home(tmp_path: Path, port: int) -> tuple[Path, dict[str, str]]:
    """A fresh HOME as the README leaves it: the venv's `digest` where the shipped files expect it, `digest init`
    run, [smtp] pointed at ``port``; and an environment as bare as cron's (no DIGEST_SECRET)."""
    home = tmp_path / "home"
    bin_dir = home / ".local" / "share" / "paper-digest" / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "digest").symlink_to(VENV_DIGEST)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "SHELL": "/bin/sh", "LOGNAME": "digest", "LANG": "C.UTF-8"}
    subprocess.run([str(bin_dir / "digest"), "init"], env=env, check=True, capture_output=True)
    config_file = home / ".config" / "paper-digest" / "config.toml"
    text = config_file.read_text()
    for old, new in (
        (r'(?m)^host = "localhost"$', 'host = "127.0.0.1"'),
        (r"(?m)^port = 587$", f"port = {port}"),
        (r'(?m)^security = "starttls"$', 'security = "none"'),
    ):
        text, count = re.subn(old, new, text)
        assert count == 1, old
    config_file.write_text(text)
    inbox = home / ".local" / "share" / "paper-digest" / "inbox"
    inbox.mkdir(parents=True)
    shutil.copy(SEEDS[0], inbox)
    return home, env


def _cron_command() -> str:
    """The command of the one job line in cron/crontab (the part after the five time fields)."""
    jobs = [line for line in (CRON / "crontab").read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert len(jobs) == 1
    command = jobs[0].split(None, 5)[5]
    assert "%" not in command  # cron would turn it into a newline
    return command


def test_shipped_crontab_line_works_as_is(tmp_path: Path, sink: Sink) -> None:
    """The crontab line, run by sh with cron's bare environment, reads the secret from the env file `digest init`
    wrote: exit 0. Without that file the same line exits 2 naming DIGEST_SECRET and the file it looked in."""
    home, env = _cron_home(tmp_path, sink.port)
    env_file = home / ".config" / "paper-digest" / "env"
    env_file.rename(tmp_path / "env.away")
    failed = subprocess.run(["/bin/sh", "-c", _cron_command()], env=env, capture_output=True, text=True, cwd=home)
    assert failed.returncode == 2 and "DIGEST_SECRET is not set" in failed.stderr and str(env_file) in failed.stderr
    (tmp_path / "env.away").rename(env_file)
    done = subprocess.run(["/bin/sh", "-c", _cron_command()], env=env, capture_output=True, text=True, cwd=home)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_shipped_systemd_unit_runs_as_is(tmp_path: Path, sink: Sink) -> None:
    """paper-digest-run.service's ExecStart (with %h = HOME, no shell, no EnvironmentFile) exits 0; the serve
    unit runs the same program with the same config."""
    home, env = _cron_home(tmp_path, sink.port)

    def exec_start(unit: str) -> list[str]:
        lines = [line for line in (CRON / unit).read_text().splitlines() if line.startswith("ExecStart=")]
        assert len(lines) == 1
        return shlex.split(lines[0].removeprefix("ExecStart=").replace("%h", str(home)))

    run = exec_start("paper-digest-run.service")
    done = subprocess.run(run, env=env, capture_output=True, text=True, cwd="/")
    assert done.returncode == 0, done.stderr
    assert exec_start("paper-digest-serve.service")[:-1] == run[:-2] and run[-2:] == ["run", "--quiet"]


def test_readme_cron_line_is_the_shipped_one() -> None:
    """The crontab line in the README is the one in cron/crontab."""
    command = _cron_command()
    assert any(line.startswith("*/15 ") and line.endswith(command) for line in README.read_text().splitlines())
