"""The webhook channel against a real local HTTP server: methods, paths and headers per kind, the ledger told
each step, 429/5xx retried as asked, other refusals classified, Matrix transactions idempotent, secrets hidden."""

from __future__ import annotations

import email.utils
import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from webhook_server import Recorded, Reply, WebhookServer, closed_port, serve

from digest.deliver.channel import Outcome, Parcel
from digest.deliver.webhook import WebhookChannel, WebhookTarget, build_parts, idempotency_key, parcel_data
from digest.errors import ConfigError, DeliveryError, StoreError
from digest.models import Digest, Match, Paper, Profile

SLACK_PATH = "/services/T0001ABCD/B0001EFGH/SlackSecretToken1234"
DISCORD_PATH = "/api/webhooks/123456789/DiscordSecretToken5678"
TOKEN = "syt_matrix_secret_token_9"
ROOM = "!room:example.org"
MID = "webhook:lab/<20261123.ada.x1@digest.example.org>"


class RecordingLedger:
    """Records every report in order; can refuse (raise) at the n-th hand-over, as a store that cannot write."""

    def __init__(self, *, refuse_handover: int | None = None) -> None:
        self.events: list[tuple[str, str, Any]] = []
        self.refuse_handover = refuse_handover
        self._handovers = 0

    def handed_over(self, parcel: Parcel, handed_over: bool) -> None:
        if handed_over:
            self._handovers += 1
            if self._handovers == self.refuse_handover:
                raise StoreError("could not record the hand-over", "the disk is full")
        self.events.append(("handed_over", parcel.key, handed_over))

    def progress(self, parcel: Parcel, parts_done: int) -> None:
        self.events.append(("progress", parcel.key, parts_done))

    def result(self, parcel: Parcel, outcome: Outcome) -> None:
        self.events.append(("result", parcel.key, outcome))

    def outcome(self, key: str) -> Outcome:
        (found,) = [e[2] for e in self.events if e[0] == "result" and e[1] == key]
        return found  # type: ignore[no-any-return]

    def reported(self, key: str) -> list[tuple[str, Any]]:
        return [(e[0], e[2]) for e in self.events if e[1] == key]


@pytest.fixture
def server() -> Iterator[WebhookServer]:
    with serve() as s:
        yield s


def target(server: WebhookServer, kind: str, **kw: Any) -> WebhookTarget:
    urls = {"slack": SLACK_PATH, "discord": DISCORD_PATH + "?thread_id=42", "json": "/hook?k=1", "matrix": ""}
    extra: dict[str, Any] = {"token": TOKEN, "room_id": ROOM} if kind == "matrix" else {}
    return WebhookTarget(**{"name": "lab", "kind": kind, "url": server.url + urls[kind], "timeout": 5.0, **extra, **kw})


def parcel(parts: list[dict[str, Any]], key: str = "p1", *, parts_done: int = 0, mid: str = MID) -> Parcel:
    return Parcel(key=key, user="ada", period="2026-11-23", data=parcel_data(parts), message_id=mid,
                  parts_done=parts_done)  # fmt: skip


def deliver(
    t: WebhookTarget, *parcels: Parcel, ledger: RecordingLedger | None = None, stop: Callable[[], bool] = lambda: False
) -> tuple[RecordingLedger, list[float]]:
    sleeps: list[float] = []
    ledger = ledger or RecordingLedger()
    WebhookChannel(t, sleep=sleeps.append).deliver(iter(parcels), ledger, stop=stop)
    return ledger, sleeps


def numbered(n: int) -> list[dict[str, Any]]:
    return [{"text": f"part {i}"} for i in range(1, n + 1)]


def accepted_in_order(ledger: RecordingLedger, key: str, first: int, last: int) -> list[tuple[str, Any]]:
    """The reports of a parcel whose parts first..last were each accepted at the first try."""
    steps: list[tuple[str, Any]] = []
    for n in range(first, last + 1):
        steps += [("handed_over", True), ("progress", n)]
    return [*steps, ("result", ledger.outcome(key))]


