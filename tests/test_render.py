"""Rendering: golden outputs, escaping, highlighting, size budget, template overrides."""

from __future__ import annotations

import base64
import binascii
import email.policy
import json
import re
import textwrap
import unicodedata
from dataclasses import replace
from datetime import UTC, date, datetime
from email.message import EmailMessage
from html import escape as html_escape
from pathlib import Path
from urllib.parse import urlsplit

import css_inline
import markdown
import pytest
from bs4 import BeautifulSoup
from conftest import assert_golden
from markupsafe import Markup

from digest.deliver.email.message import MailSettings, compose
from digest.errors import RenderError
from digest.models import Digest, Hit, Match, Paper, Profile
from digest.render import (
    RenderOptions,
    html_size_estimate,
    make_environment,
    prepare_papers,
    render_digest,
    render_part,
    safe_url,
    templates_dirs,
)
from digest.render import digest as render
from digest.render.textmap import b64_bound, qp

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
UNSUB = "https://digest.example.org/u/AbCdEf0123456789xyzABC"
FEED = "https://digest.example.org/feeds/alice-1a2b3c4d.xml"
VIEW = "https://digest.example.org/archive/alice-1a2b3c4d/2026-11-23.html"
MORE = "https://digest.example.org/archive/alice-1a2b3c4d/2026-11-23.html#more"
MAIL = MailSettings(
    sender="digest@example.org", sender_name="Paper Digest", list_id="daily.digest.example.org",
    domain="digest.example.org", secret=b"s" * 32, unsubscribe_mailto="unsubscribe@example.org",
    unsubscribe_base_url="https://digest.example.org",
)  # fmt: skip
HOSTILE = "<think>Diffusion</think> & <script>alert(1)</script> $x<y$ for LLM\x0bserving — τ-ζ naïve"
LONG = (
    "Large language models (LLMs) are increasingly used to serve diffusion workloads. "
    "We study how $\\nabla^2$ operators & <b>markup</b> interact with scheduling in LLM serving systems, "
    "and show that a simple policy improves throughput by 2.4x on real traces. "
) * 6


def hits(text: str, fld: str, *terms: str) -> tuple[Hit, ...]:
    """Hits for the first occurrence of each term in ``text``."""
    return tuple(Hit(t, fld, text.index(t), text.index(t) + len(t)) for t in terms)


def sample_papers() -> list[Paper]:
    return [
        Paper(
            key="arxiv:2409.01234",
            title=HOSTILE,
            abstract=LONG,
            authors=("Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra"),
            n_authors=12,
            organization="Acme <AI> & Co",
            published=date(2026, 11, 20),
            published_text="Nov 20",
            upvotes=42,
            arxiv_id="2409.01234v2",
            project_page="javascript:alert(document.cookie)",
            ai_summary="A scheduler for <LLM> serving that doubles throughput & keeps latency flat.",
        ),
        Paper(
            key="title:0f3c9a",
            title="Speculative decoding [draft](javascript:alert(1)) *without* drafts",
            abstract="1. We propose *speculative* decoding without a draft model; it is 2x faster.",
            published_text="Apr 8",
            n_authors=5,
        ),
        Paper(
            key="arxiv:2411.00002",
            title="A tiny paper",
            abstract="Short abstract about LLM agents.",
            upvotes=1,
            arxiv_id="2411.00002",
            github_repo="https://github.com/example/tiny",
            github_stars=1234,
            project_page="https://tiny.example.org/",
            thumbnail="https://cdn.example.org/thumbs/2411.00002.png",
        ),
    ]


def sample_digest(papers: list[Paper] | None = None, **profile_kw) -> Digest:
    p = papers or sample_papers()
    matches = (
        Match(
            p[0],
            3.0,
            hits(p[0].title, "title", "Diffusion", "LLM") + hits(p[0].abstract, "abstract", "diffusion", "LLM"),
            'title: "diffusion", "LLM"; abstract: "LLM" x5',
        ),
        Match(p[1], 2.0, hits(p[1].title, "title", "decoding") + hits(p[1].abstract, "abstract", "draft"), "x"),
        Match(p[2], 1.0, hits(p[2].abstract, "abstract", "LLM"), 'abstract: "LLM"'),
    )
    profile = Profile(name="alice", email="alice@example.org", display_name="Zoë <Alice>", **profile_kw)
    return Digest(profile, matches, NOW, "2026-11-23", ("000_f4e371e0c0016fc2.txt",), omitted=0)


def render_sample(**options) -> tuple:
    digest = sample_digest()
    cache = prepare_papers(digest.matches, RenderOptions(abstract_chars=400, **options))
    email = render_digest(digest, cache, unsubscribe_url=UNSUB, feed_url=FEED, manage_hint="edit profiles.toml")
    return digest, cache, email


def hrefs(html: str) -> list[str]:
    soup = BeautifulSoup(html, "lxml")
    return [a["href"] for a in soup.find_all(href=True)]


def qp_size(html: str) -> int:
    part = EmailMessage(policy=email.policy.SMTP)
    part.set_content(html, subtype="html", cte="quoted-printable")
    return len(part.as_bytes().split(b"\r\n\r\n", 1)[1])


def b64_size(html: str) -> int:
    """Size of ``html`` in base64 as compose sends it: CRLF line ends, 76-character lines each ending in CRLF."""
    encoded = base64.encodebytes(html.replace("\r\n", "\n").replace("\n", "\r\n").encode())
    return len(encoded) + encoded.count(b"\n")


# --- golden files -------------------------------------------------------------------------------


def test_golden_subject_markdown_text_html(update_golden: bool):
    """The sample digest renders exactly as the golden subject, text/plain, Markdown and HTML files."""
    digest, cache, email = render_sample()
    assert_golden("digest.subject.txt", email.subject + "\n", update_golden)
    assert_golden("digest.txt", email.text, update_golden)
    assert_golden("digest.md", render_part("md", digest, cache, unsubscribe_url=UNSUB, feed_url=FEED), update_golden)
    assert_golden("digest.html", email.html, update_golden)


def test_golden_whole_message(update_golden: bool):
    """The sample digest composed (fixed now and Message-ID secret) is byte-identical to the golden .eml file."""
    _, _, email = render_sample()
    data = compose(email, MAIL, now=NOW)
    assert_golden("digest.eml", data.decode("ascii"), update_golden)


def test_golden_view_and_more_links(update_golden: bool):
    """With view_url and more_url set, the email links "View in browser" and the "N more papers" line."""
    digest = replace(sample_digest(), omitted=4)
    cache = prepare_papers(digest.matches, RenderOptions(abstract_chars=400))
    email = render_digest(digest, cache, unsubscribe_url=UNSUB, feed_url=FEED, view_url=VIEW, more_url=MORE)
    assert_golden("digest-links.txt", email.text, update_golden)
    assert_golden("digest-links.html", email.html, update_golden)


def test_golden_empty_digest(update_golden: bool):
    """A digest without papers (no feed) renders as the golden Markdown file."""
    digest = replace(sample_digest(), matches=(), dumps=())
    cache = prepare_papers([], RenderOptions())
    assert_golden("empty.md", render_part("md", digest, cache, unsubscribe_url=UNSUB), update_golden)


# --- HTML structure -----------------------------------------------------------------------------


def test_html_document_metadata():
    """HTML has lang, meta charset, color-scheme metas and a <title> equal to the subject."""
    _, _, email = render_sample()
    soup = BeautifulSoup(email.html, "lxml")
    assert soup.html["lang"] == "en"
    assert soup.find("meta", charset=True)["charset"].lower() == "utf-8"
    assert soup.find("meta", attrs={"name": "color-scheme"})["content"] == "light dark"
    assert soup.find("meta", attrs={"name": "supported-color-schemes"})["content"] == "light dark"
    assert soup.title.string == email.subject


def test_every_table_is_presentation():
    """Every layout table carries role="presentation" and the container is at most 600px wide."""
    _, _, email = render_sample()
    soup = BeautifulSoup(email.html, "lxml")
    tables = soup.find_all("table")
    assert tables and all(t.get("role") == "presentation" for t in tables)
    assert "max-width: 600px" in soup.find("table", class_="container")["style"]


def test_dark_mode_block_survives_inlining():
    """The prefers-color-scheme block stays in <style> while plain rules become style attributes."""
    _, _, email = render_sample()
    soup = BeautifulSoup(email.html, "lxml")
    styles = " ".join(s.get_text() for s in soup.find_all("style"))
    assert "@media (prefers-color-scheme: dark)" in styles
    assert "background-color" in soup.body["style"]
    assert ".paper-cell {" not in styles


