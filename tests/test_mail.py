"""Composing digest messages: standards-correct, parse back identically, no header injection."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import random
import re
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from digest.deliver.email import (
    MailSettings,
    compose,
    message_id,
    unsubscribe_mailto_url,
    unsubscribe_token,
    unsubscribe_url,
    validate_address,
    verify_unsubscribe_token,
)
from digest.errors import ConfigError, DeliveryError
from digest.models import RenderedEmail

FIXTURES = Path(__file__).parent / "fixtures"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
SECRET = b"s" * 32
INJECTIONS = [
    "Digest\r\nBcc: x@evil.example",
    "Digest\nBcc: x@evil.example",
    "Digest\n",
    "Digest =?UTF-8?Q?=0A?=Bcc: x@evil.example",
    "Digest\u2028Bcc: x@evil.example",
    "Digest\x85Bcc: x@evil.example",
]


def settings(**overrides: object) -> MailSettings:
    """Mail settings with both unsubscribe methods, overridable per test."""
    values: dict[str, object] = {
        "sender": "digest@example.org",
        "sender_name": "Paper Digest",
        "list_id": "daily.digest.example.org",
        "domain": "digest.example.org",
        "secret": SECRET,
        "unsubscribe_mailto": "unsubscribe@example.org",
        "unsubscribe_base_url": "https://digest.example.org",
    }
    values.update(overrides)
    return MailSettings(**values)  # type: ignore[arg-type]


def rendered(**overrides: object) -> RenderedEmail:
    """A small rendered digest, overridable per test."""
    values: dict[str, object] = {
        "user": "alice",
        "to": "alice@example.com",
        "subject": "Paper digest — 2026-11-23 (2 new)",
        "text": "# Paper digest\n\n- [A paper](https://arxiv.org/abs/2405.01234)\n",
        "html": '<html lang="en"><body><p>A paper</p></body></html>\n',
        "period": "2026-11-23",
    }
    values.update(overrides)
    return RenderedEmail(**values)  # type: ignore[arg-type]


def parse(data: bytes) -> EmailMessage:
    """Parse composed bytes back the way a modern reader would."""
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def bodies(msg: EmailMessage) -> tuple[str, str]:
    """The text/plain and text/html contents, with the wire's CRLF turned back into LF."""
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")