def a_digest(n: int) -> tuple[Digest, list[Match]]:
    matches = [
        Match(Paper(key=f"arxiv:2411.{i:05d}", title=f"Paper {i}", abstract="A" * 500, arxiv_id=f"2411.{i:05d}"),
              1.0, (), "why")
        for i in range(n)
    ]  # fmt: skip
    profile = Profile(name="ada", email="", webhooks=("lab",))
    now = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
    return Digest(profile, tuple(matches), now, "2026-11-23"), matches


def real_parts(kind: str, n: int) -> list[dict[str, Any]]:
    d, shown = a_digest(n)
    return build_parts(kind, d, shown, view_url=None, feed_url=None, now=d.generated_at)


# ---- each kind: method, URL, headers, bodies in order --------------------------------------------------------


def test_slack_posts_every_part_in_order(server: WebhookServer) -> None:
    """Slack: POST each Block Kit part to the webhook URL; "ok" is success; progress after each part."""
    parts = real_parts("slack", 40)
    assert len(parts) == 3
    ledger, sleeps = deliver(target(server, "slack"), parcel(parts))
    reqs = server.requests
    assert [(r.method, r.target) for r in reqs] == [("POST", SLACK_PATH)] * 3
    assert [r.json for r in reqs] == parts
    assert all(r.headers["content-type"] == "application/json" for r in reqs)
    assert all(r.headers["user-agent"].startswith("paper-digest/") for r in reqs)
    assert ledger.outcome("p1") == Outcome("sent", 200, "200 ok")
    assert ledger.reported("p1") == accepted_in_order(ledger, "p1", 1, 3)
    assert sleeps == []


def test_discord_posts_with_wait_true_kept_query(server: WebhookServer) -> None:
    """Discord: ?wait=true added to the URL's own query; the message JSON is the reply."""
    parts = real_parts("discord", 25)
    ledger, _ = deliver(target(server, "discord"), parcel(parts))
    reqs = server.requests
    assert [r.path for r in reqs] == [DISCORD_PATH] * 3
    assert all(r.query == {"thread_id": ["42"], "wait": ["true"]} for r in reqs)
    assert [r.json for r in reqs] == parts
    outcome = ledger.outcome("p1")
    assert (outcome.status, outcome.code, outcome.reply) == ("sent", 200, "200 message 3")


def test_matrix_puts_events_with_deterministic_txn_ids(server: WebhookServer) -> None:
    """Matrix: PUT .../rooms/<quoted room>/send/m.room.message/<txn> with the bearer token, one txn per part."""
    parts = real_parts("matrix", 3)
    big = [*parts, {**parts[0], "body": "second"}]
    ledger, _ = deliver(target(server, "matrix"), parcel(big))
    reqs = server.requests
    base = "/_matrix/client/v3/rooms/%21room%3Aexample.org/send/m.room.message/"
    assert [(r.method, r.target) for r in reqs] == [("PUT", base + idempotency_key(MID, i)) for i in range(2)]
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in reqs)
    assert [r.json for r in reqs] == big
    assert ledger.outcome("p1") == Outcome("sent", 200, "200 event $event2")
    assert idempotency_key(MID, 0) != idempotency_key(MID, 1)
    assert all(c.isalnum() or c in "-._~" for c in idempotency_key(MID, 0))


def test_json_posts_with_idempotency_key(server: WebhookServer) -> None:
    """Plain JSON: POST each body with an Idempotency-Key stable per part."""
    parts = real_parts("json", 150)
    ledger, _ = deliver(target(server, "json"), parcel(parts))
    reqs = server.requests
    assert [(r.method, r.target) for r in reqs] == [("POST", "/hook?k=1")] * 2
    assert [r.headers["idempotency-key"] for r in reqs] == [idempotency_key(MID, 0), idempotency_key(MID, 1)]
    assert "authorization" not in reqs[0].headers
    assert [r.json["part"] for r in reqs] == [1, 2]
    assert ledger.outcome("p1").status == "sent"


# ---- retries ---------------------------------------------------------------------------------------------------