def test_no_script_and_only_safe_link_schemes():
    """No <script> element, and every href is http, https or mailto (javascript: project URL dropped)."""
    _, _, email = render_sample()
    soup = BeautifulSoup(email.html, "lxml")
    assert soup.find("script") is None
    links = hrefs(email.html)
    assert links and all(urlsplit(h).scheme in {"http", "https", "mailto"} or h.startswith("#p-") for h in links)
    values = [v for tag in soup.find_all(True) for v in tag.attrs.values() if isinstance(v, str)]
    assert not [v for v in values if v.strip().lower().startswith("javascript")]


def test_untrusted_text_is_escaped_in_html():
    """<think>, <script>, &, $, \\x0b and non-ASCII in a title come out as text, controls removed."""
    _, _, email = render_sample()
    soup = BeautifulSoup(email.html, "lxml")
    assert soup.find("think") is None
    first_title = soup.find("h2").get_text()
    assert first_title == render._clean(HOSTILE)
    assert "\x0b" not in email.html and "\x0b" not in email.text
    assert "τ-ζ naïve" in email.html
    assert "&lt;think&gt;" in email.html


def test_html_matches_full_render_of_the_same_templates():
    """The cached, spliced HTML equals rendering the full templates and inlining the page per user."""
    digest, cache, email = render_sample()
    assert _normalise(email.html) == _normalise(_naive_html(digest, cache))


def _naive_html(digest: Digest, cache: render.RenderCache, votes: dict[str, tuple[str, str]] | None = None) -> str:
    """What the cache avoids: full Jinja render with real values, then CSS-inline the whole page. The titles and
    abstracts, with their highlights, are built here from the Match hits by `_marked`, not by the renderer's
    escaping, splicing or cutting code (an oracle must not reuse what it checks); the vote links are
    votes.html.j2 rendered with the real URLs."""
    env = cache.env
    votes = votes or {}

    def cards(matches: tuple[Match, ...], first: int) -> str:
        out = []
        for n, m in enumerate(matches, first):
            title_hits = [(h.start, h.end) for h in m.hits if h.field == "title"]
            abstract_hits = [(h.start, h.end) for h in m.hits if h.field == "abstract"]
            cut = _word_cut(m.paper.abstract, cache.options.abstract_chars)
            trimmed = cut < len(m.paper.abstract.rstrip())
            ctx = {**render.paper_context(m.paper, cache.options), "trimmed": trimmed, "n": n}
            ctx["title"] = Markup(_marked(m.paper.title, title_hits, len(m.paper.title), "<mark>", "</mark>"))
            abstract = _marked(m.paper.abstract, abstract_hits, cut, "<mark><strong>", "</strong></mark>")
            ctx["abstract"] = Markup(abstract + (" …" if trimmed else ""))
            pair = votes.get(m.paper.key)
            vote = env.get_template("votes.html.j2").render(up_url=pair[0], down_url=pair[1]) if pair else ""
            ctx |= {"reason": m.reason, "has_abstract": True, "votes": Markup(vote.rstrip())}
            out.append(env.get_template("paper.html.j2").render(ctx))
        return "".join(out)

    def index(matches: tuple[Match, ...]) -> str:
        item = env.get_template("index_item.html.j2")
        return "".join(item.render(anchor=render.anchor(m.paper), title=render._clean(m.paper.title)) for m in matches)

    count, suggested = len(digest.matches), len(digest.suggestions)
    subject = render._subject(cache, "2026-11-23", digest.period, count, count, suggested)
    page = env.get_template("digest.html.j2").render(
        site_name="Paper digest", lang="en", count=count, total=count, more=0, period=digest.period,
        date="2026-11-23", dumps=list(digest.dumps), subject=subject, user_name="Zoë <Alice>", unsubscribe_url=UNSUB,
        view_url=None, more_url=None, feed_url=FEED, manage_hint="edit profiles.toml", dropped=0,
        papers=Markup(cards(digest.matches, 1)), index=Markup(index(digest.matches)), web_page=False,
        suggested=suggested, suggestions=Markup(cards(digest.suggestions, count + 1)),
        suggestions_index=Markup(index(digest.suggestions)),
    )  # fmt: skip
    return css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False).inline(page)


def _gap(char: str) -> bool:
    """White space or a character that is never text (a control, a surrogate, a noncharacter)."""
    return char.isspace() or unicodedata.category(char) in ("Cc", "Cs") or char in "\ufffe\uffff"


def _marked(text: str, hits: list[tuple[int, int]], cut: int, open_: str, close: str) -> str:
    """``text[:cut]`` as HTML, one character at a time: every run of gap characters is one space (nothing when
    it holds no white space, or at either end of the text), the rest HTML-escaped; each hit, trimmed of white
    space and joined with a neighbour it overlaps or is under 4 white-space characters from, is wrapped in
    open_/close."""
    spans: list[list[int]] = []
    for start, end in sorted(hits):
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start == end:
            continue
        if spans and (start <= spans[-1][1] or (start - spans[-1][1] < 4 and text[spans[-1][1] : start].isspace())):
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    marked = [False] * len(text)
    for start, end in spans:
        for i in range(start, min(end, cut)):
            marked[i] = True
    first = next((i for i, c in enumerate(text) if not _gap(c)), len(text))
    last = max((i for i, c in enumerate(text) if not _gap(c)), default=-1)
    out, inside, i = [], False, 0
    while i < cut:
        if marked[i] != inside:
            out.append(open_ if marked[i] else close)
            inside = marked[i]
        if _gap(text[i]):
            j = i
            while j < len(text) and _gap(text[j]) and marked[j] == marked[i]:
                j += 1
            if first < i and j <= last and any(c.isspace() for c in text[i:j]):
                out.append(" ")
            i = j
        else:
            out.append(html_escape(text[i], quote=True))
            i += 1
    return "".join(out) + (close if inside else "")


def _word_cut(text: str, limit: int) -> int:
    """Where the sample abstracts are cut: whole when short enough, else after the last word that ends within
    ``limit`` characters, without the white space and the punctuation before it."""
    if len(" ".join(text.split())) <= limit:
        return len(text.rstrip())
    cut = text.rfind(" ", 0, limit + 1)
    while text[cut - 1].isspace() or text[cut - 1] in ",;:([{-–—":
        cut -= 1
    return cut


def _normalise(html: str) -> str:
    return str(BeautifulSoup(html, "lxml"))


# --- highlighting, trimming, Markdown -----------------------------------------------------------


def test_highlights_wrap_exact_hit_text_in_html():
    """Each title hit becomes <mark>term</mark> (a title is not also bold and underlined), each abstract hit
    <mark><strong>term</strong></mark>, around exactly the hit text."""
    _, _, email = render_sample()
    soup = BeautifulSoup(email.html, "lxml")
    marked = [m.get_text() for m in soup.find("h2").find_all("mark")]
    assert marked == ["Diffusion", "LLM"]
    assert all(m.strong is None for m in soup.find("h2").find_all("mark"))
    assert "underline" not in soup.find("a", class_="paper-link")["style"]
    abstract_marks = soup.find("p", class_="abstract").find_all("mark")
    assert abstract_marks and all(m.strong is not None for m in abstract_marks)
    assert all("background-color" in m["style"] for m in soup.find_all("mark"))


def test_highlights_use_bold_in_markdown_and_escape_the_rest():
    """Markdown bolds the hits, escapes Markdown/HTML metacharacters and keeps $ as is."""
    digest, cache, _ = render_sample()
    md = render_part("md", digest, cache, unsubscribe_url=UNSUB)
    assert "\\<think\\>**Diffusion**\\</think\\> & \\<script\\>" in md
    assert "$x\\<y$ for **LLM** serving" in md
    assert "[Speculative **decoding** \\[draft\\](javascript:alert(1)) \\*without\\* drafts](" in md


def test_markdown_links_use_only_safe_schemes():
    """Converted to HTML, the Markdown links only to http(s)/mailto and has no script element."""
    digest, cache, _ = render_sample()
    html = markdown.markdown(render_part("md", digest, cache, unsubscribe_url=UNSUB))
    assert BeautifulSoup(html, "lxml").find("script") is None
    targets = hrefs(html)
    assert len(targets) >= 9 and all(urlsplit(t).scheme in {"http", "https", "mailto"} for t in targets)


