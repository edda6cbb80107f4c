"""Webhooks through the whole pipeline: a real aiosmtpd server and a real HTTP server on 127.0.0.1, real runs.

Each paper reaches each user at most once per channel they chose; a failing channel does not hold up another;
a dry run writes the request bodies; a webhook taken out of the config fails its digests with a reason."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import SECRET_ENV, Sink, user_block, write_config
from webhook_server import Reply, WebhookServer, serve

from digest import config, pipeline, store
from digest.errors import DeliveryError
from digest.store import delivery

HOOKS = """
[[webhooks]]
name = "lab-slack"
kind = "slack"
url_env = "LAB_SLACK_URL"

[[webhooks]]
name = "lab-matrix"
kind = "matrix"
homeserver = "{server}"
room_id = "!room:example.org"
token_env = "MATRIX_TOKEN"
"""


@pytest.fixture
def server() -> WebhookServer:
    with serve() as running:
        yield running  # type: ignore[misc]


def _config(tmp_path: Path, sink: Sink, server: WebhookServer, users: str) -> config.Config:
    path = write_config(tmp_path, sink.port, HOOKS.format(server=server.url) + users)
    return config.load_config(path)


def _env(server: WebhookServer) -> dict[str, str]:
    return {**SECRET_ENV, "LAB_SLACK_URL": f"{server.url}/services/T0/B0/secret", "MATRIX_TOKEN": "syt_secret"}


def _users() -> str:
    ada = user_block("ada", "['LLM', 'language model', 'diffusion']") + 'webhooks = ["lab-slack", "lab-matrix"]\n'
    bob = (
        '\n[[users]]\nname = "bob"\nkeywords = ["LLM", "agent"]\ncadence = "daily"\nsend_time = "07:00"\n'
        'webhooks = ["lab-slack"]\n'
    )
    return ada + bob


def _run(cfg: config.Config, env: dict[str, str], now: datetime, **options: object) -> pipeline.RunReport:
    return pipeline.run_once(cfg, env, now=now, options=pipeline.RunOptions(**options))  # type: ignore[arg-type]


def _ingest(cfg: config.Config, dump: Path, now: datetime) -> None:
    conn = store.open_store(cfg.digest.store)
    try:
        assert not pipeline.ingest_paths(conn, [dump], now=now)[1]
    finally:
        conn.close()


def _slack_titles(server: WebhookServer) -> list[str]:
    """Every paper title posted to Slack, from the section blocks' links."""
    titles = []
    for request in server.requests:
        if request.method != "POST":
            continue
        for block in request.json["blocks"]:
            if block["type"] == "section":
                titles.append(block["text"]["text"].split("|", 1)[1].split(">", 1)[0])
    return titles


def test_each_user_gets_each_digest_once_per_chosen_channel(
    tmp_path: Path, sink: Sink, server: WebhookServer, seeds: list[Path], now: datetime
) -> None:
    """ada (email + Slack + Matrix) and bob (Slack only) each get one digest per channel; a second run and a
    second day send only what is new, on every channel; status shows the channel of each row."""
    cfg = _config(tmp_path, sink, server, _users())
    env = _env(server)
    _ingest(cfg, seeds[0], now)
    report = _run(cfg, env, now)
    assert report.errors == () and report.failed == 0
    assert sink.recipients() == ["ada@example.org"]  # bob chose no email
    posts = [r for r in server.requests if r.method == "POST"]
    puts = [r for r in server.requests if r.method == "PUT"]
    assert posts and puts and all(r.path == "/services/T0/B0/secret" for r in posts)
    assert all(r.headers["authorization"] == "Bearer syt_secret" for r in puts)
    conn = store.open_store(cfg.digest.store)
    rows = delivery.history(conn)
    assert Counter((r.user, r.channel, r.status) for r in rows) == Counter(
        {("ada", "email", "sent"): 1, ("ada", "webhook:lab-slack", "sent"): 1, ("ada", "webhook:lab-matrix", "sent"): 1,
         ("bob", "webhook:lab-slack", "sent"): 1}
    )  # fmt: skip
    ada_keys = {r.channel: r.paper_keys for r in rows if r.user == "ada"}
    assert len(set(ada_keys.values())) == 1  # one selection of papers, on every channel
    first = len(server.requests), len(sink.messages)
    assert _run(cfg, env, now + timedelta(minutes=5)).sent == 0
    assert (len(server.requests), len(sink.messages)) == first
    # The next day: only the papers not seen before, once more on each channel.
    _ingest(cfg, seeds[1], now + timedelta(days=1))
    _run(cfg, env, now + timedelta(days=1))
    titles = Counter(_slack_titles(server))
    assert titles and max(titles.values()) <= 2  # two Slack users (ada, bob): a paper at most once each
    delivered = conn.execute("SELECT user, paper_key, count(*) FROM user_papers WHERE state = 'delivered' "
                             "GROUP BY user, paper_key HAVING count(*) > 1").fetchall()  # fmt: skip
    assert delivered == []
    # Each Matrix event was stored once, under its own transaction id.
    assert len(server.events) == len([r for r in server.requests if r.method == "PUT"])


