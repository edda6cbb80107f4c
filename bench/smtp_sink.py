"""An aiosmtpd sink for benchmarks: accepts and counts messages, run as its own process.

Usage: python bench/smtp_sink.py [--record FILE]  -> prints "PORT <n>" once listening on 127.0.0.1.
Then on stdin: "stats" prints "<messages> <bytes> <cpu seconds of this process>"; "quit" or EOF exits.
With --record, every accepted message also appends one line "<unix time>\t<Message-ID>\t<recipients, comma
separated>" to FILE, written and flushed before the sink answers 250, so the record survives whatever happens
to the client (bench_crash.py counts lost and duplicate messages from it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from email.parser import BytesHeaderParser

from aiosmtpd.smtp import SMTP


class Counter:
    """aiosmtpd handler that keeps nothing but counts (and, given a file, records who got which Message-ID)."""

    def __init__(self, record: str | None = None) -> None:
        self.messages = 0
        self.bytes = 0
        self.record = open(record, "a", encoding="utf-8") if record else None  # noqa: SIM115 (open while serving)

    async def handle_DATA(self, server: SMTP, session: object, envelope: object) -> str:
        content = envelope.original_content or b""  # type: ignore[attr-defined]
        self.messages += 1
        self.bytes += len(content)
        if self.record is not None:
            head = content.split(b"\r\n\r\n", 1)[0]
            message_id = " ".join(str(BytesHeaderParser().parsebytes(head).get("Message-ID", "-")).split())
            rcpts = ",".join(envelope.rcpt_tos)  # type: ignore[attr-defined]
            self.record.write(f"{time.time():.6f}\t{message_id}\t{rcpts}\n")
            self.record.flush()
        return "250 2.0.0 Ok: queued"


async def main() -> None:
    """Serve until told to quit on stdin."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", help="append '<time>\\t<Message-ID>\\t<recipients>' per accepted message")
    args = parser.parse_args()
    loop = asyncio.get_running_loop()
    counter = Counter(args.record)
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
    if counter.record is not None:
        counter.record.close()


if __name__ == "__main__":
    asyncio.run(main())
