"""Pure text helpers for rendering: escaping with source-offset maps, highlight splicing, cutting, wrapping.

Stdlib only, and nothing from the rest of the package, so these can be tested and reused on their own.
Offsets are always into the *source* text; ``Esc.shift`` maps them into the escaped text.
"""

from __future__ import annotations

import binascii
import re
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

__all__ = ["ALLOWED_SCHEMES", "Esc", "clean", "cut_offset", "escape", "hit_spans", "html_size_estimate"]
__all__ += ["b64_bound", "b64_size", "md_guard", "md_inline", "qp", "qp_bound", "qp_size", "safe_url", "splice"]
__all__ += ["Sizes", "add_sizes", "plain_web_urls", "text_sizes", "wrap_breaks"]

ALLOWED_SCHEMES = frozenset({"http", "https", "mailto"})
# C0/C1-ish characters that are never text; runs of them and whitespace collapse to one space.
_CTRL = "\x00-\x08\x0e-\x1f\x7f-\x9f\ufffe\uffff\ud800-\udfff"
_RUN = f"[\\s{_CTRL}]+"
# Inner whitespace/control runs that change (all but single spaces); the lookahead lets re skip text fast.
_ODD = f" [\\s{_CTRL}]+|[^\\S ][\\s{_CTRL}]*|[{_CTRL}][\\s{_CTRL}]*"
_PATTERNS = {
    "html": re.compile(f"(?=[^a-zA-Z0-9 ])(?:(?P<run>{_ODD})|[&<>\"'])|(?P<sp> [\\s{_CTRL}]+)"),
    "md": re.compile(f"(?=[^a-zA-Z0-9 ])(?:(?P<run>{_ODD})|[\\\\`*_\\[\\]<>])|(?P<sp> [\\s{_CTRL}]+)"),
    "txt": re.compile(f"(?=[^a-zA-Z0-9 ])(?P<run>{_ODD})|(?P<sp> [\\s{_CTRL}]+)"),
}
_EDGE = re.compile(_RUN)
_CTRL_CHARS = re.compile(f"[{_CTRL}]+")
_GAP_CHAR = re.compile(f"[\\s{_CTRL}]")
# A word as ``escape`` prints it: a non-whitespace run holding some non-control character (controls in it
# are dropped there; a run of controls alone prints nothing, so it is no word and gets no break before it).
_WORD = re.compile(f"[^\\s{_CTRL}]\\S*")
_HTML_ENT = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;"}
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>])")
_MD_LEAD_CHARS = frozenset("#>+=|-0123456789")
_MD_LEAD = re.compile(r"(?:[#>+=|-]|\d+[.)])")  # tokens that would start a block at a line start
_CLEAN = re.compile(_RUN)
_PLAIN_URL = re.compile(
    r"(?:https?://[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::\d{1,5})?[/?#]|mailto:)[\w.~!$&*+,;=:@%/?#-]*", re.A
)
# Lines of http(s) URLs that _PLAIN_URL matches: many checked in one pass (a user's vote links).
_PLAIN_WEB_URLS = re.compile(
    r"(?:https?://[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::\d{1,5})?[/?#][\w.~!$&*+,;=:@%/?#-]*\n)*", re.A
)
_URL_SAFE = "/:?#[]@!$&*+,;=%~-._"  # RFC 3986 reserved + unreserved, minus quotes and parentheses


# What the size of a text part depends on: characters, UTF-8 bytes, newlines, "=" signs. Each is additive over
# joined strings, so a message part is measured from its pieces (see ``text_sizes``, ``b64_bound``, ``qp_of``).
Sizes = tuple[int, int, int, int]


def text_sizes(text: str) -> Sizes:
    """The ``Sizes`` of ``text``."""
    return len(text), len(text.encode("utf-8", "surrogatepass")), text.count("\n"), text.count("=")


def add_sizes(a: Sizes, b: Sizes) -> Sizes:
    return a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]


@dataclass(frozen=True, slots=True)
class Esc:
    """Text escaped for one format; source offset ``i`` lands at ``i + shift[i]`` in ``text``."""

    text: str
    shift: array[int]


