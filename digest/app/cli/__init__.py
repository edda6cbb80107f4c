"""The `digest` command: the group and its shared helpers (``common``), one module per command family
(``profiles``: check, init, users, preview, test; ``service``: run, send, status, serve, ...; ``feedback``:
feedback, ratings; ``relevance``: suggest, evaluate). Importing this package registers every command on the group."""

from __future__ import annotations

from digest.app.cli import feedback, profiles, relevance, service
from digest.app.cli.common import cli, complete_users, entry, main

__all__ = ["cli", "complete_users", "entry", "feedback", "main", "profiles", "relevance", "service"]
