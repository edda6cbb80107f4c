"""What a digest showed as "Also for you" is recorded with the digest (schema v9) and read back from there.

Real runs (a real SQLite file, aiosmtpd, the test HTTP server for webhooks, the learned ranker): an archive page
and a feed rebuilt later label each paper as its digest did, with the suggestion's reason, whatever the profile
says by then; the webhook bodies label the suggestions; `digest evaluate` counts them. A store from before v9
keeps every row, and only its digests fall back to inferring which papers were suggestions."""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import feedparser
import pytest
from bs4 import BeautifulSoup
from conftest import SECRET_ENV, Sink, ingest_file, write_config
from webhook_server import WebhookServer, serve

from digest import config, pipeline, store
from digest.models import Paper, Profile
from digest.pipeline import archive, publish
from digest.pipeline.evaluate import evaluate
from digest.sources import read_dump
from digest.store import delivery

FIRST = date(2026, 3, 2)
# The liked paper's title: the learned ranker quotes it in its reason, so the reason carries markup to escape.
LIKED = 'KV cache <eviction> & "attention" sinks'
HOOKS = """
[[webhooks]]
name = "lab-json"
kind = "json"
url_env = "LAB_JSON_URL"

[[webhooks]]
name = "lab-slack"
kind = "slack"
url_env = "LAB_SLACK_URL"
"""


def _entry(arxiv_id: str, title: str, summary: str, day: date) -> dict[str, object]:
    return {
        "paper": {
            "id": arxiv_id, "title": title, "summary": summary, "upvotes": 3,
            "authors": [{"name": "Ada Lovelace"}], "publishedAt": f"{day}T12:00:00.000Z",
        },
        "title": title, "publishedAt": f"{day}T12:00:00.000Z", "numComments": 0,
    }  # fmt: skip


def _dumps(folder: Path, n: int) -> list[Path]:
    """``n`` daily API dumps: two speculative-decoding papers (2603.DD000, .DD001), a KV-cache paper the first
    keywords miss (.DD002), a robot paper and a protein paper."""
    folder.mkdir()
    files = []
    for i in range(n):
        day = FIRST + timedelta(days=i)
        ids = [f"2603.{i:02d}{j:03d}" for j in range(5)]
        entries = [
            _entry(ids[0], f"Faster speculative decoding with tree drafts {i}", "We speed up inference.", day),
            _entry(ids[1], f"A survey of speculative decoding, volume {i}", "A survey of decoding methods.", day),
            _entry(ids[2], f"{LIKED} {i}", "We shrink the KV cache of LLMs.", day),
            _entry(ids[3], f"Robot grasping in clutter {i}", "Robots pick objects.", day),
            _entry(ids[4], f"Protein folding at scale {i}", "Proteins fold.", day),
        ]
        path = folder / f"{day}.json"
        path.write_text(json.dumps(entries), encoding="utf-8")
        files.append(path)
    return files


def _user(keywords: str) -> str:
    return f"""
[[users]]
name = "ada"
email = "ada@example.org"
keywords = {keywords}
send_time = "07:00"
webhooks = ["lab-json", "lab-slack"]
"""


def _config(tmp_path: Path, sink: Sink, keywords: str) -> config.Config:
    """The learned ranker, archive pages (base_url), a feed, email and two webhooks for ada."""
    return config.load_config(write_config(tmp_path, sink.port, HOOKS + _user(keywords), 'ranker = "learned"'))


def _env(server: WebhookServer) -> dict[str, str]:
    return {**SECRET_ENV, "LAB_JSON_URL": f"{server.url}/json", "LAB_SLACK_URL": f"{server.url}/slack"}


@pytest.fixture
def server() -> Iterator[WebhookServer]:
    with serve() as running:
        yield running


def _crash(*args: object, **kwargs: object) -> bool:
    raise KeyboardInterrupt  # stands in for a kill: nothing after the outbox commit runs


def _text(html: str) -> str:
    """Text as a reader sees it: tags gone, entities decoded, whitespace collapsed."""
    return " ".join(BeautifulSoup(html, "lxml").get_text(" ").split())