def test_429_retry_after_seconds_then_sent(server: WebhookServer) -> None:
    """429 with Retry-After: 1 -> sleep 1 s, the attempt withdrawn then handed over again, then sent."""
    server.script(Reply(429, "rate_limited", {"Retry-After": "1"}), Reply(200))
    ledger, sleeps = deliver(target(server, "slack"), parcel(numbered(1)))
    assert sleeps == [1.0]
    assert ledger.reported("p1") == [
        ("handed_over", True), ("handed_over", False), ("handed_over", True), ("progress", 1),
        ("result", Outcome("sent", 200, "200 ok")),
    ]  # fmt: skip
    assert len(server.requests) == 2


def test_discord_json_retry_after_wins_over_header(server: WebhookServer) -> None:
    """Discord's JSON retry_after (float seconds) is honoured over its rounded Retry-After header."""
    limited = {"message": "You are being rate limited.", "retry_after": 0.25, "global": False}
    server.script(Reply(429, limited, {"Retry-After": "1"}))
    ledger, sleeps = deliver(target(server, "discord"), parcel(numbered(2)))
    assert sleeps == [0.25]
    assert ledger.outcome("p1").status == "sent"


def test_retry_after_http_date(server: WebhookServer) -> None:
    """Retry-After as an HTTP date counts from the injected clock."""
    now = 1_800_000_000.0
    server.script(Reply(503, "busy", {"Retry-After": email.utils.formatdate(now + 5, usegmt=True)}))
    sleeps: list[float] = []
    channel = WebhookChannel(target(server, "json"), sleep=sleeps.append, clock=lambda: now)
    ledger = RecordingLedger()
    channel.deliver([parcel(numbered(1))], ledger, stop=lambda: False)
    assert sleeps == [5.0]
    assert ledger.outcome("p1").status == "sent"


def test_long_retry_after_defers_and_leaves_the_rest(server: WebhookServer) -> None:
    """Retry-After: 3600 on part 2 -> deferred with retry_after=3600; part 3 and the next parcel not sent."""
    server.script(Reply(200), Reply(429, "slow down", {"Retry-After": "3600"}))
    ledger, sleeps = deliver(target(server, "slack"), parcel(numbered(3)), parcel(numbered(1), "p2"))
    assert ledger.outcome("p1") == Outcome("deferred", 429, "429 Too Many Requests: slow down", retry_after=3600.0)
    assert [r.json["text"] for r in server.requests] == ["part 1", "part 2"]
    assert ("progress", 1) in ledger.reported("p1") and ("progress", 2) not in ledger.reported("p1")
    assert ledger.reported("p2") == []  # left due: the target asked for an hour
    assert sleeps == []


def test_5xx_until_tries_run_out_defers(server: WebhookServer) -> None:
    """503 on every try -> exponential backoff between the 4 tries, then deferred with no retry_after."""
    server.script(*[Reply(503, "down")] * 4)
    ledger, sleeps = deliver(target(server, "slack"), parcel(numbered(1)))
    assert ledger.outcome("p1") == Outcome("deferred", 503, "503 Service Unavailable: down")
    assert len(server.requests) == 4
    assert len(sleeps) == 3 and 1 <= sleeps[0] <= 1.25 and 2 <= sleeps[1] <= 2.5 and 4 <= sleeps[2] <= 5
    assert [e for e in ledger.reported("p1") if e[0] == "handed_over"] == [("handed_over", True),
                                                                          ("handed_over", False)] * 4  # fmt: skip


def test_max_tries_and_408(server: WebhookServer) -> None:
    """408 is retried like 5xx; max_tries=2 means two requests."""
    server.script(Reply(408), Reply(408))
    ledger, sleeps = deliver(target(server, "json", max_tries=2), parcel(numbered(1)))
    assert ledger.outcome("p1").status == "deferred" and len(server.requests) == 2 and len(sleeps) == 1


# ---- permanent refusals -------------------------------------------------------------------------------------


