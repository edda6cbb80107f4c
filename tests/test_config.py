"""Tests for digest.config: loading, every validation error with file:line and key path, secrets, paths."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import platformdirs
import pytest

from digest.config import (
    STARTER_CONFIG,
    Config,
    ConfigProblem,
    ConfigValidationError,
    DigestSection,
    FeedSection,
    MailSection,
    ServerSection,
    SmtpSection,
    UserSection,
    default_config_path,
    environment,
    environment_problems,
    find_config_path,
    load_config,
    organization_warnings,
    read_env_file,
    secret,
    smtp_password,
    write_env_file,
    write_starter_config,
)
from digest.config.problems import parse_env_text
from digest.deliver.email.smtp import check_smtp_settings
from digest.errors import ConfigError
from digest.models import Profile
from digest.pipeline.settings import smtp_settings

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config.example.toml"

MINIMAL = """\
[mail]
sender = "digest@example.org"
unsubscribe_mailto = "unsubscribe@example.org"

[[users]]
name = "ada"
email = "ada@example.org"
keywords = ["diffusion"]
"""


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Config:
    return load_config(write(tmp_path, text), env={"XDG_DATA_HOME": str(tmp_path / "data"), **(env or {})})


def problems(tmp_path: Path, text: str) -> list[ConfigProblem]:
    with pytest.raises(ConfigValidationError) as info:
        load(tmp_path, text)
    return info.value.problems


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based line of the nth line of ``text`` that contains ``needle``."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return hits[nth - 1]


def only(found: list[ConfigProblem], path: str) -> ConfigProblem:
    matching = [p for p in found if p.path == path]
    assert len(matching) == 1, f"{path} not reported exactly once in {[str(p) for p in found]}"
    return matching[0]


# ---------------------------------------------------------------------------------------------- the example


def test_example_config_loads_and_gives_profiles(tmp_path: Path) -> None:
    """config.example.toml loads and every user becomes a Profile with an encoded cadence."""
    config = load_config(EXAMPLE, env={"XDG_DATA_HOME": str(tmp_path)})
    profiles = config.profiles()
    assert all(isinstance(p, Profile) for p in profiles)
    assert [(p.name, p.cadence) for p in profiles] == [("ada", "daily"), ("grace", "weekly:fri")]
    assert profiles[0].keywords == ('"self-supervised"', 'LLM OR "language model"', "title:diffus*")
    assert config.warnings == ()


def test_example_queries_parse() -> None:
    """Every keyword and exclude query in config.example.toml parses with the real matcher."""
    from digest.matching.match import parse_query

    for profile in load_config(EXAMPLE, env={}).profiles():
        for query in profile.keywords + profile.exclude:
            parse_query(query)


def test_example_documents_every_key() -> None:
    """Each key of each section appears in config.example.toml, set or as a commented '# key =' line."""
    text = EXAMPLE.read_text(encoding="utf-8")
    sections = {
        "digest": DigestSection,
        "mail": MailSection,
        "smtp": SmtpSection,
        "feeds": FeedSection,
        "server": ServerSection,
        "[users]": UserSection,
    }
    missing = []
    for header, model in sections.items():
        body = re.search(rf"^\[{re.escape(header)}\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
        assert body, header
        missing += [f"{header}.{key}" for key in model.model_fields if not re.search(rf"^(# )?{key} = ", body[1], re.M)]
    assert missing == []


def test_starter_config_is_the_example() -> None:
    """STARTER_CONFIG is the text of config.example.toml, so `digest init` writes the documented file."""
    assert EXAMPLE.read_text(encoding="utf-8") == STARTER_CONFIG


# ---------------------------------------------------------------------------------------------- values


def test_minimal_config_fills_defaults(tmp_path: Path) -> None:
    """A config with only [mail].sender and one user gets every other value from the defaults."""
    config = load(tmp_path, MINIMAL)
    assert config.path == (tmp_path / "config.toml").resolve()
    assert config.digest.store == tmp_path / "data" / "paper-digest" / "digest.db"
    assert config.feeds.output == tmp_path / "data" / "paper-digest" / "feeds"
    assert config.digest.templates is None
    assert config.digest.backfill_days == 7
    assert (config.smtp.security, config.smtp.port) == ("starttls", 587)
    assert config.mail.list_id == "paper-digest.example.org"
    assert config.server.listen_address == ("127.0.0.1", 8080)
    assert config.profiles()[0] == Profile(name="ada", email="ada@example.org", keywords=("diffusion",))


def test_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    """Relative paths resolve against the config file's folder, absolute ones are kept."""
    sub = tmp_path / "etc"
    (sub / "tpl").mkdir(parents=True)
    text = '[digest]\nstore = "state/d.db"\ninbox = "../in"\ntemplates = "tpl"\n[feeds]\noutput = "/srv/feeds"\n'
    config = load_config(write(sub, text + MINIMAL), env={})
    assert config.digest.store == sub / "state" / "d.db"
    assert config.digest.inbox == tmp_path / "in"
    assert config.digest.templates == sub / "tpl"
    assert config.feeds.output == Path("/srv/feeds")


def test_derived_defaults(tmp_path: Path) -> None:
    """Port 465 follows security = "tls" and the feeds URL follows digest.base_url."""
    config = load(tmp_path, '[digest]\nbase_url = "https://d.example.org/"\n[smtp]\nsecurity = "tls"\n' + MINIMAL)
    assert config.smtp.port == 465
    assert config.digest.base_url == "https://d.example.org"
    assert config.feeds.base_url == "https://d.example.org/feeds"


