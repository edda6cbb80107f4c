"""Atom feeds: RFC 4287 structure, stable ids, byte-identical rebuilds (feedgen tree vs cached bytes), escaping,
atomic writes."""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from conftest import GOLDEN, SECRET_ENV, assert_golden, free_port, user_block, write_config

from digest import config, feeds, outbox, pipeline, publish, store
from digest.errors import RenderError
from digest.feeds import (
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
from digest.models import Hit, Match, Paper, StoredPaper
from digest.sources import read_dump

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
            url="javascript:alert(1)",
        ),
        Paper(key="title:0f3c9a", title="A paper without an id", abstract="Short.", published_text="Apr 8"),
        Paper(
            key="arxiv:2411.00002",
            title="Tiny",
            abstract="Tiny abstract.",
            arxiv_id="2411.00002",
            url="https://github.com/example/tiny",
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
    """Matches and papers become entries only with a first-seen time; the reason goes into the summary."""
    p = papers()[2]
    m = Match(p, 1.0, (Hit("tiny", "title", 0, 4),), 'title: "tiny"')
    with pytest.raises(RenderError, match="first-seen"):
        feed_entries([m])
    entries = feed_entries([m], {p.key: T0})
    assert entries == [FeedEntry(p, T0, 'title: "tiny"')]
    assert 'Why: title: "tiny"' in feedparser.parse(build(entries)).entries[0].summary


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
    {"url": "https://github.com/x/y"},
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
    """One user's reason goes into a copy: the cache, and the next user's feed, are left without it."""
    p = papers()[2]
    cache = prepare_entries([StoredPaper(p, T0, "sha")], authority=AUTHORITY)
    mine = feedparser.parse(build([FeedEntry(p, T0, 'title: "tiny"')], cache=cache)).entries[0]
    theirs = feedparser.parse(build([FeedEntry(p, T0)], cache=cache)).entries[0]
    assert mine.summary == 'Tiny abstract.\n\nWhy: title: "tiny"' and theirs.summary == "Tiny abstract."
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
    odd = {"author": feeds._SLOT_TITLE, "subtitle": feeds._SLOT_ID}
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
    """Each user's feed written during a run equals feedgen's tree build of the papers of their digests."""
    cfg = _run_with_feeds(tmp_path, seeds[0])
    conn = store.open_store(cfg.digest.store)
    writer = publish.FeedWriter.for_run(conn, cfg)
    for name, title in (("ada", "Paper digest for ada"), ("zoe", "Paper digest for Zoë & <Co>")):
        papers = store.get_papers(conn, outbox.feed_keys(conn, name, limit=cfg.feeds.max_entries))
        expected = build_feed(
            feed_entries(papers),
            feed_id=tag_uri(writer.authority, f"feed/user/{name}"),
            title=title,
            self_url=f"https://digest.example.org/feeds/{name}.xml",
            alternate_url="https://digest.example.org",
            authority=writer.authority,
            author=cfg.mail.sender_name,
            max_entries=cfg.feeds.max_entries,
        )
        assert papers and (cfg.feeds.output / f"{name}.xml").read_bytes() == expected


def test_feed_writer_skips_papers_the_store_lost(tmp_path: Path, seeds: list[Path]):
    """A digest's paper missing from the store is left out of the feed and looked up once per run, not per feed."""
    cfg = _run_with_feeds(tmp_path, seeds[0])
    conn = store.open_store(cfg.digest.store)
    [lost, *kept] = outbox.feed_keys(conn, "ada", limit=cfg.feeds.max_entries)
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
