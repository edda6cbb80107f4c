"""Webhook payloads: every part within its target's documented limits, every paper once and in order, user and
dump text unable to mention, link or inject markup. The limits are written out here, not read from the builder."""

from __future__ import annotations

import html
import json
import random
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest

from digest.deliver.webhook import KINDS, build_parts, parcel_data
from digest.errors import ConfigError
from digest.models import Digest, Match, Paper, Profile

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
VIEW = "https://digest.example.org/ada/2026-11-23.html"
FEED = "https://digest.example.org/ada.atom"

EVIL = [
    "<!channel> <http://evil|click>",
    "@everyone @here <@123456> **bold** __u__ *i* _i_ ~~s~~ `code` ||spoiler|| > quote [x](http://evil) # h",
    "<b>bold</b> <script>alert(1)</script> <a href='http://evil'>x</a> &amp; & \" '",
    "pipes | and > and < and &gt; and |>| <https://evil.example|x>",
    "line\nbreak\u2028and\ttab \\ backslash \\* not escaped",
    "@room ping 🎉🎉🎉 emoji 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
]


def utf16(text: str) -> int:
    """Characters as Slack and Discord may count them (UTF-16 units): never fewer than code points."""
    return len(text.encode("utf-16-le")) // 2


def paper(i: int, title: str | None = None, *, arxiv: bool = True, **kw: Any) -> Paper:
    aid = f"2411.{i:05d}" if arxiv else None
    fields: dict[str, Any] = {
        "key": f"arxiv:{aid}" if aid else f"title:{i:020d}",
        "title": title if title is not None else f"Paper number {i} on diffusion",
        "abstract": f"Abstract of paper {i}. " * 20,
        "authors": ("Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra"),
        "n_authors": 12,
        "organization": "AI at Meta",
        "upvotes": i,
        "arxiv_id": aid,
        "github_repo": f"https://github.com/example/p{i}",
        "github_stars": 42,
        "project_page": f"https://example.org/p{i}",
    }
    fields.update(kw)
    return Paper(**fields)


def match(p: Paper, reason: str = 'title: "diffusion"') -> Match:
    return Match(paper=p, score=1.5, hits=(), reason=reason)


def digest(matches: Sequence[Match], *, name: str = "ada", display: str | None = "Ada", **kw: Any) -> Digest:
    profile = Profile(name=name, email="ada@example.org", display_name=display)
    return Digest(profile=profile, matches=tuple(matches), generated_at=NOW, period="2026-11-23", **kw)


def build(kind: str, d: Digest, shown: Sequence[Match] | None = None, **kw: Any) -> list[dict[str, Any]]:
    kw.setdefault("view_url", VIEW)
    kw.setdefault("feed_url", FEED)
    return build_parts(kind, d, d.matches if shown is None else shown, now=NOW, **kw)


# ---- independent limit checks ------------------------------------------------------------------------------------


def mrkdwn_texts(part: dict[str, Any]) -> list[str]:
    """Every mrkdwn string of a Slack message."""
    texts = []
    for block in part["blocks"]:
        if block["type"] == "section":
            texts.append(block["text"]["text"])
        if block["type"] == "context":
            texts += [e["text"] for e in block["elements"]]
    return texts


