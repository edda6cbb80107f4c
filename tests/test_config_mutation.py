"""Config mutations: whatever `digest check` accepts, `digest run --dry-run` completes; whatever it refuses is
refused with the file and the key named, never with an "unexpected" error.

The mutations are generated (seeded, so every run tries the same ones) from config.example.toml and from a
small two-user config, both pointing at a store in tmp_path that already holds one real dump. Both commands go
through the real CLI entry (`digest.app.cli.main`), in this process, so `check` and `run` load the config the way
they do for a user.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
import re
import shutil
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from digest.app.cli import main
from digest.config import DigestSection, FeedSection, MailSection, ServerSection, SmtpSection, UserSection

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config.example.toml"
DUMP = REPO / "tests" / "fixtures" / "000_f4e371e0c0016fc2.txt"
SECRET = "mutation-test-secret-0123456789"

SMALL = {
    "digest": {"store": "state/digest.db", "inbox": "inbox", "catchup_max_age_days": 7},
    "mail": {"sender": "digest@example.org", "unsubscribe_mailto": "unsubscribe@example.org"},
    "smtp": {"host": "127.0.0.1", "port": 2525, "security": "none", "timeout": 10},
    "feeds": {"output": "feeds"},
    "server": {"listen": "127.0.0.1:8099"},
    "users": [
        {"name": "ada", "email": "ada@example.org", "keywords": ["model", '"language model"'], "timezone": "UTC"},
        {"name": "grace", "email": "grace@example.org", "keywords": ["learning"], "cadence": "weekly",
         "weekday": "fri", "send_time": "16:30", "timezone": "America/New_York", "feed": True},
    ],
}  # fmt: skip

SECTIONS = {"digest": DigestSection, "mail": MailSection, "smtp": SmtpSection, "feeds": FeedSection,
            "server": ServerSection}  # fmt: skip

# Values tried on every key: wrong types, edges of numbers, odd strings, tables and arrays.
LONG = "x" * 5000
HUGE = ["a"] * 20_000
VALUES: list[Any] = [
    True, "text", 1.5, [], {}, 0, -1, 10**9, 1e9, math.inf, -math.inf, math.nan, "", LONG, "Ünïcødé ✓ 日本 👩‍🔬",
    {"a": {"b": 1}}, HUGE, 2**63 - 1, ["x", 1], "../../etc", "a\u2028b",
]  # fmt: skip
CRONS = ["0 0 29 2 *", "0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6 *", "0 0 29 2 mon", "*/0 * * * *", "0 7 * * 1",
         "0 7 * *", "99 7 * * *", "0 7 * * mon-fri", "0 7 L * *", "* * * * *", "0 0 1 1 *", "0 0 31 * *",
         "0 0 * * mon#5", "0 99999999999999999999 * * *", "0-59/7 0-23/5 * * *"]  # fmt: skip
ZONES = ["Europe", "Europe/", "europe/berlin", "UTC", "../../../etc/passwd", "Etc/GMT+14", "America", "posixrules",
         "zone1970.tab", "tzdata.zi", "Factory", "", "A" * 300, "Europe/Berlin\x00", "/etc/localtime"]  # fmt: skip


@dataclass
class Mutation:
    """One changed config: a label for failure reports, its TOML text and the key path it touches."""

    label: str
    text: str
    section: str  # the table a refusal must name ("digest", "users[1]"), "" for any; "feeds|users": either


@dataclass
class Outcome:
    """What the mutations did."""

    accepted: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- TOML out


def _string(value: str) -> str:
    text = json.dumps(value, ensure_ascii=False)
    # TOML wants every control character escaped, DEL included (JSON leaves it raw).
    return text.replace("\x7f", "\\u007f")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_string(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def to_toml(data: dict[str, Any]) -> str:
    """TOML for ``data``: plain keys first, then one [table] per section, then [[users]]."""
    lines = [f"{_string(k)} = {_value(v)}" for k, v in data.items() if not isinstance(v, dict) and k != "users"]
    for name, table in data.items():
        if isinstance(table, dict):
            lines += ["", f"[{name}]", *(f"{_string(k)} = {_value(v)}" for k, v in table.items())]
    users = data.get("users")
    if isinstance(users, list) and all(isinstance(u, dict) for u in users):
        for user in users:
            lines += ["", "[[users]]", *(f"{_string(k)} = {_value(v)}" for k, v in user.items())]
    elif "users" in data:
        lines.insert(0, f"users = {_value(users)}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- mutations


def _copy(data: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data))


def _set(base: dict[str, Any], section: str, user: int | None, key: str, value: Any) -> dict[str, Any]:
    data = _copy(base)
    table = data["users"][user] if user is not None else data.setdefault(section, {})
    table[key] = value
    return data


def _delete(base: dict[str, Any], section: str, user: int | None, key: str) -> dict[str, Any]:
    data = _copy(base)
    table = data["users"][user] if user is not None else data.get(section, {})
    table.pop(key, None)
    return data


def mutations(name: str, base: dict[str, Any], rng: random.Random, *, special: bool) -> Iterator[Mutation]:
    """Every key deleted, then set to a sample of VALUES (a different sample per key); with ``special`` also the
    cases of the issue (names, feed files, crons, zones, paths, nesting)."""
    slots: list[tuple[str, int | None, str]] = [(s, None, k) for s, m in SECTIONS.items() for k in m.model_fields]
    slots += [("users", 0, k) for k in UserSection.model_fields]
    for section, user, key in slots:
        where = f"users[{user}]" if user is not None else section
        present = key in (base["users"][user] if user is not None else base.get(section, {}))
        if present:
            yield Mutation(f"{name}: delete {where}.{key}", to_toml(_delete(base, section, user, key)), where)
        for value in rng.sample(VALUES, 5 if special else 3):
            shown = repr(value)[:40]
            yield Mutation(f"{name}: {where}.{key} = {shown}", to_toml(_set(base, section, user, key, value)), where)
    # Whole tables and the top level.
    for section in SECTIONS:
        data = _copy(base)
        data.pop(section, None)
        yield Mutation(f"{name}: delete [{section}]", to_toml(data), section)
        data = _copy(base)
        data[section] = 3
        yield Mutation(f"{name}: [{section}] = 3", to_toml(data), section)
    yield Mutation(f"{name}: no users", to_toml({k: v for k, v in base.items() if k != "users"}), "")
    yield Mutation(f"{name}: users = 3", to_toml({**base, "users": 3}), "users")
    yield Mutation(f"{name}: unknown top key", to_toml({**_copy(base), "extra": {"a": 1}}), "extra")
    if special:
        yield from _special(name, base)


def _special(name: str, base: dict[str, Any]) -> Iterator[Mutation]:
    # Names: duplicates (any case), reserved and colliding feed files, lengths, odd characters.
    first = base["users"][0]["name"]
    for value in (first, first.upper(), "all", "ALL", "a" * 64, "a" * 65, "a" * 300, "-", ".", "..", ".hidden",
                  "ä", "a/b", "a b", "con", "all.xml"):  # fmt: skip
        yield Mutation(f"{name}: users[1].name = {value[:20]!r}", to_toml(_set(base, "users", 1, "name", value)),
                       "users[1]")  # fmt: skip
    for value in ("ada.xml", "ADA.xml", "grace.xml", "all.xml", "x.xml", ".xml", "a/b.xml", "all", "A" * 200 + ".xml"):
        yield Mutation(f"{name}: global_feed = {value[:20]!r}", to_toml(_set(base, "feeds", None, "global_feed",
                                                                               value)), "feeds|users")  # fmt: skip
    for value in CRONS:
        data = _set(base, "users", 0, "cadence", "cron")
        data["users"][0].pop("send_time", None)
        data["users"][0].pop("weekday", None)
        data["users"][0]["cron"] = value
        yield Mutation(f"{name}: users[0].cron = {value[:30]!r}", to_toml(data), "users[0]")
        yield Mutation(f"{name}: server.schedule = {value[:30]!r}", to_toml(_set(base, "server", None, "schedule",
                                                                                    value)), "server")  # fmt: skip
    for value in ZONES:
        yield Mutation(f"{name}: users[0].timezone = {value[:30]!r}", to_toml(_set(base, "users", 0, "timezone",
                                                                                      value)), "users[0]")  # fmt: skip
        yield Mutation(f"{name}: server.timezone = {value[:30]!r}", to_toml(_set(base, "server", None, "timezone",
                                                                                    value)), "server")  # fmt: skip
    for value in (".", "/dev/null", "/", "state", "missing/deeper/digest.db", "inbox", "config.toml/x.db"):
        yield Mutation(f"{name}: store = {value!r}", to_toml(_set(base, "digest", None, "store", value)), "digest")
    for key, value in (("templates", "nope"), ("templates", "/dev/null"), ("templates", "."), ("inbox", "/dev/null"),
                       ("output", "config.toml"), ("env_file", "."), ("env_file", "missing-env")):  # fmt: skip
        section = "feeds" if key == "output" else "digest"
        yield Mutation(f"{name}: {key} = {value!r}", to_toml(_set(base, section, None, key, value)), section)
    for depth in (50, 150, 400, 2000):
        nested = "[" * depth + '"x"' + "]" * depth
        text = to_toml(base).replace("[[users]]\n", f"[[users]]\nkeywords_deep = {nested}\n", 1)
        yield Mutation(f"{name}: nested {depth}", text, "users[0]")
    yield from _webhook_mutations(name, base)


WEBHOOK = {"name": "lab", "kind": "slack", "url_env": "LAB_HOOK_URL", "timeout": 10}
MATRIX = {"kind": "matrix", "homeserver": "https://matrix.example.org", "room_id": "!a:example.org",
          "token_env": "LAB_MATRIX_TOKEN"}  # fmt: skip
# (label, keys set on the webhook table (None: removed), the table a refusal must name)
WEBHOOK_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("kind json", {"kind": "json"}, ""),
    ("kind discord", {"kind": "discord"}, ""),
    ("kind matrix", {**MATRIX, "url_env": None}, ""),
    ("kind matrix, url_env kept", MATRIX, "webhooks"),
    ("kind matrix, nothing else", {"kind": "matrix", "url_env": None}, "webhooks"),
    ("kind matrix, http homeserver", {**MATRIX, "url_env": None, "homeserver": "http://m.example.org"}, "webhooks"),
    ("kind matrix, loopback homeserver", {**MATRIX, "url_env": None, "homeserver": "http://127.0.0.1:8008"}, ""),
    ("kind matrix, bad room", {**MATRIX, "url_env": None, "room_id": "a:b"}, "webhooks"),
    ("kind teams", {"kind": "teams"}, "webhooks"),
    ("no kind", {"kind": None}, "webhooks"),
    ("no url_env", {"url_env": None}, "webhooks"),
    ("url_env unset", {"url_env": "NOT_SET_ANYWHERE"}, "webhooks"),
    ("url_env a URL", {"url_env": "https://hooks.example.org/secret"}, "webhooks"),
    ("slack with room_id", {"room_id": "!a:b"}, "webhooks"),
    ("name with a space", {"name": "a b"}, "webhooks|users"),
    ("other name", {"name": "other"}, "users"),
    ("timeout 0", {"timeout": 0}, "webhooks"),
    ("timeout inf", {"timeout": math.inf}, "webhooks"),
]


def _webhook_mutations(name: str, base: dict[str, Any]) -> Iterator[Mutation]:
    """A [[webhooks]] table that users[1] opts into, then each of its rules (and the users' side) broken once."""
    hooked = _copy(base)
    hooked["webhooks"] = [dict(WEBHOOK)]
    hooked["users"][1]["webhooks"] = ["lab"]
    yield Mutation(f"{name}: webhooks: users[1] opts in", to_toml(hooked), "")
    for label, change, section in WEBHOOK_CASES:
        data = _copy(hooked)
        data["webhooks"][0] = {k: v for k, v in {**WEBHOOK, **change}.items() if v is not None}
        yield Mutation(f"{name}: webhooks[0]: {label}", to_toml(data), section)
    for label, value in (("unknown", ["nope"]), ("twice", ["lab", "lab"]), ("a string", "lab"), ("none", [])):
        data = _copy(hooked)
        data["users"][1]["webhooks"] = value
        yield Mutation(f"{name}: users[1].webhooks {label}", to_toml(data), "users[1]")
    data = _copy(hooked)
    data["users"][0].pop("email")
    data["users"][0]["webhooks"] = ["lab"]
    yield Mutation(f"{name}: users[0] on the webhook only", to_toml(data), "users[0]")
    data = _copy(hooked)
    data["webhooks"].append({**WEBHOOK, "name": "LAB"})
    yield Mutation(f"{name}: webhooks: a second LAB", to_toml(data), "webhooks")
    for value in (3, [3], {"name": "lab"}):
        yield Mutation(f"{name}: webhooks = {value!r}", to_toml({**hooked, "webhooks": value}), "webhooks|users")


# ---------------------------------------------------------------------------------------------- running


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Path, dict[str, Any]]]]:
    """Two base configs (small, example), each in its own folder with a store that holds one real dump."""
    root = tmp_path_factory.mktemp("mutation")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_DATA_HOME", str(root / "xdg-data"))
        mp.setenv("XDG_CONFIG_HOME", str(root / "xdg-config"))
        mp.setenv("DIGEST_SECRET", SECRET)
        mp.delenv("DIGEST_CONFIG", raising=False)
        mp.delenv("DIGEST_SMTP_PASSWORD", raising=False)
        mp.chdir(root)
        bases = {}
        for name, data in (("small", SMALL), ("example", tomllib.loads(EXAMPLE.read_text("utf-8")))):
            folder = root / name
            (folder / "inbox").mkdir(parents=True)
            path = folder / "config.toml"
            path.write_text(to_toml(data), encoding="utf-8")
            if name == "example":  # its store and inbox are the defaults under XDG_DATA_HOME
                inbox = root / "xdg-data" / "paper-digest" / "inbox"
                inbox.mkdir(parents=True)
            else:
                inbox = folder / "inbox"
            shutil.copy(DUMP, inbox)
            code, _, err = cli(["--config", str(path), "ingest", str(inbox)])
            assert code == 0, err
            bases[name] = (path, data)
        yield bases


def cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def judge(mutation: Mutation, path: Path, out_dir: Path, outcome: Outcome) -> None:
    """Run check on one mutation; run --dry-run when it is accepted; note anything that breaks the rule."""
    path.write_text(mutation.text, encoding="utf-8")
    code, _, err = cli(["--config", str(path), "check"])
    if "unexpected" in err or "Traceback" in err:
        outcome.failures.append(f"{mutation.label}: check crashed: {err.strip()[:300]}")
        return
    if code == 0:
        outcome.accepted.append(mutation.label)
        shutil.rmtree(out_dir, ignore_errors=True)
        code, _, err = cli(["--config", str(path), "run", "--dry-run", "--no-fetch", "-q", "--out", str(out_dir)])
        if code != 0 or "unexpected" in err:
            outcome.failures.append(f"{mutation.label}: check accepted it, run --dry-run exited {code}: "
                                    f"{err.strip()[:300]}")  # fmt: skip
        return
    outcome.refused.append(mutation.label)
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    named = [line for line in lines if line.startswith(f"error: {path}")]
    if code != 2 or not named:
        outcome.failures.append(f"{mutation.label}: refused (exit {code}) without naming {path}: {err.strip()[:300]}")
        return
    keys = [m[1] for line in named if (m := re.match(rf"error: {re.escape(str(path))}(?::\d+)?: (\S+): ", line))]
    if not keys:
        outcome.failures.append(f"{mutation.label}: refused without a key path: {err.strip()[:300]}")
    elif mutation.section and not any(_under(k, mutation.section.split("|")) for k in keys):
        outcome.failures.append(f"{mutation.label}: refused at {keys}, not under {mutation.section}")  # fmt: skip


