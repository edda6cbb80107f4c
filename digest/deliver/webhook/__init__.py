"""The webhook channel: a digest as Slack, Discord, Matrix or plain-JSON messages (``payloads``), sent over
HTTP with retries and idempotency keys (``http``, the httpx adapter)."""

from __future__ import annotations

from digest.deliver.webhook.http import WebhookChannel, WebhookTarget, idempotency_key
from digest.deliver.webhook.payloads import KINDS, build_parts, parcel_data

__all__ = ["KINDS", "WebhookChannel", "WebhookTarget", "build_parts", "idempotency_key", "parcel_data"]