def test_400_fails_the_parcel_and_goes_on(server: WebhookServer) -> None:
    """400 (invalid payload) fails that parcel permanently; the next parcel is still delivered."""
    server.script(Reply(400, {"message": "Invalid Form Body", "code": 50035}))
    ledger, _ = deliver(target(server, "discord"), parcel(numbered(2)), parcel(numbered(1), "p2"))
    assert ledger.outcome("p1") == Outcome("failed", 400, "400 Bad Request: Invalid Form Body 50035")
    assert ledger.reported("p1")[-2] == ("handed_over", False)
    assert ledger.outcome("p2").status == "sent"
    assert len(server.requests) == 2


@pytest.mark.parametrize("code", [401, 403, 404, 410])
def test_refused_target_fails_the_parcel_and_raises(server: WebhookServer, code: int) -> None:
    """404/410 (webhook deleted), 401/403: the parcel fails with the code, then the channel raises
    DeliveryError so the other parcels stay due instead of failing one by one."""
    server.script(Reply(code, "no_service"))
    with pytest.raises(DeliveryError) as info:
        deliver(target(server, "slack"), parcel(numbered(1)), parcel(numbered(1), "p2"))
    assert len(server.requests) == 1
    assert "SlackSecretToken" not in str(info.value)
    assert info.value.hint


def test_refused_target_leaves_every_parcel_due_and_says_why(server: WebhookServer) -> None:
    """A 410 (the channel is archived) refuses the target, not one digest: nothing is reported failed, the
    attempt is withdrawn (no longer in flight), and the error carries the reply and a hint."""
    server.script(Reply(410, "channel_is_archived"))
    ledger = RecordingLedger()
    with pytest.raises(DeliveryError) as info:
        deliver(target(server, "slack"), parcel(numbered(1)), parcel(numbered(1), "p2"), ledger=ledger)
    assert ledger.reported("p1") == [("handed_over", True), ("handed_over", False)]
    assert ledger.reported("p2") == []
    assert "410 Gone: channel_is_archived" in str(info.value) and info.value.hint


def test_redirect_is_not_followed(server: WebhookServer) -> None:
    """A 3xx is a wrong URL, not a hop to follow (it would carry the payload elsewhere)."""
    server.script(Reply(301, "", {"Location": "https://elsewhere.example/"}))
    ledger, _ = deliver(target(server, "json"), parcel(numbered(1)))
    assert ledger.outcome("p1").status == "failed" and ledger.outcome("p1").code == 301
    assert len(server.requests) == 1


# ---- network trouble ------------------------------------------------------------------------------------------


def test_connection_refused_defers(server: WebhookServer) -> None:
    """Nothing listening: handed over, then withdrawn, then deferred with no code; the rest stay due."""
    t = WebhookTarget(name="lab", kind="slack", url=f"http://127.0.0.1:{closed_port()}{SLACK_PATH}", timeout=5)
    ledger, sleeps = deliver(t, parcel(numbered(2)), parcel(numbered(1), "p2"))
    outcome = ledger.outcome("p1")
    assert (outcome.status, outcome.code) == ("deferred", None)
    assert outcome.reply.startswith("could not connect")
    assert ledger.reported("p1") == [("handed_over", True), ("handed_over", False), ("result", outcome)]
    assert ledger.reported("p2") == [] and sleeps == []


def test_hanging_server_defers_within_the_timeout(server: WebhookServer) -> None:
    """A server that never answers: deferred after about the timeout, not retried in this run."""
    server.script(Reply(200, delay=3.0))
    started = time.monotonic()
    ledger, _ = deliver(target(server, "json", timeout=0.5), parcel(numbered(1)))
    assert time.monotonic() - started < 2.0
    outcome = ledger.outcome("p1")
    assert (outcome.status, outcome.code) == ("deferred", None) and "no reply within 0.5 s" in outcome.reply
    assert ledger.reported("p1")[:2] == [("handed_over", True), ("handed_over", False)]


# ---- resuming and idempotency ----------------------------------------------------------------------------------


