"""Relevance feedback: signed vote tokens, votes in the store, papers by reference, the CLI and CSV in and out."""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import SECRET_ENV, free_port, user_block, write_config

from digest import config, store
from digest.app.cli import main
from digest.identity import paper_key
from digest.models import Dump, Paper
from digest.pipeline import feedback

SECRET = SECRET_ENV["DIGEST_SECRET"].encode()
NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
MOE = Paper(paper_key("2405.01234", ""), "Sparse Mixture of Experts for Long Context", "moe", arxiv_id="2405.01234")
GANS = Paper(paper_key("2406.00002", ""), "Diffusion Models Beat GANs Again", "diffusion", arxiv_id="2406.00002")
RAG = Paper(paper_key(None, "A Survey of Retrieval-Augmented Generation"), "A Survey of Retrieval-Augmented Generation",
            "rag")  # fmt: skip
OLD = Paper("arxiv:hep-th/9901001", "Strings Before the Millennium", "strings", arxiv_id="hep-th/9901001")
PAPERS = (MOE, GANS, RAG, OLD)
ADA = user_block("ada", "['LLM']") + (
    'like = ["arXiv:2405.01234v3", "a survey of retrieval augmented generation", "2501.99999"]\n'
    'dislike = ["https://huggingface.co/papers/2406.00002"]\n'
)
BOB = user_block("bob", "['diffusion']")


def _ingest(conn: store.Connection, papers: tuple[Paper, ...] = PAPERS, name: str = "day1") -> None:
    store.ingest(conn, Dump(name, name.ljust(64, "0"), "json", papers), now=NOW)


@pytest.fixture
def cfg_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A config with ada (with like/dislike seeds) and bob, and a store holding four papers."""
    for key, value in SECRET_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DIGEST_NOW", NOW.isoformat())
    path = write_config(tmp_path, free_port(), ADA + BOB)
    conn = store.open_store(config.load_config(path).digest.store)
    try:
        _ingest(conn)
    finally:
        conn.close()
    yield path


@pytest.fixture
def cfg(cfg_path: Path) -> config.Config:
    return config.load_config(cfg_path)


def _run(capsys: pytest.CaptureFixture[str], cfg_path: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--config", str(cfg_path), *args])
    out, err = capsys.readouterr()
    return code, out, err


def _votes(cfg: config.Config, user: str) -> dict[str, int]:
    with contextlib.closing(store.open_store(cfg.digest.store)) as conn:
        return {key: vote for key, vote, _ in store.feedback.votes(conn, [user])[user]}


# ------------------------------------------------------------------------------------------ tokens


def test_vote_token_round_trips() -> None:
    """A token verifies back to its user, paper and vote, for both votes and both kinds of key."""
    for key in (MOE.key, RAG.key, OLD.key):
        for vote in (1, -1):
            token = feedback.vote_token(SECRET, "ada", key, vote)
            assert feedback.verify_vote_token(SECRET, token) == feedback.VoteLink("ada", key, vote)


def _flip(text: str, at: int) -> str:
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]


def test_forged_and_edited_tokens_are_refused() -> None:
    """Another secret, an edited payload or signature, a payload with another's signature, a cut token: None."""
    token = feedback.vote_token(SECRET, "ada", MOE.key, 1)
    payload, signature = token.split(".")
    other = feedback.vote_token(SECRET, "bob", MOE.key, -1)
    down = feedback.vote_token(SECRET, "ada", MOE.key, -1)
    forged = [
        feedback.vote_token(b"another-secret-0123456789abcdef", "ada", MOE.key, 1),
        f"{_flip(payload, 3)}.{signature}",
        f"{payload}.{_flip(signature, 2)}",
        f"{other.split('.')[0]}.{signature}",
        f"{down.split('.')[0]}.{signature}",  # the down vote with the up vote's signature
        payload,
        token[:-3],
        token + "A",
        "",
        ".",
        "x" * 500,
    ]
    for bad in forged:
        assert feedback.verify_vote_token(SECRET, bad) is None, bad


# ---------------------------------------------------------------------------------- the store itself


