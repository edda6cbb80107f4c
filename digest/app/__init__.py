"""The outside: the command line (``cli``), the scheduler (``schedule``) and the HTTP service (``server``).
Wiring only: each calls ``digest.pipeline``."""

from __future__ import annotations

__all__: list[str] = []
