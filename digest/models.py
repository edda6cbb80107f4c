"""Plain data that flows between the stages: frozen, slotted dataclasses, stdlib only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass(frozen=True, slots=True)
class Paper:
    """One paper as a dump describes it; ``key`` is its identity across dumps."""

    key: str  # "arxiv:2405.01234" when the dump has an id, else "title:<sha1 of normalised title>"
    title: str
    abstract: str
    authors: tuple[str, ...] = ()
    n_authors: int | None = None
    organization: str | None = None  # display name, e.g. "AI at Meta"
    published: date | None = None  # only when the dump gave a full date (never an invented year)
    published_text: str | None = None  # the date as the dump wrote it, e.g. "Apr 8"
    upvotes: int | None = None
    arxiv_id: str | None = None
    org_handle: str | None = None  # Hugging Face organization name, e.g. "facebook" (API JSON and HTML only)
    # API JSON and HTML only:
    project_page: str | None = None  # the authors' project page (http(s))
    github_repo: str | None = None  # the code repository (http(s), usually https://github.com/...)
    github_stars: int | None = None  # the repository's stars when the listing was scraped
    ai_summary: str | None = None  # Hugging Face's one-sentence AI summary of the paper
    thumbnail: str | None = None  # the listing's thumbnail image (http(s))


@dataclass(frozen=True, slots=True)
class PaperLinks:
    """Where a paper can be read, in the order a digest shows them; each an http(s) URL or None.

    Built by ``digest.identity.paper_links`` (the one rule from arXiv id and listing fields to URLs)."""

    pdf: str | None  # https://arxiv.org/pdf/<id>
    arxiv: str | None  # https://arxiv.org/abs/<id>
    hf: str  # the Hugging Face paper page, or a Hugging Face search for the title when there is no arXiv id
    code: str | None  # the code repository (usually GitHub)
    code_stars: int | None  # the repository's stars when known (only with ``code``)
    project: str | None  # the authors' project page (never the same URL as ``code``)


@dataclass(frozen=True, slots=True)
class StoredPaper:
    """A paper as the store knows it: the paper plus when and where it was first seen."""

    paper: Paper
    first_seen: datetime
    first_dump: str  # content hash (sha256 hex) of the dump that first listed it


@dataclass(frozen=True, slots=True)
class Dump:
    """A parsed dump: its format, its papers, and entries that could not be read."""

    name: str  # file name or "<stdin>"
    sha256: str
    format: str  # "text" | "json" | "html"
    papers: tuple[Paper, ...]
    skipped: tuple[str, ...] = ()  # one message per malformed entry that was left out


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What ingesting one dump did to the store."""

    name: str
    format: str
    found: int
    new: int
    seen: int
    already_ingested: bool = False
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Profile:
    """A subscriber and the rules that pick their papers."""

    name: str
    email: str  # "" when the user chose webhooks only
    keywords: tuple[str, ...] = ()  # each a query; a paper matches when any of them matches
    exclude: tuple[str, ...] = ()  # queries; a paper matching any is dropped whatever else matched
    min_upvotes: int = 0
    organizations: tuple[str, ...] = ()
    organizations_mode: str = "boost"  # "boost" | "only"
    max_papers: int = 20
    min_score: float = 0.0
    cadence: str = "daily"  # "daily" | "weekly:<weekday>" | "cron:<5-field expression>"
    timezone: str = "UTC"
    send_time: str = "07:00"
    formats: tuple[str, ...] = ("html", "markdown")
    feed: bool = True
    display_name: str | None = None
    webhooks: tuple[str, ...] = ()  # names of the [[webhooks]] this user opted into
    authors: tuple[str, ...] = ()  # followed authors: any paper of theirs matches
    like: tuple[str, ...] = ()  # seeds: arXiv ids or titles of papers liked before any thumbs
    dislike: tuple[str, ...] = ()  # seeds: the same, disliked
    suggestions: int = 1  # at most this many "Also for you" papers per digest (0: none)

    @property
    def channels(self) -> tuple[str, ...]:
        """The ledger's channel names this user receives digests on, email first."""
        return (("email",) if self.email else ()) + tuple(f"webhook:{name}" for name in self.webhooks)


@dataclass(frozen=True, slots=True)
class Hit:
    """One place where a profile term matched: the term as written, the field, offsets in that field."""

    term: str
    field: str  # "title" | "abstract" | "org" | "authors" (start: the author's position in Paper.authors)
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Match:
    """A paper selected for a profile, with its score and why."""

    paper: Paper
    score: float
    hits: tuple[Hit, ...]
    reason: str  # one line, e.g. 'title: "diffusion"; abstract: "LLM" x3'


@dataclass(frozen=True, slots=True)
class Digest:
    """What one user receives for one period."""

    profile: Profile
    matches: tuple[Match, ...]
    generated_at: datetime
    period: str  # e.g. "2026-11-23" or "2026-W47"
    dumps: tuple[str, ...] = ()  # names of the dumps the papers came from
    omitted: int = 0  # matches left out by limits or the size budget
    overflow: tuple[Match, ...] = ()  # matches over max_papers: carried over into the next digests
    dropped: tuple[str, ...] = ()  # keys of matching papers never delivered, now older than the catch-up window
    scheduled_at: datetime | None = None  # when the period was scheduled (catch-up windows count from it)
    window_from: datetime | None = None  # papers first seen from then on were offered (the next digest drops older)
    suggestions: tuple[Match, ...] = ()  # "Also for you": the ranker's picks the keywords missed, each with its why


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """A digest rendered and ready to be composed into a message."""

    user: str
    to: str
    subject: str
    text: str  # Markdown, the text/plain part
    html: str  # inlined HTML, the text/html part
    period: str
    paper_keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RunReport:
    """What one `digest run` did."""

    dumps: tuple[IngestReport, ...] = ()
    new_papers: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    feeds_written: tuple[str, ...] = ()
    errors: tuple[str, ...] = field(default_factory=tuple)
    stages: tuple[tuple[str, float], ...] = ()  # seconds per stage: ingest, select, match, render, compose, ...
