"""Atom feeds: RFC 4287 structure, stable ids, byte-identical rebuilds (feedgen tree vs cached bytes), escaping,
atomic writes."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from html import escape as html_escape
from pathlib import Path

import feedparser
import pytest
from conftest import GOLDEN, SECRET_ENV, assert_golden, free_port, user_block, write_config

from digest import config, matching, pipeline, store
from digest.errors import RenderError
from digest.models import Hit, Match, Paper, StoredPaper
from digest.pipeline import feedback, publish
from digest.render import atom
from digest.render.atom import (
    EntryCache,
    FeedEntry,
    build_feed,
    entry_id,
    feed_entries,
    feed_slug,
    prepare_entries,
    tag_uri,
    write_feed,
)
from digest.sources import read_dump
from digest.store import delivery

A = "{http://www.w3.org/2005/Atom}"
AUTHORITY = "digest.example.org,2024"
T0 = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$")
HOSTILE = "<think>Plan</think> & <script>alert(1)</script> $x<y$ \x0b τ-ζ\x00 naïve"


def papers() -> list[Paper]:
    return [
        Paper(
            key="arxiv:2409.01234",
            title=HOSTILE,
            abstract="We <b>study</b> diffusion & LLM\x0bserving.\n  Hard-wrapped line.",
            authors=("Ada Lovelace", "Alan\x0b Turing"),
            organization="Acme AI",
            published=date(2026, 11, 19),
            upvotes=42,
            arxiv_id="2409.01234v2",
            project_page="javascript:alert(1)",
        ),
        Paper(key="title:0f3c9a", title="A paper without an id", abstract="Short.", published_text="Apr 8"),
        Paper(
            key="arxiv:2411.00002",
            title="Tiny",
            abstract="Tiny abstract.",
            arxiv_id="2411.00002",
            github_repo="https://github.com/example/tiny",
        ),
    ]


def stored() -> list[StoredPaper]:
    return [StoredPaper(p, T0 + timedelta(hours=i), "sha") for i, p in enumerate(papers())]


def build(entries, **kw) -> bytes:
    args = {
        "feed_id": tag_uri(AUTHORITY, "feed/alice"),
        "title": "Paper digest for alice",
        "self_url": "https://digest.example.org/feeds/alice.xml",
        "alternate_url": "https://huggingface.co/papers",
        "authority": AUTHORITY,
        "max_entries": 50,
    }
    return build_feed(entries, **(args | kw))


def atom_problems(data: bytes) -> list[str]:
    """The RFC 4287 MUSTs we rely on, checked with ElementTree (feedparser accepts far worse)."""
    root = ET.fromstring(data)
    problems = []
    if root.tag != f"{A}feed":
        return ["root is not atom:feed"]
    for name in ("id", "title", "updated"):
        if len(root.findall(f"{A}{name}")) != 1:
            problems.append(f"feed needs exactly one {name}")
    links = root.findall(f"{A}link")
    if [link.get("rel") for link in links].count("self") != 1:
        problems.append("feed needs one rel=self link")
    if not any(link.get("rel", "alternate") == "alternate" for link in links):
        problems.append("feed needs an alternate link")
    feed_author = root.find(f"{A}author/{A}name") is not None
    ids = []
    for entry in root.findall(f"{A}entry"):
        for name in ("id", "title", "updated"):
            if len(entry.findall(f"{A}{name}")) != 1:
                problems.append(f"entry needs exactly one {name}")
        ids.append(entry.findtext(f"{A}id"))
        if not feed_author and entry.find(f"{A}author/{A}name") is None:
            problems.append("entry without author")
        alternates = [(e.get("type"), e.get("hreflang")) for e in entry.findall(f"{A}link")
                      if e.get("rel", "alternate") == "alternate"]  # fmt: skip
        if entry.find(f"{A}content") is None and not alternates:
            problems.append("entry without content needs an alternate link")
        if len(alternates) != len(set(alternates)):
            problems.append("two alternate links with the same type")
    for el in root.iter():
        if el.tag in (f"{A}updated", f"{A}published") and not RFC3339.match(el.text or ""):
            problems.append(f"bad date {el.text!r}")
    if len(ids) != len(set(ids)):
        problems.append("duplicate entry ids")
    return problems


def test_golden_feed(update_golden: bool):
    """A per-user feed of fixed entries is byte-for-byte the golden file."""
    entries = feed_entries(stored())
    assert_golden("alice.atom.xml", build(entries).decode(), update_golden)


def test_feed_is_valid_atom():
    """The feed parses with feedparser (bozo false) and has every element RFC 4287 requires."""
    data = build(feed_entries(stored()))
    parsed = feedparser.parse(data)
    assert parsed.bozo is False, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert atom_problems(data) == []


def test_checker_catches_missing_parts():
    """The structural checker flags a feed without self link and author (feedparser would not)."""
    bad = b'<feed xmlns="http://www.w3.org/2005/Atom"><id>x</id><title>t</title><updated>2026-01-01T00:00:00Z</updated><entry><id>e</id><title>t</title><updated>2026-01-01T00:00:00Z</updated></entry></feed>'
    assert feedparser.parse(bad).bozo is False
    assert {"feed needs one rel=self link", "entry without author"} <= set(atom_problems(bad))


def test_rebuild_is_byte_identical():
    """Two builds from the same data, in any input order, give the same bytes."""
    entries = feed_entries(stored())
    assert build(entries) == build(list(reversed(entries)))


def test_feed_updated_is_newest_entry_not_now():
    """The feed's updated is the newest entry's first-seen time; an empty feed uses a fixed date."""
    root = ET.fromstring(build(feed_entries(stored())))
    assert root.findtext(f"{A}updated") == "2026-11-20T08:00:00+00:00"
    empty = ET.fromstring(build([]))
    assert empty.findtext(f"{A}updated") == "1970-01-01T00:00:00+00:00"
    assert atom_problems(build([])) == []


def test_entries_newest_first_and_bounded():
    """Entries are sorted newest first and capped at max_entries."""
    root = ET.fromstring(build(feed_entries(stored()), max_entries=2))
    titles = [e.findtext(f"{A}title") for e in root.findall(f"{A}entry")]
    assert titles == ["Tiny", "A paper without an id"]


def test_entry_ids_are_stable_tag_uris():
    """Entry ids are tag URIs from the version-less arXiv id or the title-hash key, not from mutable data."""
    p = papers()[0]
    assert entry_id(p, AUTHORITY) == "tag:digest.example.org,2024:paper/arxiv/2409.01234"
    later = replace(p, upvotes=900, arxiv_id="2409.01234v5", published=date(2026, 12, 1), title="Renamed")
    assert entry_id(later, AUTHORITY) == entry_id(p, AUTHORITY)
    assert entry_id(papers()[1], AUTHORITY) == "tag:digest.example.org,2024:paper/title/0f3c9a"


def test_same_paper_twice_is_one_entry_at_first_sighting():
    """A paper listed twice becomes one entry dated when it was first seen."""
    p = papers()[2]
    entries = [FeedEntry(p, T0 + timedelta(days=1)), FeedEntry(p, T0)]
    root = ET.fromstring(build(entries))
    assert [e.findtext(f"{A}updated") for e in root.findall(f"{A}entry")] == ["2026-11-20T06:00:00+00:00"]


def test_untrusted_text_is_escaped_and_controls_stripped():
    """<think>, <script>, &, $, \\x0b, NUL and non-ASCII survive as text; the XML stays well formed."""
    data = build(feed_entries(stored()))
    assert b"\x0b" not in data and b"\x00" not in data
    assert b"<think>" not in data and b"<script>" not in data
    parsed = feedparser.parse(data)
    entry = next(e for e in parsed.entries if e.id.endswith("2409.01234"))
    root = ET.fromstring(data)
    title = next(e.findtext(f"{A}title") for e in root.iter(f"{A}entry") if "2409" in e.findtext(f"{A}id"))
    assert title == "<think>Plan</think> & <script>alert(1)</script> $x<y$ τ-ζ naïve"
    assert "naïve" in entry.title and "Alan Turing" in [a.name for a in entry.authors]


def test_only_http_links_are_emitted():
    """A javascript: project URL is dropped; every link is http(s)."""
    root = ET.fromstring(build(feed_entries(stored())))
    hrefs = [link.get("href") for link in root.iter(f"{A}link")]
    assert hrefs and all(h.startswith(("https://", "http://")) for h in hrefs)
    assert "https://github.com/example/tiny" in hrefs


def test_entry_links_keep_rel_and_type():
    """Each entry has one rel=alternate text/html link to Hugging Face and related links (feedgen bug worked around)."""
    root = ET.fromstring(build(feed_entries(stored())))
    entry = next(e for e in root.iter(f"{A}entry") if "2409" in e.findtext(f"{A}id"))
    links = [(link.get("rel"), link.get("type"), link.get("href")) for link in entry.findall(f"{A}link")]
    assert links == [
        ("alternate", "text/html", "https://huggingface.co/papers/2409.01234"),
        ("related", "text/html", "https://arxiv.org/abs/2409.01234"),
    ]


def test_bad_feed_urls_are_rejected():
    """A self or alternate URL that is not http(s) raises RenderError."""
    with pytest.raises(RenderError):
        build([], self_url="javascript:alert(1)")


def test_authority_must_be_domain_and_date():
    """Tag URIs need a 'domain,YYYY' authority."""
    assert tag_uri("example.org,2024-05", "feed/x") == "tag:example.org,2024-05:feed/x"
    with pytest.raises(RenderError, match="authority"):
        tag_uri("https://example.org", "feed/x")


def test_matches_need_first_seen_times():
    """Matches and papers become entries only with a first-seen time; the reason and hits come along."""
    p = papers()[2]
    m = Match(p, 1.0, (Hit("tiny", "title", 0, 4),), 'title: "tiny"')
    with pytest.raises(RenderError, match="first-seen"):
        feed_entries([m])
    entries = feed_entries([m], {p.key: T0})
    assert entries == [FeedEntry(p, T0, 'title: "tiny"', hits=m.hits)]
    assert 'Why it matched:</b> title: "tiny"' in feedparser.parse(build(entries)).entries[0].content[0].value


def test_naive_times_are_taken_as_utc():
    """A naive first-seen time is read as UTC instead of crashing feedgen."""
    naive = [FeedEntry(papers()[2], datetime(2026, 11, 20, 6, 0))]
    assert build(naive) == build([FeedEntry(papers()[2], T0)])


def test_write_feed_is_atomic_and_reports_changes(tmp_path: Path):
    """write_feed creates the file, returns False for identical bytes and leaves no temp files."""
    path = tmp_path / "feeds" / "alice.xml"
    data = build(feed_entries(stored()))
    assert write_feed(path, data) is True
    assert path.read_bytes() == data and oct(path.stat().st_mode & 0o777) == "0o644"
    assert write_feed(path, data) is False
    assert write_feed(path, build([])) is True
    assert [p.name for p in path.parent.iterdir()] == ["alice.xml"]


def test_write_feed_error_has_a_hint(tmp_path: Path):
    """Writing into a path whose parent is a file raises RenderError with a hint."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(RenderError) as exc:
        write_feed(tmp_path / "file" / "feed.xml", b"<feed/>")
    assert exc.value.hint


