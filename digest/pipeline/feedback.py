"""Relevance feedback: the signed thumbs-up/down links of every digest, and what a vote does.

A vote link names its user, paper and vote in the clear and carries an HMAC of the three under the signing
secret ([digest].secret_env), so ``digest serve`` can check a link without looking anything up, and nobody can
vote for someone else. Following the link (GET) only shows what it would record, with one button (POST) that
records it: mail scanners and link previewers fetch every link in a message, and must not vote.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from digest import config

__all__ = ["VOTE_PATH", "VoteLink", "verify_vote_token", "vote_token", "vote_urls"]

VOTE_PATH = "/v/"  # under [digest].base_url, served by `digest serve`
_SEP = "\x1f"  # never in a user name ([A-Za-z0-9_.-]) or a paper key (arxiv:<id> / title:<sha1>)


@dataclass(frozen=True, slots=True)
class VoteLink:
    """What a verified vote link says: this user rates this paper up (+1) or down (-1)."""

    user: str
    paper_key: str
    vote: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@functools.lru_cache(maxsize=4)
def _keyed(secret: bytes) -> hmac.HMAC:
    # The keyed state once per secret: a run signs two links per shown paper per user (400,000 at 10,000 users).
    return hmac.new(secret, b"vote" + _SEP.encode(), hashlib.sha256)


def _signature(secret: bytes, payload: bytes) -> bytes:
    mac = _keyed(secret).copy()
    mac.update(payload)
    return mac.digest()[:12]


def vote_token(secret: bytes, user: str, paper_key: str, vote: int) -> str:
    """The URL-safe token of one vote: ``<payload>.<signature>``, both base64url."""
    payload = f"{user}{_SEP}{paper_key}{_SEP}{'+' if vote > 0 else '-'}".encode()
    return f"{_b64(payload)}.{_b64(_signature(secret, payload))}"


def verify_vote_token(secret: bytes, token: str) -> VoteLink | None:
    """The vote a token carries, or None when it is malformed or its signature is not ours."""
    payload_text, dot, signature_text = token.partition(".")
    if not dot or len(token) > 400:
        return None
    try:
        payload, signature = _unb64(payload_text), _unb64(signature_text)
    except ValueError:
        return None
    if not hmac.compare_digest(signature, _signature(secret, payload)):
        return None
    try:
        user, paper_key, sign = payload.decode("utf-8").split(_SEP)
    except ValueError:
        return None
    if sign not in ("+", "-") or not user or not paper_key:
        return None
    return VoteLink(user, paper_key, 1 if sign == "+" else -1)


def vote_urls(cfg: config.Config, secret: bytes, user: str, keys: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Per paper key, the (thumbs-up, thumbs-down) URLs for ``user``; empty without [digest].base_url (there
    is nowhere to send a vote)."""
    base = cfg.digest.base_url.rstrip("/")
    if not base:
        return {}
    return {
        key: (
            f"{base}{VOTE_PATH}{vote_token(secret, user, key, 1)}",
            f"{base}{VOTE_PATH}{vote_token(secret, user, key, -1)}",
        )
        for key in keys
    }
