"""Dump readers: format sniffing, text layouts, API JSON schemas, the saved HTML page, bad input."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest

import digest.sources
from digest.errors import DumpError
from digest.identity import normalise_title, paper_key, title_fingerprint
from digest.models import Paper
from digest.sources import READERS, Reader, detect_format, parse_dump, read_dump

EXPECTED_FOUND = [82, 49, 53, 119, 78]
FIXTURES = Path(__file__).parent / "fixtures"
# Three real 2026-04-16 API entries, trimmed (two authors, no avatars of users), and the same as a saved page.
API_ORGS = FIXTURES / "orgs" / "api_2026-04-16.json"
PAGE_ORGS = FIXTURES / "orgs" / "page_2026-04-16.html"
SEEDS = sorted(FIXTURES.glob("0*.txt"))
# The project's own day of four made-up papers (authors, organization, code and project links, stars, AI
# summaries, thumbnails) in the three formats: API JSON, the saved page, and the text scrape of that page.
OWN_API = FIXTURES / "readers" / "api_2026-11-20.json"
OWN_PAGE = FIXTURES / "readers" / "page_2026-11-20.html"
OWN_SCRAPE = FIXTURES / "readers" / "scrape_2026-11-20.txt"
BY_FORMAT = {
    "json": [OWN_API, API_ORGS],
    "html": [OWN_PAGE, PAGE_ORGS],
    "text": [OWN_SCRAPE, SEEDS[0], SEEDS[3]],  # both layouts of the scrape
}


def test_seed_paper_counts(seeds: list[Path]) -> None:
    """Each seed yields the number of title+abstract pairs it holds, with nothing skipped."""
    assert [len(read_dump(p).papers) for p in seeds] == EXPECTED_FOUND
    assert all(read_dump(p).skipped == () for p in seeds)


def test_titles_and_abstracts_are_the_dump_text(seeds: list[Path]) -> None:
    """Every title and abstract is a whole line of the dump, byte for byte, and chrome is not a paper."""
    for path in seeds:
        lines = set(path.read_text(encoding="utf-8").splitlines())
        text = path.read_text(encoding="utf-8")
        for paper in read_dump(path).papers:
            assert paper.title in text and paper.abstract in lines
            assert paper.title not in {"new", "Subscribe", "Daily Papers", "byAK and the research community"}
            assert not paper.title.startswith("Subscribe")


def test_compact_layout_strips_glued_chrome(seeds: list[Path]) -> None:
    """The compact layout's first title loses the 'Subscribe' glued to it."""
    first = read_dump(seeds[3]).papers[0]
    assert first.title == "PARALLELPROMPT: Extracting Parallelism from Large Language Model Queries"
    assert first.abstract.startswith("LLM serving systems typically treat user prompts")


def test_metadata_lines_are_parsed(seeds: list[Path]) -> None:
    """Authors, date without a year and upvotes are read from the metadata lines."""
    papers = {p.title: p for p in read_dump(seeds[1]).papers}
    hogwild = papers["Hogwild! Inference: Parallel LLM Generation via Concurrent Attention"]
    assert (hogwild.n_authors, hogwild.published_text, hogwild.upvotes) == (8, "Apr 8", 6)
    assert hogwild.published is None  # no invented year
    mirror = papers["Mirror Speculative Decoding: Breaking the Serial Barrier in LLM Inference"]
    assert (mirror.organization, mirror.published_text, mirror.upvotes) == ("Apple", "Oct 15", 2)


def test_text_org_line_gives_handle_and_display_name(seeds: list[Path]) -> None:
    """The scrape's organization line "apple Apple" is the handle then the display name; both are kept."""
    papers = {p.title: p for p in read_dump(seeds[1]).papers}
    mirror = papers["Mirror Speculative Decoding: Breaking the Serial Barrier in LLM Inference"]
    assert (mirror.organization, mirror.org_handle) == ("Apple", "apple")
    assert all(p.org_handle is None for p in papers.values() if p.organization is None)


def test_date_with_year_and_upvotes(seeds: list[Path]) -> None:
    """'Oct 15, 2025 2' is a full date and 2 upvotes."""
    papers = {p.title: p for p in read_dump(seeds[2]).papers}
    mirror = papers["Mirror Speculative Decoding: Breaking the Serial Barrier in LLM Inference"]
    assert mirror.published == date(2025, 10, 15) and mirror.upvotes == 2


