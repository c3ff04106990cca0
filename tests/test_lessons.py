"""`synack lesson`: every lesson runs, its claim holds on the evidence, and it reads the
same in English and Chinese, aligned, deterministic, and as pcap for Wireshark."""

from __future__ import annotations

import itertools
import json
import os
import re
import string
import struct
import subprocess
import sys
import unicodedata
from functools import cache
from pathlib import Path

import pytest

from synack.apps.lessons import NAMES, lessons
from synack.apps.lessons.i18n import LANGUAGES, SAME_IN_BOTH, language_from_environment, text
from synack.apps.lessons.ladder import LEFT, RIGHT, Line, display_width, render, wrap
from synack.apps.lessons.messages import MESSAGES
from synack.apps.lessons.model import (
    LessonRun,
    NoteRecord,
    SectionRecord,
    SegmentRecord,
    TimerRecord,
)
from synack.apps.lessons.pcap import LINKTYPE_RAW, write_pcap
from synack.wire.checksum import internet_checksum
from synack.wire.tcp import checksum_ok

CJK = re.compile(r"[\u4e00-\u9fff]")


@cache
def lesson_run(name: str) -> LessonRun:
    """Each lesson runs once per test session; its run is plain data, shared by the tests."""
    return lessons()[name].run()


def test_the_lessons_are_the_ones_the_issue_names() -> None:
    assert NAMES == (
        "layers",
        "handshake",
        "close",
        "time-wait",
        "retransmit",
        "sticky",
        "backlog",
        "syn-flood",
        "udp",
        "many-clients",
        "download",
    )
    assert list(lessons()) == list(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_lesson_claim_holds(name: str) -> None:
    run = lesson_run(name)
    assert run.verdict is not None
    failed = [c.key for c in run.verdict.checks if not c.passed]
    assert run.verdict.passed, f"{name}: checks failed: {failed}"
    json.dumps(run.to_json(), ensure_ascii=False)  # the records are plain data


# ---------------------------------------------------------------------- evidence, lesson by lesson


def test_handshake_is_syn_synack_ack_with_the_notes_states() -> None:
    run = lesson_run("handshake")
    ev = run.verdict.evidence  # type: ignore[union-attr]
    assert ev["flags"] == ["S", "S.", "."]
    assert ev["client_states"] == ["CLOSED", "SYN_SENT", "ESTABLISHED"]
    assert ev["server_states"] == ["LISTEN", "SYN_RCVD", "ESTABLISHED"]
    assert ev["synack_ack"] == (ev["client_isn"] + 1) & 0xFFFFFFFF
    assert ev["ack_ack"] == (ev["server_isn"] + 1) & 0xFFFFFFFF
    sent = run.segments("sent")
    assert [(r.src, r.seq, r.ack) for r in sent] == [
        ("client", 0, None),
        ("server", 0, 1),
        ("client", 1, 1),
    ]


def test_close_is_fin_ack_fin_ack_through_time_wait() -> None:
    ev = lesson_run("close").verdict.evidence  # type: ignore[union-attr]
    fins_and_acks = [s for s in ev["close_segments"] if not s.endswith("P.")]
    assert fins_and_acks[:4] == ["client F.", "server .", "server F.", "client ."] or (
        # the client's ACK of the server's last words may come between
        fins_and_acks == ["client F.", "server .", "client .", "server F.", "client ."]
    )
    assert ev["client_states"][-4:] == ["FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT", "CLOSED"]
    assert ev["server_states"][-3:] == ["CLOSE_WAIT", "LAST_ACK", "CLOSED"]
    assert ev["half_close_data"] == "bye, one more thing"
    assert ev["time_wait_seconds"] == 2 * ev["msl"]


def test_time_wait_re_acks_a_resent_fin_and_without_it_a_reset() -> None:
    run = lesson_run("time-wait")
    ev = run.verdict.evidence  # type: ignore[union-attr]
    assert ev["reack_flags"] == "."
    assert ev["reack_state"] == "TIME-WAIT"
    assert ev["time_wait_after_reack"] == 2 * ev["msl"]
    assert ev["without_wait_answer"] == "R"
    lost = [r for r in run.segments("lost") if r.src == "client"]
    assert len(lost) == 2 and all(r.flags == "." for r in lost)  # one last ACK in each part
    resent = [r for r in run.segments("sent") if r.src == "server" and r.retransmission]
    assert len(resent) == 2 and all("F" in r.flags for r in resent)


def test_retransmit_keeps_a_copy_doubles_the_rto_and_gives_up() -> None:
    run = lesson_run("retransmit")
    ev = run.verdict.evidence  # type: ignore[union-attr]
    assert ev["kept_bytes"] == 5
    assert ev["received"] == "hello"
    intervals = ev["intervals"]
    assert len(intervals) == ev["max_retransmits"] + 1
    for before, after in itertools.pairwise(intervals):
        assert after == pytest.approx(2 * before)
    assert ev["retransmissions"] == ev["max_retransmits"]
    assert ev["timed_out"] and ev["final_state"] == "CLOSED"
    timers = [r for r in run.records if isinstance(r, TimerRecord) and r.end == "client"]
    assert timers[-1].gave_up and not any(t.gave_up for t in timers[:-1])
    assert [t.rto for t in timers[-len(intervals) :]] == pytest.approx(intervals)
    # The lost segment and its copy: the same sequence number, marked as a retransmission.
    data = [r for r in run.segments("sent") if r.src == "client" and r.length]
    assert data[0].seq == data[1].seq and data[1].retransmission


def test_backlog_fills_both_queues_and_the_next_client_waits() -> None:
    ev = lesson_run("backlog").verdict.evidence  # type: ignore[union-attr]
    assert ev["accept_queue_lengths"] == [1, 2, 3]  # backlog 2: Linux's backlog + 1
    assert ev["syn_acks_to_fourth_before_accept"] == 0
    assert ev["listen_overflows"] >= 2  # its SYN and its first retransmission
    assert ev["syn_queue_length"] == ev["backlog"]
    assert ev["syns_dropped"] >= 1


def test_syn_flood_locks_clients_out_without_cookies_and_not_with_them() -> None:
    run = lesson_run("syn-flood")
    ev = run.verdict.evidence  # type: ignore[union-attr]
    assert ev["connected_without_cookies"] == 0
    assert ev["connected_with_cookies"] == ev["clients"] == 3
    assert ev["syn_queue_without"] == ev["syn_queue_with"] == [4, 4, 4]
    assert ev["cookies_sent"] > 0
    # The flood is recorded (for pcap) but not drawn one segment at a time.
    crowd = run.segments("sent", background=True)
    assert sum(1 for r in crowd if r.dst == "server") == ev["forged_syns"]
    assert sum(1 for r in crowd if r.src == "server") >= ev["cookies_sent"]


def test_sticky_glues_two_sends_and_the_length_prefix_recovers_them() -> None:
    ev = lesson_run("sticky").verdict.evidence  # type: ignore[union-attr]
    assert ev["one_read"] == "helloworld"
    assert ev["recovered"] == ["hello", "world"]


def test_udp_keeps_boundaries_and_does_not_repair_loss() -> None:
    ev = lesson_run("udp").verdict.evidence  # type: ignore[union-attr]
    assert ev["received"] == ["one", "three", "end"]
    assert ev["through_link"] == ev["sent"] == ["one", "two", "three", "end"]


def test_many_clients_one_at_a_time_against_a_task_each() -> None:
    ev = lesson_run("many-clients").verdict.evidence  # type: ignore[union-attr]
    assert ev["serial"]["most_active"] == 1
    assert ev["serial"]["answered_before_first_close"] == 1
    assert ev["concurrent"]["most_active"] == ev["concurrent"]["answered_before_first_close"] == 3


def test_download_one_recv_is_a_piece_and_the_size_first_is_whole() -> None:
    ev = lesson_run("download").verdict.evidence  # type: ignore[union-attr]
    assert 0 < ev["naive_bytes"] <= 1024 < ev["file_size"]
    assert not ev["naive_digest_ok"]
    assert ev["framed_bytes"] == ev["file_size"] and ev["framed_digest_ok"]
    assert ev["missing_answer"]["op"] == "error"


def test_layers_wraps_the_message_and_unwraps_it_again() -> None:
    run = lesson_run("layers")
    ev = run.verdict.evidence  # type: ignore[union-attr]
    assert ev["unwrapped"] == {"op": "say", "text": "你好, bob!"}
    assert ev["tcp_segment"] == ev["tcp_header"] + ev["app_frame"]
    assert ev["ip_packet"] == 20 + ev["tcp_segment"]
    assert ev["ethernet_frame"] == 14 + ev["ip_packet"] + 4
    assert ev["udp_datagram"] == 8 + ev["tcp_segment"] + 4  # UDP header, segment, CRC-32
    frame = bytes.fromhex(ev["frame_hex"])
    assert frame[12:14] == b"\x08\x00" and internet_checksum(frame[14:34]) == 0


# ---------------------------------------------------------------------- language


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_the_catalogue_has_every_key_in_both_languages() -> None:
    for key, pair in MESSAGES.items():
        assert len(pair) == len(LANGUAGES), key
        en, zh = pair
        assert en.strip() and zh.strip(), key
        assert _fields(en) == _fields(zh), f"{key}: placeholders differ"
        if key not in SAME_IN_BOTH:
            assert zh != en, f"{key} is not translated"
            assert CJK.search(zh), f"{key}: the Chinese has no Chinese in it"


def _narration(run: LessonRun, lang: str) -> list[str]:
    """Every sentence a lesson says (not code, bytes or state names)."""
    said = [text(lang, lessons()[run.name].title)]
    for r in run.records:
        if isinstance(r, NoteRecord | SectionRecord):
            said.append(text(lang, r.key, **r.params))
    assert run.verdict is not None
    said.append(text(lang, "verdict.holds", claim_key=run.verdict.claim))
    said += [text(lang, c.key, **c.params) for c in run.verdict.checks]
    return said


@pytest.mark.parametrize("name", NAMES)
def test_every_sentence_is_translated(name: str) -> None:
    run = lesson_run(name)
    english = _narration(run, "en")
    chinese = _narration(run, "zh")
    assert len(english) == len(chinese)
    untranslated = [s for s in chinese if not CJK.search(s)]
    assert not untranslated, f"{name}: sentences with no Chinese: {untranslated}"
    assert not [s for s in english if CJK.search(s) and "你好" not in s]


def _column_of(line: str, column: int) -> str:
    """The character at display column `column` of `line`."""
    at = 0
    for ch in line:
        if at == column:
            return ch
        at += display_width(ch)
    return ""


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("name", NAMES)
def test_the_ladder_lines_stay_aligned(name: str, lang: str) -> None:
    lines = render(lesson_run(name), lang, width=110)
    ladder = [line for line in lines if line.ladder]
    assert ladder, "every lesson draws a ladder"
    for line in ladder:
        plain = line.plain
        assert _column_of(plain, LEFT) == "|", plain
        assert _column_of(plain, RIGHT) == "|", plain
        assert display_width(plain) <= 110 or not line.narrated


def test_a_narrow_ladder_stays_aligned_with_narration_below() -> None:
    lines = render(lesson_run("handshake"), "zh", width=60)
    assert all(
        _column_of(line.plain, LEFT) == "|" == _column_of(line.plain, RIGHT)
        for line in lines
        if line.ladder
    )
    assert any(line.plain.startswith("    第一次握手") for line in lines)


def test_wrap_counts_double_width_and_keeps_punctuation_off_line_starts() -> None:
    pieces = wrap("第一次握手:客户端发出 SYN,进入 SYN_SENT 状态。", 12)
    assert all(display_width(p) <= 12 + 2 for p in pieces)
    assert not any(p[0] in ",。:" for p in pieces)
    assert "".join(pieces).replace(" ", "") == "第一次握手:客户端发出SYN,进入SYN_SENT状态。"
    assert wrap("one two three", 7) == ["one two", "three"]


def test_the_language_comes_from_the_locale() -> None:
    assert language_from_environment({"LANG": "zh_CN.UTF-8"}) == "zh"
    assert language_from_environment({"LANG": "zh_TW.UTF-8", "LC_ALL": "C.UTF-8"}) == "en"
    assert language_from_environment({"LANG": "en_US.UTF-8", "LC_MESSAGES": "zh_CN"}) == "zh"
    assert language_from_environment({}) == "en"


# ---------------------------------------------------------------------- determinism, CLI, pcap


def _plain(lines: list[Line]) -> str:
    return "".join(line.plain + "\n" for line in lines)


def test_handshake_is_the_same_on_every_run() -> None:
    first = lessons()["handshake"].run()
    second = lessons()["handshake"].run()
    assert _plain(render(first, "zh")) == _plain(render(second, "zh"))
    assert [r.data for r in first.segments("sent")] == [r.data for r in second.segments("sent")]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("LANG", "LC_ALL", "LC_MESSAGES")}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "synack", "lesson", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environ,
    )


