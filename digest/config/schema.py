"""The TOML config: find it, validate every key at once (file:line: key path), hand out typed sections."""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shlex
import sys
import tomllib
import zoneinfo
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import platformdirs
from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, ValidationError, ValidationInfo
from pydantic import field_validator as _field_validator
from pydantic_core import PydanticCustomError

# config_errors never imports this module; the problem types, the env file and starter writers are re-exported here.
from digest.config.problems import (
    STARTER_CONFIG,
    ConfigProblem,
    ConfigValidationError,
    Loc,
    closest,
    located,
    pydantic_message,
    read_env_file,
    show,
    too_deep,
    write_env_file,
    write_starter_config,
)
from digest.deliver.net import is_loopback_host
from digest.errors import ConfigError, QueryError
from digest.models import Profile

__all__ = [
    "APP_NAME", "CONFIG_ENV", "ENV_FILE_NAME", "STARTER_CONFIG", "Config", "ConfigProblem", "ConfigValidationError",
    "DigestSettings", "FeedSettings", "MailSettings", "ServerSettings", "SmtpSettings", "UserSettings",
    "default_config_path", "environment", "environment_problems", "find_config_path", "load_config",
    "organization_warnings", "read_env_file", "secret", "smtp_password", "write_env_file", "write_starter_config",
]  # fmt: skip

log = logging.getLogger(__name__)

APP_NAME = "paper-digest"
CONFIG_ENV = "DIGEST_CONFIG"
ENV_FILE_NAME = "env"  # the env file's default name, beside the config file
MIN_SECRET_CHARS = 16


# ---------------------------------------------------------------------------------------------- validators


def _bad(message: str) -> PydanticCustomError:
    # The message goes through the context so braces in user text are never treated as format fields.
    return PydanticCustomError("config", "{text}", {"text": message})


def _no_controls(value: str) -> str:
    # C0, DEL, C1 and the Unicode line separators could all end up read as a header line break.
    if re.search("[\x00-\x1f\x7f-\x9f\u2028\u2029]", value):
        raise _bad(f"expected text without control characters or line breaks, got {show(value)}")
    return value


def _email(value: str) -> str:
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise _bad(f"expected an email address, got {show(value)} ({exc})") from None
    if not value.isascii():  # messages are sent without SMTPUTF8
        tip = f" such as {show(result.ascii_email)}" if result.ascii_email else ""
        raise _bad(f"expected an ASCII email address{tip}, got {show(value)}")
    return value  # never "repaired": what the user wrote is what gets sent


def _optional_email(value: str) -> str:
    return _email(value) if value else value


def _env_name(value: str) -> str:
    if value and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", value):
        # Never echo the value: people paste the secret itself here.
        raise _bad("expected the name of an environment variable (letters, digits, _; at most 128), got something "
                   "else (not shown, it may be a secret)")
    return value


def _required_env_name(value: str) -> str:
    if not value:
        raise _bad('expected the name of the variable holding the signing secret, such as "DIGEST_SECRET", got ""')
    return _env_name(value)


