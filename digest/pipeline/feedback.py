"""Relevance feedback: the signed thumbs-up/down links of every digest, and what a vote does.

A vote link names its user, paper and vote in the clear and carries an HMAC of the three under the signing
secret ([digest].secret_env), so ``digest serve`` can check a link without looking anything up, and nobody can
vote for someone else. Following the link (GET) only shows what it would record, with one button (POST) that
records it: mail scanners and link previewers fetch every link in a message, and must not vote.

Also here: votes by reference (`digest feedback`: an arXiv id in any usual form, or a title), a user's ratings
as CSV (`digest ratings export/import`), the votes and seed papers (``like``/``dislike``) a learned ranker
trains on, and ``VoteDesk``, what `digest serve` does with /v/<token>.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import functools
import hashlib
import hmac
import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from digest import config, store
from digest.errors import ConfigError, DigestError
from digest.identity import normalise_arxiv_id, normalise_title, title_fingerprint
from digest.matching.ranker import Vote
from digest.models import Paper, Profile, StoredPaper

__all__ = ["VOTE_PATH", "VoteLink", "verify_vote_token", "vote_token", "vote_urls"]
__all__ += ["ImportReport", "Ratings", "Recorded", "RowProblem", "VoteDesk", "VotePage"]
__all__ += ["export_ratings", "import_ratings", "list_ratings", "parse_ref", "record_vote", "resolve_papers"]
__all__ += ["StoredVotes", "seeds_for", "unresolved_seeds", "vote_desk"]

VOTE_PATH = "/v/"  # under [digest].base_url, served by `digest serve`
_SEP = "\x1f"  # never in a user name ([A-Za-z0-9_.-]) or a paper key (arxiv:<id> / title:<sha1>)


@dataclass(frozen=True, slots=True)
class VoteLink:
    """What a verified vote link says: this user rates this paper up (+1) or down (-1)."""

    user: str
    paper_key: str
    vote: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@functools.lru_cache(maxsize=4)
def _keyed(secret: bytes) -> hmac.HMAC:
    # The keyed state once per secret: a run signs two links per shown paper per user (400,000 at 10,000 users).
    return hmac.new(secret, b"vote" + _SEP.encode(), hashlib.sha256)


def _signature(secret: bytes, payload: bytes) -> bytes:
    mac = _keyed(secret).copy()
    mac.update(payload)
    return mac.digest()[:12]


def vote_token(secret: bytes, user: str, paper_key: str, vote: int) -> str:
    """The URL-safe token of one vote: ``<payload>.<signature>``, both base64url."""
    payload = f"{user}{_SEP}{paper_key}{_SEP}{'+' if vote > 0 else '-'}".encode()
    return f"{_b64(payload)}.{_b64(_signature(secret, payload))}"


def verify_vote_token(secret: bytes, token: str) -> VoteLink | None:
    """The vote a token carries, or None when it is malformed or its signature is not ours."""
    payload_text, dot, signature_text = token.partition(".")
    if not dot or len(token) > 400:
        return None
    try:
        payload, signature = _unb64(payload_text), _unb64(signature_text)
    except ValueError:
        return None
    if not hmac.compare_digest(signature, _signature(secret, payload)):
        return None
    try:
        user, paper_key, sign = payload.decode("utf-8").split(_SEP)
    except ValueError:
        return None
    if sign not in ("+", "-") or not user or not paper_key:
        return None
    return VoteLink(user, paper_key, 1 if sign == "+" else -1)


def vote_urls(cfg: config.Config, secret: bytes, user: str, keys: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Per paper key, the (thumbs-up, thumbs-down) URLs for ``user``; empty without [digest].base_url (there
    is nowhere to send a vote)."""
    base = cfg.digest.base_url.rstrip("/")
    if not base:
        return {}
    return {
        key: (
            f"{base}{VOTE_PATH}{vote_token(secret, user, key, 1)}",
            f"{base}{VOTE_PATH}{vote_token(secret, user, key, -1)}",
        )
        for key in keys
    }