def test_feed_slug_is_safe_and_distinct():
    """Slugs are URL/file safe and two different names never collide."""
    assert feed_slug("alice") == "alice"
    a, b = feed_slug("Alice Smith"), feed_slug("alice-smith")
    assert a != b and re.fullmatch(r"[a-z0-9-]+", a) and b == "alice-smith"
    assert re.fullmatch(r"[a-z0-9-]+", feed_slug("../../etc/passwd"))


VARIANTS: list[dict[str, str]] = [
    {},
    {"organization": "Meta AI"},
    {"github_repo": "https://github.com/x/y"},
    {"organization": " "},
]


def seed_papers(paths: list[Path], rng: random.Random) -> list[Paper]:
    """The seed dumps' papers, some given an arXiv id, organization or project URL (the scrapes have few)."""
    out: dict[str, Paper] = {}
    for path in paths:
        for p in read_dump(path).papers:
            extra = dict(rng.choice(VARIANTS))
            if rng.random() < 0.3:
                aid = f"2411.{len(out):05d}v{rng.randint(1, 3)}"
                extra |= {"arxiv_id": aid, "key": f"arxiv:{aid[:10]}"}
            out.setdefault(p.key, replace(p, **extra))
    bare = next(iter(out.values()))  # nothing but a title: the reason has to create the <summary>
    return [*out.values(), replace(bare, key="title:bare", abstract="", organization=None, arxiv_id=None)]


