"""Send composed messages with aiosmtplib: reused connections, bounded parallelism, classified replies."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import socket
import ssl
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Literal

import aiosmtplib
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_any,
    wait_exponential,
    wait_random,
)
from tenacity.stop import stop_base

from digest.deliver.net import is_loopback_host
from digest.errors import ConfigError, DeliveryError

__all__ = ["Outgoing", "SendResult", "SendSummary", "SmtpSettings", "check_smtp_settings", "send_all"]

log = logging.getLogger(__name__)

_LINE_ENDS = re.compile(rb"\r\n|\r|\n")
# What may go on a MAIL FROM / RCPT TO line: one bare ASCII address, nothing aiosmtplib would "repair"
# (it runs parseaddr first, which turns "a@x>\r\nRCPT TO:<b@y" into a@x).
_ENVELOPE_ADDRESS = re.compile(r"[^\s<>()\[\]\\,;:\"@\x00-\x1f\x7f-\U0010ffff]+@[A-Za-z0-9.-]+")

Security = Literal["tls", "starttls", "none"]
Status = Literal["sent", "deferred", "failed"]


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where and how to submit mail; built by the config module."""

    host: str
    port: int
    security: Security = "starttls"  # "tls" = implicit TLS (465), "starttls" = required STARTTLS (587), "none"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    allow_insecure: bool = False  # permit plaintext to a non-loopback host, and AUTH over plaintext
    timeout: float = 30.0  # seconds for connecting and for each server reply
    message_timeout: float = 120.0  # hard deadline for one message, connecting included
    max_connections: int = 4  # parallel SMTP sessions
    max_messages_per_connection: int = 100  # then QUIT and reconnect
    retry_attempts: int = 3  # tries per message within one run before it is left deferred
    retry_wait: float = 1.0  # first backoff in seconds; doubles per attempt, plus up to this much jitter
    retry_max_wait: float = 30.0
    retry_max_age: timedelta = timedelta(hours=24)  # the pipeline stops retrying a deferred message after this
    helo_name: str | None = None  # EHLO name; None means this host's FQDN

    def __post_init__(self) -> None:
        check_smtp_settings(self)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One composed message for one recipient; ``key`` is the caller's identifier for it."""

    key: str
    sender: str  # envelope MAIL FROM (where bounces go)
    recipient: str  # envelope RCPT TO
    data: bytes  # the complete message with CRLF line ends, as compose() returns it


@dataclass(frozen=True, slots=True)
class SendResult:
    """What happened to one message: sent, deferred (try again later) or failed (permanently)."""

    status: Status
    code: int | None  # the SMTP reply code, None for connection errors and timeouts
    reply: str
    attempts: int = 1  # tries within this run; 0 when the server could not be reached at all


@dataclass(frozen=True, slots=True)
class SendSummary:
    """Totals for one send_all() call."""

    sent: int = 0
    deferred: int = 0
    failed: int = 0
    connections: int = 0  # SMTP sessions opened (reconnects included)
    unreachable: str | None = None  # why nothing more could be sent, when every connection failed


def check_smtp_settings(smtp: SmtpSettings) -> None:
    """Raise ConfigError for settings that are unusable or would expose mail or credentials."""
    if smtp.security not in ("tls", "starttls", "none"):
        raise ConfigError(
            f"unknown SMTP security mode {smtp.security!r}",
            'use "tls" (implicit TLS, port 465), "starttls" (port 587) or "none" (loopback only)',
        )
    if not smtp.host or not smtp.host.isprintable() or " " in smtp.host:
        raise ConfigError(f"invalid SMTP host {smtp.host!r}", "give a host name or IP address")
    if not 0 < smtp.port < 65536:
        raise ConfigError(f"invalid SMTP port {smtp.port}", "use 465 for tls, 587 for starttls")
    if smtp.security == "none" and not smtp.allow_insecure and not is_loopback_host(smtp.host):
        raise ConfigError(
            f"refusing plaintext SMTP to {smtp.host}: mail would cross the network unencrypted",
            'use security = "starttls" (port 587) or "tls" (port 465); allow_insecure = true only on a trusted link',
        )
    if smtp.security == "none" and smtp.username is not None and not smtp.allow_insecure:
        raise ConfigError(
            "refusing to send the SMTP password over a plaintext connection",
            'use security = "starttls" or "tls", or set allow_insecure = true for a trusted local relay',
        )
    if smtp.password is not None and smtp.username is None:
        raise ConfigError("an SMTP password is set but no username", "set the SMTP username too")
    for name in ("max_connections", "max_messages_per_connection", "retry_attempts"):
        if getattr(smtp, name) < 1:
            raise ConfigError(f"SMTP {name} must be at least 1", f"set {name} to a positive integer")
    for name in ("timeout", "message_timeout"):
        if not getattr(smtp, name) > 0:
            raise ConfigError(f"SMTP {name} must be positive", f"set {name} to a number of seconds")
    if smtp.retry_wait < 0 or smtp.retry_max_wait < smtp.retry_wait:
        raise ConfigError("SMTP retry waits are inconsistent", "use 0 <= retry_wait <= retry_max_wait")