def _read_pcap(path: Path) -> tuple[int, list[bytes]]:
    data = path.read_bytes()
    magic, major, minor, _zone, _sigfigs, _snaplen, linktype = struct.unpack_from("<IHHiIII", data)
    assert (magic, major, minor) == (0xA1B2C3D4, 2, 4)
    packets = []
    at = 24
    while at < len(data):
        _sec, _usec, incl, orig = struct.unpack_from("<IIII", data, at)
        assert incl == orig
        packets.append(data[at + 16 : at + 16 + incl])
        at += 16 + incl
    return linktype, packets


def _check_ipv4_tcp(packet: bytes) -> None:
    assert packet[0] == 0x45 and packet[9] == 6  # IPv4, 20-byte header, TCP
    assert struct.unpack_from("!H", packet, 2)[0] == len(packet)
    assert internet_checksum(packet[:20]) == 0, "bad IPv4 header checksum"
    assert checksum_ok(packet[12:16], packet[16:20], packet[20:]), "bad TCP checksum"


def test_the_cli_runs_a_lesson_as_plain_text_the_same_as_in_process(tmp_path: Path) -> None:
    pcap = tmp_path / "handshake.pcap"
    result = _cli("handshake", "--pcap", str(pcap), env={"LANG": "zh_CN.UTF-8"})
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout  # no terminal, no colour
    # Another process, another hash seed: the same bytes as this process draws.
    assert result.stdout == _plain(render(lesson_run("handshake"), "zh"))
    assert "== 三次握手 ==" in result.stdout and "✓ 结论成立" in result.stdout
    linktype, packets = _read_pcap(pcap)
    assert linktype == LINKTYPE_RAW
    assert len(packets) == 3
    for packet in packets:
        _check_ipv4_tcp(packet)
    assert [p[33] for p in packets] == [0x02, 0x12, 0x10]  # SYN, SYN+ACK, ACK


