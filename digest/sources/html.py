"""Reader for the saved listing page: the data sits in the ``data-props`` JSON of the DailyPapers element."""

from __future__ import annotations

import re
import warnings

from bs4 import BeautifulSoup, SoupStrainer, XMLParsedAsHTMLWarning

from digest.models import Paper
from digest.sources.api_json import describe, json_problem, load_json, parse_entries
from digest.sources.reader import Parsed, Reader

# lxml is the fastest backend here (1.8x html.parser on the 220 KB page), and building only the hydrater
# div instead of the whole tree saves another ~15%; bench/bench_ingest.py prints all four combinations.
_ONLY_DAILY_PAPERS = SoupStrainer(attrs={"data-target": "DailyPapers"})


_HTML_START = re.compile(r"<(?:!doctype\s+html|html[\s>])", re.IGNORECASE)


def looks_like_html(text: str) -> bool:
    """True when the text is an HTML document: it starts like one, or has an <html> or doctype in its first
    64 KB (a page saved with `curl -i` starts with HTTP headers), or carries the listing's DailyPapers
    element anywhere."""
    head = text[:1000].lstrip().lower()
    if head.startswith(("<!doctype html", "<html", "<head", "<body", "<div", "<meta", "<!--")):
        return True
    return bool(_HTML_START.search(text, 0, 65536)) or 'data-target="DailyPapers"' in text


def parse_html(text: str, *, parser: str = "lxml", strain: bool = True) -> tuple[list[Paper], list[str]]:
    """Parse a saved listing page; raises ValueError when the page has no DailyPapers listing."""
    with warnings.catch_warnings():
        # A page saved with an XML prolog before it is still the HTML page; bs4 would warn on every ingest.
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        soup = BeautifulSoup(text, parser, parse_only=_ONLY_DAILY_PAPERS if strain else None)
    node = soup.find(None, {"data-target": "DailyPapers"})
    if node is None:
        raise ValueError(
            'no DailyPapers listing in this page (expected an element with data-target="DailyPapers"; '
            "save the page at https://huggingface.co/papers after it has loaded)"
        )
    raw = node.get("data-props")
    if not isinstance(raw, str):
        raise ValueError("the DailyPapers element has no data-props attribute")
    try:
        props = load_json(raw)
    except RecursionError as exc:
        raise ValueError("the DailyPapers data-props is nested too deeply to be a listing") from exc
    except ValueError as exc:
        raise ValueError(f"the DailyPapers data-props is not valid JSON ({json_problem(exc)})") from exc
    if not isinstance(props, dict) or "dailyPapers" not in props:
        raise ValueError(f"the DailyPapers data-props has no 'dailyPapers' list (got {describe(props)})")
    return parse_entries(props["dailyPapers"], "data-props.dailyPapers")


def _parse(text: str, name: str) -> Parsed:
    return parse_html(text)


READER = Reader(
    format="html",
    sniff=looks_like_html,
    parse=_parse,
    refusal_hint="could not read it as an HTML dump; nothing was stored",
)
