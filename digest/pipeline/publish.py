"""The Atom feeds of a run: the global feed and one per user, each paper's entry built once per run.

Every id in them is fixed at first use (digest/feed_ids.py): the tag authority at the store's first feed
write, each paper's entry id the first time a feed shows it. Readers key on entry ids, so an id that moved
with a config change or a re-keyed paper would show them every entry again.

What a user's feed says about its papers is per user, beside the run's shared entries: why each matched and
where (notes), which were "Also for you" suggestions and why (as the store recorded them when their digest was
queued), and (with the signing secret and [digest].base_url) the user's thumbs-up/down links, signed when the
feed is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from digest import config, matching, store
from digest.models import Match, Paper, Profile
from digest.pipeline import archive, feedback
from digest.pipeline.settings import feeds_base_url
from digest.render import atom
from digest.store import delivery, feed_ids


def _config_authority(conn: store.Connection, cfg: config.Config) -> str:
    """The authority the config gives today: base_url's host (else the sender's domain), the store's birth year."""
    host = urlsplit(cfg.digest.base_url).hostname if cfg.digest.base_url else None
    host = host or cfg.mail.sender.rpartition("@")[2]
    first = store.first_ingested(conn)
    year = first[:4] if first else "2026"  # the store's birth year: fixed for its whole life
    return f"{host},{year}"


def _authority(conn: store.Connection, cfg: config.Config) -> str:
    """The tag authority of this store's feeds: taken from the config at the first feed write, then recorded
    and read back whatever the config says later (setting base_url must not change every id)."""
    recorded = feed_ids.authority(conn)
    if recorded is None:
        candidate = _config_authority(conn, cfg)
        atom.tag_uri(candidate, "feed/all")  # refused before it is recorded: a bad one would stay for good
        recorded = feed_ids.record_authority(conn, candidate)
    return recorded


