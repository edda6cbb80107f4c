"""An aiosmtpd sink for benchmarks: accepts and counts messages, run as its own process.

Usage: python bench/smtp_sink.py  -> prints "PORT <n>" once listening on 127.0.0.1.
Then on stdin: "stats" prints "<messages> <bytes> <cpu seconds of this process>"; "quit" or EOF exits.
"""

from __future__ import annotations

import asyncio
import os
import sys

from aiosmtpd.smtp import SMTP


class Counter:
    """aiosmtpd handler that keeps nothing but counts."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0

    async def handle_DATA(self, server: SMTP, session: object, envelope: object) -> str:
        self.messages += 1
        self.bytes += len(envelope.original_content or b"")  # type: ignore[attr-defined]
        return "250 2.0.0 Ok: queued"


async def main() -> None:
    """Serve until told to quit on stdin."""
    loop = asyncio.get_running_loop()
    counter = Counter()
    server = await loop.create_server(lambda: SMTP(counter, hostname="sink.test"), host="127.0.0.1", port=0)
    done = loop.create_future()

    def on_stdin() -> None:
        line = sys.stdin.readline()
        if line.strip() == "stats":
            cpu = os.times()
            print(counter.messages, counter.bytes, cpu.user + cpu.system, flush=True)
        elif not line or line.strip() == "quit":
            loop.remove_reader(sys.stdin.fileno())
            if not done.done():
                done.set_result(None)

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    print("PORT", server.sockets[0].getsockname()[1], flush=True)
    await done
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