def test_cron_cadence_is_encoded(tmp_path: Path) -> None:
    """cadence = "cron" becomes "cron:<expr>" in the profile."""
    config = load(tmp_path, MINIMAL + 'cadence = "cron"\ncron = "30 8 * * mon-fri"\n')
    assert config.profiles()[0].cadence == "cron:30 8 * * mon-fri"


def test_plaintext_smtp_to_loopback_is_allowed(tmp_path: Path) -> None:
    """security = "none" is accepted for localhost without allow_insecure."""
    config = load(tmp_path, '[smtp]\nhost = "127.0.0.1"\nsecurity = "none"\n' + MINIMAL)
    assert (config.smtp.security, config.smtp.port) == ("none", 25)


@pytest.mark.parametrize("host", ["localhost", "mail.localhost", "localhost.", "[::1]", "127.0.0.2"])
def test_plaintext_loopback_rule_is_the_senders(tmp_path: Path, host: str) -> None:
    """`digest check` accepts plaintext SMTP to exactly the hosts the sender treats as loopback."""
    config = load(tmp_path, f'[smtp]\nhost = "{host}"\nsecurity = "none"\n' + MINIMAL)
    check_smtp_settings(smtp_settings(config, {}))  # raises ConfigError if the sender would refuse it


def test_send_time_in_dst_window_warns(tmp_path: Path) -> None:
    """A send time of 02:30 in a zone with DST loads with a warning naming its line."""
    text = MINIMAL + 'send_time = "02:30"\ntimezone = "Europe/Berlin"\n'
    config = load(tmp_path, text)
    assert [(w.line, w.path) for w in config.warnings] == [(line_of(text, "send_time"), "users[0].send_time")]
    assert "DST" in config.warnings[0].message


# ---------------------------------------------------------------------------------------------- errors

BROKEN = """\
[digest]
store = 12

[mail]
sender = "not an email"
unsubscribe_mailto = "unsubscribe@example.org"

[smtp]
max_conections = 3

[server]
schedule = "61 * * * *"
timezone = "Europe/Berln"

[[users]]
name = "ada"
email = "ada@example.org"
keywords = [
  "ok",
  3,
]

[[users]]
name = "ada"
email = "grace@example.org"
keywords = ["x"]
cadence = "dayly"
"""


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    """One ConfigValidationError lists every problem as '<file>:<line>: <key path>: expected ..., got ...'."""
    path = write(tmp_path, BROKEN)
    with pytest.raises(ConfigValidationError) as info:
        load_config(path, env={})
    lines = str(info.value.message).splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "digest.store",
        "mail.sender",
        "smtp.max_conections",
        "server.schedule",
        "server.timezone",
        "users[0].keywords[1]",
        "users[1].name",
        "users[1].cadence",
    ]
    assert [p.line for p in info.value.problems] == [2, 5, 9, 12, 13, 20, 24, 27]
    assert all(re.fullmatch(rf"{re.escape(str(path))}:\d+: \S+: expected .+, got .+", line) for line in lines)
    assert info.value.exit_code == 2
    assert isinstance(info.value, ConfigError)


@pytest.mark.parametrize(
    ("snippet", "path", "expected"),
    [
        ('[digest]\nabstract_chars = "600"\n', "digest.abstract_chars", 'expected an integer, got "600" (a string)'),
        ("[smtp]\nallow_insecure = 1\n", "smtp.allow_insecure", "expected true or false, got 1 (an integer)"),
        ("[feeds]\nmax_entries = 0\n", "feeds.max_entries", "expected a whole number from 1 to 10000, got 0"),
        ('[mail]\nlist_id = "nodot"\n', "mail.list_id", "expected a dot-atom list id"),
        ('[digest]\nbase_url = "http://x.org"\n', "digest.base_url", "expected an absolute https:// URL"),
        ('[server]\nlisten = "8080"\n', "server.listen", 'expected "host:port"'),
        ('[server]\nschedule = "0 7 * *"\n', "server.schedule", "expected a 5-field crontab expression"),
        ('[server]\nschedule = "0 7 * * 1-5"\n', "server.schedule", "expected weekday names (mon-sun)"),
        ('[server]\ntimezone = "Europe/Berln"\n', "server.timezone", '(did you mean "Europe/Berlin"?)'),
        ('[smtp]\nhost = "mx.example.org"\nsecurity = "none"\n', "smtp.security", 'expected "starttls" or "tls"'),
        ('[feeds]\nglobal_feed = "../all.xml"\n', "feeds.global_feed", 'expected a file name ending in ".xml"'),
    ],
)
def test_invalid_global_value_is_reported(tmp_path: Path, snippet: str, path: str, expected: str) -> None:
    """A wrong value in a global section is reported at its key path with what was expected."""
    text = MINIMAL.replace("[mail]\n", snippet) if snippet.startswith("[mail]") else snippet + MINIMAL
    found = only(problems(tmp_path, text), path)
    assert expected in found.message
    assert found.line == snippet.count("\n")