def test_cached_feeds_are_byte_identical_on_seed_papers(seeds: list[Path]):
    """Feeds built from one shared entry cache equal uncached builds for random subsets, reasons and authorities."""
    rng = random.Random(20261120)
    pool = seed_papers(seeds, rng)
    seen = {p.key: T0 + timedelta(minutes=rng.randint(0, 9000)) for p in pool}
    cache = prepare_entries([StoredPaper(p, seen[p.key], "sha") for p in pool], authority=AUTHORITY)
    assert len(cache.elements) == len(pool)
    reasons = ["", "", 'title: "diffusion"; abstract: "LLM" x3', "  ", HOSTILE]
    for i in range(40):
        chosen = rng.sample(pool, rng.randint(0, 15))
        entries = [FeedEntry(p, seen[p.key], rng.choice(reasons)) for p in chosen]
        entries += [FeedEntry(pool[-1], seen[pool[-1].key], reasons[i % 3])]
        entries += [FeedEntry(p, seen[p.key].replace(tzinfo=None) + timedelta(hours=1)) for p in chosen[:2]]
        kw = {"authority": rng.choice([AUTHORITY, "other.example,2025"]), "max_entries": rng.choice([5, 50])}
        assert build(entries, cache=cache, **kw) == build(entries, **kw), f"subset {i} differs"


def test_cached_golden_feed(update_golden: bool):
    """The golden per-user feed comes out byte-for-byte the same through a lazily filled cache."""
    cache = EntryCache()
    entries = feed_entries(stored())
    assert build(entries, cache=cache) == build(entries, cache=cache) == build(entries)
    assert build(entries, cache=cache, join=False) == build(entries)
    assert len(cache.elements) == len(cache.fragments) == 3
    if not update_golden:
        assert build(entries, cache=cache) == (GOLDEN / "alice.atom.xml").read_bytes()


def test_cached_reason_stays_in_its_feed():
    """One user's reason goes into their feed's bytes: the cache, and the next user's feed, are left without it."""
    p = papers()[2]
    cache = prepare_entries([StoredPaper(p, T0, "sha")], authority=AUTHORITY)
    mine = feedparser.parse(build([FeedEntry(p, T0, 'title: "tiny"')], cache=cache)).entries[0]
    theirs = feedparser.parse(build([FeedEntry(p, T0)], cache=cache)).entries[0]
    assert 'Why it matched:</b> title: "tiny"' in mine.content[0].value
    assert "Why it matched" not in theirs.content[0].value and "Tiny abstract." in theirs.content[0].value
    assert len(cache.elements) == 1


HOSTILE_TITLES = [
    HOSTILE,
    "Tom & Jerry <3 > 2 &amp; &#x41; ]]> <![CDATA[ x",
    "naïve Ünïcödé — 日本語 😀 \u2028 \x85 \xa0 end",
    "ctrl \x01\x02\x1f\x7f\ufffe chars",
    "\"quoted\" 'single' \t tab\r\nCRLF\x0c",
]
FEED_TITLES = [
    "Paper digest for alice",
    "A & B",
    "A > B",
    "A < B",
    "Paper digest for Zoë & <Co> \"q\" 'a'",
    "ctrl\x01 \t title",
    " ",
]
FEED_IDS = [
    "tag:digest.example.org,2024:feed/alice",
    "urn:x:a&b",
    "urn:x:a>b",
    "urn:x:Tom&Jerry<é>'\"\n",
    "tag:a,2024:feed/ü%20",
]
SELF_URLS = [
    "https://digest.example.org/feeds/alice.xml",
    "https://digest.example.org/feeds/a&b.xml?x='y'&z=\"w\"",
    "https://digest.example.org/feeds/ünï.xml",
    "http://127.0.0.1:8080/feeds/u1.xml",
    "https://digest.example.org/feeds/u1.xml?a=1&b=2",
    "HTTPS://Digest.Example.org/feeds/x.xml#frag",
]
HEADER_EXTRAS: list[dict[str, str | None]] = [
    {},
    {"author": "Paper Digest & <Co>", "subtitle": "Sub ü"},
    {"subtitle": "  ", "lang": "de-AT"},
    {"alternate_url": "https://huggingface.co/papers?q=a&b=ü"},
]


