"""Hostile dumps (issue 12, first part): each is refused with a clear error naming the file, or ingested with
what is sound in it; never an "unexpected" crash, never a changed store on refusal, and `digest run` moves a
refused dump aside and goes on with the next one.

The cases are built from the project's own fixtures, deterministically: the shapes that crashed ingest before
(numbers where lists go, deep nesting, integers over 64 bits, lone surrogates, NUL bytes after the first 8 KB,
Unicode line separators in a text scrape).
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import FIXTURES, SECRET_ENV, user_block, write_config

from digest import config, pipeline, store
from digest.errors import DumpError
from digest.sources import parse_dump

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
API = FIXTURES / "orgs" / "api_2026-04-16.json"


def _api() -> list[dict]:
    return json.loads(API.read_text(encoding="utf-8"))


def _with(mutate) -> bytes:  # type: ignore[no-untyped-def]
    entries = _api()
    mutate(entries)
    return json.dumps(entries).encode()


def _set(field: str, value: object):  # type: ignore[no-untyped-def]
    def mutate(entries: list[dict]) -> None:
        entries[0]["paper"][field] = value

    return mutate


NESTED = ("[" * 5000 + "]" * 5000).encode()
RAW_BIG = API.read_text(encoding="utf-8").replace('"upvotes": ', '"upvotes": 123456789012345678901234567890', 1)

HOSTILE: dict[str, bytes] = {
    "authors a number": _with(_set("authors", 7)),
    "authors a bool": _with(_set("authors", True)),
    "authors names not text": _with(_set("authors", [{"name": 5}, {"name": None}, "x"])),
    "upvotes over 64 bits": _with(_set("upvotes", 2**70)),
    "upvotes negative": _with(_set("upvotes", -5)),
    "upvotes over 64 bits, raw": RAW_BIG.encode(),
    "lone surrogate in the title": _with(_set("title", "A study of \ud800 surrogates in LLM text")),
    "lone surrogate in the summary": _with(_set("summary", "Broken \udfff text about language models.")),
    "lone surrogate in an author": _with(_set("authors", [{"name": "Ada \ud800"}])),
    "nested 5,000 levels": NESTED,
    "nested in a field": _with(_set("summary", json.loads("[" * 900 + "]" * 900))),
    "NUL after 8 KB": API.read_bytes() + b" " * 9000 + b"\x00",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_dump_is_refused_or_ingested_cleanly(tmp_path: Path, name: str) -> None:
    """Refused with a DumpError naming the file, or stored; the store is unchanged by a refusal."""
    conn = store.open_store(tmp_path / "s.db")
    before = store.counts(conn)
    try:
        dump = parse_dump(HOSTILE[name], f"{name}.json")
    except DumpError as exc:
        assert f"{name}.json" in str(exc)
        assert store.counts(conn) == before
        return
    report = store.ingest(conn, dump, now=NOW)
    assert report.found >= 1
    stored = store.list_papers(conn)
    for sp in stored:
        for text in (sp.paper.title, sp.paper.abstract, *sp.paper.authors):
            text.encode("utf-8")  # storable and renderable
        assert sp.paper.upvotes is None or 0 <= sp.paper.upvotes < 2**53


def test_out_of_range_counts_are_noted_in_the_report() -> None:
    """An upvote count SQLite cannot hold is dropped from the paper with a note; the paper is kept."""
    dump = parse_dump(HOSTILE["upvotes over 64 bits"], "big.json")
    assert dump.papers[0].upvotes is None
    assert any("upvotes ignored (out of range)" in note for note in dump.skipped)


def test_nul_byte_anywhere_refuses_the_dump_as_binary() -> None:
    """A NUL byte after the first 8 KB still marks the file as binary."""
    with pytest.raises(DumpError, match="binary"):
        parse_dump(HOSTILE["NUL after 8 KB"], "late-nul.json")


@pytest.mark.parametrize("seed", range(5))
def test_text_lines_end_only_at_cr_and_lf(seeds: list[Path], seed: int) -> None:
    """U+2028/2029, NEL, VT, FF and FS/GS/RS inside an abstract do not split it: no half abstract becomes a
    title, every title stays the dump's own (both layouts of the real scrapes)."""
    data = seeds[seed].read_bytes().decode("utf-8")
    original = parse_dump(data.encode(), "seed.txt").papers
    abstract = original[0].abstract
    cut = abstract.index(" ", len(abstract) // 2)
    for separator in ("\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"):
        mangled = data.replace(abstract, abstract[:cut] + separator + abstract[cut + 1 :], 1)
        assert mangled != data
        papers = parse_dump(mangled.encode(), "seed.txt").papers
        assert [p.title for p in papers] == [p.title for p in original], repr(separator)


def test_run_moves_a_hostile_dump_aside_and_ingests_the_next(tmp_path: Path, seeds: list[Path]) -> None:
    """A dump that cannot be read fails one run once: it goes to inbox/refused/, the good dump after it is
    ingested, and the next run has nothing to refuse."""
    from conftest import free_port

    cfg = config.load_config(write_config(tmp_path, free_port(), user_block("ada", "['nothing-matches-this']")))
    (cfg.digest.inbox / "000_nested.json").write_bytes(NESTED)
    shutil.copy(seeds[0], cfg.digest.inbox / "001_good.txt")
    report = pipeline.run_once(cfg, SECRET_ENV, now=NOW)
    assert report.new_papers > 0 and len(report.errors) == 1
    assert "000_nested.json" in report.errors[0] and "refused" in report.errors[0]
    assert (cfg.digest.inbox / "refused" / "000_nested.json").exists()
    again = pipeline.run_once(cfg, SECRET_ENV, now=NOW)
    assert not again.errors


def test_only_cr_and_lf_split_text_lines() -> None:
    """The text reader's line splitting: a separator inside a line keeps it one line (str.splitlines made two)."""
    from digest.sources.text import _content_lines

    for separator in ("\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"):
        text = f"A title about LLM{separator}agents\r\nAn abstract.\rMore.\nEnd."
        assert len(_content_lines(text)) == 4, repr(separator)


def test_a_file_that_is_no_listing_is_refused_with_a_hint() -> None:
    """The project's README is not a dump of one paper: text needs the listing's shape."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_bytes()
    with pytest.raises(DumpError, match="does not look like a Daily Papers listing") as info:
        parse_dump(readme, "README.md")
    assert "saved HTML page" in info.value.hint


def test_every_seed_has_the_listing_shape(seeds: list[Path]) -> None:
    """The text criteria accept all five real scrapes."""
    for seed in seeds:
        assert parse_dump(seed.read_bytes(), seed.name).format == "text"


def test_html_page_with_headers_before_it_is_read_as_html() -> None:
    """A page saved with `curl -i` (HTTP headers first) or after long whitespace is HTML, not 37 papers of markup."""
    page = (FIXTURES / "orgs" / "page_2026-04-16.html").read_bytes()
    expected = parse_dump(page, "page.html")
    for prefix in (b"HTTP/2 200\r\ncontent-type: text/html; charset=utf-8\r\n\r\n", b" " * 5000 + b"\n" * 300):
        dump = parse_dump(prefix + page, "page.html")
        assert dump.format == "html" and [p.key for p in dump.papers] == [p.key for p in expected.papers]


def test_line_breaks_and_controls_in_fields() -> None:
    """A title's line breaks become spaces and controls go; an abstract keeps its breaks as LF, no raw CR."""
    dump = parse_dump(
        _with(lambda e: e[0]["paper"].update(title="A title\r\nwith\x00 a wrap\rand\x1fcontrols",
                                             summary="An abstract\x07 with\r\nbreaks\rhere.")),
        "ctl.json",
    )  # fmt: skip
    paper = dump.papers[0]
    assert paper.title == "A title with a wrap andcontrols"
    assert paper.abstract == "An abstract with\nbreaks\nhere."