def test_slack_rate_limit_defers_only_that_channel_until_retry_after(
    tmp_path: Path, sink: Sink, server: WebhookServer, seeds: list[Path], now: datetime
) -> None:
    """A 429 asking for an hour defers the Slack digests to then; the email and Matrix digests still go out;
    the next run before the hour sends nothing, the run after it delivers Slack once."""
    cfg = _config(tmp_path, sink, server, _users())
    env = _env(server)
    _ingest(cfg, seeds[0], now)

    def answer(request: object) -> Reply:
        return Reply(429, "rate_limited", {"Retry-After": "3600"})

    server.script(answer)
    report = _run(cfg, env, now)
    assert report.deferred >= 1 and sink.recipients() == ["ada@example.org"]
    conn = store.open_store(cfg.digest.store)
    slack = [r for r in delivery.history(conn) if r.channel == "webhook:lab-slack"]
    assert {r.status for r in slack} <= {"deferred", "pending"} and any(r.status == "deferred" for r in slack)
    row = conn.execute("SELECT next_attempt_at FROM outbox WHERE channel = 'webhook:lab-slack' "
                       "AND status = 'deferred'").fetchone()  # fmt: skip
    assert datetime.fromisoformat(row[0]) >= now + timedelta(hours=1)
    before = len(server.requests)
    _run(cfg, env, now + timedelta(minutes=30))
    assert len(server.requests) == before
    _run(cfg, env, now + timedelta(hours=1, minutes=1))
    slack = [r for r in delivery.history(conn) if r.channel == "webhook:lab-slack"]
    assert {r.status for r in slack} == {"sent"} and len(slack) == 2


def test_a_deleted_slack_webhook_stops_that_channel_and_keeps_its_digests_due(
    tmp_path: Path, sink: Sink, server: WebhookServer, seeds: list[Path], now: datetime
) -> None:
    """A 404 (the webhook was deleted) raises a clear error after the other channels went out; the Slack
    digests stay due, and go out once the URL is fixed."""
    cfg = _config(tmp_path, sink, server, _users())
    env = _env(server)
    _ingest(cfg, seeds[0], now)
    server.script(lambda r: Reply(404, "no_service") if r.method == "POST" else Reply(200))
    with pytest.raises(DeliveryError) as info:
        _run(cfg, env, now)
    assert "webhook:lab-slack" in str(info.value) and "no_service" in str(info.value)
    assert "secret" not in str(info.value) and info.value.hint
    assert sink.recipients() == ["ada@example.org"]
    conn = store.open_store(cfg.digest.store)
    assert {r.status for r in delivery.history(conn) if r.channel == "webhook:lab-slack"} <= {"pending", "deferred"}
    server.script()  # fixed: the default answer is success again
    assert _run(cfg, env, now + timedelta(minutes=10)).errors == ()
    assert {r.status for r in delivery.history(conn)} == {"sent"}


def test_dry_run_writes_each_webhooks_request_bodies(
    tmp_path: Path, sink: Sink, server: WebhookServer, seeds: list[Path], now: datetime
) -> None:
    """--dry-run writes the .eml and, per webhook, the JSON bodies in the target's shape; nothing is sent."""
    cfg = _config(tmp_path, sink, server, _users())
    _ingest(cfg, seeds[0], now)
    out = tmp_path / "dry"
    _run(cfg, _env(server), now, dry_run=out)
    names = sorted(p.name for p in out.iterdir() if p.is_file())
    period = now.date().isoformat()
    assert names == sorted([f"ada-{period}.eml", f"ada-{period}.lab-matrix.json", f"ada-{period}.lab-slack.json",
                            f"bob-{period}.lab-slack.json"])  # fmt: skip
    slack = json.loads((out / f"bob-{period}.lab-slack.json").read_text())
    assert isinstance(slack, list) and all("blocks" in body and len(body["blocks"]) <= 50 for body in slack)
    matrix = json.loads((out / f"ada-{period}.lab-matrix.json").read_text())
    assert all(body["format"] == "org.matrix.custom.html" for body in matrix)
    assert server.requests == [] and sink.messages == []


def test_a_webhook_taken_out_of_the_config_fails_its_queued_digests_with_a_reason(
    tmp_path: Path, sink: Sink, server: WebhookServer, seeds: list[Path], now: datetime
) -> None:
    """Digests queued for a webhook the config no longer has are failed with a reply naming it; the user's
    other channels are unaffected."""
    cfg = _config(tmp_path, sink, server, _users())
    env = _env(server)
    _ingest(cfg, seeds[0], now)
    _run(cfg, env, now, deliver=False)
    ada = next(u for u in cfg.users if u.name == "ada").model_copy(update={"webhooks": ("lab-slack",)})
    bob = next(u for u in cfg.users if u.name == "bob")
    smaller = replace(cfg, webhooks=tuple(h for h in cfg.webhooks if h.name != "lab-matrix"), users=(ada, bob))
    report = pipeline.deliver_due(store.open_store(cfg.digest.store), smaller, env, now=now)
    assert report.failed == 1
    conn = store.open_store(cfg.digest.store)
    gone = [r for r in delivery.history(conn) if r.channel == "webhook:lab-matrix"]
    assert [r.status for r in gone] == ["failed"] and "no longer in config.toml" in (gone[0].last_reply or "")
    assert {r.status for r in delivery.history(conn) if r.channel != "webhook:lab-matrix"} == {"sent"}