def test_joined_feeds_equal_feedgen_on_hostile_seed_papers(seeds: list[Path]):
    """Feeds joined from cached bytes equal feedgen's tree build byte for byte: random subsets of the seed papers
    with hostile titles (<think>, &, control characters, non-ASCII), hostile reasons and feed headers."""
    rng = random.Random(4287)
    pool = [
        replace(p, title=f"{rng.choice(HOSTILE_TITLES)} {p.title}") if rng.random() < 0.5 else p
        for p in seed_papers(seeds, rng)
    ]
    pool[0] = replace(pool[0], abstract=" ".join(HOSTILE_TITLES), authors=tuple(HOSTILE_TITLES))
    seen = {p.key: T0 + timedelta(minutes=rng.randint(0, 9000)) for p in pool}
    reasons = ["", "", 'title: "diffusion"', HOSTILE, "ünï & <b>\r\n", "  ", "a & b", "a > b", "a\tb"]
    cache = EntryCache()  # filled lazily, across feeds with different headers
    for i in range(60):
        chosen = rng.sample(pool, rng.randint(0, 20))
        entries = [FeedEntry(p, seen[p.key], rng.choice(reasons)) for p in chosen]
        head = {
            "feed_id": rng.choice(FEED_IDS),
            "title": rng.choice(FEED_TITLES),
            "self_url": rng.choice(SELF_URLS),
            **rng.choice(HEADER_EXTRAS),
        }
        expected = build(entries, **head)
        assert build(entries, cache=cache, **head) == expected, f"subset {i} differs"
        assert build(entries, cache=cache, join=False, **head) == expected, f"subset {i} differs (copies)"
    assert cache.fragments and cache.heads and None not in cache.heads.values()  # the joined path was taken


def test_header_values_like_the_slots_fall_back_to_the_tree():
    """An author or subtitle holding a header placeholder cannot be cut at the slots: the feed is built as a tree."""
    cache = EntryCache()
    entries = feed_entries(stored())
    odd = {"author": atom._SLOT_TITLE, "subtitle": atom._SLOT_ID}
    assert build(entries, cache=cache, **odd) == build(entries, **odd)
    assert list(cache.heads.values()) == [None]


def test_ids_feedgen_refuses_fail_the_same_with_a_cache():
    """An empty feed id or one with a NUL raises feedgen's or lxml's ValueError with or without a cache."""
    for bad in ("", "tag:a,2024:x\x00y"):
        with pytest.raises(ValueError):
            build([], feed_id=bad)
        with pytest.raises(ValueError):
            build([], feed_id=bad, cache=EntryCache())


def _run_with_feeds(tmp_path: Path, seed: Path) -> config.Config:
    """A run without delivery for ada and zoe (display name "Zoë & <Co>") over one seed dump."""
    zoe = user_block("zoe", "['agent OR reasoning']").replace(
        'name = "zoe"', 'name = "zoe"\ndisplay_name = "Zoë & <Co>"'
    )
    cfg = config.load_config(write_config(tmp_path, free_port(), user_block("ada", "['LLM', 'diffusion']") + zoe))
    (cfg.digest.inbox / seed.name).write_bytes(seed.read_bytes())
    report = pipeline.run_once(
        cfg, SECRET_ENV, now=datetime(2026, 11, 23, 8, tzinfo=UTC), options=pipeline.RunOptions(deliver=False)
    )
    assert sorted(Path(p).name for p in report.feeds_written) == ["ada.xml", "all.xml", "zoe.xml"]
    return cfg


def test_feed_writer_matches_the_feedgen_build(tmp_path: Path, seeds: list[Path]):
    """Each user's feed written during a run equals feedgen's tree build of the papers of their digests, with
    the user's vote links signed with the run's secret."""
    cfg = _run_with_feeds(tmp_path, seeds[0])
    conn = store.open_store(cfg.digest.store)
    writer = publish.FeedWriter.for_run(conn, cfg)
    profiles = {p.name: p for p in cfg.profiles()}
    secret = config.secret(cfg, SECRET_ENV)
    for name, title in (("ada", "Paper digest for ada"), ("zoe", "Paper digest for Zoë & <Co>")):
        papers = store.get_papers(conn, delivery.feed_keys(conn, name, limit=cfg.feeds.max_entries))
        matched = matching.match_profile(profiles[name], [sp.paper for sp in papers])
        expected = build_feed(
            feed_entries(matched, {sp.paper.key: sp.first_seen for sp in papers}),
            feed_id=tag_uri(writer.authority, f"feed/user/{name}"),
            title=title,
            self_url=f"https://digest.example.org/feeds/{name}.xml",
            alternate_url=f"https://digest.example.org/feeds/archive/{name}/index.html",
            authority=writer.authority,
            author=cfg.mail.sender_name,
            max_entries=cfg.feeds.max_entries,
            votes=feedback.vote_urls(cfg, secret, name, [sp.paper.key for sp in papers]),
        )
        assert len(matched) == len(papers) > 0
        assert (cfg.feeds.output / f"{name}.xml").read_bytes() == expected


