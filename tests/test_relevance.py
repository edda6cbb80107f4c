"""`digest evaluate` and `digest suggest` on days of API JSON made here: the replay drives the real pipeline
(same digests as the keyword matcher picks, votes recorded, the real store untouched), and the proposed
profile edits follow the votes with their evidence."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from conftest import SECRET_ENV

from digest import config, pipeline, store
from digest.pipeline.evaluate import evaluate
from digest.pipeline.suggest import describe, suggest_edits

FIRST = date(2026, 3, 2)


def _entry(arxiv_id: str, title: str, summary: str, day: date) -> dict[str, object]:
    return {
        "paper": {
            "id": arxiv_id, "title": title, "summary": summary, "upvotes": 3,
            "authors": [{"name": "Ada Lovelace"}], "publishedAt": f"{day}T12:00:00.000Z",
        },
        "title": title, "publishedAt": f"{day}T12:00:00.000Z", "numComments": 0,
    }  # fmt: skip


def _days(folder: Path, n: int) -> tuple[list[Path], set[str]]:
    """``n`` daily dumps: each has a speculative-decoding paper (relevant), a speculative-decoding survey (not
    relevant), a KV-cache paper the keywords miss (relevant) and two unrelated papers. Returns the files and
    the relevant arXiv ids."""
    folder.mkdir()
    files, relevant = [], set()
    for i in range(n):
        day = FIRST + timedelta(days=i)
        ids = [f"2603.{i:02d}{j:03d}" for j in range(5)]
        entries = [
            _entry(ids[0], f"Faster speculative decoding with tree drafts {i}", "We speed up inference.", day),
            _entry(ids[1], f"A survey of speculative decoding, volume {i}", "A survey of decoding methods.", day),
            _entry(ids[2], f"KV cache eviction by attention sinks {i}", "We shrink the KV cache of LLMs.", day),
            _entry(ids[3], f"Robot grasping in clutter {i}", "Robots pick objects.", day),
            _entry(ids[4], f"Protein folding at scale {i}", "Proteins fold.", day),
        ]
        relevant |= {ids[0], ids[2]}
        path = folder / f"{day}.json"
        path.write_text(json.dumps(entries), encoding="utf-8")
        files.append(path)
    return files, relevant


def _config(tmp_path: Path) -> config.Config:
    path = tmp_path / "config.toml"
    path.write_text(
        """