class _Transient(Exception):
    """A deferrable outcome of one attempt; tenacity retries on it."""

    def __init__(self, result: SendResult, *, at_connect: bool) -> None:
        super().__init__(result.reply)
        self.result = result
        self.at_connect = at_connect


@dataclass(slots=True)
class _Conn:
    """One worker's SMTP session, replaced when it breaks or has carried its quota."""

    client: aiosmtplib.SMTP | None = None
    used: int = 0


@dataclass(slots=True)
class _Run:
    """Mutable bookkeeping shared by the workers of one send_all() call."""

    sent: int = 0
    deferred: int = 0
    failed: int = 0
    connections: int = 0
    dead_workers: int = 0
    last_connect_error: str | None = None
    stop: bool = False
    stopped: bool = False  # stop was asked for from outside (a signal), not caused by a run-level error


def _drop(conn: _Conn) -> None:
    """Close the session without QUIT: its state is unknown after a timeout or a broken reply."""
    if conn.client is not None:
        conn.client.close()
    conn.client = None
    conn.used = 0


async def _quit(conn: _Conn, timeout: float) -> None:
    """End the session politely; a failing QUIT does not matter, the messages were already answered."""
    client = conn.client
    conn.client = None
    conn.used = 0
    if client is None:
        return
    try:
        async with asyncio.timeout(timeout):
            await client.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        pass
    finally:
        client.close()


def _by_code(code: int, reply: str, stage: str) -> SendResult:
    """Map a negative reply at RCPT or DATA: 4xx is deferred (raised for a retry), 5xx fails the message."""
    text = f"{stage}: {code} {reply}".strip()
    if 400 <= code < 500 or code < 0:
        raise _Transient(SendResult("deferred", code if code > 0 else None, text), at_connect=False)
    return SendResult("failed", code, text)


_END = b".\r\n"  # the end-of-data line, after the message's own final CRLF


def _buffered(transport: asyncio.BaseTransport) -> int:
    """Bytes this process still holds for ``transport``. Over TLS that includes the ciphertext waiting in the
    TCP transport under the SSL one, which the SSL transport's own count leaves out (asyncio keeps no public
    handle on it)."""
    size = transport.get_write_buffer_size()  # type: ignore[attr-defined]
    inner = getattr(getattr(transport, "_ssl_protocol", None), "_transport", None)
    return size + (inner.get_write_buffer_size() if inner is not None else 0)


def _crlf(data: bytes) -> bytes:
    """Return ``data`` with CRLF line ends only, ending with CRLF: the message as BDAT carries it."""
    # compose() output is already CRLF-only, so this costs three byte counts; aiosmtplib's sendmail() would
    # run three regex substitutions per message. Bare CR/LF are normalised, never passed on: they are what
    # SMTP smuggling exploits.
    if not data.count(b"\r") == data.count(b"\n") == data.count(b"\r\n"):
        data = _LINE_ENDS.sub(b"\r\n", data)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def _wire(data: bytes) -> bytes:
    """Return ``data`` as sent after DATA: CRLF line ends, dot-stuffed, ending with the "." line."""
    data = _crlf(data)
    if data.startswith(b".") or b"\n." in data:  # compose() output has none: one search
        data = (b"." if data.startswith(b".") else b"") + data.replace(b"\n.", b"\n..")
    return data + _END


