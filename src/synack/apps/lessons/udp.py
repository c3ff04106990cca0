"""`udp`: datagrams on real loopback sockets -- boundaries kept, loss not repaired.

A sender sends four datagrams to a receiver through a lossy link, a small relay
between them that drops the second datagram (loopback itself never loses any).

Claim: each recvfrom() returns exactly one datagram, as it was sent (boundaries kept);
the lost one is simply gone: nothing resends it and nothing tells the sender.

Like the UDP chat, it uses asyncio's datagram endpoints (no socket module in apps).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from synack.apps.lessons.common import check, verdict
from synack.apps.lessons.model import End, LessonRun
from synack.apps.lessons.realtime import Tape

HOST = "127.0.0.1"
WAIT = 5.0
DATAGRAMS = [b"one", b"two", b"three", b"end"]
LOSE = 1  # index of the datagram the link drops


class _Receiver(asyncio.DatagramProtocol):
    """Keeps every datagram as one recvfrom() returned it."""

    def __init__(self) -> None:
        self.got: list[bytes] = []
        self.done = asyncio.Event()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.append(data)
        if data == DATAGRAMS[-1]:
            self.done.set()


class _LossyLink(asyncio.DatagramProtocol):
    """Forwards datagrams to the receiver, except the one chosen to be lost."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.seen: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.seen.append(data)
        if len(self.seen) - 1 != LOSE and self.transport is not None:
            self.transport.sendto(data, self.target)


async def _udp() -> LessonRun:
    tape = Tape("udp", (End("client", "end.sender", HOST), End("server", "end.receiver", HOST)))
    loop = asyncio.get_running_loop()
    tape.note("udp.intro")
    receiver = _Receiver()
    rx, _ = await loop.create_datagram_endpoint(lambda: receiver, local_addr=(HOST, 0))
    link = _LossyLink(rx.get_extra_info("sockname")[:2])
    relay, _ = await loop.create_datagram_endpoint(lambda: link, local_addr=(HOST, 0))
    tx, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=(HOST, 0))
    try:
        to = relay.get_extra_info("sockname")[:2]
        for i, data in enumerate(DATAGRAMS):
            tx.sendto(data, to)
            tape.arrow("client", "server", f"sendto({data!r})", lost=i == LOSE)
            if i == LOSE:
                tape.note("udp.lost")
        await asyncio.wait_for(receiver.done.wait(), WAIT)
        # The link has seen everything the sender sent once the last datagram is through.
        for data in receiver.got:
            tape.call("server", f"recvfrom() -> {data!r}")
        tape.note("udp.boundaries", n=len(receiver.got))
        tape.note("udp.no_repair", sent=len(link.seen))
    finally:
        tx.close()
        relay.close()
        rx.close()

    expected = [d for i, d in enumerate(DATAGRAMS) if i != LOSE]
    run = tape.run
    run.verdict = verdict(
        "udp.claim",
        [
            check(
                "udp.check.boundaries",
                receiver.got == expected,
                got=", ".join(repr(d) for d in receiver.got),
            ),
            check(
                "udp.check.not_repaired",
                link.seen == DATAGRAMS and DATAGRAMS[LOSE] not in receiver.got,
                sent=len(link.seen),
                lost=repr(DATAGRAMS[LOSE]),
            ),
        ],
        sent=[d.decode() for d in DATAGRAMS],
        through_link=[d.decode() for d in link.seen],
        received=[d.decode() for d in receiver.got],
    )
    return run


def run() -> LessonRun:
    return asyncio.run(_udp())