def test_feed_writer_skips_papers_the_store_lost(tmp_path: Path, seeds: list[Path]):
    """A digest's paper missing from the store is left out of the feed and looked up once per run, not per feed."""
    cfg = _run_with_feeds(tmp_path, seeds[0])
    conn = store.open_store(cfg.digest.store)
    [lost, *kept] = delivery.feed_keys(conn, "ada", limit=cfg.feeds.max_entries)
    conn.execute("DELETE FROM papers WHERE key = ?", (lost,))
    writer = publish.FeedWriter.for_run(conn, cfg)
    ada = next(p for p in cfg.profiles() if p.name == "ada")
    writer.write_user(ada)
    assert writer.absent == {lost} and lost not in writer.papers
    assert len(feedparser.parse((cfg.feeds.output / "ada.xml").read_bytes()).entries) == len(kept)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    writer.write_user(ada)
    assert statements and not [sql for sql in statements if "FROM papers" in sql]


# --------------------------------------------------------------------------- entry ids fixed at first use

# A trimmed copy of a real Daily Papers API entry (../shared/corpus/api_json_2024/2024-10-14.json, arXiv
# 2410.08391): the paper tests/fixtures/004_*.txt scraped as text, with the same title, so ingesting it re-keys
# the text-scrape paper "title:ae1b577f9903ef697ade" to "arxiv:2410.08391".
KV_TITLE = "KV Prediction for Improved Time to First Token"
KV_JSON = [
    {
        "paper": {
            "id": "2410.08391",
            "authors": [
                {"_id": "670c99dda88de61073ac57ce", "name": "Maxwell Horton", "hidden": False},
                {"_id": "670c99dda88de61073ac57cf", "name": "Qingqing Cao", "hidden": False},
                {"_id": "670c99dda88de61073ac57d0", "name": "Chenfan Sun", "hidden": False},
                {"_id": "670c99dda88de61073ac57d1", "name": "Yanzi Jin", "hidden": False},
                {"_id": "670c99dda88de61073ac57d2", "name": "Sachin Mehta", "hidden": False},
                {"_id": "670c99dda88de61073ac57d3", "name": "Mohammad Rastegari", "hidden": False},
                {"_id": "670c99dda88de61073ac57d4", "name": "Moin Nabi", "hidden": False},
            ],
            "publishedAt": "2024-10-10T21:55:11.000Z",
            "title": KV_TITLE,
            "summary": "Inference with transformer-based language models begins with a prompt\nprocessing step. In "
            "this step, the model generates the first output token and\nstores the KV cache needed for future "
            "generation steps. [...] We release our code at\n"
            "https://github.com/apple/corenet/tree/main/projects/kv-prediction .",
            "upvotes": 6,
            "discussionId": "670c99dea88de61073ac57ff",
        },
        "publishedAt": "2024-10-14T02:41:21.778Z",
        "title": KV_TITLE,
        "numComments": 1,
    }
]


def entry_ids(path: Path) -> dict[str, str]:
    """A feed file's entry ids by entry title (without the "Also for you: " of a suggestion), parsed back with
    feedparser."""
    parsed = feedparser.parse(path.read_bytes())
    assert parsed.bozo is False, parsed.get("bozo_exception")
    ids = {e.title.removeprefix("Also for you: "): e.id for e in parsed.entries}
    assert len(ids) == len(parsed.entries) > 0
    return ids


def with_base_url(path: Path, base_url: str | None, sender: str = "digest@example.org") -> config.Config:
    """``path`` (a conftest config) rewritten with another [digest].base_url (None: none) and [mail].sender."""
    text = re.sub(r'(?m)^base_url = ".*"\n', "", path.read_text(encoding="utf-8"))
    if base_url:
        text = text.replace("[digest]\n", f'[digest]\nbase_url = "{base_url}"\n', 1)
    path.write_text(re.sub(r'(?m)^sender = ".*"$', f'sender = "{sender}"', text), encoding="utf-8")
    return config.load_config(path)


def test_fixed_ids_win_over_derived_ones():
    """An entry's recorded id is what the feed shows, with or without a cache, even where the cache already
    holds the same paper under its derived id."""
    p = papers()[2]
    fixed = "tag:old.example.org,2025:paper/title/0f3c9a"
    entries = feed_entries([StoredPaper(p, T0, "sha")], ids={p.key: fixed})
    assert entries == [FeedEntry(p, T0, fixed_id=fixed)]
    cache = prepare_entries([StoredPaper(p, T0, "sha")], authority=AUTHORITY)
    for kw in ({}, {"cache": cache}, {"cache": cache, "join": False}):
        assert [e.id for e in feedparser.parse(build(entries, **kw)).entries] == [fixed]
    assert build(entries, cache=cache) == build(entries)
    assert [e.id for e in feedparser.parse(build(feed_entries([StoredPaper(p, T0, "sha")]), cache=cache)).entries] == [
        entry_id(p, AUTHORITY)
    ]


def queue_digest(
    conn, user: str, keys: list[str], now: datetime, suggested: list[tuple[str, str]] | None = None
) -> None:
    """A digest of ``keys`` queued for ``user``, as the pipeline queues one: what the user's feed shows;
    ``suggested`` (key, reason) are its "Also for you" papers."""
    with store.transaction(conn):
        delivery.add_message(
            conn, user=user, period=now.date().isoformat(), scheduled_at=now, window_from=now, run_id=None,
            papers_until=now,
            paper_keys=keys, message=b"Subject: digest\r\n\r\nx\r\n", message_id=f"<{user}@example.org>",
            sender="digest@example.org", recipient=f"{user}@example.org", now=now, suggested=suggested or (),
        )  # fmt: skip


