"""Archive pages (issue 13): every digest as a static page, a paginated index, papers archived, not carried over."""

from __future__ import annotations

import contextlib
import email
import email.message
import html
import io
import re
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from bs4 import BeautifulSoup
from conftest import SECRET_ENV, Sink, assert_golden, ingest_file, run_once, user_block, write_config

from digest import config, pipeline, render, store
from digest.app import server
from digest.matching import match_profile
from digest.models import Digest, Hit, Match, Paper, Profile
from digest.pipeline import archive
from digest.store import delivery

MONDAY = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
BROAD = user_block("ada", "['LLM', '\"language model\"', 'agent*', 'model']") + "max_papers = 3\n"


def _received(sink: Sink, user: str) -> list[email.message.Message]:
    return [email.message_from_bytes(data) for _, rcpts, data in sink.messages if f"{user}@example.org" in rcpts]


def _html_part(message: email.message.Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/html":
            return part.get_payload(decode=True).decode("utf-8")  # type: ignore[union-attr]
    raise AssertionError("no text/html part")


def _matching(cfg: config.Config, conn, name: str) -> list[str]:  # type: ignore[no-untyped-def]
    profile = next(p for p in cfg.profiles() if p.name == name)
    return [m.paper.key for m in match_profile(profile, [sp.paper for sp in store.list_papers(conn)])]


def _titles(conn, keys: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
    return [sp.paper.title for sp in store.get_papers(conn, keys)]


def _page_text(path: Path) -> str:
    """A page's text with tags removed and entities decoded, whitespace collapsed (titles carry <mark> tags)."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8"))).split())


# ------------------------------------------------------------------------------------------ one run


def test_overflow_is_archived_on_the_page_and_never_offered_again(tmp_path: Path, sink: Sink, seeds: list[Path]):
    """With base_url and more matches than max_papers: the page lists every match, the email links to it,
    the overflow is 'archived' in the store (not carried), and the next runs do not send it."""
    cfg = config.load_config(write_config(tmp_path, sink.port, BROAD))
    ingest_file(cfg, seeds[0], MONDAY - timedelta(hours=1))
    conn = store.open_store(cfg.digest.store)
    matching = _matching(cfg, conn, "ada")
    assert len(matching) > 6
    run_once(cfg, MONDAY)
    [message] = _received(sink, "ada")
    [row] = [r for r in delivery.history(conn, users=["ada"]) if r.status == "sent"]
    shown = list(row.paper_keys)
    assert len(shown) == 3
    page = cfg.feeds.output / "archive" / "ada" / f"{row.period}.html"
    text = _page_text(page)
    for title in _titles(conn, matching):
        assert " ".join(title.split()) in text, title
    url = f"https://digest.example.org/feeds/archive/ada/{row.period}.html"
    body = _html_part(message)
    assert body.count(f'href="{url}"') >= 2  # "View in browser" and "N more papers"
    states = {s["paper_key"]: s["state"] for s in delivery.user_paper_states(conn, "ada")}
    archived = {k for k, s in states.items() if s == "archived"}
    assert archived == set(matching) - set(shown)
    assert not [k for k, s in states.items() if s == "carried"]
    # The next days offer nothing the page listed; every match is delivered or archived, once.
    for day in range(1, 4):
        now = MONDAY + timedelta(days=day)
        digest, _cache, _links = pipeline.preview_digest(cfg, SECRET_ENV, "ada", now=now)
        assert not {m.paper.key for m in (*digest.matches, *digest.overflow)} & set(matching)
        run_once(cfg, now)
    sent = [k for r in delivery.history(conn, users=["ada"]) if r.status == "sent" for k in r.paper_keys]
    assert sorted(sent) == sorted(shown) and not set(sent) & archived
    index = (page.parent / "index.html").read_text(encoding="utf-8")
    assert f'href="{row.period}.html"' in index


def test_status_lists_archived_papers(tmp_path: Path, sink: Sink, seeds: list[Path]):
    """`digest status --user` says which papers were archived (listed on the page, not mailed)."""
    from digest.app.cli import main

    path = write_config(tmp_path, sink.port, BROAD)
    cfg = config.load_config(path)
    ingest_file(cfg, seeds[0], MONDAY - timedelta(hours=1))
    run_once(cfg, MONDAY)
    conn = store.open_store(cfg.digest.store)
    archived = [s for s in delivery.user_paper_states(conn, "ada") if s["state"] == "archived"]
    assert archived
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["--config", str(path), "status", "--user", "ada"]) == 0
    assert "archived" in out.getvalue() and str(archived[0]["title"])[:30] in out.getvalue()


def test_archived_state_is_written_with_the_outbox_row(tmp_path: Path, sink: Sink, seeds: list[Path]):
    """The archived papers and the message are one transaction: a digest given up keeps them archived (they
    were shown on a page), its mailed papers go back to the pool."""
    cfg = config.load_config(write_config(tmp_path, sink.port, BROAD))
    ingest_file(cfg, seeds[0], MONDAY - timedelta(hours=1))
    run_once(cfg, MONDAY, deliver=False)
    conn = store.open_store(cfg.digest.store)
    [row] = delivery.history(conn, users=["ada"])
    archived = {
        r[0]
        for r in conn.execute("SELECT paper_key FROM user_papers WHERE outbox_id = ? AND state = 'archived'", (row.id,))
    }
    assert row.status == "pending" and archived
    delivery.expire(conn, now=MONDAY + timedelta(days=5), max_age=timedelta(hours=48))
    settled = delivery.settled_among(conn, [*row.paper_keys, *archived], ["ada"]).get("ada", set())
    assert settled == archived  # the mailed ones are offered again, the archived ones are not


def test_without_base_url_nothing_is_archived(tmp_path: Path, sink: Sink, seeds: list[Path]):
    """No base_url: no archive folder, no view link, the overflow is carried over as before."""
    path = write_config(tmp_path, sink.port, BROAD)
    path.write_text(path.read_text(encoding="utf-8").replace('base_url = "https://digest.example.org"\n', ""))
    cfg = config.load_config(path)
    ingest_file(cfg, seeds[0], MONDAY - timedelta(hours=1))
    run_once(cfg, MONDAY)
    conn = store.open_store(cfg.digest.store)
    states = {s["state"] for s in delivery.user_paper_states(conn, "ada")}
    assert "carried" in states and "archived" not in states
    assert not (cfg.feeds.output / "archive").exists()
    assert "/archive/" not in _html_part(_received(sink, "ada")[0])


def test_a_run_stopped_before_the_page_gets_it_from_the_next(
    tmp_path: Path, sink: Sink, seeds: list[Path], monkeypatch: pytest.MonkeyPatch
):
    """A run that dies after the outbox commit and before the page is written: the next run writes the page
    (rebuilt from the store, the same bytes) and the index."""
    cfg = config.load_config(write_config(tmp_path, sink.port, BROAD))
    ingest_file(cfg, seeds[0], MONDAY - timedelta(hours=1))
    real_write = archive.write_page

    def crash(*args: object, **kwargs: object) -> bool:
        raise KeyboardInterrupt  # stands in for the kill: nothing after the commit runs

    monkeypatch.setattr(archive, "write_page", crash)
    with pytest.raises(KeyboardInterrupt):
        run_once(cfg, MONDAY)
    conn = store.open_store(cfg.digest.store)
    [row] = delivery.history(conn, users=["ada"])
    folder = cfg.feeds.output / "archive" / "ada"
    assert row.status == "pending" and not (folder / f"{row.period}.html").exists()
    monkeypatch.setattr(archive, "write_page", real_write)
    run_once(cfg, MONDAY + timedelta(minutes=5))
    page = folder / f"{row.period}.html"
    assert page.exists() and f'href="{row.period}.html"' in (folder / "index.html").read_text(encoding="utf-8")
    assert len(_received(sink, "ada")) == 1
    # The rebuilt page is the page a run writes: delete it and compare with a run that writes it itself.
    rebuilt = page.read_bytes()
    other = tmp_path / "other"
    other.mkdir()
    cfg2 = config.load_config(write_config(other, sink.port, BROAD))
    ingest_file(cfg2, seeds[0], MONDAY - timedelta(hours=1))
    run_once(cfg2, MONDAY)
    assert (cfg2.feeds.output / "archive" / "ada" / f"{row.period}.html").read_bytes() == rebuilt


def test_dry_run_writes_pages_beside_its_feeds(tmp_path: Path, sink: Sink, seeds: list[Path]):
    """A dry run writes its archive pages into the dry-run folder and leaves the real feeds folder alone."""
    cfg = config.load_config(write_config(tmp_path, sink.port, BROAD))
    ingest_file(cfg, seeds[0], MONDAY - timedelta(hours=1))
    run_once(cfg, MONDAY, dry_run=tmp_path / "dry")
    assert list((tmp_path / "dry" / "feeds" / "archive" / "ada").glob("*.html"))
    assert not (cfg.feeds.output / "archive").exists()


# ------------------------------------------------------------------------------------------ feeds


def test_user_feed_has_why_lines_links_and_points_to_the_archive(tmp_path: Path, sink: Sink, seeds: list[Path]):
    """Parsed back with feedparser: each entry's content has the why line, highlighted terms and visible
    links; the user's feed links to their archive index, the global feed to the feeds index."""
    cfg = config.load_config(write_config(tmp_path, sink.port, BROAD))
    ingest_file(cfg, seeds[0], MONDAY - timedelta(hours=1))
    run_once(cfg, MONDAY)
    parsed = feedparser.parse((cfg.feeds.output / "ada.xml").read_bytes())
    assert parsed.bozo is False and parsed.entries
    assert parsed.feed.link == "https://digest.example.org/feeds/archive/ada/index.html"
    for entry in parsed.entries:
        content = entry.content[0].value
        assert entry.content[0].type == "text/html"
        assert "<b>Why it matched:</b> " in content, content[:300]
        if "Why it matched:</b> abstract:" in content:
            assert content.count("<b>") >= 2, content[:300]  # a matched term highlighted in the excerpt
        assert ">Hugging Face</a>" in content
    glob = feedparser.parse((cfg.feeds.output / "all.xml").read_bytes())
    assert glob.feed.link == "https://digest.example.org/feeds/"
    assert all("Why it matched" not in e.content[0].value for e in glob.entries)


# ------------------------------------------------------------------------------------------ index pages


def _profile(name: str = "ada", display: str | None = None) -> Profile:
    return Profile(name=name, email=f"{name}@example.org", keywords=("LLM",), display_name=display)


def _fill_outbox(conn, user: str, n: int) -> None:  # type: ignore[no-untyped-def]
    store.archive.archive_marks(conn)
    with store.transaction(conn):
        for i in range(n):
            day = datetime(2026, 1, 1, 7, tzinfo=UTC) + timedelta(days=i)
            delivery.add_message(
                conn, user=user, period=day.date().isoformat(), scheduled_at=day, window_from=day, run_id=None,
                papers_until=day, paper_keys=[f"k{i}", f"j{i}"], message=b"x", message_id=f"<{i}@x>",
                sender="d@example.org", recipient=f"{user}@example.org", now=day, archived=[f"a{i}"],
            )  # fmt: skip


def test_index_is_paginated_oldest_pages_fixed(tmp_path: Path, sink: Sink):
    """65 digests make 3 index pages (30, 30, and the newest 5 on index.html), newest first, linked both ways;
    a later digest rewrites index.html only while the full pages stay as they are."""
    cfg = config.load_config(write_config(tmp_path, sink.port, BROAD))
    conn = store.open_store(cfg.digest.store)
    _fill_outbox(conn, "ada", 65)
    out = tmp_path / "site"
    archive.write_index(conn, cfg, out, _profile(), start=1)
    folder = out / "archive" / "ada"
    assert sorted(p.name for p in folder.iterdir()) == ["index-1.html", "index-2.html", "index.html"]
    pages = {p.name: p.read_text(encoding="utf-8") for p in folder.iterdir()}
    periods = {name: re.findall(r'href="(2026-[0-9-]+)\.html"', text) for name, text in pages.items()}
    assert [len(periods[n]) for n in ("index.html", "index-2.html", "index-1.html")] == [5, 30, 30]
    assert periods["index.html"][0] == "2026-03-06" and periods["index-1.html"][-1] == "2026-01-01"
    every = periods["index.html"] + periods["index-2.html"] + periods["index-1.html"]
    assert every == sorted(every, reverse=True) and len(set(every)) == 65
    assert 'href="index-2.html" rel="next"' in pages["index.html"] and 'rel="prev"' not in pages["index.html"]
    assert 'href="index.html" rel="prev"' in pages["index-2.html"] and 'href="index-1.html"' in pages["index-2.html"]
    assert 'href="index-2.html" rel="prev"' in pages["index-1.html"] and 'rel="next"' not in pages["index-1.html"]
    assert "3 papers" in pages["index.html"]  # two mailed + one archived
    oldest = (folder / "index-1.html").stat().st_mtime_ns
    _fill_more = datetime(2026, 3, 7, 7, tzinfo=UTC)
    with store.transaction(conn):
        delivery.add_message(
            conn, user="ada", period="2026-03-07", scheduled_at=_fill_more, window_from=_fill_more, run_id=None,
            papers_until=_fill_more, paper_keys=["z"], message=b"x", message_id="<z@x>", sender="d@example.org",
            recipient="ada@example.org", now=_fill_more,
        )  # fmt: skip
    changed = archive.write_index(conn, cfg, out, _profile(), start=1)
    assert [p.name for p in changed] == ["index.html"]
    assert (folder / "index-1.html").stat().st_mtime_ns == oldest


def test_index_and_page_escape_names_and_titles(tmp_path: Path, sink: Sink):
    """A user's display name and hostile paper titles are escaped in the index and the page."""
    cfg = config.load_config(write_config(tmp_path, sink.port, BROAD))
    conn = store.open_store(cfg.digest.store)
    _fill_outbox(conn, "zoe", 1)
    out = tmp_path / "site"
    archive.write_index(conn, cfg, out, _profile("zoe", "Zoë <script>alert(1)</script> & Co"), start=1)
    index = (out / "archive" / "zoe" / "index.html").read_text(encoding="utf-8")
    assert "<script>" not in index and "Zoë &lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in index
    page = archive.render_page(cfg, archive.page_digest(_digest(_profile("zoe", "Zoë <b>"))), _cache(), now=MONDAY)
    assert "<script>alert" not in page and "&lt;script&gt;" in page


# ------------------------------------------------------------------------------------------ golden files

T0 = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)


def _papers() -> list[Paper]:
    return [
        Paper(
            key="arxiv:2411.00001", title="Diffusion LLM serving at scale", arxiv_id="2411.00001",
            abstract="We study diffusion & LLM serving. It is fast.", authors=("Ada Lovelace", "Alan Turing"),
            organization="Acme AI", upvotes=12, ai_summary="Serving diffusion LLMs is fast.",
            github_repo="https://github.com/example/dllm", github_stars=1234, project_page="https://dllm.example.org",
        ),
        Paper(key="title:0f3c9a", title="<script>alert(1)</script> & a paper without an id", abstract="Short LLM."),
        Paper(key="arxiv:2411.00003", title="An overflow paper", arxiv_id="2411.00003", abstract="More LLM text."),
    ]  # fmt: skip


def _digest(profile: Profile | None = None) -> Digest:
    papers = _papers()
    matches = tuple(
        Match(
            p,
            1.0 - i / 10,
            (Hit("LLM", "abstract", p.abstract.index("LLM"), p.abstract.index("LLM") + 3),),
            'abstract: "LLM"',
        )
        for i, p in enumerate(papers)
    )
    return Digest(
        profile=profile or _profile(), matches=matches[:2], overflow=matches[2:], generated_at=T0, period="2026-11-20",
        omitted=1,
    )  # fmt: skip


def _cache() -> render.RenderCache:
    return render.prepare_papers(_papers(), render.RenderOptions(base_url="https://digest.example.org"))


def test_golden_archive_page(tmp_path: Path, sink: Sink, update_golden: bool):
    """A digest's archive page (its mailed papers and its overflow) is byte-for-byte the golden file."""
    cfg = config.load_config(write_config(tmp_path, sink.port, BROAD))
    page = archive.render_page(cfg, archive.page_digest(_digest()), _cache(), now=T0)
    assert page.count("An overflow paper") >= 1
    assert_golden("archive_page.html", page, update_golden)


def test_golden_archive_index(tmp_path: Path, sink: Sink, update_golden: bool):
    """An index page of three digests is byte-for-byte the golden file."""
    cfg = config.load_config(write_config(tmp_path, sink.port, BROAD))
    entries = [(3, "2026-11-22", T0 + timedelta(days=2), 5), (2, "2026-11-21", T0 + timedelta(days=1), 1),
               (1, "2026-11-20", T0, 22)]  # fmt: skip
    assert_golden("archive_index.html", archive.render_index(cfg, _profile(), entries, 2, 3), update_golden)


# ------------------------------------------------------------------------------------------ served


def test_digest_serve_serves_the_archive(tmp_path: Path, sink: Sink, seeds: list[Path]):
    """The real `digest serve` HTTP server answers the archive page and the index as text/html."""
    cfg = config.load_config(write_config(tmp_path, sink.port, BROAD))
    ingest_file(cfg, seeds[0], MONDAY - timedelta(hours=1))
    run_once(cfg, MONDAY)
    conn = store.open_store(cfg.digest.store)
    [row] = delivery.history(conn, users=["ada"])
    httpd = server.make_server(
        ("127.0.0.1", 0), feeds_dir=cfg.feeds.output, resolve_token=lambda token: None, unsubscribe=lambda user: None
    )
    thread = server.serve_in_thread(httpd)
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}/feeds/archive/ada"
        for name in (f"{row.period}.html", "index.html"):
            with urllib.request.urlopen(f"{base}/{name}", timeout=5) as answer:
                assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/html")
                body = answer.read().decode("utf-8")
            assert body.startswith("<!DOCTYPE html>") or body.lower().startswith("<!doctype html>")
        with urllib.request.urlopen(f"{base}/index.html", timeout=5) as answer:
            assert f'href="{row.period}.html"' in answer.read().decode("utf-8")
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# ------------------------------------------------------------------------------------------ vote links, suggestions

