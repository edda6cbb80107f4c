"""The TOML config's sections and the loader: validate every key at once (file:line: key path), hand out typed
sections. Single values are checked by ``validators``, rules spanning keys by ``rules``, secrets by ``secrets``."""

from __future__ import annotations

import logging
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, ValidationError, ValidationInfo
from pydantic import field_validator as _field_validator

from digest.config.paths import ENV_FILE_NAME, resolve_path
from digest.config.problems import (
    ConfigProblem,
    ConfigValidationError,
    Loc,
    closest,
    located,
    pydantic_message,
    show,
    too_deep,
)
from digest.config.rules import cross_checks, setting_warnings
from digest.config.validators import (
    MAX_DAYS,
    MAX_WEBHOOKS,
    ClockTime,
    Cron,
    Days,
    Email,
    EnvName,
    ExistingFolder,
    FeedFile,
    Folder,
    Formats,
    HttpsUrl,
    HttpUrl,
    Listen,
    ListId,
    LocalHttpUrl,
    OptionalEmail,
    Queries,
    RoomId,
    Seconds,
    SecretEnvName,
    StoreFile,
    Text,
    Texts,
    TimeZone,
    UserName,
    WebhookName,
    WebhookNames,
    _at_most,
)
from digest.errors import ConfigError
from digest.models import Profile

__all__ = [
    "WEBHOOK_KINDS", "Config", "DigestSection", "FeedSection", "MailSection", "ServerSection", "SmtpSection",
    "UserSection", "WebhookKind", "WebhookSection", "load_config",
]  # fmt: skip

log = logging.getLogger(__name__)