# ------------------------------------------------------------------------------ papers by reference

# An arXiv id inside a link: arxiv.org/abs|pdf|html/<id>, huggingface.co/papers/<id>, the arXiv DOI 10.48550/arXiv.<id>.
_LINKED_ID = re.compile(
    r"(?:arxiv\.org/(?:abs|pdf|html|format)/|huggingface\.co/papers/|10\.48550/arxiv\.)"
    r"([a-z\-]+(?:\.[a-z]{2})?/\d{7}|\d{4}\.\d{4,5})(?:v\d+)?(?![\d])",
    re.IGNORECASE,
)
_TITLE_KEY = re.compile(r"title:[0-9a-f]{20}")
_LINK_LIKE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|www\.|doi:|10\.\d{4,9}/)\S*$", re.IGNORECASE)


def parse_ref(ref: str) -> tuple[str, str] | None:
    """What a paper reference names: ("arxiv", id) for an arXiv id in any usual form ("2405.01234",
    "arXiv:2405.01234v2", an arxiv.org abs/pdf link, a huggingface.co/papers link, the arXiv DOI),
    ("key", key) for a paper key, ("title", fingerprint) for anything else that has words; None for an
    empty reference or a link that names no arXiv paper (a publisher's page is not a title)."""
    text = " ".join(ref.split())
    if not text:
        return None
    if aid := normalise_arxiv_id(text):
        return "arxiv", aid
    if " " not in text and (found := _LINKED_ID.search(text)) and (aid := normalise_arxiv_id(found.group(1))):
        return "arxiv", aid
    if _TITLE_KEY.fullmatch(text):
        return "key", text
    if _LINK_LIKE.match(text) or not normalise_title(text):
        return None
    return "title", title_fingerprint(text)


def _resolve_rows(conn: store.Connection, rows: Sequence[Sequence[str]]) -> list[StoredPaper | None]:
    """For each row of alternative references (an id, a link, a title...), the stored paper the first one that
    resolves names, or None. Three queries whatever the number of rows."""
    parsed = [[p for ref in row if (p := parse_ref(ref)) is not None] for row in rows]
    wanted = {kind: {value for row in parsed for k, value in row if k == kind} for kind in ("arxiv", "key", "title")}
    by_id = store.feedback.papers_by_arxiv_id(conn, wanted["arxiv"])
    by_key = {sp.paper.key: sp for sp in store.get_papers(conn, sorted(wanted["key"]))}
    fps = wanted["title"] | {key.removeprefix("title:") for key in wanted["key"]}
    by_fp = store.feedback.papers_by_title_fp(conn, fps)
    found: list[StoredPaper | None] = []
    for row in parsed:
        paper = None
        for kind, value in row:
            if kind == "arxiv":
                paper = by_id.get(value)
            elif kind == "key":  # a title key that has since gained its arXiv id is found by its title
                paper = by_key.get(value) or by_fp.get(value.removeprefix("title:"))
            else:
                paper = by_fp.get(value)
            if paper is not None:
                break
        found.append(paper)
    return found


def resolve_papers(conn: store.Connection, refs: Iterable[str]) -> tuple[list[StoredPaper], list[str]]:
    """The stored papers ``refs`` name (see ``parse_ref``), each once in the order given, and the references
    that name none."""
    refs = list(refs)
    found: dict[str, StoredPaper] = {}
    missing: list[str] = []
    for ref, paper in zip(refs, _resolve_rows(conn, [[ref] for ref in refs]), strict=True):
        if paper is None:
            missing.append(ref)
        else:
            found.setdefault(paper.paper.key, paper)
    return list(found.values()), missing