def check_slack(part: dict[str, Any], allowed_urls: set[str]) -> None:
    assert set(part) <= {"text", "blocks", "unfurl_links", "unfurl_media"}
    assert part["unfurl_links"] is False
    assert 0 < utf16(part["text"]) <= 3000
    assert 1 <= len(part["blocks"]) <= 50
    for block in part["blocks"]:
        assert block["type"] in {"header", "section", "context", "divider"}
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text"
            assert 0 < utf16(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert block["text"]["type"] == "mrkdwn"
            assert 0 < utf16(block["text"]["text"]) <= 3000
        if block["type"] == "context":
            assert 1 <= len(block["elements"]) <= 10
            assert all(0 < utf16(e["text"]) <= 2000 for e in block["elements"])
    for text in [part["text"], *mrkdwn_texts(part)]:
        # Slack's control sequences all start with "<": only our own links may have one.
        for token in re.findall(r"<([^>]*)>", text):
            url = html.unescape(token.split("|", 1)[0])
            assert url in allowed_urls, token
            assert token.count("|") <= 1
        assert "<!" not in text and "<@" not in text and "<#" not in text
        assert re.search(r"&(?!amp;|lt;|gt;)", text) is None  # every & of the text is escaped


DISCORD_SPECIAL = set("*_~`|>[]()")


def unescaped_discord(text: str) -> str:
    """The markdown-significant characters left after removing backslash escapes."""
    return "".join(ch for ch in re.sub(r"\\.", "", text) if ch in DISCORD_SPECIAL)


def check_discord(part: dict[str, Any]) -> None:
    assert set(part) <= {"content", "embeds", "allowed_mentions"}
    assert part["allowed_mentions"] == {"parse": []}
    assert 0 < utf16(part["content"]) <= 2000
    assert len(part["embeds"]) <= 10
    total = 0
    for embed in part["embeds"]:
        assert 0 < utf16(embed["title"]) <= 256
        assert utf16(embed.get("description", "")) <= 4096
        assert len(embed.get("fields", [])) <= 25
        for f in embed.get("fields", []):
            assert utf16(f["name"]) <= 256 and utf16(f["value"]) <= 1024
        assert utf16(embed.get("footer", {}).get("text", "")) <= 2048
        assert utf16(embed.get("author", {}).get("name", "")) <= 256
        total += utf16(embed["title"]) + utf16(embed.get("description", ""))
        total += sum(utf16(f["name"]) + utf16(f["value"]) for f in embed.get("fields", []))
        total += utf16(embed.get("footer", {}).get("text", "")) + utf16(embed.get("author", {}).get("name", ""))
        assert unescaped_discord(embed["title"]) == "", embed["title"]
    assert total <= 6000


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check_matrix(part: dict[str, Any], allowed_urls: set[str]) -> _Tags:
    assert part["msgtype"] in ("m.notice", "m.text")
    assert part["format"] == "org.matrix.custom.html"
    assert isinstance(part["body"], str) and part["body"]
    assert len(json.dumps(part).encode()) < 60_000
    assert len(json.dumps(part, ensure_ascii=False).encode()) < 60_000
    parser = _Tags()
    parser.feed(part["formatted_body"])
    parser.close()
    for tag, attrs in parser.tags:
        assert tag in {"h4", "ol", "li", "p", "a", "b", "i", "br"}, tag
        if tag == "a":
            assert set(attrs) == {"href"} and attrs["href"] in allowed_urls
        else:
            assert set(attrs) <= {"start"}
    return parser


def check_json(part: dict[str, Any]) -> None:
    assert set(part) == {"user", "period", "generated_at", "view_url", "feed_url", "part", "parts", "papers"}
    assert len(part["papers"]) <= 100
    for p in part["papers"]:
        keys = {"key", "arxiv_id", "title", "authors", "organization", "upvotes", "score", "reason", "abstract"}
        assert set(p) == keys | {"links", "suggestion"}
        assert isinstance(p["suggestion"], bool)


def allowed(d: Digest) -> set[str]:
    """Every URL a digest may link: its papers' links, the archive page and the feed."""
    from digest.identity import paper_links

    urls = {VIEW, FEED}
    for m in (*d.matches, *d.suggestions):
        links = paper_links(m.paper)
        urls |= {u for u in (links.pdf, links.arxiv, links.hf, links.code, links.project) if u}
    return urls


def check(kind: str, d: Digest, parts: list[dict[str, Any]]) -> None:
    """Every limit on every part, and the JSON round trip."""
    assert parts
    for part in parts:
        assert json.loads(json.dumps(part, allow_nan=False)) == part
        {
            "slack": lambda p: check_slack(p, allowed(d)),
            "discord": check_discord,
            "matrix": lambda p: check_matrix(p, allowed(d)),
            "json": check_json,
        }[kind](part)
    assert json.loads(parcel_data(parts)) == {"parts": parts}


# ---- which papers a part carries ----------------------------------------------------------------------------------

ABS = re.compile(r"https://arxiv\.org/abs/(\d{4}\.\d{5})")


def shown_ids(kind: str, parts: list[dict[str, Any]]) -> list[str]:
    """The arXiv ids of the papers the parts carry, in order, read the way a reader of each target sees them."""
    ids: list[str] = []
    for part in parts:
        if kind == "slack":
            for block in part["blocks"]:
                if block["type"] == "section":
                    found = ABS.match(block["text"]["text"][2:])  # "*<https://arxiv.org/abs/...|title>*"
                    assert found, block["text"]["text"][:100]
                    ids.append(found.group(1))
        elif kind == "discord":
            ids += [ABS.fullmatch(e["url"]).group(1) for e in part["embeds"]]  # type: ignore[union-attr]
        elif kind == "matrix":
            ids += re.findall(r'<li><p><a href="https://arxiv\.org/abs/([^"]+)">', part["formatted_body"])
        else:
            ids += [p["arxiv_id"] for p in part["papers"]]
    return ids


# ---- tests ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [0, 1, 17, 200])
def test_every_paper_once_in_order_within_limits(kind: str, n: int) -> None:
    """0, 1, 17 and 200 papers: all limits hold, every paper appears exactly once, in the order given."""
    d = digest([match(paper(i)) for i in range(n)])
    parts = build(kind, d)
    check(kind, d, parts)
    assert shown_ids(kind, parts) == [f"2411.{i:05d}" for i in range(n)]


@pytest.mark.parametrize("kind", KINDS)
def test_random_adversarial_digests(kind: str) -> None:
    """Seeded random digests of hostile titles, reasons, authors and abstracts: limits, order and escaping hold."""
    rng = random.Random(f"webhook-{kind}")
    for _ in range(12):
        n = rng.choice([1, 2, 9, 10, 11, 16, 17, 33, 60])

        def text(limit: int) -> str:
            return " ".join(rng.choice(EVIL) for _ in range(rng.randint(1, 4)))[: rng.randint(1, limit)]

        matches = []
        for i in range(n):
            authors = tuple(text(80) for _ in range(rng.randint(0, 9)))
            odd = {"organization": rng.choice([None, text(200)]), "ai_summary": rng.choice([None, text(600)])}
            upvotes = rng.choice([None, 0, 10**9])
            hostile = paper(i, text(400) or "t", abstract=text(5000), authors=authors, upvotes=upvotes, **odd)
            matches.append(match(hostile, reason=text(500)))
        d = digest(matches, display=text(200), overflow=tuple(matches[:2]), dropped=("arxiv:1", "arxiv:2"))
        parts = build(kind, d)
        check(kind, d, parts)
        assert shown_ids(kind, parts) == [f"2411.{i:05d}" for i in range(n)]


@pytest.mark.parametrize("kind", KINDS)
def test_huge_fields_are_truncated_not_dropped(kind: str) -> None:
    """100 KB titles, abstracts, reasons and names: each paper is still delivered, cut with an ellipsis."""
    big = "Huge " + "title & <markup> | *x* " * 5000
    matches = [
        match(paper(i, big, abstract="a" * 100_000, ai_summary=None, organization="o" * 100_000,
                    authors=("n" * 100_000,) * 50), reason="r" * 100_000)
        for i in range(30)
    ]  # fmt: skip
    d = digest(matches, display="d" * 100_000)
    parts = build(kind, d)
    check(kind, d, parts)
    assert shown_ids(kind, parts) == [f"2411.{i:05d}" for i in range(30)]
    assert "…" in json.dumps(parts[0], ensure_ascii=False)
    assert sum(len(json.dumps(p)) for p in parts) < 30 * 20_000  # cut to a readable size, not forwarded whole


@pytest.mark.parametrize("kind", KINDS)
def test_papers_without_arxiv_id_and_with_odd_links(kind: str) -> None:
    """No arXiv id (a Hugging Face search link, long for a long title), no repo, a javascript: project page."""
    matches = [
        match(paper(0, "Ünïcödé " * 200, arxiv=False, github_repo=None, project_page="javascript:alert(1)")),
        match(paper(1, "x", arxiv=False, github_repo="https://github.com/a/b?x=1&y=<2>|3", github_stars=None)),
    ]
    d = digest(matches)
    parts = build(kind, d)
    check(kind, d, parts)
    assert "javascript:" not in json.dumps(parts) or kind == "json"


def test_slack_title_cannot_mention_or_link() -> None:
    """A title "<!channel> <http://evil|click>" stays text: escaped, no mention, no link to http://evil."""
    d = digest([match(paper(1, "<!channel> <http://evil|click>"), reason="<!here> & <@U123>")], display="<!everyone>")
    (part,) = build("slack", d)
    check_slack(part, allowed(d))
    section = next(b for b in part["blocks"] if b["type"] == "section")["text"]["text"]
    assert section.startswith("*<https://arxiv.org/abs/2411.00001|&lt;!channel&gt; &lt;http://evil¦click&gt;>*")
    assert "&lt;!here&gt; &amp; &lt;@U123&gt;" in section
    assert "http://evil" not in {t.split("|")[0] for t in re.findall(r"<([^>]*)>", json.dumps(part))}


def test_slack_layout() -> None:
    """Header with name, count and period; per paper a section, a context of links and a divider; a footer."""
    d = digest([match(paper(i)) for i in range(5)])
    (part,) = build("slack", d)
    blocks = part["blocks"]
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": "5 new papers for Ada — 2026-11-23"}}
    assert [b["type"] for b in blocks[1:4]] == ["section", "context", "divider"]
    section = blocks[1]["text"]["text"]
    assert "Ada Lovelace, Alan Turing, Grace Hopper et al. · AI at Meta · ▲ 0" in section
    assert '_Why:_ title: "diffusion"' in section
    assert "Abstract of paper 0." in section and section.endswith("…")
    links = [e["text"] for e in blocks[2]["elements"]]
    assert links == [
        "<https://arxiv.org/pdf/2411.00000|PDF>",
        "<https://arxiv.org/abs/2411.00000|arXiv>",
        "<https://huggingface.co/papers/2411.00000|Hugging Face>",
        "<https://github.com/example/p0|Code ★42>",
        "<https://example.org/p0|Project>",
    ]
    footer = [e["text"] for e in blocks[-1]["elements"]]
    assert footer == [f"<{VIEW}|View in browser>", f"<{FEED}|Atom feed>"]
    assert part["text"].startswith("5 new papers for Ada — 2026-11-23: Paper number 0 on diffusion; ")


@pytest.mark.parametrize("kind", ["slack", "discord", "matrix"])
def test_split_messages_say_part_n_of_m(kind: str) -> None:
    """A digest split in several messages says "part i of n" on each; the notes come on the last."""
    matches = [match(paper(i, "T" * 300)) for i in range(200 if kind == "matrix" else 40)]
    d = digest(matches, overflow=tuple(matches[:3]))
    parts = build(kind, d)
    assert len(parts) > 1
    for n, part in enumerate(parts, 1):
        text = json.dumps(part, ensure_ascii=False)
        assert f"part {n} of {len(parts)}" in text
        assert ("3 more matching papers come" in text) == (n == len(parts))
        assert VIEW in text


def test_single_message_has_no_part_label_and_singular_header() -> None:
    """One paper: "1 new paper", no "part 1 of 1"."""
    d = digest([match(paper(1))])
    for kind in ("slack", "discord", "matrix"):
        text = json.dumps(build(kind, d), ensure_ascii=False)
        assert "1 new paper for Ada — 2026-11-23" in text and "part 1" not in text


def test_empty_digest_does_not_crash() -> None:
    """No papers (the pipeline never sends one): one message saying so, per kind."""
    d = digest([])
    for kind in KINDS:
        parts = build(kind, d)
        check(kind, d, parts)
        assert len(parts) == 1
    assert build("json", d)[0]["papers"] == []
    assert "No new papers for Ada" in json.dumps(build("slack", d), ensure_ascii=False)


def test_discord_escapes_markdown_and_pings_nobody() -> None:
    """Markdown in a title is backslash-escaped; @everyone is escaped and allowed_mentions parses nothing."""
    title = "**Bold** @everyone [x](http://evil) `c` ~~s~~ ||sp|| > q _i_"
    d = digest([match(paper(1, title), reason="@here")], display="@everyone")
    (part,) = build("discord", d)
    check_discord(part)
    embed = part["embeds"][0]
    assert embed["url"] == "https://arxiv.org/abs/2411.00001"
    assert re.sub(r"\\(.)", r"\1", embed["title"]) == title  # escaping only adds backslashes
    assert "\\@everyone" in embed["title"] and "\\@everyone" in part["content"]
    assert "\\@here" in embed["description"]
    assert "[PDF](https://arxiv.org/pdf/2411.00001)" in embed["description"]
    assert f"[View in browser](<{VIEW}>)" in part["content"]


def test_discord_splits_by_embed_count_and_total_text() -> None:
    """Ten embeds at most; long papers split sooner by the 6,000-character total."""
    short = build("discord", digest([match(paper(i, "t", abstract="a")) for i in range(25)]))
    assert [len(p["embeds"]) for p in short] == [10, 10, 5]
    long = build("discord", digest([match(paper(i, "T" * 1000, abstract="a" * 1000)) for i in range(25)]))
    assert all(len(p["embeds"]) < 10 for p in long) and len(long) > 3


def test_matrix_escapes_html_and_mentions_nobody() -> None:
    """Titles are HTML-escaped in formatted_body and kept as text in body; m.mentions is empty."""
    title = "<b>x</b> <script>alert(1)</script> & @room"
    d = digest([match(paper(1, title))], display="<i>Ada</i>")
    (part,) = build("matrix", d)
    parser = check_matrix(part, allowed(d))
    assert part["m.mentions"] == {}
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; @room" in part["formatted_body"]
    assert title in "".join(parser.text)
    assert f"1. {title}" in part["body"] and "<i>Ada</i>" in part["body"]
    assert [t for t, _ in parser.tags].count("b") == 1  # only the title's own bold


def test_matrix_numbering_continues_across_parts() -> None:
    """Each part's list starts at the paper's number in the digest."""
    parts = build("matrix", digest([match(paper(i, "T" * 300, abstract="é" * 300)) for i in range(300)]))
    starts = [int(re.search(r'<ol start="(\d+)">', p["formatted_body"]).group(1)) for p in parts]  # type: ignore[union-attr]
    counts = [p["formatted_body"].count("<li>") for p in parts]
    assert starts == [1 + sum(counts[:i]) for i in range(len(parts))]


def test_json_body_fields_and_pages_of_100() -> None:
    """Plain JSON: the documented fields, 100 papers a body, part/parts counted, links from the one rule."""
    d = digest([match(paper(i)) for i in range(250)])
    parts = build("json", d)
    assert [(p["part"], p["parts"], len(p["papers"])) for p in parts] == [(1, 3, 100), (2, 3, 100), (3, 3, 50)]
    first = parts[0]
    assert (first["user"], first["period"], first["view_url"], first["feed_url"]) == ("ada", "2026-11-23", VIEW, FEED)
    assert first["generated_at"] == "2026-11-23T07:00:00+00:00"
    p0 = first["papers"][0]
    assert p0["key"] == "arxiv:2411.00000" and p0["score"] == 1.5 and p0["upvotes"] == 0
    assert p0["authors"] == ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra"]
    assert p0["links"] == {
        "pdf": "https://arxiv.org/pdf/2411.00000",
        "arxiv": "https://arxiv.org/abs/2411.00000",
        "hf": "https://huggingface.co/papers/2411.00000",
        "code": "https://github.com/example/p0",
        "project": "https://example.org/p0",
    }


def test_json_score_nan_is_null() -> None:
    """A non-finite score cannot make the body invalid JSON."""
    m = Match(paper=paper(1), score=float("nan"), hits=(), reason="r")
    (part,) = build("json", digest([m]))
    assert part["papers"][0]["score"] is None
    json.dumps(part, allow_nan=False)


def test_unsafe_view_and_feed_urls_are_left_out() -> None:
    """Only http(s) archive and feed URLs are linked."""
    d = digest([match(paper(1))])
    for kind in KINDS:
        text = json.dumps(build(kind, d, view_url="javascript:alert(1)", feed_url="ftp://x/y"))
        assert "javascript" not in text and "ftp://" not in text


def test_shown_not_digest_matches_decides() -> None:
    """The builder shows ``shown`` (the pipeline's selection), not every match of the digest."""
    matches = [match(paper(i)) for i in range(5)]
    parts = build("json", digest(matches), shown=[matches[3], matches[1]])
    assert shown_ids("json", parts) == ["2411.00003", "2411.00001"]


def test_unknown_kind_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        build("teams", digest([]))


@pytest.mark.parametrize("kind", KINDS)
def test_papers_with_no_usable_link(kind: str) -> None:
    """A paper whose every URL is too long to link (a Hugging Face search for a long CJK title) still shows."""
    matches = [match(paper(i, "論文" * 150, arxiv=False, github_repo=None, project_page=None)) for i in range(60)]
    d = digest(matches)
    parts = build(kind, d)
    check(kind, d, parts)
    if kind == "slack":
        assert sum(b["type"] == "section" for p in parts for b in p["blocks"]) == 60


# ---- "Also for you" suggestions ------------------------------------------------------------------------------------

WHY = 'suggested: close to "Faster <b>KV</b> caches & more" that you liked (terms: "kv cache")'


def with_suggestions(n: int, k: int, **kw: Any) -> tuple[Digest, list[Match]]:
    """A digest of ``n`` matches and ``k`` suggestions (the papers after them), and what its email shows."""
    matches = [match(paper(i)) for i in range(n)]
    suggestions = [match(paper(n + j, f"Suggested paper {j} on KV caches"), reason=WHY) for j in range(k)]
    return digest(matches, suggestions=tuple(suggestions), **kw), matches + suggestions


def labelled(kind: str, parts: list[dict[str, Any]]) -> list[bool]:
    """For each paper the parts carry, in order: whether a reader sees it as an "Also for you" paper (under that
    heading in its own part for Slack and Matrix; its embed's author line for Discord; its flag for JSON)."""
    seen: list[bool] = []
    for part in parts:
        if kind == "slack":
            under = False
            for block in part["blocks"]:
                if block["type"] == "header" and block["text"]["text"] == "Also for you":
                    assert not under, "one heading a part"
                    under = True
                elif block["type"] == "section":
                    seen.append(under)
        elif kind == "discord":
            seen += [e.get("author", {}).get("name") == "Also for you" for e in part["embeds"]]
        elif kind == "matrix":
            head, _, tail = part["formatted_body"].partition("<p><b>Also for you</b></p>")
            seen += [False] * head.count("<li>") + [True] * tail.count("<li>")
            assert ("Also for you:\n\n" in part["body"]) == bool(tail)
        else:
            seen += [p["suggestion"] for p in part["papers"]]
    return seen


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("n", "k"), [(0, 1), (1, 1), (3, 2), (16, 1), (47, 3), (200, 3)])
def test_suggestions_are_labelled_after_the_matches_within_limits(kind: str, n: int, k: int) -> None:
    """Matches then suggestions, however the digest is split: every limit holds, every paper once in order, and
    exactly the suggestions are labelled "Also for you" (in each part that carries some)."""
    d, shown = with_suggestions(n, k)
    parts = build(kind, d, shown)
    check(kind, d, parts)
    assert shown_ids(kind, parts) == [f"2411.{i:05d}" for i in range(n + k)]
    assert labelled(kind, parts) == [False] * n + [True] * k