def test_entry_ids_survive_setting_base_url(conn, tmp_path: Path, seeds: list[Path]):
    """Feeds written, then [digest].base_url set in the config and written again: every entry id (and feed id) is
    the same, and the global and per-user feeds give a paper the same id."""
    path = write_config(tmp_path, free_port(), user_block("ada", "['LLM', 'diffusion']"))
    cfg = with_base_url(path, None)  # a cron-only install: ids come from the sender's domain
    store.ingest(conn, read_dump(seeds[0]), now=T0)
    shown = [sp.paper.key for sp in store.list_papers(conn, limit=5)]
    queue_digest(conn, "ada", shown, T0)
    assert delivery.feed_keys(conn, "ada", limit=50) == shown
    publish.write_feeds(conn, cfg)
    before = {name: entry_ids(cfg.feeds.output / name) for name in ("all.xml", "ada.xml")}
    feed_before = feedparser.parse((cfg.feeds.output / "all.xml").read_bytes()).feed
    assert all(i.startswith("tag:example.org,2026:paper/") for i in before["all.xml"].values())

    cfg = with_base_url(path, "https://papers.example.net")
    publish.write_feeds(conn, cfg)
    after = {name: entry_ids(cfg.feeds.output / name) for name in ("all.xml", "ada.xml")}
    feed_after = feedparser.parse((cfg.feeds.output / "all.xml").read_bytes()).feed
    assert feed_after.links[0].href == "https://papers.example.net/feeds/all.xml"  # the new config is in use
    assert after == before and feed_after.id == feed_before.id
    assert len(before["ada.xml"]) == 5 and before["ada.xml"].items() <= before["all.xml"].items()


def test_rekeyed_paper_keeps_its_text_scrape_entry_id(conn, tmp_path: Path, seeds: list[Path]):
    """A paper shown in the global feed from a text scrape, then re-keyed to its arXiv id by a JSON dump with the
    same title, keeps its entry id (not the arXiv-based one its new key would give)."""
    cfg = config.load_config(write_config(tmp_path, free_port(), ""))
    store.ingest(conn, read_dump(seeds[4]), now=T0)
    publish.write_feeds(conn, cfg)
    first = entry_ids(cfg.feeds.output / "all.xml")[KV_TITLE]
    assert first == "tag:digest.example.org,2026:paper/title/ae1b577f9903ef697ade"

    dump = tmp_path / "2024-10-14.json"
    dump.write_text(json.dumps(KV_JSON), encoding="utf-8")
    store.ingest(conn, read_dump(dump), now=T0 + timedelta(days=1))
    [kv] = store.get_papers(conn, ["arxiv:2410.08391", "title:ae1b577f9903ef697ade"])
    assert kv.paper.key == "arxiv:2410.08391" and kv.paper.title == KV_TITLE  # re-keyed, not a second paper

    publish.write_feeds(conn, cfg)
    parsed = feedparser.parse((cfg.feeds.output / "all.xml").read_bytes())
    [entry] = [e for e in parsed.entries if e.title == KV_TITLE]
    assert entry.link == "https://huggingface.co/papers/2410.08391"  # the feed shows the merged record
    assert entry.id == first != entry_id(kv.paper, publish.FeedWriter.for_run(conn, cfg).authority)


def test_entry_ids_survive_a_fresh_process_and_a_new_config(conn, tmp_path: Path, seeds: list[Path]):
    """Ids come from the store, not from memory: another process with another base_url and sender writes the
    same entry and feed ids."""
    path = write_config(tmp_path, free_port(), "")
    cfg = config.load_config(path)
    for day, seed in enumerate(seeds[:2]):
        store.ingest(conn, read_dump(seed), now=T0 + timedelta(days=day))
    publish.write_feeds(conn, cfg)
    before = entry_ids(cfg.feeds.output / "all.xml")
    feed_before = feedparser.parse((cfg.feeds.output / "all.xml").read_bytes()).feed.id
    (cfg.feeds.output / "all.xml").unlink()

    with_base_url(path, "https://elsewhere.example.com", sender="news@mail.example.net")
    script = (
        "import sys\nfrom pathlib import Path\nfrom digest import config, store\nfrom digest.pipeline import publish\n"
        "cfg = config.load_config(Path(sys.argv[1]))\nconn = store.open_store(cfg.digest.store)\n"
        "publish.write_feeds(conn, cfg)\nconn.close()\n"
    )
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, cwd=tmp_path, env=env, timeout=60)
    parsed = feedparser.parse((cfg.feeds.output / "all.xml").read_bytes())
    assert parsed.feed.links[0].href == "https://elsewhere.example.com/feeds/all.xml"
    assert entry_ids(cfg.feeds.output / "all.xml") == before and parsed.feed.id == feed_before


# --------------------------------------------------------------------------- HTML content (issue 13)

RICH = Paper(
    key="arxiv:2411.00042",
    title="Diffusion LLM serving at scale",
    abstract=("Background sentence without the term. " * 20) + "We serve diffusion LLMs & <fast> models at scale.",
    authors=("Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra"),
    organization="Acme AI",
    arxiv_id="2411.00042",
    ai_summary="Serving diffusion LLMs <quickly> & cheaply.",
    github_repo="https://github.com/example/dllm",
    github_stars=1234,
    project_page="https://dllm.example.org/",
)


