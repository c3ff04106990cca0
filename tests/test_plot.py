"""``synack plot``: a capture of a lossy transfer (the core on the fake network, captured
where the sender sits) read into the series of the three graphs, and drawn as SVG whose
groups carry each series by name, and as PNG."""

from __future__ import annotations

import os
import statistics
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from synack.apps.plot.analysis import Flow, Packet, analyze, flows, parse_capture
from synack.cli import main
from synack.tcp import Config, State
from synack.testing.fakenet import FakeNetwork, Link, PacketEvent, connected_pair
from synack.wire.pcap import tcp_packet, write_records

SENDER = bytes([198, 18, 0, 1])
DELAY = 0.010  # one way: RTT samples sit near 20 ms
SIZE = 400_000
EPOCH = 1_700_000_000.0


def lossy_capture(path: Path, *, loss: float = 0.03, seed: int = 5) -> None:
    """A transfer of SIZE bytes from 198.18.0.1, captured at the sender as tcpdump would:
    what it sends when sent, what it receives when received (lost segments included)."""
    rows: list[tuple[float, bytes]] = []
    ident = [0]

    def tap(
        now: float, event: PacketEvent, data: bytes | bytearray, src: bytes, dst: bytes
    ) -> None:
        if (event is PacketEvent.SENT and src == SENDER) or (
            event is PacketEvent.DELIVERED and dst == SENDER
        ):
            ident[0] += 1
            rows.append((EPOCH + now, tcp_packet(data, src, dst, ident[0])))

    net = FakeNetwork(seed=seed, link=Link(delay=DELAY))
    net.tap = tap
    client, server = connected_pair(net, Config())
    net.set_default_link(Link(delay=DELAY, loss=loss))
    payload = memoryview(os.urandom(SIZE))
    sent = 0

    def feed(now: float) -> None:
        nonlocal sent
        while sent < SIZE and client.send_space:
            sent += client.send(payload[sent:])
        if sent == SIZE and client.state is State.ESTABLISHED:
            client.shutdown()

    def drain(now: float) -> None:
        while server.receive():
            pass

    net.set_app("198.18.0.1", feed)
    net.set_app("198.18.0.2", drain)
    feed(net.now)
    net.run_until(lambda: server.at_eof, timeout=600.0, what="the transfer")
    server.close()
    net.run_until(lambda: client.state is State.TIME_WAIT, timeout=600.0, what="the close")
    path.write_bytes(b"".join(write_records(rows)))


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("plot") / "lossy.pcap"
    lossy_capture(path)
    return path


def test_the_series_of_a_lossy_transfer(capture: Path) -> None:
    (flow,) = flows(parse_capture(capture.read_bytes()))
    s = analyze(flow)
    assert s.sender == (SENDER, flow.a[1]) and s.window_scale is not None
    assert len(s.segments) >= SIZE // 1448
    assert s.retransmissions, "3% loss and no retransmission?"
    assert s.sack, "losses in a window are SACKed"
    # The segments cover the whole transfer; the last ACK covers it and the FIN.
    assert s.segments[0][1] == 1 and max(end for _t, _a, end in s.segments) >= SIZE + 1
    assert s.acks[-1][1] == SIZE + 2
    assert all(a[1] <= b[1] for a, b in zip(s.acks, s.acks[1:], strict=False))
    assert all(edge >= ack for (_t, ack), (_u, edge) in zip(s.acks, s.rwnd, strict=True))
    # Retransmissions resend bytes already sent, never new ones.
    first_end = {}
    for t, a, end in s.segments:
        first_end[a] = (t, end)
    assert all(a in first_end and first_end[a][0] < t for t, a, _e in s.retransmissions)
    # RTT from timestamps, near the path's 20 ms (delayed ACKs and losses add to some).
    assert s.rtt_source == "timestamps" and len(s.rtt) > 50
    assert 1.99 * DELAY <= statistics.median(r for _t, r in s.rtt) < 4 * DELAY
    # Goodput summed over the intervals is the data acknowledged.
    acked = sum(rate for _t, rate in s.goodput) * s.interval
    assert abs(acked - (SIZE + 1)) < 2
    sent = sum(rate for _t, rate in s.sent_rate) * s.interval
    assert sent > SIZE


