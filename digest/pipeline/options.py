"""What one run does beyond the defaults (``RunOptions``), shared by ingest, send and run."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from digest.deliver.channel import Channel


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What one run does beyond the defaults."""

    users: tuple[str, ...] | None = None  # limit to these users
    dry_run: Path | None = None  # write .eml files (and feeds) here; the store is left untouched
    fetch: bool = True  # fetch the day's listing when [digest].source_url is set
    deliver: bool = True
    tls_context: ssl.SSLContext | None = None  # tests trust their own CA with this
    progress: Callable[[int, int], None] | None = None  # (messages done, total)
    stop: Callable[[], bool] = field(default=lambda: False)  # polled between messages (SIGTERM)
    wait_for_lock: bool = False  # wait for a concurrent run instead of raising LockedError
    # Deliver every due row to this channel instead of the user's own (`digest evaluate` records what each
    # digest showed this way: the ledger moves exactly as in a real run, nothing leaves the machine).
    deliver_to: Channel | None = None
