"""Fuzz corpus for dump ingest (issue 12): ~1,300 malformed dumps generated at test time from the project's own
fixtures (the five text scrapes, the API JSON and the saved HTML page under tests/fixtures/orgs/), each fed to
the real `digest ingest --json` entry point in-process against a copy of a populated store.

For every case: the dump is ingested or refused with a one-line error naming the file (never "unexpected",
never a traceback); the JSON report parses, also on refusal; a refusal leaves the store byte-for-byte (or at
least row-for-row) unchanged; what is stored is clean text (no NUL, lone surrogate, C0/C1 control other than
LF and tab in abstracts, no Python repr of a non-string value) and counts are integers in [0, 2**53).

Deterministic: every case draws from its own `random.Random(case id)`. The oracle reads the fixtures with
its own small regexes and splices raw JSON text itself; it does not call the readers it checks.
"""

from __future__ import annotations

import html
import json
import os
import random
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, SEEDS

from digest import sources, store
from digest.app.cli import main
from digest.errors import DumpError

API_FILE = FIXTURES / "orgs" / "api_2026-04-16.json"
HTML_FILE = FIXTURES / "orgs" / "page_2026-04-16.html"
TEXT_BASES = [f"text{i}" for i in range(len(SEEDS))]
JSON_BASES = ["api", "html"]
ALL_BASES = [*TEXT_BASES, *JSON_BASES]
MAX_COUNT = 2**53
SENTINEL = "__FUZZ_VALUE__"


def _base(name: str) -> bytes:
    if name == "api":
        return API_FILE.read_bytes()
    if name == "html":
        return HTML_FILE.read_bytes()
    return SEEDS[int(name[4:])].read_bytes()


# ------------------------------------------------------------------------------------------ JSON splicing

_PROPS = re.compile(r'data-props="([^"]*)"')


def _entries(base: str) -> tuple[Any, Callable[[str], bytes]]:
    """The base's JSON document (API list or HTML data-props object) and a function turning JSON text back
    into a whole dump of that base."""
    if base == "api":
        return json.loads(API_FILE.read_text(encoding="utf-8")), lambda text: text.encode("utf-8")
    page = HTML_FILE.read_text(encoding="utf-8")
    match = _PROPS.search(page)
    assert match, "the HTML fixture has a data-props attribute"
    props = json.loads(html.unescape(match.group(1)))

    def wrap(text: str) -> bytes:
        return (page[: match.start(1)] + html.escape(text, quote=True) + page[match.end(1) :]).encode("utf-8")

    return props, wrap


def _listing(doc: Any, base: str) -> list[Any]:
    return doc if base == "api" else doc["dailyPapers"]


def _splice(base: str, mutate: Callable[[Any], None], raw: str | None = None) -> bytes:
    """Apply ``mutate`` to the base's JSON; a SENTINEL string it leaves behind becomes the raw JSON text
    ``raw`` (deep nesting, 5,000-digit numbers, lone surrogate escapes: things json.dumps cannot write)."""
    doc, wrap = _entries(base)
    mutate(doc)
    text = json.dumps(doc, ensure_ascii=False)
    if raw is not None:
        assert f'"{SENTINEL}"' in text
        text = text.replace(f'"{SENTINEL}"', raw)
    return wrap(text)


# Where a value goes: a dotted path from an entry ("paper.organization.name"), or the entry itself.
FIELD_PATHS = [
    "entry",
    "paper",
    "paper.id",
    "paper.title",
    "paper.summary",
    "paper.authors",
    "paper.authors.0",
    "paper.authors.0.name",
    "paper.publishedAt",
    "paper.upvotes",
    "paper.projectPage",
    "paper.githubRepo",
    "paper.organization",
    "paper.organization.name",
    "paper.organization.fullname",
    "title",
    "summary",
    "publishedAt",
    "organization",
]
STRING_PATHS = [
    "paper.title",
    "paper.summary",
    "paper.id",
    "paper.authors.0.name",
    "paper.publishedAt",
    "paper.projectPage",
    "paper.organization",
    "paper.organization.name",
    "paper.organization.fullname",
    "title",
]
WRONG_VALUES: list[Any] = [None, True, False, 0, -1, 1.5, 2**70, "", "text", "{'a': 1}", [], [1, "x"], {}, {"a": 1}]