def test_a_second_vote_replaces_the_first(conn: store.Connection) -> None:
    """One vote per user and paper: a different vote replaces it (changed), the same again changes nothing."""
    _ingest(conn)
    assert store.feedback.record_vote(conn, "ada", MOE.key, 1, "link", NOW)
    assert not store.feedback.record_vote(conn, "ada", MOE.key, 1, "link", NOW + timedelta(hours=1))
    assert store.feedback.record_vote(conn, "ada", MOE.key, -1, "cli", NOW + timedelta(hours=2))
    assert store.feedback.record_vote(conn, "bob", MOE.key, 1, "link", NOW)
    [only] = store.feedback.ratings_of(conn, "ada")
    assert (only.paper_key, only.vote, only.source, only.at) == (MOE.key, -1, "cli", NOW + timedelta(hours=2))
    assert only.title == MOE.title and only.arxiv_id == "2405.01234"
    # an older vote (an import of old rows) never undoes a newer one
    assert not store.feedback.record_vote(conn, "ada", MOE.key, 1, "import", NOW)
    assert store.feedback.current_votes(conn, "ada", [MOE.key, GANS.key]) == {MOE.key: -1}


def test_votes_are_oldest_first_and_voters_since_is_per_user(conn: store.Connection) -> None:
    """votes() lists every user asked for, oldest first; voters_since (a time per user, None for any) names
    those with a vote strictly later than their time."""
    _ingest(conn)
    for minutes, (user, paper, vote) in enumerate([("ada", GANS, -1), ("ada", MOE, 1), ("bob", RAG, 1)]):
        store.feedback.record_vote(conn, user, paper.key, vote, "link", NOW + timedelta(minutes=minutes))
    everything = store.feedback.votes(conn, ["ada", "bob", "cyd"])
    assert [(k, v) for k, v, _ in everything["ada"]] == [(GANS.key, -1), (MOE.key, 1)]
    assert everything["cyd"] == [] and len(everything["bob"]) == 1
    assert store.feedback.voters_since(conn, {"ada": NOW, "bob": NOW, "cyd": None}) == {"ada", "bob"}
    assert store.feedback.voters_since(conn, {"ada": NOW + timedelta(minutes=1), "bob": None}) == {"bob"}
    assert store.feedback.voters_since(conn, {"ada": None, "bob": NOW + timedelta(minutes=2)}) == {"ada"}


def test_ranker_states_round_trip(conn: store.Connection) -> None:
    """save_states then load_states gives the same bytes and votes_until, per ranker; a save replaces."""
    states = {"ada": (b"\x00model-a\xff", NOW), "bob": (b"model-b", NOW - timedelta(microseconds=5))}
    store.feedback.save_states(conn, "learned", states, NOW)
    assert store.feedback.load_states(conn, "learned", ["ada", "bob", "cyd"]) == states
    assert store.feedback.load_states(conn, "other", ["ada"]) == {}
    store.feedback.save_states(conn, "learned", {"ada": (b"newer", NOW + timedelta(days=1))}, NOW)
    assert store.feedback.load_states(conn, "learned", ["ada"]) == {"ada": (b"newer", NOW + timedelta(days=1))}
    assert store.feedback.clear_ratings(conn, "ada") == 0
    assert store.feedback.load_states(conn, "learned", ["ada", "bob"]).keys() == {"bob"}


# ------------------------------------------------------------------------------ papers by reference


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("2405.01234", ("arxiv", "2405.01234")),
        ("arXiv:2405.01234v2", ("arxiv", "2405.01234")),
        ("https://arxiv.org/abs/2405.01234v2", ("arxiv", "2405.01234")),
        ("http://arxiv.org/pdf/2405.01234v1.pdf", ("arxiv", "2405.01234")),
        ("https://huggingface.co/papers/2405.01234", ("arxiv", "2405.01234")),
        ("https://doi.org/10.48550/arXiv.2405.01234", ("arxiv", "2405.01234")),
        ("10.48550/arXiv.2405.01234", ("arxiv", "2405.01234")),
        ("https://arxiv.org/abs/hep-th/9901001", ("arxiv", "hep-th/9901001")),
        ("  Sparse Mixture of Experts for  Long Context ", ("title", "")),
        (RAG.key, ("key", RAG.key)),
        ("https://www.nature.com/articles/s41586-020-2649-2", None),
        ("10.1038/s41586-020-2649-2", None),
        ("", None),
        ("  ... ", None),
    ],
)
def test_parse_ref_accepts_every_usual_form(ref: str, expected: tuple[str, str] | None) -> None:
    """arXiv ids bare, prefixed, versioned, in abs/pdf/Hugging Face/DOI links; titles; other links are nothing."""
    got = feedback.parse_ref(ref)
    if expected is not None and expected[0] == "title":
        assert got is not None and got[0] == "title"
    else:
        assert got == expected