@pytest.mark.parametrize(
    "keywords",
    ['["\\"kv cache\\""]', '["\\"protein folding\\""]'],
    ids=["now-matches-the-suggestion", "matches-neither"],
)
def test_a_suggestion_keeps_its_label_and_reason_when_pages_and_feeds_are_rebuilt_after_a_profile_change(
    tmp_path: Path, sink: Sink, server: WebhookServer, monkeypatch: pytest.MonkeyPatch, keywords: str
) -> None:
    """Day 1's digest suggests the KV-cache paper (ada liked day 0's); the run dies before its archive page is
    written. Ada then edits her keywords so that they match the suggestion and none of the matches (or match
    neither). The next morning's run rebuilds the page and writes her feed from the store: the suggestion is
    still "Also for you" with the reason it was given (escaped), the matches are still matches; the webhook
    bodies it sends label it too."""
    files = _dumps(tmp_path / "dumps", 2)
    cfg = _config(tmp_path, sink, '["\\"speculative decoding\\""]')
    env = _env(server)
    day = [datetime.combine(FIRST + timedelta(days=i), time(7, 5), tzinfo=UTC) for i in range(3)]
    ingest_file(cfg, files[0], day[0] - timedelta(hours=1))
    assert pipeline.run_once(cfg, env, now=day[0]).errors == ()
    pipeline.record_vote(cfg, "ada", "2603.00002", 1, now=day[0] + timedelta(hours=1))
    ingest_file(cfg, files[1], day[1] - timedelta(hours=1))
    monkeypatch.setattr(archive, "write_page", _crash)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_once(cfg, env, now=day[1])
    monkeypatch.undo()

    conn = store.open_store(cfg.digest.store)
    [lead] = [r for r in delivery.history(conn, users=["ada"]) if r.period == "2026-03-03" and r.lead_id is None]
    assert lead.status == "pending" and lead.paper_keys[-1] == "arxiv:2603.01002"
    [(key, why)] = conn.execute("SELECT paper_key, reason FROM outbox_suggestions WHERE id = ?", (lead.id,))
    assert key == "arxiv:2603.01002" and why.startswith(f'suggested: close to "{LIKED} 0" that you liked')
    page = cfg.feeds.output / "archive" / "ada" / "2026-03-03.html"
    assert not page.exists()

    path = cfg.path
    path.write_text(path.read_text(encoding="utf-8").replace('["\\"speculative decoding\\""]', keywords))
    cfg = config.load_config(path)
    assert pipeline.run_once(cfg, env, now=day[2]).errors == ()

    # The rebuilt page: the two matches as matches, the suggestion under "Also for you" with its reason.
    html = page.read_text(encoding="utf-8")
    soup = BeautifulSoup(html, "lxml")
    suggestions = soup.find("td", class_="suggestions")
    matches = next(td for td in soup.find_all("td", class_="papers") if "suggestions" not in td["class"])
    assert suggestions.h2.get_text() == "Also for you"
    assert f"{LIKED} 1" in _text(str(suggestions)) and f"Why: {why}" in _text(str(suggestions))
    assert "<eviction>" not in html and "&lt;eviction&gt;" in html  # the stored reason is data, escaped here
    for title in ("Faster speculative decoding with tree drafts 1", "A survey of speculative decoding, volume 1"):
        assert title in _text(str(matches)) and title not in _text(str(suggestions))
    assert f"{LIKED} 1" not in _text(str(matches))

    # The feed, written from the store by this run: the same labels for day 1's papers and day 0's.
    parsed = feedparser.parse((cfg.feeds.output / "ada.xml").read_bytes())
    assert parsed.bozo is False
    entries = {e.title: e for e in parsed.entries}
    suggested = entries[f"Also for you: {LIKED} 1"]
    assert [t.term for t in suggested.tags] == ["suggestion"]
    assert f"Also for you: {why}" in _text(suggested.content[0].value)
    matched = [f"{name} {i}" for i in (0, 1) for name in ("Faster speculative decoding with tree drafts",
                                                           "A survey of speculative decoding, volume")]  # fmt: skip
    for title in matched:
        assert title in entries and "tags" not in entries[title]
        assert "Also for you" not in entries[title].content[0].value

    # The webhook bodies of day 1's digest, sent by this run: the suggestion labelled, with its reason.
    posts = [r for r in server.requests if r.method == "POST"]
    [body] = [r.json for r in posts if r.path == "/json" and r.json["period"] == "2026-03-03"]
    assert [(p["key"], p["suggestion"]) for p in body["papers"]] == [
        *[(k, False) for k in lead.paper_keys[:-1]],
        ("arxiv:2603.01002", True),
    ]
    assert body["papers"][-1]["reason"] == why
    [slack] = [r.json for r in posts if r.path == "/slack" and "2026-03-03" in r.json["text"]]
    kinds = [b["text"]["text"] if b["type"] == "header" else b["type"] for b in slack["blocks"]]
    assert kinds.index("Also for you") == len(kinds) - 5  # heading, the suggestion's section, links, divider, footer
    assert slack["blocks"][0]["text"]["text"].startswith("2 new papers + 1 suggestion for ada")