@pytest.mark.parametrize(
    ("extra", "path", "expected"),
    [
        ('display_name = "A\\nBcc: x@evil.org"', "users[0].display_name", "without control characters"),
        ('send_time = "7:00"', "users[0].send_time", 'expected a time "HH:MM"'),
        ('cadence = "cron"\ncron = "0 25 * * *"', "users[0].cron", "expected a valid crontab expression"),
        ('cadence = "cron"', "users[0].cron", 'expected a crontab expression (cadence = "cron"), got nothing'),
        ('cron = "0 7 * * *"', "users[0].cron", 'expected no cron (cadence = "daily")'),
        ('weekday = "fri"', "users[0].weekday", 'expected no weekday (cadence = "daily"; use "weekly")'),
        ('cadence = "weekly"\nweekday = "friday"', "users[0].weekday", '(did you mean "fri"?)'),
        ('formats = ["html", "html"]', "users[0].formats", 'expected each value once, got "html"'),
        ("formats = []", "users[0].formats", "expected at least 1 item(s)"),
        ('organizations_mode = "some"', "users[0].organizations_mode", 'expected one of "boost", "only"'),
        ("max_papers = 0", "users[0].max_papers", "expected a whole number from 1 to 500, got 0"),
        ('timezone = "Mars/Olympus"', "users[0].timezone", "expected an IANA time zone"),
        ('name = "a b"', "users[0].name", "expected a name of letters, digits"),
        ('exclude = [""]', "users[0].exclude[0]", "expected a query, got an empty string"),
    ],
)
def test_invalid_user_value_is_reported(tmp_path: Path, extra: str, path: str, expected: str) -> None:
    """A wrong value in a [[users]] table is reported at its key path with what was expected."""
    text = MINIMAL.replace('name = "ada"\n', "") if extra.startswith("name") else MINIMAL
    found = only(problems(tmp_path, text + extra + "\n"), path)
    assert expected in found.message


def test_invalid_email_is_reported_not_repaired(tmp_path: Path) -> None:
    """An address email-validator rejects is an error quoting it as written."""
    text = MINIMAL.replace("ada@example.org", "ada@@example.org ")
    found = only(problems(tmp_path, text), "users[0].email")
    assert found.line == line_of(text, "ada@@")
    assert found.message.startswith('expected an email address, got "ada@@example.org "')


def test_duplicate_user_names_are_reported(tmp_path: Path) -> None:
    """A second user with the same name (ignoring case) is an error on the second one's name line."""
    text = MINIMAL + '\n[[users]]\nname = "Ada"\nemail = "b@example.org"\nkeywords = ["x"]\n'
    found = only(problems(tmp_path, text), "users[1].name")
    assert found.line == line_of(text, '"Ada"')
    assert "users[0] has it already" in found.message


def test_user_without_queries_is_reported(tmp_path: Path) -> None:
    """A user with no keywords (and no organizations-only filter) would match nothing and is refused."""
    text = MINIMAL.replace('keywords = ["diffusion"]\n', "")
    found = only(problems(tmp_path, text), "users[0].keywords")
    assert found.line == line_of(text, "[[users]]")  # the key itself is absent


def test_unknown_key_suggests_closest(tmp_path: Path) -> None:
    """A misspelt key names the closest known key of its own table."""
    text = MINIMAL + "keyword = ['x']\n"
    found = only(problems(tmp_path, text), "users[0].keyword")
    assert found.message == 'expected a known key (did you mean "keywords"?), got unknown key "keyword"'
    assert found.line == line_of(text, "keyword =")


def test_unknown_key_without_close_match_lists_known_keys(tmp_path: Path) -> None:
    """An unknown key with nothing close lists the keys its table accepts."""
    found = only(problems(tmp_path, "[server]\nzzz = 1\n" + MINIMAL), "server.zzz")
    assert found.message == 'expected one of listen, schedule, timezone, got unknown key "zzz"'


def test_unknown_section_suggests_closest(tmp_path: Path) -> None:
    """A misspelt section name is reported at its header line with the closest section."""
    text = MINIMAL + '\n[smpt]\nhost = "x"\n'
    found = only(problems(tmp_path, text), "smpt")
    assert found.line == line_of(text, "[smpt]")
    assert found.message == 'expected a known key (did you mean "smtp"?), got unknown key "smpt"'


def test_missing_mail_section_is_reported(tmp_path: Path) -> None:
    """A file without [mail] says the section and its sender are required."""
    found = only(problems(tmp_path, MINIMAL.split("\n\n")[1]), "mail")
    assert found.line is None
    assert found.message.startswith("expected a [mail] table with at least sender, got nothing")


def test_password_in_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    """`password = "..."` is an error pointing to password_env, and the password never appears in it."""
    with pytest.raises(ConfigValidationError) as info:
        load(tmp_path, '[smtp]\nusername = "u"\npassword = "hunter2-secret"\n' + MINIMAL)
    found = only(info.value.problems, "smtp.password")
    assert found.line == 3
    assert 'expected password_env = "NAME_OF_AN_ENV_VAR"' in found.message
    assert "hunter2" not in str(info.value)


def test_secret_pasted_into_password_env_is_not_echoed(tmp_path: Path) -> None:
    """A value in password_env that is no variable name is refused without showing it."""
    with pytest.raises(ConfigValidationError) as info:
        load(tmp_path, '[smtp]\npassword_env = "s3cr3t pass!"\n' + MINIMAL)
    assert only(info.value.problems, "smtp.password_env").line == 2
    assert "s3cr3t" not in str(info.value)


def test_malformed_toml_reports_line_and_column(tmp_path: Path) -> None:
    """A TOML syntax error is one problem with tomllib's line and column."""
    found = problems(tmp_path, '[mail]\nsender = "a@example.org\n')
    assert [(p.line, p.path) for p in found] == [(2, "")]
    assert "at column" in found[0].message
    assert str(found[0]).startswith(f"{tmp_path / 'config.toml'}:2: expected valid TOML, got ")


