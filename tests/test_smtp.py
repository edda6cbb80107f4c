"""Sending with send_all() against a real aiosmtpd server on 127.0.0.1 (threaded Controller)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from digest.deliver.email import MailSettings, Outgoing, SendResult, SendSummary, SmtpSettings, compose, send_all
from digest.errors import ConfigError, DeliveryError
from digest.models import RenderedEmail

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
MAIL = MailSettings(
    sender="digest@example.org",
    sender_name="Paper Digest",
    list_id="daily.digest.example.org",
    domain="digest.example.org",
    secret=b"k" * 32,
    unsubscribe_base_url="https://digest.example.org",
)


@dataclass
class Recorder:
    """aiosmtpd handler: records envelopes and connections, answers from per-address scripts."""

    port: int = 0
    envelopes: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    connections: set[Any] = field(default_factory=set)  # peers that said EHLO
    tls_messages: int = 0  # messages received over TLS
    auth_attempts: int = 0
    rcpt_script: dict[str, list[str]] = field(default_factory=dict)  # address -> replies, one per attempt
    data_script: dict[str, list[str]] = field(default_factory=dict)
    delay: dict[str, float] = field(default_factory=dict)  # recipient -> seconds before answering DATA
    refuse_senders: set[str] = field(default_factory=set)  # MAIL FROM addresses answered with 553
    drop_at_mail: int | None = None  # close the connection at this MAIL on a connection (1-based)
    mails_per_peer: dict[Any, int] = field(default_factory=dict)

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]):
        session.host_name = hostname
        self.connections.add(session.peer)
        return responses

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]):
        count = self.mails_per_peer.get(session.peer, 0) + 1
        self.mails_per_peer[session.peer] = count
        if self.drop_at_mail is not None and count == self.drop_at_mail:
            server.transport.close()
            return "421 4.4.2 dropping you"
        if address in self.refuse_senders:
            return "553 5.7.1 sender not allowed"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]):
        script = self.rcpt_script.get(address)
        if script:
            return script.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any):
        recipient = envelope.rcpt_tos[0]
        if recipient in self.delay:
            await asyncio.sleep(self.delay[recipient])
        script = self.data_script.get(recipient)
        if script:
            return script.pop(0)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        if server.transport.get_extra_info("sslcontext") is not None:
            self.tls_messages += 1
        return "250 2.0.0 Ok: queued"

    def recipients(self) -> list[str]:
        """Every recipient that got a message, in arrival order."""
        return [rcpt for _, rcpts, _ in self.envelopes for rcpt in rcpts]


def free_port() -> int:
    """A port that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtpd() -> Iterator[Callable[..., Recorder]]:
    """Start a threaded aiosmtpd Controller on a free 127.0.0.1 port; stopped after the test."""
    controllers: list[Controller] = []

    def start(handler: Recorder | None = None, **kwargs: Any) -> Recorder:
        handler = handler or Recorder()
        handler.port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=handler.port, **kwargs)
        controller.start()
        controllers.append(controller)
        return handler

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A throwaway certificate authority."""
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    """Server context with a certificate for 127.0.0.1 signed by the test CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="module")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    """Client context trusting only the test CA (hostname checking on)."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def settings(port: int, **overrides: Any) -> SmtpSettings:
    """Plaintext loopback settings with fast retries, overridable per test."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "timeout": 5.0,
        "message_timeout": 5.0,
        "max_connections": 1,
        "retry_attempts": 3,
        "retry_wait": 0.01,
        "retry_max_wait": 0.05,
        "helo_name": "client.test",
    }
    values.update(overrides)
    return SmtpSettings(**values)


def rendered(name: str) -> RenderedEmail:
    """A small digest for <name>@example.com with awkward text (dots, "From ", no final newline)."""
    return RenderedEmail(
        user=name,
        to=f"{name}@example.com",
        subject=f"Paper digest for {name} — 2026-11-23",
        text=f"Hello {name}\n.leading dot\n.\nFrom here\n" + "τ long line " * 200,
        html=f"<p>Hello {name}</p>\n",
        period="2026-11-23",
    )