def _rich_note() -> tuple[str, tuple[Hit, ...]]:
    start = RICH.abstract.index("diffusion LLMs")
    hits = (Hit("diffusion", "abstract", start, start + 9), Hit("LLM", "abstract", start + 10, start + 13))
    return 'abstract: "diffusion", "LLM"', hits


def test_golden_feed_entry_with_html_content(update_golden: bool):
    """A user's entry: byline, TL;DR (labelled as Hugging Face's), the excerpt around the highlighted terms,
    why it matched and the visible links, in <content type="html">; golden, and the same through the cache."""
    entries = [FeedEntry(RICH, T0)]
    notes = {RICH.key: _rich_note()}
    data = build(entries, notes=notes, alternate_url="https://digest.example.org/feeds/archive/alice/index.html")
    cache = EntryCache()
    kw = {"alternate_url": "https://digest.example.org/feeds/archive/alice/index.html", "notes": notes}
    assert build(entries, cache=cache, **kw) == data == build(entries, cache=cache, join=False, **kw)
    assert_golden("alice_content.atom.xml", data.decode(), update_golden)
    [entry] = feedparser.parse(data).entries
    content = entry.content[0].value
    assert entry.content[0].type == "text/html"
    assert "<b>TL;DR</b> <small>(Hugging Face's AI summary)</small>: Serving diffusion LLMs &lt;quickly&gt;" in content
    assert "<b>diffusion</b> <b>LLM</b>s" in content and content.count("Background") < 20  # starts near the hit
    assert '<b>Why it matched:</b> abstract: "diffusion", "LLM"' in content
    links = re.findall(r'<a href="([^"]+)">([^<]+)</a>', content)
    assert [label for _, label in links] == ["PDF", "arXiv", "Hugging Face", "Code ★1,234", "Project page"]
    assert links[0][0] == "https://arxiv.org/pdf/2411.00042" and links[4][0] == "https://dllm.example.org/"
    assert "Ada Lovelace, Alan Turing, Grace Hopper et al." in content


def test_notes_are_per_feed_and_cached_bytes_equal_feedgen(seeds: list[Path]):
    """Per-feed notes (random reasons and hits) give the same bytes joined from the cache as built by feedgen,
    and never leak into another feed."""
    rng = random.Random(13)
    pool = seed_papers(seeds, rng)
    seen = {p.key: T0 + timedelta(minutes=rng.randint(0, 9000)) for p in pool}
    entries = [FeedEntry(p, seen[p.key]) for p in pool]
    cache = prepare_entries(entries, authority=AUTHORITY)
    for i in range(30):
        chosen = rng.sample(entries, rng.randint(1, 12))
        notes = {}
        for e in chosen:
            text = e.paper.abstract
            hits = []
            for _ in range(rng.randint(0, 4)):
                if len(text) > 2:
                    a = rng.randrange(len(text) - 1)
                    hits.append(Hit("t", "abstract", a, min(len(text), a + rng.randint(1, 30))))
            notes[e.paper.key] = (rng.choice(["", 'abstract: "x"', HOSTILE]), tuple(hits))
        plain = build(chosen, cache=cache)
        assert build(chosen, cache=cache, notes=notes) == build(chosen, notes=notes), f"subset {i} differs"
        assert build(chosen, cache=cache) == plain == build(chosen)


# --------------------------------------------------------------------------- vote links, "Also for you" (issue 15)

VOTE_BASE = "https://digest.example.org/v/"
SUGGESTED_PAPER = Paper(
    key="arxiv:2411.00077", title="Video diffusion transformers <fast> & small", arxiv_id="2411.00077",
    abstract="We train small video diffusion transformers that generate long clips quickly.",
    authors=("Katherine Johnson",), organization="Orbit Lab",
)  # fmt: skip
SUGGESTION_WHY = "close to 'Diffusion LLM serving at scale' that you liked; terms: diffusion, video"


def _votes(user: str, keys: list[str]) -> dict[str, tuple[str, str]]:
    secret = b"s" * 32
    token = feedback.vote_token
    return {k: (VOTE_BASE + token(secret, user, k, 1), VOTE_BASE + token(secret, user, k, -1)) for k in keys}


def test_golden_feed_with_vote_links_and_a_suggestion(update_golden: bool):
    """A user's feed: each entry's content ends with the user's 👍/👎 links before the paper's links; the
    "Also for you" entry says so in its title, its category and its why line. Golden, and the same bytes
    through the cache (joined and copied); parsed back with feedparser."""
    entries = [FeedEntry(RICH, T0), FeedEntry(SUGGESTED_PAPER, T0 + timedelta(hours=1))]
    kw = {
        "alternate_url": "https://digest.example.org/feeds/archive/alice/index.html",
        "notes": {RICH.key: _rich_note(), SUGGESTED_PAPER.key: (SUGGESTION_WHY, ())},
        "votes": _votes("alice", [RICH.key, SUGGESTED_PAPER.key]),
        "suggested": {SUGGESTED_PAPER.key},
    }
    data = build(entries, **kw)
    cache = EntryCache()
    assert build(entries, cache=cache, **kw) == data == build(entries, cache=cache, join=False, **kw)
    assert_golden("alice_votes.atom.xml", data.decode(), update_golden)
    assert atom_problems(data) == []
    parsed = feedparser.parse(data)
    assert parsed.bozo is False
    suggested, rich = parsed.entries  # newest first
    assert suggested.title == "Also for you: Video diffusion transformers <fast> & small"
    assert [t.term for t in suggested.tags] == ["suggestion"] and suggested.tags[0].label == "Also for you"
    assert rich.title == RICH.title and "tags" not in rich
    for entry, key in ((suggested, SUGGESTED_PAPER.key), (rich, RICH.key)):
        content = entry.content[0].value
        links = re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', content)
        up, down = kw["votes"][key]  # type: ignore[index]
        assert (up, "👍 More like this") in links and (down, "👎 Less like this") in links
        assert content.index("Less like this") < content.index(">Hugging Face</a>")  # before the paper's links
    assert f"<b>Also for you:</b> {html_escape(SUGGESTION_WHY, quote=False)}" in suggested.content[0].value
    assert "Why it matched" not in suggested.content[0].value and "<b>Why it matched:</b>" in rich.content[0].value