@pytest.mark.parametrize("kind", KINDS)
def test_hostile_suggestions_stay_text_and_within_limits(kind: str) -> None:
    """Seeded random digests whose suggestions have hostile titles and reasons, some 100 KB long: limits, order,
    labels and escaping hold."""
    rng = random.Random(f"suggest-{kind}")
    for _ in range(8):
        n, k = rng.choice([0, 1, 9, 15, 16, 33]), rng.choice([1, 2, 5])

        def text(limit: int) -> str:
            return " ".join(rng.choice(EVIL) for _ in range(rng.randint(1, 4)))[: rng.randint(1, limit)]

        matches = [match(paper(i, text(400) or "t"), reason=text(300)) for i in range(n)]
        reasons = [rng.choice([text(500), "r" * 100_000, WHY]) for _ in range(k)]
        suggestions = [
            match(paper(n + j, rng.choice([text(400) or "t", "Huge <x> | " * 10_000]), abstract=text(5000)), why)
            for j, why in enumerate(reasons)
        ]
        d = digest(matches, suggestions=tuple(suggestions), display=text(200))
        parts = build(kind, d, matches + suggestions)
        check(kind, d, parts)
        assert shown_ids(kind, parts) == [f"2411.{i:05d}" for i in range(n + k)]
        assert labelled(kind, parts) == [False] * n + [True] * k


