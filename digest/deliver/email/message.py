"""Build digest messages as RFC 5322 bytes by hand: fast, deterministic, injection-proof headers."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from functools import lru_cache

import email_validator

from digest.errors import ConfigError, DeliveryError
from digest.models import RenderedEmail

__all__ = [
    "MailSettings",
    "check_mail_settings",
    "compose",
    "message_id",
    "sanitize_header_text",
    "unsubscribe_mailto_url",
    "unsubscribe_token",
    "unsubscribe_url",
    "validate_address",
    "verify_unsubscribe_token",
]

# RFC 5322 §2.1.1: lines SHOULD stay within 78 characters and MUST stay within 998.
_SOFT_LIMIT = 78
_HARD_LIMIT = 998
_QP_LIMIT = 76  # RFC 2045 §6.7 rule 5

# C0, DEL, C1 and the Unicode line/paragraph separators: none may reach a header, where a parser
# could read them as a line break (the CVE-2024-6923 family).
_HEADER_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SPACES = re.compile(" {2,}")
# Characters that may stand for themselves inside a Q encoded-word in any header context
# (RFC 2047 §5 rule 3, the strictest of the three).
_Q_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
# RFC 5322 atext plus space: a display name made only of these needs no quoting or encoding.
_PHRASE_SAFE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")
_ASCII_ADDRESS = re.compile(r"[^\s@<>()\[\]\\,;:\"\x00-\x1f\x7f]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_DOT_ATOM_DOMAIN = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)
_URL_FORBIDDEN = re.compile(r"[\s<>,\"'\\\x00-\x1f\x7f]")
_PERIOD_SAFE = re.compile(r"[^A-Za-z0-9-]")


@dataclass(frozen=True, slots=True)
class MailSettings:
    """How digest messages are addressed and signed; built by the config module."""

    sender: str  # the From address, e.g. "digest@example.org"
    sender_name: str  # the From display name, e.g. "Paper Digest"
    list_id: str  # RFC 2919 list id, a dot-atom under a domain you own, e.g. "daily.digest.example.org"
    domain: str  # right-hand side of Message-IDs, e.g. "digest.example.org"
    secret: bytes = field(repr=False)  # keys the Message-ID and unsubscribe-token HMACs
    unsubscribe_mailto: str | None = None  # e.g. "unsubscribe@example.org"
    unsubscribe_base_url: str | None = None  # e.g. "https://digest.example.org"; links are <base>/u/<token>

    def __post_init__(self) -> None:
        check_mail_settings(self)


def check_mail_settings(settings: MailSettings) -> None:
    """Raise ConfigError when a mail setting would produce a malformed or undeliverable message."""
    for what, address in (("sender", settings.sender), ("unsubscribe_mailto", settings.unsubscribe_mailto)):
        if address is None:
            continue
        ascii_form = validate_address(address)
        if not address.isascii():
            raise ConfigError(f"mail {what} {address!r} is not ASCII", f"write it as {ascii_form!r}")
    if _HEADER_CONTROLS.search(settings.sender_name):
        raise ConfigError(
            f"mail sender name {settings.sender_name!r} contains a line break or control character",
            "write the display name on one line without control characters",
        )
    for what, value in (("list_id", settings.list_id), ("domain", settings.domain)):
        if not _DOT_ATOM_DOMAIN.fullmatch(value) or len(value) > 253:
            raise ConfigError(
                f"mail {what} {value!r} is not a domain-style identifier",
                'use dot-separated letters, digits and hyphens, e.g. "daily.digest.example.org"',
            )
    if len(settings.secret) < 16:
        raise ConfigError(
            "mail secret is shorter than 16 bytes",
            "generate one with `python -c 'import secrets; print(secrets.token_hex(32))'`",
        )
    base = settings.unsubscribe_base_url
    if base is not None and (
        not base.startswith("https://")
        or not base.isascii()
        or _URL_FORBIDDEN.search(base)
        or "?" in base
        or "#" in base
        or len(base) > 200
    ):
        raise ConfigError(
            f"unsubscribe base URL {base!r} is not a plain https URL",
            'use e.g. "https://digest.example.org" (https, ASCII, no spaces, query or fragment, <= 200 chars)',
        )
    if base is None and settings.unsubscribe_mailto is None:
        raise ConfigError(
            "no unsubscribe method configured",
            "set the unsubscribe base URL (one-click, required by Gmail/Yahoo for bulk mail) "
            "and/or the unsubscribe mailto address",
        )


def validate_address(text: str) -> str:
    """Return ``text`` as a checked ASCII address (IDN domains in punycode) or raise ConfigError."""
    try:
        result = email_validator.validate_email(text, check_deliverability=False, allow_smtputf8=True)
    except email_validator.EmailNotValidError as exc:
        raise ConfigError(
            f"invalid email address {text!r}: {exc}", "write a bare address such as user@example.org"
        ) from None
    if result.ascii_email is None:
        raise ConfigError(
            f"email address {text!r} has a non-ASCII local part",
            "such addresses need SMTPUTF8, which paper-digest does not use; give an ASCII address",
        )
    return result.ascii_email


def _hmac(secret: bytes, *parts: str) -> bytes:
    # Length-prefix each part so ("ab", "c") and ("a", "bc") can never collide.
    msg = b"".join(f"{len(p)}:".encode() + p.encode("utf-8", "surrogatepass") for p in parts)
    return hmac.new(secret, msg, hashlib.sha256).digest()


def unsubscribe_token(user: str, secret: bytes) -> str:
    """Return the short (22-char, URL-safe) unforgeable token identifying ``user`` in unsubscribe links."""
    return base64.urlsafe_b64encode(_hmac(secret, "unsubscribe", user)[:16]).rstrip(b"=").decode("ascii")


def verify_unsubscribe_token(token: str, users: Iterable[str], secret: bytes) -> str | None:
    """Return the user among ``users`` whose unsubscribe token is ``token``, else None."""
    found = None
    for user in users:
        # Compare every candidate in constant time; keep going so timing does not reveal the position.
        if hmac.compare_digest(unsubscribe_token(user, secret), token) and found is None:
            found = user
    return found


def unsubscribe_url(user: str, settings: MailSettings) -> str | None:
    """Return the one-click https unsubscribe URL for ``user`` (for the body link too), or None."""
    if settings.unsubscribe_base_url is None:
        return None
    return f"{settings.unsubscribe_base_url.rstrip('/')}/u/{unsubscribe_token(user, settings.secret)}"


def unsubscribe_mailto_url(user: str, settings: MailSettings) -> str | None:
    """Return the mailto: unsubscribe URI for ``user`` (the one in List-Unsubscribe), or None."""
    if settings.unsubscribe_mailto is None:
        return None
    return f"mailto:{settings.unsubscribe_mailto}?subject=unsubscribe%20{unsubscribe_token(user, settings.secret)}"


def message_id(user: str, period: str, settings: MailSettings) -> str:
    """Return the Message-ID for (user, period): stable across retries, unguessable without the secret."""
    digest = base64.b32encode(_hmac(settings.secret, "message-id", user, period)[:16]).decode("ascii")
    slug = _PERIOD_SAFE.sub("", period)[:32] or "digest"
    return f"<digest.{slug}.{digest.rstrip('=').lower()}@{settings.domain}>"


def sanitize_header_text(text: str) -> str:
    """Return ``text`` on one line: control characters and line separators become single spaces."""
    return _SPACES.sub(" ", _HEADER_CONTROLS.sub(" ", text)).strip(" ")


def _q_chunks(text: str, first_room: int) -> list[str]:
    """Split ``text`` into Q encoded-words, never splitting a character, the first fitting ``first_room``."""
    words: list[str] = []
    payload: list[str] = []
    size = 0
    room = first_room
    for char in text:
        if char in _Q_SAFE:
            piece = char
        elif char == " ":
            piece = "_"
        else:
            piece = "".join(f"={b:02X}" for b in char.encode("utf-8", "surrogatepass"))
        if payload and size + len(piece) > room:
            words.append("=?utf-8?q?" + "".join(payload) + "?=")
            payload, size, room = [], 0, _SOFT_LIMIT - 1 - 12
        payload.append(piece)
        size += len(piece)
    if payload or not words:
        words.append("=?utf-8?q?" + "".join(payload) + "?=")
    return words


def _encoded_header(name: str, text: str) -> str:
    """Fold ``text`` as RFC 2047 encoded-words, one per line, each line within 78 characters."""
    first_room = max(_SOFT_LIMIT - len(name) - 2 - 12, 8)
    return f"{name}: " + "\r\n ".join(_q_chunks(text, first_room))


def _folded_ascii(name: str, text: str) -> str | None:
    """Fold plain ASCII ``text`` at spaces; None when a word is too long for one line."""
    lines: list[str] = []
    line = f"{name}:"
    for i, word in enumerate(text.split(" ")):
        if i and len(line) + 1 + len(word) > _SOFT_LIMIT:
            lines.append(line)
            line = ""
        line += " " + word
    lines.append(line)
    if any(len(line) > _HARD_LIMIT for line in lines):
        return None
    return "\r\n".join(lines)


def _unstructured_header(name: str, text: str) -> str:
    """Return a complete folded header line (no trailing CRLF) for free text from a dump or config."""
    text = sanitize_header_text(text)
    # "=?" in a raw header could be decoded by a reader as an encoded-word (the CVE-2024-6923 payload):
    # encode the whole value so every "=" and "?" is escaped.
    if text.isascii() and "=?" not in text:
        folded = _folded_ascii(name, text)
        if folded is not None:
            return folded
    return _encoded_header(name, text)


def _mailbox_header(name: str, display_name: str, address: str) -> str:
    """Return ``Name: display <address>`` with the display name raw when safe, else encoded-words."""
    display_name = sanitize_header_text(display_name)
    if not display_name:
        return f"{name}: {address}"
    if _PHRASE_SAFE.fullmatch(display_name) and "=?" not in display_name:
        phrase = display_name
    elif display_name.isascii() and "=?" not in display_name and len(display_name) < 200:
        phrase = '"' + display_name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    else:
        words = _q_chunks(display_name, max(_SOFT_LIMIT - len(name) - 2 - 12, 8))
        return f"{name}: " + "\r\n ".join(words) + f"\r\n <{address}>"
    line = f"{name}: {phrase} <{address}>"
    if len(line) > _SOFT_LIMIT:
        return f"{name}: {phrase}\r\n <{address}>"
    return line


@lru_cache(maxsize=64)
def _settings_headers(settings: MailSettings) -> tuple[bytes, bytes]:
    """The header lines shared by every message for these settings: (From, List-Id + fixed tail)."""
    from_line = _mailbox_header("From", settings.sender_name, settings.sender)
    list_name = sanitize_header_text(settings.sender_name)
    if list_name and _PHRASE_SAFE.fullmatch(list_name) and "=?" not in list_name:
        list_id = f"List-Id: {list_name} <{settings.list_id}>"
    elif list_name:
        list_id = _encoded_header("List-Id", list_name) + f"\r\n <{settings.list_id}>"
    else:
        list_id = f"List-Id: <{settings.list_id}>"
    return (from_line + "\r\n").encode("ascii"), (list_id + "\r\n").encode("ascii")


@lru_cache(maxsize=65536)
def _user_headers(user: str, to: str, settings: MailSettings) -> tuple[bytes, bytes]:
    """The To line and the List-Unsubscribe lines for one user, computed once per user and settings."""
    if not to.isascii() or not _ASCII_ADDRESS.fullmatch(to) or len(to) > 254:
        raise DeliveryError(
            f"recipient address {to!r} of user {sanitize_header_text(user)!r} is not a plain ASCII address",
            "check the address with validate_address() when the configuration is loaded",
        )
    url = unsubscribe_url(user, settings)
    uris = [f"<{uri}>" for uri in (url, unsubscribe_mailto_url(user, settings)) if uri]
    # One URI per line so that a long URL is never folded into encoded-words (which hides one-click).
    unsubscribe = "List-Unsubscribe: " + ",\r\n ".join(uris) + "\r\n"
    if url is not None:
        unsubscribe += "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    return f"To: {to}\r\n".encode("ascii"), unsubscribe.encode("ascii")


def _qp_split_line(line: bytes) -> list[bytes]:
    """Split one over-long QP line (without CRLF) into soft-broken lines within 76, keeping escapes whole."""
    out = []
    while len(line) > _QP_LIMIT:
        cut = _QP_LIMIT - 1  # room for the "=" soft break
        # Never cut inside "=XX", and never start the next line with "." or "From ".
        while cut > 1 and (
            line[cut - 1 : cut] == b"="
            or line[cut - 2 : cut - 1] == b"="
            or line[cut : cut + 1] == b"."
            or line[cut : cut + 5] == b"From "
        ):
            cut -= 1
        out.append(line[:cut] + b"=")
        line = line[cut:]
    out.append(line)
    return out


def _suspect_lines(encoded: bytes) -> set[int]:
    """Offsets of the lines that need a second look: starting with "." or "From ", or ending in =20/=09."""
    found = {0} if encoded.startswith((b".", b"From ")) else set()
    for needle, offset in ((b"\n.", 1), (b"\nFrom ", 1), (b"=20\r\n", 0), (b"=09\r\n", 0)):
        at = encoded.find(needle)
        while at >= 0:
            # An encoded trailing blank sits at a line end: that line starts after the previous LF.
            found.add(at + 1 if offset else encoded.rfind(b"\n", 0, at) + 1)
            at = encoded.find(needle, at + 1)
    return found


def _quoted_printable(text: str) -> bytes:
    """Encode ``text`` as UTF-8 quoted-printable with CRLF line ends and no line over 76 octets."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    raw = text.encode("utf-8", "surrogatepass").replace(b"\n", b"\r\n")
    if not raw:
        return b""
    open_end = not raw.endswith(b"\n")
    if open_end:
        # b2a_qp takes its line-break style from the first line end (LF-only soft breaks without one)
        # and leaves a final blank unencoded: give it a CRLF, then make that CRLF a soft break, so the
        # CRLF that SMTP appends decodes to nothing and the body comes back without a final newline.
        raw += b"\r\n"
    encoded = binascii.b2a_qp(raw, istext=True)
    suspects = _suspect_lines(encoded)
    if open_end:
        encoded = encoded[:-2] + b"=\r\n"
        suspects.add(encoded.rfind(b"\n", 0, len(encoded) - 2) + 1)
    # Second look, rarely needed: a line starting with "." is mangled by broken SMTP dot-stuffing and one
    # starting with "From " by mbox ">From" quoting (escape the first character), and b2a_qp lets a line
    # ending in an encoded blank reach 77 octets (split it). The searches run at memchr speed.
    if suspects:
        pieces = []
        done = 0
        for start in sorted(suspects):
            end = encoded.find(b"\r\n", start)
            end = len(encoded) if end < 0 else end
            line = encoded[start:end]
            if line.startswith(b"."):
                line = b"=2E" + line[1:]
            elif line.startswith(b"From "):
                line = b"=46" + line[1:]
            pieces.append(encoded[done:start])
            pieces.append(b"\r\n".join(_qp_split_line(line)) if len(line) > _QP_LIMIT else line)
            done = end
        pieces.append(encoded[done:])
        encoded = b"".join(pieces)
    return encoded