def test_resolve_papers_by_id_link_and_title(conn: store.Connection) -> None:
    """Ids and links find papers by arXiv id, titles by fingerprint (case, punctuation, spacing ignored)."""
    _ingest(conn)
    refs = ["arXiv:2405.01234v2", "https://arxiv.org/pdf/2406.00002", "a survey of retrieval augmented GENERATION!",
            "hep-th/9901001", "2405.01234", "2501.99999", "No Such Paper"]  # fmt: skip
    found, missing = feedback.resolve_papers(conn, refs)
    assert [sp.paper.key for sp in found] == [MOE.key, GANS.key, RAG.key, OLD.key]
    assert missing == ["2501.99999", "No Such Paper"]


def test_seeds_resolve_from_like_and_dislike(conn: store.Connection, cfg: config.Config) -> None:
    """like/dislike name papers by id, link or title; what the store lacks is no seed yet, and is listed."""
    _ingest(conn)
    seeds = feedback.seeds_for(conn, cfg.profiles())
    liked, disliked = seeds["ada"]
    assert [p.key for p in liked] == [MOE.key, RAG.key] and [p.key for p in disliked] == [GANS.key]
    assert seeds["bob"] == ([], [])
    assert feedback.unresolved_seeds(conn, cfg.profiles()) == {"ada": ["2501.99999"]}


def test_stored_votes_load_the_papers(conn: store.Connection) -> None:
    """StoredVotes gives ranker Votes with the stored Paper objects, oldest first."""
    _ingest(conn)
    store.feedback.record_vote(conn, "ada", RAG.key, 1, "link", NOW)
    store.feedback.record_vote(conn, "ada", GANS.key, -1, "link", NOW + timedelta(seconds=1))
    votes = feedback.StoredVotes(conn, ["ada", "bob"])
    assert [(v.paper.title, v.value) for v in votes["ada"]] == [(RAG.title, 1), (GANS.title, -1)]
    assert votes["bob"] == []


# --------------------------------------------------------------------------------- the vote desk


def test_looking_never_records_and_casting_records_once(cfg: config.Config) -> None:
    """look (GET) five times like a scanner: nothing; cast (POST) records once; the down link replaces it."""
    desk = feedback.vote_desk(cfg, SECRET_ENV)
    up = feedback.vote_token(SECRET, "ada", MOE.key, 1)
    for _ in range(5):
        page = desk.look(up)
        assert page is not None and (page.title, page.vote, page.current) == (MOE.title, 1, None)
    assert _votes(cfg, "ada") == {}
    page = desk.cast(up)
    assert page is not None and page.changed and _votes(cfg, "ada") == {MOE.key: 1}
    again = desk.cast(up)
    assert again is not None and not again.changed
    down = desk.cast(feedback.vote_token(SECRET, "ada", MOE.key, -1))
    assert down is not None and (down.current, down.changed) == (1, True)
    assert _votes(cfg, "ada") == {MOE.key: -1}


def test_the_desk_refuses_unknown_users_papers_and_forgeries(cfg: config.Config) -> None:
    """A user no longer in the config, a paper the store lacks, a forged token: None, nothing recorded."""
    desk = feedback.vote_desk(cfg, SECRET_ENV)
    for token in (
        feedback.vote_token(SECRET, "zed", MOE.key, 1),
        feedback.vote_token(SECRET, "ada", "arxiv:2501.99999", 1),
        feedback.vote_token(b"not-our-secret-0123456789abcdef", "ada", MOE.key, 1),
    ):
        assert desk.look(token) is None and desk.cast(token) is None
    assert _votes(cfg, "ada") == {} and _votes(cfg, "zed") == {}


def test_a_title_link_still_works_after_the_paper_gains_its_arxiv_id(cfg: config.Config) -> None:
    """A link signed for a title key records on the paper's new arXiv key once a dump gave it its id."""
    token = feedback.vote_token(SECRET, "bob", RAG.key, 1)
    with contextlib.closing(store.open_store(cfg.digest.store)) as conn:
        _ingest(conn, (Paper("arxiv:2407.00007", RAG.title, "rag", arxiv_id="2407.00007"),), name="day2")
    page = feedback.vote_desk(cfg, SECRET_ENV).cast(token)
    assert page is not None and page.paper_key == "arxiv:2407.00007"
    assert _votes(cfg, "bob") == {"arxiv:2407.00007": 1}


# ------------------------------------------------------------------------------------------- the CLI