async def _reset(client: aiosmtplib.SMTP) -> None:
    """RSET after a refused MAIL/RCPT/DATA so the session can carry the next message."""
    # A broken session is noticed (and replaced) when the next message tries it.
    with contextlib.suppress(aiosmtplib.SMTPException, OSError):
        await client.rset()


async def _open(client_args: dict[str, Any]) -> aiosmtplib.SMTP:
    """Connect, then STARTTLS and AUTH as configured, then EHLO (aiosmtplib skips it without TLS/AUTH)."""
    client = aiosmtplib.SMTP(**client_args)
    await client.connect()
    try:
        if client.is_ehlo_or_helo_needed:
            try:
                await client.ehlo()
            except aiosmtplib.SMTPHeloError:
                await client.helo()
    except BaseException:
        client.close()
        raise
    return client


async def _transaction(
    client: aiosmtplib.SMTP, msg: Outgoing, payload: bytes, stage: list[str], handover: Callable[[Outgoing, bool], None]
) -> str:
    """MAIL, RCPT and DATA for one message on an open session; return the server's final reply.

    The message goes out in two writes: everything but the final "." line, then, once all of it is in the
    kernel and ``handover`` has returned (the caller records the hand-over durably), the "." line. A server
    only accepts a message once it reads that line, so a crash before ``handover`` returns cannot have
    delivered the message, and one after it may have: the caller resends only those, and only once.
    """
    # execute_command() is aiosmtplib's public command API; the payload goes through the protocol's
    # write()/read_response() so it is not re-scanned (see _wire). Addresses were checked by the caller.
    size = [b"SIZE=%d" % len(payload)] if client.supports_extension("size") else []
    chunking = client.supports_extension("chunking")
    try:
        stage[0] = "MAIL"
        reply = await client.execute_command(b"MAIL", b"FROM:<" + msg.sender.encode("ascii") + b">", *size)
        if reply.code != 250:
            raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, msg.sender)
        stage[0] = "RCPT"
        reply = await client.execute_command(b"RCPT", b"TO:<" + msg.recipient.encode("ascii") + b">")
        if reply.code not in (250, 251):
            raise aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, msg.recipient)
        if chunking:
            return await _chunks(client, msg, payload, stage, handover)
        stage[0] = "DATA"
        reply = await client.execute_command(b"DATA")
        if reply.code != 354:
            raise aiosmtplib.SMTPDataError(reply.code, reply.message)
    except aiosmtplib.SMTPResponseException:
        await _reset(client)
        raise
    protocol = client.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("connection lost before the message was sent")
    stage[0] = "end of data"
    protocol.write(payload[: -len(_END)])
    transport = protocol.transport
    while transport is not None and _buffered(transport) > 0:
        await asyncio.sleep(0.001)  # a slow link: wait until the body is in the kernel, not in this process
    if transport is None or transport.is_closing():
        raise aiosmtplib.SMTPServerDisconnected("connection lost while the message was being sent")
    handover(msg, True)  # raises (store error) -> the "." line is never written and the server discards it
    stage.append("handed over")
    protocol.write(_END)
    reply = await protocol.read_response(timeout=client.timeout)
    if reply.code != 250:
        raise aiosmtplib.SMTPDataError(reply.code, reply.message)
    return reply.message


