"""The scenario format: every script in scenarios/ runs, and the runner reports failures
by line, with the expected and the actual segment."""

from __future__ import annotations

from pathlib import Path

import pytest

from synack.tcp import Config, State
from synack.testing.scenario import (
    ScenarioError,
    ScenarioFailure,
    ScenarioSyntaxError,
    parse_scenario,
    run_scenario,
)

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.pkt"))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario(path: Path) -> None:
    result = run_scenario(path)
    assert result.trace


def test_the_acceptance_topics_have_scenarios() -> None:
    names = {p.stem for p in SCENARIOS}
    for needed in (
        "handshake_active",
        "handshake_passive",
        "close_active",
        "close_passive",
        "time_wait",
        "rst",
        "retransmit_loss",
        "zero_window",
    ):
        assert needed in names


# A short script the tests below vary.
PLAIN = "config timestamps=off sack=off window_scaling=off\n"
OPEN = (
    PLAIN
    + """\
0      call conn.connect()
+0     > S 0:0(0) win 65535 <mss 1460>
+0.1   < S. 0:0(0) ack 1 win 65535 <mss 1460>
+0     > . 1:1(0) ack 1 win 65535
"""
)


def failure(text: str, **kwargs: object) -> str:
    with pytest.raises(ScenarioFailure) as info:
        run_scenario(text, **kwargs)  # type: ignore[arg-type]
    return str(info.value)


# ---------------------------------------------------------------------------- failures


def test_a_mismatch_names_the_line_and_shows_both_segments() -> None:
    message = failure(OPEN.replace("> . 1:1(0) ack 1 win 65535", "> . 1:1(0) ack 2 win 65535"))
    lines = message.splitlines()
    assert lines[0] == "<scenario>:5: outbound segment differs in ack"
    assert lines[1] == "  expected: > . 1:1(0) ack 2 win 65535"
    assert lines[2] == "  actual:   > . 1:1(0) ack 1 win 65535"
    assert lines[3].startswith("  tcpdump:  192.0.2.1.8080 > 192.0.2.2.40000: Flags [.], seq ")
    assert "ack 1000001, win 65535, length 0" in lines[3]
    assert "recent trace:" in message


def test_every_field_is_compared() -> None:
    base = OPEN + '+0 call conn.send(b"hi") = 2\n'
    good = '+0 > P. 1:3(2) ack 1 win 65535 "hi"\n'
    run_scenario(base + good)
    for bad, field in [
        ("+0 > . 1:3(2) ack 1 win 65535\n", "flags"),
        ("+0 > P. 2:4(2) ack 1 win 65535\n", "seq"),
        ("+0 > P. 1:4(3) ack 1 win 65535\n", "seq"),
        ("+0 > P. 1:3(2) ack 1 win 100\n", "win"),
        ("+0 > P. 1:3(2) ack 1 win 65535 <mss 1460>\n", "options"),
        ('+0 > P. 1:3(2) ack 1 win 65535 "ho"\n', "payload"),
    ]:
        assert f"differs in {field}" in failure(base + bad), bad


def test_unchecked_fields_and_wildcards() -> None:
    run_scenario(OPEN.replace("> . 1:1(0) ack 1 win 65535", "> . 1:1(0) ack 1"))
    run_scenario(OPEN.replace("> . 1:1(0) ack 1 win 65535", "> . 1:1(0) ack 1 win ? <>"))
    text = """\
0     call conn.connect()
+0    > S 0:0(0) win 65535 <mss 1460,sackOK,TS val ? ecr ?,nop,wscale 6>
"""
    run_scenario(text)


def test_a_segment_nobody_expected_fails() -> None:
    # The ACK of the SYN-ACK is sent but the script goes on as if nothing was.
    text = OPEN.rsplit("+0", 1)[0] + "+1 expect state ESTABLISHED\n"
    message = failure(text)
    assert message.startswith("<scenario>:5: the connection sent a segment at 0.100")
    assert "actual:   > . 1:1(0) ack 1 win 65535" in message


def test_a_segment_left_at_the_end_fails() -> None:
    message = failure(OPEN.rsplit("+0", 1)[0])
    assert "before the end of the scenario" in message


def test_nothing_sent_is_checked() -> None:
    message = failure(OPEN + '+0 call conn.send(b"x") = 1\n+0 > nothing\n')
    assert message.startswith("<scenario>:7: the connection sent a segment")
    assert "> P. 1:2(1) ack 1 win 65535 b'x'" in message


def test_an_expected_segment_that_never_comes() -> None:
    message = failure(OPEN + "+1 > . 1:1(0) ack 1 win 65535\n")
    assert "<scenario>:6: expected a segment, but nothing was sent" in message
    assert "actual:   nothing (no timer armed)" in message