def _url(schemes: tuple[str, ...]) -> Any:
    def check(value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        plain = value.isascii() and not re.search(r"[\s<>,\"'\\\x00-\x1f\x7f]", value) and len(value) <= 200
        if parts.scheme not in schemes or not parts.hostname or parts.query or parts.fragment or not plain:
            expected = " or ".join(f"{s}://" for s in schemes)
            raise _bad(f"expected an absolute {expected} URL (ASCII, no spaces, query or fragment, at most "
                       f"200 characters), got {show(value)}")
        return value.rstrip("/")

    return check


@functools.cache
def _zone_names() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


def _timezone(value: str) -> str:
    from digest.config.cadence import zone  # imported late: cadence pulls in APScheduler

    try:
        zone(value)  # the same lookup the scheduler uses: a folder of the tz database ("Europe") is refused there
    except ConfigError:
        near = closest(value, _zone_names()) if len(value) <= 64 else None
        tip = f' (did you mean "{near}"?)' if near else ""
        raise _bad(f'expected an IANA time zone such as "Europe/Berlin"{tip}, got {show(value)}') from None
    return value


def _cron(value: str) -> str:
    if not value:
        return value
    from digest.config.cadence import cron_fires, parse_cron  # imported late: cadence pulls in APScheduler

    fields = value.split()
    if len(fields) != 5:
        raise _bad(f"expected a 5-field crontab expression (minute hour day month weekday), got {show(value)}")
    if re.search(r"\d", fields[4]):
        # APScheduler 3 counts weekdays from Monday = 0, crontab from Sunday = 0: names are unambiguous.
        raise _bad(f"expected weekday names (mon-sun) in the weekday field, got {show(fields[4])} "
                   "(APScheduler reads 0 as Monday, crontab as Sunday)")
    try:
        parse_cron(value, "UTC")
    except (ValueError, OverflowError) as exc:
        raise _bad(f"expected a valid crontab expression, got {show(value)} ({exc})") from None
    if not cron_fires(value):
        raise _bad(f"expected a crontab expression that fires, got {show(value)}, which matches no calendar date "
                   "(check the day and month fields, e.g. day 30 or 31 of February)")
    return value


def _hhmm(value: str) -> str:
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        raise _bad(f'expected a time "HH:MM" between 00:00 and 23:59, got {show(value)}')
    return value


def _listen(value: str) -> str:
    match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})", value)
    if not match or not 0 < int(match[2]) < 65536:
        raise _bad(f'expected "host:port" such as "127.0.0.1:8080" or "[::1]:8080", got {show(value)}')
    return value


def _list_id(value: str) -> str:
    label = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    if value and (not re.fullmatch(rf"{label}(\.{label})+", value) or len(value) > 253):
        raise _bad(f'expected a dot-atom list id such as "daily.digest.example.org", got {show(value)}')
    return value


MAX_USER_NAME = 64  # the name is part of file names (feeds, dry-run .eml files) and of unsubscribe links


def _user_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", value) or value in {".", ".."}:
        raise _bad(f"expected a name of letters, digits, '-', '_' and '.', got {show(value)}")
    if len(value) > MAX_USER_NAME:
        raise _bad(f"expected a name of at most {MAX_USER_NAME} characters (it is part of file names), got "
                   f"{len(value)} characters")
    return value


def _feed_file(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}\.xml", value):
        raise _bad(f'expected a file name ending in ".xml" (letters, digits, "-", "_", "."; starting with a letter '
                   f"or digit; at most 100 characters; no folders), got {show(value)}")
    return value


def _quoted(path: Path | None) -> str:
    return json.dumps(str(path), ensure_ascii=False)  # in full: show() would cut the end, the part that matters


def _checked(check: Any) -> Any:
    """``check`` run on a path, with what the file system says about a path it cannot take as a problem."""

    def run(value: Path | None) -> Any:
        try:
            return check(value)
        except OSError as exc:
            raise _bad(f"expected a path this system accepts, got {_quoted(value)} ({exc.strerror or exc})") from None

    return run


def _store_file(value: Path) -> Path:
    if value.is_dir():
        raise _bad(f"expected the path of the SQLite store file, got the folder {_quoted(value)} (name a file in "
                   'it, such as "digest.db")')
    if value.exists() and not value.is_file():
        raise _bad(f"expected the path of a regular file for the SQLite store, got {_quoted(value)}, which is "
                   'a device or other special file (name a file such as "digest.db")')
    return _creatable(value)


def _folder(value: Path | None) -> Path | None:
    """An output or input folder: it may be missing (it is made when needed), but must not be a file."""
    if value is not None and value.exists() and not value.is_dir():
        raise _bad(f"expected a folder, got {_quoted(value)}, which is a file (name a folder)")
    return value if value is None else _creatable(value)


def _existing_folder(value: Path | None) -> Path | None:
    if value is not None and not value.is_dir():
        what = "a file" if value.exists() else "missing"
        raise _bad(f"expected an existing folder, got {_quoted(value)}, which is {what} (create it, or remove "
                   "the key to use the built-in templates)")
    return value