def test_text_metadata_does_not_leak_into_titles(seeds: list[Path]) -> None:
    """No metadata line (•, ·, dates, org) is ever taken as a title."""
    for path in seeds:
        for paper in read_dump(path).papers:
            assert not paper.title.startswith(("•", "·")) and paper.title != "apple Apple"


def test_orphan_lines_are_listed_not_fatal() -> None:
    """A title without an abstract is skipped and reported; the good papers are kept."""
    abstract = "We study things. " * 30
    text = f"Daily Papers\n\nGood Title\n\n{abstract}\n\nLonely Title\n\nOther Title\n\n{abstract}x\n"
    dump = parse_dump(text.encode(), "x.txt")
    assert [p.title for p in dump.papers] == ["Good Title", "Other Title"]
    assert len(dump.skipped) == 1 and "line 7" in dump.skipped[0]


@pytest.mark.parametrize(
    ("data", "expected"),
    [(b"[]", "json"), (b'  {"a": 1}', "json"), (b"<!DOCTYPE html><html>", "html"), (b"Daily Papers\n", "text")],
)
def test_detect_format_from_content(data: bytes, expected: str) -> None:
    """The format comes from the content, whatever the file is called."""
    assert detect_format(data.decode()) == expected


def test_the_registry_lists_each_format_once_in_sniff_order() -> None:
    """READERS holds one Reader per format, JSON first and the text scrape last."""
    assert all(isinstance(reader, Reader) for reader in READERS)
    assert [reader.format for reader in READERS] == ["json", "html", "text"]
    assert set(BY_FORMAT) == {reader.format for reader in READERS}  # every reader has fixtures below


@pytest.mark.parametrize("reader", READERS, ids=lambda reader: reader.format)
def test_each_reader_sniffs_its_own_format_only(reader: Reader) -> None:
    """A reader's sniff says yes to every fixture of its format and no to every fixture of the others."""
    for fmt, paths in BY_FORMAT.items():
        for path in paths:
            text = path.read_text(encoding="utf-8")
            assert reader.sniff(text) is (fmt == reader.format), f"{reader.format} sniff on {path.name}"


def test_text_no_reader_recognises_is_refused() -> None:
    """Prose that no reader recognises has no format, and is refused saying what a listing looks like."""
    text = "Dear team,\nthe digest looks good.\nBest, Ada\n"
    assert detect_format(text) is None
    with pytest.raises(DumpError) as err:
        parse_dump(text.encode(), "note.txt")
    assert err.value.message.startswith("note.txt: this does not look like a Daily Papers listing")
    assert "saved HTML page" in err.value.hint