# ------------------------------------------------------------------------------------------ a store from before v9


def _v8_store(path: Path) -> None:
    """A store at schema v8 (as the previous release left it): digests in every status, papers in every state,
    an empty period, a carried list, a message body, a vote, a ranker model, meta and feed ids."""
    path.parent.mkdir(parents=True, exist_ok=True)
    old = sqlite3.connect(path, isolation_level=None)
    for step, script in enumerate(store.MIGRATIONS[:8]):
        old.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {step + 1};\nCOMMIT;")
    stamp = datetime(2026, 11, 20, 7, tzinfo=UTC).isoformat(timespec="seconds")
    rows = [
        # (user, period, channel, lead_id, status, paper_keys)
        ("ada", "2026-11-20", "email", None, "sent", ["arxiv:2411.00001", "arxiv:2411.00002"]),
        ("ada", "2026-11-20", "webhook:lab", 1, "sent", ["arxiv:2411.00001", "arxiv:2411.00002"]),
        ("ada", "2026-11-21", "email", None, "pending", ["arxiv:2411.00003"]),
        ("cy", "2026-11-21", "email", None, "empty", []),
    ]
    old.execute("BEGIN")
    old.execute("INSERT INTO runs (id, started_at) VALUES (1, ?)", (stamp,))
    for i, (user, period, channel, lead, status, keys) in enumerate(rows, 1):
        old.execute(
            "INSERT INTO outbox (id, user, period, channel, lead_id, run_id, created_at, papers_until, paper_keys, "
            "message_id, status, scheduled_at, window_from) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?)",
            (i, user, period, channel, lead, stamp, stamp, json.dumps(keys), f"<m{i}@x.org>", status, stamp, stamp),
        )  # fmt: skip
    old.execute("INSERT INTO outbox_messages (id, message) VALUES (3, X'6d657373616765')")
    old.executemany(
        "INSERT INTO user_papers (paper_key, user, state, outbox_id, position, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        [("arxiv:2411.00001", "ada", "delivered", 2, 0, stamp), ("arxiv:2411.00002", "ada", "delivered", 2, 1, stamp),
         ("arxiv:2411.00009", "ada", "archived", 1, 2, stamp), ("arxiv:2411.00008", "ada", "dropped", 1, 0, stamp)],
    )  # fmt: skip
    old.execute("INSERT INTO outbox_carried (id, paper_keys) VALUES (3, '[\"arxiv:2411.00007\"]')")
    old.execute("INSERT INTO ratings VALUES ('ada', 'arxiv:2411.00002', 1, 'link', ?)", (stamp,))
    old.execute("INSERT INTO ranker_state VALUES ('ada', 'learned', X'00', ?, ?)", (stamp, stamp))
    old.execute("INSERT INTO meta (key, value) VALUES ('archive_from_outbox_id', '1')")
    old.execute("INSERT INTO feed_ids (paper_key, entry_id) VALUES ('arxiv:2411.00001', 'tag:x.org,2026:paper/1')")
    old.execute("COMMIT")
    old.close()


_TABLES = ("runs", "outbox_messages", "user_papers", "outbox_carried", "ratings", "ranker_state", "meta", "feed_ids")


def _snapshot(conn: sqlite3.Connection, table: str, columns: str = "*") -> list[tuple[object, ...]]:
    return [tuple(r) for r in conn.execute(f"SELECT {columns} FROM {table} ORDER BY 1, 2")]