def raw_header(data: bytes, name: str) -> str:
    """The raw (still folded) header block line(s) for ``name``."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    match = re.search(rf"^{name}:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*", head, re.MULTILINE | re.IGNORECASE)
    assert match, name
    return match.group(0)


def test_required_headers_appear_exactly_once() -> None:
    """From, To, Subject, Date, Message-ID and MIME-Version each appear exactly once."""
    msg = parse(compose(rendered(), settings(), now=NOW))
    for name in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version"):
        assert len(msg.get_all(name, [])) == 1, name


def test_headers_come_back_as_given() -> None:
    """From, To, Subject and Date parse back to the configured and rendered values."""
    msg = parse(compose(rendered(), settings(), now=NOW))
    assert msg["From"].addresses[0].display_name == "Paper Digest"
    assert msg["From"].addresses[0].addr_spec == "digest@example.org"
    assert msg["To"] == "alice@example.com"
    assert msg["Subject"] == "Paper digest — 2026-11-23 (2 new)"
    assert parsedate_to_datetime(msg["Date"]) == NOW


def test_date_keeps_the_time_zone() -> None:
    """A non-UTC `now` is written with its own offset and parses back aware."""
    tz = timezone(timedelta(hours=-5))
    date = parsedate_to_datetime(parse(compose(rendered(), settings(), now=NOW.astimezone(tz)))["Date"])
    assert date.tzinfo is not None and date.utcoffset() == timedelta(hours=-5) and date == NOW


def test_naive_now_is_refused() -> None:
    """compose() refuses a naive datetime instead of writing an ambiguous Date."""
    with pytest.raises(ValueError, match="timezone-aware"):
        compose(rendered(), settings(), now=datetime(2026, 11, 23, 7))


def test_no_header_has_defects() -> None:
    """The stdlib parser finds no defect in any header or part."""
    msg = parse(compose(rendered(subject="Ωmega — τ and ζ " * 8), settings(sender_name="Ωmega Digest"), now=NOW))
    for part in msg.walk():
        assert not part.defects
        for name, value in part.items():
            assert not getattr(value, "defects", ()), name


def test_message_id_is_bracketed_and_on_our_domain() -> None:
    """Message-ID is <left@digest.example.org> with no spaces or extra brackets."""
    msg = parse(compose(rendered(), settings(), now=NOW))
    assert re.fullmatch(r"<[^<>@\s]+@digest\.example\.org>", msg["Message-ID"])


def test_message_id_is_stable_for_a_user_and_period() -> None:
    """Retries and re-renders of (user, period) reuse the Message-ID, whatever the time or content."""
    first = parse(compose(rendered(), settings(), now=NOW))["Message-ID"]
    again = parse(compose(rendered(text="changed", subject="other"), settings(), now=NOW + timedelta(hours=3)))
    assert again["Message-ID"] == first == message_id("alice", "2026-11-23", settings())


def test_message_id_differs_across_users_periods_and_secrets() -> None:
    """Another user, period or secret gives another Message-ID."""
    ids = {
        message_id("alice", "2026-11-23", settings()),
        message_id("bob", "2026-11-23", settings()),
        message_id("alice", "2026-11-24", settings()),
        message_id("alice", "2026-11-23", settings(secret=b"t" * 32)),
        message_id("alice2026-11-23", "", settings()),
    }
    assert len(ids) == 5


def test_same_input_gives_identical_bytes() -> None:
    """Composing twice gives byte-identical messages (a resend is the same message)."""
    assert compose(rendered(), settings(), now=NOW) == compose(rendered(), settings(), now=NOW)


def test_structure_is_alternative_plain_in_quoted_printable_then_html_in_base64() -> None:
    """multipart/alternative with exactly text/plain (UTF-8 quoted-printable) then text/html (UTF-8 base64)."""
    msg = parse(compose(rendered(), settings(), now=NOW))
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert [p.get_content_charset() for p in parts] == ["utf-8", "utf-8"]
    assert [p["Content-Transfer-Encoding"] for p in parts] == ["quoted-printable", "base64"]


HTML_BODIES = {
    "plain": "<p>a</p>\n",
    "crlf-and-cr": "<p>a</p>\r\n<p>b</p>\r",
    "long-non-ascii": "<p>" + "é😀" * 3000 + "</p>",
    "no-final-newline": "<p>a</p>",
}


@pytest.mark.parametrize("name", sorted(HTML_BODIES))
def test_html_part_is_base64_in_76_character_crlf_lines(name: str) -> None:
    """The HTML part decodes to the HTML with CRLF line ends, in base64 lines of at most 76 characters."""
    html = HTML_BODIES[name]
    data = compose(rendered(html=html), settings(), now=NOW)
    body = data.split(b"Content-Transfer-Encoding: base64\r\n\r\n", 1)[1].split(b"\r\n--", 1)[0]
    assert all(len(line) <= 76 for line in body.split(b"\r\n"))
    expected = html.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n").encode()
    assert base64.b64decode(body) == expected
    lf = html.replace("\r\n", "\n").replace("\r", "\n")
    assert parse(data).get_body(("html",)).get_content().replace("\r\n", "\n") == lf


BODIES = {
    "ascii": "Hello world.\nSecond line\n",
    "non-ascii": "Ωmega τ-ζ café — “quotes” 😀 漢字 $\\nabla^2$DFT\n",
    "long-line": "x" * 5000 + "\n" + "word " * 400 + "\n",
    "dots": ".\n.leading dot\n..two dots\n" + "." + "a" * 300 + "\n",
    "from": "From here on\nFrom\nFrom the start\n>From quoted\n",
    "trailing-space": "spaces   \ntab\t\nboth \t \n \n",
    "equals-and-controls": "a=b =3D =\n\x0b\x0c\x1b[31m\n<think>x</think> & \\$OneMillion\n",
    "no-final-newline": "last line without newline",
    "blank-lines": "\n\n\nmiddle\n\n\n",
    "empty-ish": " ",
}


@pytest.mark.parametrize("name", sorted(BODIES))
def test_bodies_parse_back_identical(name: str) -> None:
    """Text and HTML bodies parse back identical to the input (LF line ends) for awkward content."""
    body = BODIES[name]
    text, html = bodies(parse(compose(rendered(text=body, html="<p>" + body), settings(), now=NOW)))
    assert text == body
    assert html == "<p>" + body


@pytest.mark.parametrize("name", sorted(BODIES))
def test_no_line_exceeds_limits(name: str) -> None:
    """Header lines stay within 998 octets (78 here) and body lines within QP's 76."""
    body = BODIES[name]
    data = compose(rendered(text=body, html=body, subject="S " * 300), settings(), now=NOW)
    head, rest = data.split(b"\r\n\r\n", 1)
    assert max(len(line) for line in head.split(b"\r\n")) <= 80
    assert max(len(line) for line in rest.split(b"\r\n")) <= 76
    assert b"\n" not in data.replace(b"\r\n", b"") and b"\r" not in data.replace(b"\r\n", b"")