def test_cli_feedback_by_id_and_by_title(
    capsys: pytest.CaptureFixture[str], cfg_path: Path, cfg: config.Config
) -> None:
    """`digest feedback` finds the paper by arXiv link or title, records, and says when it changed a vote."""
    code, out, _ = _run(capsys, cfg_path, "feedback", "ada", "https://arxiv.org/abs/2405.01234v2", "up")
    assert code == 0 and "👍" in out and MOE.title in out
    code, out, _ = _run(capsys, cfg_path, "feedback", "ada", "a survey of retrieval-augmented generation", "DOWN")
    assert code == 0 and "👎" in out and RAG.title in out
    code, out, _ = _run(capsys, cfg_path, "feedback", "ada", "2405.01234", "down")
    assert code == 0 and "(was 👍)" in out
    code, out, _ = _run(capsys, cfg_path, "feedback", "ada", "2405.01234", "down")
    assert code == 0 and "(already)" in out
    assert _votes(cfg, "ada") == {MOE.key: -1, RAG.key: -1}
    with contextlib.closing(store.open_store(cfg.digest.store)) as conn:
        assert {r.source for r in store.feedback.ratings_of(conn, "ada")} == {"cli"}


def test_cli_feedback_errors(capsys: pytest.CaptureFixture[str], cfg_path: Path, cfg: config.Config) -> None:
    """An unknown user is a usage error (2); an unknown paper or a non-arXiv link is an error with a hint (1)."""
    code, _, err = _run(capsys, cfg_path, "feedback", "zed", "2405.01234", "up")
    assert code == 2 and "zed" in err
    code, _, err = _run(capsys, cfg_path, "feedback", "ada", "2501.99999", "up")
    assert code == 1 and "no stored paper matches '2501.99999'" in err and "hint:" in err and "digest papers" in err
    code, _, err = _run(capsys, cfg_path, "feedback", "ada", "https://example.org/paper", "up")
    assert code == 1 and "names no paper" in err and "hint:" in err
    code, _, err = _run(capsys, cfg_path, "feedback", "ada", "2405.01234", "sideways")
    assert code == 2
    assert _votes(cfg, "ada") == {}


def test_export_then_import_into_another_user_round_trips(
    capsys: pytest.CaptureFixture[str], cfg_path: Path, cfg: config.Config, tmp_path: Path
) -> None:
    """ada's export (arxiv_id,title,vote,at) imported as bob's gives bob the same votes, titles for id-less papers."""
    for ref, vote in (("2405.01234", "up"), ("hep-th/9901001", "down"), (RAG.title, "down")):
        assert _run(capsys, cfg_path, "feedback", "ada", ref, vote)[0] == 0
    code, out, _ = _run(capsys, cfg_path, "ratings", "export", "ada")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [tuple(r.values()) for r in rows] == [
        ("2405.01234", MOE.title, "up", "2026-11-23T07:00:00+00:00"),
        ("hep-th/9901001", OLD.title, "down", "2026-11-23T07:00:00+00:00"),
        ("", RAG.title, "down", "2026-11-23T07:00:00+00:00"),
    ]
    target = tmp_path / "ada.csv"
    assert _run(capsys, cfg_path, "ratings", "export", "ada", "-o", str(target))[0] == 0
    assert target.read_text(encoding="utf-8") == out
    code, out, _ = _run(capsys, cfg_path, "ratings", "import", "bob", str(target))
    assert code == 0 and "3 new, 0 changed" in out
    assert _votes(cfg, "bob") == _votes(cfg, "ada") == {MOE.key: 1, OLD.key: -1, RAG.key: -1}
    code, out, _ = _run(capsys, cfg_path, "ratings", "import", "bob", str(target))
    assert code == 0 and "0 new, 0 changed, 3 already so" in out


ZOTERO = (
    '\ufeff"Key","Item Type","Publication Year","Author","Title","Publication Title","DOI","Url","Abstract Note"\n'
    '"ABCD1234","preprint","2024","Doe, Jane","Sparse Mixture of Experts for Long Context","",'
    '"10.48550/arXiv.2405.01234",'
    '"http://arxiv.org/abs/2405.01234v1","We study experts,\nover two lines."\n'
    '"EFGH5678","journalArticle","2024","Roe, Rick","A Survey of Retrieval-Augmented Generation","J. Surveys","",'
    '"https://journal.example.org/rag","A survey."\n'
    '"IJKL9012","preprint","2024","Poe, Ed","Diffusion Models Beat GANs Again","","","https://huggingface.co/papers/2406.00002",""\n'
)


