"""Delivery channels: ``email`` (compose + SMTP); ``net`` holds the one loopback-host rule."""

from __future__ import annotations

__all__: list[str] = []