def test_non_utf8_file_is_reported(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 are reported with their line, not as a traceback."""
    path = tmp_path / "config.toml"
    path.write_bytes(b"[mail]\nsender_name = '\xff'\n")
    with pytest.raises(ConfigValidationError) as info:
        load_config(path, env={})
    assert info.value.problems[0].line == 2


def test_missing_file_hints_at_init(tmp_path: Path) -> None:
    """Loading a file that does not exist is a ConfigError suggesting `digest init`."""
    with pytest.raises(ConfigError, match="not found") as info:
        load_config(tmp_path / "nope.toml", env={})
    assert "digest init" in info.value.hint


def test_query_syntax_error_reports_position(tmp_path: Path) -> None:
    """A keyword query that does not parse is reported at its own line with the character position."""
    text = MINIMAL.replace('keywords = ["diffusion"]', 'keywords = [\n  "diffusion",\n  "LLM AND (agents",\n]')
    found = only(problems(tmp_path, text), "users[0].keywords[1]")
    assert found.line == line_of(text, "LLM AND")
    assert found.message.startswith('expected a valid query, got "LLM AND (agents" (')
    assert "at character 9" in found.message
    assert "\n" not in found.message


# ---------------------------------------------------------------------------------------------- secrets


def test_secret_reads_the_named_variable(tmp_path: Path) -> None:
    """secret() returns the bytes of the variable named by [digest].secret_env."""
    config = load(tmp_path, '[digest]\nsecret_env = "MY_SECRET"\n' + MINIMAL)
    assert secret(config, {"MY_SECRET": "0123456789abcdefXYZ"}) == b"0123456789abcdefXYZ"


def test_missing_secret_names_variable_and_key(tmp_path: Path) -> None:
    """Without the variable, secret() raises a ConfigError naming the variable and the config key."""
    config = load(tmp_path, MINIMAL)
    with pytest.raises(ConfigError) as info:
        secret(config, {})
    assert "DIGEST_SECRET" in info.value.message and "[digest].secret_env" in info.value.message
    assert str(tmp_path / "env") in info.value.message and "does not exist" in info.value.message
    assert f"DIGEST_SECRET=<16+ random characters> to {tmp_path / 'env'}" in info.value.hint


def test_short_secret_is_refused(tmp_path: Path) -> None:
    """A secret shorter than 16 characters is refused rather than used to sign."""
    with pytest.raises(ConfigError, match="shorter than 16"):
        secret(load(tmp_path, MINIMAL), {"DIGEST_SECRET": "short"})


def test_smtp_password_without_username_is_none(tmp_path: Path) -> None:
    """Without [smtp].username no password is needed and None is returned."""
    assert smtp_password(load(tmp_path, MINIMAL), {}) is None


def test_smtp_password_reads_the_named_variable(tmp_path: Path) -> None:
    """With a username the password comes from the variable named by password_env."""
    config = load(tmp_path, '[smtp]\nusername = "u"\npassword_env = "PW"\n' + MINIMAL)
    assert smtp_password(config, {"PW": "pa ss"}) == "pa ss"


def test_missing_smtp_password_names_variable_and_key(tmp_path: Path) -> None:
    """With a username and no variable, the error names the variable and [smtp].password_env."""
    config = load(tmp_path, '[smtp]\nusername = "u"\n' + MINIMAL)
    with pytest.raises(ConfigError) as info:
        smtp_password(config, {})
    assert "DIGEST_SMTP_PASSWORD" in info.value.message and "[smtp].password_env" in info.value.message


# ---------------------------------------------------------------------------------------------- the env file


def write_env(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    path.chmod(mode)
    return path


def test_env_file_syntax() -> None:
    """KEY=VALUE, `export `, comments, blank lines, quotes (single literal, double with escapes); last one wins."""
    text = textwrap.dedent(r"""
        # a comment

        PLAIN=abc def
          export EXPORTED = spaced#not-a-comment
        SINGLE=' keep $HOME \n '
        DOUBLE="a \"q\" \\ \$x \n"   # a comment after the quote
        EMPTY=
        EQUALS=a=b=c
        PLAIN=last wins
        """)
    values, problems = parse_env_text(text, "env")
    assert problems == []
    assert values == {
        "PLAIN": "last wins", "EXPORTED": "spaced#not-a-comment", "SINGLE": " keep $HOME \\n ",
        "DOUBLE": 'a "q" \\ $x \\n', "EMPTY": "", "EQUALS": "a=b=c",
    }  # fmt: skip


def test_env_file_bad_lines_are_located_and_never_echoed() -> None:
    """A line that is not KEY=VALUE, or a quote left open, is reported at its line without showing the value."""
    text = "OK=1\nhunter2-secret\n1BAD=x\nOPEN=\"hunter3\nAFTER='x' trailing\n"
    values, problems = parse_env_text(text, "/etc/env")
    assert values == {"OK": "1"}
    assert [(p.file, p.line, p.path) for p in problems] == [
        ("/etc/env", 2, ""), ("/etc/env", 3, ""), ("/etc/env", 4, "OPEN"), ("/etc/env", 5, "AFTER")
    ]  # fmt: skip
    assert not any("hunter" in str(p) for p in problems)


def test_env_file_beside_the_config_fills_in_and_the_environment_wins(tmp_path: Path) -> None:
    """By default the env file is `env` beside the config; its values fill in, a real variable wins over it."""
    config = load(tmp_path, MINIMAL)
    assert config.digest.env_file == tmp_path.resolve() / "env"
    write_env(tmp_path / "env", "DIGEST_SECRET=from-the-env-file-0123\nOTHER=file\n")
    assert secret(config, {}) == b"from-the-env-file-0123"
    assert secret(config, {"DIGEST_SECRET": "from-the-process-0123"}) == b"from-the-process-0123"
    assert environment(config, {"OTHER": "process"})["OTHER"] == "process"


def test_env_file_key_is_relative_to_the_config(tmp_path: Path) -> None:
    """[digest].env_file names another file, relative to the config's folder."""
    (tmp_path / "secrets").mkdir()
    write_env(tmp_path / "secrets" / "digest.env", "export PW='pa ss # word'\n")
    config = load(
        tmp_path, '[digest]\nenv_file = "secrets/digest.env"\n[smtp]\nusername = "u"\npassword_env = "PW"\n' + MINIMAL
    )
    assert smtp_password(config, {}) == "pa ss # word"


def test_missing_env_file_is_fine_unless_named(tmp_path: Path) -> None:
    """No default env file is no error; a file named by [digest].env_file that does not exist is one."""
    assert environment(load(tmp_path, MINIMAL), {"A": "1"}) == {"A": "1"}
    config = load(tmp_path, '[digest]\nenv_file = "nope.env"\n' + MINIMAL)
    with pytest.raises(ConfigError, match=r"nope\.env.*not found"):
        environment(config, {})


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX file modes")
def test_env_file_others_can_read_is_refused(tmp_path: Path) -> None:
    """An env file holding secrets that every user may read is refused, with the chmod that fixes it."""
    path = write_env(tmp_path / "env", "DIGEST_SECRET=0123456789abcdefXYZ\n", mode=0o644)
    with pytest.raises(ConfigError, match="every user may read") as info:
        read_env_file(path)
    assert info.value.hint == f"chmod 600 {path}"
    path.chmod(0o640)  # group-readable is allowed (a service group)
    assert read_env_file(path) == {"DIGEST_SECRET": "0123456789abcdefXYZ"}


def test_write_env_file_makes_a_private_secret_once(tmp_path: Path) -> None:
    """write_env_file creates the file (mode 600) with a long random secret and never replaces it."""
    path = tmp_path / "conf" / "env"
    assert write_env_file(path) is True
    assert path.stat().st_mode & 0o777 == 0o600
    first = read_env_file(path)
    assert len(first["DIGEST_SECRET"]) >= 32 and "DIGEST_SMTP_PASSWORD" not in first
    assert write_env_file(path) is False and read_env_file(path) == first
    write_env_file(tmp_path / "other")
    assert read_env_file(tmp_path / "other") != first  # a fresh secret each time


def test_environment_problems_name_variable_file_and_fix(tmp_path: Path) -> None:
    """check's secret problems: which variable, at which config line, which env file was read, what to add."""
    text = '[smtp]\nusername = "u"\n' + MINIMAL
    config = load(tmp_path, text)
    found = environment_problems(config, {})
    secret_problem, password_problem = only(found, "digest.secret_env"), only(found, "smtp.password_env")
    env = str(tmp_path.resolve() / "env")
    assert "DIGEST_SECRET is not set" in secret_problem.message and env in secret_problem.message
    assert "DIGEST_SMTP_PASSWORD is not set" in password_problem.message and env in password_problem.message
    assert password_problem.line == 1 and password_problem.file == str(config.path)
    write_env(tmp_path / "env", "DIGEST_SECRET=short\nDIGEST_SMTP_PASSWORD=pw\n")
    assert [p.message.split(" (")[0] for p in environment_problems(config, {})] == [
        "DIGEST_SECRET is shorter than 16 characters"
    ]
    write_env(tmp_path / "env", "DIGEST_SECRET=0123456789abcdef\nDIGEST_SMTP_PASSWORD=pw\n")
    assert environment_problems(config, {}) == []
    (tmp_path / "env").chmod(0o604)
    assert [p.path for p in environment_problems(config, {})] == ["digest.env_file"]


# ---------------------------------------------------------------------------------------------- organizations


ORGS = (
    MINIMAL
    + """
[[users]]
name = "grace"
email = "grace@example.org"
organizations = ["facebook", "meta-llama"]
organizations_mode = "only"
"""
)


def test_organization_warnings_compare_handles_and_names_loosely(tmp_path: Path) -> None:
    """An organization matching a seen handle or display name (case, spaces, punctuation aside) is fine; one
    never seen is warned about at its line, with the closest seen name."""
    text = MINIMAL.replace(
        'keywords = ["diffusion"]',
        'keywords = ["diffusion"]\norganizations = ["bytedance seed", "AI-at-Meta", "Qwenn"]',
    )
    text += ORGS.removeprefix(MINIMAL)
    config = load(tmp_path, text)
    warnings = organization_warnings(config, ["ByteDance-Seed", "AI at Meta", "Qwen", "Facebook"])
    assert [w.path for w in warnings] == ["users[0].organizations[2]", "users[1].organizations[1]"]
    assert warnings[0].line == line_of(text, "Qwenn") and 'did you mean "Qwen"?' in warnings[0].message
    assert [w.path for w in organization_warnings(config, ["Meta Llama"])] == [
        "users[0].organizations[0]", "users[0].organizations[1]", "users[0].organizations[2]",
        "users[1].organizations[0]",
    ]  # fmt: skip


def test_only_profile_that_can_only_be_empty_is_warned(tmp_path: Path) -> None:
    """With no organization in the store at all, each one is warned about and the "only" profile too."""
    text = ORGS
    warnings = organization_warnings(load(tmp_path, text), [])
    assert [w.path for w in warnings] == [
        "users[1].organizations[0]", "users[1].organizations[1]", "users[1].organizations_mode",
    ]  # fmt: skip
    assert "dumps before 2025-10" in warnings[0].message and "stays empty" in warnings[2].message
    assert warnings[2].line == line_of(text, "organizations_mode")


# ---------------------------------------------------------------------------------------------- finding the file


def test_find_config_prefers_cli_over_env_over_platform_dir(tmp_path: Path) -> None:
    """--config wins over $DIGEST_CONFIG, which wins over the platform config dir."""
    cli_file, env_file = write(tmp_path, MINIMAL, "cli.toml"), write(tmp_path, MINIMAL, "env.toml")
    platform_file = tmp_path / "xdg" / "paper-digest" / "config.toml"
    platform_file.parent.mkdir(parents=True)
    platform_file.write_text(MINIMAL)
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "DIGEST_CONFIG": str(env_file)}
    assert find_config_path(str(cli_file), env) == cli_file
    assert find_config_path(None, env) == env_file
    assert find_config_path(None, {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}) == platform_file