def _not_found(ref: str) -> DigestError:
    if parse_ref(ref) is None:
        return DigestError(
            f"{ref!r} names no paper",
            "give an arXiv id (2405.01234), an arxiv.org or huggingface.co/papers link, or the paper's title",
        )
    return DigestError(
        f"no stored paper matches {ref!r}",
        "a paper is known once an ingested dump lists it; `digest papers --search WORD` shows what the store "
        "holds (by arXiv id or exact title); to rate a paper before that, add it to the user's `like` or "
        "`dislike` in the config",
    )


# ----------------------------------------------------------------------------- what rankers train on


class StoredVotes(Mapping[str, Sequence[Vote]]):
    """The votes of the users a run retrains, read from the store a chunk of users at a time when the ranker
    asks: a run never holds every user's votes at once (10,000 users with 200 votes each would be two million
    rows), and each voted paper is loaded once however many users voted on it. Remembers, per user read, the
    time of the newest vote it handed out: what the saved model has seen (``newest``)."""

    # Users read per query: the ranker asks in the order given, so one query (and one look-up of the papers not
    # loaded yet) serves the next CHUNK users instead of one each; at most one chunk's rows are held.
    CHUNK = 128

    def __init__(self, conn: store.Connection, users: Iterable[str]) -> None:
        self._conn = conn
        self._users = list(dict.fromkeys(users))
        self._index = {user: i for i, user in enumerate(self._users)}
        self._papers: dict[str, Paper] = {}
        self._newest: dict[str, datetime] = {}
        self._ahead: dict[str, list[tuple[str, int, datetime]]] = {}  # read with an earlier user, not asked yet

    def __getitem__(self, user: str) -> Sequence[Vote]:
        start = self._index.get(user)
        if start is None:
            raise KeyError(user)
        rows = self._ahead.pop(user, None)
        if rows is None:  # not read ahead (or asked again): read it with the users after it
            self._ahead = store.feedback.votes(self._conn, self._users[start : start + self.CHUNK])
            keys = {key for found in self._ahead.values() for key, _, _ in found}
            missing = sorted(keys - self._papers.keys())
            if missing:
                self._papers.update((sp.paper.key, sp.paper) for sp in store.get_papers(self._conn, missing))
            rows = self._ahead.pop(user)
        papers = self._papers
        found = [Vote(papers[key], value, at) for key, value, at in rows if key in papers]
        if rows:
            self._newest[user] = rows[-1][2]  # the rows are oldest first
        return found

    def __contains__(self, user: object) -> bool:
        return user in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._users)

    def __len__(self) -> int:
        return len(self._users)

    def newest(self, user: str) -> datetime | None:
        """The time of the newest vote handed out for ``user`` (None: not read, or no votes)."""
        return self._newest.get(user)


def _seed_rows(profiles: Iterable[Profile]) -> list[tuple[str, int, str]]:
    return [(p.name, vote, ref) for p in profiles for vote, refs in ((1, p.like), (-1, p.dislike)) for ref in refs]


def seeds_for(conn: store.Connection, profiles: Iterable[Profile]) -> dict[str, tuple[list[Paper], list[Paper]]]:
    """Per profile, the stored papers its ``like`` and ``dislike`` name (arXiv ids or titles), in the order
    written; references the store does not hold yet are no seeds (yet): ``unresolved_seeds`` lists them."""
    profiles = list(profiles)
    rows = _seed_rows(profiles)
    papers = _resolve_rows(conn, [[ref] for _, _, ref in rows])
    seeds: dict[str, tuple[list[Paper], list[Paper]]] = {p.name: ([], []) for p in profiles}
    for (user, vote, _), found in zip(rows, papers, strict=True):
        if found is not None:
            liked, disliked = seeds[user]
            chosen = liked if vote > 0 else disliked
            if all(p.key != found.paper.key for p in chosen):
                chosen.append(found.paper)
    return seeds


def unresolved_seeds(conn: store.Connection, profiles: Iterable[Profile]) -> dict[str, list[str]]:
    """Per profile with any, the ``like``/``dislike`` references that name no stored paper (yet)."""
    rows = _seed_rows(profiles)
    missing: dict[str, list[str]] = {}
    for (user, _, ref), found in zip(rows, _resolve_rows(conn, [[ref] for _, _, ref in rows]), strict=True):
        if found is None:
            missing.setdefault(user, []).append(ref)
    return missing