def test_timing_is_checked_within_the_tolerance() -> None:
    lost = OPEN + '+0 call conn.send(b"x") = 1\n+0 > P. 1:2(1) ack 1 win 65535\n'
    # The RTO is 0.3 s (RTT 0.1 s): the retransmission is due at +0.3.
    run_scenario(lost + "+0.3 > P. 1:2(1) ack 1 win 65535\n")
    run_scenario(lost + "+0.297 > P. 1:2(1) ack 1 win 65535\n")  # 3 ms early: tolerated
    message = failure(lost + "+0.5 > P. 1:2(1) ack 1 win 65535\n")
    assert "the connection sent a segment at 0.400 that no line expected" in message
    message = failure(lost + "+0.2 > P. 1:2(1) ack 1 win 65535\n")
    assert "nothing (next timer at 0.400)" in message
    run_scenario(lost + "+0.2 > P. 1:2(1) ack 1 win 65535\n", tolerance=0.1)


def test_any_time_waits_for_the_next_segment() -> None:
    text = (
        OPEN
        + """\
+0 call conn.send(b"x") = 1
+0 > P. 1:2(1) ack 1 win 65535
*  > P. 1:2(1) ack 1 win 65535
+0.6 > P. 1:2(1) ack 1 win 65535
"""
    )
    result = run_scenario(text)
    assert result.now == pytest.approx(1.0)


def test_calls_results_and_errors() -> None:
    run_scenario(OPEN + '+0 call conn.send(b"ab" * 3) = 6\n+0 > P. 1:7(6) ack 1\n')
    assert "the call returned something else" in failure(OPEN + '+0 call conn.receive() = b"x"\n')
    run_scenario(PLAIN + '0 call conn.send(b"x") raises ConnectionDoesNotExist\n')
    run_scenario(PLAIN + '0 call conn.send(b"x") raises TCPError\n')  # a base class will do
    message = failure(PLAIN + '0 call conn.send(b"x")\n')
    assert "the call raised ConnectionDoesNotExist" in message
    message = failure(PLAIN + "0 call conn.listen() raises ConnectionReset\n")
    assert "the call returned None" in message


def test_events_and_attributes() -> None:
    run_scenario(OPEN + "+0 expect event Connected\n+0 expect no events\n")
    message = failure(OPEN + "+0 expect event Closed\n")
    assert "expected: Closed" in message and "actual:   Connected" in message
    assert "an event is waiting" in failure(OPEN + "+0 expect no events\n")
    run_scenario(OPEN + "+0 expect conn.srtt == 0.1\n+0 expect conn.cwnd >= 14600\n")
    assert "conn.unacked is 0" in failure(OPEN + "+0 expect conn.unacked == 5\n")


def test_results_give_the_connection_and_trace() -> None:
    result = run_scenario(OPEN)
    assert result.connection.state is State.ESTABLISHED
    assert any("matched line 5" in line for line in result.trace)
    assert result.now == pytest.approx(0.1)


def test_config_from_the_caller_and_the_script() -> None:
    text = "0 call conn.connect()\n+0 > S 0:0(0) win 65535 <mss 1000>\n"
    run_scenario(text, config=Config(mss=1000, timestamps=False, sack=False, window_scaling=False))
    # The script's own config line wins over the caller's.
    run_scenario(
        "config mss=1000\n" + text,
        config=Config(timestamps=False, sack=False, window_scaling=False),
    )


def test_peer_isn_is_configurable() -> None:
    text = """\
peer isn=4294967290
config timestamps=off sack=off window_scaling=off
0 call conn.listen()
+0 < S 0:0(0) win 65535 <mss 1460>
+0 > S. 0:0(0) ack 1 win 65535
+0 < . 1:1(0) ack 1 win 65535
+0 < P. 1:21(20) ack 1 win 65535
+0 > . 1:1(0) ack 21 win 65515
"""
    result = run_scenario(text)
    assert result.connection.rcv_nxt == 4294967290 + 21


def test_inbound_options_are_encoded_as_written() -> None:
    text = """\
0 call conn.listen()
+0 < S 0:0(0) win 65535 <nop,mss 1200,nop,wscale 2,sackOK,TS val 5 ecr 0,eol>
+0 > S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,TS val 0 ecr 5,nop,wscale 6>
+0.01 < . 1:1(0) ack 1 win 100 <nop,nop,TS val 15 ecr 0>
+0 expect conn.snd_wnd == 400
+0 expect conn.snd_mss == 1188
"""
    run_scenario(text)