@dataclass
class FeedWriter:
    """Writes the Atom feeds of one run: each paper's entry is built and serialised once (atom.EntryCache)
    and each stored paper is loaded once, however many users' feeds show it."""

    conn: store.Connection
    cfg: config.Config
    out: Path
    authority: str
    entries: atom.EntryCache = field(default_factory=atom.EntryCache)
    # Recorded entry ids by paper key (feed_ids) of the papers this run's feeds show, read as they are first
    # needed and extended as papers first appear.
    ids: dict[str, str] = field(default_factory=dict)
    papers: dict[str, atom.FeedEntry] = field(default_factory=dict)  # by paper key, loaded on first use
    absent: set[str] = field(default_factory=set)  # keys in the outbox that the store no longer has
    written: list[Path] = field(default_factory=list)
    # Per user, why each paper of their feed matched and where (the entry's why line and highlights), by key.
    notes: dict[str, dict[str, atom.Note]] = field(default_factory=dict)
    # Per user, the papers of their feed that were "Also for you" suggestions (marked so in their entries).
    suggested: dict[str, set[str]] = field(default_factory=dict)
    # The signing secret of the vote links (MailSettings.secret); None: the feeds have none.
    secret: bytes | None = field(default=None, repr=False)

    @classmethod
    def for_run(
        cls, conn: store.Connection, cfg: config.Config, out_dir: Path | None = None, *, secret: bytes | None = None
    ) -> FeedWriter:
        """A writer into ``out_dir`` (default [feeds].output); with ``secret`` (and [digest].base_url) each entry
        of a user's feed carries the user's signed vote links."""
        return cls(conn, cfg, out_dir or cfg.feeds.output, _authority(conn, cfg), secret=secret)

    def _fixed_ids(self, papers: Iterable[Paper]) -> dict[str, str]:
        """Recorded entry ids by paper key, covering ``papers``: a paper no feed has shown yet gets its id now
        (atom.entry_id with the recorded authority), recorded before any feed holding it is written."""
        papers = list(papers)
        ids = self.ids
        unknown = [p.key for p in papers if p.key not in ids]
        if unknown:
            ids.update(feed_ids.load(self.conn, unknown))
        new = {p.key: atom.entry_id(p, self.authority) for p in papers if p.key not in ids}
        if new:
            feed_ids.record(self.conn, new)
            ids.update(new)
        return ids

    def note(self, user: str, matches: Iterable[Match], *, suggestions: Iterable[Match] = ()) -> None:
        """Remember why these papers matched for ``user`` (their digest's matches), and why the ``suggestions``
        (their digest's "Also for you" papers) were suggested, for the user's feed."""
        mine = self.notes.setdefault(user, {})
        for m in matches:
            mine[m.paper.key] = (m.reason, m.hits)
        if suggestions:
            marked = self.suggested.setdefault(user, set())
            for m in suggestions:
                mine[m.paper.key] = (m.reason, m.hits)
                marked.add(m.paper.key)

    def explain(self, profiles: Sequence[Profile]) -> None:
        """Say why each paper these users' feeds show is there, for the papers not noted yet (a feed reaches back
        past any digest's window): what its digest recorded it as (an "Also for you" suggestion, with the
        reason it gave, or a keyword match), and for a match why and where it matches the profile today, matched
        once, all users at a time (a profile that changed since may no longer say: then no why). Only for a
        digest from before the store recorded suggestions (schema v9) is it inferred: a paper the keywords do
        not match was a suggestion, marked as one without a why."""
        wanted: dict[str, list[str]] = {}
        for profile in profiles:
            mine = self.notes.setdefault(profile.name, {})
            keys = delivery.feed_keys(self.conn, profile.name, limit=self.cfg.feeds.max_entries)
            if missing := [k for k in keys if k not in mine]:
                wanted[profile.name] = missing
        if not wanted:
            return
        recorded = delivery.shown_as(self.conn, wanted)
        self._load(sorted({k for keys in wanted.values() for k in keys}))
        chosen = [p for p in profiles if p.name in wanted]
        suggested = {p.name: {k for k, why in recorded.get(p.name, {}).items() if why is not None} for p in chosen}
        # A recorded suggestion needs no match: its why is the one its digest gave.
        union = sorted({k for user, keys in wanted.items() for k in keys if k not in suggested[user]})
        papers = [self.papers[k].paper for k in union if k in self.papers]
        found = matching.match_all(matching.compile_profiles(chosen), papers) if papers else {}
        for profile in chosen:
            facts, mine, marked = recorded.get(profile.name, {}), self.notes[profile.name], suggested[profile.name]
            shown = set(wanted[profile.name])
            for key in marked:
                mine[key] = (facts[key] or "", ())
            for m in found.get(profile.name, ()):
                if m.paper.key in shown and m.paper.key not in marked:
                    mine[m.paper.key] = (m.reason, m.hits)
            for key in shown:
                if key in mine:
                    continue
                mine[key] = ("", ())  # a match the profile no longer matches, or an older digest's suggestion
                if key not in facts:  # shown before schema v9: inferred, as the store did not say
                    marked.add(key)
            if marked:
                self.suggested.setdefault(profile.name, set()).update(marked)

    def _load(self, keys: Sequence[str]) -> None:
        """Load (once per run) the stored papers of ``keys`` as feed entries with their fixed ids."""
        missing = [k for k in keys if k not in self.papers and k not in self.absent]
        if missing:
            found = store.get_papers(self.conn, missing)
            made = atom.feed_entries(found, ids=self._fixed_ids(sp.paper for sp in found))
            self.papers.update(zip((sp.paper.key for sp in found), made, strict=True))
            self.absent.update(k for k in missing if k not in self.papers)

    def _build(
        self,
        entries: list[atom.FeedEntry],
        *,
        specific: str,
        title: str,
        file: str,
        alternate: str,
        notes: dict[str, atom.Note] | None = None,
        votes: dict[str, tuple[str, str]] | None = None,
        suggested: set[str] | None = None,
    ) -> None:
        base = feeds_base_url(self.cfg)
        data = atom.build_feed(
            entries,
            feed_id=atom.tag_uri(self.authority, specific),
            title=title,
            self_url=f"{base}/{file}",
            alternate_url=alternate,
            authority=self.authority,
            author=self.cfg.mail.sender_name,
            max_entries=self.cfg.feeds.max_entries,
            cache=self.entries,
            notes=notes,
            votes=votes,
            suggested=suggested or (),
        )
        # A feed is derived data: no fsync per file (it cost more than building the feed). The rename keeps
        # readers from ever seeing half a file, and a file a power cut left empty is rebuilt by the next run.
        path = self.out / file
        if atom.write_feed(path, data, durable=False):
            self.written.append(path)

    def write_global(self) -> None:
        """The feed of every new paper."""
        found = store.list_papers(self.conn, limit=self.cfg.feeds.max_entries)
        latest = atom.feed_entries(found, ids=self._fixed_ids(sp.paper for sp in found))
        self._build(
            latest,
            specific="feed/all",
            title="Daily Papers: all new papers",
            file=self.cfg.feeds.global_feed,
            alternate=f"{feeds_base_url(self.cfg)}/",  # the feeds index
        )

    def write_user(self, profile: Profile) -> None:
        """One user's feed: the papers of their latest digests."""
        # One query per user, right after the pipeline queued the user's new digest: a batch read ahead would
        # miss that digest, and reading every user's whole history at once costs more than these queries.
        keys = delivery.feed_keys(self.conn, profile.name, limit=self.cfg.feeds.max_entries)
        self._load(keys)
        mine = self.notes.get(profile.name, {})
        if any(k not in mine for k in keys if k in self.papers):
            self.explain([profile])  # a user the run did not explain ahead (one match of their feed's papers)
            mine = self.notes[profile.name]
        # Each paper's FeedEntry is made once per run and shared by every feed that shows it: build_feed finds
        # what it derived from an entry by the object's identity, without hashing the paper again; the user's
        # why lines and highlights go in as notes by paper key.
        entries = [self.papers[k] for k in keys if k in self.papers]
        # The user's vote links, signed per feed written (what feeds have in common is built once per run).
        votes = None
        if self.secret is not None:
            votes = feedback.vote_urls(self.cfg, self.secret, profile.name, [e.paper.key for e in entries])
        slug = atom.feed_slug(profile.name)
        base = feeds_base_url(self.cfg)
        self._build(
            entries,
            specific=f"feed/user/{slug}",
            title=f"Paper digest for {profile.display_name or profile.name}",
            file=atom.feed_file(profile.name),
            alternate=archive.index_url(self.cfg, profile.name) if archive.enabled(self.cfg) else f"{base}/",
            notes=mine,
            votes=votes,
            suggested=self.suggested.get(profile.name),
        )

    def exists(self, profile: Profile) -> bool:
        """Whether this user's feed file is there and not empty."""
        path = self.out / atom.feed_file(profile.name)
        return path.is_file() and path.stat().st_size > 0


def write_feeds(
    conn: store.Connection,
    cfg: config.Config,
    *,
    out_dir: Path | None = None,
    users: Sequence[str] | None = None,
    changed_users: Sequence[str] | None = None,
    writer: FeedWriter | None = None,
    secret: bytes | None = None,
) -> list[Path]:
    """Write the global feed and one feed per user with feed = true; returns the files that changed.

    With ``changed_users`` only those users' feeds (and any missing ones) are rebuilt: a user's feed depends
    only on their digests, so the others would come out byte-identical anyway. ``secret`` signs the users' vote
    links (for a new writer; ``writer`` has its own).
    """
    writer = writer or FeedWriter.for_run(conn, cfg, out_dir, secret=secret)
    writer.write_global()
    changed = set(changed_users or ())
    chosen = []
    for profile in cfg.profiles():
        if not profile.feed or (users is not None and profile.name not in users):
            continue
        if changed_users is not None and profile.name not in changed and writer.exists(profile):
            continue
        chosen.append(profile)
    writer.explain(chosen)  # one match for every feed written here
    for profile in chosen:
        writer.write_user(profile)
    return writer.written
