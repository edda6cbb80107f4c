"""Paper identity: the arXiv id when a dump has one, else a fingerprint of the normalised title; the one
paper-links rule. Below every stage (sources key papers with it, the store deduplicates with it, render and the
Atom feed link with it), so it sits beside ``models`` rather than inside ``sources``."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import quote, quote_plus, urlsplit

from digest.models import Paper, PaperLinks

_ARXIV_ID = re.compile(r"^(?:arxiv:)?(\d{4}\.\d{4,5}|[a-z\-]+(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?$", re.IGNORECASE)
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise_arxiv_id(raw: str) -> str | None:
    """Return the version-less arXiv id (``2405.01234``) or None when ``raw`` is not one."""
    match = _ARXIV_ID.match(raw.strip())
    return match.group(1) if match else None


def normalise_title(title: str) -> str:
    """NFKC, case-folded, punctuation and whitespace (arXiv line wraps included) collapsed to single spaces."""
    text = unicodedata.normalize("NFKC", title).casefold()
    return _NON_WORD.sub(" ", text).strip()


def title_fingerprint(title: str) -> str:
    """A short, stable hash of the normalised title."""
    return hashlib.sha1(normalise_title(title).encode("utf-8")).hexdigest()[:20]


def paper_key(arxiv_id: str | None, title: str) -> str:
    """The identity of a paper: ``arxiv:<id>`` when known, else ``title:<fingerprint>``."""
    return f"arxiv:{arxiv_id}" if arxiv_id else f"title:{title_fingerprint(title)}"


# A line ends at LF, CR or CRLF; NEL, U+2028 and U+2029 are line breaks inside a field too.
_BREAKS = re.compile(r"\r\n?|[\x85\u2028\u2029]")
# C0/C1 controls other than tab and LF (NEL is a break, made LF first): lxml refuses them in feeds and they
# have no meaning in a field.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x84\x86-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")  # JSON pairs are joined on load: any left is lone
_NEEDS_WORK = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_WRAP = re.compile(r"[ \t]*[\n\t][\s]*")


def clean_text(value: str, *, one_line: bool) -> str:
    """A field as the store keeps it: lone surrogates (``"\\ud800"`` in JSON, not encodable as UTF-8) become
    U+FFFD, control characters other than tab and LF go, line breaks become LF. A one-line field (title,
    organization, author, date) also has its line wraps and tabs turned into single spaces; outer space goes."""
    if not _NEEDS_WORK.search(value):  # the common case: one scan, no copy
        return value.strip()
    value = _CONTROLS.sub("", _BREAKS.sub("\n", _SURROGATE.sub("\ufffd", value)))
    if one_line:
        value = _WRAP.sub(" ", value)
    return value.strip()


HF_PAPERS = "https://huggingface.co/papers"
_URL_SAFE = "/:?#[]@!$&*+,;=%~-._"  # RFC 3986 reserved + unreserved, minus quotes and parentheses
_URL_BAD = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def web_url(url: str | None) -> str | None:
    """``url`` when it is an http(s) URL with a host (percent-encoded where needed), else None."""
    if not url or _URL_BAD.search(url := url.strip()):
        return None
    try:
        parts = urlsplit(url)
        ok = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return None
    return quote(url, safe=_URL_SAFE) if ok else None


def paper_links(paper: Paper) -> PaperLinks:
    """The one paper-links rule: PDF, arXiv and Hugging Face pages from the arXiv id (a Hugging Face title search
    without one), the code repository with its stars, the project page; only http(s) URLs."""
    aid = next((a for c in (paper.arxiv_id, paper.key) if c and (a := normalise_arxiv_id(c))), None)
    code = web_url(paper.github_repo)
    project = web_url(paper.project_page)
    if aid is None:
        query = quote_plus(" ".join(paper.title.split())[:300])
        return PaperLinks(None, None, f"{HF_PAPERS}?q={query}", code, paper.github_stars if code else None,
                          project if project != code else None)  # fmt: skip
    return PaperLinks(
        pdf=f"https://arxiv.org/pdf/{aid}",
        arxiv=f"https://arxiv.org/abs/{aid}",
        hf=f"{HF_PAPERS}/{aid}",
        code=code,
        code_stars=paper.github_stars if code else None,
        project=project if project != code else None,
    )