def test_random_awkward_bodies_round_trip_within_limits() -> None:
    """Random mixes of dots, "From ", "=", blanks and non-ASCII round-trip; QP lines stay within 76, none ends blank."""
    rng = random.Random(1)
    atoms = [".", "From ", "=", " ", "\t", "a", "é", "τ", "—", "\n", "x" * 40, "x" * 74, ". ", "=3D", "\u2028"]
    for _ in range(300):
        body = "".join(rng.choice(atoms) for _ in range(rng.randrange(1, 60)))
        data = compose(rendered(text=body, html=body), settings(), now=NOW)
        lines = data.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
        assert max(len(line) for line in lines) <= 76
        assert not any(line.startswith((b".", b"From ")) or line.endswith((b" ", b"\t")) for line in lines)
        assert bodies(parse(data)) == (body, body)


def test_no_body_line_starts_with_dot_or_from() -> None:
    """Lines starting with "." or "From " are escaped on the wire (safe from dot-stuffing and mbox)."""
    data = compose(rendered(text=BODIES["dots"] + BODIES["from"], html=BODIES["dots"]), settings(), now=NOW)
    for line in data.split(b"\r\n\r\n", 1)[1].split(b"\r\n"):
        assert not line.startswith((b".", b"From "))


def test_crlf_input_is_normalised() -> None:
    """CRLF and lone CR in a body become plain line breaks, never stray CRs."""
    text, _ = bodies(parse(compose(rendered(text="a\r\nb\rc\n"), settings(), now=NOW)))
    assert text == "a\nb\nc\n"


def test_seed_dump_text_parses_back_identical() -> None:
    """A real dump's text as a body (~140 KB, typographic characters) round-trips exactly."""
    body = (FIXTURES / "000_f4e371e0c0016fc2.txt").read_text(encoding="utf-8").replace("\r\n", "\n")
    text, html = bodies(parse(compose(rendered(text=body, html=body), settings(), now=NOW)))
    assert text == body and html == body


def test_corpus_titles_and_abstracts_parse_back_identical() -> None:
    """Titles and abstracts from the third-party API dumps (LaTeX, <think>, τ) round-trip exactly."""
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is not beside this checkout")
    pieces = []
    for path in sorted((CORPUS / "api_json").glob("*.json")):
        for entry in json.loads(path.read_text(encoding="utf-8")):
            paper = entry.get("paper", entry)
            pieces.append(f"## {paper.get('title', '')}\n\n{paper.get('summary', '')}\n")
    body = "\n".join(pieces)
    subject = "Digest: " + pieces[0].splitlines()[0]
    msg = parse(compose(rendered(text=body, html=body, subject=subject), settings(), now=NOW))
    assert bodies(msg) == (body, body)
    assert msg["Subject"] == " ".join(subject.split())


def test_single_part_when_only_text() -> None:
    """A text-only digest is a single text/plain part."""
    msg = parse(compose(rendered(html=""), settings(), now=NOW))
    assert msg.get_content_type() == "text/plain" and msg["Content-Transfer-Encoding"] == "quoted-printable"
    assert msg.get_content().replace("\r\n", "\n") == rendered().text


def test_ascii_subject_stays_readable() -> None:
    """A plain ASCII subject is written as is, not as encoded-words."""
    data = compose(rendered(subject="Paper digest 2026-11-23 (12 new)"), settings(), now=NOW)
    assert raw_header(data, "Subject") == "Subject: Paper digest 2026-11-23 (12 new)"


@pytest.mark.parametrize(
    "subject",
    [
        "Paper digest — 2026-11-23 (12 new)",
        "Ωmega " * 40,
        "word " * 60,
        "x" * 1200,
        "τ" + "y" * 300,
        "Digest =?utf-8?q?hello?= literal",
        "a?=b=?c _under_score_",
    ],
)
def test_subject_parses_back_identical(subject: str) -> None:
    """Long, non-ASCII and encoded-word-looking subjects come back exactly (spaces collapsed)."""
    msg = parse(compose(rendered(subject=subject), settings(), now=NOW))
    assert msg["Subject"] == " ".join(subject.split())