def test_headers_count_matches_and_suggestions_as_the_subject_does() -> None:
    """Headers say "3 new papers + 1 suggestion", or "2 suggestions" with no match; the JSON body flags each
    paper and gives the suggestion's reason."""
    d, shown = with_suggestions(3, 1)
    header = build("slack", d, shown)[0]["blocks"][0]["text"]["text"]
    assert header == "3 new papers + 1 suggestion for Ada — 2026-11-23"
    d0, shown0 = with_suggestions(0, 2)
    for kind in ("slack", "discord", "matrix"):
        text = json.dumps(build(kind, d0, shown0), ensure_ascii=False)
        assert "2 suggestions for Ada — 2026-11-23" in text and "No new papers" not in text
    papers = build("json", d, shown)[0]["papers"]
    assert [(p["suggestion"], p["reason"]) for p in papers] == [(False, 'title: "diffusion"')] * 3 + [(True, WHY)]


def test_each_kind_shows_the_suggestions_why_escaped() -> None:
    """The reason a suggestion was picked is its why line, escaped for each target's markup."""
    d, shown = with_suggestions(1, 1)
    (slack,) = build("slack", d, shown)
    sections = [b["text"]["text"] for b in slack["blocks"] if b["type"] == "section"]
    assert '_Why:_ suggested: close to "Faster &lt;b&gt;KV&lt;/b&gt; caches &amp; more"' in sections[1]
    assert [b["text"]["text"] for b in slack["blocks"] if b["type"] == "header"][1:] == ["Also for you"]
    (discord,) = build("discord", d, shown)
    assert discord["embeds"][1]["author"] == {"name": "Also for you"} and "author" not in discord["embeds"][0]
    assert r'**Why:** suggested: close to "Faster \<b\>KV\</b\> caches & more"' in discord["embeds"][1]["description"]
    (matrix,) = build("matrix", d, shown)
    formatted = matrix["formatted_body"]
    assert "<i>Why:</i> suggested: close to &quot;Faster &lt;b&gt;KV&lt;/b&gt; caches &amp; more" in formatted
    assert '</ol><p><b>Also for you</b></p><ol start="2">' in formatted
    assert "Also for you:\n\n2. Suggested paper 0 on KV caches" in matrix["body"]


def test_a_suggestion_that_is_also_a_match_is_shown_as_a_match() -> None:
    """A paper both matched and suggested is a match (as the email shows it once, among the matches)."""
    both = match(paper(1))
    d = digest([both], suggestions=(match(paper(1), reason=WHY),))
    assert labelled("json", build("json", d, [both])) == [False]
    assert "Also for you" not in json.dumps(build("slack", d, [both]))
