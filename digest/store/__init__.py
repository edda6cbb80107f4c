"""All SQL: the SQLite store (``db``: open, migrations, transactions, the run lock), papers and dumps
(``papers``), delivery state (``delivery``: subscribers, runs, outbox, each (user, paper)'s state, each digest's
"Also for you" papers and their reasons), feed entry ids (``feed_ids``), which digests have archive pages
(``archive``), votes and ranker models (``feedback``)."""

from __future__ import annotations

import sqlite3

from digest.store import archive, delivery, feed_ids, feedback
from digest.store.db import (
    MIGRATIONS,
    background_checkpoints,
    open_store,
    run_lock,
    schema_version,
    scratch_copy,
    store_file,
    store_write_error,
    transaction,
)
from digest.store.papers import (
    counts,
    dump_names,
    first_ingested,
    get_papers,
    ingest,
    is_ingested,
    iter_papers,
    known_inbox_files,
    list_papers,
    new_papers_since,
    organizations_seen,
    record_inbox_file,
)

# What the rest of the code holds a store as: callers pass it back to these functions and never run SQL on it,
# so another backend changes this package only.
Connection = sqlite3.Connection

__all__ = [
    "MIGRATIONS",
    "Connection",
    "archive",
    "background_checkpoints",
    "counts",
    "delivery",
    "dump_names",
    "feed_ids",
    "feedback",
    "first_ingested",
    "get_papers",
    "ingest",
    "is_ingested",
    "iter_papers",
    "known_inbox_files",
    "list_papers",
    "new_papers_since",
    "open_store",
    "organizations_seen",
    "record_inbox_file",
    "run_lock",
    "schema_version",
    "scratch_copy",
    "store_file",
    "store_write_error",
    "transaction",
]