async def _chunks(
    client: aiosmtplib.SMTP, msg: Outgoing, payload: bytes, stage: list[str], handover: Callable[[Outgoing, bool], None]
) -> str:
    """RFC 3030 CHUNKING, when the server offers it (Postfix, Exim, Gmail): the whole message in one BDAT
    chunk, which the server reads and stores before it answers, then an empty "BDAT 0 LAST" after the
    hand-over. Only that last, tiny command makes the server accept the message, so the window in which a
    crash can duplicate it is the server's commit, not its reading of the message as with DATA."""
    protocol = client.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("connection lost before the message was sent")
    body = _crlf(msg.data)
    stage[0] = "BDAT"
    # The chunk follows its command at once (no reply in between), so it is written, not executed.
    protocol.write(b"BDAT %d\r\n" % len(body) + body)
    reply = await protocol.read_response(timeout=client.timeout)
    if reply.code != 250:
        await _reset(client)
        raise aiosmtplib.SMTPDataError(reply.code, reply.message)
    handover(msg, True)  # raises (store error) -> LAST is never sent and the server discards the message
    stage.append("handed over")
    stage[0] = "end of data"
    protocol.write(b"BDAT 0 LAST\r\n")
    reply = await protocol.read_response(timeout=client.timeout)
    if reply.code != 250:
        raise aiosmtplib.SMTPDataError(reply.code, reply.message)
    return reply.message


async def _attempt(
    msg: Outgoing,
    payload: bytes,
    conn: _Conn,
    smtp: SmtpSettings,
    client_args: dict[str, Any],
    run: _Run,
    handover: Callable[[Outgoing, bool], None],
) -> SendResult:
    """Try ``msg`` once on the worker's session, opening one if needed; classify the outcome."""
    at_connect = conn.client is None or not conn.client.is_connected
    where = f"{smtp.host}:{smtp.port}"
    stage = ["connect"]
    try:
        async with asyncio.timeout(smtp.message_timeout):
            if at_connect:
                _drop(conn)
                conn.client = await _open(client_args)
                run.connections += 1
                log.debug("connected to %s", where)
            at_connect = False
            assert conn.client is not None
            reply = await _transaction(conn.client, msg, payload, stage, handover)
        return SendResult("sent", 250, reply)
    except aiosmtplib.SMTPAuthenticationError as exc:
        _drop(conn)
        raise DeliveryError(
            f"SMTP login to {where} as {smtp.username!r} failed: {exc.code} {exc.message}",
            "check the SMTP username and password (environment variable); nothing more was sent",
        ) from None
    except aiosmtplib.SMTPRecipientRefused as exc:
        return _by_code(exc.code, exc.message, "RCPT")
    except aiosmtplib.SMTPSenderRefused as exc:
        if 400 <= exc.code < 500:
            raise _Transient(
                SendResult("deferred", exc.code, f"MAIL: {exc.code} {exc.message}"), at_connect=False
            ) from None
        raise DeliveryError(
            f"SMTP server {where} refused the sender {exc.sender!r}: {exc.code} {exc.message}",
            "use a sender address this server lets you send from",
        ) from None
    except aiosmtplib.SMTPDataError as exc:
        if exc.code < 0:
            _drop(conn)
        return _by_code(exc.code, exc.message, "DATA")
    except aiosmtplib.SMTPNotSupported as exc:
        _drop(conn)
        raise DeliveryError(f"SMTP server {where}: {exc}", "the server lacks a required extension") from None
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError, TimeoutError, OSError) as exc:
        # Includes SMTPConnectResponseError (e.g. 421 or 554 greeting): the server will not talk now.
        # A failure at "end of data" is ambiguous (the server may have kept the message): the retry
        # resends the same bytes and Message-ID, which receivers collapse. The hand-over is withdrawn, so a
        # crash before that retry resends too instead of assuming the message arrived.
        _drop(conn)
        if len(stage) > 1:
            handover(msg, False)
        kind = "no reply in time" if isinstance(exc, TimeoutError) and not str(exc) else str(exc) or type(exc).__name__
        text = f"{where}: {kind} (during {stage[0]})"
        raise _Transient(SendResult("deferred", None, text), at_connect=at_connect) from None
    except aiosmtplib.SMTPResponseException as exc:
        # EHLO or STARTTLS refused with a code: transient when 4xx, otherwise a configuration problem.
        _drop(conn)
        if 400 <= exc.code < 500 or exc.code < 0:
            raise _Transient(SendResult("deferred", exc.code, f"{exc.code} {exc.message}"), at_connect=True) from None
        raise DeliveryError(
            f"SMTP server {where} refused the session: {exc.code} {exc.message}", "check the SMTP host and port"
        ) from None
    except aiosmtplib.SMTPException as exc:
        # STARTTLS or AUTH not offered: never fall back to plaintext or unauthenticated sending.
        _drop(conn)
        raise DeliveryError(
            f"SMTP server {where}: {exc}",
            'the server must offer STARTTLS (or use security = "tls" on port 465); nothing was sent on this session',
        ) from None


