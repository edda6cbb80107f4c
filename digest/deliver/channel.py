"""The delivery seam: what every channel (email, a webhook, ...) receives and reports, and the registry of them.

A channel is handed *parcels*: one stored outbox row each (one user's digest for one period on that channel),
its bytes exactly as queued. It reports back through a ``Ledger`` (the pipeline's side, which writes the store):

* ``handed_over(parcel, True)`` right before the step after which the receiver may keep the message (SMTP's
  end-of-data line; an HTTP request's body), ``handed_over(parcel, False)`` when that attempt then broke with
  no reply. Raising there stops the channel before it hands the message over;
* ``progress(parcel, parts_done)`` after each accepted part of a message sent in several parts (a long digest
  split into several chat messages), so a crash resumes from the next part, not the first;
* ``result(parcel, outcome)`` once per parcel: sent, deferred (try again later, ``retry_after`` seconds the
  receiver asked for, if it did) or failed (permanently).

So the one rule of the ledger holds for every channel: a parcel is recorded in flight before it is handed
over and sent right after it is accepted, and a crash resends at most the part in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["CHANNEL_KINDS", "Channel", "Ledger", "Outcome", "Parcel", "channel_kind"]

Status = Literal["sent", "deferred", "failed"]


@dataclass(frozen=True, slots=True)
class Parcel:
    """One outbox row to deliver: ``key`` identifies it to the ledger; ``data`` is what was queued for it."""

    key: str
    user: str
    period: str
    data: bytes  # email: the whole RFC 5322 message; webhooks: JSON {"parts": [payload, ...]}
    message_id: str  # stable across retries: the Message-ID, and the base of a Matrix transaction id
    recipient: str = ""  # email: the envelope recipient
    sender: str = ""  # email: the envelope sender
    parts_done: int = 0  # parts already accepted (a multi-part parcel resumes after them)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one parcel."""

    status: Status
    code: int | None  # the SMTP reply code or HTTP status; None for network errors and timeouts
    reply: str  # one line: the receiver's reply, or what went wrong
    retry_after: float | None = None  # seconds the receiver asked to wait before the next try (HTTP 429/503)


class Ledger(Protocol):
    """The pipeline's side of a delivery: it records each step in the store before the channel goes on."""

    def handed_over(self, parcel: Parcel, handed_over: bool) -> None: ...

    def progress(self, parcel: Parcel, parts_done: int) -> None: ...

    def result(self, parcel: Parcel, outcome: Outcome) -> None: ...


class Channel(Protocol):
    """A delivery target. ``name`` is its name in the ledger: ``email``, or ``webhook:<name>``."""

    name: str

    def deliver(self, parcels: Iterable[Parcel], ledger: Ledger, *, stop: Callable[[], bool]) -> None:
        """Deliver every parcel (lazily: ``parcels`` may load each from the store as it goes), reporting each
        step to ``ledger``. Once ``stop()`` is true no new parcel or retry starts. Raises ``DeliveryError`` for
        a channel-wide refusal (bad credentials): parcels not yet reported stay due."""
        ...


# The channel kinds a config can name; ``email`` is built in, the others are ``[[webhooks]]`` kinds.
CHANNEL_KINDS = ("email", "slack", "discord", "matrix", "json")


def channel_kind(name: str) -> str:
    """The ledger's channel name without the target's own name: ``webhook:lab`` -> ``webhook``."""
    return name.partition(":")[0]
