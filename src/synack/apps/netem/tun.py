"""TUN mode of `synack netem`: any IP traffic between two namespaces, impaired.

The kernel here has no netem qdisc, so the impairment is done in this process.
It makes two network namespaces, ``synack-PID-a`` and ``synack-PID-b``, and two
TUN devices, one moved into each. In a the device has 198.18.0.1/15, in b
198.18.1.1/15 (RFC 2544's benchmarking range), so every packet a sends to b goes
out of a's device into this process, through the "up" `Lane`, and is written into
b's device, where b's kernel receives it; b's answers take the "down" lane back.
Anything IP crosses: the kernel's TCP, ping, QUIC, synack's own TCP.

Corruption flips a bit of the IP payload only, never the IP header, so the header
checksum stays valid and the damage reaches the transport, whose checksum (TCP's,
UDP's) is what catches it.

Everything made is removed on the way out: the devices vanish when their
descriptors close, the namespaces are deleted in a ``finally``, on SIGINT, SIGTERM
and SIGHUP as on errors. Namespaces left by a run that was killed outright
(SIGKILL) are deleted by the next run, once the PID in their name is provably not
running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable

from synack.apps.netem.impair import Impairment, Lane, ip_payload_offset
from synack.apps.netem.outbox import Outbox
from synack.apps.netem.relay import describe_trace
from synack.apps.netem.summary import LaneReport, Summary
from synack.drivers.tun import TUN_PATH, TunDevice
from synack.errors import UserError

NS_PREFIX = "synack-"
A_ADDRESS = "198.18.0.1"
B_ADDRESS = "198.18.1.1"
PREFIX_LENGTH = 15  # 198.18.0.0/15: all of it is on the other side of the device
IP_TIMEOUT = 10.0  # seconds any one `ip` command may take
STALE = re.compile(re.escape(NS_PREFIX) + r"(\d+)-[ab]")
READ_BATCH = 64


def check_can_run() -> None:
    """One line, before anything is made, for each thing TUN mode cannot do without."""
    if os.geteuid() != 0:
        raise UserError(
            "netem tun needs root: it creates network namespaces and TUN devices (try sudo)"
        )
    if shutil.which("ip") is None:
        raise UserError("netem tun needs the ip command from iproute2 (apt-get install iproute2)")
    if not os.path.exists(TUN_PATH):
        raise UserError(f"netem tun needs {TUN_PATH} (modprobe tun)")


def ip(*args: str) -> str:
    """Run ``ip ARGS``; a failure becomes one line with ip's own reason."""
    try:
        done = subprocess.run(
            ["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise UserError(f"ip {' '.join(args)}: no answer in {IP_TIMEOUT:g}s") from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["failed"])[0]
        raise UserError(f"ip {' '.join(args)}: {reason}")
    return done.stdout


def namespace_names(pid: int) -> tuple[str, str]:
    return f"{NS_PREFIX}{pid}-a", f"{NS_PREFIX}{pid}-b"


def device_names(pid: int) -> tuple[str, str]:
    return f"synack{pid}a", f"synack{pid}b"  # at most 14 bytes: IFNAMSIZ allows 15


def list_namespaces() -> list[str]:
    return [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_namespaces(
    names: list[str], alive: Callable[[int], bool] = pid_alive, me: int | None = None
) -> list[str]:
    """Our namespaces whose creator is provably gone: no process has its PID.

    Called before this run makes its own, so names with our own PID are stale too
    (a dead run that had the same PID). A PID taken since by another process keeps
    its namespaces, as we cannot prove them stale: never delete anyone else's."""
    me = os.getpid() if me is None else me
    out = []
    for name in names:
        m = STALE.fullmatch(name)
        if m is not None and (int(m.group(1)) == me or not alive(int(m.group(1)))):
            out.append(name)
    return out


def remove_stale(log: Callable[[str], None]) -> list[str]:
    removed = []
    for name in stale_namespaces(list_namespaces()):
        try:
            ip("netns", "delete", name)
        except UserError as exc:
            log(f"synack netem: cannot remove stale namespace {name}: {exc}")
            continue
        log(f"synack netem: removed namespace {name} left by a run that died")
        removed.append(name)
    return removed


class Topology:
    """Two namespaces joined through two TUN devices held by this process."""

    def __init__(self, pid: int | None = None) -> None:
        self.pid = os.getpid() if pid is None else pid
        self.ns_a, self.ns_b = namespace_names(self.pid)
        self.name_a, self.name_b = device_names(self.pid)
        self.dev_a: TunDevice | None = None
        self.dev_b: TunDevice | None = None
        self._made: list[str] = []  # namespaces to delete

    def setup(self) -> None:
        """Make everything; on any failure, undo what was made and raise."""
        try:
            for ns, name, address, attr in (
                (self.ns_a, self.name_a, A_ADDRESS, "dev_a"),
                (self.ns_b, self.name_b, B_ADDRESS, "dev_b"),
            ):
                ip("netns", "add", ns)
                self._made.append(ns)
                try:
                    device = TunDevice(name)
                except OSError as exc:
                    raise UserError(f"cannot create TUN device {name}: {exc.strerror}") from None
                setattr(self, attr, device)
                ip("link", "set", "dev", device.name, "netns", ns)
                # No IPv6 link-local address: no router solicitations or MLD reports
                # to cross the relay and blur its counts. IPv6 still works if added.
                ip("-n", ns, "link", "set", "dev", device.name, "addrgenmode", "none")
                ip("-n", ns, "addr", "add", f"{address}/{PREFIX_LENGTH}", "dev", device.name)
                ip("-n", ns, "link", "set", "dev", device.name, "up")
                ip("-n", ns, "link", "set", "dev", "lo", "up")
        except BaseException:
            self.teardown()
            raise

    def teardown(self) -> list[str]:
        """Remove everything made; returns one line per thing that could not be."""
        problems = []
        for device in (self.dev_a, self.dev_b):
            if device is not None:
                device.close()  # a non-persistent device disappears with its descriptor
        self.dev_a = self.dev_b = None
        while self._made:
            ns = self._made.pop()
            try:
                ip("netns", "delete", ns)
            except UserError as exc:
                problems.append(str(exc))
        return problems


class TunRelay:
    """Moves packets between the two devices through the two lanes."""

    def __init__(
        self,
        dev_a: TunDevice,
        dev_b: TunDevice,
        up: Impairment,
        down: Impairment,
        *,
        seed: int,
        log: Callable[[str], None] | None = None,
        verbose: bool = False,
    ) -> None:
        self.dev_a = dev_a
        self.dev_b = dev_b
        self.seed = seed
        self.up = Lane(up, seed, "up", region=ip_payload_offset)
        self.down = Lane(down, seed, "down", region=ip_payload_offset)
        self._log = log
        if verbose:
            self.up.trace = []
            self.down.trace = []
        self._boxes: list[Outbox] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = 0.0

    def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self._started = loop.time()
        up_box = Outbox(loop, _write, self.up.stats)
        down_box = Outbox(loop, _write, self.down.stats)
        self._boxes = [up_box, down_box]
        loop.add_reader(
            self.dev_a.fileno(), self._readable, self.dev_a, self.dev_b, self.up, up_box
        )
        loop.add_reader(
            self.dev_b.fileno(), self._readable, self.dev_b, self.dev_a, self.down, down_box
        )

    def _readable(self, src: TunDevice, dst: TunDevice, lane: Lane, box: Outbox) -> None:
        assert self._loop is not None
        try:
            packets = src.read_batch(READ_BATCH)
        except OSError:
            return  # the device went away (teardown); the reader is removed by stop()
        now = self._loop.time()
        for packet in packets:
            for when, data, reordered in lane.admit(packet, now):
                box.put(when, data, dst, reordered)
            if lane.trace is not None:
                if self._log is not None:
                    self._log(
                        f"{now - self._started:.6f} {lane.name} {describe_packet(packet)} "
                        f"{describe_trace(lane.trace)}"
                    )
                lane.trace.clear()
        box.flush()

    def summary(self) -> Summary:
        """What the relay has done so far."""
        elapsed = self._loop.time() - self._started if self._loop is not None else 0.0
        return Summary(
            "tun",
            self.seed,
            elapsed,
            [
                LaneReport(
                    "up", f"a {A_ADDRESS} -> b {B_ADDRESS}", self.up.impairment, self.up.stats
                ),
                LaneReport(
                    "down", f"b {B_ADDRESS} -> a {A_ADDRESS}", self.down.impairment, self.down.stats
                ),
            ],
        )

    def stop(self) -> Summary:
        """Stop reading; copies still held are dropped and counted. Returns the summary."""
        summary = self.summary()
        if self._loop is not None:
            for device in (self.dev_a, self.dev_b):
                if device.fd >= 0:
                    self._loop.remove_reader(device.fd)
        for box in self._boxes:
            box.close()
        return summary


def _write(packets: list[bytes], device: TunDevice) -> tuple[int, int]:
    """One write per packet (a TUN device takes one a call); returns how many were
    written and their bytes (one the kernel refuses is counted as an error)."""
    written = nbytes = 0
    for packet in packets:
        try:
            device.write(packet)
        except OSError:
            continue
        written += 1
        nbytes += len(packet)
    return written, nbytes


_PROTOCOLS = {1: "ICMP", 6: "TCP", 17: "UDP"}


def describe_packet(packet: bytes) -> str:
    """``198.18.0.1.40000 > 198.18.1.1.5001: TCP 1500 bytes`` (IPv4), tcpdump-like."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        version = packet[0] >> 4 if packet else 0
        return f"IPv{version} {len(packet)} bytes"
    ihl = (packet[0] & 0x0F) * 4
    proto = packet[9]
    src = ".".join(str(b) for b in packet[12:16])
    dst = ".".join(str(b) for b in packet[16:20])
    name = _PROTOCOLS.get(proto, f"proto {proto}")
    if proto in (6, 17) and len(packet) >= ihl + 4:
        sport = int.from_bytes(packet[ihl : ihl + 2], "big")
        dport = int.from_bytes(packet[ihl + 2 : ihl + 4], "big")
        return f"{src}.{sport} > {dst}.{dport}: {name} {len(packet)} bytes"
    return f"{src} > {dst}: {name} {len(packet)} bytes"


# ---------------------------------------------------------------------- commands in namespaces


def command_env(topology: Topology) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SYNACK_NETEM_A=A_ADDRESS,
        SYNACK_NETEM_B=B_ADDRESS,
        SYNACK_NETEM_NS_A=topology.ns_a,
        SYNACK_NETEM_NS_B=topology.ns_b,
    )
    return env


async def start_command(ns: str, command: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    """``sh -c COMMAND`` inside namespace `ns`, in a process group of its own so that
    stopping it stops everything it started."""
    return await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, "sh", "-c", command, env=env, start_new_session=True
    )


async def stop_command(proc: asyncio.subprocess.Process, grace: float = 3.0) -> None:
    """SIGTERM to the command's process group, then SIGKILL to whatever of the group is
    left after `grace` seconds (a server it put in the background, say)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), grace)


def exit_status(returncode: int | None) -> int:
    if returncode is None:
        return 0
    return 128 - returncode if returncode < 0 else returncode


def run_note(proc: asyncio.subprocess.Process, stopped: bool) -> str | int:
    """How a --run command ended, for the summary."""
    code = proc.returncode
    if stopped or code is None:
        return "stopped by netem"
    return code if code >= 0 else f"killed by signal {-code}"