def _creatable(value: Path) -> Path:
    """``value`` itself, when the nearest existing folder above it is a folder (so missing folders can be made)."""
    parent = value.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise _bad(f"expected a path whose folders exist or can be made, got {_quoted(value)} ({parent} is a "
                   "file)")
    return value


def _query(value: str) -> str:
    if not value.strip():
        raise _bad("expected a query, got an empty string")
    from digest.matching.match import parse_query  # imported late: the matcher pulls in pyahocorasick

    try:
        parse_query(value)
    except QueryError as exc:
        # The matcher's message may draw a caret on extra lines; a problem is one line.
        why = exc.message.splitlines()[0].rstrip(":")
        if exc.position is not None and "at character" not in why:
            why += f" at character {exc.position + 1}"
        raise _bad(f"expected a valid query, got {show(value)} ({why}{'; ' + exc.hint if exc.hint else ''})") \
            from None
    return value


def _at_most(limit: int) -> Any:
    def check(values: tuple[Any, ...]) -> tuple[Any, ...]:
        if len(values) > limit:
            raise _bad(f"expected at most {limit} items, got {len(values)}")
        return values

    return check


def _short(limit: int) -> Any:
    def check(value: str) -> str:
        if len(value) > limit:
            raise _bad(f"expected at most {limit} characters, got {len(value)}")
        return value

    return check


def _unique(values: tuple[str, ...]) -> tuple[str, ...]:
    dups = sorted({v for v in values if values.count(v) > 1})
    if dups:
        raise _bad(f"expected each value once, got {', '.join(show(d) for d in dups)} more than once")
    return values


Text = Annotated[str, AfterValidator(_no_controls), AfterValidator(_short(200))]
Email = Annotated[str, AfterValidator(_email)]
EnvName = Annotated[str, AfterValidator(_env_name)]
TimeZone = Annotated[str, AfterValidator(_timezone)]
Cron = Annotated[str, AfterValidator(_short(200)), AfterValidator(_cron)]
Query = Annotated[str, AfterValidator(_short(1000)), AfterValidator(_query)]
# TOML arrays arrive as lists; tuples keep the frozen sections hashable. Items stay strict.
MAX_QUERIES = 1000
Queries = Annotated[tuple[Query, ...], Strict(False), AfterValidator(_at_most(MAX_QUERIES))]
Texts = Annotated[tuple[Text, ...], Strict(False), AfterValidator(_at_most(MAX_QUERIES))]
# Every number has an upper bound and no inf/nan: each one ends up in date arithmetic or a timeout.
MAX_DAYS = 3650
Days = Annotated[int, Field(ge=0, le=MAX_DAYS)]
Seconds = Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)]
Formats = Annotated[tuple[Literal["html", "markdown", "text"], ...], Strict(False), Field(min_length=1),
                    AfterValidator(_unique)]


def _platform_dir(kind: Literal["config", "data"], env: Mapping[str, str]) -> Path:
    """The per-user folder for ``kind``; an XDG_*_HOME in ``env`` wins over the process environment."""
    xdg = env.get(f"XDG_{kind.upper()}_HOME", "").strip()
    if xdg and sys.platform not in ("win32", "darwin"):
        return Path(xdg) / APP_NAME
    return Path(platformdirs.user_config_dir(APP_NAME) if kind == "config" else platformdirs.user_data_dir(APP_NAME))


def _path(value: Any, info: ValidationInfo, default: str | None) -> Any:
    """Resolve a path against the config file's folder; "" means the default under the data dir."""
    ctx = info.context or {}
    if value == "" or value is None:
        if default is None:
            return None
        return _platform_dir("data", ctx.get("env", {})) / default
    if isinstance(value, str):
        path = Path(value).expanduser()
        return path if path.is_absolute() else (Path(ctx.get("base", ".")) / path).resolve()
    return value  # not a string: let the type check report it


# ---------------------------------------------------------------------------------------------- schema