SUGGESTION = Match(
    Paper(key="arxiv:2411.00077", title="Video diffusion transformers", arxiv_id="2411.00077",
          abstract="Small video diffusion transformers."),
    0.4, (), "close to 'Diffusion LLM serving at scale' that you liked; terms: diffusion, video",
)  # fmt: skip


def _votes(keys: list[str]) -> dict[str, tuple[str, str]]:
    return {
        k: (f"https://digest.example.org/v/up-{i}", f"https://digest.example.org/v/down-{i}")
        for i, k in enumerate(keys)
    }


def test_golden_archive_page_with_votes_and_a_suggestion(tmp_path: Path, sink: Sink, update_golden: bool):
    """A page with each paper's vote links (the mailed ones, the overflow, the suggestion) and the "Also for
    you" section after the matches is byte-for-byte the golden file."""
    cfg = config.load_config(write_config(tmp_path, sink.port, BROAD))
    digest = archive.page_digest(replace(_digest(), suggestions=(SUGGESTION,)))
    votes = _votes([m.paper.key for m in (*digest.matches, SUGGESTION)])
    page = archive.render_page(cfg, digest, render.prepare_papers([*_papers(), SUGGESTION.paper]), now=T0, votes=votes)
    soup = BeautifulSoup(page, "lxml")
    assert [a["href"] for a in soup.find_all("a", class_="vote")] == [u for pair in votes.values() for u in pair]
    section = soup.find("td", class_="suggestions")
    assert section.h2.get_text() == "Also for you" and "Video diffusion transformers" in section.get_text()
    assert f"Why: {SUGGESTION.reason}" in section.get_text()
    assert_golden("archive_page_votes.html", page, update_golden)


