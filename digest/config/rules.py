"""Rules spanning several keys, checked on the raw TOML so they are reported alongside type errors (file:line: key
path, never "unexpected"), and warnings about settings that are valid but will bite."""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic_core import PydanticCustomError

from digest.config.problems import ConfigProblem, Loc, closest, file_text, located, show
from digest.config.validators import MAX_WEBHOOKS, _user_name
from digest.deliver.net import is_loopback_host

if TYPE_CHECKING:
    from digest.config.schema import Config, UserSection, WebhookSection

__all__ = ["AUTHOR_NOTE", "author_notes", "cross_checks", "organization_warnings", "setting_warnings"]

# What each webhook kind needs besides name and kind: key -> what the key holds.
_MATRIX_KEYS = {
    "homeserver": 'the homeserver\'s https:// URL, such as "https://matrix.example.org"',
    "room_id": 'the room id, such as "!abcdef:example.org"',
    "token_env": 'the name of the variable holding the access token, such as "MATRIX_TOKEN"',
}
_URL_KEY = ("url_env", 'the name of the variable holding the webhook URL, such as "LAB_SLACK_WEBHOOK"')
_SECRET_NAMES = ("url_env", "token_env")  # values never shown: people paste the secret itself there


def cross_checks(raw: dict[str, Any]) -> Iterator[tuple[Loc, str]]:
    """Every rule spanning several keys, as (key path, "<expected>, got <found>")."""
    yield from _global_rules(raw)
    yield from _webhook_rules(raw)
    users = raw.get("users")
    if isinstance(users, list):
        yield from _user_rules(raw, users)
        yield from _feed_collisions(raw, users)


def _global_rules(raw: dict[str, Any]) -> Iterator[tuple[Loc, str]]:
    digest, mail, smtp = raw.get("digest", {}), raw.get("mail"), raw.get("smtp")
    if (
        isinstance(mail, dict)
        and isinstance(digest, dict)
        and not mail.get("unsubscribe_mailto")
        and not digest.get("base_url")
    ):
        # Mail never goes out without one (compose refuses): check must not accept what every run would refuse.
        yield (
            ("mail", "unsubscribe_mailto"),
            "expected an unsubscribe address, or [digest].base_url for one-click "
            "links, got neither (every digest needs a way to unsubscribe)",
        )
    if isinstance(smtp, dict):
        host, security = smtp.get("host", "localhost"), smtp.get("security", "starttls")
        if (
            security == "none"
            and isinstance(host, str)
            and not is_loopback_host(host)
            and smtp.get("allow_insecure") is not True
        ):
            yield (
                ("smtp", "security"),
                f'expected "starttls" or "tls" for the non-loopback host {show(host)} '
                '(or allow_insecure = true), got "none"',
            )
        if smtp.get("username") and smtp.get("password_env", "DIGEST_SMTP_PASSWORD") == "":
            yield (
                ("smtp", "password_env"),
                'expected the name of the variable holding the password (username is set), got ""',
            )


def _webhook_rules(raw: dict[str, Any]) -> Iterator[tuple[Loc, str]]:
    """Unique webhook names (ignoring case, like user names); the keys each kind needs, and no keys of another."""
    hooks = raw.get("webhooks")
    if not isinstance(hooks, list):
        return
    seen: dict[str, int] = {}
    for i, hook in enumerate(hooks):
        if not isinstance(hook, dict):
            continue
        name = hook.get("name")
        if isinstance(name, str) and name:
            if name.casefold() in seen:
                yield (
                    ("webhooks", i, "name"),
                    f"expected a unique name, got {show(name)} (webhooks[{seen[name.casefold()]}] has it already)",
                )
            seen.setdefault(name.casefold(), i)
        kind = hook.get("kind")
        unused: tuple[str, ...]
        if kind == "matrix":
            needed, unused = dict(_MATRIX_KEYS), ("url_env",)
            uses = 'kind = "matrix" uses homeserver, room_id and token_env'
        elif kind in ("slack", "discord", "json"):
            needed, unused = dict([_URL_KEY]), tuple(_MATRIX_KEYS)
            uses = f'only kind = "matrix" uses it; kind = "{kind}" reads its URL from url_env'
        else:
            continue  # no kind or an unknown one: reported by the schema
        for key, what in needed.items():
            if hook.get(key, "") == "":
                found = '""' if key in hook else "nothing"
                yield ("webhooks", i, key), f'expected {what} (kind = "{kind}"), got {found}'
        for key in unused:
            if key in hook:
                found = "a value (not shown, it may be a secret)" if key in _SECRET_NAMES else show(hook[key])
                yield ("webhooks", i, key), f"expected no {key} ({uses}; remove {key}), got {found}"