def test_default_config_path_agrees_with_platformdirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With XDG_CONFIG_HOME set, the default path is what platformdirs computes for paper-digest."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    expected = Path(platformdirs.user_config_dir("paper-digest")) / "config.toml"
    assert default_config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == expected == default_config_path({})


def test_no_config_anywhere_hints_at_init(tmp_path: Path) -> None:
    """When no file is found, the ConfigError tells the user to run `digest init`."""
    with pytest.raises(ConfigError) as info:
        find_config_path(None, {"XDG_CONFIG_HOME": str(tmp_path)})
    assert "digest init" in info.value.hint


def test_env_config_pointing_nowhere_is_an_error(tmp_path: Path) -> None:
    """A $DIGEST_CONFIG naming a missing file is an error, not a silent fall-through to the platform dir."""
    with pytest.raises(ConfigError, match=r"\$DIGEST_CONFIG"):
        find_config_path(None, {"DIGEST_CONFIG": str(tmp_path / "missing.toml")})


# ---------------------------------------------------------------------------------------------- starter config


def test_written_starter_config_loads(tmp_path: Path) -> None:
    """write_starter_config creates missing folders and the file it writes loads."""
    path = write_starter_config(tmp_path / "new" / "config.toml")
    assert path == (tmp_path / "new" / "config.toml").resolve()
    assert len(load_config(path, env={}).users) == 2
    assert [p.name for p in path.parent.iterdir()] == ["config.toml"]  # no temp file left behind