def test_page_lists_the_suggestions_the_email_showed():
    """page_digest keeps the suggestions among the email's paper keys (the budget may have left some out)."""
    other = replace(SUGGESTION, paper=replace(SUGGESTION.paper, key="arxiv:2411.00078", arxiv_id="2411.00078"))
    digest = replace(_digest(), suggestions=(SUGGESTION, other))
    assert archive.page_digest(digest).suggestions == (SUGGESTION, other)
    shown = ("arxiv:2411.00001", "title:0f3c9a", "arxiv:2411.00078")
    assert archive.page_digest(digest, shown).suggestions == (other,)


def test_digest_links_sign_the_matches_overflow_and_suggestions(tmp_path: Path, sink: Sink):
    """queue.digest_links: with base_url, every paper the email or the page can show has its two signed vote
    URLs (the overflow only when there is a page), which verify for the user; without base_url, none."""
    from digest.pipeline import feedback, queue
    from digest.pipeline.settings import mail_settings

    cfg = config.load_config(write_config(tmp_path, sink.port, BROAD))
    mail = mail_settings(cfg, SECRET_ENV)
    digest = replace(_digest(), suggestions=(SUGGESTION,))
    links = queue.digest_links(cfg, digest, mail)
    keys = ["arxiv:2411.00001", "title:0f3c9a", "arxiv:2411.00003", SUGGESTION.paper.key]
    assert list(links.votes) == keys
    for key, (up, down) in links.votes.items():
        assert up.startswith("https://digest.example.org/v/") and down.startswith("https://digest.example.org/v/")
        assert feedback.verify_vote_token(mail.secret, up.rpartition("/")[2]) == feedback.VoteLink("ada", key, 1)
        assert feedback.verify_vote_token(mail.secret, down.rpartition("/")[2]) == feedback.VoteLink("ada", key, -1)
    assert list(queue.digest_links(cfg, digest, mail, pages=False).votes) == [keys[0], keys[1], keys[3]]
    (tmp_path / "bare").mkdir()
    path = write_config(tmp_path / "bare", sink.port, BROAD)  # conftest sets a base_url; take it away
    path.write_text(re.sub(r'(?m)^base_url = ".*"\n', "", path.read_text(encoding="utf-8")), encoding="utf-8")
    bare = config.load_config(path)
    assert not bare.digest.base_url
    assert queue.digest_links(bare, digest, mail).votes == {}