def test_overlapping_hits_are_merged():
    """Overlapping and touching hits produce a single highlight."""
    p = Paper(key="arxiv:2401.00001", title="diffusion model serving", abstract="", arxiv_id="2401.00001")
    m = Match(p, 1.0, (Hit("a", "title", 0, 9), Hit("b", "title", 5, 15), Hit("c", "title", 15, 23)), "r")
    d = Digest(Profile(name="u", email="u@example.org"), (m,), NOW, "2026-11-23")
    md = render_part("md", d, prepare_papers([p]), unsubscribe_url=UNSUB)
    assert "[**diffusion model serving**](" in md


def test_out_of_range_and_other_field_hits_are_ignored():
    """Hits past the end of the text, empty hits and org hits do not break the output."""
    p = Paper(key="arxiv:2401.00002", title="Tiny", abstract="Small.", arxiv_id="2401.00002", organization="Org")
    m = Match(p, 1.0, (Hit("x", "title", 10, 20), Hit("y", "abstract", 3, 3), Hit("o", "org", 0, 3)), "org")
    d = Digest(Profile(name="u", email="u@example.org"), (m,), NOW, "2026-11-23")
    md = render_part("md", d, prepare_papers([p]), unsubscribe_url=UNSUB)
    assert "[Tiny](https://huggingface.co/papers/2401.00002)" in md and "Small." in md


def test_empty_title_and_abstract_still_render():
    """A paper without title or abstract gets a placeholder title and no empty abstract paragraph."""
    p = Paper(key="title:e", title=" ", abstract="")
    d = Digest(Profile(name="u", email="u@example.org"), (Match(p, 1.0, (), "org"),), NOW, "2026-11-23")
    cache = prepare_papers([p])
    assert "### 1. [(untitled)](https://huggingface.co/papers?q=)" in render_part("md", d, cache, unsubscribe_url=UNSUB)
    assert (
        BeautifulSoup(render_part("html", d, cache, unsubscribe_url=UNSUB), "lxml").find("p", class_="abstract") is None
    )


def test_abstract_trimmed_at_word_boundary_with_read_more():
    """A long abstract is cut at a word boundary, ends with an ellipsis and a read-more link."""
    _, _, email = render_sample()
    soup = BeautifulSoup(email.html, "lxml")
    abstract = soup.find("p", class_="abstract")
    text = abstract.get_text()
    assert len(text) < 460 and " … read more" in text
    shown = text.split(" …")[0]
    assert LONG.startswith(shown.replace(" ", " ")) and LONG[len(shown)] == " "
    assert abstract.find("a", class_="read-more")["href"] == "https://huggingface.co/papers/2409.01234"


def test_markdown_abstract_is_wrapped_and_cannot_start_a_list():
    """Markdown abstracts wrap at the configured width and a leading "1." is escaped."""
    digest, cache, _ = render_sample()
    md = render_part("md", digest, cache, unsubscribe_url=UNSUB)
    assert "\n1\\. We propose" in md
    paragraph = md.split("naïve](")[1].split("\n\n")[4]
    lines = paragraph.splitlines()
    assert len(lines) > 3 and all(len(line) <= 76 + 8 for line in lines[:-1])  # last one ends in a link


CONTROL_EDGES = [
    "x" * 75 + " \x7f",  # ends in a control run just past the wrap column
    "x" * 75 + " \x7f\x00\x85",
    "x" * 76 + "\x7f",
    "\x7f\x01 " + "x" * 75 + " \x7fy",  # starts with controls; "y" wraps
    "x" * 74 + " \x01 \x85yy",
    "x" * 73 + " y\x7fy",  # controls inside a word take no room: "yy" still fits on the line
    "\x00\x7f\x85",  # nothing but controls
    "\x1f\x0e " * 30,
]
_LEFTOVER = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


@pytest.mark.parametrize("text", CONTROL_EDGES)
def test_control_characters_around_the_wrap_column(text: str):
    """Titles and abstracts starting, ending or made of control runs near column 76 render cleanly and wrapped."""
    p = Paper(key="title:ctrl", title=text, abstract=text)
    expected = " ".join(re.sub("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]", "", text).split())
    wrapped = textwrap.fill(expected, 76, break_long_words=False, break_on_hyphens=False)
    cache = prepare_papers([p])
    emails = [
        render_digest(Digest(Profile(name="u", email="u@example.org", formats=formats), (Match(p, 1.0, (), "r"),),
                             NOW, "2026-11-23"), cache, unsubscribe_url=UNSUB)
        for formats in (("markdown", "html"), ("text",))
    ]  # fmt: skip
    for sent in emails:
        assert not _LEFTOVER.search(sent.text + sent.html)
        assert not expected or f"\n\n{wrapped}\n\n" in sent.text  # the abstract paragraph, not the title
    soup = BeautifulSoup(emails[0].html, "lxml")
    title, abstract = soup.find("h2").get_text(), soup.find("p", class_="abstract")
    assert title == expected or (not expected and title == "(untitled)")
    assert (abstract.get_text() if abstract else "") == expected


def test_each_paper_shows_links_and_metadata():
    """Title links to Hugging Face, arXiv link when known, title search otherwise, metadata and reason."""
    _, _, email = render_sample()
    links = hrefs(email.html)
    assert "https://huggingface.co/papers/2409.01234" in links
    assert "https://arxiv.org/abs/2409.01234" in links
    assert "https://github.com/example/tiny" in links
    assert any(h.startswith("https://huggingface.co/papers?q=Speculative+decoding") for h in links)
    assert "Ada Lovelace, Alan Turing, Grace Hopper et al. (12 authors)" in email.html
    assert "Acme &lt;AI&gt; &amp; Co · 2026-11-20 · 42 upvotes" in email.html
    assert "Why: title: &quot;diffusion&quot;, &quot;LLM&quot;; abstract: &quot;LLM&quot; x5" in email.html


def test_summary_and_footer():
    """The digest opens with count and period (no dump file names), and ends with a footer for the reader with
    the unsubscribe link last, never the operator's config hint."""
    _, _, email = render_sample()
    assert "3 new papers for Zoë <Alice>:" in email.text
    assert "000_f4e371e0c0016fc2" not in email.text + email.html
    assert "edit profiles.toml" not in email.text + email.html
    assert "ask whoever runs this digest" in email.text
    assert email.text.rstrip().endswith(f"Unsubscribe: {UNSUB}")
    assert hrefs(email.html).count(UNSUB) == 1


def test_plain_text_has_no_markdown_markup():
    """The "text" format has no bold markers or backslash escapes, only cleaned text."""
    digest = sample_digest(formats=("text",))
    cache = prepare_papers(digest.matches)
    email = render_digest(digest, cache, unsubscribe_url=UNSUB)
    assert email.html == ""
    assert "**" not in email.text and "\\<" not in email.text
    assert render._clean(HOSTILE) in email.text


def test_users_sharing_a_cache_get_their_own_highlights():
    """Two users rendered from one cache each see only their own hits."""
    digest = sample_digest()
    cache = prepare_papers(digest.matches)
    p = digest.matches[2].paper
    other = replace(digest, matches=(Match(p, 1.0, hits(p.title, "title", "tiny"), "t"),))
    first = render_part("md", digest, cache, unsubscribe_url=UNSUB)
    second = render_part("md", other, cache, unsubscribe_url=UNSUB)
    assert "**LLM** agents" in first and "[A **tiny** paper]" not in first
    assert "[A **tiny** paper]" in second and "**LLM** agents" not in second


def test_unprepared_or_changed_paper_is_prepared_on_demand():
    """A paper missing from the cache, or changed since, is rendered from its current data."""
    digest = sample_digest()
    cache = prepare_papers([])
    changed = replace(digest.matches[2].paper, upvotes=99)
    digest2 = replace(digest, matches=(replace(digest.matches[2], paper=changed),))
    assert "1 upvote" in render_part("md", replace(digest, matches=digest.matches[2:]), cache, unsubscribe_url=UNSUB)
    assert "99 upvotes" in render_part("md", digest2, cache, unsubscribe_url=UNSUB)


def test_output_does_not_depend_on_the_cache_instance():
    """Two caches (different slot nonces) render byte-identical emails."""
    assert render_sample()[2] == render_sample()[2]


# --- subject ------------------------------------------------------------------------------------