def test_a_new_format_is_one_more_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader added to READERS is sniffed in its turn and its papers go through the same clean-up and Dump."""

    def parse_tsv(text: str, name: str) -> tuple[list[Paper], list[str]]:
        rows = [line.split("\t") for line in text.splitlines()[1:]]
        return [Paper(key=paper_key(None, t), title=t, abstract=a) for t, a in rows], []

    tsv = Reader("tsv", lambda text: text.startswith("title\tabstract\n"), parse_tsv, "expected a TSV dump")
    monkeypatch.setattr(digest.sources, "READERS", (*READERS, tsv))
    dump = parse_dump(b"title\tabstract\nA\x07 Title\tSome abstract.\n", "d.tsv")
    assert (dump.format, [(p.title, p.abstract) for p in dump.papers]) == ("tsv", [("A Title", "Some abstract.")])
    assert read_dump(OWN_API).format == "json"  # the others are unchanged


def test_own_fixtures_give_the_same_day_in_every_format() -> None:
    """The API JSON and the saved page give the same four papers; the text scrape of that page gives the same
    titles, abstracts (unwrapped), author counts, organizations and upvotes."""
    api, page, scrape = read_dump(OWN_API), read_dump(OWN_PAGE), read_dump(OWN_SCRAPE)
    assert (api.format, page.format, scrape.format) == ("json", "html", "text")
    assert not (api.skipped or page.skipped or scrape.skipped)
    assert len(api.papers) == 4 and page.papers == api.papers
    assert [(p.title, " ".join(p.abstract.split()), p.n_authors, p.organization, p.org_handle, p.upvotes)
            for p in scrape.papers] == [
        (p.title, " ".join(p.abstract.split()), p.n_authors, p.organization, p.org_handle, p.upvotes)
        for p in api.papers
    ]  # fmt: skip
    assert [p.published_text for p in scrape.papers] == ["Nov 19", "Nov 19", "Nov 19", "Nov 18"]


def test_own_api_fixture_keeps_every_field() -> None:
    """Authors, organization, code repository with stars, project page, AI summary and thumbnail come through."""
    first, second, *_ = read_dump(OWN_API).papers
    assert first.authors == ("Mira Okafor", "Jonas Lindqvist", "Ana Beltrán") and first.n_authors == 3
    assert (first.arxiv_id, first.key, first.upvotes, first.published) == (
        "2611.10001", "arxiv:2611.10001", 31, date(2026, 11, 19),
    )  # fmt: skip
    assert (first.github_repo, first.github_stars) == ("https://github.com/example-labs/selfverify", 412)
    assert first.ai_summary and first.ai_summary.startswith("Self-verifying heads replace")
    assert first.thumbnail == "https://cdn-thumbnails.huggingface.co/social-thumbnails/papers/2611.10001.png"
    assert "\n" in first.abstract  # the API's hard wraps are kept in abstracts
    assert (second.organization, second.org_handle, second.project_page) == (
        "Acme AI", "acme-ai", "https://acme.example.org/pagedkv",
    )  # fmt: skip


def test_json_dump_named_txt_is_read_as_json(tmp_path: Path) -> None:
    """A JSON dump saved with a .txt name is still parsed as JSON."""
    entry = {"paper": {"id": "2401.00001v2", "title": "A\n  Title", "summary": "S", "upvotes": 3, "authors": []}}
    path = tmp_path / "dump.txt"
    path.write_text(json.dumps([entry]))
    dump = read_dump(path)
    assert dump.format == "json"
    paper = dump.papers[0]
    assert (paper.key, paper.title, paper.upvotes) == ("arxiv:2401.00001", "A Title", 3)


def test_identity_normalises_title() -> None:
    """NFKC, case folding, punctuation and arXiv wraps do not change a title's identity."""
    assert normalise_title("Self-Supervised\n  Learning: ＡＢＣ!") == "self supervised learning abc"
    assert title_fingerprint("A  Study of GANs") == title_fingerprint("a study of gans.")
    assert paper_key("2401.00001", "x") == "arxiv:2401.00001"


@pytest.mark.parametrize(
    ("name", "expected_count"),
    [
        ("api_json/2024-05-27.json", 13),
        ("api_json/2025-08-25.json", 13),
        ("api_json/2026-04-10.json", 35),
        ("api_json/2026-04-16.json", 22),
        ("html/huggingface_papers_2024-08-01.html", 13),
    ],
)
def test_corpus_files_parse(corpus: Path, name: str, expected_count: int) -> None:
    """Every real API JSON and HTML dump parses with the right count and arXiv ids."""
    dump = read_dump(corpus / name)
    assert len(dump.papers) == expected_count and not dump.skipped
    assert all(p.arxiv_id and p.key == f"arxiv:{p.arxiv_id}" for p in dump.papers)
    assert all("\n" not in p.title for p in dump.papers)


def test_corpus_organization_and_authors(corpus: Path) -> None:
    """Organization objects and author lists come through from the newer schema."""
    papers = read_dump(corpus / "api_json/2026-04-16.json").papers
    assert any(p.organization == "ByteDance Seed" for p in papers)
    assert max(p.n_authors or 0 for p in papers) > 0


def test_api_json_keeps_org_handle_and_display_name() -> None:
    """An organization object gives the display name (fullname) and the handle (name); no object gives neither."""
    dump = read_dump(API_ORGS)
    assert dump.format == "json" and not dump.skipped
    assert [(p.arxiv_id, p.organization, p.org_handle) for p in dump.papers] == [
        ("2604.14116", "Intern Large Models", "internlm"),
        ("2604.14084", "Princeton University", "princetonu"),
        ("2604.11626", None, None),
    ]