def outgoing(*names: str) -> list[Outgoing]:
    """One composed digest per name, addressed to <name>@example.com."""
    return [Outgoing(n, "bounces@example.org", f"{n}@example.com", compose(rendered(n), MAIL, now=NOW)) for n in names]


def run(
    messages: list[Outgoing], smtp: SmtpSettings, **kwargs: Any
) -> tuple[SendSummary, dict[str, SendResult], list[str]]:
    """Run send_all; return the summary, the result per key, and the order on_result saw keys in."""
    results: dict[str, SendResult] = {}
    order: list[str] = []

    def on_result(msg: Outgoing, result: SendResult) -> None:
        assert msg.key not in results, "on_result called twice for one message"
        results[msg.key] = result
        order.append(msg.key)

    summary = asyncio.run(send_all(messages, smtp, on_result=on_result, **kwargs))
    return summary, results, order


def test_several_messages_share_one_connection(smtpd: Callable[..., Recorder]) -> None:
    """Five messages go over a single SMTP session, each delivered once."""
    server = smtpd()
    summary, results, _ = run(outgoing("a", "b", "c", "d", "e"), settings(server.port))
    assert summary == SendSummary(sent=5, connections=1)
    assert len(server.connections) == 1
    assert sorted(server.recipients()) == [f"{n}@example.com" for n in "abcde"]
    assert all(r.status == "sent" and r.code == 250 and r.attempts == 1 for r in results.values())


def test_delivered_bytes_are_the_composed_bytes(smtpd: Callable[..., Recorder]) -> None:
    """The server receives exactly the composed message (dot-stuffing undone), parseable back."""
    server = smtpd()
    messages = outgoing("a")
    run(messages, settings(server.port))
    mail_from, rcpts, content = server.envelopes[0]
    assert (mail_from, rcpts) == ("bounces@example.org", ["a@example.com"])
    assert content == messages[0].data
    parsed = email.message_from_bytes(content, policy=email.policy.default)
    assert parsed["Subject"] == "Paper digest for a — 2026-11-23"
    text = parsed.get_body(("plain",))
    assert text is not None and text.get_content().replace("\r\n", "\n") == rendered("a").text


def test_unstuffed_dot_lines_survive_transport(smtpd: Callable[..., Recorder]) -> None:
    """Raw bytes with LF line ends and lone "." lines (not from compose) arrive intact, not truncated."""
    server = smtpd()
    data = b"Subject: raw\n\nfirst\n.\n..two\n.last"
    run([Outgoing("raw", "bounces@example.org", "a@example.com", data)], settings(server.port))
    assert server.envelopes[0][2] == data.replace(b"\n", b"\r\n") + b"\r\n"


def test_lazy_messages_are_consumed_as_sessions_free_up(smtpd: Callable[..., Recorder]) -> None:
    """A generator is pulled one message at a time per session (never while a reply is awaited), not drained."""
    server = smtpd()
    pulled: list[str] = []
    pulled_at_result: list[int] = []

    def lazy() -> Iterator[Outgoing]:
        for msg in outgoing("a", "b", "c", "d"):
            pulled.append(msg.key)
            yield msg

    asyncio.run(send_all(lazy(), settings(server.port), on_result=lambda m, r: pulled_at_result.append(len(pulled))))
    assert pulled_at_result == [1, 2, 3, 4] and len(server.envelopes) == 4


def test_failing_generator_still_reports_the_message_in_flight(smtpd: Callable[..., Recorder]) -> None:
    """If the caller's generator raises, the message already sent is reported first, then the error surfaces."""
    server = smtpd()
    results: dict[str, SendResult] = {}

    def lazy() -> Iterator[Outgoing]:
        yield from outgoing("a")
        raise RuntimeError("render failed")

    with pytest.raises(RuntimeError, match="render failed"):
        asyncio.run(send_all(lazy(), settings(server.port), on_result=lambda m, r: results.setdefault(m.key, r)))
    assert results["a"].status == "sent" and server.recipients() == ["a@example.com"]