def test_resume_sends_only_the_parts_not_done(server: WebhookServer) -> None:
    """parts_done=2 of 4: parts 3 and 4 only, progress 3 then 4."""
    ledger, _ = deliver(target(server, "slack"), parcel(numbered(4), parts_done=2))
    assert [r.json["text"] for r in server.requests] == ["part 3", "part 4"]
    assert ledger.reported("p1") == accepted_in_order(ledger, "p1", 3, 4)


def test_all_parts_done_is_sent_without_a_request(server: WebhookServer) -> None:
    ledger, _ = deliver(target(server, "slack"), parcel(numbered(2), parts_done=2))
    assert server.requests == [] and ledger.outcome("p1").status == "sent"


def test_matrix_resend_and_retry_reuse_txn_ids(server: WebhookServer) -> None:
    """The same parcel twice (a crash before "sent" was recorded) and a retry after a 502 reuse the txn ids:
    the homeserver stores each event once."""
    parts = numbered(3)
    server.script(Reply(200), Reply(502, "bad gateway"))
    deliver(target(server, "matrix"), parcel(parts))
    deliver(target(server, "matrix"), parcel(parts))
    paths = [r.path for r in server.requests]
    assert len(paths) == 7 and len(set(paths)) == 3
    assert sorted(e["content"]["text"] for e in server.events.values()) == ["part 1", "part 2", "part 3"]


def test_matrix_distinct_parcels_use_distinct_txn_ids(server: WebhookServer) -> None:
    deliver(target(server, "matrix"), parcel(numbered(1)), parcel(numbered(1), "p2", mid=MID + "2"))
    assert len(server.events) == 2


# ---- secrets ---------------------------------------------------------------------------------------------------


def test_secrets_never_in_repr(server: WebhookServer) -> None:
    for t in (target(server, "slack"), target(server, "matrix"), target(server, "discord")):
        for text in (repr(t), repr(WebhookChannel(t))):
            assert "SecretToken" not in text and TOKEN not in text and server.url not in text
            assert "lab" in text


def test_secrets_never_in_reply_or_log(server: WebhookServer, caplog: pytest.LogCaptureFixture) -> None:
    """A reply echoing the URL or token, and an error about it, are scrubbed; logs never carry them."""
    caplog.set_level(logging.DEBUG)
    t = target(server, "discord")
    server.script(Reply(500, f"failed POST {t.url}&wait=true"), Reply(400, f"bad {DISCORD_PATH} ?wait=true"))
    ledger, _ = deliver(t, parcel(numbered(1)))
    reply = ledger.outcome("p1").reply
    assert ledger.outcome("p1").code == 400
    assert "DiscordSecretToken" not in reply and "123456789" not in reply and len(reply) <= 200
    m = target(server, "matrix")
    server.script(Reply(403, {"errcode": "M_FORBIDDEN", "error": f"token {TOKEN} not in room"}))
    ledger = RecordingLedger()
    with pytest.raises(DeliveryError) as info:
        deliver(m, parcel(numbered(1)), ledger=ledger)
    assert TOKEN not in str(info.value) and "M_FORBIDDEN" in str(info.value)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "SecretToken" not in logged and TOKEN not in logged
    assert "HTTP Request: POST http://127.0.0.1" in logged  # httpx's own line, its URL cut to the host


def test_reply_is_one_short_line(server: WebhookServer) -> None:
    server.script(Reply(400, "line one\nline two\r\n" + "x" * 1000))
    ledger, _ = deliver(target(server, "json"), parcel(numbered(1)))
    reply = ledger.outcome("p1").reply
    assert "\n" not in reply and "\r" not in reply and len(reply) <= 200
    assert reply.startswith("400 Bad Request: line one line two x")


# ---- stop and the ledger ---------------------------------------------------------------------------------------


def test_stop_between_parcels(server: WebhookServer) -> None:
    """Once stop() is true no new parcel starts: the second is neither sent nor reported."""
    ledger = RecordingLedger()

    def stop() -> bool:
        return any(e[0] == "result" for e in ledger.events)

    deliver(target(server, "slack"), parcel(numbered(1)), parcel(numbered(1), "p2"), ledger=ledger, stop=stop)
    assert len(server.requests) == 1 and ledger.reported("p2") == []