def test_api_json_links_summary_and_thumbnail_are_kept_apart() -> None:
    """The code repository (with stars), the project page, the AI summary and the thumbnail are separate
    fields; a link that is not http(s) or a count that is not a number is ignored with a note."""
    entry = {
        "paper": {
            "id": "2604.00001", "title": "T", "summary": "S.", "githubRepo": "https://github.com/a/b",
            "githubStars": 15, "projectPage": "https://a.example/b", "ai_summary": "One line.\nTwo.",
        },
        "thumbnail": "https://cdn.example/t.png",
    }  # fmt: skip
    [paper] = parse_dump(json.dumps([entry]).encode(), "d.json").papers
    assert (paper.github_repo, paper.github_stars, paper.project_page, paper.ai_summary, paper.thumbnail) == (
        "https://github.com/a/b", 15, "https://a.example/b", "One line. Two.", "https://cdn.example/t.png",
    )  # fmt: skip
    entry["paper"] |= {"githubRepo": "javascript:alert(1)", "githubStars": "15", "projectPage": 3}
    dump = parse_dump(json.dumps([entry]).encode(), "d.json")
    [paper] = dump.papers
    assert (paper.github_repo, paper.github_stars, paper.project_page) == (None, None, None)
    assert [n for n in dump.skipped if "githubRepo" in n or "githubStars" in n or "projectPage" in n]


def test_corpus_day_has_ai_summaries_and_code_links(corpus: Path) -> None:
    """On a real 2026 day, 34 of 35 papers carry Hugging Face's AI summary; repositories and pages are split."""
    papers = read_dump(corpus / "api_json/2026-04-10.json").papers
    assert (len(papers), sum(bool(p.ai_summary) for p in papers)) == (35, 34)
    assert all(p.github_repo.startswith("https://github.com/") for p in papers if p.github_repo)
    assert sum(p.github_stars is not None for p in papers) > 0 and all(p.thumbnail for p in papers)


def test_html_page_keeps_org_handle_and_display_name() -> None:
    """The saved page's data-props (the API shape) gives the same papers, handles and display names."""
    page = read_dump(PAGE_ORGS)
    assert page.format == "html" and not page.skipped
    assert page.papers == read_dump(API_ORGS).papers


def _org_of(organization: object, *, entry_org: object = None) -> tuple[str | None, str | None]:
    """(display name, handle) read from one entry whose paper has this organization value."""
    paper: dict[str, object] = {"id": "2604.14116", "title": "T", "summary": "S", "organization": organization}
    entry: dict[str, object] = {"paper": paper}
    if entry_org is not None:
        entry["organization"] = entry_org
    (read,) = parse_dump(json.dumps([entry]).encode(), "o.json").papers
    return read.organization, read.org_handle


@pytest.mark.parametrize(
    ("organization", "expected"),
    [
        ({"name": "facebook", "fullname": "AI at Meta", "avatar": "https://x/a.png"}, ("AI at Meta", "facebook")),
        ({"name": "Qwen", "fullname": "Qwen"}, ("Qwen", "Qwen")),
        ({"name": "acme"}, ("acme", "acme")),  # no fullname: the handle is also the name shown
        ({"name": "acme", "fullname": None}, ("acme", "acme")),
        ({"name": "acme", "fullname": 7}, ("acme", "acme")),
        ({"name": 42, "fullname": "Acme Labs"}, ("Acme Labs", None)),
        ({"name": {"x": 1}, "fullname": ["Acme"]}, (None, None)),
        (
            {"name": " Northeastern ", "fullname": "Northeastern University "},
            ("Northeastern University", "Northeastern"),
        ),
        ({"name": "", "fullname": "  "}, (None, None)),
        ("Apple", ("Apple", None)),  # a bare string is a display name
        (42, (None, None)),
        (True, (None, None)),
        (["facebook"], (None, None)),
        (None, (None, None)),
    ],
)
def test_organization_values(organization: object, expected: tuple[str | None, str | None]) -> None:
    """Only strings are stored: other values are ignored, never turned into a Python repr."""
    assert _org_of(organization) == expected