def test_the_pcap_holds_every_segment_sent_lost_ones_included(tmp_path: Path) -> None:
    run = lesson_run("retransmit")
    sent = run.segments("sent", background=None)
    count = write_pcap(tmp_path / "rt.pcap", sent)
    _, packets = _read_pcap(tmp_path / "rt.pcap")
    assert count == len(packets) == len(sent)
    assert any(isinstance(r, SegmentRecord) and r.event == "lost" for r in run.records)
    for packet, record in zip(packets, sent, strict=True):
        _check_ipv4_tcp(packet)
        assert packet[20:] == record.data


def test_the_cli_lists_the_lessons_and_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    listing = _cli("--lang", "en")
    assert listing.returncode == 0
    assert all(name in listing.stdout for name in NAMES)
    unknown = _cli("no-such-lesson")
    assert unknown.returncode == 2 and "no lesson named" in unknown.stderr
    loopback = _cli("sticky", "--pcap", str(tmp_path / "x.pcap"))
    assert loopback.returncode == 1 and "tcpdump -i lo" in loopback.stderr
    assert "Traceback" not in loopback.stderr and not (tmp_path / "x.pcap").exists()
    for transport in ("os", "synack"):  # the udp lesson has no TCP on either
        udp = _cli("udp", "--transport", transport, "--pcap", str(tmp_path / "u.pcap"))
        assert udp.returncode == 1 and "tcpdump -i lo udp" in udp.stderr, udp.stderr
        assert "Traceback" not in udp.stderr and not (tmp_path / "u.pcap").exists()