def test_subject_has_date_and_count_but_no_titles():
    """The default subject names the date and the number of papers, never a paper title."""
    _, _, email = render_sample()
    assert email.subject == "Paper digest — 2026-11-23 (3 papers)"


def test_subject_is_one_line_whatever_the_template(tmp_path: Path):
    """CR/LF and encoded-word markers from an overriding subject template never reach the subject."""
    (tmp_path / "subject.txt.j2").write_text("Digest\r\nBcc: evil@example.org =?utf-8?q?x?=\n{{ date }}\n")
    digest = sample_digest()
    cache = prepare_papers(digest.matches, RenderOptions(templates_dir=tmp_path))
    subject = render_digest(digest, cache, unsubscribe_url=UNSUB).subject
    assert "\r" not in subject and "\n" not in subject and "=?" not in subject
    assert subject == "Digest Bcc: evil@example.org = ?utf-8?q?x?= 2026-11-23"


def test_subject_date_uses_the_profile_timezone():
    """The date in the subject is the local date of the profile's time zone."""
    digest = replace(sample_digest(timezone="Pacific/Auckland"), generated_at=datetime(2026, 11, 23, 20, tzinfo=UTC))
    cache = prepare_papers(digest.matches)
    assert "2026-11-24" in render_digest(digest, cache, unsubscribe_url=UNSUB).subject


# --- size budget --------------------------------------------------------------------------------


def big_digest(n: int) -> Digest:
    papers = [
        Paper(key=f"arxiv:2411.{i:05d}", title=f"Paper {i}: LLM serving at scale — τ", abstract=LONG * 2,
              organization="Org = Lab", upvotes=i, arxiv_id=f"2411.{i:05d}")
        for i in range(n)
    ]  # fmt: skip
    matches = tuple(Match(p, 1.0, hits(p.abstract, "abstract", "LLM", "diffusion"), 'abstract: "LLM"') for p in papers)
    return Digest(Profile(name="bob", email="bob@example.org"), matches, NOW, "2026-11-23", ("d.txt",), omitted=2)


def message_size(email) -> int:
    """Bytes of the whole message as compose sends it (headers, both parts)."""
    return len(compose(email, MAIL, now=NOW))


def test_sixty_long_papers_stay_under_the_clip_budget():
    """A 60-paper digest of long abstracts stays under the budget as a whole message, with room for per-paper
    feedback links, and says how many more come next."""
    digest = big_digest(60)
    options = RenderOptions(abstract_chars=2000)
    cache = prepare_papers(digest.matches, options)
    email = render_digest(digest, cache, unsubscribe_url=UNSUB, feed_url=FEED)
    shown = len(email.paper_keys)
    size = message_size(email)
    assert size + shown * options.reserve_per_paper <= options.max_message_bytes
    assert size >= 0.85 * (options.max_message_bytes - shown * options.reserve_per_paper)  # the budget is used
    assert 10 < shown < 60
    more = 60 + 2 - shown
    # Without a web page to link to, the rest is carried over.
    assert f"{more} more matching papers did not fit in this email; they come in your next digest." in email.text
    note = BeautifulSoup(email.html, "lxml").find("td", class_="more")
    assert note.a is None and note.get_text().startswith(f"{more} more matching papers")
    assert email.text.count("\nWhy: ") == shown
    assert f"({shown} papers)" in email.subject


def test_abstracts_are_trimmed_before_papers_are_dropped():
    """When shorter abstracts fit the budget, every paper is kept."""
    digest = replace(big_digest(12), omitted=0)
    cache = prepare_papers(digest.matches, RenderOptions(abstract_chars=4000, max_message_bytes=60_000))
    email = render_digest(digest, cache, unsubscribe_url=UNSUB)
    assert len(email.paper_keys) == 12
    assert message_size(email) + 12 * 300 <= 60_000
    assert "more matching papers" not in email.text and email.text.count(" …\n") == 12


def test_message_size_bound_is_an_upper_bound():
    """message_size_bound of the parts is never below the composed message's size."""
    for digest in (sample_digest(), big_digest(30)):
        cache = prepare_papers(digest.matches)
        email = render_digest(digest, cache, unsubscribe_url=UNSUB, feed_url=FEED)
        assert message_size(email) <= render.message_size_bound(email.html, email.text)


SIZE_SAMPLES = ("plain", "a=b " * 500, "τζ — naïve 𝔘" * 400, "x" * 5000, "<p>\n" * 300, ".From x\n" * 50)


def test_size_estimate_is_an_upper_bound():
    """html_size_estimate is never below the real quoted-printable size (email package or binascii)."""
    for text in SIZE_SAMPLES:
        by_binascii = len(binascii.b2a_qp(text.encode().replace(b"\n", b"\r\n"), istext=True))
        assert html_size_estimate(text) >= max(qp_size(text), by_binascii)


def test_base64_bound_is_an_upper_bound_and_close():
    """b64_bound from a text's QP cost is never below its base64 size as sent; for ASCII (most of a digest's
    HTML) it is within 1.7x of it (each "=" costs 3 in QP; non-ASCII bytes cost 3, so such text is over-counted)."""
    for text in SIZE_SAMPLES:
        bound = b64_bound(qp(text), text.count("\n"))
        assert b64_size(text) <= bound, text[:20]
        assert not text.isascii() or bound <= 1.7 * b64_size(text) + 8, text[:20]


# --- templates ----------------------------------------------------------------------------------


def test_override_one_partial(tmp_path: Path):
    """A paper.html.j2 in the override folder replaces just the card; the page still comes from defaults."""
    (tmp_path / "paper.html.j2").write_text(
        '<div class="custom"><a href="{{ links.hf }}">{{ title }}</a> {{ abstract }} ({{ reason }})</div>\n'
    )
    digest = sample_digest()
    cache = prepare_papers(digest.matches, RenderOptions(templates_dir=tmp_path))
    soup = BeautifulSoup(render_digest(digest, cache, unsubscribe_url=UNSUB).html, "lxml")
    cards = soup.find_all("div", class_="custom")
    assert len(cards) == 3 and cards[0].find("mark").get_text() == "Diffusion"
    assert soup.find("td", class_="footer") is not None


def test_template_typo_raises_render_error(tmp_path: Path):
    """StrictUndefined turns a misspelt variable in an override into a RenderError with a hint."""
    (tmp_path / "paper.md.j2").write_text("{{ titel }}\n")
    with pytest.raises(RenderError) as exc:
        prepare_papers(sample_papers(), RenderOptions(templates_dir=tmp_path))
    assert "titel" in str(exc.value) and exc.value.hint


def test_template_filtering_a_per_user_value_is_an_error(tmp_path: Path):
    """An override that transforms a per-user slot (here |upper) fails loudly instead of leaking markers."""
    (tmp_path / "paper.md.j2").write_text("{{ title | upper }}\n")
    with pytest.raises(RenderError, match="per-user value"):
        prepare_papers(sample_papers(), RenderOptions(templates_dir=tmp_path))


def test_no_slot_marker_reaches_the_output():
    """The slot markers used internally never appear in any rendered part."""
    digest, cache, email = render_sample()
    text = render_part("txt", digest, cache, unsubscribe_url=UNSUB)
    assert not any(cache.nonce.lower() in part.lower() for part in (email.subject, email.text, email.html, text))


def test_missing_override_folder_is_an_error(tmp_path: Path):
    """A templates setting pointing nowhere fails early with a hint."""
    with pytest.raises(RenderError, match="does not exist"):
        make_environment(tmp_path / "nope")


def test_autoescape_only_for_html_and_xml_templates():
    """Autoescape is on for .html.j2 and .xml.j2 names and off for Markdown and text."""
    env = make_environment()
    assert env.autoescape("digest.html.j2") and env.autoescape("feed.xml.j2")
    assert not env.autoescape("digest.md.j2") and not env.autoescape("subject.txt.j2")


def test_default_templates_found_from_checkout():
    """Without an installed copy, the defaults come from the repository's templates/ folder."""
    dirs = templates_dirs(Path("/override"))
    assert dirs[0] == Path("/override") and (dirs[-1] / "digest.html.j2").is_file()


# --- URLs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", " JavaScript:alert(1)", "java\tscript:x", "data:text/html,x", "//evil.example", "", None],
)
def test_safe_url_rejects_other_schemes(url):
    """Only http(s) and mailto URLs are emitted."""
    assert safe_url(url) is None