def test_unusable_paper_organization_falls_back_to_the_entry() -> None:
    """When the paper's organization is unusable the entry-level copy is read."""
    entry_org = {"name": "facebook", "fullname": "AI at Meta"}
    assert _org_of({"name": 5}, entry_org=entry_org) == ("AI at Meta", "facebook")
    assert _org_of(None, entry_org=entry_org) == ("AI at Meta", "facebook")
    assert _org_of({"name": "google", "fullname": "Google"}, entry_org=entry_org) == ("Google", "google")


def test_corpus_org_handles(corpus: Path) -> None:
    """On the real API JSON every organization object gives its fullname and its name, as strings."""
    for day in ("2026-04-10", "2026-04-16"):
        raw = json.loads((corpus / "api_json" / f"{day}.json").read_text(encoding="utf-8"))
        expected = [
            (e["paper"]["organization"]["fullname"].strip(), e["paper"]["organization"]["name"])
            if e["paper"].get("organization")
            else (None, None)
            for e in raw
        ]
        papers = read_dump(corpus / "api_json" / f"{day}.json").papers
        assert [(p.organization, p.org_handle) for p in papers] == expected
        assert sum(1 for p in papers if p.org_handle) > 10
    by_handle = {p.org_handle: p.organization for p in read_dump(corpus / "api_json/2026-04-16.json").papers}
    assert by_handle["internlm"] == "Intern Large Models" and by_handle["ByteDance-Seed"] == "ByteDance Seed"


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("broken/api_json_python_repr_strings.json", "Python repr()"),
        ("broken/api_error_response.json", "error instead of a listing"),
    ],
)
def test_corpus_broken_dumps_are_refused(corpus: Path, name: str, needle: str) -> None:
    """Real broken dumps are refused with a message naming the file and the problem."""
    with pytest.raises(DumpError) as err:
        read_dump(corpus / name)
    assert name.split("/")[1] in err.value.message and needle in err.value.message


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"", "empty"),
        (b"   \n\n", "empty"),
        (b"\x7fELF\x02\x01\x00\x00binary", "binary"),
        (b'[{"paper": {"id": "2401.1', "invalid JSON"),
        (b"<html><body><p>no listing</p></body></html>", "no DailyPapers listing"),
        (b"\xff\xfe\xfa not utf8", "not valid UTF-8"),
        (b'{"error": "Sorry"}', "error instead of a listing"),
    ],
)
def test_bad_input_is_refused(data: bytes, needle: str) -> None:
    """Empty, binary, truncated, listing-less and non-UTF-8 input each get a clear DumpError."""
    with pytest.raises(DumpError) as err:
        parse_dump(data, "bad.dump")
    assert err.value.message.startswith("bad.dump") and needle in err.value.message and err.value.hint


def test_truncated_json_names_line_and_column() -> None:
    """Truncated JSON reports file:line:column, and json's message without its dangling "starting at"."""
    with pytest.raises(DumpError) as err:
        parse_dump(b'[\n  {"paper": {"id": "2401.1', "t.json")
    assert err.value.message == "t.json:2:20: invalid JSON (Unterminated string)"
    with pytest.raises(DumpError) as err:
        parse_dump(b'[{"paper": {"id": "2401\x01"}}]', "c.json")
    assert err.value.message == "c.json:1:24: invalid JSON (Invalid control character)"


def test_partly_malformed_json_keeps_good_entries() -> None:
    """Good entries are kept and each bad one is listed with its index."""
    good = {"paper": {"id": "2401.00001", "title": "T", "summary": "S"}}
    dump = parse_dump(json.dumps([good, "oops", {"paper": {}}]).encode(), "p.json")
    assert len(dump.papers) == 1
    assert [s.split(":")[0] for s in dump.skipped] == ["entry 1", "entry 2"]


def test_control_characters_are_stripped() -> None:
    """C0 controls that XML cannot carry are removed from titles and abstracts."""
    entry = {"paper": {"id": "2401.00001", "title": "A\x0bB", "summary": "x\x00y <think>"}}
    paper = parse_dump(json.dumps([entry]).encode(), "c.json").papers[0]
    assert (paper.title, paper.abstract) == ("AB", "xy <think>")


def _api_with(**fields: object) -> bytes:
    entries = json.loads((FIXTURES / "orgs" / "api_2026-04-16.json").read_text(encoding="utf-8"))
    entries[0]["paper"].update(fields)
    return json.dumps(entries).encode()


