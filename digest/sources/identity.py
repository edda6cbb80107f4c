"""Paper identity: the arXiv id when a dump has one, else a fingerprint of the normalised title."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_ARXIV_ID = re.compile(r"^(?:arxiv:)?(\d{4}\.\d{4,5}|[a-z\-]+(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?$", re.IGNORECASE)
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
# C0/C1 controls other than tab and newline: lxml refuses them in feeds and they have no meaning in a title.
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def normalise_arxiv_id(raw: str) -> str | None:
    """Return the version-less arXiv id (``2405.01234``) or None when ``raw`` is not one."""
    match = _ARXIV_ID.match(raw.strip())
    return match.group(1) if match else None


def normalise_title(title: str) -> str:
    """NFKC, case-folded, punctuation and whitespace (arXiv line wraps included) collapsed to single spaces."""
    text = unicodedata.normalize("NFKC", title).casefold()
    return _NON_WORD.sub(" ", text).strip()


def title_fingerprint(title: str) -> str:
    """A short, stable hash of the normalised title."""
    return hashlib.sha1(normalise_title(title).encode("utf-8")).hexdigest()[:20]


def paper_key(arxiv_id: str | None, title: str) -> str:
    """The identity of a paper: ``arxiv:<id>`` when known, else ``title:<fingerprint>``."""
    return f"arxiv:{arxiv_id}" if arxiv_id else f"title:{title_fingerprint(title)}"


def strip_controls(text: str) -> str:
    """Remove control characters that no renderer or XML serialiser can carry."""
    return _CONTROLS.sub("", text)


def unwrap(text: str) -> str:
    """Join arXiv-style hard line wraps (``"Multimodal\\n  Models"``) into single spaces."""
    return re.sub(r"\s*\n\s*", " ", text).strip()