# ----------------------------------------------------------------------------- votes from the command line


@dataclass(frozen=True, slots=True)
class Recorded:
    """What `digest feedback` did: the paper, the vote, the user's vote before, whether anything changed."""

    paper: Paper
    vote: int
    previous: int | None
    changed: bool


def _require_user(cfg: config.Config, user: str) -> None:
    if user not in {u.name for u in cfg.users}:
        raise ConfigError(f"no user named {user!r} in {cfg.path}", "`digest check` lists the configured users")


def record_vote(
    cfg: config.Config, user: str, paper: str, vote: int, *, now: datetime, source: str = "cli"
) -> Recorded:
    """Record ``user``'s vote (+1 or -1) on the stored paper ``paper`` names (an arXiv id in any usual form, a
    link, a title); a DigestError with a hint when it names none."""
    _require_user(cfg, user)
    with contextlib.closing(store.open_store(cfg.digest.store)) as conn:
        [found] = _resolve_rows(conn, [[paper]])
        if found is None:
            raise _not_found(paper)
        key = found.paper.key
        previous = store.feedback.current_votes(conn, user, [key]).get(key)
        changed = store.feedback.record_vote(conn, user, key, vote, source, now)
    return Recorded(found.paper, vote, previous, changed)


@dataclass(frozen=True, slots=True)
class Ratings:
    """A user's votes (``store.feedback.Rating``, oldest first) and their seeds from the config."""

    ratings: list[store.feedback.Rating]
    liked: list[Paper]
    disliked: list[Paper]
    unresolved_seeds: list[str]


def list_ratings(cfg: config.Config, user: str) -> Ratings:
    """``user``'s votes and seed papers (read only)."""
    _require_user(cfg, user)
    profile = next(p for p in cfg.profiles() if p.name == user)
    with contextlib.closing(store.open_store(cfg.digest.store, readonly=True)) as conn:
        liked, disliked = seeds_for(conn, [profile])[user]
        return Ratings(
            store.feedback.ratings_of(conn, user), liked, disliked, unresolved_seeds(conn, [profile]).get(user, [])
        )


# --------------------------------------------------------------------------------------- CSV in and out

EXPORT_COLUMNS = ("arxiv_id", "title", "vote", "at")
_ID_COLUMNS = ("arxiv_id", "arxiv", "id", "doi", "url", "link")  # tried in this order, then the title
_VOTE_COLUMNS = ("vote", "rating")
_LINES = re.compile(r"\r\n|\r|\n")
_HEADER_NAMES = {"arxiv_id", "arxiv", "id", "doi", "url", "title"}  # any one makes the first line a header
_VOTES = {
    **dict.fromkeys(("", "up", "+1", "1", "+", "yes", "y", "true", "like", "liked", "👍"), 1),
    **dict.fromkeys(("down", "-1", "0", "-", "no", "n", "false", "dislike", "disliked", "👎"), -1),
}


def export_ratings(cfg: config.Config, user: str) -> str:
    """``user``'s votes as CSV (``arxiv_id,title,vote,at``; vote "up" or "down"), oldest first: what
    ``import_ratings`` reads back (a paper without an arXiv id by its title)."""
    _require_user(cfg, user)
    with contextlib.closing(store.open_store(cfg.digest.store, readonly=True)) as conn:
        ratings = store.feedback.ratings_of(conn, user)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for r in ratings:
        aid = r.arxiv_id or (r.paper_key.removeprefix("arxiv:") if r.paper_key.startswith("arxiv:") else "")
        title = r.title or ("" if aid else r.paper_key)
        at = r.at.astimezone(UTC).isoformat(timespec="seconds")
        writer.writerow((aid, title, "up" if r.vote > 0 else "down", at))
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A line of an imported file that was not imported: ``kind`` "invalid" (unreadable row) or "unresolved"
    (names no stored paper)."""

    line: int
    text: str
    message: str
    kind: str = "unresolved"


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What `digest ratings import` did, or with ``written`` False would have done: rows read, votes new,
    changed and already so, and the rows it could not use."""

    rows: int
    imported: int
    updated: int
    unchanged: int
    problems: tuple[RowProblem, ...]
    written: bool

    @property
    def unresolved(self) -> int:
        return sum(p.kind == "unresolved" for p in self.problems)

    @property
    def invalid(self) -> int:
        return sum(p.kind == "invalid" for p in self.problems)


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    refs: tuple[str, ...]
    vote: int
    shown: str