def test_wrong_type_fields_are_ignored_with_a_note() -> None:
    """A field of the wrong JSON type is left out with a note naming the entry and the field; the entry stays."""
    data = _api_with(organization={"name": 5}, upvotes="12", publishedAt=20260415, authors=[1, {"name": "Ada"}])
    dump = parse_dump(data, "t.json")
    paper = dump.papers[0]
    assert len(dump.papers) == 3 and paper.upvotes is None and paper.published == date(2026, 4, 14)  # the entry's
    assert paper.authors == ("Ada",) and paper.organization == "Intern Large Models"  # the entry's own copy
    for field in ("paper.organization.name", "paper.upvotes", "paper.publishedAt", "paper.authors"):
        assert any(n.startswith("entry 0 ('TREX: Automating") and field in n for n in dump.skipped), field


def test_non_string_values_are_never_stored_as_python_reprs() -> None:
    """An organization that is a bool, or an object without names, gives no 'True' or "{'a': 1}" text."""
    for org in (True, {"a": 1}, 7, ["x"]):
        entries = json.loads((FIXTURES / "orgs" / "api_2026-04-16.json").read_text(encoding="utf-8"))
        for entry in entries:
            entry["organization"] = entry["paper"]["organization"] = org
        dump = parse_dump(json.dumps(entries).encode(), "o.json")
        assert {p.organization for p in dump.papers} == {None} and {p.org_handle for p in dump.papers} == {None}


def test_an_entry_without_a_sound_title_or_abstract_is_dropped_with_a_note() -> None:
    """A title or summary of the wrong type (and no usable copy on the entry) drops that entry only."""
    entries = json.loads(_api_with(summary=["not", "text"]))
    entries[1]["paper"]["title"] = 42
    entries[1]["title"] = None
    dump = parse_dump(json.dumps(entries).encode(), "d.json")
    assert [p.title[:4] for p in dump.papers] == ["Rati"]
    assert dump.skipped[0].startswith("entry 0: dropped, no usable abstract: paper.summary ignored")
    assert dump.skipped[1].startswith("entry 1: dropped, expected a non-empty 'paper.title'")


def test_controls_go_from_every_field_and_title_wraps_become_spaces() -> None:
    """C0/C1 controls and DEL leave every field; a title's breaks become spaces, an abstract's become LF."""
    data = _api_with(
        title="A\u2028wrapped\x85title\twith\x7f\x9b junk",
        summary="Line one\x85line two\u2029three\tfour\x1b.",
        authors=[{"name": "Ada\x00 Love\nlace"}],
        organization={"name": "org\x01", "fullname": "Org\r\nName"},
    )
    paper = parse_dump(data, "c.json").papers[0]
    assert paper.title == "A wrapped title with junk"
    assert paper.abstract == "Line one\nline two\nthree\tfour."
    assert paper.authors == ("Ada Love lace",) and (paper.organization, paper.org_handle) == ("Org Name", "org")


def test_numbers_too_long_to_convert_are_one_ignored_field() -> None:
    """A 5,000-digit count (more than int() converts) is dropped with a note, not the whole dump."""
    text = (FIXTURES / "orgs" / "api_2026-04-16.json").read_text(encoding="utf-8")
    dump = parse_dump(text.replace('"upvotes": 6', '"upvotes": ' + "9" * 5000, 1).encode(), "n.json")
    assert len(dump.papers) == 3 and dump.papers[0].upvotes is None
    assert any("paper.upvotes ignored" in note for note in dump.skipped)
    seed = SEEDS[1].read_text(encoding="utf-8")
    dump = parse_dump(re.sub(r"• \d+ authors", "• " + "9" * 5000 + " authors", seed, count=1).encode(), "n.txt")
    assert any("n_authors ignored (out of range)" in note for note in dump.skipped)


def test_utf16_dump_is_refused_with_its_encoding_named() -> None:
    """A dump saved as UTF-16 (with or without a BOM) is named as such, with a hint to convert it."""
    text = (FIXTURES / "orgs" / "api_2026-04-16.json").read_text(encoding="utf-8")
    for encoding in ("utf-16", "utf-16-le", "utf-32"):
        with pytest.raises(DumpError, match=r"UTF-(16|32) encoded") as info:
            parse_dump(text.encode(encoding), "w.json")
        assert "iconv" in info.value.hint
