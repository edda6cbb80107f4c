"""Errors that reach the user: each says what went wrong, where, and how to fix it."""

from __future__ import annotations


class DigestError(Exception):
    """Base of every error paper-digest reports to the user; ``hint`` says how to fix it."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class DumpError(DigestError):
    """A dump could not be read; the store is unchanged."""


class StoreError(DigestError):
    """The SQLite store is unusable (locked, corrupt, from a newer version)."""


class ConfigError(DigestError):
    """The configuration file is missing or invalid."""

    exit_code = 2


class QueryError(DigestError):
    """A keyword query does not parse; ``position`` is the 0-based offset of the problem."""

    exit_code = 2

    def __init__(self, message: str, hint: str = "", position: int | None = None) -> None:
        super().__init__(message, hint)
        self.position = position


class RenderError(DigestError):
    """A template is missing or fails to render."""


class DeliveryError(DigestError):
    """Mail could not be delivered (a whole-run failure such as bad credentials)."""


class FetchError(DigestError):
    """The daily listing could not be downloaded; nothing was written."""


class LockedError(DigestError):
    """Another run holds the store lock."""

    exit_code = 3