def test_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "open.pkt"
    path.write_text(OPEN)
    assert run_scenario(path).connection.state is State.ESTABLISHED
    assert run_scenario(str(path)).connection.state is State.ESTABLISHED
    path.write_text(OPEN.replace("ack 1 win 65535\n", "ack 9 win 65535\n"))
    with pytest.raises(ScenarioFailure, match=rf"^{path}:5: "):
        run_scenario(path)
    with pytest.raises(ScenarioError, match="cannot read scenario"):
        run_scenario(tmp_path / "missing.pkt")


def test_error_types() -> None:
    # A failure is an AssertionError, so test runners report it as a failed test.
    assert issubclass(ScenarioFailure, AssertionError)
    assert issubclass(ScenarioFailure, ScenarioError)
    assert issubclass(ScenarioSyntaxError, ScenarioError)
    assert issubclass(ScenarioSyntaxError, ValueError)


# ---------------------------------------------------------------------------- syntax


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "has no steps"),
        ("hello", "expected a time"),
        ("0", "needs an action"),
        ("0 dance", "unknown action 'dance'"),
        ("0 < X 0:0(0)", "a segment is written"),
        ("0 < S 0:5(4)", "spans 5 bytes but LEN says 4"),
        ("0 < . 0:0(0) win 10", "needs 'ack N'"),
        ("0 < S 0:0(0) ack 1", "needs the ACK flag"),
        ("0 < S 0:0(0) win 70000", "does not fit"),
        ("0 < S 0:0(0) win ?", "win needs a number, got '?'"),
        ('0 < S 0:3(3) "ab"', "the payload has 2 bytes"),
        ("0 < S 0:0(0) <mss>", "unknown option 'mss'"),
        ("0 < S 0:0(0) <fast>", "unknown option 'fast'"),
        ("0 < S 0:0(0) <sack 1-2>", "a SACK block is written L:R"),
        ("0 < S 0:0(0) <mss 1", "options start with < and end with >"),
        ("0 < S 0:0(0) bogus", "unexpected 'bogus'"),
        ("* < S 0:0(0)", "only for outbound"),
        ("0 call conn.connect(5)", "takes no arguments here"),
        ("0 call conn.frobnicate()", "is not one of"),
        ('0 call os.system("ls")', "a call is written"),
        ("0 call conn.send(open)", "must be literals"),
        ('0 call conn.send(b"x") = nope', "is not a literal"),
        ("0 expect state OPEN", "unknown state"),
        ("0 expect event 42", "an event is written"),
        ("0 expect conn._secret == 1", "only public attributes"),
        ("0 expect something", "expect state NAME"),
        ("config bogus=1\n0 call conn.listen()", "Config has no field 'bogus'"),
        ("config mss=x\n0 call conn.listen()", "mss: 'x' is not a literal"),
        ("config mss\n0 call conn.listen()", "expected NAME=VALUE"),
        ("peer isn=-1\n0 call conn.listen()", "peer takes isn=N"),
        ("0 call conn.listen()\n\nconfig mss=1000", "must come before the first timed line"),
    ],
)
def test_syntax_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ScenarioSyntaxError) as info:
        parse_scenario(text, "bad.pkt")
    assert message in str(info.value)
    if text:
        # The line at fault: the directive, or else the last line.
        lines = text.splitlines()
        bad = next(
            (i for i, line in enumerate(lines, 1) if line.startswith(("config", "peer"))),
            len(lines),
        )
        assert str(info.value).startswith(f"bad.pkt:{bad}: ")


def test_runtime_syntax_errors() -> None:
    with pytest.raises(ScenarioSyntaxError, match="is before the previous line"):
        run_scenario("5 call conn.listen()\n1 expect state LISTEN\n")
    with pytest.raises(ScenarioSyntaxError, match=r"config: .*mss"):
        run_scenario("config mss=5\n0 call conn.listen()\n")


def test_comments_and_quotes() -> None:
    steps = parse_scenario('# a comment\n\n0 call conn.send(b"#1")  # not part of it\n').steps
    assert len(steps) == 1 and steps[0].lineno == 3
    assert steps[0].text == '0 call conn.send(b"#1")'


# ---------------------------------------------------------------------------- the documentation


def _indented_example(doc: str) -> str:
    """The first indented block of a docstring that starts with a comment line."""
    lines = doc.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("    # "))
    block = []
    for line in lines[start:]:
        if line and not line.startswith("    "):
            break
        block.append(line[4:])
    return "\n".join(block)


def test_the_module_docstring_example_runs() -> None:
    import synack.testing.scenario as module

    assert module.__doc__ is not None
    result = run_scenario(_indented_example(module.__doc__))
    assert result.connection.state is State.ESTABLISHED


def test_the_guide_example_runs() -> None:
    guide = (Path(__file__).parents[2] / "docs" / "SCENARIOS.md").read_text()
    example = guide.split("```\n", 2)[1]
    assert example.startswith("# The peer closes first")
    assert run_scenario(example).connection.state is State.CLOSED