def test_on_result_runs_before_the_next_message(smtpd: Callable[..., Recorder]) -> None:
    """on_result for message i is called after the server accepted it and before message i+1 is sent."""
    server = smtpd()
    seen: list[int] = []

    def on_result(msg: Outgoing, result: SendResult) -> None:
        seen.append(len(server.envelopes))

    asyncio.run(send_all(outgoing("a", "b", "c", "d"), settings(server.port), on_result=on_result))
    assert seen == [1, 2, 3, 4]


def test_parallel_connections_are_bounded(smtpd: Callable[..., Recorder]) -> None:
    """Twelve messages with max_connections=3 use exactly three sessions."""
    server = smtpd()
    names = [f"u{i}" for i in range(12)]
    summary, _, _ = run(outgoing(*names), settings(server.port, max_connections=3))
    assert summary.sent == 12 and summary.connections == 3 and len(server.connections) == 3
    assert len(server.envelopes) == 12


def test_session_is_renewed_after_its_quota(smtpd: Callable[..., Recorder]) -> None:
    """max_messages_per_connection=2 over five messages opens three sessions."""
    server = smtpd()
    summary, _, _ = run(outgoing(*"abcde"), settings(server.port, max_messages_per_connection=2))
    assert summary.sent == 5 and summary.connections == 3 and len(server.connections) == 3


def test_451_at_rcpt_is_retried_and_then_sent(smtpd: Callable[..., Recorder]) -> None:
    """A greylisting 451 at RCPT is retried within the run and then delivered, once."""
    server = smtpd()
    server.rcpt_script["b@example.com"] = ["451 4.7.1 greylisted, come back later"]
    summary, results, _ = run(outgoing("a", "b", "c"), settings(server.port))
    assert results["b"] == SendResult("sent", 250, results["b"].reply, attempts=2)
    assert summary.sent == 3 and server.recipients().count("b@example.com") == 1


def test_persistent_451_is_deferred(smtpd: Callable[..., Recorder]) -> None:
    """A 451 that persists through every attempt leaves the message deferred with the code; others go."""
    server = smtpd()
    server.rcpt_script["b@example.com"] = ["451 4.3.0 try later"] * 5
    summary, results, _ = run(outgoing("a", "b", "c"), settings(server.port, retry_attempts=3))
    assert results["b"].status == "deferred" and results["b"].code == 451 and results["b"].attempts == 3
    assert "try later" in results["b"].reply
    assert summary == SendSummary(sent=2, deferred=1, connections=1)


def test_550_at_rcpt_fails_only_that_message(smtpd: Callable[..., Recorder]) -> None:
    """A 550 at RCPT fails that message at once with the server's reply; the session carries on."""
    server = smtpd()
    server.rcpt_script["b@example.com"] = ["550 5.1.1 no such user"]
    summary, results, _ = run(outgoing("a", "b", "c"), settings(server.port))
    assert results["b"] == SendResult("failed", 550, "RCPT: 550 5.1.1 no such user", attempts=1)
    assert summary == SendSummary(sent=2, failed=1, connections=1)
    assert server.recipients() == ["a@example.com", "c@example.com"]


def test_452_at_data_is_deferred(smtpd: Callable[..., Recorder]) -> None:
    """A persistent 452 after DATA defers the message (not failed), with the code."""
    server = smtpd()
    server.data_script["a@example.com"] = ["452 4.3.1 insufficient storage"] * 5
    summary, results, _ = run(outgoing("a", "b"), settings(server.port, retry_attempts=2))
    assert results["a"].status == "deferred" and results["a"].code == 452 and results["a"].attempts == 2
    assert summary.sent == 1 and summary.deferred == 1