def _column(cell: str) -> str:
    return "_".join(cell.strip().lstrip("\ufeff").strip().strip('"').lower().split())


def _header(first_line: str) -> tuple[str, list[str]] | None:
    """The delimiter and normalised column names when ``first_line`` is a CSV header, else None."""
    for delimiter in (",", "\t", ";"):
        cells = [_column(c) for c in next(csv.reader([first_line], delimiter=delimiter), [])]
        if _HEADER_NAMES.intersection(cells):
            return delimiter, cells
    return None


def _cell(cells: Sequence[str], index: int | None) -> str:
    return cells[index].strip() if index is not None and index < len(cells) else ""


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _read_rows(text: str) -> tuple[list[_Row], list[RowProblem]]:
    """The rows of a CSV with a header (id/link/title columns, optionally vote) or of a plain list (one id,
    link or title per line; '#' starts a comment), each with the line it starts on."""
    lines = _LINES.split(text.lstrip("\ufeff"))
    start = next((i for i, line in enumerate(lines) if line.strip()), None)
    if start is None:
        return [], []
    header = _header(lines[start])
    rows: list[_Row] = []
    problems: list[RowProblem] = []
    if header is None:
        for number, line in enumerate(lines, 1):
            ref = line.strip()
            if ref and not ref.startswith("#"):
                rows.append(_Row(number, (ref,), 1, _short(ref)))
        return rows, problems
    delimiter, columns = header
    ids = [columns.index(name) for name in _ID_COLUMNS if name in columns]
    title = columns.index("title") if "title" in columns else None
    vote_at = next((columns.index(name) for name in _VOTE_COLUMNS if name in columns), None)
    reader = csv.reader(io.StringIO("\n".join(lines[start + 1 :])), delimiter=delimiter)
    consumed = start + 1
    for cells in reader:  # a quoted field may span lines: a row's number is the line it starts on
        line, consumed = consumed + 1, start + 1 + reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        refs = tuple(r for r in [*(_cell(cells, i) for i in ids), _cell(cells, title)] if r)
        shown = _short(_cell(cells, title) or next(iter(refs), ",".join(cells)))
        given = _cell(cells, vote_at)
        vote = _VOTES.get(given.lower())
        if vote is None:
            problems.append(RowProblem(line, shown, f"vote {given!r} is not up or down", "invalid"))
        elif not refs:
            problems.append(RowProblem(line, shown, "no arXiv id, link or title in this row", "invalid"))
        else:
            rows.append(_Row(line, refs, vote, shown))
    return rows, problems