def test_starter_config_refuses_to_overwrite(tmp_path: Path) -> None:
    """An existing file is left untouched unless force=True."""
    path = write(tmp_path, "# mine\n")
    with pytest.raises(ConfigError, match="already exists") as info:
        write_starter_config(path)
    assert "--force" in info.value.hint
    assert path.read_text() == "# mine\n"
    write_starter_config(path, force=True)
    assert path.read_text() == STARTER_CONFIG


# ------------------------------------------------------------------------------- what check accepts, run runs


def where(found: ConfigProblem, tmp_path: Path) -> str:
    """The problem as printed, for asserting on what, where and how at once."""
    return str(found).replace(str(tmp_path), "<tmp>")


@pytest.mark.parametrize("key", ["catchup_max_age_days", "backfill_days", "keep_sent_days"])
@pytest.mark.parametrize("value", ["1000000000", "3651", "-1", "7.5"])
def test_day_settings_are_whole_days_up_to_ten_years(tmp_path: Path, key: str, value: str) -> None:
    """Days settings >= 1e9 overflowed date arithmetic in every run: they are refused outside 0..3650."""
    found = only(problems(tmp_path, f"[digest]\n{key} = {value}\n" + MINIMAL), f"digest.{key}")
    assert found.line == 2
    expected = "expected an integer" if "." in value else "expected a whole number from 0 to 3650"
    assert f"config.toml:2: digest.{key}: {expected}, got {value}" in where(found, tmp_path)


def test_day_settings_at_their_bounds_load(tmp_path: Path) -> None:
    """0 and 3650 are both valid for each days setting."""
    text = "[digest]\ncatchup_max_age_days = 3650\nbackfill_days = 0\nkeep_sent_days = 3650\n" + MINIMAL
    assert load(tmp_path, text).digest.keep_sent_days == 3650


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("smtp", "max_retry_age_hours", "inf", "expected a number from 0 to 87600, got inf"),
        ("smtp", "max_retry_age_hours", "nan", "expected a number from 0 to 87600, got nan"),
        ("smtp", "max_retry_age_hours", "1e9", "expected a number from 0 to 87600, got 1000000000.0"),
        ("smtp", "timeout", "inf", "expected a number above 0 and up to 3600, got inf"),
        ("digest", "fetch_timeout", "1e9", "expected a number above 0 and up to 3600"),
        ("digest", "abstract_chars", "1000000000", "expected a whole number from 50 to 100000"),
        ("feeds", "max_entries", "1000000000", "expected a whole number from 1 to 10000"),
    ],
)
def test_numbers_are_finite_and_bounded(tmp_path: Path, section: str, key: str, value: str, expected: str) -> None:
    """inf, nan and huge numbers are refused with the valid range (inf hours crashed every run)."""
    found = only(problems(tmp_path, f"[{section}]\n{key} = {value}\n" + MINIMAL), f"{section}.{key}")
    assert found.line == 2 and expected in found.message


@pytest.mark.parametrize("key", ["min_score = nan", "min_score = inf", "min_upvotes = 10000000000"])
def test_user_numbers_are_finite_and_bounded(tmp_path: Path, key: str) -> None:
    """A user's score and upvote thresholds have a finite range too."""
    found = only(problems(tmp_path, MINIMAL + key + "\n"), f"users[0].{key.split()[0]}")
    assert found.message.startswith("expected a ") and " to " in found.message


def test_empty_secret_env_is_refused_by_the_loader(tmp_path: Path) -> None:
    """secret_env = "" passed the loader and failed later: now the loader names the key and an example."""
    found = only(problems(tmp_path, '[digest]\nsecret_env = ""\n' + MINIMAL), "digest.secret_env")
    assert (
        "config.toml:2: digest.secret_env: expected the name of the variable holding the signing secret, such "
        'as "DIGEST_SECRET", got ""' in where(found, tmp_path)
    )