class _Section(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class DigestSettings(_Section):
    """`[digest]`: where state lives and global behaviour."""

    store: Annotated[Path, AfterValidator(_checked(_store_file))] = Field("", validate_default=True)
    inbox: Annotated[Path, AfterValidator(_checked(_folder))] = Field("", validate_default=True)
    templates: Annotated[Path | None, AfterValidator(_checked(_existing_folder))] = Field("", validate_default=True)
    base_url: Annotated[str, AfterValidator(_url(("https",)))] = ""
    secret_env: Annotated[str, AfterValidator(_required_env_name)] = "DIGEST_SECRET"
    env_file: Path = Field("", validate_default=True)
    abstract_chars: int = Field(600, ge=50, le=100_000)
    thumbnails: bool = False
    catchup_max_age_days: Days = 7
    backfill_days: Days = 7
    keep_sent_days: Days = 7
    source_url: Annotated[str, AfterValidator(_url(("https", "http")))] = ""
    fetch_timeout: Seconds = 30

    @_field_validator("store", "inbox", "templates", "env_file", mode="before")
    @classmethod
    def _paths(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name == "env_file" and value in ("", None):  # default: beside the config file
            return Path((info.context or {}).get("base", ".")).resolve() / ENV_FILE_NAME
        defaults = {"store": "digest.db", "inbox": "inbox", "templates": None, "env_file": None}
        return _path(value, info, defaults[info.field_name or ""])


class MailSettings(_Section):
    """`[mail]`: the From address and list headers."""

    sender: Email = Field(description="an email address")
    sender_name: Text = "Paper Digest"
    list_id: Annotated[str, AfterValidator(_list_id)] = ""  # "" = "paper-digest.<sender domain>"
    unsubscribe_mailto: Annotated[str, AfterValidator(_optional_email)] = ""


class SmtpSettings(_Section):
    """`[smtp]`: the submission server; the password comes from the variable named by ``password_env``."""

    host: Annotated[str, Field(min_length=1, pattern=r"^[^\s/]+$")] = "localhost"
    port: int = Field(587, ge=1, le=65535)  # 465 when security = "tls" and port is not given
    security: Literal["tls", "starttls", "none"] = "starttls"
    username: Text = ""
    password_env: EnvName = "DIGEST_SMTP_PASSWORD"
    allow_insecure: bool = False
    timeout: Seconds = 30
    max_connections: int = Field(4, ge=1, le=64)
    max_retry_age_hours: float = Field(48, ge=0, le=24 * MAX_DAYS, allow_inf_nan=False)


class FeedSettings(_Section):
    """`[feeds]`: where Atom files go and the URL they are served from."""

    output: Annotated[Path, AfterValidator(_checked(_folder))] = Field("", validate_default=True)
    base_url: Annotated[str, AfterValidator(_url(("https", "http")))] = ""  # "" = digest.base_url + "/feeds"
    global_feed: Annotated[str, AfterValidator(_feed_file)] = "all.xml"
    max_entries: int = Field(100, ge=1, le=10_000)

    @_field_validator("output", mode="before")
    @classmethod
    def _paths(cls, value: Any, info: ValidationInfo) -> Any:
        return _path(value, info, "feeds")


class ServerSettings(_Section):
    """`[server]`: what `digest serve` listens on and when it runs."""

    listen: Annotated[str, AfterValidator(_listen)] = "127.0.0.1:8080"
    schedule: Annotated[Cron, Field(min_length=1)] = "0 7 * * *"
    timezone: TimeZone = "UTC"

    @property
    def listen_address(self) -> tuple[str, int]:
        """``listen`` split into (host, port), IPv6 brackets removed."""
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class UserSettings(_Section):
    """One `[[users]]` table: a subscriber and their profile."""

    name: Annotated[str, AfterValidator(_user_name)] = Field(description="a unique name")
    email: Email = Field(description="an email address")
    display_name: Text = ""
    keywords: Queries = ()
    exclude: Queries = ()
    min_upvotes: int = Field(0, ge=0, le=1_000_000_000)
    organizations: Texts = ()
    organizations_mode: Literal["boost", "only"] = "boost"
    max_papers: int = Field(20, ge=1, le=500)
    min_score: float = Field(0.0, ge=0, le=1_000_000, allow_inf_nan=False)
    cadence: Literal["daily", "weekly", "cron"] = "daily"
    weekday: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = "mon"
    cron: Cron = ""
    send_time: Annotated[str, AfterValidator(_hhmm)] = "07:00"
    timezone: TimeZone = "UTC"
    formats: Formats = ("html", "markdown")
    feed: bool = True

    def profile(self) -> Profile:
        """This user as the ``Profile`` the matcher and renderer use."""
        cadence = {"daily": "daily", "weekly": f"weekly:{self.weekday}", "cron": f"cron:{self.cron}"}[self.cadence]
        return Profile(
            name=self.name, email=self.email, keywords=self.keywords, exclude=self.exclude,
            min_upvotes=self.min_upvotes, organizations=self.organizations,
            organizations_mode=self.organizations_mode, max_papers=self.max_papers, min_score=self.min_score,
            cadence=cadence, timezone=self.timezone, send_time=self.send_time, formats=self.formats,
            feed=self.feed, display_name=self.display_name or None,
        )


class _File(_Section):
    digest: DigestSettings = Field(default_factory=dict, validate_default=True)  # type: ignore[arg-type]
    mail: MailSettings = Field(description="a [mail] table with at least sender")
    smtp: SmtpSettings = Field(default_factory=dict, validate_default=True)  # type: ignore[arg-type]
    feeds: FeedSettings = Field(default_factory=dict, validate_default=True)  # type: ignore[arg-type]
    server: ServerSettings = Field(default_factory=dict, validate_default=True)  # type: ignore[arg-type]
    users: Annotated[tuple[UserSettings, ...], Strict(False)] = Field((), description="[[users]] tables")


@dataclass(frozen=True, slots=True)
class Config:
    """A validated config: every section typed, every path absolute, defaults filled in."""

    path: Path
    digest: DigestSettings
    mail: MailSettings
    smtp: SmtpSettings
    feeds: FeedSettings
    server: ServerSettings
    users: tuple[UserSettings, ...]
    warnings: tuple[ConfigProblem, ...] = ()  # valid but risky settings, e.g. a send time in the DST window

    def profiles(self) -> tuple[Profile, ...]:
        """Every user as a ``digest.models.Profile``, in file order."""
        return tuple(u.profile() for u in self.users)


# ---------------------------------------------------------------------------------------------- cross-key checks


def _cross_checks(raw: dict[str, Any]) -> Iterator[tuple[Loc, str]]:
    """Rules spanning several keys, checked on the raw TOML so they are reported alongside type errors."""
    digest, mail, smtp = raw.get("digest", {}), raw.get("mail"), raw.get("smtp")
    if isinstance(mail, dict) and isinstance(digest, dict) and not mail.get("unsubscribe_mailto") \
            and not digest.get("base_url"):
        # Mail never goes out without one (compose refuses): check must not accept what every run would refuse.
        yield ("mail", "unsubscribe_mailto"), "expected an unsubscribe address, or [digest].base_url for one-click " \
            "links, got neither (every digest needs a way to unsubscribe)"
    if isinstance(smtp, dict):
        host, security = smtp.get("host", "localhost"), smtp.get("security", "starttls")
        if security == "none" and isinstance(host, str) and not is_loopback_host(host) \
                and smtp.get("allow_insecure") is not True:
            yield ("smtp", "security"), f'expected "starttls" or "tls" for the non-loopback host {show(host)} ' \
                '(or allow_insecure = true), got "none"'
        if smtp.get("username") and smtp.get("password_env", "DIGEST_SMTP_PASSWORD") == "":
            yield ("smtp", "password_env"), "expected the name of the variable holding the password " \
                '(username is set), got ""'
    users = raw.get("users")
    if not isinstance(users, list):
        return
    seen: dict[str, int] = {}
    for i, user in enumerate(users):
        if not isinstance(user, dict):
            continue
        name = user.get("name")
        if isinstance(name, str) and name:
            if name.casefold() in seen:
                yield ("users", i, "name"), f"expected a unique name, got {show(name)} " \
                    f"(users[{seen[name.casefold()]}] has it already)"
            seen.setdefault(name.casefold(), i)
        cadence = user.get("cadence", "daily")
        if cadence == "cron" and not user.get("cron"):
            yield ("users", i, "cron"), 'expected a crontab expression (cadence = "cron"), got nothing'
        if user.get("cron") and cadence in ("daily", "weekly"):
            yield ("users", i, "cron"), f'expected no cron (cadence = "{cadence}"), got {show(user["cron"])}'
        if "weekday" in user and cadence in ("daily", "cron"):
            yield ("users", i, "weekday"), f'expected no weekday (cadence = "{cadence}"; use "weekly"), ' \
                f"got {show(user['weekday'])}"
        if "send_time" in user and cadence == "cron":
            yield ("users", i, "send_time"), "expected no send_time (the cron expression sets the time), " \
                f"got {show(user['send_time'])}"
        orgs_only = user.get("organizations_mode") == "only" and user.get("organizations")
        if user.get("keywords", []) == [] and not orgs_only:
            yield ("users", i, "keywords"), "expected at least one query (or organizations with " \
                'organizations_mode = "only"), got none'
    yield from _feed_collisions(raw, users)


def _feed_collisions(raw: dict[str, Any], users: list[Any]) -> Iterator[tuple[Loc, str]]:
    """Two feeds written to one file (compared without case: macOS and Windows file systems ignore it)."""
    from digest.render.atom import feed_file  # imported late: the feed writer pulls in lxml

    feeds = raw.get("feeds")
    global_feed = feeds.get("global_feed", "all.xml") if isinstance(feeds, dict) else "all.xml"
    taken: dict[str, str] = {}
    if isinstance(global_feed, str):
        taken[global_feed.casefold()] = f"[feeds].global_feed = {show(global_feed)}"
    names: set[str] = set()
    for i, user in enumerate(users):
        name = user.get("name") if isinstance(user, dict) else None
        if not isinstance(name, str) or name.casefold() in names or user.get("feed", True) is not True:
            continue  # a second user of the same name is reported as such
        names.add(name.casefold())
        try:
            _user_name(name)
        except PydanticCustomError:
            continue  # reported by the schema
        file = feed_file(name)
        other = taken.setdefault(file.casefold(), f"users[{i}] ({show(name)})")
        if other != f"users[{i}] ({show(name)})":
            yield ("users", i, "name"), f"expected a name whose feed file is free, got {show(name)}: its feed " \
                f"{file} is also the feed of {other} (rename one, set feed = false, or pick another " \
                "[feeds].global_feed)"


def _warnings(parsed: _File) -> Iterator[tuple[Loc, str]]:
    """Settings that are valid but will bite: a send time in the DST window."""
    for i, user in enumerate(parsed.users):
        zone = zoneinfo.ZoneInfo(user.timezone)
        jan, jul = (datetime(2026, m, 1, tzinfo=zone).utcoffset() for m in (1, 7))
        if user.cadence != "cron" and jan != jul and "01:00" <= user.send_time < "04:00":
            yield ("users", i, "send_time"), f"{user.send_time} is inside the {user.timezone} DST change " \
                "window (01:00-03:59): on change days it may fire twice or not at all"


# ---------------------------------------------------------------------------------------------- loading


def load_config(path: Path, *, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate ``path``; raise ``ConfigValidationError`` listing every problem at once."""
    env = os.environ if env is None else env
    file = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {file} not found",
                          "check the path, or run `digest init` to write a starter config") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc.strerror}", "check the path and permissions") \
            from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigValidationError([ConfigProblem(file, line, "", "expected UTF-8 text, got bytes that are "
                                                   "not UTF-8")]) from None
    try:
        raw = tomllib.loads(text)
    except RecursionError:
        raise ConfigValidationError([too_deep(file, text)],
                                    "flatten the nesting (no setting needs more than one level of arrays)") from None
    except tomllib.TOMLDecodeError as exc:
        where = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        what = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", str(exc))
        line = int(where[1]) if where else text.count("\n") + 1
        col = f" at column {where[2]}" if where else ""
        raise ConfigValidationError([ConfigProblem(file, line, "", f"expected valid TOML, got {what}{col}")],
                                    "fix the TOML syntax (https://toml.io)") from None

    found: list[tuple[Loc, str]] = []
    parsed: _File | None = None
    try:
        parsed = _File.model_validate(raw, context={"base": Path(path).resolve().parent, "env": env})
    except ValidationError as exc:
        found += [(tuple(e["loc"]), pydantic_message(e, _File)) for e in exc.errors(include_url=False)]
    found += [p for p in _cross_checks(raw) if p not in found]
    if found or parsed is None:
        raise ConfigValidationError(located(file, text, found))

    mail = parsed.mail
    if not mail.list_id:
        mail = mail.model_copy(update={"list_id": f"paper-digest.{mail.sender.rpartition('@')[2].lower()}"})
    smtp = parsed.smtp
    if "port" not in smtp.model_fields_set and smtp.security != "starttls":
        smtp = smtp.model_copy(update={"port": 465 if smtp.security == "tls" else 25})
    feeds = parsed.feeds
    if not feeds.base_url and parsed.digest.base_url:
        feeds = feeds.model_copy(update={"base_url": parsed.digest.base_url + "/feeds"})
    warnings = tuple(located(file, text, list(_warnings(parsed))))
    for warning in warnings:
        log.info("config warning: %s", warning)  # the CLI shows them (Config.warnings); logged once, not twice
    return Config(path=Path(path).resolve(), digest=parsed.digest, mail=mail, smtp=smtp, feeds=feeds,
                  server=parsed.server, users=parsed.users, warnings=warnings)


def default_config_path(env: Mapping[str, str]) -> Path:
    """Where `digest init` writes and the search ends: the platform config dir's config.toml."""
    return _platform_dir("config", env) / "config.toml"


def default_store_path(env: Mapping[str, str]) -> Path:
    """The store used when no config names one: the platform data dir's digest.db."""
    return _platform_dir("data", env) / "digest.db"


def find_config_path(cli_value: str | None, env: Mapping[str, str]) -> Path:
    """The config file: ``--config``, then ``$DIGEST_CONFIG``, then the platform config dir."""
    for value, origin in ((cli_value, "--config"), (env.get(CONFIG_ENV), f"${CONFIG_ENV}")):
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise ConfigError(f"config file {path} (from {origin}) not found",
                                  f"check {origin}, or run `digest init {path}` to write a starter config there")
            return path
    path = default_config_path(env)
    if not path.is_file():
        raise ConfigError(f"no config file: not given with --config or ${CONFIG_ENV}, and {path} does not exist",
                          f"run `digest init` to write a starter config to {path}")
    return path


# ---------------------------------------------------------------------------------------------- secrets


def environment(config: Config, env: Mapping[str, str]) -> dict[str, str]:
    """The variables secrets are read from: the env file ([digest].env_file), overridden by ``env`` (the real
    process environment wins). cron, systemd and manual runs all read secrets through this one function."""
    required = "env_file" in config.digest.model_fields_set
    return {**read_env_file(config.digest.env_file, required=required), **env}


def _looked(config: Config, name: str, env: Mapping[str, str]) -> str:
    path = config.digest.env_file
    if name in env:
        return f"(from the process environment, which wins over {path})"
    return f"(looked in the environment and in {path}{'' if path.exists() else ', which does not exist'})"


def _secret_problem(config: Config, merged: Mapping[str, str], env: Mapping[str, str]) -> tuple[str, str] | None:
    """(what is wrong, how to fix it) with the signing secret, or None."""
    name, path = config.digest.secret_env, shlex.quote(str(config.digest.env_file))
    if not name:
        return "no signing secret configured", "set [digest].secret_env to the name of a variable, e.g. DIGEST_SECRET"
    value = merged.get(name, "")
    if len(value) >= MIN_SECRET_CHARS:
        return None
    problem = "is not set" if not value else f"is shorter than {MIN_SECRET_CHARS} characters"
    fix = "unset it there or set it to 16+ random characters" if name in env else \
        (f"add a line {name}=<16+ random characters> to {path} (mode 600): (umask 077; python3 -c 'import secrets; "
         f"print(\"{name}=\" + secrets.token_urlsafe(32))' >> {path}); keep it stable, it signs message ids")
    return f"{name} {problem} {_looked(config, name, env)}", fix


def _password_problem(config: Config, merged: Mapping[str, str], env: Mapping[str, str]) -> tuple[str, str] | None:
    """(what is wrong, how to fix it) with the SMTP password, or None (also when no username is set)."""
    name = config.smtp.password_env
    if not config.smtp.username or (name and merged.get(name)):
        return None
    if not name:
        return "[smtp].username is set but no password variable", "set [smtp].password_env, or clear [smtp].username"
    problem = "is empty" if name in merged else "is not set"
    return (f"[smtp].username is set but {name} {problem} {_looked(config, name, env)}",
            f"add a line {name}=<the password> to {shlex.quote(str(config.digest.env_file))} (mode 600), "
            "or clear [smtp].username")


def secret(config: Config, env: Mapping[str, str]) -> bytes:
    """The signing secret from the variable named by ``[digest].secret_env`` (environment, then env file)."""
    merged = environment(config, env)
    problem = _secret_problem(config, merged, env)
    if problem:
        raise ConfigError(f"{problem[0]}; the variable is named by [digest].secret_env in {config.path}", problem[1])
    return merged[config.digest.secret_env].encode("utf-8")


def smtp_password(config: Config, env: Mapping[str, str]) -> str | None:
    """The SMTP password from the variable named by ``[smtp].password_env`` (environment, then env file); None
    when no username is set."""
    if not config.smtp.username:
        return None
    merged = environment(config, env)
    problem = _password_problem(config, merged, env)
    if problem:
        raise ConfigError(f"{problem[0]}; the variable is named by [smtp].password_env in {config.path}", problem[1])
    return merged[config.smtp.password_env]


def _config_text(config: Config) -> str:
    try:
        return config.path.read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def environment_problems(config: Config, env: Mapping[str, str]) -> list[ConfigProblem]:
    """What `digest check` reports about secrets: an unreadable env file, a missing or short signing secret, a
    missing SMTP password; each problem says which variable, which env file was read and how to fix it."""
    found: list[tuple[Loc, str]] = []
    try:
        merged = environment(config, env)
    except ConfigValidationError as exc:  # lines of the env file that are not KEY=VALUE
        return exc.problems
    except ConfigError as exc:  # the env file is unreadable or refused: the secrets cannot be judged yet
        return located(str(config.path), _config_text(config), [(("digest", "env_file"), f"{exc.message}: {exc.hint}")])
    for loc, problem in ((("digest", "secret_env"), _secret_problem(config, merged, env)),
                         (("smtp", "password_env"), _password_problem(config, merged, env))):
        if problem:
            found.append((loc, f"{problem[0]}: {problem[1]}"))
    return located(str(config.path), _config_text(config), found)


def organization_warnings(config: Config, seen: Iterable[str]) -> list[ConfigProblem]:
    """Configured organizations that match no name ``seen`` in the store (handles and display names, compared
    without case, spaces or punctuation), and "only" profiles that can therefore only be empty."""
    from digest.matching.match import compact_org  # imported late: the matcher pulls in pyahocorasick

    names = sorted(set(seen))
    known = {compact_org(name) for name in names}
    none_yet = "" if names else " (no stored paper has an organization yet: dumps before 2025-10 carry none)"
    found: list[tuple[Loc, str]] = []
    for i, user in enumerate(config.users):
        missing = [j for j, org in enumerate(user.organizations) if compact_org(org) not in known]
        for j in missing:
            near = closest(user.organizations[j], names)
            tip = f' (did you mean "{near}"?)' if near else ""
            found.append((("users", i, "organizations", j), f"{show(user.organizations[j])} was never seen in the "
                          f"store as an organization name or display name{tip}{none_yet}"))
        if user.organizations_mode == "only" and user.organizations and len(missing) == len(user.organizations):
            found.append((("users", i, "organizations_mode"), '"only", and none of these organizations was ever '
                          "seen in the store: this digest stays empty until a dump lists one of them"))
    return located(str(config.path), _config_text(config), found) if found else []