def test_sequence_numbers_unwrap_and_rtt_comes_from_acks_without_timestamps() -> None:
    a, b = (SENDER, 40000), (bytes([198, 18, 0, 2]), 80)
    isn = 0xFFFFFF00  # wraps after 256 bytes
    packets = [
        Packet(0.0, a, b, isn, 0, 0x02, 1000, 0, wscale=2),
        Packet(0.01, b, a, 7, isn + 1, 0x12, 1000, 0, wscale=3),
        Packet(0.02, a, b, isn + 1, 8, 0x10, 1000, 200),
        Packet(0.02, a, b, isn + 201, 8, 0x10, 1000, 200),
        Packet(0.03, b, a, 8, isn + 201, 0x10, 100, 0),
        Packet(0.25, a, b, isn + 201, 8, 0x10, 1000, 200),  # a retransmission
        Packet(0.26, b, a, 8, isn + 401, 0x10, 100, 0, sack=()),
    ]
    flow = Flow(a, b, packets)
    s = analyze(flow)
    assert s.window_scale == 3
    assert [seg[1:] for seg in s.segments] == [(1, 201), (201, 401)]
    assert [r[1:] for r in s.retransmissions] == [(201, 401)]
    assert [ack for _t, ack in s.acks] == [1, 201, 401]
    assert [edge for _t, edge in s.rwnd] == [1001, 201 + 800, 401 + 800]
    # Karn: the first ACK times the segment sent once; the retransmitted one gives nothing.
    assert s.rtt_source == "sequence numbers"
    assert [round(r, 3) for _t, r in s.rtt] == [0.01]


def _ids(svg: Path) -> dict[str, int]:
    """Each element id in the SVG with the number of drawn paths below it."""
    root = ET.parse(svg).getroot()
    found = {}
    for el in root.iter():
        ident = el.get("id")
        if ident:
            found[ident] = sum(1 for e in el.iter() if e.tag.endswith(("path", "use")))
    return found


def test_plot_draws_the_three_graphs_as_svg_with_named_series(
    capture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib", reason="synack plot needs matplotlib (the plot extra)")
    out = tmp_path / "graphs"
    assert main(["plot", str(capture), "--format", "svg", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "retransmissions" in printed and "RTT samples" in printed
    tsg, tput, rtt = (out / f"lossy-{name}.svg" for name in ("tsg", "throughput", "rtt"))
    assert printed.splitlines()[1:] == [str(tsg), str(tput), str(rtt)]
    ids = _ids(tsg)
    for series in ("segments", "retransmissions", "ack", "rwnd", "sack"):
        assert ids.get(series, 0) > 0, (series, sorted(ids))
    assert _ids(tput).get("goodput", 0) > 0 and _ids(tput).get("sent", 0) > 0
    assert _ids(rtt).get("rtt", 0) > 0
    # The same capture draws the same bytes (no dates, fixed ids).
    again = tmp_path / "again"
    assert main(["plot", str(capture), "--format", "svg", "--out", str(again)]) == 0
    assert (again / "lossy-tsg.svg").read_bytes() == tsg.read_bytes()


def test_plot_writes_png_by_default_and_lists_flows(
    capture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib", reason="synack plot needs matplotlib (the plot extra)")
    assert main(["plot", str(capture), "--out", str(tmp_path)]) == 0
    for name in ("tsg", "throughput", "rtt"):
        assert (tmp_path / f"lossy-{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()
    assert main(["plot", str(capture), "--list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert len(listing) == 1 and listing[0].startswith("  1  198.18.0.1:")


def test_plot_errors_are_one_line(
    capture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plot", str(tmp_path / "missing.pcap")]) == 1
    assert capsys.readouterr().err.startswith("synack: cannot read ")
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"this is not a capture at all")
    assert main(["plot", str(junk)]) == 1
    assert "not a pcap file" in capsys.readouterr().err
    assert main(["plot", str(capture), "--flow", "2"]) == 2
    err = capsys.readouterr().err
    assert err == "synack: --flow 2: the capture has 1 connection(s)\n"