def test_safe_url_percent_encodes_breaking_characters():
    """Quotes, parentheses and spaces-free non-ASCII are percent-encoded so links cannot be broken out of."""
    assert safe_url("https://x.example/a(b)\"c'é") == "https://x.example/a%28b%29%22c%27%C3%A9"


def test_invalid_unsubscribe_url_is_rejected():
    """An unsubscribe URL with a bad scheme raises RenderError instead of being emitted."""
    digest = sample_digest()
    with pytest.raises(RenderError, match="unsubscribe"):
        render_part("html", digest, prepare_papers(digest.matches), unsubscribe_url="javascript:alert(1)")


# --- real data ----------------------------------------------------------------------------------


@pytest.mark.skipif(not (CORPUS / "api_json").is_dir(), reason="shared corpus not present")
def test_corpus_papers_render_safely():
    """Every paper of the real API dumps renders to safe, well-formed HTML and Markdown."""
    papers = []
    for path in sorted((CORPUS / "api_json").glob("*.json")):
        for entry in json.loads(path.read_text()):
            p = entry["paper"]
            org = p.get("organization") or {}
            papers.append(
                Paper(key=f"arxiv:{p['id']}", title=p["title"], abstract=p["summary"], arxiv_id=p["id"],
                      authors=tuple(a.get("name", "") for a in p.get("authors", [])),
                      upvotes=p.get("upvotes"), organization=org.get("fullname") or org.get("name"),
                      project_page=p.get("projectPage"), github_repo=p.get("githubRepo"))
            )  # fmt: skip
    matches = tuple(
        Match(p, 1.0, hits(p.abstract, "abstract", "model") if "model" in p.abstract else (), "r") for p in papers
    )
    digest = Digest(Profile(name="c", email="c@example.org"), matches, NOW, "2026-04-16", ("api",))
    cache = prepare_papers(papers)
    email = render_digest(digest, cache, unsubscribe_url=UNSUB, feed_url=FEED)
    soup = BeautifulSoup(email.html, "lxml")
    assert soup.find("think") is None and soup.find("script") is None
    assert all(urlsplit(h).scheme in {"http", "https"} or h.startswith("#p-") for h in hrefs(email.html))
    assert message_size(email) + len(email.paper_keys) * 300 <= 100_000
    assert "<think>" not in email.text


# --- the digest a researcher reads (issue 13) ---------------------------------------------------


def test_index_anchors_resolve_to_entries():
    """The index at the top lists every shown title in order, each linking to the id of its entry below."""
    _, _, email = render_sample()
    soup = BeautifulSoup(email.html, "lxml")
    index = soup.find("ol", class_="index")
    targets = [a["href"] for a in index.find_all("a")]
    entries = soup.find_all("h2", class_="paper-title")
    assert len(targets) == len(entries) == 3
    for target, entry in zip(targets, entries, strict=True):
        assert target.startswith("#") and soup.find(id=target[1:]) is entry
    assert email.html.index('class="index"') < email.html.index('class="paper-title"')
    assert [a.get_text() for a in index.find_all("a")][2] == entries[2].get_text() == "A tiny paper"
    assert email.text.index("3. A tiny paper") < email.text.index("1. <think>", email.text.index("-----"))


def test_links_in_fixed_order_with_labels():
    """Each paper's links read PDF, arXiv, Hugging Face, Code (with stars), Project page, in that order, and
    only http(s) (the javascript: project page is gone)."""
    _, _, email = render_sample()
    soup = BeautifulSoup(email.html, "lxml")
    rows = [
        [(a.get_text().replace("\u00a0", " "), a["href"]) for a in p.find_all("a")]
        for p in soup.find_all("p", class_="links")
    ]
    assert rows[0] == [
        ("PDF", "https://arxiv.org/pdf/2409.01234"),
        ("arXiv", "https://arxiv.org/abs/2409.01234"),
        ("Hugging Face", "https://huggingface.co/papers/2409.01234"),
    ]
    assert [label for label, _ in rows[2]] == ["PDF", "arXiv", "Hugging Face", "Code ★ 1,234", "Project page"]
    assert rows[2][3][1] == "https://github.com/example/tiny" and rows[2][4][1] == "https://tiny.example.org/"
    assert [label for label, _ in rows[1]] == ["Hugging Face"]  # no arXiv id: a title search, no PDF
    assert "Code ★ 1,234: https://github.com/example/tiny\nProject page: https://tiny.example.org/\n" in email.text


def test_paper_links_rule():
    """paper_links: arXiv id (or key) -> PDF/abs/HF URLs; code with stars only when there is code; a project page
    equal to the repository is not repeated; non-http(s) URLs are dropped."""
    from digest.identity import paper_links

    p = Paper(key="arxiv:2501.00001", title="t", abstract="a", github_repo="https://github.com/a/b", github_stars=7,
              project_page="https://github.com/a/b")  # fmt: skip
    links = paper_links(p)
    assert (links.pdf, links.arxiv, links.hf) == (
        "https://arxiv.org/pdf/2501.00001",
        "https://arxiv.org/abs/2501.00001",
        "https://huggingface.co/papers/2501.00001",
    )
    assert (links.code, links.code_stars, links.project) == ("https://github.com/a/b", 7, None)
    bad = paper_links(replace(p, github_repo="javascript:x", project_page="ftp://x.example/"))
    assert (bad.code, bad.code_stars, bad.project) == (None, None, None)
    assert render.paper_links is paper_links
    assert render._stars(12_345) == "★ 12.3k" and render._stars(10_000) == "★ 10k" and render._stars(0) == "★ 0"


def test_tldr_is_labelled_as_hugging_face_ai_summary():
    """The AI summary shows as a one-line TL;DR labelled as Hugging Face's, above the abstract; none without one."""
    _, _, email = render_sample()
    soup = BeautifulSoup(email.html, "lxml")
    tldrs = soup.find_all("p", class_="tldr")
    assert len(tldrs) == 1
    assert tldrs[0].get_text() == (
        "TL;DR (Hugging Face AI summary): A scheduler for <LLM> serving that doubles throughput & keeps latency flat."
    )
    assert tldrs[0].find_next_sibling("p", class_="abstract") is not None
    assert "TL;DR (Hugging Face AI summary): A scheduler for <LLM> serving" in email.text


def test_authors_first_three_with_et_al_or_the_count():
    """Three names then "et al." with the count; names alone when few; the count when only a count is known."""
    p = Paper(key="k", title="t", abstract="a")
    assert render._authors(replace(p, authors=("A", "B", "C", "D"), n_authors=40)) == "A, B, C et al. (40 authors)"
    assert render._authors(replace(p, authors=("A", "B"))) == "A, B"
    assert render._authors(replace(p, n_authors=12)) == "12 authors"
    assert render._authors(replace(p, n_authors=1)) == "1 author"
    assert render._authors(p) == ""


def test_highlight_never_cut_in_half_by_the_trim():
    """Over many abstracts, highlight positions and trim lengths, a highlighted phrase is shown whole or not at
    all, and the shown text is a prefix of the abstract."""
    import random

    rng = random.Random(13)
    words = ["large language", "models", "diffusion", "serving", "x", "throughput", "τ-ζ", "a&b", "<tag>"]
    for _ in range(300):
        abstract = " ".join(rng.choice(words) for _ in range(rng.randint(5, 120)))
        starts = sorted(rng.sample(range(len(abstract)), min(len(abstract), rng.randint(1, 6))))
        spans = [(s, min(len(abstract), s + rng.randint(1, 40))) for s in starts]
        paper = Paper(key="arxiv:2501.00002", title="T", abstract=abstract, arxiv_id="2501.00002")
        match = Match(paper, 1.0, tuple(Hit("h", "abstract", s, e) for s, e in spans), "r")
        digest = Digest(Profile(name="u", email="u@example.org"), (match,), NOW, "2026-11-23")
        cache = prepare_papers([paper], RenderOptions(abstract_chars=rng.randint(50, 400)))
        shown_spans = render._spans(match)[1]
        soup = BeautifulSoup(render_part("html", digest, cache, unsubscribe_url=UNSUB), "lxml")
        para = soup.find("p", class_="abstract")
        for a in para.find_all("a"):
            a.decompose()
        shown = para.get_text().rstrip().removesuffix("…").rstrip()
        assert abstract.startswith(shown)
        marked = [m.get_text() for m in para.find_all("mark")]
        expected = [abstract[s:e] for s, e in shown_spans if s < len(shown)]
        assert marked == expected
        assert all(e <= len(shown) for s, e in shown_spans if s < len(shown))