def clean(text: object) -> str:
    """Text with control characters removed and whitespace runs collapsed to one space."""
    text = str(text)
    if text.isprintable() and "  " not in text:  # the common case, without a regex pass
        return text.strip()
    return _CLEAN.sub(" ", text).strip()


def md_inline(text: object) -> str:
    """``clean`` text with Markdown's inline metacharacters backslash-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", clean(text))


def md_guard(text: str) -> str:
    """Keep a Markdown paragraph from starting a list, heading or quote."""
    m = _MD_LEAD.match(text) if text[:1] in _MD_LEAD_CHARS else None
    if m is None or not (m.end() == len(text) or text[m.end()].isspace()):
        return text
    return text[: m.end() - 1] + "\\" + text[m.end() - 1 :] if text[0].isdigit() else "\\" + text


def safe_url(url: str | None) -> str | None:
    """``url`` if it is an http(s) or mailto URL, percent-encoded where needed; else None."""
    if not url:
        return None
    if _PLAIN_URL.fullmatch(url):  # the usual case: nothing to check further or encode
        return url
    url = clean(url)
    if not url or " " in url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES or (scheme != "mailto" and not parts.hostname):
        return None
    return quote(url, safe=_URL_SAFE)


def plain_web_urls(urls: Sequence[str]) -> bool:
    """Whether every one of ``urls`` is an http(s) URL that ``safe_url`` returns as it is (one regex pass)."""
    return _PLAIN_WEB_URLS.fullmatch("\n".join(urls) + "\n") is not None


def wrap_breaks(text: str, width: int) -> frozenset[int]:
    """Source offsets of the whitespace runs where a greedy wrap at ``width`` breaks the line."""
    breaks, line = set(), 0
    for m in _WORD.finditer(text):
        word = m.group()
        if not word.isprintable():  # count what ``escape`` keeps: controls in a word vanish
            word = _CTRL_CHARS.sub("", word)
        n = len(word)
        if line and line + 1 + n > width and not _MD_LEAD.fullmatch(word):
            ws = m.start()
            while ws > 0 and (text[ws - 1].isspace() or _GAP_CHAR.match(text, ws - 1)):  # isspace: the fast path
                ws -= 1
            breaks.add(ws)  # the start of a run ``escape`` turns into one space
            line = n
        else:
            line += n + (1 if line else 0)
    return frozenset(breaks)


def escape(text: str, fmt: str, breaks: frozenset[int] = frozenset()) -> Esc:
    """Escape ``text`` for ``fmt``, map every source offset, and turn the spaces at ``breaks`` into newlines."""
    n = len(text)
    lead = m.end() if (m := _EDGE.match(text)) else 0
    trail = n - m.end() if lead < n and (m := _EDGE.match(text[::-1])) else n
    segments = [(0, lead, "")] if lead else []
    for m in _PATTERNS[fmt].finditer(text, lead, trail):
        g = m.group()
        if m.lastgroup:  # a whitespace/control run: one space if it held any whitespace, else nothing
            rep = " " if any(c.isspace() for c in g) else ""
        else:
            rep = _HTML_ENT[g] if fmt == "html" else "\\" + g
        segments.append((m.start(), m.end(), rep))
    if trail < n:
        segments.append((trail, n, ""))
    pieces: list[str] = []
    shift = array("i")
    pos = opos = 0
    for s, e, rep in segments:
        if s > pos:
            pieces.append(text[pos:s])
            shift += array("i", (opos - pos,)) * (s - pos)  # a C-speed fill: most text maps one to one
            opos += s - pos
        pieces.append(rep)
        shift.extend(min(opos + k, opos + len(rep)) - s - k for k in range(e - s))
        opos += len(rep)
        pos = e
    pieces.append(text[pos:])
    shift += array("i", (opos - pos,)) * (n - pos + 1)
    out = "".join(pieces)
    if breaks:
        chars = list(out)
        for b in breaks:
            if chars[b + shift[b]] == " ":
                chars[b + shift[b]] = "\n"
        out = "".join(chars)
    return Esc(out, shift)


def splice(esc: Esc, spans: Sequence[tuple[int, int]], cut: int, open_: str, close: str) -> str:
    """The escaped text up to source offset ``cut`` with each span wrapped in open/close markup."""
    text, shift = esc.text, esc.shift
    end = cut + shift[cut]
    if not spans:
        return text[:end]
    out: list[str] = []
    pos = 0
    for s, e in spans:
        if s >= cut:
            break
        e = min(e, cut)
        a, b = max(s + shift[s], pos), e + shift[e]
        if b > a:
            out += (text[pos:a], open_, text[a:b], close)
            pos = b
    out.append(text[pos:end])
    return "".join(out)


def hit_spans(text: str, ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """(start, end) ranges of ``text`` clamped, whitespace-trimmed and merged when only spaces part them."""
    found = []
    for s, e in ranges:
        s, e = max(0, s), min(len(text), e)
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if s < e:
            found.append((s, e))
    return _merge(found, text)


def _merge(spans: list[tuple[int, int]], text: str) -> list[tuple[int, int]]:
    """Sorted spans with overlapping ones, or ones under 4 whitespace characters apart, joined."""
    if len(spans) < 2:
        return spans
    merged: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if merged and (s <= merged[-1][1] or (s - merged[-1][1] < 4 and text[merged[-1][1] : s].isspace())):
            ps, pe = merged.pop()
            s, e = ps, max(pe, e)
        merged.append((s, e))
    return merged


def cut_offset(text: str, limit: int) -> int:
    """Source offset where ``text`` is cut for a display length of about ``limit`` characters."""
    stripped = text.rstrip()
    if len(clean(stripped)) <= limit:
        return len(stripped)
    start = len(text) - len(text.lstrip())
    end = start + limit
    ws = max(text.rfind(" ", start, end + 1), text.rfind("\n", start, end + 1))
    cut = ws if ws > start + limit // 2 else end
    while cut > start and (text[cut - 1].isspace() or text[cut - 1] in ",;:([{-–—"):
        cut -= 1
    return cut


def html_size_estimate(html: str) -> int:
    """An upper bound of the size of ``html`` once quoted-printable encoded with CRLF line ends."""
    return qp_bound(qp(html), html.count("\n"))


def qp_of(sizes: Sizes) -> int:
    """``qp`` of a text from its ``Sizes``."""
    chars, raw, _, eqs = sizes
    return raw + 2 * (eqs + 2 * (raw - chars))


def qp(text: str) -> int:
    """Quoted-printable octets of ``text`` before line breaks; additive, so pieces can be costed apart."""
    if text.isascii():
        return len(text) + 2 * text.count("=")
    raw = text.encode()
    # Every byte of a multi-byte character becomes =XX, and there are at most twice the extra bytes of them.
    return len(raw) + 2 * (raw.count(b"=") + 2 * (len(raw) - len(text)))


def b64_bound(q: int, lines: int) -> int:
    """Size bound of the base64 encoding (76-character CRLF lines) of text with ``qp`` octets ``q`` (never fewer
    than its UTF-8 bytes) and ``lines`` newlines, each sent as CRLF."""
    encoded = 4 * -(-(q + lines) // 3)
    return encoded + 2 * -(-encoded // 76)


def qp_bound(q: int, lines: int) -> int:
    """Encoded size bound from ``qp`` octets and newline count: CRLF per line, a soft break per <=72 octets."""
    return q + lines + 3 * (q // 72 + lines + 1)


def b64_size(text: str) -> int:
    """Exact size of ``text`` as a base64 body part: UTF-8 with CRLF line ends, in 76-character CRLF lines."""
    raw = len(text.encode("utf-8", "surrogatepass")) + text.count("\n")
    encoded = 4 * -(-raw // 3)
    return encoded + 2 * -(-encoded // 76)


def qp_size(text: str) -> int:
    """Size of ``text`` as a quoted-printable body part (UTF-8, CRLF, soft breaks at 76), bounded from above for
    the fixes a careful encoder adds: an escaped first "." or "From " (2 more octets per line), a line ending in an
    encoded blank split once more (3), a final soft line break (3)."""
    raw = text.encode("utf-8", "surrogatepass").replace(b"\n", b"\r\n")
    encoded = binascii.b2a_qp(raw + b"\r\n", istext=True)
    risky = encoded.count(b"\n.") + encoded.count(b"\nFrom ") + 1
    return len(encoded) + 2 * risky + 3 * (encoded.count(b"=20\r\n") + encoded.count(b"=09\r\n")) + 3