def test_554_at_data_fails(smtpd: Callable[..., Recorder]) -> None:
    """A 554 after DATA fails the message permanently; the next message is still sent."""
    server = smtpd()
    server.data_script["a@example.com"] = ["554 5.7.1 message rejected as spam"]
    summary, results, _ = run(outgoing("a", "b"), settings(server.port))
    assert results["a"] == SendResult("failed", 554, "DATA: 554 5.7.1 message rejected as spam", attempts=1)
    assert results["b"].status == "sent" and summary.connections == 1


def test_server_down_defers_everything(smtpd: Callable[..., Recorder]) -> None:
    """With nothing listening, every message is deferred (none failed) and the summary says why."""
    summary, results, _ = run(outgoing("a", "b", "c", "d"), settings(free_port(), max_connections=2))
    assert summary.sent == 0 and summary.failed == 0 and summary.deferred == 4
    assert summary.unreachable and "127.0.0.1" in summary.unreachable
    assert all(r.status == "deferred" and r.code is None for r in results.values())
    assert sum(r.attempts for r in results.values()) == 2 * 3  # two sessions tried three times; the rest waited


def test_dropped_connection_reconnects_and_continues(smtpd: Callable[..., Recorder]) -> None:
    """When the server drops the session mid-batch, the sender reconnects; each message arrives once."""
    server = smtpd()
    server.drop_at_mail = 3
    summary, results, _ = run(outgoing(*"abcdef"), settings(server.port))
    assert summary.sent == 6 and summary.connections == 3
    assert sorted(server.recipients()) == [f"{n}@example.com" for n in "abcdef"]
    assert results["c"].attempts == 2


def test_stalled_server_hits_the_message_timeout(smtpd: Callable[..., Recorder]) -> None:
    """A server that never answers DATA defers that message after the hard timeout; the next is sent."""
    server = smtpd()
    server.delay["a@example.com"] = 30
    started = time.monotonic()
    summary, results, _ = run(outgoing("a", "b"), settings(server.port, message_timeout=0.3, retry_attempts=1))
    assert time.monotonic() - started < 5
    assert results["a"].status == "deferred" and results["a"].code is None
    assert results["b"].status == "sent"
    assert summary.connections == 2  # the stalled session was abandoned, not reused


