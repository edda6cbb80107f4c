"""Checks of single values, each an AfterValidator raising a "config" error ("<expected>, got <found>"), and the
annotated types the sections are built from."""

from __future__ import annotations

import functools
import json
import re
import zoneinfo
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, Field, Strict
from pydantic_core import PydanticCustomError

from digest.config.problems import closest, show
from digest.deliver.net import is_loopback_host
from digest.errors import ConfigError, QueryError

__all__ = [
    "MAX_DAYS", "MAX_NAME", "MAX_QUERIES", "MAX_WEBHOOKS", "ClockTime", "Cron", "Days", "Email", "EnvName",
    "ExistingFolder", "FeedFile", "Folder", "Formats", "HttpUrl", "HttpsUrl", "ListId", "Listen", "LocalHttpUrl",
    "OptionalEmail", "Queries", "RoomId", "Seconds", "SecretEnvName", "StoreFile", "Text", "Texts", "TimeZone",
    "UserName", "WebhookName", "WebhookNames",
]  # fmt: skip


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
        raise _bad(
            "expected the name of an environment variable (letters, digits, _; at most 128), got something "
            "else (not shown, it may be a secret)"
        )
    return value


def _required_env_name(value: str) -> str:
    if not value:
        raise _bad('expected the name of the variable holding the signing secret, such as "DIGEST_SECRET", got ""')
    return _env_name(value)


def _url(schemes: tuple[str, ...], *, loopback_http: bool = False) -> Any:
    """An absolute URL with one of ``schemes``; with ``loopback_http`` also http:// to a loopback host."""

    def check(value: str) -> str:
        if not value:
            return value
        plain = value.isascii() and not re.search(r"[\s<>,\"'\\\x00-\x1f\x7f]", value) and len(value) <= 200
        try:
            parts = urlsplit(value)
            host = parts.hostname
        except ValueError:  # an unclosed IPv6 bracket
            parts, host = urlsplit(""), None
        scheme_ok = parts.scheme in schemes or (loopback_http and parts.scheme == "http" and bool(host)
                                                and is_loopback_host(host or ""))  # fmt: skip
        if not scheme_ok or not host or parts.query or parts.fragment or not plain:
            expected = " or ".join(f"{s}://" for s in schemes)
            loopback = ", or http:// to a loopback host such as localhost," if loopback_http else ""
            raise _bad(
                f"expected an absolute {expected} URL{loopback} (ASCII, no spaces, query or fragment, at "
                f"most 200 characters), got {show(value)}"
            )
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
        raise _bad(
            f"expected weekday names (mon-sun) in the weekday field, got {show(fields[4])} "
            "(APScheduler reads 0 as Monday, crontab as Sunday)"
        )
    try:
        parse_cron(value, "UTC")
    except (ValueError, OverflowError) as exc:
        raise _bad(f"expected a valid crontab expression, got {show(value)} ({exc})") from None
    if not cron_fires(value):
        raise _bad(
            f"expected a crontab expression that fires, got {show(value)}, which matches no calendar date "
            "(check the day and month fields, e.g. day 30 or 31 of February)"
        )
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


MAX_NAME = 64  # a user's name is part of file names (feeds, dry-run .eml files) and of unsubscribe links