@pytest.mark.parametrize("name", ["sticky", "many-clients", "download"])
def test_the_socket_api_lessons_hold_on_synacks_tcp_and_write_its_segments(
    tmp_path: Path, name: str
) -> None:
    """On --transport synack the same claims hold, and --pcap has segments to write:
    every one a valid TCP/IPv4 packet, the handshake first."""
    pcap = tmp_path / f"{name}.pcap"
    env = {"LANG": "en_US.UTF-8", "SYNACK_EXIT_LINGER": "2"}
    result = _cli(name, "--transport", "synack", "--pcap", str(pcap), env=env)
    assert result.returncode == 0, result.stderr
    assert "✓ The claim holds" in result.stdout, result.stdout
    linktype, packets = _read_pcap(pcap)
    assert linktype == LINKTYPE_RAW
    assert len(packets) >= 3
    for packet in packets:
        _check_ipv4_tcp(packet)
    assert packets[0][33] == 0x02 and packets[1][33] == 0x12  # SYN, then SYN+ACK


def test_a_claim_that_fails_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse
    from dataclasses import replace

    from synack.apps.lessons import cli
    from synack.apps.lessons.model import Check

    def failing() -> LessonRun:
        run = lesson_run("handshake")
        assert run.verdict is not None
        broken = replace(
            run.verdict,
            checks=(*run.verdict.checks, Check("hs.check.flags", {"flags": "S"}, False)),
        )
        return LessonRun(run.name, run.ends, run.virtual_time, run.records, broken)

    table = dict(lessons())
    table["handshake"] = replace(table["handshake"], run=failing)
    monkeypatch.setattr(cli, "lessons", lambda: table)
    args = argparse.Namespace(name="handshake", lang="en", pcap=None, json=False, width=None)
    assert cli.run_lesson(args) == 1
    out = capsys.readouterr().out
    assert "✗ The claim does NOT hold" in out


def test_json_output_is_the_records() -> None:
    result = _cli("udp", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["lesson"] == "udp" and data["verdict"]["passed"]
    assert {r["kind"] for r in data["records"]} >= {"arrow", "call", "note"}


def test_east_asian_width_is_what_the_ladder_counts() -> None:
    assert display_width("三次握手") == 8
    assert unicodedata.east_asian_width("|") == "Na"