def test_starttls_and_auth(
    smtpd: Callable[..., Recorder], server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    """STARTTLS with a CA-trusted certificate, then AUTH, then delivery over TLS."""
    logins: list[LoginPassword] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        logins.append(auth_data)
        return AuthResult(success=auth_data == LoginPassword(b"digest", b"s3cret"), handled=False)

    server = smtpd(tls_context=server_tls, require_starttls=True, authenticator=authenticator, auth_required=True)
    smtp = settings(server.port, security="starttls", username="digest", password="s3cret")
    summary, _, _ = run(outgoing("a", "b"), smtp, tls_context=client_tls)
    assert summary.sent == 2 and server.tls_messages == 2 and len(logins) == 1


def test_implicit_tls(smtpd: Callable[..., Recorder], server_tls: ssl.SSLContext, client_tls: ssl.SSLContext) -> None:
    """security="tls" connects with TLS from the first byte."""
    server = smtpd(ssl_context=server_tls)
    summary, _, _ = run(outgoing("a"), settings(server.port, security="tls"), tls_context=client_tls)
    assert summary.sent == 1 and server.tls_messages == 1


def test_untrusted_certificate_sends_nothing(smtpd: Callable[..., Recorder], server_tls: ssl.SSLContext) -> None:
    """A certificate the client does not trust stops the session: nothing sent, everything deferred."""
    server = smtpd(tls_context=server_tls, require_starttls=True)
    untrusting = ssl.create_default_context()  # system CAs only
    summary, _, _ = run(outgoing("a", "b"), settings(server.port, security="starttls"), tls_context=untrusting)
    assert summary.sent == 0 and summary.deferred == 2 and not server.envelopes
    assert summary.unreachable and "CERTIFICATE_VERIFY_FAILED" in summary.unreachable


def test_wrong_password_raises_and_reports_nothing(
    smtpd: Callable[..., Recorder], server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    """A 535 at AUTH raises DeliveryError at once; on_result is never called, nothing is sent."""
    server = smtpd(
        tls_context=server_tls,
        require_starttls=True,
        authenticator=lambda *args: AuthResult(success=False, handled=False),
        auth_required=True,
    )
    smtp = settings(server.port, security="starttls", username="digest", password="wrong", max_connections=2)
    calls: list[str] = []
    with pytest.raises(DeliveryError, match="535") as info:
        asyncio.run(
            send_all(outgoing("a", "b", "c"), smtp, on_result=lambda m, r: calls.append(m.key), tls_context=client_tls)
        )
    assert info.value.hint and "wrong" not in str(info.value)
    assert calls == [] and not server.envelopes


def test_missing_starttls_refuses_to_auth_or_send(smtpd: Callable[..., Recorder]) -> None:
    """security="starttls" against a server without STARTTLS fails before AUTH or MAIL."""
    server = Recorder()

    def authenticator(*args: Any) -> AuthResult:
        server.auth_attempts += 1
        return AuthResult(success=True)

    smtpd(server, authenticator=authenticator, auth_require_tls=False)
    smtp = settings(server.port, security="starttls", username="digest", password="s3cret")
    calls: list[str] = []
    with pytest.raises(DeliveryError, match="STARTTLS"):
        asyncio.run(send_all(outgoing("a"), smtp, on_result=lambda m, r: calls.append(m.key)))
    assert server.auth_attempts == 0 and not server.envelopes and calls == []
    assert not server.mails_per_peer


def test_sender_refused_with_5xx_stops_the_run(smtpd: Callable[..., Recorder]) -> None:
    """A 5xx to MAIL FROM is a configuration problem: DeliveryError, no message marked failed."""
    server = smtpd()
    server.refuse_senders.add("nobody@example.org")
    messages = [replace(m, sender="nobody@example.org") for m in outgoing("a", "b")]
    calls: list[str] = []
    with pytest.raises(DeliveryError, match="553"):
        asyncio.run(send_all(messages, settings(server.port), on_result=lambda m, r: calls.append(m.key)))
    assert calls == [] and not server.envelopes


def test_run_level_error_lets_other_sessions_report_accepted_messages(smtpd: Callable[..., Recorder]) -> None:
    """When one session hits a run-level error, a message another session had in flight is still reported."""
    server = smtpd()
    server.delay["a@example.com"] = 0.3
    server.refuse_senders.add("nobody@example.org")
    slow, refused, never = outgoing("a", "b", "c")
    refused = replace(refused, sender="nobody@example.org")
    results: dict[str, SendResult] = {}
    with pytest.raises(DeliveryError, match="553"):
        asyncio.run(
            send_all(
                [slow, refused, never],
                settings(server.port, max_connections=2),
                on_result=lambda m, r: results.setdefault(m.key, r),
            )
        )
    assert list(results) == ["a"] and results["a"].status == "sent"
    assert server.recipients() == ["a@example.com"]


def test_unsafe_envelope_address_fails_alone(smtpd: Callable[..., Recorder]) -> None:
    """An envelope address with a line break is failed locally, never sent or repaired; others go."""
    server = smtpd()
    bad, good = outgoing("a", "b")
    bad = replace(bad, recipient="a@example.com>\r\nRCPT TO:<evil@example.com")
    _, results, _ = run([bad, good], settings(server.port))
    assert results["a"].status == "failed" and results["a"].code is None
    assert server.recipients() == ["b@example.com"]


def test_unsafe_envelope_sender_stops_the_run(smtpd: Callable[..., Recorder]) -> None:
    """A bounce address with a line break is a configuration error: DeliveryError before connecting."""
    server = smtpd()
    messages = [replace(m, sender="b@example.org\r\nRCPT TO:<evil@example.com>") for m in outgoing("a")]
    with pytest.raises(DeliveryError, match="sender"):
        asyncio.run(send_all(messages, settings(server.port), on_result=lambda m, r: None))
    assert not server.connections


def test_nothing_to_send_opens_no_connection() -> None:
    """An empty batch returns an empty summary without connecting anywhere."""
    summary, results, _ = run([], settings(free_port()))
    assert summary == SendSummary() and results == {}


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"host": "smtp.example.org", "security": "none"}, "plaintext SMTP"),
        ({"host": "10.0.0.5", "security": "none"}, "plaintext SMTP"),
        ({"security": "none", "username": "u", "password": "p"}, "password over a plaintext"),
        ({"security": "ssl"}, "security mode"),
        ({"max_connections": 0}, "max_connections"),
        ({"password": "p"}, "no username"),
    ],
)
def test_unsafe_settings_are_config_errors(overrides: dict[str, Any], match: str) -> None:
    """Plaintext to a remote host, AUTH over plaintext and nonsense limits are refused at load time."""
    with pytest.raises(ConfigError, match=match):
        settings(25, **overrides)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "localhost"])
