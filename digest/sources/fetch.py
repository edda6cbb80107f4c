"""Download the day's listing from the daily-papers API into the inbox; nothing is written on failure."""

from __future__ import annotations

import http.client
import logging
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from datetime import date
from pathlib import Path

from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential, wait_random

from digest.errors import DumpError, FetchError

log = logging.getLogger(__name__)
USER_AGENT = "paper-digest (+https://github.com/paper-digest)"


class _Temporary(Exception):
    """A failure worth retrying: a 5xx/429 answer, a timeout, a refused connection."""


def listing_url(base_url: str, day: date | None) -> str:
    """The API URL for one day's listing (``?date=YYYY-MM-DD``), or today's without a date."""
    if not day:
        return base_url
    separator = "&" if urllib.parse.urlsplit(base_url).query else "?"
    return f"{base_url}{separator}date={day.isoformat()}"


def _get(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # scheme checked by fetch_listing
            return response.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 429 or exc.code >= 500:
            raise _Temporary(f"HTTP {exc.code} {exc.reason}") from exc
        body = exc.read()[:200].decode("utf-8", "replace")
        raise FetchError(
            f"{url}: the server answered HTTP {exc.code} {exc.reason} {body!r}",
            "check [digest].source_url and the date (the API has no listing for future dates or weekends)",
        ) from exc
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as exc:
        raise _Temporary(str(getattr(exc, "reason", exc))) from exc


def fetch_listing(
    base_url: str,
    inbox: Path,
    *,
    day: date | None = None,
    timeout: float = 30.0,
    attempts: int = 3,
    max_wait: float = 10.0,
) -> Path:
    """Download one day's listing into ``inbox`` atomically and return the file; FetchError on any failure."""
    if urllib.parse.urlsplit(base_url).scheme not in ("http", "https"):
        raise FetchError(f"source_url {base_url!r} is not an http(s) URL", "set [digest].source_url to the API URL")
    url = listing_url(base_url, day)
    fetch = retry(
        retry=retry_if_exception(lambda exc: isinstance(exc, _Temporary)),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=0.5, max=max_wait) + wait_random(0, min(0.5, max_wait)),
        reraise=True,
        before_sleep=lambda state: log.warning(
            "fetch %s failed (%s); retrying", url, state.outcome.exception() if state.outcome else None
        ),
    )(_get)
    try:
        data = fetch(url, timeout)
    except _Temporary as exc:
        raise FetchError(f"{url}: {exc} (after {attempts} attempts)", "is the network up? try again later") from exc
    # Validate before writing, so a bad answer (an {"error": ...} body, HTML, truncation) never lands in the inbox.
    from digest.sources import parse_dump

    try:
        dump = parse_dump(data, url)
    except DumpError as exc:
        raise FetchError(exc.message, "nothing was written to the inbox") from exc
    name = f"daily_papers_{day.isoformat() if day else 'latest'}_{dump.sha256[:12]}.json"
    inbox.mkdir(parents=True, exist_ok=True)
    target = inbox / name
    fd, tmp = tempfile.mkstemp(dir=inbox, prefix=".fetch-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("fetched %s: %d papers -> %s", url, len(dump.papers), target)
    return target