def _webhook_names(raw: dict[str, Any]) -> list[str] | None:
    """The names of the [[webhooks]] tables; None when ``webhooks`` is not an array (the schema reports it)."""
    hooks = raw.get("webhooks", [])
    if not isinstance(hooks, list):
        return None
    return [h["name"] for h in hooks if isinstance(h, dict) and isinstance(h.get("name"), str)]


def _user_webhooks(i: int, names: list[Any], defined: list[str]) -> Iterator[tuple[Loc, str]]:
    """Each name in users[i].webhooks that no [[webhooks]] table has (once each)."""
    if len(names) > MAX_WEBHOOKS:
        return  # reported by the schema
    listed = ", ".join(show(d) for d in defined[:10]) + (", ..." if len(defined) > 10 else "")
    known = f"defined: {listed}" if defined else "no [[webhooks]] table is defined"
    for name in dict.fromkeys(n for n in names if isinstance(n, str)):
        if name not in defined:
            near = closest(name, defined)
            tip = f'; did you mean "{near}"?' if near else ""
            yield (
                ("users", i, "webhooks"),
                f"expected names of [[webhooks]] tables ({known}{tip}), got the unknown name {show(name)}",
            )


def _user_rules(raw: dict[str, Any], users: list[Any]) -> Iterator[tuple[Loc, str]]:
    defined = _webhook_names(raw)
    seen: dict[str, int] = {}
    for i, user in enumerate(users):
        if not isinstance(user, dict):
            continue
        name = user.get("name")
        if isinstance(name, str) and name:
            if name.casefold() in seen:
                yield (
                    ("users", i, "name"),
                    f"expected a unique name, got {show(name)} (users[{seen[name.casefold()]}] has it already)",
                )
            seen.setdefault(name.casefold(), i)
        if user.get("email", "") == "" and user.get("webhooks", []) == []:
            found = '""' if "email" in user else "nothing"
            yield (
                ("users", i, "email"),
                f"expected an email address, got {found} (the key is required unless "
                "webhooks names a [[webhooks]] table to send the digests to)",
            )
        if isinstance(user.get("webhooks"), list) and defined is not None:
            yield from _user_webhooks(i, user["webhooks"], defined)
        cadence = user.get("cadence", "daily")
        if cadence == "cron" and not user.get("cron"):
            yield ("users", i, "cron"), 'expected a crontab expression (cadence = "cron"), got nothing'
        if user.get("cron") and cadence in ("daily", "weekly"):
            yield ("users", i, "cron"), f'expected no cron (cadence = "{cadence}"), got {show(user["cron"])}'
        if "weekday" in user and cadence in ("daily", "cron"):
            yield (
                ("users", i, "weekday"),
                f'expected no weekday (cadence = "{cadence}"; use "weekly"), got {show(user["weekday"])}',
            )
        if "send_time" in user and cadence == "cron":
            yield (
                ("users", i, "send_time"),
                f"expected no send_time (the cron expression sets the time), got {show(user['send_time'])}",
            )
        orgs_only = user.get("organizations_mode") == "only" and user.get("organizations")
        if user.get("keywords", []) == [] and not orgs_only and not user.get("authors"):
            yield (
                ("users", i, "keywords"),
                'expected at least one query (or authors to follow, or organizations with organizations_mode = "only"'
                "), got none",
            )
        if isinstance(user.get("authors"), list):
            yield from _author_names(i, user["authors"])