def test_plaintext_allowed_on_loopback(host: str) -> None:
    """security="none" is accepted for loopback hosts without allow_insecure."""
    assert settings(25, host=host).security == "none"


def test_allow_insecure_permits_remote_plaintext_with_auth() -> None:
    """allow_insecure=True is the explicit opt-in for plaintext (and AUTH) to another host."""
    smtp = settings(25, host="relay.internal", username="u", password="p", allow_insecure=True)
    assert smtp.allow_insecure and smtp.security == "none"


def test_password_not_in_repr() -> None:
    """The SMTP password never appears in repr() (and so not in logs)."""
    smtp = settings(25, security="starttls", username="digest", password="hunter2-secret")
    assert "hunter2-secret" not in repr(smtp)


def _chunking_sink(record: Path) -> tuple[subprocess.Popen[str], int]:
    """bench/smtp_sink.py --chunking: a real aiosmtpd offering CHUNKING (BDAT), in another process."""
    sink = Path(__file__).resolve().parents[1] / "bench" / "smtp_sink.py"
    proc = subprocess.Popen(
        [sys.executable, str(sink), "--record", str(record), "--chunking"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline().split()[1])


def test_chunking_server_gets_the_message_by_bdat_with_the_hand_over_before_last(tmp_path: Path) -> None:
    """A server offering CHUNKING gets the whole message in one BDAT chunk, then "BDAT 0 LAST"; the hand-over
    is recorded after the chunk was stored and before LAST; what arrives is byte for byte what DATA would carry."""
    proc, port = _chunking_sink(tmp_path / "accepted.tsv")
    events: list[str] = []
    try:
        messages = outgoing("a", "b")

        def on_handover(msg: Outgoing, handed: bool) -> None:
            events.append(f"handover {msg.key} {handed}")
            record = tmp_path / "accepted.tsv"
            events.append(f"accepted before: {len(record.read_text().splitlines()) if record.exists() else 0}")

        summary, results, _ = run(messages, settings(port), on_handover=on_handover)
    finally:
        proc.communicate("quit\n", timeout=10)
    assert summary.sent == 2 and all(r.status == "sent" for r in results.values())
    assert events == ["handover a True", "accepted before: 0", "handover b True", "accepted before: 1"]
    ids = [line.split("\t")[1] for line in (tmp_path / "accepted.tsv").read_text().splitlines()]
    assert ids == [email.message_from_bytes(m.data)["Message-ID"] for m in messages]


def test_hand_over_failure_means_the_server_never_gets_the_message(smtpd: Callable[..., Recorder]) -> None:
    """If the hand-over cannot be recorded, the end-of-data line is never written: nothing is accepted."""
    server = smtpd()

    def on_handover(msg: Outgoing, handed: bool) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        run(outgoing("a"), settings(server.port), on_handover=on_handover)
    time.sleep(0.2)
    assert server.envelopes == []