def test_a_zotero_like_export_imports(capsys: pytest.CaptureFixture[str], cfg_path: Path, cfg: config.Config,
                                      tmp_path: Path) -> None:  # fmt: skip
    """A reference manager's CSV (BOM, "Title","Url","DOI" columns, quoted multi-line fields, no vote column):
    every row is a thumbs up, found by DOI, link or (publisher link) title."""
    path = tmp_path / "zotero.csv"
    path.write_text(ZOTERO, encoding="utf-8")
    code, out, err = _run(capsys, cfg_path, "ratings", "import", "ada", str(path), "--dry-run")
    assert code == 0 and "would record 3 new" in out and _votes(cfg, "ada") == {}
    code, out, err = _run(capsys, cfg_path, "ratings", "import", "ada", str(path))
    assert code == 0 and "3 rows: 3 new" in out, err
    assert _votes(cfg, "ada") == {MOE.key: 1, RAG.key: 1, GANS.key: 1}
    with contextlib.closing(store.open_store(cfg.digest.store)) as conn:
        assert {r.source for r in store.feedback.ratings_of(conn, "ada")} == {"import"}


def test_unresolvable_rows_are_reported_by_line_and_nothing_is_written(
    capsys: pytest.CaptureFixture[str], cfg_path: Path, cfg: config.Config, tmp_path: Path
) -> None:
    """Rows naming no stored paper (a quoted field spans two lines before them) are listed file:line; the
    import writes nothing; --skip-unresolved then imports the rest."""
    path = tmp_path / "mixed.csv"
    path.write_text(
        "title,url,vote\n"  # 1
        '"Sparse Mixture of Experts\nfor Long Context",,down\n'  # 2-3
        "Not A Paper We Know,,up\n"  # 4
        ",https://arxiv.org/abs/2406.00002,+1\n"  # 5
        "\n"  # 6
        ",https://example.org/elsewhere,no\n",  # 7
        encoding="utf-8",
    )
    code, out, err = _run(capsys, cfg_path, "ratings", "import", "ada", str(path))
    assert code == 1 and out == ""
    assert f"{path}:4: not in the store: Not A Paper We Know" in err
    assert f"{path}:7: names no paper: https://example.org/elsewhere" in err
    assert "nothing imported" in err and "--skip-unresolved" in err and ":2:" not in err and ":5:" not in err
    assert _votes(cfg, "ada") == {}
    code, out, err = _run(capsys, cfg_path, "ratings", "import", "ada", str(path), "--skip-unresolved")
    assert code == 0 and "2 new" in out and "2 not in the store (skipped)" in out
    assert _votes(cfg, "ada") == {MOE.key: -1, GANS.key: 1}


def test_invalid_votes_refuse_the_file_even_when_skipping(
    capsys: pytest.CaptureFixture[str], cfg_path: Path, cfg: config.Config, tmp_path: Path
) -> None:
    """A vote that is neither up nor down is an unreadable row: reported by line, never skipped."""
    path = tmp_path / "votes.csv"
    path.write_text("arxiv_id;rating\n2405.01234;like\n2406.00002;maybe\n", encoding="utf-8")
    code, _, err = _run(capsys, cfg_path, "ratings", "import", "ada", str(path), "--skip-unresolved")
    assert code == 1 and f"{path}:3: vote 'maybe' is not up or down" in err
    assert _votes(cfg, "ada") == {}


def test_a_plain_list_imports_as_thumbs_up(
    capsys: pytest.CaptureFixture[str],
    cfg_path: Path,
    cfg: config.Config,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One id, link or title per line ('#' comments, blank lines skipped), read from a file or stdin: all up."""
    text = "# liked papers\narXiv:2405.01234v2\n\nA Survey of Retrieval-Augmented Generation\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    code, out, err = _run(capsys, cfg_path, "ratings", "import", "bob", "-")
    assert code == 0 and "<stdin>: 2 rows: 2 new" in out, err
    assert _votes(cfg, "bob") == {MOE.key: 1, RAG.key: 1}
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n", encoding="utf-8")
    code, _, err = _run(capsys, cfg_path, "ratings", "import", "bob", str(empty))
    assert code == 1 and "no papers in it" in err


def test_ratings_list_shows_votes_and_seeds(capsys: pytest.CaptureFixture[str], cfg_path: Path) -> None:
    """`ratings list` prints each vote and the config's seeds, naming those not in the store yet."""
    assert _run(capsys, cfg_path, "feedback", "ada", "2406.00002", "up")[0] == 0
    code, out, _ = _run(capsys, cfg_path, "ratings", "list", "ada")
    assert code == 0 and GANS.title in out and "👍" in out
    assert "2 liked, 1 disliked" in out and "2501.99999" in out
    code, out, _ = _run(capsys, cfg_path, "ratings", "list", "ada", "--json")
    assert code == 0 and '"seeds_not_in_store": [\n    "2501.99999"' in out
    assert _run(capsys, cfg_path, "ratings", "list", "zed")[0] == 2