def test_email_and_page_carry_each_papers_vote_links(tmp_path: Path, sink: Sink, seeds: list[Path]):
    """A run with base_url: each paper of the email (both parts) and of its archive page (the overflow too)
    has its 👍/👎 links, and they are the same links in both."""
    cfg = config.load_config(write_config(tmp_path, sink.port, BROAD))
    ingest_file(cfg, seeds[0], MONDAY - timedelta(hours=1))
    run_once(cfg, MONDAY)
    [message] = _received(sink, "ada")
    conn = store.open_store(cfg.digest.store)
    [row] = [r for r in delivery.history(conn, users=["ada"]) if r.status == "sent"]
    mail = BeautifulSoup(_html_part(message), "lxml")
    mailed = [(a["href"], a["aria-label"]) for a in mail.find_all("a", class_="vote")]
    assert len(mailed) == 2 * len(row.paper_keys) == 6
    text = next(p for p in message.walk() if p.get_content_type() == "text/plain").get_payload(decode=True).decode()
    assert text.count("More like this: https://digest.example.org/v/") == 3
    page = BeautifulSoup((cfg.feeds.output / "archive" / "ada" / f"{row.period}.html").read_text(), "lxml")
    on_page = [(a["href"], a["aria-label"]) for a in page.find_all("a", class_="vote")]
    assert on_page[:6] == mailed and len(on_page) == 2 * len(_matching(cfg, conn, "ada")) > 6