[digest]
store = "state/digest.db"
[mail]
sender = "digest@example.org"
unsubscribe_mailto = "unsubscribe@example.org"
[[users]]
name = "ada"
email = "ada@example.org"
keywords = ['"speculative decoding"']
""",
        encoding="utf-8",
    )
    return config.load_config(path)


def test_evaluate_replays_the_keyword_digests_and_counts_recall(tmp_path: Path) -> None:
    """Each day's digest shows exactly the day's keyword matches; recall counts the missed KV-cache papers;
    every shown paper is voted on; the real store is never created."""
    files, relevant = _days(tmp_path / "dumps", 4)
    cfg = _config(tmp_path)
    report = evaluate(cfg, SECRET_ENV, "ada", files, labels=frozenset(relevant))
    assert [d.day for d in report.days] == [f.stem for f in files]
    for i, day in enumerate(report.days):
        assert sorted(day.shown) == [f"2603.{i:02d}000", f"2603.{i:02d}001"]  # the two speculative-decoding ones
        assert day.votes == 2 and (day.relevant_listed, day.relevant_shown) == (2, 1)
    assert report.recall == pytest.approx(0.5) and report.precision == pytest.approx(0.5)
    assert report.rankings()["ada"][files[0].stem] == list(report.days[0].shown)
    assert not cfg.digest.store.exists()


def test_evaluate_rates_the_share_asked_and_scores_from_a_day(tmp_path: Path) -> None:
    """--rated 0 casts no vote; --from-day scores only the later days."""
    files, relevant = _days(tmp_path / "dumps", 3)
    report = evaluate(_config(tmp_path), SECRET_ENV, "ada", files, labels=frozenset(relevant), rated=0.0, from_day=2)
    assert sum(d.votes for d in report.days) == 0
    assert [d.day for d in report.scored] == [files[2].stem]


def test_evaluate_refuses_an_unknown_user(tmp_path: Path) -> None:
    files, _ = _days(tmp_path / "dumps", 1)
    with pytest.raises(config.ConfigError, match="no user named 'bob'"):
        evaluate(_config(tmp_path), SECRET_ENV, "bob", files)


def _ingest_and_vote(cfg: config.Config, files: list[Path], votes: dict[str, int]) -> None:
    now = datetime(2026, 3, 10, tzinfo=UTC)
    conn = store.open_store(cfg.digest.store)
    try:
        assert not pipeline.ingest_paths(conn, files, now=now)[1]
    finally:
        conn.close()
    for ref, vote in votes.items():
        pipeline.record_vote(cfg, "ada", ref, vote, now=now)


def test_suggest_proposes_an_exclusion_and_an_addition_with_their_evidence(tmp_path: Path) -> None:
    """Three 👎 on matched surveys propose excluding "survey"; three 👍 on KV-cache papers the keywords missed
    propose adding "kv cache"; each says what it would have removed or added."""
    files, _ = _days(tmp_path / "dumps", 3)
    cfg = _config(tmp_path)
    votes = {f"2603.{i:02d}001": -1 for i in range(3)} | {f"2603.{i:02d}002": 1 for i in range(3)}
    votes |= {f"2603.{i:02d}000": 1 for i in range(3)}
    _ingest_and_vote(cfg, files, votes)
    report = suggest_edits(cfg, "ada")
    assert (report.up, report.down) == (6, 3)
    excludes = {e.query: e for e in report.edits if e.kind == "exclude"}
    adds = {e.query: e for e in report.edits if e.kind == "add"}
    assert "survey" in excludes and excludes["survey"].evidence == 3 and excludes["survey"].against == 0
    assert sorted(excludes["survey"].removed) == sorted(
        f"A survey of speculative decoding, volume {i}" for i in range(3)
    )
    assert '"kv cache"' in adds and adds['"kv cache"'].evidence == 3 and adds['"kv cache"'].against == 0
    text = "\n".join(describe(report))
    assert 'exclude += ["survey"]' in text and 'keywords += ["\\"kv cache\\""]' in text


def test_suggest_needs_repeated_evidence_and_none_against(tmp_path: Path) -> None:
    """One 👎 is not enough; a term also in a liked paper is never proposed for exclusion."""
    files, _ = _days(tmp_path / "dumps", 2)
    cfg = _config(tmp_path)
    # "speculative"/"decoding" words are the profile's own; "survey" is in one disliked paper only.
    _ingest_and_vote(cfg, files, {"2603.00001": -1, "2603.00000": 1})
    assert [e for e in suggest_edits(cfg, "ada").edits if e.kind == "exclude"] == []


def test_learned_ranker_trains_on_votes_then_keeps_its_model_until_the_next_vote(tmp_path: Path) -> None:
    """With ranker = "learned": a run after a vote stores the user's model (votes_until = that vote), the next
    run without a vote loads it instead of training again, and a digest then carries an "Also for you" paper
    the keywords missed, with its reason."""
    files, _ = _days(tmp_path / "dumps", 3)
    cfg = _config(tmp_path)
    cfg = config.load_config(cfg.path.parent / _learned(cfg.path))
    env = SECRET_ENV
    start = datetime.combine(FIRST, datetime.min.time(), tzinfo=UTC)
    day = [start + timedelta(days=i, hours=7, minutes=5) for i in range(3)]
    conn = store.open_store(cfg.digest.store)
    try:
        pipeline.ingest_paths(conn, files[:1], now=day[0] - timedelta(hours=1))
    finally:
        conn.close()
    pipeline.run_once(cfg, env, now=day[0], options=pipeline.RunOptions(fetch=False, deliver=False))
    vote_at = day[0] + timedelta(hours=1)
    pipeline.record_vote(cfg, "ada", "2603.00002", 1, now=vote_at)  # the KV-cache paper, a liked non-match
    for i in (1, 2):
        conn = store.open_store(cfg.digest.store)
        try:
            pipeline.ingest_paths(conn, files[i : i + 1], now=day[i] - timedelta(hours=1))
        finally:
            conn.close()
        pipeline.run_once(cfg, env, now=day[i], options=pipeline.RunOptions(fetch=False, deliver=False))
        conn = store.open_store(cfg.digest.store)
        try:
            rows = conn.execute("SELECT votes_until, updated_at FROM ranker_state WHERE user = 'ada'").fetchall()
            keys = conn.execute("SELECT paper_keys FROM outbox WHERE user = 'ada' ORDER BY id DESC").fetchone()[0]
        finally:
            conn.close()
        assert len(rows) == 1 and datetime.fromisoformat(rows[0][0]) == vote_at
        if i == 1:
            trained_at = rows[0][1]
            assert "arxiv:2603.01002" in keys  # the day's KV-cache paper, suggested after a 👍 on one like it
        else:
            assert rows[0][1] == trained_at  # no vote since: the stored model was loaded, not trained again


def _learned(path: Path) -> str:
    text = path.read_text(encoding="utf-8").replace("[digest]\n", '[digest]\nranker = "learned"\n', 1)
    out = path.with_name("learned.toml")
    out.write_text(text, encoding="utf-8")
    return out.name


def test_a_vote_cast_while_a_run_ranks_is_trained_on_by_the_next_run(tmp_path: Path) -> None:
    """Votes are read one user at a time as the ranker trains them. A vote recorded after a user's votes were
    read (a click served by `digest serve` during a run) is not marked as seen by the model saved at the end:
    the next run retrains that user."""
    from digest import matching
    from digest.pipeline import plan

    files, _ = _days(tmp_path / "dumps", 2)
    cfg = _config(tmp_path)
    cfg = config.load_config(cfg.path.parent / _learned(cfg.path))
    _ingest_and_vote(cfg, files, {"2603.00002": 1})
    profile = cfg.user("ada")
    now = datetime(2026, 3, 11, 7, tzinfo=UTC)
    conn = store.open_store(cfg.digest.store)
    try:
        context = plan.ranker_context(conn, "learned", [profile], now=now)
        assert "ada" in context.votes
        ranker = matching.make_ranker("learned", context)
        assert ranker.model(profile) is not None  # type: ignore[attr-defined]  # ada's votes are read here
        first = max(v.at for v in context.votes["ada"])
        pipeline.record_vote(cfg, "ada", "2603.01002", 1, now=now + timedelta(minutes=1))
        plan.save_ranker_states(conn, "learned", ranker, context, now=now + timedelta(minutes=2))
        until = conn.execute("SELECT votes_until FROM ranker_state WHERE user = 'ada'").fetchone()[0]
        assert datetime.fromisoformat(until) == first
        again = plan.ranker_context(conn, "learned", [profile], now=now + timedelta(days=1))
        assert "ada" in again.votes and len(again.votes["ada"]) == 2
    finally:
        conn.close()