def test_title_trimmed_in_rendering():
    """A 100 KB title is shown cut near 300 characters with an ellipsis (index shorter still); the message
    stays small."""
    title = "Scaling LLM serving " + "very " * 20_000 + "long"
    p = Paper(key="arxiv:2501.00003", title=title, abstract=LONG, arxiv_id="2501.00003")
    digest = Digest(Profile(name="u", email="u@example.org"), (Match(p, 1.0, hits(title, "title", "LLM"), "r"),),
                    NOW, "2026-11-23")  # fmt: skip
    email = render_digest(digest, prepare_papers([p]), unsubscribe_url=UNSUB)
    soup = BeautifulSoup(email.html, "lxml")
    shown = soup.find("h2").get_text()
    assert shown.endswith(" …") and 250 <= len(shown) <= 310 and title.startswith(shown[:-2])
    assert soup.find("h2").find("mark").get_text() == "LLM"
    assert len(soup.find("a", class_="index-link").get_text()) <= 150
    assert message_size(email) < 20_000


def test_subject_count_equals_papers_shown():
    """The subject's count is the number of entries the email shows, also when the budget or max_papers leave
    papers out."""
    for digest, options in ((replace(sample_digest(), omitted=2), RenderOptions()),
                            (big_digest(60), RenderOptions(abstract_chars=2000))):  # fmt: skip
        email = render_digest(digest, prepare_papers(digest.matches, options), unsubscribe_url=UNSUB)
        shown = len(email.paper_keys)
        assert re.search(r"\((\d+) papers?\)", email.subject)[1] == str(shown)
        assert len(BeautifulSoup(email.html, "lxml").find_all("h2", class_="paper-title")) == shown
        assert email.text.count("\nWhy: ") == shown


def test_no_file_names_in_the_header():
    """The header shows count and period, never the dump file names the papers came from."""
    digest = replace(sample_digest(), dumps=("003_dff01c8f9ab61c1d.txt", "2026-04-10.json"))
    email = render_digest(digest, prepare_papers(digest.matches), unsubscribe_url=UNSUB, feed_url=FEED)
    for part in (
        email.text,
        email.html,
        render_part("md", digest, prepare_papers(digest.matches), unsubscribe_url=UNSUB),
    ):
        assert "dff01c8f9ab61c1d" not in part and "2026-04-10.json" not in part


def test_unsubscribe_is_in_the_footer_not_the_first_link():
    """Unsubscribe appears once, in the footer; the first link of the email is a paper (or View in browser)."""
    _, _, email = render_sample()
    soup = BeautifulSoup(email.html, "lxml")
    links = soup.find_all("a", href=True)
    assert links[0]["href"].startswith("#p-")
    unsub = [a for a in links if a["href"] == UNSUB]
    assert len(unsub) == 1 and unsub[0].get_text() == "Unsubscribe"
    assert unsub[0].find_parent("td")["class"] == ["footer"]
    assert email.text.index("Unsubscribe: ") > email.text.rindex("Why: ")
    assert "[[users]]" not in email.text and "config" not in email.text


def test_text_part_has_no_markdown_escapes():
    """The text/plain part reads as plain text: no backslash escapes, bold markers or Markdown links, whatever
    the profile's formats."""
    for formats in (("html", "markdown"), ("markdown",), ("html", "text")):
        digest = sample_digest(formats=formats)
        email = render_digest(digest, prepare_papers(digest.matches), unsubscribe_url=UNSUB, manage_hint="[[users]]")
        for escape in ("\\[", "\\*", "\\_", "\\<", "**", "](http"):
            assert escape not in email.text, (formats, escape)
        assert "*without* drafts" in email.text and "<think>Diffusion</think>" in email.text


def test_thumbnails_off_by_default_and_on_when_set():
    """No <img> unless thumbnails are enabled; then the paper with a thumbnail shows it, with alt text."""
    digest = sample_digest()
    off = render_digest(digest, prepare_papers(digest.matches), unsubscribe_url=UNSUB)
    assert BeautifulSoup(off.html, "lxml").find("img") is None
    on = render_digest(digest, prepare_papers(digest.matches, RenderOptions(thumbnails=True)), unsubscribe_url=UNSUB)
    imgs = BeautifulSoup(on.html, "lxml").find_all("img")
    assert [i["src"] for i in imgs] == ["https://cdn.example.org/thumbs/2411.00002.png"] and imgs[0]["alt"]
    assert on.text == off.text


def test_thumbnails_setting_reaches_render_options(tmp_path: Path):
    """[digest].thumbnails (default false) is passed to the render options."""
    from digest import config
    from digest.pipeline.settings import render_options

    base = (Path(__file__).resolve().parents[1] / "config.example.toml").read_text()
    path = tmp_path / "config.toml"
    path.write_text(base)
    assert render_options(config.load_config(path)).thumbnails is False
    path.write_text(base.replace("thumbnails = false", "thumbnails = true"))
    assert render_options(config.load_config(path)).thumbnails is True


def test_view_and_more_urls():
    """view_url adds "View in browser" at the top; more_url makes the "N more" line link there; without them
    the carry-over wording stays; a non-http(s) URL is refused."""
    digest = replace(sample_digest(), omitted=2)
    cache = prepare_papers(digest.matches)
    plain = render_digest(digest, cache, unsubscribe_url=UNSUB)
    assert "View in browser" not in plain.html + plain.text
    assert "2 more matching papers did not fit in this email; they come in your next digest." in plain.text
    linked = render_digest(digest, cache, unsubscribe_url=UNSUB, view_url=VIEW, more_url=MORE)
    soup = BeautifulSoup(linked.html, "lxml")
    first = soup.find("a", href=True)
    assert (first.get_text(), first["href"]) == ("View in browser", VIEW)
    more = soup.find("td", class_="more")
    assert more.a["href"] == MORE and more.get_text() == "2 more matching papers on the web page."
    assert (
        f"View in browser: {VIEW}" in linked.text and f"2 more matching papers on the web page: {MORE}" in linked.text
    )
    with pytest.raises(RenderError, match="more-papers URL"):
        render_digest(digest, cache, unsubscribe_url=UNSUB, more_url="javascript:alert(1)")


def test_render_page_shows_every_match():
    """render_page: a standalone HTML document with the email's look, holding shown and overflow matches, no
    size budget, no View-in-browser; links optional."""
    digest = big_digest(60)
    shown, rest = digest.matches[:20], digest.matches[20:]
    digest = replace(digest, matches=shown, overflow=rest, omitted=len(rest))
    cache = prepare_papers(digest.matches + digest.overflow)
    page = render.render_page(digest, cache, now=NOW, feed_url=FEED)
    soup = BeautifulSoup(page, "lxml")
    assert page.startswith("<!DOCTYPE html>") and soup.title.string
    assert len(soup.find_all("h2", class_="paper-title")) == 60
    assert len(soup.find("ol", class_="index").find_all("li")) == 60
    assert soup.find("td", class_="more") is None and "View in browser" not in page
    assert "Unsubscribe" not in page and FEED in hrefs(page)
    assert soup.find("style") is not None and "background-color" in soup.body["style"]


def _broad_digest(papers: list[Paper], max_papers: int = 500) -> Digest:
    """The broadest profile: a term that every abstract holds, as many papers as the config allows."""
    from digest import matching

    profile = Profile(name="broad", email="broad@example.org", keywords=("the OR a OR of",), max_papers=max_papers)
    [(kept, total)] = matching.match_top(matching.compile_profiles([profile]), papers).values()
    return Digest(profile, tuple(kept), NOW, "2026-04-10", omitted=total - len(kept))


@pytest.mark.skipif(not (CORPUS / "api_json" / "2026-04-10.json").is_file(), reason="shared corpus not present")
@pytest.mark.parametrize("abstract_chars", [600, 100_000])
def test_largest_real_digest_fits_gmail_with_feedback_room(abstract_chars: int):
    """The real API JSON day under the broadest profile (max_papers 500, every paper matches) composes to a whole
    message under Gmail's ~102 KB clip, with 300 bytes per paper left for 👍/👎 links."""
    from digest.sources import read_dump

    papers = list(read_dump(CORPUS / "api_json" / "2026-04-10.json").papers)
    digest = _broad_digest(papers)
    options = RenderOptions(abstract_chars=abstract_chars, thumbnails=True)
    email = render_digest(digest, prepare_papers(digest.matches, options), unsubscribe_url=UNSUB, feed_url=FEED,
                          view_url=VIEW, more_url=MORE)  # fmt: skip
    size, shown = message_size(email), len(email.paper_keys)
    assert size + shown * options.reserve_per_paper <= options.max_message_bytes < 102_000
    assert shown >= 15 and re.search(r"\((\d+) papers\)", email.subject)[1] == str(shown)


