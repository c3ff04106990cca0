"""What one input costs a `synack.tcp.Host` as idle connections pile up on it.

A driver does this per datagram: ``handle_segment``, then ``segments_to_send`` and
``get_timer`` once each (the contract in `synack.tcp.host`). The bench times exactly
that on a server host holding N established connections, one of which receives a
bulk transfer while the others sit idle (keepalive on, so each idle connection has
a timer pending, as on a real server). Every N is measured in the same run,
interleaved, and reported against N = 1: a host that scans its connections per call
grows linearly with N, one that tracks only the endpoints with work stays flat.

Everything runs in one thread on virtual time; the figure is CPU time of the
measured calls only (the client side and the application's reads are not counted).
Payloads are random bytes, since a checksum over zeros costs almost nothing.

    python3 bench/host_idle.py                       # N = 1, 1,000 and 10,000
    python3 bench/host_idle.py --counts 1,1000 --inputs 2000
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from synack.tcp import Config, Connection, Host, State

PAYLOAD = 1448
CLIENT = "198.18.0.1"
SERVER = "198.18.0.2"
PORT = 80
STEP = 0.0001  # virtual seconds between client bursts
BATCH = 1000  # connections opened per handshake round (within the listen backlog)


def pump(a: Host, b: Host, now: float) -> None:
    """Carry segments between two hosts until both fall silent (no loss, no delay)."""
    moved = True
    while moved:
        moved = False
        for src, dst in ((a, b), (b, a)):
            for seg, s, _d in src.segments_to_send(now):
                dst.handle_segment(seg, s, now)
                moved = True


class Pair:
    """A client and a server host joined by `count` established connections."""

    def __init__(self, count: int, config: Config) -> None:
        self.client_host = Host(CLIENT, config)
        self.server_host = Host(SERVER, config)
        self.server_host.listen(PORT, backlog=BATCH)
        self.now = 0.0
        clients: list[Connection] = []
        servers: list[Connection] = []
        while len(clients) < count:
            batch = [
                self.client_host.connect((SERVER, PORT), self.now)
                for _ in range(min(BATCH, count - len(clients)))
            ]
            pump(self.client_host, self.server_host, self.now)
            while (conn := self.server_host.accept(PORT)) is not None:
                servers.append(conn)
            if any(c.state is not State.ESTABLISHED for c in batch):
                raise RuntimeError("a handshake did not complete")
            clients.extend(batch)
        if len(servers) != count:
            raise RuntimeError(f"accepted {len(servers)} of {count} connections")
        pump(self.client_host, self.server_host, self.now)
        self.client = clients[0]
        self.server = next(s for s in servers if s.remote_port == self.client.local_port)
        self.chunk = os.urandom(1 << 20)
        self.offset = 0

    def run(self, inputs: int) -> float:
        """Deliver `inputs` data segments to the server host; CPU µs per input."""
        client_host, server_host = self.client_host, self.server_host
        client, server = self.client, self.server
        clock = time.process_time_ns
        spent = 0
        done = 0
        while done < inputs:
            self.now += STEP
            now = self.now
            for host in (client_host, server_host):
                t = host.get_timer()
                if t is not None and t <= now:
                    host.handle_timer(now)
            if client.send_space >= 64 * PAYLOAD:
                if self.offset + 64 * PAYLOAD > len(self.chunk):
                    self.offset = 0
                self.offset += client.send(
                    memoryview(self.chunk)[self.offset : self.offset + 64 * PAYLOAD]
                )
            datagrams = client_host.segments_to_send(now)[: inputs - done]
            replies = []
            # The measured part: what a driver does with each datagram that arrives.
            start = clock()
            for seg, src, _dst in datagrams:
                server_host.handle_segment(seg, src, now)
                replies.extend(server_host.segments_to_send(now))
                server_host.get_timer()
            spent += clock() - start
            done += len(datagrams)
            server.receive()  # the application reads (not counted)
            replies.extend(server_host.segments_to_send(now))
            for seg, src, _dst in replies:
                client_host.handle_segment(seg, src, now)
            if not datagrams and not replies:
                self.now += 0.2  # nothing moved: let a timer (delayed ACK, RTO) run
        return spent / 1000 / done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--counts", default="1,1000,10000", help="connections on the host, comma-separated"
    )
    parser.add_argument("--inputs", type=int, default=20_000, help="inputs timed per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (median shown)")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    if counts[0] != 1:
        counts.insert(0, 1)

    config = Config(secret=b"bench" * 8, keepalive=True)
    pairs = {}
    for count in counts:
        start = time.process_time()
        pairs[count] = Pair(count, config)
        print(f"set up {count} connections in {time.process_time() - start:.2f} s CPU")
    samples: dict[int, list[float]] = {count: [] for count in counts}
    for _ in range(args.rounds):
        for count in counts:
            samples[count].append(pairs[count].run(args.inputs))

    base = statistics.median(samples[1])
    print()
    print("| connections on the host | µs per input (CPU) | ratio to one connection |")
    print("|---|---|---|")
    for count in counts:
        cost = statistics.median(samples[count])
        print(f"| {count:,} | {cost:7.2f} | {cost / base:5.2f}x |")
    for count in counts[1:]:
        ratio = statistics.median(samples[count]) / base
        print(f"ratio {count}/1: {ratio:.2f}x")


if __name__ == "__main__":
    main()
