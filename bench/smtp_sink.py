"""An aiosmtpd sink for benchmarks: accepts and counts messages, run as its own process.

Usage: python bench/smtp_sink.py [--record FILE] [--chunking]  -> prints "PORT <n>" once listening on 127.0.0.1.
Then on stdin: "stats" prints "<messages> <bytes> <cpu seconds of this process>"; "quit" or EOF exits.
With --record, every accepted message also appends one line "<unix time>\t<Message-ID>\t<recipients, comma
separated>" to FILE, written and flushed before the sink answers 250, so the record survives whatever happens
to the client (bench_crash.py counts lost and duplicate messages from it).
With --chunking the sink also offers RFC 3030 CHUNKING (BDAT), as Postfix, Exim and Gmail do.
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

    async def handle_EHLO(self, server: SMTP, session: object, envelope: object, hostname: str, responses: list[str]):
        session.host_name = hostname  # type: ignore[attr-defined]  # what aiosmtpd does itself without this hook
        if isinstance(server, ChunkingSMTP):
            responses.insert(-1, "250-CHUNKING")
        return responses


class ChunkingSMTP(SMTP):
    """aiosmtpd plus BDAT: chunks are read exactly (no dot-stuffing) and the message is handed to the handler
    on the chunk marked LAST."""

    async def smtp_BDAT(self, arg: str) -> None:
        parts = (arg or "").split()
        if not parts or not parts[0].isdigit() or len(parts) > 2 or (len(parts) == 2 and parts[1].upper() != "LAST"):
            await self.push("501 5.5.4 Syntax: BDAT <size> [LAST]")
            return
        size, last = int(parts[0]), len(parts) == 2
        chunk = await self._reader.readexactly(size) if size else b""
        if self.envelope is None or not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        self.envelope.original_content = (self.envelope.original_content or b"") + chunk
        if not last:
            await self.push(f"250 2.0.0 {size} octets received")
            return
        self.envelope.content = self.envelope.original_content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push(status)


async def main() -> None:
    """Serve until told to quit on stdin."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", help="append '<time>\\t<Message-ID>\\t<recipients>' per accepted message")
    parser.add_argument("--chunking", action="store_true", help="also offer CHUNKING (BDAT)")
    args = parser.parse_args()
    loop = asyncio.get_running_loop()
    counter = Counter(args.record)
    kind = ChunkingSMTP if args.chunking else SMTP
    server = await loop.create_server(lambda: kind(counter, hostname="sink.test"), host="127.0.0.1", port=0)
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
