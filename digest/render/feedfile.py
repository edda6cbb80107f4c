"""Feed files: a user's feed file name (``feed_slug``, ``feed_file``) and writing a feed atomically
(``write_feed``). Stdlib only, so the config can name feed files without loading the feed builder."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from pathlib import Path

from digest.errors import RenderError

__all__ = ["feed_file", "feed_slug", "write_feed"]


def feed_slug(name: str) -> str:
    """A file- and URL-safe name for a user's feed; distinct names never share a slug."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48]
    if slug != name:
        slug = f"{slug or 'user'}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
    return slug


def feed_file(name: str) -> str:
    """The file name of a user's feed in the feeds folder (the config refuses two feeds sharing one file)."""
    return f"{feed_slug(name)}.xml"


def write_feed(path: Path, data: bytes, *, durable: bool = True) -> bool:
    """Write ``data`` to ``path`` atomically (temp file + rename); False when the file already held it.

    ``durable=False`` skips the fsync: readers still never see a half-written file, but after a power cut
    the file may be empty until it is written again."""
    target = os.fspath(path)
    try:
        try:
            old = os.stat(target)
        except FileNotFoundError:
            old = None
        if old is not None and old.st_size == len(data):
            with open(target, "rb") as f:
                if f.read() == data:
                    return False
        mode = old.st_mode & 0o777 if old is not None else 0o644  # readers (a web server) need the usual mode
        # A name of our own per process (feeds are written under the run lock); no mkstemp/chmod per file,
        # which cost more than building the feed when a run writes 10,000 of them. Plain os calls and no mkdir
        # per file (only when the folder is missing): ~15 us less per changed feed.
        folder, name = os.path.split(target)
        tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        try:
            fd = os.open(tmp, flags, mode)
        except FileNotFoundError:  # the first feed of a new folder
            os.makedirs(folder, exist_ok=True)
            fd = os.open(tmp, flags, mode)
        try:
            try:
                os.fchmod(fd, mode)  # os.open applies the umask
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise RenderError(
            f"cannot write feed {path}: {exc.strerror or exc}", "check that the feed folder exists and is writable"
        ) from exc
    return True
