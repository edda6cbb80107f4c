"""Reader for the daily-papers API JSON (a list of entries, each with a ``paper`` object).

Every field is checked for its JSON type: a field of the wrong type (an organization that is a number, upvotes
as text, an author that is a list) is ignored with a note naming the entry and the field, and never stored as
a Python repr. An entry is kept when its title and abstract are sound, else dropped with a note.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from typing import Any

from digest.errors import DumpError
from digest.identity import clean_text, normalise_arxiv_id, paper_key
from digest.models import Paper
from digest.sources.reader import Parsed, Reader

# Counts are stored as SQLite integers and handled as JSON numbers by scripts: 2**53 is the safe bound.
MAX_COUNT = 2**53


def describe(value: Any) -> str:
    """A short description of an unexpected JSON value, for notes and error messages (never the whole value)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        digits = str(abs(value))
        shown = digits if len(digits) <= 24 else f"{digits[:8]}... ({len(digits)} digits)"
        return f"a number ({'-' if value < 0 else ''}{shown})"
    if isinstance(value, float):
        return "a number too large to hold" if math.isinf(value) else f"a number ({value!r})"
    if isinstance(value, str):
        looks_repr = value.lstrip().startswith("{'")
        hint = " (it looks like Python repr() output, not JSON)" if looks_repr else ""
        return f"a string {value[:40]!r}{hint}"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _int(digits: str) -> int | float:
    # int() refuses more than 4300 digits (a ValueError that made the whole dump unreadable): such a number is
    # infinite for our purposes, and the one field holding it is ignored with a note.
    return int(digits) if len(digits) <= 4300 else (-math.inf if digits.startswith("-") else math.inf)


def load_json(text: str) -> Any:
    """json.loads, with integers of any length (a too-long one becomes an infinite float)."""
    return json.loads(text, parse_int=_int)


def _json_msg(exc: json.JSONDecodeError) -> str:
    # Two of json's messages end in " at", for the position json itself appends: "Unterminated string
    # starting at", "Invalid control character at".
    return exc.msg.removesuffix(" at")


def json_problem(exc: ValueError) -> str:
    """What json.loads disliked, in words (a number too long to convert is a plain ValueError)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{_json_msg(exc)} at line {exc.lineno} column {exc.colno}"
    if "integer string conversion" in str(exc):
        return "a number with more than 4300 digits"
    return str(exc)[:200]


class _Fields:
    """Typed access to one entry's fields; a value of the wrong type is ignored and noted."""

    def __init__(self, entry: dict[str, Any], paper: dict[str, Any]) -> None:
        self.entry, self.paper = entry, paper
        self.notes: list[str] = []

    def ignore(self, field: str, value: Any, expected: str) -> None:
        self.notes.append(f"{field} ignored (expected {expected}, got {describe(value)})")

    def text(self, *fields: str, one_line: bool = True) -> str | None:
        """The first usable text among ``paper.<f>`` / ``<f>`` (the entry's own copy); wrong types noted."""
        found: str | None = None
        for field in fields:
            owner, _, key = field.rpartition(".")
            value = (self.paper if owner == "paper" else self.entry).get(key)
            if value is None:
                continue
            if not isinstance(value, str):
                self.ignore(field, value, "text")
            elif found is None:
                found = clean_text(value, one_line=one_line) or None
        return found

    def authors(self) -> tuple[str, ...]:
        raw = self.paper.get("authors")
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.ignore("paper.authors", raw, "a list of authors")
            return ()
        names, bad = [], []
        for author in raw:
            name = author.get("name") if isinstance(author, dict) else author
            if isinstance(name, str):
                if cleaned := clean_text(name, one_line=True):
                    names.append(cleaned)
            elif not (isinstance(author, dict) and name is None):
                bad.append(author)
        if bad:
            self.notes.append(
                f"paper.authors: {len(bad)} of {len(raw)} ignored (expected objects with a 'name' text, got "
                f"{describe(bad[0])}{' ...' if len(bad) > 1 else ''})"
            )
        return tuple(names)

    def organization(self) -> tuple[str | None, str | None]:
        """(display name, Hugging Face handle) of the paper's organization, e.g. ("AI at Meta", "facebook").

        Profiles name organizations either way, so both are kept. The paper's own object wins; the entry's
        copy is the fallback when the paper's is missing or unusable. A bare string is a display name only.
        """
        found: tuple[str | None, str | None] = (None, None)
        for field in ("paper.organization", "organization"):
            org = (self.paper if field.startswith("paper.") else self.entry).get("organization")
            if org is None:
                continue
            if isinstance(org, dict):
                parts = []
                for key in ("name", "fullname"):
                    value = org.get(key)
                    if value is not None and not isinstance(value, str):
                        self.ignore(f"{field}.{key}", value, "text")
                        value = None
                    parts.append(clean_text(value, one_line=True) or None if value else None)
                handle, display = parts
                if found == (None, None) and (display or handle):
                    found = (display or handle, handle)
            elif isinstance(org, str):
                if found == (None, None) and (display := clean_text(org, one_line=True)):
                    found = (display, None)
            else:
                self.ignore(field, org, "an object or text")
        return found

    def published(self) -> date | None:
        found: date | None = None
        for field in ("paper.publishedAt", "publishedAt"):
            value = (self.paper if field.startswith("paper.") else self.entry).get("publishedAt")
            if value is None or value == "":
                continue
            if not isinstance(value, str):
                self.ignore(field, value, "a date text")
                continue
            try:
                day = datetime.fromisoformat(value.strip().replace("Z", "+00:00")).date()
            except ValueError:
                self.ignore(field, value, "an ISO date")
                continue
            found = found or day
        return found

    def upvotes(self) -> int | None:
        value = self.paper.get("upvotes")
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            self.ignore("paper.upvotes", value, "a whole number")
            return None
        if not 0 <= value < MAX_COUNT:
            self.notes.append(f"paper.upvotes ignored (out of range): {describe(value)}")
            return None
        return value

    def arxiv_id(self) -> str | None:
        value = self.paper.get("id")
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            self.ignore("paper.id", value, "an arXiv id text")
            return None
        arxiv_id = normalise_arxiv_id(value)
        if arxiv_id is None:
            self.ignore("paper.id", value, "an arXiv id")
        return arxiv_id

    def link(self, *fields: str) -> str | None:
        """The first usable http(s) link among ``paper.<f>`` / ``<f>``; anything else is noted and ignored."""
        found: str | None = None
        for field in fields:
            owner, _, key = field.rpartition(".")
            value = (self.paper if owner == "paper" else self.entry).get(key)
            if value is None or value == "":
                continue
            cleaned = clean_text(value, one_line=True) if isinstance(value, str) else None
            if not cleaned or not cleaned.startswith(("https://", "http://")) or any(c in cleaned for c in ' "<>'):
                self.ignore(field, value, "an http(s) link")
            elif found is None:
                found = cleaned
        return found

    def count(self, field: str) -> int | None:
        value = self.paper.get(field)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            self.ignore(f"paper.{field}", value, "a whole number")
            return None
        if not 0 <= value < MAX_COUNT:
            self.notes.append(f"paper.{field} ignored (out of range): {describe(value)}")
            return None
        return value


