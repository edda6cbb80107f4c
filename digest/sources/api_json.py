"""Reader for the daily-papers API JSON (a list of entries, each with a ``paper`` object)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from digest.models import Paper
from digest.sources.identity import normalise_arxiv_id, paper_key, strip_controls, unwrap


def _parse_date(value: Any) -> date | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    """A non-empty string field, controls and outer spaces removed; None for anything else (never a repr)."""
    if not isinstance(value, str):
        return None
    return strip_controls(value).strip() or None


def _organization(entry: dict[str, Any], paper: dict[str, Any]) -> tuple[str | None, str | None]:
    """(display name, Hugging Face handle) of the paper's organization, e.g. ("AI at Meta", "facebook").

    Profiles name organizations either way, so both are kept. The paper's own object wins; the entry's copy
    is the fallback when the paper's is missing or unusable. A bare string is a display name (no handle).
    """
    for org in (paper.get("organization"), entry.get("organization")):
        if isinstance(org, dict):
            handle = _text(org.get("name"))
            display = _text(org.get("fullname")) or handle
            if display:
                return display, handle
        elif display := _text(org):
            return display, None
    return None, None


def _safe_url(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith(("https://", "http://")):
        return value
    return None


def describe(value: Any) -> str:
    """A short description of an unexpected JSON value, for error messages."""
    if isinstance(value, str):
        looks_repr = value.lstrip().startswith("{'")
        hint = " (it looks like Python repr() output, not JSON)" if looks_repr else ""
        return f"a string {value[:40]!r}{hint}"
    return f"{type(value).__name__}"


def parse_entry(entry: Any) -> Paper:
    """Turn one API entry into a Paper; raises ValueError saying what is missing."""
    if not isinstance(entry, dict):
        raise ValueError(f"expected an object with a 'paper' key, got {describe(entry)}")
    paper = entry.get("paper")
    if not isinstance(paper, dict):
        raise ValueError("expected a 'paper' object")
    raw_title = paper.get("title") or entry.get("title")
    if not isinstance(raw_title, str) or not raw_title.strip():
        raise ValueError("expected a non-empty 'paper.title'")
    abstract = paper.get("summary") or entry.get("summary") or ""
    if not isinstance(abstract, str):
        raise ValueError(f"expected 'paper.summary' to be text, got {describe(abstract)}")
    raw_id = paper.get("id")
    arxiv_id = normalise_arxiv_id(raw_id) if isinstance(raw_id, str) else None
    raw_authors = paper.get("authors")
    # Anything but a list of {"name": text} objects is no author list (a number or a bool was seen).
    authors = tuple(
        a["name"] for a in raw_authors if isinstance(a, dict) and isinstance(a.get("name"), str) and a["name"]
    ) if isinstance(raw_authors, list) else ()  # fmt: skip
    upvotes = paper.get("upvotes")
    title = strip_controls(unwrap(raw_title))
    organization, org_handle = _organization(entry, paper)
    return Paper(
        key=paper_key(arxiv_id, title),
        title=title,
        abstract=strip_controls(abstract.strip()),
        authors=authors,
        n_authors=len(authors) if authors else None,
        organization=organization,
        org_handle=org_handle,
        published=_parse_date(paper.get("publishedAt") or entry.get("publishedAt")),
        upvotes=upvotes if isinstance(upvotes, int) and not isinstance(upvotes, bool) else None,
        arxiv_id=arxiv_id,
        url=_safe_url(paper.get("projectPage")) or _safe_url(paper.get("githubRepo")),
    )


def parse_entries(entries: Any, where: str) -> tuple[list[Paper], list[str]]:
    """Parse a list of API entries; returns the papers and one message per malformed entry."""
    if isinstance(entries, dict) and "error" in entries:
        raise ValueError(f"the API answered with an error instead of a listing: {entries['error']!r}")
    if isinstance(entries, dict) and isinstance(entries.get("dailyPapers"), list):
        entries = entries["dailyPapers"]
    if not isinstance(entries, list):
        raise ValueError(f"expected {where} to be a list of entries, got {describe(entries)}")
    papers: list[Paper] = []
    problems: list[str] = []
    for index, entry in enumerate(entries):
        try:
            papers.append(parse_entry(entry))
        except ValueError as exc:
            problems.append(f"entry {index}: {exc}")
    return papers, problems
