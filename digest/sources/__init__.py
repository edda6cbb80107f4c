"""Dump readers: sniff the format from the content, then parse text scrapes, API JSON or saved HTML.

Each format is one module declaring a ``Reader`` (format, sniff, parse); ``READERS`` lists them in sniff order
and the first whose sniff recognises the content parses it. A new format is one module and one line here.

Policy for partly malformed dumps: the good entries are ingested and every bad entry, and every field ignored
for its type or range, is listed in ``Dump.skipped`` (and in the ingest report); a dump with no good entry at
all, or one a reader cannot make sense of (any exception), is refused whole with a DumpError naming the file.
Every text field is cleaned (``identity.clean_text``): no control characters, no lone surrogates, one-line
fields on one line.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from pathlib import Path

from digest.errors import DumpError
from digest.identity import clean_text, normalise_title, paper_key, title_fingerprint
from digest.models import Dump, Paper
from digest.sources import api_json, html, text
from digest.sources.api_json import MAX_COUNT
from digest.sources.reader import Parsed, Reader

__all__ = [
    "READERS",
    "Reader",
    "detect_format",
    "normalise_title",
    "paper_key",
    "parse_dump",
    "read_dump",
    "title_fingerprint",
]

# Sniff order: JSON by its first character, then an HTML page, then the text scrape's page chrome or metadata.
READERS: tuple[Reader, ...] = (
    api_json.READER,
    html.READER,
    text.READER,
)

log = logging.getLogger(__name__)

_NOT_A_LISTING = (
    "this does not look like a Daily Papers listing: no page chrome, no '• N authors' or date lines, no JSON, "
    "no HTML page",
    "expected a text scrape, the API JSON or a saved HTML page of the listing; nothing was stored",
)


def _decode(data: bytes, name: str) -> str:
    if not data.strip():
        raise DumpError(f"{name}: the file is empty", "expected a Daily Papers dump (text scrape, API JSON or HTML)")
    if encoding := _wide_encoding(data):
        raise DumpError(
            f"{name}: the file is {encoding} encoded, not UTF-8",
            f"save the dump as UTF-8 (for example: iconv -f {encoding} -t UTF-8 < dump > dump.utf8)",
        )
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


_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


def _wide_encoding(data: bytes) -> str | None:
    """ "UTF-16" or "UTF-32" when the bytes have NULs and start with that byte order mark or look like ASCII
    text saved in UTF-16 (every other byte NUL), else None (a NUL byte is then binary)."""
    if b"\x00" not in data:
        return None
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding
    head = data[:4096]
    half = len(head) // 2
    if half >= 8 and max(head[1::2].count(0), head[::2].count(0)) > 0.9 * half:
        return "UTF-16"
    return None


def reader_for(text: str) -> Reader | None:
    """The first reader of ``READERS`` that recognises the text, or None."""
    return next((reader for reader in READERS if reader.sniff(text)), None)


def detect_format(text: str) -> str | None:
    """Name the dump format ("json", "html" or "text") from its content; None when no reader recognises it."""
    reader = reader_for(text)
    return reader.format if reader else None


def _parse(reader: Reader, text: str, name: str) -> Parsed:
    """``reader.parse``, with every failure turned into a DumpError naming the file and the format."""
    fmt = reader.format
    try:
        return reader.parse(text, name)
    except ValueError as exc:
        raise DumpError(f"{name}: {exc}", reader.refusal_hint) from exc
    except RecursionError as exc:
        raise DumpError(
            f"{name}: the {fmt} dump is nested too deeply to be a Daily Papers listing",
            "nothing was stored; the file is not a listing (or was mangled)",
        ) from exc
    except DumpError:
        raise
    except Exception as exc:
        # A reader met a shape it does not expect: that dump is refused, and only that one (`digest run` moves
        # it aside and goes on with the next). -v shows the traceback, should it be a reader's bug.
        log.debug("reading %s failed", name, exc_info=True)
        raise DumpError(
            f"{name}: could not read this {fmt} dump ({type(exc).__name__}: {str(exc)[:200]})",
            "nothing was stored; the file does not have the shape of a Daily Papers listing",
        ) from exc


def parse_dump(data: bytes, name: str) -> Dump:
    """Parse a dump's bytes; raises DumpError naming the file (and line) when nothing usable is in it."""
    decoded = _decode(data, name)
    reader = reader_for(decoded)
    if reader is None:
        message, hint = _NOT_A_LISTING
        raise DumpError(f"{name}: {message}", hint)
    fmt = reader.format
    papers, problems = _parse(reader, decoded, name)
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


_ONE_LINE = (
    "key", "title", "organization", "org_handle", "published_text", "arxiv_id", "project_page", "github_repo",
    "ai_summary", "thumbnail",
)  # fmt: skip


def _sane(papers: list[Paper]) -> tuple[list[Paper], list[str]]:
    """Papers every stage can store and render: counts in range (else dropped, with a note), every text field
    through `clean_text` (no lone surrogate, no control character, one-line fields on one line), the key
    derived from the cleaned title; a paper whose title is nothing but controls is dropped with a note."""
    out, notes = [], []
    for index, paper in enumerate(papers):
        label = f"paper {index + 1} ({clean_text(paper.title, one_line=True)[:60]!r})"
        changes: dict[str, object] = {}
        for name in ("upvotes", "n_authors", "github_stars"):
            value = getattr(paper, name)
            if value is not None and not 0 <= value < MAX_COUNT:
                changes[name] = None
                notes.append(f"{label}: {name} ignored (out of range)")
        for name in (*_ONE_LINE, "abstract"):
            value = getattr(paper, name)
            if isinstance(value, str):
                cleaned = clean_text(value, one_line=name != "abstract")
                if cleaned != value:
                    changes[name] = cleaned if cleaned or name in ("title", "abstract") else None
        authors = tuple(a for a in (clean_text(a, one_line=True) for a in paper.authors) if a)
        if authors != paper.authors:
            changes["authors"] = authors
        if changes:
            paper = replace(paper, **changes)  # type: ignore[arg-type]
        if not paper.title:
            notes.append(f"paper {index + 1}: dropped, its title is empty once control characters are removed")
            continue
        if "title" in changes or "arxiv_id" in changes:
            paper = replace(paper, key=paper_key(paper.arxiv_id, paper.title))
        out.append(paper)
    return out, notes


def read_dump(path: Path) -> Dump:
    """Read and parse one dump file."""
    if Path(path).is_dir():
        raise DumpError(f"{path}: this is a folder, not a dump file", "name the dump files, or the folder to `ingest`")
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DumpError(f"{path}: cannot read the file ({exc.strerror})", "check the path and permissions") from exc
    return parse_dump(data, str(path))
