"""Dump readers: sniff the format from the content, then parse text scrapes, API JSON or saved HTML.

Policy for partly malformed dumps: the good entries are ingested and every bad entry is listed in
``Dump.skipped`` (and in the ingest report); a dump with no good entry at all is refused whole.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import replace
from pathlib import Path

from digest.errors import DumpError
from digest.models import Dump, Paper
from digest.sources.api_json import parse_entries
from digest.sources.html import looks_like_html, parse_html
from digest.sources.identity import normalise_title, paper_key, title_fingerprint
from digest.sources.text import looks_like_text_dump, parse_text

__all__ = [
    "detect_format",
    "normalise_title",
    "paper_key",
    "parse_dump",
    "read_dump",
    "title_fingerprint",
]

log = logging.getLogger(__name__)

FORMATS = ("text", "json", "html")
_ARTICLE = {"text": "a text", "json": "a JSON", "html": "an HTML"}


def _decode(data: bytes, name: str) -> str:
    if not data.strip():
        raise DumpError(f"{name}: the file is empty", "expected a Daily Papers dump (text scrape, API JSON or HTML)")
    if b"\x00" in data:
        raise DumpError(
            f"{name}: this is a binary file, not a dump",
            "expected UTF-8 text: a text scrape, API JSON or a saved HTML page",
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DumpError(
            f"{name}:{line}: the file is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})",
            "save the dump as UTF-8",
        ) from exc


def detect_format(text: str) -> str:
    """Name the dump format ("json", "html" or "text") from its content."""
    head = text.lstrip()[:1]
    if head in ("[", "{"):
        return "json"
    if looks_like_html(text):
        return "html"
    return "text"


def parse_dump(data: bytes, name: str) -> Dump:
    """Parse a dump's bytes; raises DumpError naming the file (and line) when nothing usable is in it."""
    text = _decode(data, name)
    fmt = detect_format(text)
    try:
        if fmt == "json":
            try:
                entries = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DumpError(
                    f"{name}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})",
                    "expected the complete JSON of the daily-papers API; the file may be truncated",
                ) from exc
            papers, problems = parse_entries(entries, "the top level")
        elif fmt == "html":
            papers, problems = parse_html(text)
        else:
            if not looks_like_text_dump(text):
                raise ValueError(
                    "this does not look like a Daily Papers listing: no page chrome, no '• N authors' or date "
                    "lines, no JSON, no HTML page"
                )
            papers, problems = parse_text(text)
    except ValueError as exc:
        hint = f"could not read it as {_ARTICLE[fmt]} dump; nothing was stored"
        if fmt == "text":
            hint = "expected a text scrape, the API JSON or a saved HTML page of the listing; nothing was stored"
        raise DumpError(f"{name}: {exc}", hint) from exc
    except RecursionError as exc:
        raise DumpError(
            f"{name}: the {fmt} dump is nested too deeply to be a Daily Papers listing",
            "nothing was stored; the file is not a listing (or was mangled)",
        ) from exc
    except (TypeError, AttributeError, KeyError, IndexError, OverflowError, UnicodeError) as exc:
        # A reader met a shape it does not expect: that dump is refused, and only that one (`digest run` moves
        # it aside and goes on with the next). -v shows the traceback, should it be a reader's bug.
        log.debug("reading %s failed", name, exc_info=True)
        raise DumpError(
            f"{name}: could not read this {fmt} dump ({type(exc).__name__}: {str(exc)[:200]})",
            "nothing was stored; the file does not have the shape of a Daily Papers listing",
        ) from exc
    papers, notes = _sane(papers)
    problems = [*problems, *notes]
    if not papers:
        detail = f"; first problem: {problems[0]}" if problems else ""
        raise DumpError(
            f"{name}: no papers found in this {fmt} dump{detail}",
            "expected a Daily Papers listing; nothing was stored",
        )
    return Dump(
        name=name,
        sha256=hashlib.sha256(data).hexdigest(),
        format=fmt,
        papers=tuple(papers),
        skipped=tuple(problems),
    )


# Counts stored as SQLite integers (64-bit): a bigger one in a dump crashed the ingest's insert.
_MAX_COUNT = 2**53


def _clean_text(value: str) -> str:
    # A lone surrogate ("\ud800" in JSON) cannot be encoded as UTF-8, which SQLite needs: it becomes U+FFFD.
    return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace") if _has_surrogate(value) else value


def _has_surrogate(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


_BREAK = re.compile(r"\r\n?|[\u2028\u2029\x85]")
_ONE_LINE = ("title", "organization", "org_handle", "published_text")


def _one_line(value: str) -> str:
    """A field shown on one line: its line breaks (a wrapped title) become single spaces."""
    return re.sub(r"\s*(?:\r\n?|[\n\u2028\u2029\x85])\s*", " ", value).strip() if _LINE_BREAK.search(value) else value


_LINE_BREAK = re.compile(r"[\r\n\u2028\u2029\x85]")


def _sane(papers: list[Paper]) -> tuple[list[Paper], list[str]]:
    """Papers every stage can store and render: counts in range (else dropped, with a note), text without lone
    surrogates (replaced), one-line fields on one line, no raw CR."""
    out, notes = [], []
    for index, paper in enumerate(papers):
        changes: dict[str, object] = {}
        for name in ("upvotes", "n_authors"):
            value = getattr(paper, name)
            if value is not None and not 0 <= value < _MAX_COUNT:
                changes[name] = None
                notes.append(f"paper {index + 1} ({paper.title[:60]!r}): {name} ignored (out of range)")
        for name in ("key", "title", "abstract", "organization", "org_handle", "published_text", "url", "arxiv_id"):
            value = getattr(paper, name)
            if isinstance(value, str):
                cleaned = _one_line(_clean_text(value)) if name in _ONE_LINE else _clean_text(value)
                if name == "abstract":
                    cleaned = _BREAK.sub("\n", cleaned)  # CR and CRLF become LF; no raw CR is stored
                if cleaned != value:
                    changes[name] = cleaned
        authors = tuple(_one_line(_clean_text(a)) for a in paper.authors)
        if authors != paper.authors:
            changes["authors"] = authors
        out.append(replace(paper, **changes) if changes else paper)  # type: ignore[arg-type]
    return out, notes


def read_dump(path: Path) -> Dump:
    """Read and parse one dump file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DumpError(f"{path}: cannot read the file ({exc.strerror})", "check the path and permissions") from exc
    return parse_dump(data, str(path))