def _name(value: str, why: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", value) or value in {".", ".."}:
        raise _bad(f"expected a name of letters, digits, '-', '_' and '.', got {show(value)}")
    if len(value) > MAX_NAME:
        raise _bad(f"expected a name of at most {MAX_NAME} characters ({why}), got {len(value)} characters")
    return value


def _user_name(value: str) -> str:
    return _name(value, "it is part of file names")


def _webhook_name(value: str) -> str:
    return _name(value, "it names the channel in the store")


def _room_id(value: str) -> str:
    # A Matrix room id: "!opaque:server", at most 255 bytes (the Matrix spec's limit).
    if value and (not re.fullmatch(r"![^\s:]+:[^\s/]+", value) or not value.isascii() or len(value) > 255):
        raise _bad(
            f'expected a Matrix room id such as "!abcdef:example.org" (starting with "!", then ":" and the '
            f"server; ASCII, no spaces, at most 255 characters), got {show(value)}"
        )
    return value


def _feed_file(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}\.xml", value):
        raise _bad(
            f'expected a file name ending in ".xml" (letters, digits, "-", "_", "."; starting with a letter '
            f"or digit; at most 100 characters; no folders), got {show(value)}"
        )
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
        raise _bad(
            f"expected the path of the SQLite store file, got the folder {_quoted(value)} (name a file in "
            'it, such as "digest.db")'
        )
    if value.exists() and not value.is_file():
        raise _bad(
            f"expected the path of a regular file for the SQLite store, got {_quoted(value)}, which is "
            'a device or other special file (name a file such as "digest.db")'
        )
    return _creatable(value)


def _folder(value: Path | None) -> Path | None:
    """An output or input folder: it may be missing (it is made when needed), but must not be a file."""
    if value is not None and value.exists() and not value.is_dir():
        raise _bad(f"expected a folder, got {_quoted(value)}, which is a file (name a folder)")
    return value if value is None else _creatable(value)


def _existing_folder(value: Path | None) -> Path | None:
    if value is not None and not value.is_dir():
        what = "a file" if value.exists() else "missing"
        raise _bad(
            f"expected an existing folder, got {_quoted(value)}, which is {what} (create it, or remove "
            "the key to use the built-in templates)"
        )
    return value


def _creatable(value: Path) -> Path:
    """``value`` itself, when the nearest existing folder above it is a folder (so missing folders can be made)."""
    parent = value.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise _bad(f"expected a path whose folders exist or can be made, got {_quoted(value)} ({parent} is a file)")
    return value


def _query(value: str) -> str:
    if not value.strip():
        raise _bad("expected a query, got an empty string")
    from digest.matching.query import parse_query  # the parser alone: the matcher pulls in numpy and pyahocorasick

    try:
        parse_query(value)
    except QueryError as exc:
        # The matcher's message may draw a caret on extra lines; a problem is one line.
        why = exc.message.splitlines()[0].rstrip(":")
        if exc.position is not None and "at character" not in why:
            why += f" at character {exc.position + 1}"
        raise _bad(f"expected a valid query, got {show(value)} ({why}{'; ' + exc.hint if exc.hint else ''})") from None
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
    dups = sorted(v for v, n in Counter(values).items() if n > 1)
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
Formats = Annotated[
    tuple[Literal["html", "markdown", "text"], ...], Strict(False), Field(min_length=1), AfterValidator(_unique)
]
MAX_WEBHOOKS = 64  # [[webhooks]] tables, and names in one user's webhooks
WebhookNames = Annotated[
    tuple[str, ...], Strict(False), AfterValidator(_at_most(MAX_WEBHOOKS)), AfterValidator(_unique)
]
# The keys' own types, so the sections read as a list of keys and types.
UserName = Annotated[str, AfterValidator(_user_name)]
WebhookName = Annotated[str, AfterValidator(_webhook_name)]
OptionalEmail = Annotated[str, AfterValidator(_optional_email)]
SecretEnvName = Annotated[str, AfterValidator(_required_env_name)]
HttpsUrl = Annotated[str, AfterValidator(_url(("https",)))]
HttpUrl = Annotated[str, AfterValidator(_url(("https", "http")))]
LocalHttpUrl = Annotated[str, AfterValidator(_url(("https",), loopback_http=True))]  # http only to loopback
ListId = Annotated[str, AfterValidator(_list_id)]
ClockTime = Annotated[str, AfterValidator(_hhmm)]
Listen = Annotated[str, AfterValidator(_listen)]
FeedFile = Annotated[str, AfterValidator(_feed_file)]
RoomId = Annotated[str, AfterValidator(_room_id)]
StoreFile = Annotated[Path, AfterValidator(_checked(_store_file))]
Folder = Annotated[Path, AfterValidator(_checked(_folder))]
ExistingFolder = Annotated[Path | None, AfterValidator(_checked(_existing_folder))]