def test_hostile_large_digest_fits_gmail_with_feedback_room():
    """Long abstracts, a 100 KB title, hundreds of authors, long summaries and URLs, 200 papers: the whole
    message stays under the clip with the per-paper reserve, showing as many papers as fit."""
    papers = [
        Paper(
            key=f"arxiv:2501.{i:05d}", arxiv_id=f"2501.{i:05d}", abstract=(LONG + "τζ 𝔘 ") * 5,
            title=("LLM " * 25_000) if i == 0 else f"Paper {i}: LLM serving at scale " + "ö" * 200,
            authors=tuple(f"Author Number {j} Longname" for j in range(300)), n_authors=300,
            organization="Org " * 100, upvotes=i, ai_summary="LLM summary " * 100,
            github_repo=f"https://github.com/{'o' * 80}/{i}", github_stars=i * 1000,
            project_page=f"https://project.example.org/{'p' * 150}/{i}", thumbnail=f"https://t.example/{i}.png",
        )
        for i in range(200)
    ]  # fmt: skip
    digest = _broad_digest(papers)
    options = RenderOptions(abstract_chars=100_000, thumbnails=True)
    email = render_digest(digest, prepare_papers(digest.matches, options), unsubscribe_url=UNSUB, feed_url=FEED,
                          view_url=VIEW, more_url=MORE)  # fmt: skip
    size, shown = message_size(email), len(email.paper_keys)
    assert size + shown * options.reserve_per_paper <= options.max_message_bytes < 102_000
    assert 5 < shown < 200 and f"{200 - shown} more matching papers on the web page" in email.text


# --- vote links and "Also for you" (issue 15) ---------------------------------------------------

BASE = "https://digest.example.org"
SECRET = b"s" * 32
SUGGESTED = Paper(
    key="arxiv:2411.00077", title="Video diffusion transformers <fast> & small", arxiv_id="2411.00077",
    abstract="We train small video diffusion transformers that generate long clips quickly.", upvotes=7,
    authors=("Katherine Johnson",), organization="Orbit Lab",
)  # fmt: skip
SUGGESTION = Match(SUGGESTED, 0.42, (), "close to 'A tiny paper' that you liked; terms: diffusion, video")


def vote_links(user: str, keys) -> dict[str, tuple[str, str]]:  # type: ignore[no-untyped-def]
    """Signed vote URLs as feedback.vote_urls makes them under BASE."""
    from digest.pipeline.feedback import vote_token

    return {
        k: (f"{BASE}/v/{vote_token(SECRET, user, k, 1)}", f"{BASE}/v/{vote_token(SECRET, user, k, -1)}") for k in keys
    }


def voted_sample(**kw) -> tuple[Digest, render.RenderCache, render.DigestLinks]:  # type: ignore[no-untyped-def]
    """The sample digest with a suggestion, every paper with vote links (as with [digest].base_url set)."""
    digest = replace(sample_digest(), suggestions=(SUGGESTION,), **kw)
    cache = prepare_papers((*digest.matches, *digest.suggestions), RenderOptions(abstract_chars=400))
    votes = vote_links("alice", [m.paper.key for m in (*digest.matches, *digest.suggestions)])
    links = render.DigestLinks(unsubscribe_url=UNSUB, feed_url=FEED, manage_hint="edit profiles.toml", votes=votes)
    return digest, cache, links


def test_golden_votes_and_suggestion(update_golden: bool):
    """A digest with vote links on every paper and one "Also for you" paper renders exactly as the golden
    subject, text/plain, Markdown and HTML files."""
    digest, cache, links = voted_sample()
    email = render_digest(digest, cache, links=links)
    assert_golden("digest-votes.subject.txt", email.subject + "\n", update_golden)
    assert_golden("digest-votes.txt", email.text, update_golden)
    assert_golden("digest-votes.md", render_part("md", digest, cache, links=links), update_golden)
    assert_golden("digest-votes.html", email.html, update_golden)


def test_vote_links_on_every_paper_in_both_parts():
    """Each paper carries its own 👍/👎 links at the end of its links line (HTML: labelled "More like this" /
    "Less like this" by aria-label and title), its text part two labelled URLs before its why line."""
    digest, cache, links = voted_sample()
    email = render_digest(digest, cache, links=links)
    soup = BeautifulSoup(email.html, "lxml")
    rows = soup.find_all("p", class_="links")
    assert len(rows) == 4
    for row, m in zip(rows, (*digest.matches, SUGGESTION), strict=True):
        up, down = row.find_all("a", class_="vote")
        assert (up["href"], down["href"]) == links.votes[m.paper.key]
        assert up["aria-label"] == up["title"] == "More like this" and up.get_text() == "👍"
        assert down["aria-label"] == down["title"] == "Less like this" and down.get_text() == "👎"
        assert row.find_all("a")[-2:] == [up, down]  # placed with the paper's links, last
        assert (
            f"More like this: {links.votes[m.paper.key][0]}\nLess like this: {links.votes[m.paper.key][1]}\nWhy: "
            in email.text
        )
    md = render_part("md", digest, cache, links=links)
    assert md.count("[👍 More like this](") == md.count("[👎 Less like this](") == 4


def test_no_vote_links_without_base_url_or_for_a_paper_without_them():
    """Without vote URLs (no base_url: vote_urls gives none) there are no vote links at all, and a paper the
    mapping leaves out has none while the others keep theirs; the message is as before votes existed."""
    digest, cache, links = voted_sample()
    bare = render_digest(digest, cache, links=replace(links, votes={}))
    assert "More like this" not in bare.html + bare.text and 'class="vote"' not in bare.html
    assert render_digest(digest, cache, unsubscribe_url=UNSUB, feed_url=FEED, manage_hint="edit profiles.toml") == bare
    some = dict(links.votes)
    del some[digest.matches[1].paper.key]
    email = render_digest(digest, cache, links=replace(links, votes=some))
    rows = BeautifulSoup(email.html, "lxml").find_all("p", class_="links")
    assert [len(r.find_all("a", class_="vote")) for r in rows] == [2, 0, 2, 2]
    assert email.text.count("More like this: ") == 3


def test_hostile_keys_titles_and_vote_urls_cannot_break_out():
    """Paper keys and titles full of markup, signed into real vote URLs, and vote URLs holding quotes and angle
    brackets: every vote link stays one attribute of one <a> (quotes percent-encoded, & escaped); a non-http(s)
    vote URL is refused."""
    evil = "\"><script>alert(1)</script>\n[x](javascript:y) & 'q'"
    papers = [replace(p, key=f"title:{evil}{i}", title=evil + p.title) for i, p in enumerate(sample_papers())]
    digest = sample_digest(papers)
    cache = prepare_papers(digest.matches)
    votes = vote_links("alice", [m.paper.key for m in digest.matches])
    odd = 'https://digest.example.org/v/a"onmouseover="alert(1)"><b>x</b>&y=1'
    votes[papers[0].key] = (odd, odd + "-")
    links = render.DigestLinks(unsubscribe_url=UNSUB, votes=votes)
    email = render_digest(digest, cache, links=links)
    soup = BeautifulSoup(email.html, "lxml")
    assert soup.find("script") is None and soup.find("b") is None
    assert not [t for t in soup.find_all(True) if any(a.startswith("on") for a in t.attrs)]
    voted = soup.find_all("a", class_="vote")
    assert len(voted) == 6 and all(set(a.attrs) == {"class", "href", "title", "aria-label", "style"} for a in voted)
    assert voted[0]["href"] == safe_url(odd) and '"' not in voted[0]["href"] and "%22" in voted[0]["href"]
    assert [a["href"] for a in voted[2:]] == [u for k in list(votes)[1:] for u in votes[k]]
    assert f"More like this: {safe_url(odd)}\n" in email.text
    md = render_part("md", digest, cache, links=links)
    assert not re.search(r"(?<!\\)\]\(javascript", md) and md.count("[👍 More like this](https://") == 3
    with pytest.raises(RenderError, match="vote URL"):
        render_digest(digest, cache, links=replace(links, votes={papers[1].key: ("javascript:alert(1)", odd)}))