def _base64(text: str) -> bytes:
    """Encode ``text`` as UTF-8 base64 in lines of 76 (RFC 2045 §6.8), line ends made CRLF first."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    encoded = binascii.b2a_base64(text.encode("utf-8", "surrogatepass").replace(b"\n", b"\r\n"), newline=False)
    return b"\r\n".join(_B64_LINES.findall(encoded))


_B64_LINES = re.compile(rb".{1,76}", re.DOTALL)  # findall cuts 76-character lines faster than slicing in a loop
_TEXT_PART = b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n'
# The HTML part is base64: binascii encodes it 7x faster than quoted-printable (25 KB: 60 us vs 410 us, the
# largest CPU cost of composing), and nobody reads HTML source in a mail client. The plain-text part stays
# quoted-printable, readable as it is.
_HTML_PART = b'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n'


def compose(email: RenderedEmail, settings: MailSettings, *, now: datetime) -> bytes:
    """Return the complete message (CRLF line ends) for ``email``: text/plain + text/html alternatives."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("compose() needs a timezone-aware `now`")
    from_line, list_id = _settings_headers(settings)
    to_line, unsubscribe = _user_headers(email.user, email.to, settings)
    mid = message_id(email.user, email.period, settings)
    head = b"".join(
        (
            from_line,
            to_line,
            _unstructured_header("Subject", email.subject).encode("ascii"),
            b"\r\nDate: ",
            format_datetime(now).encode("ascii"),
            b"\r\nMessage-ID: ",
            mid.encode("ascii"),
            b"\r\nMIME-Version: 1.0\r\n",
            list_id,
            unsubscribe,
            b"Auto-Submitted: auto-generated\r\n",
        )
    )
    if email.html and email.text:
        # "=_" can never occur in quoted-printable or base64 output, so this boundary cannot collide with a body.
        boundary = b"=_pd_" + hashlib.blake2b(mid.encode("ascii"), digest_size=12).hexdigest().encode("ascii")
        return b"".join(
            (
                head,
                b'Content-Type: multipart/alternative;\r\n boundary="',
                boundary,
                b'"\r\n\r\n--',
                boundary,
                b"\r\n",
                _TEXT_PART,
                b"\r\n",
                _quoted_printable(email.text),
                b"\r\n--",
                boundary,
                b"\r\n",
                _HTML_PART,
                b"\r\n",
                _base64(email.html),
                b"\r\n--",
                boundary,
                b"--\r\n",
            )
        )
    if email.html:
        return b"".join((head, _HTML_PART, b"\r\n", _base64(email.html)))
    return b"".join((head, _TEXT_PART, b"\r\n", _quoted_printable(email.text)))