def _header_names(data: bytes) -> list[str]:
    return [name.lower() for name in parse(data)]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_subject_cannot_inject_headers(payload: str) -> None:
    """CR/LF, line separators and the CVE-2024-6923 encoded-word payload in a subject add no header."""
    baseline = _header_names(compose(rendered(), settings(), now=NOW))
    data = compose(rendered(subject=payload), settings(), now=NOW)
    msg = parse(data)
    assert _header_names(data) == baseline
    assert msg["Bcc"] is None and b"\r\nBcc:" not in data
    assert "\n" not in msg["Subject"] and "\r" not in msg["Subject"]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_user_name_cannot_inject_headers(payload: str) -> None:
    """A user name with line breaks or encoded-word tricks adds no header."""
    baseline = _header_names(compose(rendered(), settings(), now=NOW))
    data = compose(rendered(user=payload), settings(), now=NOW)
    assert _header_names(data) == baseline and parse(data)["Bcc"] is None


def test_display_name_cannot_inject_headers() -> None:
    """A sender display name carrying the encoded-word payload adds no header and decodes literally."""
    payload = "Digest =?UTF-8?Q?=0A?=Bcc: x@evil.example"
    baseline = _header_names(compose(rendered(), settings(), now=NOW))
    data = compose(rendered(), settings(sender_name=payload), now=NOW)
    msg = parse(data)
    assert _header_names(data) == baseline and msg["Bcc"] is None
    # Python's phrase parser keeps the folding space between encoded-words (RFC 2047 says drop it).
    assert msg["From"].addresses[0].display_name.replace(" ", "") == payload.replace(" ", "")


@pytest.mark.parametrize("payload", [p for p in INJECTIONS if "=?" not in p])
def test_display_name_with_line_break_is_a_config_error(payload: str) -> None:
    """A line break or control character in the configured sender name is refused when settings are built."""
    with pytest.raises(ConfigError, match="line break"):
        settings(sender_name=payload)


@pytest.mark.parametrize("name", ["Paper Digest — Ωmega", 'Digest "beta" (test), Inc.', "ASCII Digest"])
def test_display_name_parses_back(name: str) -> None:
    """Non-ASCII and special-character display names survive in From and List-Id."""
    msg = parse(compose(rendered(), settings(sender_name=name), now=NOW))
    assert msg["From"].addresses[0].display_name == name
    assert msg["List-Id"].endswith("<daily.digest.example.org>")