def test_missing_templates_folder_is_refused(tmp_path: Path) -> None:
    """A templates folder that does not exist (or is a file) is refused, naming the full path and the way out."""
    found = only(problems(tmp_path, '[digest]\ntemplates = "my-templates"\n' + MINIMAL), "digest.templates")
    assert where(found, tmp_path).endswith(
        'config.toml:2: digest.templates: expected an existing folder, got "<tmp>/my-templates", which is missing '
        "(create it, or remove the key to use the built-in templates)"
    )
    (tmp_path / "my-templates").write_text("not a folder")
    assert "which is a file" in only(problems(tmp_path, '[digest]\ntemplates = "my-templates"\n' + MINIMAL),
                                     "digest.templates").message  # fmt: skip
    (tmp_path / "my-templates").unlink()
    (tmp_path / "my-templates").mkdir()
    config = load(tmp_path, '[digest]\ntemplates = "my-templates"\n' + MINIMAL)
    assert config.digest.templates == tmp_path / "my-templates"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (".", 'expected the path of the SQLite store file, got the folder "<tmp>" (name a file in it, such as '
              '"digest.db")'),
        ("/dev/null", 'expected the path of a regular file for the SQLite store, got "/dev/null", which is a device '
                      "or other special file"),
        ("config.toml/digest.db", 'expected a path whose folders exist or can be made, got '
                                  '"<tmp>/config.toml/digest.db" (<tmp>/config.toml is a file)'),
        ("x" * 300 + ".db", "expected a path this system accepts, got"),
    ],
)  # fmt: skip
def test_store_must_be_a_file_path_that_can_be_made(tmp_path: Path, value: str, expected: str) -> None:
    """store = "." or "/dev/null" passed check and crashed run: a folder, a device, a path under a file or one the
    file system refuses is a config error."""
    found = only(problems(tmp_path, f'[digest]\nstore = "{value}"\n' + MINIMAL), "digest.store")
    assert found.line == 2 and expected in where(found, tmp_path)


def test_store_in_missing_folders_is_fine(tmp_path: Path) -> None:
    """A store whose folders do not exist yet is accepted (they are made by the first run)."""
    assert load(tmp_path, '[digest]\nstore = "a/b/digest.db"\n' + MINIMAL).digest.store == tmp_path / "a/b/digest.db"


@pytest.mark.parametrize(("section", "key"), [("digest", "inbox"), ("feeds", "output")])
def test_folders_must_not_be_files(tmp_path: Path, section: str, key: str) -> None:
    """The inbox and the feeds folder may be missing (they are made) but not a file."""
    (tmp_path / "taken").write_text("x")
    found = only(problems(tmp_path, f'[{section}]\n{key} = "taken"\n' + MINIMAL), f"{section}.{key}")
    assert 'expected a folder, got "' in found.message and "which is a file" in found.message


def test_long_user_name_is_refused(tmp_path: Path) -> None:
    """A 300-character name made file names too long for its feed and .eml files: at most 64 characters."""
    text = MINIMAL.replace('name = "ada"', f'name = "{"a" * 300}"')
    found = only(problems(tmp_path, text), "users[0].name")
    assert found.line == line_of(text, "name =")
    assert found.message == "expected a name of at most 64 characters (it is part of file names), got 300 characters"
    assert load(tmp_path, MINIMAL.replace('name = "ada"', f'name = "{"a" * 64}"')).users[0].name == "a" * 64


@pytest.mark.parametrize("zone", ["Europe", "America", "Europe/", "../../etc/passwd", "zone1970.tab", "UTC\\u0000"])
def test_timezone_that_is_no_zone_file_is_refused(tmp_path: Path, zone: str) -> None:
    """timezone = "Europe" (a folder of the tz database) crashed check itself: it is refused like any unknown zone,
    for users and for the server."""
    found = only(problems(tmp_path, MINIMAL + f'timezone = "{zone}"\n'), "users[0].timezone")
    assert found.message.startswith('expected an IANA time zone such as "Europe/Berlin"')
    found = only(problems(tmp_path, f'[server]\ntimezone = "{zone}"\n' + MINIMAL), "server.timezone")
    assert found.line == 2 and found.message.startswith("expected an IANA time zone")


def test_deeply_nested_toml_is_refused_naming_file_line_and_key(tmp_path: Path) -> None:
    """TOML nested a thousand levels deep crashed check with RecursionError: now a problem with file, line, key."""
    text = MINIMAL + "exclude = " + "[" * 1000 + '"x"' + "]" * 1000 + "\n"
    found = problems(tmp_path, text)
    assert [where(p, tmp_path) for p in found] == [
        f"<tmp>/config.toml:{line_of(text, 'exclude')}: users[0].exclude: expected valid TOML, got arrays or inline "
        "tables nested too deeply to read (at most 100 levels)"
    ]


def test_nesting_tomllib_reads_is_a_type_error(tmp_path: Path) -> None:
    """Nesting that tomllib can still read is reported as a wrong type at its key, like any other."""
    found = only(problems(tmp_path, MINIMAL + "exclude = " + "[" * 50 + "]" * 50 + "\n"), "users[0].exclude[0]")
    assert found.message == "expected a string, got an array"


USER_ALL = (
    MINIMAL
    + """
[[users]]
name = "all"
email = "all@example.org"
keywords = ["x"]
"""
)


def test_user_named_like_the_global_feed_is_refused(tmp_path: Path) -> None:
    """A user named "all" with a feed overwrote all.xml: the config error names both feeds."""
    found = only(problems(tmp_path, USER_ALL), "users[1].name")
    assert found.line == line_of(USER_ALL, 'name = "all"')
    assert found.message == (
        'expected a name whose feed file is free, got "all": its feed all.xml is also the feed of '
        '[feeds].global_feed = "all.xml" (rename one, set feed = false, or pick another [feeds].global_feed)'
    )
    assert [u.name for u in load(tmp_path, USER_ALL + "feed = false\n").users] == ["ada", "all"]
    assert load(tmp_path, '[feeds]\nglobal_feed = "everything.xml"\n' + USER_ALL).feeds.global_feed == "everything.xml"