def parse_entry(entry: Any) -> tuple[Paper, list[str]]:
    """Turn one API entry into a Paper and notes on the fields it ignored; raises ValueError saying why the
    entry cannot be used (no object, no sound title or abstract)."""
    if not isinstance(entry, dict):
        raise ValueError(f"expected an object with a 'paper' key, got {describe(entry)}")
    paper = entry.get("paper")
    if not isinstance(paper, dict):
        raise ValueError(f"expected 'paper' to be an object, got {describe(paper)}")
    fields = _Fields(entry, paper)
    title = fields.text("paper.title", "title")
    if title is None:
        why = f": {'; '.join(fields.notes)}" if fields.notes else ""
        raise ValueError(f"expected a non-empty 'paper.title'{why}")
    before = len(fields.notes)
    abstract = fields.text("paper.summary", "summary", one_line=False)
    if abstract is None and len(fields.notes) > before:  # a summary of the wrong type: no sound abstract
        raise ValueError(f"no usable abstract: {'; '.join(fields.notes[before:])}")
    arxiv_id = fields.arxiv_id()
    authors = fields.authors()
    organization, org_handle = fields.organization()
    return Paper(
        key=paper_key(arxiv_id, title),
        title=title,
        abstract=abstract or "",
        authors=authors,
        n_authors=len(authors) if authors else None,
        organization=organization,
        org_handle=org_handle,
        published=fields.published(),
        upvotes=fields.upvotes(),
        arxiv_id=arxiv_id,
        project_page=fields.link("paper.projectPage"),
        github_repo=fields.link("paper.githubRepo"),
        github_stars=fields.count("githubStars"),
        ai_summary=fields.text("paper.ai_summary"),
        thumbnail=fields.link("thumbnail", "mediaUrl", "paper.thumbnail"),
    ), fields.notes


def parse_entries(entries: Any, where: str) -> tuple[list[Paper], list[str]]:
    """Parse a list of API entries; returns the papers and one message per dropped entry or ignored field."""
    if isinstance(entries, dict) and "error" in entries:
        raise ValueError(f"the API answered with an error instead of a listing: {describe(entries['error'])}")
    if isinstance(entries, dict) and isinstance(entries.get("dailyPapers"), list):
        entries = entries["dailyPapers"]
    if not isinstance(entries, list):
        raise ValueError(f"expected {where} to be a list of entries, got {describe(entries)}")
    papers: list[Paper] = []
    problems: list[str] = []
    for index, entry in enumerate(entries):
        try:
            paper, notes = parse_entry(entry)
        except ValueError as exc:
            problems.append(f"entry {index}: dropped, {exc}")
            continue
        papers.append(paper)
        problems.extend(f"entry {index} ({paper.title[:60]!r}): {note}" for note in notes)
    return papers, problems


def looks_like_json(text: str) -> bool:
    """True when the text starts (after white space) like a JSON array or object."""
    return text.lstrip()[:1] in ("[", "{")


def parse_json(text: str, name: str) -> Parsed:
    """Parse an API JSON dump; invalid JSON is a DumpError naming ``name`` and, when known, line:column."""
    try:
        entries = load_json(text)
    except RecursionError:
        raise  # the dispatcher says "nested too deeply"
    except ValueError as exc:
        if isinstance(exc, json.JSONDecodeError):  # the position goes with the file name, as name:line:column
            where, what = f":{exc.lineno}:{exc.colno}", _json_msg(exc).removesuffix(" starting")
        else:
            where, what = "", json_problem(exc)
        raise DumpError(
            f"{name}{where}: invalid JSON ({what})",
            "expected the complete JSON of the daily-papers API; the file may be truncated",
        ) from exc
    return parse_entries(entries, "the top level")


READER = Reader(
    format="json",
    sniff=looks_like_json,
    parse=parse_json,
    refusal_hint="could not read it as a JSON dump; nothing was stored",
)