def test_list_unsubscribe_has_https_and_mailto_without_encoded_words() -> None:
    """List-Unsubscribe is <https://...>, <mailto:...>, never folded into encoded-words."""
    data = compose(rendered(), settings(), now=NOW)
    raw = raw_header(data, "List-Unsubscribe")
    assert "=?" not in raw
    value = re.sub(r"\r\n[ \t]", " ", raw).split(":", 1)[1].strip()
    assert re.fullmatch(r"<https://[^>\s]+>(,\s*<mailto:[^>\s]+>)?", value)
    token = unsubscribe_token("alice", SECRET)
    assert f"<https://digest.example.org/u/{token}>" in value
    assert parse(data)["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_long_base_url_still_avoids_encoded_words() -> None:
    """A long unsubscribe base URL is kept whole on its own line, with no encoded-words."""
    base = "https://digest.example.org/" + "p" * 120
    raw = raw_header(compose(rendered(), settings(unsubscribe_base_url=base), now=NOW), "List-Unsubscribe")
    assert "=?" not in raw and f"<{base}/u/" in raw


def test_mailto_only_has_no_one_click_header() -> None:
    """Without a base URL the header holds only the mailto URI and List-Unsubscribe-Post is absent."""
    msg = parse(compose(rendered(), settings(unsubscribe_base_url=None), now=NOW))
    assert re.fullmatch(r"<mailto:unsubscribe@example\.org\?subject=unsubscribe%20[\w-]{22}>", msg["List-Unsubscribe"])
    assert msg["List-Unsubscribe-Post"] is None


def test_list_id_and_auto_submitted_present() -> None:
    """List-Id carries the configured id and Auto-Submitted says auto-generated."""
    msg = parse(compose(rendered(), settings(), now=NOW))
    assert msg["List-Id"] == "Paper Digest <daily.digest.example.org>"
    assert msg["Auto-Submitted"] == "auto-generated"


def test_unsubscribe_token_is_short_and_url_safe() -> None:
    """The token is 22 URL-safe characters, per user, and depends on the secret."""
    token = unsubscribe_token("alice", SECRET)
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", token)
    assert token != unsubscribe_token("bob", SECRET) and token != unsubscribe_token("alice", b"t" * 32)


def test_verify_unsubscribe_token_finds_the_user() -> None:
    """verify_unsubscribe_token maps a genuine token to its user and rejects forged or foreign ones."""
    users = ["alice", "bob", "carol"]
    assert verify_unsubscribe_token(unsubscribe_token("bob", SECRET), users, SECRET) == "bob"
    assert verify_unsubscribe_token("A" * 22, users, SECRET) is None
    assert verify_unsubscribe_token(unsubscribe_token("bob", b"t" * 32), users, SECRET) is None
    assert verify_unsubscribe_token(unsubscribe_token("dave", SECRET), users, SECRET) is None


def test_unsubscribe_urls_match_header() -> None:
    """unsubscribe_url() and unsubscribe_mailto_url() (for body links) are the header's URIs, None when unset."""
    url, mailto = unsubscribe_url("alice", settings()), unsubscribe_mailto_url("alice", settings())
    assert parse(compose(rendered(), settings(), now=NOW))["List-Unsubscribe"] == f"<{url}>, <{mailto}>"
    assert unsubscribe_url("alice", settings(unsubscribe_base_url=None)) is None
    assert unsubscribe_mailto_url("alice", settings(unsubscribe_mailto=None)) is None


@pytest.mark.parametrize(
    "to", ["alice@example.com\r\nBcc: x@evil.example", "Alice <alice@example.com>", "a b@x.org", "é@x.org"]
)
def test_bad_recipient_is_refused(to: str) -> None:
    """A recipient that is not a bare ASCII address is refused with a DeliveryError and a hint."""
    with pytest.raises(DeliveryError) as info:
        compose(rendered(to=to), settings(), now=NOW)
    assert info.value.hint


def test_validate_address_accepts_and_normalises() -> None:
    """Plain addresses pass; an IDN domain comes back in punycode, the domain lower-cased."""
    assert validate_address("alice@example.com") == "alice@example.com"
    assert validate_address("alice@Example.COM") == "alice@example.com"
    assert validate_address("a@münchen.de") == "a@xn--mnchen-3ya.de"


@pytest.mark.parametrize(
    "text",
    [
        "Alice <alice@example.com>",
        " alice@example.com",
        "alice@example.com\r\n",
        "alice\r\n@example.com",
        "alice@example.com>\r\nRCPT TO:<evil@example.com",
        "a@b",
        "josé@example.com",
        "",
    ],
)
def test_validate_address_rejects_without_repair(text: str) -> None:
    """Display names, whitespace, control characters and non-ASCII local parts raise ConfigError, never repaired."""
    with pytest.raises(ConfigError) as info:
        validate_address(text)
    assert info.value.hint


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"unsubscribe_base_url": None, "unsubscribe_mailto": None}, "no unsubscribe"),
        ({"unsubscribe_base_url": "http://digest.example.org"}, "https"),
        ({"unsubscribe_base_url": "https://x.org/a b"}, "https"),
        ({"secret": b"short"}, "16 bytes"),
        ({"list_id": "not a list id"}, "list_id"),
        ({"domain": "bad_domain"}, "domain"),
        ({"sender": "not-an-address"}, "invalid email"),
        ({"sender": "digest@münchen.de"}, "not ASCII"),
    ],
)
def test_bad_mail_settings_are_config_errors(overrides: dict[str, object], match: str) -> None:
    """Settings that would produce a broken or unsubscribable message are refused at load time."""
    with pytest.raises(ConfigError, match=match):
        settings(**overrides)


def test_secret_is_not_in_repr() -> None:
    """The HMAC secret never shows up in repr() (and so not in logs)."""
    assert "ssss" not in repr(settings())


def test_matches_emailmessage_semantics() -> None:
    """Our bytes and an EmailMessage built from the same input parse to the same headers and bodies."""
    email_in = rendered(subject="Ωmega digest — 2026-11-23", text=BODIES["non-ascii"], html="<p>τ</p>\n")
    ours = parse(compose(email_in, settings(), now=NOW))
    ref = EmailMessage(policy=email.policy.SMTP)
    ref["Subject"] = email_in.subject
    ref["To"] = email_in.to
    ref.set_content(email_in.text, cte="quoted-printable")
    ref.add_alternative(email_in.html, subtype="html", cte="quoted-printable")
    theirs = parse(ref.as_bytes())
    assert ours["Subject"] == theirs["Subject"] and ours["To"] == theirs["To"]
    assert bodies(ours) == bodies(theirs)
