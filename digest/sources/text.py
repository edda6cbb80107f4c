"""Reader for plain-text scrapes of the Daily Papers listing page (both layouts seen in the wild).

Layout (a) separates every line by a blank line: title, abstract, then optional metadata lines
(``• 8 authors``, an organization line such as ``apple Apple``, ``·``, a date line ``Apr 8 6``).
Layout (b) has no blank lines and glues the page chrome to the first title (``SubscribePARALLELPROMPT: ...``).
Both reduce to the same stream of non-blank lines, which is classified line by line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from digest.identity import clean_text, paper_key
from digest.models import Paper
from digest.sources.reader import Parsed, Reader

_MONTHS = {
    m: i
    for i, m in enumerate(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], start=1)
}
# "Jun 1", "May 9, 2021", "Oct 15, 2025 2" (with upvotes), "Apr 8 6" (no year, with upvotes).
_DATE_LINE = re.compile(r"^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{1,2})(?:, (\d{4}))?(?: (\d+))?$")
_AUTHORS_LINE = re.compile(r"^•\s*(\d+)\s+authors?$")
_CHROME_LINES = {
    "new",
    "Get trending papers in your email inbox!",
    "Get trending papers in your email inbox once a day!",
    "Subscribe",
    "Daily Papers",
    "byAK and the research community",
}
_CHROME_PREFIX = "Subscribe"
# Titles on the listing run to ~150 characters; abstracts are prose of several hundred or more.
_MAX_TITLE_CHARS = 300
_SENTENCE = re.compile(r"[.!?]\s+\S.*[.!?)\]]$")


@dataclass(frozen=True, slots=True)
class _Line:
    number: int  # 1-based line number in the file
    text: str


def looks_like_text_dump(text: str) -> bool:
    """True when the text has the listing's shape: its page chrome, or metadata lines (`• N authors`, a date
    line with or without upvotes). Text with neither (a README, an e-mail, markup) is not a listing."""
    lines = [line.strip() for line in _LINE_END.split(text)]
    # Chrome counts as whole lines near the top (prose that merely names "Daily Papers" is not the page).
    if any(line in _CHROME_LINES and line not in ("new", "Subscribe") for line in lines[:60]):
        return True
    return any(_AUTHORS_LINE.match(line) or _DATE_LINE.match(line) for line in lines if line)


def _is_abstract(line: str) -> bool:
    return len(line) > _MAX_TITLE_CHARS or (bool(_SENTENCE.search(line)) and len(line) > 160)


def parse_date_line(line: str) -> tuple[date | None, str, int | None] | None:
    """Parse a metadata date line into (full date or None, the date as written, upvotes or None)."""
    match = _DATE_LINE.match(line)
    if not match:
        return None
    month, day, year, upvotes = match.groups()
    written = f"{month} {day}" + (f", {year}" if year else "")
    full: date | None = None
    if year:
        try:
            full = date(int(year), _MONTHS[month], int(day))
        except ValueError:
            full = None
    return full, written, count(upvotes) if upvotes is not None else None


def count(digits: str) -> int:
    """A count as written; one too long for int() (over 4300 digits) is a huge number the caller drops."""
    return int(digits) if len(digits) <= 30 else 10**30


_LINE_END = re.compile(r"\r\n|\r|\n")


def _content_lines(text: str) -> list[_Line]:
    """Non-blank lines with page chrome removed; the chrome prefix glued to a title is cut off."""
    lines: list[_Line] = []
    in_header = True
    # Only CR, LF and CRLF end a line: str.splitlines also splits on U+2028/2029, NEL, VT, FF and FS/GS/RS,
    # which a title or abstract may carry, and then half an abstract became a title.
    for number, raw in enumerate(_LINE_END.split(text), start=1):
        line = raw.strip()
        if not line:
            continue
        if in_header:
            if line in _CHROME_LINES or _DATE_LINE.match(line):
                continue  # the page's own date line sits in the header
            if line.startswith(_CHROME_PREFIX) and len(line) > len(_CHROME_PREFIX):
                line = line[len(_CHROME_PREFIX) :]
            in_header = False
        elif line in _CHROME_LINES:
            continue
        lines.append(_Line(number, line))
    return lines


def parse_text(text: str) -> tuple[list[Paper], list[str]]:
    """Parse a text scrape into papers and a list of messages for lines that fit no paper."""
    lines = _content_lines(text)
    papers: list[Paper] = []
    problems: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if _is_abstract(line.text):
            problems.append(f"line {line.number}: abstract without a title before it ({line.text[:60]!r}...)")
            i += 1
            continue
        if i + 1 >= len(lines) or not _is_abstract(lines[i + 1].text):
            problems.append(f"line {line.number}: title without an abstract after it ({line.text[:60]!r})")
            i += 1
            continue
        title, abstract = line.text, lines[i + 1].text
        i += 2
        n_authors: int | None = None
        organization: str | None = None
        org_handle: str | None = None
        published: date | None = None
        published_text: str | None = None
        upvotes: int | None = None
        # Metadata lines: "• N authors", an organization line (always right before "·"), "·", a date line.
        while i < len(lines):
            meta = lines[i].text
            authors = _AUTHORS_LINE.match(meta)
            parsed_date = parse_date_line(meta)
            if authors:
                n_authors = count(authors.group(1))
            elif meta == "·":
                pass
            elif parsed_date:
                published, published_text, upvotes = parsed_date
            elif i + 1 < len(lines) and lines[i + 1].text == "·" and not _is_abstract(meta):
                # "apple Apple" is the org's handle (never has a space) then its display name; both are kept
                # because profiles name organizations either way. A line of one word is only a name.
                handle, _, name = meta.partition(" ")
                org_handle, organization = (handle, name.strip()) if name.strip() else (None, meta)
            else:
                break
            i += 1
        title = clean_text(title, one_line=True)
        papers.append(
            Paper(
                key=paper_key(None, title),
                title=title,
                abstract=clean_text(abstract, one_line=False),
                n_authors=n_authors,
                organization=organization,
                org_handle=org_handle,
                published=published,
                published_text=published_text,
                upvotes=upvotes,
            )
        )
    return papers, problems


def _parse(text: str, name: str) -> Parsed:
    return parse_text(text)


READER = Reader(
    format="text",
    sniff=looks_like_text_dump,
    parse=_parse,
    refusal_hint="expected a text scrape, the API JSON or a saved HTML page of the listing; nothing was stored",
)