def import_ratings(
    cfg: config.Config,
    user: str,
    text: str,
    *,
    name: str,
    now: datetime,
    dry_run: bool = False,
    skip_unresolved: bool = False,
) -> ImportReport:
    """Record the votes of a CSV or plain list (``text``, read from ``name``) as ``user``'s, all in one
    transaction. A row that cannot be read, or (unless ``skip_unresolved``) names no stored paper, is
    reported with its line and nothing is written; ``dry_run`` writes nothing either way."""
    _require_user(cfg, user)
    rows, problems = _read_rows(text)
    if not rows and not problems:
        raise DigestError(
            f"{name}: no papers in it",
            "one arXiv id, link or title per line, or a CSV whose header names arxiv_id, id, arxiv, url or title",
        )
    with contextlib.closing(store.open_store(cfg.digest.store, readonly=dry_run)) as conn:
        papers = _resolve_rows(conn, [row.refs for row in rows])
        votes: dict[str, int] = {}
        for row, found in zip(rows, papers, strict=True):
            if found is None:
                why = "names no paper" if all(parse_ref(r) is None for r in row.refs) else "not in the store"
                problems.append(RowProblem(row.line, row.shown, why))
            else:
                votes[found.paper.key] = row.vote
        problems.sort(key=lambda p: p.line)
        refused = any(p.kind == "invalid" for p in problems) or (bool(problems) and not skip_unresolved)
        if refused or dry_run:
            before = store.feedback.current_votes(conn, user, list(votes))
            new = sum(key not in before for key in votes)
            changed = sum(key in before and before[key] != vote for key, vote in votes.items())
            unchanged = len(votes) - new - changed
        else:
            new, changed, unchanged = store.feedback.record_votes(conn, user, list(votes.items()), "import", now)
    written = not refused and not dry_run
    return ImportReport(len(rows) + sum(p.kind == "invalid" for p in problems), new, changed, unchanged,
                        tuple(problems), written)  # fmt: skip


# ------------------------------------------------------------------------------------ the vote endpoint


@dataclass(frozen=True, slots=True)
class VotePage:
    """What /v/<token> shows: the user's vote on a paper (its title), their recorded vote before this request,
    and (after a POST) whether the request changed it."""

    user: str
    paper_key: str
    title: str
    vote: int
    current: int | None
    changed: bool = False


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _stored_paper(conn: store.Connection, key: str) -> StoredPaper | None:
    """The paper a link's key names (a title key whose paper has since gained an arXiv id: by its title)."""
    return _resolve_rows(conn, [[key]])[0]


class VoteDesk:
    """The vote links' side of `digest serve`: ``look`` (GET: verify, read, change nothing) and ``cast``
    (POST: record, source 'link'); both None for a token that does not verify, names a user no longer in the
    config or a paper the store does not hold. Each call opens the store for itself (the server's threads)."""

    def __init__(
        self, store_path: Path, secret: bytes, users: Iterable[str], *, clock: Callable[[], datetime] = _utc_now
    ) -> None:
        self.store_path = Path(store_path)
        self.secret = secret
        self.users = frozenset(users)
        self.clock = clock

    def _link(self, token: str) -> VoteLink | None:
        link = verify_vote_token(self.secret, token)
        return link if link is not None and link.user in self.users else None

    def look(self, token: str) -> VotePage | None:
        """What following the link would record (read only)."""
        link = self._link(token)
        if link is None:
            return None
        with contextlib.closing(store.open_store(self.store_path, readonly=True)) as conn:
            found = _stored_paper(conn, link.paper_key)
            if found is None:
                return None
            key = found.paper.key
            current = store.feedback.current_votes(conn, link.user, [key]).get(key)
        return VotePage(link.user, key, found.paper.title, link.vote, current)

    def cast(self, token: str) -> VotePage | None:
        """Record the link's vote (replacing the user's earlier vote on the paper)."""
        link = self._link(token)
        if link is None:
            return None
        with contextlib.closing(store.open_store(self.store_path)) as conn:
            found = _stored_paper(conn, link.paper_key)
            if found is None:
                return None
            key = found.paper.key
            current = store.feedback.current_votes(conn, link.user, [key]).get(key)
            changed = store.feedback.record_vote(conn, link.user, key, link.vote, "link", self.clock())
        return VotePage(link.user, key, found.paper.title, link.vote, current, changed)


def vote_desk(cfg: config.Config, env: Mapping[str, str]) -> VoteDesk:
    """The service's VoteDesk: the config's store, users and signing secret."""
    return VoteDesk(cfg.digest.store, config.secret(cfg, env), [u.name for u in cfg.users])