async def _deliver(
    msg: Outgoing,
    payload: bytes,
    conn: _Conn,
    smtp: SmtpSettings,
    client_args: dict[str, Any],
    run: _Run,
    handover: Callable[[Outgoing, bool], None],
) -> tuple[SendResult, bool]:
    """Send ``msg`` with in-run retries; return the final result and whether it ended at connect time."""
    if not _ENVELOPE_ADDRESS.fullmatch(msg.sender):
        raise DeliveryError(
            f"invalid envelope sender {msg.sender!r}",
            "configure the bounce address as a bare address, e.g. bounces@example.org",
        )
    if not _ENVELOPE_ADDRESS.fullmatch(msg.recipient):
        return SendResult("failed", None, f"invalid envelope recipient {msg.recipient!r}", attempts=0), False
    attempts = 0
    retrying = AsyncRetrying(
        # Stop early when another session hit a run-level error: finish, don't linger.
        stop=stop_any(stop_after_attempt(smtp.retry_attempts), _StopWhen(lambda: run.stop)),
        wait=wait_exponential(multiplier=smtp.retry_wait, max=smtp.retry_max_wait) + wait_random(0, smtp.retry_wait),
        retry=retry_if_exception_type(_Transient),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                attempts += 1
                result = await _attempt(msg, payload, conn, smtp, client_args, run, handover)
    except _Transient as exc:
        return replace(exc.result, attempts=attempts), exc.at_connect
    return replace(result, attempts=attempts), False


def _record(run: _Run, msg: Outgoing, result: SendResult, on_result: Callable[[Outgoing, SendResult], None]) -> None:
    if result.status == "sent":
        run.sent += 1
    elif result.status == "deferred":
        run.deferred += 1
        if result.attempts:
            log.warning("deferred %s to %s: %s", msg.key, msg.recipient, result.reply)
    else:
        run.failed += 1
        log.warning("failed %s to %s: %s", msg.key, msg.recipient, result.reply)
    on_result(msg, result)


async def _worker(
    queue: Iterator[Outgoing],
    smtp: SmtpSettings,
    client_args: dict[str, Any],
    run: _Run,
    on_result: Callable[[Outgoing, SendResult], None],
    on_handover: Callable[[Outgoing, bool], None],
) -> None:
    """Pull messages off the shared iterator and send them over one session at a time."""
    conn = _Conn()
    try:
        while not run.stop:
            # next() runs in this thread between awaits, so workers never re-enter a generator. It runs
            # before the transaction, never while a reply is awaited.
            msg = next(queue, None)
            if msg is None:
                break
            payload = _wire(msg.data)
            result, at_connect = await _deliver(msg, payload, conn, smtp, client_args, run, on_handover)
            # The caller commits the outcome here, before this session carries another message.
            _record(run, msg, result, on_result)
            if at_connect:
                # This worker cannot reach the server; the others carry on, or the rest is deferred.
                run.dead_workers += 1
                run.last_connect_error = result.reply
                return
            if conn.client is not None:
                conn.used += 1
                if conn.used >= smtp.max_messages_per_connection:
                    await _quit(conn, smtp.timeout)
        await _quit(conn, smtp.timeout)
    except BaseException:
        run.stop = True
        _drop(conn)
        raise


async def _watch_stop(stop: Callable[[], bool], run: _Run, workers: list[asyncio.Task[None]], grace: float) -> None:
    """Poll ``stop`` (a signal handler's flag); once set, take no new message and retry nothing, give the
    messages in flight ``grace`` seconds to be answered, then cancel them (they stay in flight for the
    caller, which sends them once more next time)."""
    while not stop():
        await asyncio.sleep(0.1)
    run.stop = True
    run.stopped = True
    _, pending = await asyncio.wait(workers, timeout=grace)
    for task in pending:
        task.cancel()


def _fqdn() -> str:
    """This host's FQDN, the default EHLO name (socket.getfqdn may block on DNS: called in a thread)."""
    return socket.getfqdn()


class _StopWhen(stop_base):
    """A tenacity stop condition from a plain predicate (stop_any takes stop_base instances)."""

    def __init__(self, predicate: Callable[[], bool]) -> None:
        self.predicate = predicate

    def __call__(self, retry_state: Any) -> bool:
        return self.predicate()


def _client_args(smtp: SmtpSettings, tls_context: ssl.SSLContext | None, helo: str) -> dict[str, Any]:
    args: dict[str, Any] = {
        "hostname": smtp.host,
        "port": smtp.port,
        "timeout": smtp.timeout,
        "local_hostname": helo,
        "username": smtp.username,
        "password": smtp.password,
        "use_tls": smtp.security == "tls",
        # Explicit False for "none": aiosmtplib's default (None) would upgrade opportunistically and
        # silently continue in plaintext when STARTTLS is stripped; True makes its absence an error.
        "start_tls": smtp.security == "starttls",
    }
    if smtp.security != "none":
        args["tls_context"] = tls_context or ssl.create_default_context()
    return args


async def send_all(
    messages: Iterable[Outgoing],
    smtp: SmtpSettings,
    *,
    on_result: Callable[[Outgoing, SendResult], None],
    on_handover: Callable[[Outgoing, bool], None] = lambda _msg, _handed: None,
    stop: Callable[[], bool] = lambda: False,
    stop_grace: float = 5.0,
    tls_context: ssl.SSLContext | None = None,
) -> SendSummary:
    """Send every message over at most ``max_connections`` reused sessions, reporting each via ``on_result``.

    ``messages`` may be lazy (a generator composing or loading each one): it is consumed as sessions
    free up, so composing overlaps with the server's work and memory stays flat. ``on_handover(msg, True)``
    is called right before the end-of-data line of an attempt is written (the caller records that the message
    may now arrive; raising there drops the session, so the server discards the message, and stops the run),
    ``on_handover(msg, False)`` when that attempt then breaks with no reply. Once ``stop()`` is true no new
    message or retry starts, and messages still unanswered after ``stop_grace`` seconds are abandoned (no
    ``on_result`` for them), so a stop takes seconds even with a server that does not answer.
    Raises DeliveryError for run-level failures (bad credentials, no STARTTLS, sender refused);
    ``on_result`` has then been called only for messages that were answered before.
    """
    check_smtp_settings(smtp)
    queue = iter(messages)
    first = next(queue, None)
    if first is None:
        return SendSummary()
    helo = smtp.helo_name
    if not helo:
        helo = await asyncio.to_thread(_fqdn)
    client_args = _client_args(smtp, tls_context, helo)
    queue = itertools.chain((first,), queue)
    run = _Run()
    n_workers = min(smtp.max_connections, len(messages)) if isinstance(messages, Sized) else smtp.max_connections
    workers = [
        asyncio.create_task(_worker(queue, smtp, client_args, run, on_result, on_handover)) for _ in range(n_workers)
    ]
    watcher = asyncio.create_task(_watch_stop(stop, run, workers, stop_grace))
    try:
        await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
        # After a run-level error (run.stop is set) the other sessions finish the message they hold, so
        # every message the server accepted is reported, then stop.
        await asyncio.wait(workers)
    finally:
        watcher.cancel()
        for task in workers:
            task.cancel()
        await asyncio.gather(watcher, *workers, return_exceptions=True)
    for task in workers:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    unreachable = run.last_connect_error if run.dead_workers == n_workers else None
    not_attempted = 0
    for msg in queue if unreachable and not run.stopped else ():
        # Every session failed to connect: keep the rest for a later run instead of failing them.
        _record(run, msg, SendResult("deferred", None, f"not attempted: {unreachable}", 0), on_result)
        not_attempted += 1
    if unreachable:
        log.warning("SMTP server unreachable (%s); %d more messages deferred", unreachable, not_attempted)
    return SendSummary(run.sent, run.deferred, run.failed, run.connections, unreachable)