class _Section(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class DigestSection(_Section):
    """`[digest]`: where state lives and global behaviour."""

    store: StoreFile = Field("", validate_default=True)
    inbox: Folder = Field("", validate_default=True)
    templates: ExistingFolder = Field("", validate_default=True)
    base_url: HttpsUrl = ""
    secret_env: SecretEnvName = "DIGEST_SECRET"
    env_file: Path = Field("", validate_default=True)
    abstract_chars: int = Field(600, ge=50, le=100_000)
    thumbnails: bool = False
    catchup_max_age_days: Days = 7
    backfill_days: Days = 7
    keep_sent_days: Days = 7
    source_url: HttpUrl = ""
    fetch_timeout: Seconds = 30
    ranker: Literal["keywords", "learned"] = "keywords"  # how matches are ordered and suggestions found

    @_field_validator("store", "inbox", "templates", "env_file", mode="before")
    @classmethod
    def _paths(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name == "env_file" and value in ("", None):  # default: beside the config file
            return Path((info.context or {}).get("base", ".")).resolve() / ENV_FILE_NAME
        defaults = {"store": "digest.db", "inbox": "inbox", "templates": None, "env_file": None}
        return resolve_path(value, info, defaults[info.field_name or ""])


class MailSection(_Section):
    """`[mail]`: the From address and list headers."""

    sender: Email = Field(description="an email address")
    sender_name: Text = "Paper Digest"
    list_id: ListId = ""  # "" = "paper-digest.<sender domain>"
    unsubscribe_mailto: OptionalEmail = ""


class SmtpSection(_Section):
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


class FeedSection(_Section):
    """`[feeds]`: where Atom files go and the URL they are served from."""

    output: Folder = Field("", validate_default=True)
    base_url: HttpUrl = ""  # "" = digest.base_url + "/feeds"
    global_feed: FeedFile = "all.xml"
    max_entries: int = Field(100, ge=1, le=10_000)

    @_field_validator("output", mode="before")
    @classmethod
    def _paths(cls, value: Any, info: ValidationInfo) -> Any:
        return resolve_path(value, info, "feeds")


class ServerSection(_Section):
    """`[server]`: what `digest serve` listens on and when it runs."""

    listen: Listen = "127.0.0.1:8080"
    schedule: Annotated[Cron, Field(min_length=1)] = "0 7 * * *"
    timezone: TimeZone = "UTC"

    @property
    def listen_address(self) -> tuple[str, int]:
        """``listen`` split into (host, port), IPv6 brackets removed."""
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


WebhookKind = Literal["slack", "discord", "matrix", "json"]
WEBHOOK_KINDS: tuple[str, ...] = get_args(WebhookKind)  # digest.deliver.channel.CHANNEL_KINDS without "email"


class WebhookSection(_Section):
    """One `[[webhooks]]` table: a chat room or HTTP endpoint that users opt into by name. Its URL (slack, discord,
    json) or access token (matrix) is a secret, read from the variable the table names (see ``secrets``)."""

    name: WebhookName = Field(description="a unique name")
    kind: WebhookKind = Field(description='the kind of webhook: "slack", "discord", "matrix" or "json"')
    url_env: EnvName = ""  # slack, discord, json: the variable holding the webhook URL
    timeout: Seconds = 30
    homeserver: LocalHttpUrl = ""  # matrix: the homeserver's base URL (not a secret)
    room_id: RoomId = ""  # matrix: "!opaque:server"
    token_env: EnvName = ""  # matrix: the variable holding the access token


class UserSection(_Section):
    """One `[[users]]` table: a subscriber and their profile."""

    name: UserName = Field(description="a unique name")
    email: OptionalEmail = ""  # required unless webhooks is set (rules.cross_checks says so)
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
    send_time: ClockTime = "07:00"
    timezone: TimeZone = "UTC"
    formats: Formats = ("html", "markdown")
    feed: bool = True
    webhooks: WebhookNames = Field((), description="names of [[webhooks]] tables")  # the user's chat channels
    authors: Texts = ()  # followed authors: their papers match whatever the keywords say (API JSON and HTML dumps)
    like: Texts = ()  # arXiv ids or titles of papers the user liked: "more like these" before any thumbs
    dislike: Texts = ()  # the same for papers they did not want
    suggestions: int = Field(1, ge=0, le=10)  # "Also for you": papers the keywords missed that the ranker proposes

    def profile(self) -> Profile:
        """This user as the ``Profile`` the matcher and renderer use."""
        cadence = {"daily": "daily", "weekly": f"weekly:{self.weekday}", "cron": f"cron:{self.cron}"}[self.cadence]
        return Profile(
            name=self.name, email=self.email, keywords=self.keywords, exclude=self.exclude,
            min_upvotes=self.min_upvotes, organizations=self.organizations,
            organizations_mode=self.organizations_mode, max_papers=self.max_papers, min_score=self.min_score,
            cadence=cadence, timezone=self.timezone, send_time=self.send_time, formats=self.formats,
            feed=self.feed, display_name=self.display_name or None, webhooks=self.webhooks, authors=self.authors,
            like=self.like, dislike=self.dislike, suggestions=self.suggestions,
        )  # fmt: skip


class _File(_Section):
    digest: DigestSection = Field(default_factory=dict, validate_default=True)  # type: ignore[arg-type]
    mail: MailSection = Field(description="a [mail] table with at least sender")
    smtp: SmtpSection = Field(default_factory=dict, validate_default=True)  # type: ignore[arg-type]
    feeds: FeedSection = Field(default_factory=dict, validate_default=True)  # type: ignore[arg-type]
    server: ServerSection = Field(default_factory=dict, validate_default=True)  # type: ignore[arg-type]
    webhooks: Annotated[tuple[WebhookSection, ...], Strict(False), AfterValidator(_at_most(MAX_WEBHOOKS))] = Field(
        (), description="[[webhooks]] tables"
    )
    users: Annotated[tuple[UserSection, ...], Strict(False)] = Field((), description="[[users]] tables")


@dataclass(frozen=True, slots=True)
class Config:
    """A validated config: every section typed, every path absolute, defaults filled in."""

    path: Path
    digest: DigestSection
    mail: MailSection
    smtp: SmtpSection
    feeds: FeedSection
    server: ServerSection
    users: tuple[UserSection, ...]
    warnings: tuple[ConfigProblem, ...] = ()  # valid but risky settings, e.g. a send time in the DST window
    webhooks: tuple[WebhookSection, ...] = ()  # every user's webhooks name one of these

    def profiles(self) -> tuple[Profile, ...]:
        """Every user as a ``digest.models.Profile``, in file order."""
        return tuple(u.profile() for u in self.users)

    def user(self, name: str) -> UserSection:
        """The ``[[users]]`` table called ``name``; a ConfigError naming the configured users when there is none."""
        for user in self.users:
            if user.name == name:
                return user
        names = ", ".join(u.name for u in self.users) or "none"
        raise ConfigError(f"no user named {name!r} in {self.path}", f"users in this config: {names}")

    def webhook(self, name: str) -> WebhookSection:
        """The ``[[webhooks]]`` table called ``name``; a ConfigError when there is none."""
        for hook in self.webhooks:
            if hook.name == name:
                return hook
        names = [hook.name for hook in self.webhooks]
        near = closest(name, names)
        tip = f' (did you mean "{near}"?)' if near else ""
        defined = ", ".join(show(n) for n in names) if names else "none"
        raise ConfigError(
            f"no [[webhooks]] table is named {show(name)}{tip} in {self.path}",
            f"use one of the names defined there: {defined}",
        )


def load_config(path: Path, *, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate ``path``; raise ``ConfigValidationError`` listing every problem at once."""
    env = os.environ if env is None else env
    file = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"config file {file} not found", "check the path, or run `digest init` to write a starter config"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc.strerror}", "check the path and permissions") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigValidationError(
            [ConfigProblem(file, line, "", "expected UTF-8 text, got bytes that are not UTF-8")]
        ) from None
    try:
        raw = tomllib.loads(text)
    except RecursionError:
        raise ConfigValidationError(
            [too_deep(file, text)], "flatten the nesting (no setting needs more than one level of arrays)"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        where = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        what = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", str(exc))
        line = int(where[1]) if where else text.count("\n") + 1
        col = f" at column {where[2]}" if where else ""
        raise ConfigValidationError(
            [ConfigProblem(file, line, "", f"expected valid TOML, got {what}{col}")],
            "fix the TOML syntax (https://toml.io)",
        ) from None

    found: list[tuple[Loc, str]] = []
    parsed: _File | None = None
    try:
        parsed = _File.model_validate(raw, context={"base": Path(path).resolve().parent, "env": env})
    except ValidationError as exc:
        found += [(tuple(e["loc"]), pydantic_message(e, _File)) for e in exc.errors(include_url=False)]
    found += [p for p in cross_checks(raw) if p not in found]
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
    warnings = tuple(located(file, text, list(setting_warnings(parsed.users, parsed.webhooks))))
    for warning in warnings:
        log.info("config warning: %s", warning)  # the CLI shows them (Config.warnings); logged once, not twice
    return Config(
        path=Path(path).resolve(),
        digest=parsed.digest,
        mail=mail,
        smtp=smtp,
        feeds=feeds,
        server=parsed.server,
        users=parsed.users,
        warnings=warnings,
        webhooks=parsed.webhooks,
    )