def test_v8_store_keeps_every_row_and_its_old_digests_are_marked_unrecorded(store_path: Path) -> None:
    """Migrating v8 -> v9 keeps every row of every table as it was, breaks no reference, and marks the old
    digests as having no recorded suggestions (so readers infer them); a digest written after it records its
    own, and so does an old 'empty' period that becomes a digest (keeping its id)."""
    _v8_store(store_path)
    raw = sqlite3.connect(store_path)
    columns = ", ".join(r[1] for r in raw.execute("PRAGMA table_info(outbox)"))
    before = {t: _snapshot(raw, t) for t in _TABLES} | {"outbox": _snapshot(raw, "outbox", columns)}
    raw.close()

    conn = store.open_store(store_path)
    assert store.schema_version(conn) == len(store.MIGRATIONS) == 9
    assert {t: _snapshot(conn, t) for t in _TABLES} | {"outbox": _snapshot(conn, "outbox", columns)} == before
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert {r[0] for r in conn.execute("SELECT suggestions_known FROM outbox")} == {0}
    assert conn.execute("SELECT count(*) FROM outbox_suggestions").fetchone()[0] == 0
    # Nothing recorded for the old digests: their papers are left to the reader's inference.
    keys = ["arxiv:2411.00001", "arxiv:2411.00002", "arxiv:2411.00003", "arxiv:2411.00009"]
    assert delivery.shown_as(conn, {"ada": keys}) == {}
    assert [d.suggested for d in store.archive.archive_rows_after(conn, 0)] == [None, None]

    when = datetime(2026, 11, 21, 7, tzinfo=UTC)
    with store.transaction(conn):
        cy = delivery.add_message(
            conn, user="cy", period="2026-11-21", scheduled_at=when, window_from=when, run_id=None, papers_until=when,
            paper_keys=["arxiv:2411.00005", "arxiv:2411.00006"], message=b"x", message_id="<cy@x.org>", sender=None,
            recipient=None, now=when, suggested=[("arxiv:2411.00006", "close to <i>a liked paper</i>")],
        )  # fmt: skip
    assert cy == 4  # the old 'empty' row of the period, now a digest
    assert delivery.shown_as(conn, {"cy": ["arxiv:2411.00005", "arxiv:2411.00006"]}) == {
        "cy": {"arxiv:2411.00005": None, "arxiv:2411.00006": "close to <i>a liked paper</i>"}
    }
    [digest] = [d for d in store.archive.archive_rows_after(conn, 0) if d.user == "cy"]
    assert digest.suggested == (("arxiv:2411.00006", "close to <i>a liked paper</i>"),)
    # The due and delivered states read as before the migration.
    assert [r.id for r in delivery.due(conn, now=when + timedelta(hours=1))] == [3, 4]
    assert delivery.feed_keys(conn, "ada", limit=10) == [
        "arxiv:2411.00003", "arxiv:2411.00001", "arxiv:2411.00002", "arxiv:2411.00009"
    ]  # fmt: skip


def test_pages_and_feeds_infer_only_for_digests_from_before_v9(tmp_path: Path, sink: Sink, seeds: list[Path]) -> None:
    """A digest from before v9 is rebuilt as before (a mailed paper the keywords miss is a suggestion without
    a why); one written since is rebuilt from its record, even where that says the opposite of today's
    keywords: a recorded match the profile misses stays a match, a recorded suggestion it matches stays a
    suggestion with its reason. The feed says the same."""
    cfg = config.load_config(write_config(tmp_path, sink.port, _user('["LLM"]').replace("webhooks", "# webhooks")))
    papers = read_dump(seeds[0]).papers
    ada = next(p for p in cfg.profiles() if p.name == "ada")
    llm = [p for p in papers if _matches(ada, p)]
    other = [p for p in papers if not _matches(ada, p)]
    _v8_store(cfg.digest.store)
    raw = sqlite3.connect(cfg.digest.store)
    with raw:  # the v8 digests, re-pointed at real papers: one match and one paper the keywords miss
        keys = json.dumps([llm[0].key, other[0].key])
        raw.execute("UPDATE outbox SET paper_keys = ? WHERE id IN (1, 2)", (keys,))
        raw.execute("UPDATE user_papers SET paper_key = ? WHERE position = 0 AND outbox_id = 2", (llm[0].key,))
        raw.execute("UPDATE user_papers SET paper_key = ? WHERE position = 1 AND outbox_id = 2", (other[0].key,))
        raw.execute("DELETE FROM user_papers WHERE state != 'delivered'")
        raw.execute("UPDATE outbox SET status = 'sent' WHERE id = 3")
        raw.execute("UPDATE outbox SET paper_keys = '[]' WHERE id = 3")
    raw.close()
    conn = store.open_store(cfg.digest.store)
    store.ingest(conn, read_dump(seeds[0]), now=datetime(2026, 11, 20, 6, tzinfo=UTC))
    when = datetime(2026, 11, 22, 7, tzinfo=UTC)
    with store.transaction(conn):  # today's keywords miss other[1], recorded a match; match llm[1], a suggestion
        delivery.add_message(
            conn, user="ada", period="2026-11-22", scheduled_at=when, window_from=when, run_id=None,
            papers_until=when, paper_keys=[other[1].key, llm[1].key], message=b"x", message_id="<a@x.org>",
            sender=None, recipient=None, now=when, suggested=[(llm[1].key, 'close to "<b>x</b>" & co')],
        )  # fmt: skip
    old, new = (d for d in store.archive.archive_rows_after(conn, 0) if d.user == "ada" and d.paper_keys)
    inferred = archive.rebuild_digest(conn, ada, old)
    assert [m.paper.key for m in inferred.matches] == [llm[0].key] and inferred.matches[0].reason
    assert [(m.paper.key, m.reason) for m in inferred.suggestions] == [(other[0].key, "")]
    recorded = archive.rebuild_digest(conn, ada, new)
    assert [(m.paper.key, m.reason) for m in recorded.matches] == [(other[1].key, "")]
    assert [(m.paper.key, m.reason) for m in recorded.suggestions] == [(llm[1].key, 'close to "<b>x</b>" & co')]

    writer = publish.FeedWriter.for_run(conn, cfg)
    writer.explain([ada])
    assert writer.suggested["ada"] == {other[0].key, llm[1].key}
    assert writer.notes["ada"][llm[1].key] == ('close to "<b>x</b>" & co', ())
    assert writer.notes["ada"][other[1].key] == ("", ())
    assert writer.notes["ada"][llm[0].key][0]  # a match of an old digest: why it matches today
    writer.write_user(ada)
    parsed = feedparser.parse((cfg.feeds.output / "ada.xml").read_bytes())
    marked = {e.title.removeprefix("Also for you: ") for e in parsed.entries if e.title.startswith("Also for you: ")}
    assert marked == {" ".join(other[0].title.split()), " ".join(llm[1].title.split())}