def test_suggestions_under_their_label_after_the_matches():
    """An "Also for you" paper comes after the keyword matches, under its label, in the index and the body of
    both parts, shown like the others with its reason as the why line; its key follows the matches' in
    paper_keys; the subject and summary count it apart."""
    digest, cache, links = voted_sample()
    email = render_digest(digest, cache, links=links)
    assert email.paper_keys == (*(m.paper.key for m in digest.matches), SUGGESTED.key)
    assert email.subject == "Paper digest — 2026-11-23 (3 papers + 1 suggestion)"
    soup = BeautifulSoup(email.html, "lxml")
    assert soup.find("p", class_="summary").get_text() == "3 new papers for Zoë <Alice> + 1 suggestion."
    first, second = soup.find_all("ol", class_="index")
    assert len(first.find_all("li")) == 3 and second["start"] == "4"
    assert second.find_previous_sibling("p").get_text() == "Also for you"
    assert second.a.get_text() == render._clean(SUGGESTED.title) and second.a["href"] == "#p-arxiv-2411-00077"
    section = soup.find("td", class_="suggestions")
    assert section.h2.get_text() == "Also for you" and len(section.find_all("h2", class_="paper-title")) == 1
    assert section.find("p", class_="why").get_text() == f"Why: {SUGGESTION.reason}"
    assert soup.find("td", class_="papers").find(id="p-arxiv-2411-00077") is None  # not among the matches
    text = email.text
    assert "3 new papers for Zoë <Alice> + 1 suggestion:" in text and "Also for you:\n4. Video diffusion" in text
    body = text.index("Also for you\n============")
    assert text.index("3. A tiny paper\n1 upvote") < body < text.index("4. Video diffusion", body)
    assert f"Why: {SUGGESTION.reason}\n" in text[body:]
    md = render_part("md", digest, cache, links=links)
    assert "**Also for you:**\n\n4. Video diffusion" in md and md.index("## Also for you") < md.index("### 4. [")


def test_suggestion_already_shown_as_a_match_is_shown_once():
    """A suggestion whose paper is among the matches (or repeated) is not shown again."""
    digest, cache, links = voted_sample()
    digest = replace(digest, suggestions=(replace(SUGGESTION, paper=digest.matches[0].paper), SUGGESTION, SUGGESTION))
    email = render_digest(digest, cache, links=links)
    assert email.paper_keys == (*(m.paper.key for m in digest.matches), SUGGESTED.key)
    assert email.subject.endswith("(3 papers + 1 suggestion)")


def test_only_suggestions():
    """A digest with no keyword match but a suggestion says so and shows the suggestion, numbered 1."""
    digest, cache, links = voted_sample(matches=())
    email = render_digest(digest, cache, links=links)
    assert email.paper_keys == (SUGGESTED.key,)
    assert email.subject == "Paper digest — 2026-11-23 (no new papers + 1 suggestion)"
    assert "No new papers matched the profile of Zoë <Alice>; 1 suggestion below." in email.text
    assert "Also for you:\n1. Video diffusion" in email.text and "\n1. Video diffusion" in email.text
    soup = BeautifulSoup(email.html, "lxml")
    assert len(soup.find_all("h2", class_="paper-title")) == 1 and soup.find("ol", class_="index")["start"] == "1"


def _bigger(n_matches: int, n_suggestions: int) -> Digest:
    digest = replace(big_digest(n_matches), omitted=0)
    extra = tuple(
        Match(replace(m.paper, key=f"arxiv:2412.{i:05d}", arxiv_id=f"2412.{i:05d}", title=f"Suggested {i}"), 0.1, (),
              f"close to 'Paper {i}' that you liked")
        for i, m in enumerate(big_digest(n_suggestions).matches)
    )  # fmt: skip
    return replace(digest, suggestions=extra)


def test_budget_trims_suggestions_before_matches():
    """Over the size budget, suggestions go (the last first) before any keyword match does: at every budget the
    email shows a prefix of the matches, then a prefix of the suggestions only if every match is shown."""
    digest = _bigger(6, 3)
    every = (*digest.matches, *digest.suggestions)
    votes = vote_links("bob", [m.paper.key for m in every])
    match_keys = [m.paper.key for m in digest.matches]
    seen = set()
    for budget in range(20_000, 110_001, 2_500):
        options = RenderOptions(abstract_chars=2000, max_message_bytes=budget)
        email = render_digest(digest, prepare_papers(every, options), links=render.DigestLinks(UNSUB, votes=votes))
        keys = list(email.paper_keys)
        shown = [k for k in keys if k in match_keys]
        suggested = keys[len(shown) :]
        assert (
            shown == match_keys[: len(shown)]
            and suggested == [m.paper.key for m in digest.suggestions][: len(suggested)]
        )
        assert not suggested or len(shown) == 6
        assert message_size(email) <= budget or len(keys) == 1
        seen.add((len(shown), len(suggested)))
    assert {(6, 0), (6, 3)} <= seen and any(0 < s < 3 for m, s in seen) and any(m < 6 for m, _ in seen)


def test_counted_sizes_equal_the_measured_parts(monkeypatch: pytest.MonkeyPatch):
    """The budget's sizes, counted from the templates' literals (once per run) and the per-user values, equal
    a measure of the parts as assembled, whatever the digest (votes, suggestions, trimming, hostile text)."""
    from digest.render.textmap import text_sizes

    checked = []
    real = render._fits

    def checking(parts, sizes, text_fmt, budget):  # type: ignore[no-untyped-def]
        for fmt, counted in sizes.items():
            assert counted == text_sizes(parts[fmt]), fmt
            checked.append(fmt)
        return real(parts, sizes, text_fmt, budget)

    monkeypatch.setattr(render, "_fits", checking)
    digest, cache, links = voted_sample()
    render_digest(digest, cache, links=links)
    render_part("md", digest, cache, links=links)
    big = _bigger(20, 2)
    votes = vote_links("bob", [m.paper.key for m in (*big.matches, *big.suggestions)])
    render_digest(big, prepare_papers(big.matches, RenderOptions(max_message_bytes=60_000)),
                  links=render.DigestLinks(UNSUB, FEED, "hint", VIEW, MORE, votes))  # fmt: skip
    hostile = sample_digest([replace(p, title=p.title + " 𝔘 τ = x\n") for p in sample_papers()])
    render_digest(hostile, prepare_papers(hostile.matches), unsubscribe_url=UNSUB)
    assert checked.count("html") > 5 and checked.count("txt") > 5


@pytest.mark.skipif(not (CORPUS / "api_json" / "2026-04-10.json").is_file(), reason="shared corpus not present")
@pytest.mark.parametrize("abstract_chars", [600, 100_000])
def test_largest_real_digest_fits_gmail_with_vote_links(abstract_chars: int):
    """The real API JSON day under the broadest profile, every paper with its signed vote links (and a
    suggestion): the whole message as composed stays under the budget, under Gmail's ~102 KB clip."""
    from digest.sources import read_dump

    papers = list(read_dump(CORPUS / "api_json" / "2026-04-10.json").papers)
    digest = replace(_broad_digest(papers), suggestions=(SUGGESTION,))
    options = RenderOptions(abstract_chars=abstract_chars, thumbnails=True)
    votes = vote_links("broad", [m.paper.key for m in (*digest.matches, SUGGESTION)])
    links = render.DigestLinks(UNSUB, FEED, "hint", VIEW, MORE, votes)
    email = render_digest(digest, prepare_papers(digest.matches, options), links=links)
    size, shown = message_size(email), len(email.paper_keys)
    assert size <= options.max_message_bytes < 102_000
    assert email.text.count("More like this: ") == shown >= 15 and SUGGESTED.key not in email.paper_keys
    assert re.search(r"\((\d+) papers\)", email.subject)[1] == str(shown)


def test_html_with_votes_and_suggestions_matches_full_render_of_the_same_templates():
    """With vote links and a suggestion, the cached, spliced HTML still equals rendering the full templates
    and inlining the page per user."""
    digest, cache, links = voted_sample()
    email = render_digest(digest, cache, links=links)
    assert _normalise(email.html) == _normalise(_naive_html(digest, cache, dict(links.votes)))
