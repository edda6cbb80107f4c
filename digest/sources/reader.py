"""What one dump format contributes to the ``READERS`` registry (``digest.sources.READERS``).

A reader names its format, recognises its own content (``sniff``: positive criteria only, so a file no reader
recognises is refused instead of being forced through the last one) and parses it into papers plus one note per
entry or field it left out. Decoding, the clean-up every paper gets, refusals and the ``Dump`` itself are done
once, by the dispatcher (``digest.sources.parse_dump``), for every format alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from digest.models import Paper

# The papers a reader found and one message per entry or field it left out (see ``digest.models.Dump``).
Parsed = tuple[list[Paper], list[str]]


@dataclass(frozen=True, slots=True)
class Reader:
    """One dump format: its name, how to recognise it, how to parse it."""

    format: str  # "json", "html", "text": stored as ``Dump.format`` and named in error messages
    sniff: Callable[[str], bool]  # the decoded text -> True when it is this format (never "maybe")
    # (decoded text, file name) -> papers and notes; raises ValueError when the content is not a listing
    # after all (a DumpError for a refusal that carries its own message and hint).
    parse: Callable[[str, str], Parsed]
    refusal_hint: str  # the hint shown with a ValueError raised by ``parse``