def test_votes_and_suggestions_in_cached_feeds_equal_feedgen(seeds: list[Path]):
    """Random notes, vote URLs (hostile ones included: quotes, angle brackets, &, other schemes, which are left
    out) and suggested papers give the same bytes joined from the cache as built by feedgen; nothing leaks from
    one feed into the next."""
    rng = random.Random(15)
    pool = seed_papers(seeds, rng)
    seen = {p.key: T0 + timedelta(minutes=rng.randint(0, 9000)) for p in pool}
    entries = [FeedEntry(p, seen[p.key]) for p in pool]
    cache = prepare_entries(entries, authority=AUTHORITY)
    odd = ['https://x.example/v/a"b<c>&d', "javascript:alert(1)", "https://x.example/v/ok", f"{VOTE_BASE}é x"]
    for i in range(30):
        chosen = rng.sample(entries, rng.randint(1, 12))
        keys = [e.paper.key for e in chosen]
        votes = _votes(f"u{i}", [k for k in keys if rng.random() < 0.7])
        for k in rng.sample(keys, min(2, len(keys))):
            votes[k] = (rng.choice(odd), rng.choice(odd))
        notes = {k: (rng.choice(["", 'abstract: "x"', HOSTILE]), ()) for k in keys if rng.random() < 0.6}
        suggested = {k for k in keys if rng.random() < 0.3}
        kw = {"notes": notes, "votes": votes, "suggested": suggested}
        data = build(chosen, cache=cache, **kw)
        assert data == build(chosen, **kw) == build(chosen, cache=cache, join=False, **kw), f"subset {i} differs"
        assert atom_problems(data) == [] and "javascript" not in data.decode()
        parsed = feedparser.parse(data)
        assert sum(e.title.startswith("Also for you: ") for e in parsed.entries) == len(suggested)
        assert build(chosen, cache=cache) == build(chosen)  # a feed without them has none


def test_feed_writer_signs_votes_and_marks_suggestions(tmp_path: Path, seeds: list[Path]):
    """FeedWriter with the signing secret: every entry of a user's feed has the user's vote links; a paper noted
    as a suggestion, and a paper its digest recorded as one (a suggestion of an earlier run, with the reason the
    store kept, escaped), are marked "Also for you"; without the secret the feed has no vote links."""
    cfg = _run_with_feeds(tmp_path, seeds[0])
    conn = store.open_store(cfg.digest.store)
    ada = next(p for p in cfg.profiles() if p.name == "ada")
    keys = delivery.feed_keys(conn, "ada", limit=cfg.feeds.max_entries)
    papers = {sp.paper.key: sp.paper for sp in store.list_papers(conn)}
    missed = [k for k in papers if k not in keys and not matching.match_profile(ada, [papers[k]])][:2]
    why = "close to <b>a paper</b> you liked & more"
    queue_digest(conn, "ada", missed, datetime(2026, 11, 24, 8, tzinfo=UTC), suggested=[(missed[1], why)])
    secret = config.secret(cfg, SECRET_ENV)
    writer = publish.FeedWriter.for_run(conn, cfg, secret=secret)
    writer.note("ada", (), suggestions=[Match(papers[missed[0]], 0.3, (), "close to a paper you liked")])
    writer.write_user(ada)
    parsed = feedparser.parse((cfg.feeds.output / "ada.xml").read_bytes())
    by_title = {e.title: e for e in parsed.entries}
    votes = feedback.vote_urls(cfg, secret, "ada", [*keys, *missed])
    for entry in parsed.entries:
        hrefs = re.findall(r'href="([^"]+)"', entry.content[0].value)
        assert sum(h.startswith("https://digest.example.org/v/") for h in hrefs) == 2
        assert any(tuple(hrefs[i : i + 2]) in votes.values() for i in range(len(hrefs)))
    marked = [t for t in by_title if t.startswith("Also for you: ")]
    assert len(marked) == 2 and len(by_title) == len(keys) + 2
    first = by_title[f"Also for you: {papers[missed[0]].title}"].content[0].value
    assert "<b>Also for you:</b> close to a paper you liked" in first
    second = by_title[f"Also for you: {papers[missed[1]].title}"].content[0].value
    assert "<b>Also for you:</b> close to &lt;b&gt;a paper&lt;/b&gt; you liked &amp; more" in second
    plain = publish.FeedWriter.for_run(conn, cfg)
    plain.write_user(ada)
    assert "/v/" not in (cfg.feeds.output / "ada.xml").read_text(encoding="utf-8")
