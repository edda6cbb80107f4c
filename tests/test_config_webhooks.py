"""Tests for the config side of webhooks: [[webhooks]] tables, users' opt-in, webhook-only users, their secrets."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from digest.config import (
    WEBHOOK_KINDS,
    Config,
    ConfigError,
    ConfigProblem,
    ConfigValidationError,
    WebhookSection,
    environment_problems,
    load_config,
    webhook_token,
    webhook_url,
)
from digest.deliver.channel import CHANNEL_KINDS

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config.example.toml"
SECRET_URL = "https://hooks.slack.com/services/T0001/B0002/SECRETPART42"

HEAD = """\
[mail]
sender = "digest@example.org"
unsubscribe_mailto = "unsubscribe@example.org"
"""

SLACK = """
[[webhooks]]
name = "lab-slack"
kind = "slack"
url_env = "LAB_SLACK_WEBHOOK"
timeout = 10
"""

MATRIX = """
[[webhooks]]
name = "lab-matrix"
kind = "matrix"
homeserver = "https://matrix.example.org/"
room_id = "!abcdef:example.org"
token_env = "MATRIX_TOKEN"
"""

ADA = """
[[users]]
name = "ada"
keywords = ["diffusion"]
webhooks = ["lab-slack"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> Config:
    return load_config(write(tmp_path, text), env={"XDG_DATA_HOME": str(tmp_path / "data")})


def problems(tmp_path: Path, text: str) -> list[ConfigProblem]:
    with pytest.raises(ConfigValidationError) as info:
        load(tmp_path, text)
    return info.value.problems


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based line of the nth line of ``text`` that contains ``needle``."""
    return [i for i, line in enumerate(text.splitlines(), 1) if needle in line][nth - 1]


def only(found: list[ConfigProblem], path: str) -> ConfigProblem:
    matching = [p for p in found if p.path == path]
    assert len(matching) == 1, f"{path} not reported exactly once in {[str(p) for p in found]}"
    return matching[0]


def write_env(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)


# ---------------------------------------------------------------------------------------------- accepted


def test_webhook_kinds_are_the_channel_kinds() -> None:
    """The kinds a [[webhooks]] table may name are the delivery registry's kinds other than email."""
    assert set(WEBHOOK_KINDS) == set(CHANNEL_KINDS) - {"email"}


@pytest.mark.parametrize("kind", ["slack", "discord", "json"])
def test_url_kinds_load(tmp_path: Path, kind: str) -> None:
    """slack, discord and json tables load with their url_env and timeout; other keys stay empty."""
    config = load(tmp_path, HEAD + SLACK.replace('"slack"', f'"{kind}"') + ADA)
    (hook,) = config.webhooks
    assert hook == WebhookSection(name="lab-slack", kind=kind, url_env="LAB_SLACK_WEBHOOK", timeout=10)
    assert config.webhook("lab-slack") is hook and config.warnings == ()


def test_matrix_loads_and_defaults_its_timeout(tmp_path: Path) -> None:
    """A matrix table keeps homeserver (without the trailing slash), room_id and token_env; timeout is 30."""
    config = load(tmp_path, HEAD + MATRIX + ADA.replace('"lab-slack"', '"lab-matrix"'))
    hook = config.webhook("lab-matrix")
    assert (hook.kind, hook.homeserver, hook.room_id, hook.token_env, hook.timeout, hook.url_env) == (
        "matrix", "https://matrix.example.org", "!abcdef:example.org", "MATRIX_TOKEN", 30, "",
    )  # fmt: skip


def test_matrix_homeserver_may_be_http_on_loopback(tmp_path: Path) -> None:
    """http:// is accepted for a homeserver on this machine (a local test server)."""
    text = (
        HEAD
        + MATRIX.replace("https://matrix.example.org/", "http://localhost:8008")
        + ADA.replace('"lab-slack"', '"lab-matrix"')
    )
    assert load(tmp_path, text).webhook("lab-matrix").homeserver == "http://localhost:8008"


def test_webhook_only_user_becomes_a_profile_without_email(tmp_path: Path) -> None:
    """A user with webhooks and no email loads; the Profile has email "" and only the webhook channel."""
    (profile,) = load(tmp_path, HEAD + SLACK + ADA).profiles()
    assert profile.email == "" and profile.webhooks == ("lab-slack",)
    assert profile.channels == ("webhook:lab-slack",)


def test_user_with_email_and_webhooks_has_both_channels(tmp_path: Path) -> None:
    """email and webhooks together: email first, then each webhook in the order listed."""
    user = ADA.replace('webhooks = ["lab-slack"]', 'email = "ada@example.org"\nwebhooks = ["lab-slack", "lab-matrix"]')
    (profile,) = load(tmp_path, HEAD + SLACK + MATRIX + user).profiles()
    assert profile.channels == ("email", "webhook:lab-slack", "webhook:lab-matrix")


def test_empty_email_is_fine_with_webhooks(tmp_path: Path) -> None:
    """email = "" is a webhook-only user too (the key written out, left empty)."""
    (profile,) = load(tmp_path, HEAD + SLACK + ADA + 'email = ""\n').profiles()
    assert profile.channels == ("webhook:lab-slack",)


def test_webhook_nobody_opted_into_warns(tmp_path: Path) -> None:
    """A [[webhooks]] table in no user's webhooks loads, with a warning at its name."""
    text = HEAD + SLACK + MATRIX + ADA
    config = load(tmp_path, text)
    (warning,) = config.warnings
    assert warning.path == "webhooks[1].name" and warning.line == line_of(text, 'name = "lab-matrix"')
    assert "in no user's webhooks" in warning.message


def test_unknown_webhook_name_is_a_config_error(tmp_path: Path) -> None:
    """Config.webhook names the unknown name and the defined ones."""
    config = load(tmp_path, HEAD + SLACK + ADA)
    with pytest.raises(ConfigError, match='no \\[\\[webhooks\\]\\] table is named "lab-slak"') as info:
        config.webhook("lab-slak")
    assert 'did you mean "lab-slack"' in info.value.message and '"lab-slack"' in info.value.hint


# ---------------------------------------------------------------------------------------------- refused


def test_email_is_still_required_without_webhooks(tmp_path: Path) -> None:
    """A user with neither email nor webhooks is refused at users[0].email, on the table's line."""
    text = HEAD + ADA.replace('webhooks = ["lab-slack"]\n', "")
    found = only(problems(tmp_path, text), "users[0].email")
    assert found.line == line_of(text, "[[users]]")
    assert found.message.startswith("expected an email address, got nothing (the key is required unless webhooks")
    text = HEAD + SLACK + ADA.replace('webhooks = ["lab-slack"]', 'webhooks = []\nemail = ""')
    found = only(problems(tmp_path, text), "users[0].email")
    assert found.line == line_of(text, 'email = ""') and 'got ""' in found.message


CASES = [
    # (what the webhook table gets, key path, start of the message, line needle)
    ('name = "a b"', "webhooks[0].name", "expected a name of letters, digits", 'name = "a b"'),
    (f'name = "{"w" * 65}"', "webhooks[0].name", "expected a name of at most 64 characters", 'name = "www'),
    ('kind = "teams"', "webhooks[0].kind", 'expected one of "slack", "discord", "matrix", "json"', "teams"),
    ("-kind", "webhooks[0].kind", "expected the kind of webhook", "[[webhooks]]"),
    ("-url_env", "webhooks[0].url_env", "expected the name of the variable holding the webhook URL", "[[webhooks]]"),
    ('url_env = ""', "webhooks[0].url_env", 'expected the name of the variable holding the webhook URL, such as "LAB_'
     'SLACK_WEBHOOK" (kind = "slack"), got ""', 'url_env = ""'),
    ('url_env = "1BAD"', "webhooks[0].url_env", "expected the name of an environment variable", "1BAD"),
    ('homeserver = "https://m.example.org"', "webhooks[0].homeserver", 'expected no homeserver (only kind = "matrix" '
     "uses it", "homeserver ="),
    ('room_id = "!a:b"', "webhooks[0].room_id", "expected no room_id", "room_id ="),
    ('token_env = "T"', "webhooks[0].token_env", "expected no token_env", "token_env ="),
    ("timeout = 0", "webhooks[0].timeout", "expected a number above 0 and up to 3600, got 0", "timeout = 0"),
    ("timeout = 3601", "webhooks[0].timeout", "expected a number above 0 and up to 3600", "timeout = 3601"),
    ('kind = "matrix"', "webhooks[0].homeserver", "expected the homeserver's https:// URL", "[[webhooks]]"),
    ('kind = "matrix"', "webhooks[0].room_id", "expected the room id", "[[webhooks]]"),
    ('kind = "matrix"', "webhooks[0].token_env", "expected the name of the variable holding the access token",
     "[[webhooks]]"),
    ('kind = "matrix"', "webhooks[0].url_env", 'expected no url_env (kind = "matrix" uses homeserver, room_id and '
     "token_env; remove url_env)", "url_env ="),
    ('extra = 1', "webhooks[0].extra", "expected one of name, kind, url_env", "extra ="),
]  # fmt: skip


@pytest.mark.parametrize(("change", "path", "expected", "needle"), CASES, ids=[f"{c[1]}:{c[0]}" for c in CASES])
def test_webhook_table_rules(tmp_path: Path, change: str, path: str, expected: str, needle: str) -> None:
    """Each rule of a [[webhooks]] table is reported at the key (or the table's line for a missing key)."""
    if change.startswith("-"):
        table = re.sub(rf"(?m)^{change[1:]} = .*\n", "", SLACK)
    else:
        key = change.split(" = ")[0]
        table = re.sub(rf"(?m)^{key} = .*$", change, SLACK) if f"\n{key} = " in SLACK else SLACK + change + "\n"
    text = HEAD + table + ADA
    found = only(problems(tmp_path, text), path)
    assert found.message.startswith(expected), found.message
    assert found.line == line_of(text, needle) and found.file == str(tmp_path / "config.toml")
    assert "unexpected" not in found.message


@pytest.mark.parametrize(("change", "path", "expected"), [
    ('homeserver = "http://matrix.example.org"', "webhooks[0].homeserver", "expected an absolute https:// URL, or "
     "http:// to a loopback host"),
    ('homeserver = "matrix.example.org"', "webhooks[0].homeserver", "expected an absolute https:// URL"),
    ('room_id = "abcdef:example.org"', "webhooks[0].room_id", 'expected a Matrix room id such as "!abcdef:'),
    ('room_id = "!abcdef"', "webhooks[0].room_id", 'expected a Matrix room id'),
    ('token_env = ""', "webhooks[0].token_env", "expected the name of the variable holding the access token"),
])  # fmt: skip
def test_matrix_table_rules(tmp_path: Path, change: str, path: str, expected: str) -> None:
    """homeserver (https, http only to loopback), room_id ("!" and ":") and token_env are checked on their line."""
    key = change.split(" = ")[0]
    text = HEAD + re.sub(rf"(?m)^{key} = .*$", change, MATRIX) + ADA.replace('"lab-slack"', '"lab-matrix"')
    found = only(problems(tmp_path, text), path)
    assert found.message.startswith(expected) and found.line == line_of(text, change)


def test_webhook_names_are_unique_ignoring_case(tmp_path: Path) -> None:
    """A second table named like the first (in any case) is refused at its name, naming the first."""
    text = HEAD + SLACK + SLACK.replace('"lab-slack"', '"Lab-Slack"') + ADA
    found = only(problems(tmp_path, text), "webhooks[1].name")
    assert found.line == line_of(text, '"Lab-Slack"')
    assert found.message == 'expected a unique name, got "Lab-Slack" (webhooks[0] has it already)'


def test_at_most_64_webhooks(tmp_path: Path) -> None:
    """More than 64 [[webhooks]] tables are refused at webhooks."""
    tables = "".join(SLACK.replace('"lab-slack"', f'"w{i}"') for i in range(65))
    found = only(problems(tmp_path, HEAD + tables + ADA.replace('"lab-slack"', '"w0"')), "webhooks")
    assert found.message == "expected at most 64 items, got 65"


def test_unknown_webhook_in_a_user_names_it_and_lists_the_defined_ones(tmp_path: Path) -> None:
    """users[i].webhooks naming no table: the unknown name, the defined names and the closest one."""
    text = HEAD + SLACK + MATRIX + ADA.replace('["lab-slack"]', '["lab-matrix", "lab-slak"]')
    found = only(problems(tmp_path, text), "users[0].webhooks")
    assert found.line == line_of(text, "webhooks = [")
    assert found.message == ('expected names of [[webhooks]] tables (defined: "lab-slack", "lab-matrix"; did you '
                             'mean "lab-slack"?), got the unknown name "lab-slak"')  # fmt: skip


def test_user_webhooks_without_any_table(tmp_path: Path) -> None:
    """Opting into a webhook when no [[webhooks]] table exists says so."""
    found = only(problems(tmp_path, HEAD + ADA), "users[0].webhooks")
    assert "no [[webhooks]] table is defined" in found.message and '"lab-slack"' in found.message


@pytest.mark.parametrize(("value", "expected"), [
    ('["lab-slack", "lab-slack"]', 'expected each value once, got "lab-slack" more than once'),
    ('"lab-slack"', 'expected an array of names of [[webhooks]] tables, got "lab-slack" (a string)'),
])  # fmt: skip
def test_user_webhooks_shape(tmp_path: Path, value: str, expected: str) -> None:
    """users[i].webhooks is an array of names, each at most once."""
    text = HEAD + SLACK + ADA.replace('["lab-slack"]', value)
    found = only(problems(tmp_path, text), "users[0].webhooks")
    assert found.message == expected and found.line == line_of(text, "webhooks =")


def test_check_and_run_refuse_a_webhook_problem_alike(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """`digest check` and `digest run` print the same located webhook problem, never an "unexpected" one."""
    from digest.app.cli import main

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("DIGEST_SECRET", "s" * 32)
    text = HEAD + SLACK.replace('kind = "slack"', 'kind = "matrix"') + ADA
    path = write(tmp_path, text)
    printed = []
    for command in (["check"], ["run", "--dry-run", "--no-fetch", "--out", str(tmp_path / "out")]):
        assert main(["--config", str(path), *command]) == 2
        printed.append(capsys.readouterr().err)
    assert printed[0] == printed[1] and "unexpected" not in printed[0]
    assert f"error: {path}:{line_of(text, 'url_env')}: webhooks[0].url_env: expected no url_env" in printed[0]


# ---------------------------------------------------------------------------------------------- secrets


def test_webhook_url_from_the_environment_and_the_env_file(tmp_path: Path) -> None:
    """The URL comes from the variable named by url_env: the process environment wins over the env file."""
    config = load(tmp_path, HEAD + SLACK + ADA)
    assert webhook_url(config, {"LAB_SLACK_WEBHOOK": SECRET_URL}, "lab-slack") == SECRET_URL
    write_env(tmp_path / "env", "LAB_SLACK_WEBHOOK=https://hooks.example.org/from-file\n")
    assert webhook_url(config, {}, "lab-slack") == "https://hooks.example.org/from-file"
    assert webhook_url(config, {"LAB_SLACK_WEBHOOK": SECRET_URL}, "lab-slack") == SECRET_URL
    assert webhook_token(config, {}, "lab-slack") is None


def test_webhook_url_may_be_http_on_loopback(tmp_path: Path) -> None:
    """http:// is fine to this machine (a local relay), with a query kept as written."""
    config = load(tmp_path, HEAD + SLACK + ADA)
    url = "http://127.0.0.1:9000/hook?wait=true"
    assert webhook_url(config, {"LAB_SLACK_WEBHOOK": url}, "lab-slack") == url


def test_matrix_url_is_the_homeserver_and_the_token_is_read(tmp_path: Path) -> None:
    """For matrix, webhook_url is the homeserver; webhook_token reads token_env (env file here)."""
    config = load(tmp_path, HEAD + MATRIX + ADA.replace('"lab-slack"', '"lab-matrix"'))
    assert webhook_url(config, {}, "lab-matrix") == "https://matrix.example.org"
    write_env(tmp_path / "env", "MATRIX_TOKEN=syt_token_123\n")
    assert webhook_token(config, {}, "lab-matrix") == "syt_token_123"


@pytest.mark.parametrize("env", [{}, {"LAB_SLACK_WEBHOOK": ""}])
def test_missing_webhook_url_names_the_variable_the_key_and_the_env_file(tmp_path: Path, env: dict[str, str]) -> None:
    """Unset or empty: a ConfigError naming the variable, webhooks[0].url_env and the env file to add it to."""
    config = load(tmp_path, HEAD + SLACK + ADA)
    with pytest.raises(ConfigError) as info:
        webhook_url(config, env, "lab-slack")
    message, env_file = info.value.message, str(tmp_path / "env")
    assert message.startswith("LAB_SLACK_WEBHOOK is empty" if env else "LAB_SLACK_WEBHOOK is not set")
    assert "webhooks[0].url_env (lab-slack)" in message and env_file in message
    assert f"LAB_SLACK_WEBHOOK=<the slack webhook URL> to {env_file}" in info.value.hint


def test_missing_matrix_token_names_token_env(tmp_path: Path) -> None:
    """A matrix webhook without its token: the error names MATRIX_TOKEN and webhooks[0].token_env."""
    config = load(tmp_path, HEAD + MATRIX + ADA.replace('"lab-slack"', '"lab-matrix"'))
    with pytest.raises(ConfigError, match=r"MATRIX_TOKEN is not set .*webhooks\[0\]\.token_env"):
        webhook_token(config, {}, "lab-matrix")
    with pytest.raises(ConfigError, match="spaces or control characters"):
        webhook_token(config, {"MATRIX_TOKEN": "syt_a\nInjected: header"}, "lab-matrix")


BAD_URLS = [
    SECRET_URL.replace("https", "http"),  # plaintext across the network
    SECRET_URL.replace("https", "ftp"),
    SECRET_URL.removeprefix("https://"),
    SECRET_URL + " trailing",
    SECRET_URL + "\n",
    "https://[::1" + SECRET_URL,
    SECRET_URL + "/" + "x" * 2000,
    SECRET_URL.replace("hooks", "hööks"),
]


@pytest.mark.parametrize("value", BAD_URLS, ids=range(len(BAD_URLS)))
def test_bad_webhook_url_is_refused_without_echoing_it(tmp_path: Path, value: str) -> None:
    """A URL that is not https:// (or http:// to loopback) is refused by webhook_url and by check, and no
    error shows any of it."""
    text = HEAD + SLACK + ADA
    config = load(tmp_path, text)
    env = {"LAB_SLACK_WEBHOOK": value, "DIGEST_SECRET": "s" * 32}
    with pytest.raises(ConfigError) as info:
        webhook_url(config, env, "lab-slack")
    (found,) = environment_problems(config, env)
    assert found.path == "webhooks[0].url_env" and found.line == line_of(text, "url_env")
    for shown in (info.value.message, info.value.hint, str(info.value), str(found)):
        assert "SECRETPART42" not in shown and "hooks.slack.com" not in shown
        assert "LAB_SLACK_WEBHOOK" in shown


def test_secret_pasted_into_the_config_is_never_echoed(tmp_path: Path) -> None:
    """A webhook URL pasted into url_env (or token_env) is refused without showing it, whatever the kind."""
    for table in (SLACK.replace('"LAB_SLACK_WEBHOOK"', f'"{SECRET_URL}"'),
                  SLACK.replace('kind = "slack"', 'kind = "matrix"').replace('"LAB_SLACK_WEBHOOK"', f'"{SECRET_URL}"'),
                  MATRIX.replace('"MATRIX_TOKEN"', f'"{SECRET_URL}"'),
                  SLACK + f'token_env = "{SECRET_URL}"\n'):  # fmt: skip
        found = problems(tmp_path, HEAD + table + ADA)
        assert found and not any("SECRETPART42" in str(p) for p in found), [str(p) for p in found]


# ---------------------------------------------------------------------------------------------- digest check


def test_check_reports_missing_webhook_variables_of_webhooks_in_use(tmp_path: Path) -> None:
    """environment_problems names the missing URL and token variables at their keys, only for webhooks that
    some user opted into, and nothing once they are set."""
    unused = SLACK.replace('"lab-slack"', '"unused"').replace("LAB_SLACK_WEBHOOK", "UNUSED_URL")
    text = HEAD + SLACK + MATRIX + unused + ADA.replace('["lab-slack"]', '["lab-slack", "lab-matrix"]')
    config = load(tmp_path, text)
    env = {"DIGEST_SECRET": "s" * 32}
    found = environment_problems(config, env)
    assert [(p.path, p.line) for p in found] == [
        ("webhooks[0].url_env", line_of(text, "LAB_SLACK_WEBHOOK")),
        ("webhooks[1].token_env", line_of(text, "token_env")),
    ]
    assert found[0].message.startswith("LAB_SLACK_WEBHOOK is not set") and str(tmp_path / "env") in found[0].message
    assert found[1].message.startswith("MATRIX_TOKEN is not set")
    write_env(tmp_path / "env", f"LAB_SLACK_WEBHOOK={SECRET_URL}\nMATRIX_TOKEN=syt_abc\n")
    assert environment_problems(config, env) == []


def test_check_command_reports_a_missing_webhook_url(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """`digest check` exits 2 naming the variable at webhooks[0].url_env; with it set, the config is ok."""
    from digest.app.cli import main

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("DIGEST_SECRET", "s" * 32)
    monkeypatch.delenv("LAB_SLACK_WEBHOOK", raising=False)
    text = HEAD + SLACK + ADA
    path = write(tmp_path, text)
    assert main(["--config", str(path), "check"]) == 2
    err = capsys.readouterr().err
    assert (
        f"error: {path.resolve()}:{line_of(text, 'url_env')}: webhooks[0].url_env: LAB_SLACK_WEBHOOK is not set" in err
    )
    monkeypatch.setenv("LAB_SLACK_WEBHOOK", SECRET_URL)
    assert main(["--config", str(path), "check"]) == 0
    assert "SECRETPART42" not in "".join(capsys.readouterr())


# ---------------------------------------------------------------------------------------------- the example


def _example_with_webhooks() -> str:
    """config.example.toml with its commented [[webhooks]] tables and ada's webhooks line switched on."""
    text = EXAMPLE.read_text(encoding="utf-8")
    text = re.sub(
        r"(?m)^# (\[\[webhooks\]\]$|(name|kind|url_env|timeout|homeserver|room_id|token_env) = )", r"\1", text
    )
    return text.replace('# webhooks = ["lab-slack"]', 'webhooks = ["lab-slack", "lab-discord", "lab-json", '
                        '"lab-matrix"]')  # fmt: skip


def test_example_documents_every_webhook_key() -> None:
    """Each [[webhooks]] key appears in config.example.toml as a commented '# key =' line, with all four kinds."""
    text = EXAMPLE.read_text(encoding="utf-8")
    assert all(re.search(rf"(?m)^# {key} = ", text) for key in WebhookSection.model_fields)
    assert {m for m in re.findall(r'(?m)^# kind = "(\w+)"', text)} == set(WEBHOOK_KINDS)
    assert re.search(r'(?m)^# webhooks = \["lab-slack"\]', text)


def test_example_webhooks_load_when_switched_on(tmp_path: Path) -> None:
    """Uncommented, the example's four webhooks load, ada opts into all four, and check finds their variables."""
    path = write(tmp_path, _example_with_webhooks())
    config = load_config(path, env={"XDG_DATA_HOME": str(tmp_path / "data")})
    assert [(h.name, h.kind) for h in config.webhooks] == [
        ("lab-slack", "slack"), ("lab-discord", "discord"), ("lab-json", "json"), ("lab-matrix", "matrix"),
    ]  # fmt: skip
    assert config.profiles()[0].channels[0] == "email" and len(config.profiles()[0].channels) == 5
    env = {"DIGEST_SECRET": "s" * 32, "LAB_SLACK_WEBHOOK": SECRET_URL, "LAB_DISCORD_WEBHOOK": SECRET_URL,
           "LAB_JSON_WEBHOOK": SECRET_URL, "MATRIX_TOKEN": "syt_abc"}  # fmt: skip
    assert environment_problems(config, env) == []