def _under(key: str, sections: list[str]) -> bool:
    return any(key == s or key.startswith((f"{s}.", f"{s}[")) for s in sections)


def test_every_config_check_accepts_runs(world: dict[str, tuple[Path, dict[str, Any]]], tmp_path: Path) -> None:
    """Each of a few hundred seeded config mutations is either refused by `digest check` naming the file and the
    key, or accepted and then completed by `digest run --dry-run` with exit code 0; none is "unexpected"."""
    rng = random.Random(20261206)
    outcome = Outcome()
    started = time.perf_counter()
    total = 0
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_DATA_HOME", str(world["small"][0].parent.parent / "xdg-data"))
        mp.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
        mp.setenv("DIGEST_SECRET", SECRET)
        mp.setenv("LAB_HOOK_URL", "https://hooks.example.org/services/secret")  # the webhook mutations' secrets
        mp.setenv("LAB_MATRIX_TOKEN", "syt_mutation_token")
        mp.delenv("DIGEST_CONFIG", raising=False)
        mp.chdir(tmp_path)
        for name, (path, data) in world.items():
            for mutation in mutations(name, data, rng, special=name == "small"):
                total += 1
                judge(mutation, path, tmp_path / "out", outcome)
        path.write_text(to_toml(data), encoding="utf-8")
    elapsed = time.perf_counter() - started
    print(f"\n{total} config mutations: {len(outcome.accepted)} accepted and run, {len(outcome.refused)} refused, "
          f"{elapsed:.1f} s")  # fmt: skip
    assert not outcome.failures, "\n".join(outcome.failures)
    assert total >= 300 and len(outcome.accepted) >= 50 and len(outcome.refused) >= 200