@pytest.mark.parametrize("global_feed", ["ada.xml", "ADA.xml", "Ada.XML"])
def test_global_feed_named_like_a_user_feed_is_refused(tmp_path: Path, global_feed: str) -> None:
    """global_feed = "ada.xml" overwrote ada's feed; "ADA.xml" does on case-insensitive file systems."""
    text = f'[feeds]\nglobal_feed = "{global_feed}"\n' + MINIMAL
    if not global_feed.endswith(".xml"):
        assert 'expected a file name ending in ".xml"' in only(problems(tmp_path, text), "feeds.global_feed").message
        return
    found = only(problems(tmp_path, text), "users[0].name")
    assert f'its feed ada.xml is also the feed of [feeds].global_feed = "{global_feed}"' in found.message


def test_names_whose_feed_files_coincide_are_refused(tmp_path: Path) -> None:
    """Two names that sanitize to one feed file name are refused, naming the other user."""
    from digest.render.atom import feed_file, feed_slug

    other = feed_slug("Ada.x")  # "ada-x-<hash>": a name someone else could have
    text = (
        MINIMAL.replace('name = "ada"', 'name = "Ada.x"')
        + f"""
[[users]]
name = "{other}"
email = "b@example.org"
keywords = ["x"]
"""
    )
    assert feed_file(other) == feed_file("Ada.x")
    found = only(problems(tmp_path, text), "users[1].name")
    assert f'its feed {other}.xml is also the feed of users[0] ("Ada.x")' in found.message


def test_leap_day_cron_is_accepted_and_has_periods(tmp_path: Path) -> None:
    """cron = "0 0 29 2 *" (leap days) passed check and then every run exited 2: now its periods are found."""
    from datetime import UTC, datetime

    from digest.config.cadence import current_period, next_scheduled_after

    text = MINIMAL + 'cadence = "cron"\ncron = "0 0 29 2 *"\n'
    profile = load(tmp_path, text).profiles()[0]
    now = datetime(2026, 11, 23, 7, tzinfo=UTC)
    assert current_period(profile, now).key == "2024-02-29T00:00"
    assert next_scheduled_after(profile, now) == datetime(2028, 2, 29, tzinfo=UTC)
    # 29 February on a Monday: 2016, 2044, 2072, then 2112 (2100 is no leap year): a 40-year gap.
    rare = load(tmp_path, MINIMAL + 'cadence = "cron"\ncron = "0 0 29 2 mon"\n').profiles()[0]
    assert current_period(rare, now).key == "2016-02-29T00:00"
    assert current_period(rare, datetime(2111, 12, 31, tzinfo=UTC)).key == "2072-02-29T00:00"


@pytest.mark.parametrize("cron", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *"])
def test_cron_that_never_fires_is_refused(tmp_path: Path, cron: str) -> None:
    """A cron that matches no date passed check: it is refused, for users and for the server schedule."""
    text = MINIMAL + f'cadence = "cron"\ncron = "{cron}"\n'
    found = only(problems(tmp_path, text), "users[0].cron")
    assert found.line == line_of(text, "cron =")
    assert found.message == (
        f'expected a crontab expression that fires, got "{cron}", which matches no calendar date (check the day and '
        "month fields, e.g. day 30 or 31 of February)"
    )
    assert "that fires" in only(problems(tmp_path, f'[server]\nschedule = "{cron}"\n' + MINIMAL),
                                "server.schedule").message  # fmt: skip


def test_no_unsubscribe_method_is_an_error(tmp_path: Path) -> None:
    """check warned and run refused to compose: a config with no way to unsubscribe is now refused by the loader."""
    text = MINIMAL.replace('unsubscribe_mailto = "unsubscribe@example.org"\n', "")
    found = only(problems(tmp_path, text), "mail.unsubscribe_mailto")
    assert found.line == 1 and "got neither" in found.message
    assert load(tmp_path, '[digest]\nbase_url = "https://d.example.org"\n' + text).digest.base_url


def test_check_and_run_refuse_with_the_same_message(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """`digest check` and `digest run` load the config through one validation and print the same problem."""
    from digest.app.cli import main

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("DIGEST_SECRET", "s" * 32)
    path = write(tmp_path, "[digest]\nkeep_sent_days = 1000000000\n" + MINIMAL)
    printed = []
    for command in (["check"], ["run", "--dry-run", "--out", str(tmp_path / "out")]):
        assert main(["--config", str(path), *command]) == 2
        printed.append(capsys.readouterr().err)
    assert printed[0] == printed[1]
    assert (
        f"error: {path}:2: digest.keep_sent_days: expected a whole number from 0 to 3650, got 1000000000" in printed[0]
    )
    assert "unexpected" not in printed[0]


def test_every_profile_field_comes_from_the_users_table() -> None:
    """Profile is derived from [[users]]: each of its fields is a UserSection key of the same name (cadence folds
    in weekday and cron), so a profile field cannot be added without its config key, or the other way round."""
    from dataclasses import fields

    from digest.config import UserSection
    from digest.models import Profile

    profile_fields = {f.name for f in fields(Profile)}
    folded = {"weekday", "cron"}  # part of Profile.cadence ("weekly:<day>", "cron:<expr>")
    assert profile_fields == set(UserSection.model_fields) - folded
    user = UserSection(name="ada", email="ada@example.org", keywords=("LLM",), cadence="weekly", weekday="tue")
    assert user.profile().cadence == "weekly:tue"