def _author_names(i: int, names: list[Any]) -> Iterator[tuple[Loc, str]]:
    """Followed authors that are no name (no letter or digit: they could never match)."""
    from digest.matching.query import name_parts  # the parser module alone: no numpy or automaton

    for j, name in enumerate(names):
        if isinstance(name, str) and not name_parts(name.strip().removesuffix("*")):
            yield ("users", i, "authors", j), f'expected an author\'s name such as "Kaiming He", got {show(name)}'


def _feed_collisions(raw: dict[str, Any], users: list[Any]) -> Iterator[tuple[Loc, str]]:
    """Two feeds written to one file (compared without case: macOS and Windows file systems ignore it)."""
    from digest.render.feedfile import feed_file  # stdlib only: loading a config stays cheap

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
            yield (
                ("users", i, "name"),
                f"expected a name whose feed file is free, got {show(name)}: its feed "
                f"{file} is also the feed of {other} (rename one, set feed = false, or pick another "
                "[feeds].global_feed)",
            )


# ---------------------------------------------------------------------------------------------- warnings


def setting_warnings(users: Iterable[UserSection], webhooks: Iterable[WebhookSection]) -> Iterator[tuple[Loc, str]]:
    """Settings that are valid but will bite: a send time in the DST window, a webhook no user opted into."""
    users = tuple(users)
    for i, user in enumerate(users):
        zone = zoneinfo.ZoneInfo(user.timezone)
        jan, jul = (datetime(2026, m, 1, tzinfo=zone).utcoffset() for m in (1, 7))
        if user.cadence != "cron" and jan != jul and "01:00" <= user.send_time < "04:00":
            yield (
                ("users", i, "send_time"),
                f"{user.send_time} is inside the {user.timezone} DST change "
                "window (01:00-03:59): on change days it may fire twice or not at all",
            )
    chosen = {name for user in users for name in user.webhooks}
    for i, hook in enumerate(webhooks):
        if hook.name not in chosen:
            yield (
                ("webhooks", i, "name"),
                f"{show(hook.name)} is in no user's webhooks: nothing is sent to it "
                "(add it to a [[users]] table's webhooks, or remove the table)",
            )


AUTHOR_NOTE = (
    "author names come from API JSON and HTML dumps; text scrapes only carry a count, so author: terms and "
    "authors follows never match their papers"
)


def author_notes(config: Config) -> list[ConfigProblem]:
    """Where the config relies on author names (a user's ``authors``, a query with ``author:``), each with
    AUTHOR_NOTE: papers known only from a text scrape have no names. Not among ``Config.warnings`` (printed by
    every command): nothing in the config can change it, so `digest check` shows it, like organization_warnings."""
    from digest.matching.query import AUTHORS, leaves, parse_query  # the parser module alone

    found: list[tuple[Loc, str]] = []
    for i, user in enumerate(config.users):
        if user.authors:
            found.append((("users", i, "authors"), AUTHOR_NOTE))
        for key in ("keywords", "exclude"):
            for j, text in enumerate(getattr(user, key)):
                if any(leaf.field == AUTHORS for leaf in leaves(parse_query(text).root)):
                    tail = " (so this exclusion never drops a paper known only from a text scrape)"
                    found.append((("users", i, key, j), AUTHOR_NOTE + (tail if key == "exclude" else "")))
    return located(str(config.path), file_text(config.path), found) if found else []


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
            found.append(
                (
                    ("users", i, "organizations", j),
                    f"{show(user.organizations[j])} was never seen in the "
                    f"store as an organization name or display name{tip}{none_yet}",
                )
            )
        if user.organizations_mode == "only" and user.organizations and len(missing) == len(user.organizations):
            found.append(
                (
                    ("users", i, "organizations_mode"),
                    '"only", and none of these organizations was ever '
                    "seen in the store: this digest stays empty until a dump lists one of them",
                )
            )
    return located(str(config.path), file_text(config.path), found) if found else []
