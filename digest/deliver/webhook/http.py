"""Send queued webhook payloads with httpx (the one module that imports it): one request per part, the ledger
told before each hand-over, 429/5xx retried within the run as the receiver asks, the rest classified."""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import math
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from importlib import metadata
from typing import Any, Literal
from urllib.parse import quote

import httpx

from digest.deliver.channel import Ledger, Outcome, Parcel
from digest.deliver.net import is_loopback_host
from digest.deliver.webhook.payloads import KINDS
from digest.errors import ConfigError, DeliveryError

__all__ = ["WebhookChannel", "WebhookTarget", "idempotency_key"]

log = logging.getLogger(__name__)

_RETRY = frozenset({408, 429}) | frozenset(range(500, 600))
_REFUSED = frozenset({401, 403, 404, 410})  # the target itself is gone or refuses us, not this one payload
_REPLY_MAX = 200
_BODY_MAX = 65_536  # bytes of a reply read: enough for any error text; a hostile endpoint cannot fill memory
_BACKOFF = 1.0  # first wait before a retry with no Retry-After; doubles per try, plus up to a quarter of jitter
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


class _RedactUrls(logging.Filter):
    """httpx logs every request's full URL at INFO, and a Slack or Discord webhook URL is the credential itself:
    its records show scheme and host only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(arg, httpx.URL) for arg in record.args):
            record.args = tuple(_redacted(arg) if isinstance(arg, httpx.URL) else arg for arg in record.args)
        return True


def _redacted(url: httpx.URL) -> str:
    return f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}/***"


logging.getLogger("httpx").addFilter(_RedactUrls())


def _user_agent() -> str:
    try:
        version = metadata.version("paper-digest")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        version = "0"
    return f"paper-digest/{version}"


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """One ``[[webhooks]]`` entry with its secrets; the ledger channel is ``webhook:<name>``."""

    name: str
    kind: str  # one of KINDS
    url: str = field(repr=False)  # slack/discord/json: the full webhook URL (a secret); matrix: the homeserver
    token: str | None = field(default=None, repr=False)  # matrix access token (json: sent as a bearer token)
    room_id: str | None = None  # matrix room id "!abc:example.org"
    timeout: float = 30.0
    max_wait: float = 60.0  # longest Retry-After honoured by sleeping within a run; longer -> deferred
    max_tries: int = 4  # tries per part within one run

    def __post_init__(self) -> None:
        _check_target(self)


def _check_target(target: WebhookTarget) -> None:
    """Raise ConfigError for a target that cannot work or would expose its secrets; never quotes the URL."""
    where = f"webhook {target.name!r}"
    if target.kind not in KINDS:
        raise ConfigError(f"{where}: unknown kind {target.kind!r}", f"use one of: {', '.join(KINDS)}")
    what = "homeserver" if target.kind == "matrix" else "URL"
    try:
        url = httpx.URL(target.url)
    except (httpx.InvalidURL, TypeError):
        raise ConfigError(f"{where}: the {what} is not a valid URL", "give the full https:// URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(f"{where}: the {what} is not an http(s) URL with a host", "give the full https:// URL")
    if url.scheme == "http" and not is_loopback_host(url.host):
        raise ConfigError(
            f"{where}: refusing plain http:// to {url.host}: the {what} and message would cross the network "
            "unencrypted",
            "use an https:// URL (plain http:// is allowed only to localhost)",
        )
    if target.kind == "matrix":
        if not target.token:
            raise ConfigError(f"{where}: no Matrix access token", "set the variable named by token_env")
        if not target.room_id or not target.room_id.startswith("!") or ":" not in target.room_id:
            raise ConfigError(
                f"{where}: the Matrix room id {target.room_id!r} is not a room id",
                'use the room\'s internal id, "!opaque:server" (Room settings > Advanced), not an alias',
            )
    if not target.timeout > 0 or target.max_wait < 0 or target.max_tries < 1:
        raise ConfigError(
            f"{where}: timeout, max_wait or max_tries out of range", "use timeout > 0, max_wait >= 0, max_tries >= 1"
        )


def idempotency_key(message_id: str, index: int) -> str:
    """The transaction id of part ``index`` of a parcel: stable across retries and crashes, URL-safe."""
    return f"pd-{hashlib.sha256(message_id.encode('utf-8')).hexdigest()[:32]}-{index}"


_Halt = Literal["", "pause", "refused"]


@dataclass(frozen=True, slots=True)
class _Step:
    """How one part (or parcel) ended: accepted (``outcome`` None) or the parcel's outcome; ``halt`` says
    whether the target takes no more now ("pause": the rest stay due) or refuses us ("refused")."""

    code: int | None
    reply: str
    outcome: Outcome | None = None
    halt: _Halt = ""


@dataclass(slots=True)
class _Run:
    """Mutable state of one deliver() call."""

    client: httpx.Client
    stop: Callable[[], bool]
    wait: float = 0.0  # seconds to wait before the next request (the receiver's rate-limit headers said so)


class WebhookChannel:
    """A ``deliver.channel.Channel`` posting each parcel's parts to one webhook target, in order."""

    name: str

    def __init__(
        self,
        target: WebhookTarget,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.target = target
        self.name = f"webhook:{target.name}"
        self._transport = transport
        self._sleep = sleep
        self._clock = clock  # for Retry-After given as an HTTP date
        self._random = random.Random()
        self._secrets = _secrets(target)

    def __repr__(self) -> str:
        return f"WebhookChannel({self.target!r})"

    def deliver(self, parcels: Iterable[Parcel], ledger: Ledger, *, stop: Callable[[], bool]) -> None:
        """Send every parcel's remaining parts; after a deferral (the target is down or rate-limited) the
        parcels not yet reported stay due; a refused target (401, 403, 404, 410) raises DeliveryError and
        leaves every parcel not yet reported due, the one refused included."""
        timeout = httpx.Timeout(self.target.timeout)
        headers = {"User-Agent": _user_agent()}
        with httpx.Client(timeout=timeout, follow_redirects=False, headers=headers, transport=self._transport) as c:
            run = _Run(c, stop)
            for parcel in parcels:
                if stop():
                    log.info("%s: stopping before %s", self.name, parcel.key)
                    return
                step = self._parcel(run, parcel, ledger)
                assert step.outcome is not None
                if step.halt == "refused":
                    # The target itself is gone or refuses us (a deleted webhook, a revoked token): every
                    # digest for it, this one included, stays due, so that fixing the URL within the retry
                    # limit loses nothing; the run says what to fix.
                    raise DeliveryError(
                        f"{self.name} refused the digest of {parcel.user} for {parcel.period}: {step.outcome.reply}",
                        _refusal_hint(self.target, step.code),
                    )
                ledger.result(parcel, step.outcome)
                if step.halt == "pause":
                    reply = step.outcome.reply
                    log.warning("%s: deferred (%s); its other digests wait for the next run", self.name, reply)
                    return

    def _parcel(self, run: _Run, parcel: Parcel, ledger: Ledger) -> _Step:
        """Send the parcel's parts from ``parts_done`` on; return its outcome."""
        parts = _decode(parcel.data)
        if parts is None:
            return _Step(None, "", Outcome("failed", None, "the queued webhook message is not JSON {parts: [...]}"))
        if parcel.parts_done >= len(parts):
            return _Step(None, "", Outcome("sent", None, f"all {len(parts)} parts were already accepted"))
        last = _Step(None, "")
        for index in range(parcel.parts_done, len(parts)):
            last = self._part(run, parcel, index, parts[index], ledger)
            if last.outcome is not None:
                return last
            ledger.progress(parcel, index + 1)
            log.debug("%s: %s part %d of %d accepted", self.name, parcel.key, index + 1, len(parts))
        return _Step(last.code, last.reply, Outcome("sent", last.code, last.reply))

    def _part(self, run: _Run, parcel: Parcel, index: int, body: dict[str, Any], ledger: Ledger) -> _Step:
        """Send one part, retrying 408/429/5xx as the receiver asks; accepted, or the parcel's outcome."""
        target = self.target
        code: int | None = None
        reply = ""
        asked: float | None = None
        for attempt in range(1, target.max_tries + 1):
            wait = run.wait if attempt == 1 else (asked if asked is not None else self._backoff(attempt))
            if attempt > 1 and run.stop():
                return _Step(code, reply, Outcome("deferred", code, _line(f"stopped before a retry; {reply}")))
            if wait > 0:
                self._sleep(wait)
            run.wait = 0.0
            request = self._request(run.client, parcel, index, body)
            ledger.handed_over(parcel, True)  # raises when the store cannot record: then nothing is sent
            try:
                response, text = self._send(run.client, request)
            except httpx.HTTPError as exc:
                ledger.handed_over(parcel, False)
                what = self._scrub(_network_error(exc, target.timeout))
                return _Step(None, what, Outcome("deferred", None, what), "pause")
            code = response.status_code
            reply = self._scrub(_reply(target.kind, response, text))
            if 200 <= code < 300:
                run.wait = _rate_limit_pause(response.headers, target.max_wait)
                return _Step(code, reply)
            ledger.handed_over(parcel, False)  # answered and not accepted: nothing is in flight any more
            if code not in _RETRY:
                return _Step(code, reply, Outcome("failed", code, reply), "refused" if code in _REFUSED else "")
            asked = _asked_wait(response, text, self._clock())
            if asked is not None and asked > target.max_wait:
                break
            tries = f"try {attempt} of {target.max_tries}"
            log.info("%s: %s part %d: %s (%s)", self.name, parcel.key, index + 1, reply, tries)
        return _Step(code, reply, Outcome("deferred", code, reply, retry_after=asked), "pause")

    def _backoff(self, attempt: int) -> float:
        base = min(self.target.max_wait, _BACKOFF * 2 ** (attempt - 2))
        return base + self._random.uniform(0, base / 4)

    def _request(self, client: httpx.Client, parcel: Parcel, index: int, body: dict[str, Any]) -> httpx.Request:
        """The HTTP request that delivers part ``index``: method, URL and headers as the target kind wants."""
        target = self.target
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        key = idempotency_key(parcel.message_id, index)
        if target.kind == "matrix":
            # The homeserver keeps the transaction id per access token: a retry, or a resend after a crash,
            # with the same id is answered with the first event instead of posting it again.
            assert target.room_id is not None
            base = target.url.rstrip("/")
            url = f"{base}/_matrix/client/v3/rooms/{quote(target.room_id, safe='')}/send/m.room.message/{key}"
            headers["Authorization"] = f"Bearer {target.token}"
            return client.build_request("PUT", url, content=content, headers=headers)
        url_ = httpx.URL(target.url)
        if target.kind == "discord":
            url_ = url_.copy_set_param("wait", "true")  # 200 with the message, so a failure is not silent
        if target.kind == "json":
            headers["Idempotency-Key"] = key
            if target.token:
                headers["Authorization"] = f"Bearer {target.token}"
        return client.build_request("POST", url_, content=content, headers=headers)

    def _send(self, client: httpx.Client, request: httpx.Request) -> tuple[httpx.Response, str]:
        """Send ``request``; return the response and at most _BODY_MAX bytes of its body as text."""
        response = client.send(request, stream=True)
        try:
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) >= _BODY_MAX:
                    break
        except httpx.HTTPError:  # the status line arrived; a body that breaks off does not change it
            pass
        finally:
            response.close()
        return response, bytes(data[:_BODY_MAX]).decode("utf-8", "replace")

    def _scrub(self, text: str) -> str:
        """``text`` on one line, at most 200 characters, with the URL's secret parts and the token blanked."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _line(text)


def _secrets(target: WebhookTarget) -> tuple[str, ...]:
    """What must never appear in a reply or a log: the token, and the webhook URL, whole or in pieces."""
    found = {target.token or ""}
    if target.kind != "matrix":  # a homeserver URL is no secret; a webhook URL is the credential itself
        found.add(target.url)
        url = httpx.URL(target.url)
        found.add(str(url))
        found.add(url.raw_path.decode("ascii", "replace"))
        found.update(piece for piece in url.path.split("/") if len(piece) >= 8)
        found.update(piece for piece in url.query.decode("ascii", "replace").split("&") if len(piece) >= 8)
    return tuple(sorted((s for s in found if len(s) >= 4), key=len, reverse=True))


def _line(text: str) -> str:
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text if len(text) <= _REPLY_MAX else text[: _REPLY_MAX - 1] + "…"


def _decode(data: bytes) -> list[dict[str, Any]] | None:
    """The parts of a queued webhook message, or None when it is not ``{"parts": [{...}, ...]}``."""
    try:
        parts = json.loads(data)["parts"]
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(parts, list) or not all(isinstance(part, dict) for part in parts):
        return None
    return parts


def _network_error(exc: httpx.HTTPError, timeout: float) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"no reply within {timeout:g} s ({type(exc).__name__})"
    if isinstance(exc, httpx.ConnectError):
        return f"could not connect: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _reply(kind: str, response: httpx.Response, text: str) -> str:
    """One line saying what the receiver answered: its message id when accepted, its error otherwise."""
    code = response.status_code
    try:
        data: Any = json.loads(text) if text.lstrip().startswith("{") else None
    except ValueError:
        data = None
    if 200 <= code < 300:
        if isinstance(data, dict) and kind == "matrix" and "event_id" in data:
            return f"{code} event {data['event_id']}"
        if isinstance(data, dict) and kind == "discord" and "id" in data:
            return f"{code} message {data['id']}"
        return f"{code} {text.strip() or response.reason_phrase}"
    detail = text.strip()
    if isinstance(data, dict):  # Discord {"message", "code"}, Matrix {"errcode", "error"}, Slack (text)
        detail = " ".join(str(data[k]) for k in ("errcode", "error", "message", "code") if k in data) or detail
    if 300 <= code < 400:
        detail = f"redirected ({detail or 'no body'}); webhook URLs do not redirect: check the URL"
    return f"{code} {response.reason_phrase}: {detail}" if detail else f"{code} {response.reason_phrase}"


def _asked_wait(response: httpx.Response, text: str, now: float) -> float | None:
    """Seconds the receiver asked to wait: Discord's JSON ``retry_after``, else Retry-After (seconds or a date)."""
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else None
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("retry_after"), int | float) and data["retry_after"] >= 0:
        return float(data["retry_after"])
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000": HTTP dates are always GMT
            when = when.replace(tzinfo=UTC)
        return max(when.timestamp() - now, 0.0)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _rate_limit_pause(headers: Mapping[str, str], max_wait: float) -> float:
    """Seconds to wait before the next request when an accepted one used up the bucket (Discord's headers)."""
    if headers.get("X-RateLimit-Remaining", "").strip() != "0":
        return 0.0
    try:
        seconds = float(headers.get("X-RateLimit-Reset-After", ""))
    except ValueError:
        return 0.0
    return min(seconds, max_wait) if seconds > 0 else 0.0


def _refusal_hint(target: WebhookTarget, code: int | None) -> str:
    if target.kind == "matrix":
        return (
            "check the Matrix access token and that its user is in the room and may post there; "
            "the other digests for it stay queued"
        )
    return (
        f"the {target.kind} webhook URL for {target.name!r} was refused ({code}): it may have been deleted or "
        "revoked; set a working URL in the variable named by url_env; the other digests for it stay queued"
    )