def _matches(profile: Profile, paper: Paper) -> bool:
    from digest.matching import match_profile

    return bool(match_profile(profile, [paper]))


# ------------------------------------------------------------------------------------------ digest evaluate


def test_evaluate_counts_the_suggestions_the_run_delivered(tmp_path: Path) -> None:
    """With the learned ranker and a liked seed, each replayed day's "Also for you" papers are the ones its
    delivered digest recorded (among those shown), the labelled ones count as hits, and `digest evaluate`
    prints them and writes them beside the rankings."""
    files = _dumps(tmp_path / "dumps", 3)
    path = tmp_path / "config.toml"
    path.write_text(
        """
[digest]
store = "state/digest.db"
ranker = "learned"
[mail]
sender = "digest@example.org"
unsubscribe_mailto = "unsubscribe@example.org"
[[users]]
name = "ada"
email = "ada@example.org"
keywords = ['"speculative decoding"']
like = ["2603.00002"]
""",
        encoding="utf-8",
    )
    cfg = config.load_config(path)
    labels = frozenset(f"2603.{i:02d}{j:03d}" for i in range(3) for j in (0, 2))
    report = evaluate(cfg, SECRET_ENV, "ada", files, labels=labels)
    kv = {f"2603.{i:02d}002" for i in range(3)}
    for d in report.days:
        assert set(d.suggested) <= set(d.shown) and set(d.suggested) <= kv
        assert d.relevant_suggested == len(d.suggested)
    assert [d.suggested for d in report.days[1:]] == [("2603.01002",), ("2603.02002",)]
    assert report.suggestions_shown == report.suggestions_hit >= 2
    assert report.suggestions()["ada"][files[2].stem] == ["2603.02002"]

    from digest.app.cli import main

    (tmp_path / "labels.txt").write_text("\n".join(sorted(labels)), encoding="utf-8")
    out, printed = tmp_path / "rankings.json", io.StringIO()
    args = ["--config", str(path), "evaluate", "--user", "ada", *map(str, files), "--labels", f"{tmp_path}/labels.txt"]
    with contextlib.redirect_stdout(printed):
        assert main([*args, "--out", str(out), "--json"]) == 0
    summary = json.loads(printed.getvalue())
    assert (summary["suggestions_shown"], summary["suggestions_relevant"]) == (report.suggestions_shown,) * 2
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written["topics"] == report.rankings() and written["suggestions"] == report.suggestions()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(args) == 0
    n = report.suggestions_shown
    assert f'{n} "Also for you" suggestions shown, {n} of them relevant' in printed.getvalue()
