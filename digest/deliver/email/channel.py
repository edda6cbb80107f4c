"""Email as a ``Channel``: parcels become SMTP messages handed to ``send_all`` over reused sessions."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Iterable, Iterator

from digest.deliver.channel import Ledger, Outcome, Parcel
from digest.deliver.email.smtp import Outgoing, SendResult, SmtpSettings, send_all

__all__ = ["EmailChannel"]

log = logging.getLogger(__name__)


class EmailChannel:
    """Deliver parcels (whole RFC 5322 messages) over SMTP; one parcel is one message, never split."""

    name = "email"

    def __init__(self, smtp: SmtpSettings, *, tls_context: ssl.SSLContext | None = None) -> None:
        self.smtp = smtp
        self.tls_context = tls_context

    def deliver(self, parcels: Iterable[Parcel], ledger: Ledger, *, stop: Callable[[], bool]) -> None:
        """Send every parcel; SMTP's end-of-data line is the hand-over the ledger records first."""
        by_key: dict[str, Parcel] = {}

        def messages() -> Iterator[Outgoing]:
            for parcel in parcels:
                by_key[parcel.key] = parcel
                yield Outgoing(parcel.key, parcel.sender, parcel.recipient, parcel.data)

        def on_handover(item: Outgoing, handed_over: bool) -> None:
            ledger.handed_over(by_key[item.key], handed_over)

        def on_result(item: Outgoing, result: SendResult) -> None:
            ledger.result(by_key.pop(item.key), Outcome(result.status, result.code, result.reply))

        summary = asyncio.run(
            send_all(
                messages(), self.smtp, on_result=on_result, on_handover=on_handover, stop=stop,
                tls_context=self.tls_context,
            )
        )  # fmt: skip
        if summary.unreachable:
            log.error("SMTP server unreachable: %s", summary.unreachable)