def _put(entry_list: list[Any], index: int, path: str, value: Any) -> None:
    if path == "entry":
        entry_list[index] = value
        return
    node = entry_list[index]
    *parents, last = path.split(".")
    for part in parents:
        if isinstance(node, list):
            node = node[int(part)]
        else:
            node = node.setdefault(part, {}) if not isinstance(node.get(part), (dict, list)) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def _wrong_type_expected(path: str, value: Any) -> bool:
    """True when ``value`` is of the wrong JSON type for ``path`` (so the report must say so)."""
    if value is None:
        return False
    if path in ("entry", "paper"):
        return not isinstance(value, dict)
    if path == "paper.authors":
        return not isinstance(value, list)
    if path == "paper.authors.0":
        return not isinstance(value, (dict, str))
    if path == "paper.upvotes":
        return not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < MAX_COUNT
    if path in ("paper.organization", "organization"):
        return not isinstance(value, (dict, str))
    return not isinstance(value, str)


def _needle(path: str) -> str:
    if path == "entry":
        return "expected an object"
    if path == "paper":
        return "'paper'"
    if path.startswith("paper.authors"):
        return "paper.authors"
    return path


# ------------------------------------------------------------------------------------------ case builders

SPECIALS = ["\x00", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"]
ENCODINGS = ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1", "cp1252", "utf-8-sig"]
SURROGATES = [r"\ud800", r"\udfff", r"x\udbff\udbffy", r"A study of \ude00 text"]
HUGE_JSON = [str(2**64), str(2**64 + 1), str(-(2**64)), "1" + "0" * 30, "9" * 4000, "9" * 5000, "1e400", "-1e400"]
HUGE_TEXT = [str(2**64), "1" + "0" * 30, "9" * 5000]
JUNK = [
    b"HTTP/2 200\r\ncontent-type: text/html; charset=utf-8\r\nx-request-id: 1\r\n\r\n",
    b" " * 5000 + b"\n" * 300,
    b"\xef\xbb\xbf",
    b"<?xml version='1.0' encoding='utf-8'?>\n",
    b"<!-- saved from url=(0014)about:internet -->\n",
    b"Daily Papers\n\n",
    b"\xff\xfe garbage",
    b"[",
    b"\x1b[0m\x07",
]
BLANK = [b"", b" ", b"\n" * 1000, b"\r\n" * 500, b"\t \t", b"\xef\xbb\xbf", b"\xef\xbb\xbf  \n",
         "\u2028\u2029".encode(), b"\x0b\x0c", "\u00a0".encode() * 10]  # fmt: skip
_AUTHORS = re.compile(rb"^[ \t]*\xe2\x80\xa2 ?\d+ authors?[ \t\r]*$", re.M)
_MONTH = rb"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_DATE_UPVOTES = re.compile(rb"^" + _MONTH + rb" \d{1,2}(?:, \d{4})? (\d+)[ \t\r]*$", re.M)


def _truncate(base: str, rng: random.Random) -> bytes:
    data = _base(base)
    return data[: rng.choice([rng.randrange(1, 300), rng.randrange(1, len(data)), len(data) - rng.randrange(1, 300)])]


def _flip(base: str, rng: random.Random) -> bytes:
    data = bytearray(_base(base))
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def _insert(base: str, rng: random.Random, char: str) -> bytes:
    text = _base(base).decode("utf-8")
    at = rng.randrange(len(text))
    return (text[:at] + char * rng.randint(1, 3) + text[at:]).encode("utf-8")


def _escaped_special(base: str, rng: random.Random, char: str) -> bytes:
    path = rng.choice(STRING_PATHS)

    def mutate(doc: Any) -> None:
        entries = _listing(doc, base)
        _put(entries, rng.randrange(len(entries)), path, f"Before{char}after {char}\r\n x")

    return _splice(base, mutate)


def _reencode(base: str, encoding: str) -> bytes:
    return _base(base).decode("utf-8").encode(encoding, "replace")


def _wrong_type(base: str, rng: random.Random, path: str, value: Any, everywhere: bool) -> bytes:
    def mutate(doc: Any) -> None:
        entries = _listing(doc, base)
        for index in range(len(entries)) if everywhere else [rng.randrange(len(entries))]:
            _put(entries, index, path, value)

    return _splice(base, mutate)


TOP_LEVEL = ["5", "-1", "1.5", '"x"', "null", "true", "[]", "[1]", '["x"]', "[[]]", "[null]", "{}",
             '{"dailyPapers": 5}', '{"dailyPapers": {}}', '{"error": {"a": 1}}', '{"error": 5}']  # fmt: skip


def _top_level(base: str, raw: str) -> bytes:
    if base == "api":
        return raw.encode()

    def mutate(doc: Any) -> None:
        doc["dailyPapers"] = SENTINEL

    # In the page, the data-props object itself or its dailyPapers list is replaced.
    return _splice(base, mutate, raw) if raw.startswith(("[", "{")) else _entries(base)[1](raw)


def _raw_field(base: str, path: str, raw: str, rng: random.Random) -> bytes:
    def mutate(doc: Any) -> None:
        entries = _listing(doc, base)
        _put(entries, rng.randrange(len(entries)), path, SENTINEL)

    return _splice(base, mutate, raw)


def _nested(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    if kind == "object":
        return '{"a":' * depth + "1" + "}" * depth
    return "[" * depth  # unclosed


def _huge_text(base: str, rng: random.Random, digits: str, where: str) -> bytes:
    data = _base(base)
    if where == "authors":
        lines = list(_AUTHORS.finditer(data))
        line = rng.choice(lines)
        return data[: line.start()] + f"\u2022 {digits} authors".encode() + data[line.end() :]
    if where == "date":
        lines = list(_DATE_UPVOTES.finditer(data))
        line = rng.choice(lines)
        return data[: line.start(1)] + digits.encode() + data[line.end(1) :]
    # A 1 MB title line before the first title-like line.
    text = data.decode("utf-8")
    at = text.index("\n", len(text) // 3) + 1
    return (text[:at] + "Big " * 262144 + "\n\n" + text[at:]).encode("utf-8")


def _huge_json_string(base: str, rng: random.Random, path: str) -> bytes:
    def mutate(doc: Any) -> None:
        entries = _listing(doc, base)
        _put(entries, rng.randrange(len(entries)), path, "Large language models " * 47663)  # ~1 MB

    return _splice(base, mutate)


Builder = Callable[[random.Random], bytes]


def _cases() -> dict[str, Builder]:
    cases: dict[str, Builder] = {}

    def add(case_id: str, build: Builder) -> None:
        assert case_id not in cases
        cases[case_id] = build

    for base in ALL_BASES:
        for i in range(16):
            add(f"truncate-{base}-{i}", lambda rng, b=base: _truncate(b, rng))
            add(f"flip-{base}-{i}", lambda rng, b=base: _flip(b, rng))
        for char in SPECIALS:
            for i in range(2):
                add(f"insert-{base}-U+{ord(char):04X}-{i}", lambda rng, b=base, ch=char: _insert(b, rng, ch))
        for encoding in ENCODINGS:
            add(f"encode-{base}-{encoding}", lambda rng, b=base, e=encoding: _reencode(b, e))
    for base in JSON_BASES:
        for char in SPECIALS:
            for i in range(6):
                add(f"escaped-{base}-U+{ord(char):04X}-{i}", lambda rng, b=base, ch=char: _escaped_special(b, rng, ch))
        for path in FIELD_PATHS:
            for v, value in enumerate(WRONG_VALUES):
                add(f"type-{base}-{path}-{v}", lambda rng, b=base, p=path, x=value: _wrong_type(b, rng, p, x, False))
            for v in (1, 3, 8, 12):
                value = WRONG_VALUES[v]
                add(f"type-all-{base}-{path}-{v}", lambda rng, b=base, p=path, x=value: _wrong_type(b, rng, p, x, True))
        for t, raw in enumerate(TOP_LEVEL):
            add(f"top-{base}-{t}", lambda rng, b=base, r=raw: _top_level(b, r))
        for h, digits in enumerate(HUGE_JSON):
            add(f"huge-{base}-upvotes-{h}", lambda rng, b=base, d=digits: _raw_field(b, "paper.upvotes", d, rng))
        for path in ("paper.title", "paper.summary", "paper.authors.0.name", "paper.organization.fullname"):
            add(f"huge-{base}-{path}-1MB", lambda rng, b=base, p=path: _huge_json_string(b, rng, p))
        for depth in (1000, 10000, 100000):
            for kind in ("list", "object", "unclosed"):
                add(
                    f"deep-{base}-top-{kind}-{depth}", lambda rng, b=base, d=depth, k=kind: _top_level(b, _nested(d, k))
                )
            for path in ("entry", "paper", "paper.summary", "paper.title", "paper.authors", "paper.organization"):
                add(
                    f"deep-{base}-{path}-{depth}",
                    lambda rng, b=base, p=path, d=depth: _raw_field(b, p, _nested(d, "list"), rng),
                )
        for path in STRING_PATHS:
            for s, escape in enumerate(SURROGATES):
                add(
                    f"surrogate-{base}-{path}-{s}",
                    lambda rng, b=base, p=path, e=escape: _raw_field(b, p, f'"{e}"', rng),
                )
    for base in ("text1", "text2"):  # the two scrapes with "• N authors" and dated upvote lines
        for h, digits in enumerate(HUGE_TEXT):
            for where in ("authors", "date"):
                add(f"huge-{base}-{where}-{h}", lambda rng, b=base, d=digits, w=where: _huge_text(b, rng, d, w))
    for base in TEXT_BASES:
        add(f"huge-{base}-title-1MB", lambda rng, b=base: _huge_text(b, rng, "", "title"))
    for j, junk in enumerate(JUNK):
        add(f"junk-html-{j}", lambda rng, x=junk: x + HTML_FILE.read_bytes())
    for j in range(6):
        add(
            f"junk-html-random-{j}",
            lambda rng: bytes(rng.randrange(1, 256) for _ in range(rng.randrange(1, 3000))) + HTML_FILE.read_bytes(),
        )
    for j, blank in enumerate(BLANK):
        add(f"blank-{j}", lambda rng, x=blank: x)
    return cases


CASES = _cases()


# ------------------------------------------------------------------------------------------ the oracle

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
_BAD_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")
_BAD_ABSTRACT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")
_TEXT_COLUMNS = (
    "key", "arxiv_id", "title", "organization", "org_handle", "published_text", "project_page", "github_repo",
    "ai_summary", "thumbnail",
)  # fmt: skip


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder for the cases, on tmpfs when there is one: each case commits to SQLite, and an fsync per case
    on a real disk made the corpus take ~45 s instead of ~12 s (the code under test is the same)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        folder = Path(tempfile.mkdtemp(prefix="digest-fuzz-", dir=shm))
        yield folder
        shutil.rmtree(folder, ignore_errors=True)
    else:
        yield tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def template(work: Path) -> Path:
    """A store holding the API fixture and one text scrape: refusals must leave existing rows alone too."""
    path = work / "template.db"
    conn = store.open_store(path)
    for dump in (API_FILE, SEEDS[1]):
        store.ingest(conn, sources.read_dump(dump), now=NOW)
    conn.close()
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    return path


def _logical(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def _ingest(db: Path, target: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict[str, Any]], str]:
    code = main(["--store", str(db), "ingest", "--json", str(target)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "unexpected" not in out + err and "report the traceback" not in err
    try:
        reports = json.loads(out)
    except json.JSONDecodeError:
        pytest.fail(f"--json printed no JSON report: {out[:300]!r} / {err[:300]!r}")
    assert isinstance(reports, list)
    return code, reports, err


def _check_store(db: Path, raw: bytes) -> None:
    """Every stored text field is clean text; counts are integers in range; no repr of a non-string."""
    data = html.unescape(raw.decode("utf-8", "replace")).encode()  # the dump's text as its reader sees it
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(
            f"SELECT {', '.join(_TEXT_COLUMNS)}, abstract, authors, upvotes, n_authors, "
            "typeof(upvotes) AS t_up, typeof(n_authors) AS t_n FROM papers"
        ).fetchall()
        for row in rows:
            texts = [row[c] for c in _TEXT_COLUMNS if row[c] is not None]
            authors = json.loads(row["authors"])
            assert isinstance(authors, list) and all(isinstance(a, str) for a in authors)
            assert isinstance(row["title"], str) and row["title"].strip()
            for text in [*texts, *authors]:
                assert isinstance(text, str) and not _BAD_ONE_LINE.search(text), repr(text[:200])
            assert isinstance(row["abstract"], str) and not _BAD_ABSTRACT.search(row["abstract"])
            for text in [*texts, *authors, row["abstract"]]:
                assert "{'" not in text or b"{'" in data, repr(text[:200])
                assert "['" not in text or b"['" in data, repr(text[:200])
            for text in (row["organization"], row["org_handle"], *authors):
                assert text not in ("True", "False", "None") or text.encode() in data
            for count, kind in ((row["upvotes"], row["t_up"]), (row["n_authors"], row["t_n"])):
                assert kind in ("integer", "null") and (count is None or 0 <= count < MAX_COUNT)
        for (skipped,) in conn.execute("SELECT skipped FROM dumps"):
            assert all(isinstance(note, str) and "\n" not in note for note in json.loads(skipped))
    finally:
        conn.close()


def _check_one(
    folder: Path, template: Path, capsys: pytest.CaptureFixture[str], target: Path, data: bytes
) -> dict[str, Any]:
    db = folder / "store.db"
    shutil.copyfile(template, db)
    before_bytes = db.read_bytes()
    code, reports, _ = _ingest(db, target, capsys)
    assert reports, "one report per dump"
    refused = [r for r in reports if ("error" in r)]
    for report in refused:
        assert report["error"] and "\n" not in report["error"] and report["hint"]
        assert report["name"] in report["error"], report["error"]  # the file is named
    if refused:
        assert code == 1
    else:
        assert code == 0
    if len(refused) == len(reports):
        if db.read_bytes() != before_bytes:  # the store file may be rewritten in place; its rows must not
            assert _logical(db) == _logical(template)
    else:
        _check_store(db, data)
        for report in reports:
            if "error" not in report:
                assert report["found"] >= 1 and report["new"] + report["seen"] == report["found"]
                assert all("\n" not in note for note in report["skipped"])
    return reports[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_fuzzed_dump_is_ingested_or_refused_cleanly(
    work: Path, template: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    """Refused with a one-line error naming the file and the store unchanged, or ingested as clean data."""
    data = CASES[case](random.Random(case))
    target = work / f"dump-{case[:80]}.dat"
    target.write_bytes(data)
    try:
        report = _check_one(work, template, capsys, target, data)
    finally:
        target.unlink()
    if case.startswith("type-") and "error" not in report:
        # A field of the wrong type is ignored with a note naming it (the entry kept, or dropped with a note).
        path, value = case.split("-")[-2], WRONG_VALUES[int(case.split("-")[-1])]
        if _wrong_type_expected(path, value):
            assert any(_needle(path) in note for note in report["skipped"]), report["skipped"]
    expected = _expected(case, data)
    if expected == "ingested":
        assert "error" not in report, report["error"]
    elif expected is not None:
        assert "error" in report and expected in report["error"], report


def _expected(case: str, data: bytes) -> str | None:
    """What a case must come to where the answer is known: "ingested", or a word of the refusal; else None."""
    kind, base = case.split("-")[:2]
    if kind in ("huge", "surrogate", "escaped"):
        return "ingested"  # one field is absurd or mangled: it is ignored or cleaned, the rest is sound
    if kind == "insert":
        if "U+0000" in case:
            return "binary"
        return "ingested" if base.startswith("text") else None  # raw controls inside JSON strings are invalid
    if kind in ("top", "blank"):
        return ""  # refused, whatever the words
    if kind == "encode":
        encoding = case.split("-", 2)[2]
        if encoding.startswith(("utf-16", "utf-32")):
            return encoding[:6].upper()
        if encoding == "utf-8-sig" or data.isascii():
            return "ingested"
        return "not valid UTF-8"
    if kind == "deep" and "-top-" in case:
        return ""
    if kind == "junk" and case in ("junk-html-0", "junk-html-1", "junk-html-2", "junk-html-3", "junk-html-4"):
        return "ingested"  # HTTP headers, whitespace, a BOM, an XML prolog or a comment before the page
    return None


def test_the_corpus_covers_every_class() -> None:
    """Several hundred to ~1,500 cases, every class of issue 12 present."""
    classes = {case.split("-")[0] for case in CASES}
    assert classes == {"truncate", "flip", "insert", "encode", "escaped", "type", "top", "huge", "deep", "surrogate",
                       "junk", "blank"}  # fmt: skip
    assert 500 <= len(CASES) <= 1500


# ------------------------------------------------------------------------------------------ the file system


def test_a_folder_named_directly_is_refused_by_the_reader(tmp_path: Path) -> None:
    """read_dump on a folder refuses it by name (the CLI expands folders; the reader does not)."""
    with pytest.raises(DumpError) as info:
        sources.read_dump(tmp_path)
    assert str(tmp_path) in str(info.value) and "folder" in str(info.value)


def test_a_folder_of_hostile_files_reports_each(
    tmp_path: Path, template: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder with a symlink loop, a dangling link, a subfolder, an empty file and a good dump: the good dump
    is ingested, the empty one refused by name, the rest are not dump files and are passed over."""
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "loop").symlink_to(folder / "loop")
    (folder / "dangling").symlink_to(folder / "missing")
    (folder / "sub").mkdir()
    (folder / "a-empty.txt").write_bytes(b"")
    shutil.copyfile(SEEDS[0], folder / "b-good.txt")
    db = tmp_path / "store.db"
    shutil.copyfile(template, db)
    code, reports, _ = _ingest(db, folder, capsys)
    assert code == 1 and [Path(r["name"]).name for r in reports] == ["a-empty.txt", "b-good.txt"]
    assert ("error" in reports[0]) and "empty" in reports[0]["error"] and "error" not in reports[1]


@pytest.mark.parametrize("kind", ["symlink loop", "dangling symlink", "folder", "missing", "unreadable"])
def test_a_path_that_cannot_be_read_is_refused_by_name(
    tmp_path: Path, template: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """Named directly, a path that cannot be read is one refused report; the store is unchanged."""
    target = tmp_path / "dump.txt"
    if kind == "symlink loop":
        target.symlink_to(target)
    elif kind == "dangling symlink":
        target.symlink_to(tmp_path / "gone")
    elif kind == "folder":
        target.mkdir()
        (target / "sub").mkdir()  # a folder holding no dump file: nothing to report, nothing refused
    elif kind == "unreadable":
        if os.geteuid() == 0:
            pytest.skip("root reads a chmod 000 file")
        shutil.copyfile(SEEDS[0], target)
        target.chmod(0)
    db = tmp_path / "store.db"
    shutil.copyfile(template, db)
    code, reports, _ = _ingest(db, target, capsys)
    if kind == "folder":
        assert code == 0 and reports == []
        return
    [report] = reports
    assert code == 1 and ("error" in report) and str(target) in report["error"] and "\n" not in report["error"]
    assert _logical(db) == _logical(template)