def test_stop_before_a_retry(server: WebhookServer) -> None:
    """A 503 while stopping: no retry, no sleep; deferred."""
    server.script(Reply(503, "down"))
    ledger, sleeps = deliver(target(server, "slack"), parcel(numbered(1)), stop=lambda: len(server.requests) > 0)
    assert len(server.requests) == 1 and sleeps == []
    outcome = ledger.outcome("p1")
    assert (outcome.status, outcome.code) == ("deferred", 503) and "stopped" in outcome.reply


def test_ledger_refusing_the_handover_sends_nothing(server: WebhookServer) -> None:
    """A store that cannot record the hand-over raises through deliver(), and that request is never sent."""
    with pytest.raises(StoreError):
        deliver(target(server, "slack"), parcel(numbered(3)), ledger=RecordingLedger(refuse_handover=1))
    assert server.requests == []
    with pytest.raises(StoreError):
        deliver(target(server, "slack"), parcel(numbered(3)), ledger=RecordingLedger(refuse_handover=2))
    assert [r.json["text"] for r in server.requests] == ["part 1"]


def test_rate_limit_headers_pause_before_the_next_request(server: WebhookServer) -> None:
    """An accepted request that used up the bucket (X-RateLimit-Remaining: 0) waits Reset-After before the next."""
    server.script(Reply(200, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "0.5"}))
    ledger, sleeps = deliver(target(server, "discord"), parcel(numbered(2)))
    assert sleeps == [0.5] and ledger.outcome("p1").status == "sent"


def test_undecodable_parcel_fails_without_a_request(server: WebhookServer) -> None:
    bad = Parcel(key="p1", user="ada", period="2026-11-23", data=b"not json", message_id=MID)
    ledger, _ = deliver(target(server, "slack"), bad)
    assert ledger.outcome("p1").status == "failed" and server.requests == []


def test_server_helper_scripts_by_callable(server: WebhookServer) -> None:
    """The helper also answers from a callable (what later tests use for request-dependent replies)."""

    def answer(request: Recorded) -> Reply:
        return Reply(200 if request.json["text"] == "part 1" else 400, "no")

    server.script(answer, answer)
    ledger, _ = deliver(target(server, "json"), parcel(numbered(2)))
    assert ledger.outcome("p1").code == 400 and ("progress", 1) in ledger.reported("p1")


# ---- configuration -------------------------------------------------------------------------------------------


def test_plain_http_only_to_loopback() -> None:
    """http:// to a remote host is refused (the URL is a secret); https anywhere and http to localhost are fine."""
    with pytest.raises(ConfigError) as info:
        WebhookTarget(name="lab", kind="slack", url="http://hooks.example.org" + SLACK_PATH)
    assert "SlackSecretToken" not in str(info.value) and "https://" in info.value.hint
    WebhookTarget(name="lab", kind="slack", url="https://hooks.slack.com" + SLACK_PATH)
    WebhookTarget(name="lab", kind="json", url="http://localhost:8080/hook")
    WebhookTarget(name="lab", kind="matrix", url="http://[::1]:8008", token="t", room_id=ROOM)


@pytest.mark.parametrize(
    "kw",
    [
        {"kind": "teams"},
        {"url": "ftp://example.org/x"},
        {"url": "not a url"},
        {"kind": "matrix", "token": None},
        {"kind": "matrix", "room_id": "#alias:example.org"},
        {"timeout": 0},
        {"max_tries": 0},
    ],
)
def test_unusable_targets_are_config_errors(kw: dict[str, Any]) -> None:
    base: dict[str, Any] = {
        "name": "lab",
        "kind": "json",
        "url": "https://example.org/h",
        "token": "t",
        "room_id": ROOM,
    }
    with pytest.raises(ConfigError):
        WebhookTarget(**{**base, **kw})


def test_channel_name() -> None:
    t = WebhookTarget(name="lab", kind="json", url="https://example.org/h")
    assert WebhookChannel(t).name == "webhook:lab"
    assert json.loads(parcel_data([{"a": 1}])) == {"parts": [{"a": 1}]}
