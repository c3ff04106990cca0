"""SendBuffer: the sender's byte queue, against a plain bytes model."""

from __future__ import annotations

import random

import pytest

from synack.tcp.sendbuf import SendBuffer


def filled(seq: int, data: bytes, chunk_size: int) -> SendBuffer:
    buf = SendBuffer(seq, chunk_size)
    buf.append(data)
    return buf


def test_appends_without_views_fill_one_chunk() -> None:
    buf = SendBuffer(100, chunk_size=64)
    for i in range(16):
        buf.append(bytes([i]) * 4)
    assert (buf.seq, buf.end, len(buf)) == (100, 164, 64)
    whole = buf.view(100, 64)
    assert isinstance(whole, memoryview)  # no join: every append grew the same chunk
    assert bytes(whole) == b"".join(bytes([i]) * 4 for i in range(16))


def test_read_across_chunk_boundaries_joins() -> None:
    data = random.Random(1).randbytes(30)
    buf = filled(1000, data, chunk_size=8)
    inside = buf.view(1000 + 9, 6)
    assert isinstance(inside, memoryview)
    assert bytes(inside) == data[9:15]
    across = buf.view(1000 + 5, 20)  # four chunks touched
    assert isinstance(across, bytes)
    assert across == data[5:25]
    assert buf.view(1000 + 29, 1) == data[29:]
    assert buf.view(1000 + 3, 0) == b""


def test_release_in_the_middle_of_a_chunk() -> None:
    data = bytes(range(40))
    buf = filled(7, data, chunk_size=16)
    buf.release(7 + 20)  # inside the second chunk
    assert (buf.seq, buf.end, len(buf)) == (27, 47, 20)
    assert bytes(buf.view(27, 20)) == data[20:]
    assert bytes(buf.view(30, 3)) == data[23:26]
    buf.release(20)  # behind seq: nothing
    assert buf.seq == 27
    buf.append(b"xyz")
    assert bytes(buf.view(27, 23)) == data[20:] + b"xyz"


def test_release_of_everything_and_beyond() -> None:
    buf = filled(0, b"abcdef", chunk_size=4)
    buf.release(6)
    assert (buf.seq, buf.end, len(buf)) == (6, 6, 0)
    assert not buf
    buf.append(b"gh")
    buf.release(9)  # past the data (a FIN's sequence number): frees it all
    assert (buf.seq, buf.end) == (8, 8)
    buf.append(b"ij")
    assert (buf.seq, buf.end) == (8, 10)
    assert bytes(buf.view(8, 2)) == b"ij"


def test_clear_keeps_the_end() -> None:
    buf = filled(50, b"0123456789", chunk_size=3)
    buf.release(53)
    buf.clear()
    assert (buf.seq, buf.end, len(buf)) == (60, 60, 0)
    buf.append(b"ab")
    assert bytes(buf.view(60, 2)) == b"ab"


def test_unwrapped_sequence_numbers_past_two_to_the_32() -> None:
    """The connection's sequence numbers are unwrapped ints: a range across 2**32 is
    plain arithmetic, nothing wraps."""
    top = 2**32
    data = random.Random(2).randbytes(40)
    buf = SendBuffer(0, chunk_size=16)
    buf.append(data[:10])
    buf.rebase(top - 10)  # the ISS chosen after queueing
    buf.append(data[10:])
    assert (buf.seq, buf.end) == (top - 10, top + 30)
    assert buf.view(top - 4, 8) == data[6:14]
    buf.release(top + 3)
    assert bytes(buf.view(top + 3, 27)) == data[13:]
    assert b"".join(buf.runs(top + 3, 27, 5)) == data[13:]


def test_a_view_survives_later_appends_and_releases() -> None:
    buf = SendBuffer(0, chunk_size=32)
    buf.append(b"a" * 10)
    held = buf.view(2, 6)
    assert isinstance(held, memoryview)
    buf.append(b"b" * 10)  # the viewed chunk may not grow: a new one starts
    buf.append(b"c" * 40)
    buf.release(55)  # both chunks the view lies in are freed
    assert bytes(held) == b"aaaaaa"
    assert bytes(buf.view(55, 5)) == b"ccccc"
    assert not buf._spares  # the freed chunk is still viewed: never reused
    buf.append(b"d" * 100)
    assert bytes(held) == b"aaaaaa"
    assert bytes(buf.view(55, 105)) == b"ccccc" + b"d" * 100
    held.release()
    buf.release(150)  # frees chunks no view holds: one is kept for the next bytes
    assert buf._spares
    spares = len(buf._spares)
    buf.append(b"e" * 30)  # one chunk's worth
    assert len(buf._spares) == spares - 1
    assert bytes(buf.view(150, 40)) == b"d" * 10 + b"e" * 30


def test_runs_cut_whole_segments_and_join_only_the_one_across() -> None:
    data = bytes(range(100))
    buf = filled(0, data, chunk_size=32)
    one = buf.runs(0, 30, 10)
    assert len(one) == 1 and isinstance(one[0], memoryview)
    runs = buf.runs(5, 80, 10)  # segments start at 5, 15, ..., 75
    assert [len(r) for r in runs] == [20, 10, 20, 10, 20]
    assert [type(r) for r in runs] == [memoryview, bytes, memoryview, bytes, memoryview]
    assert b"".join(runs) == data[5:85]
    exact = buf.runs(0, 64, 16)  # chunk ends on a segment's edge: nothing joined
    assert [len(r) for r in exact] == [32, 32]
    assert all(isinstance(r, memoryview) for r in exact)


@pytest.mark.parametrize("seed", range(10))
def test_random_appends_releases_and_reads_match_a_bytes_model(seed: int) -> None:
    rng = random.Random(seed)
    chunk = [1, 7, 64, 1000, 16384][seed % 5]  # the last grows from FIRST_CHUNK
    start = rng.choice([0, 1, 2**32 - 300, 2**40])
    buf = SendBuffer(start, chunk)
    model = b""  # the bytes from model_seq on
    model_seq = start
    held: list[tuple[memoryview | bytes, bytes]] = []
    for _ in range(400):
        op = rng.random()
        if op < 0.35:
            data = rng.randbytes(rng.choice([0, 1, 5, chunk, 3 * chunk + 1, rng.randrange(500)]))
            kind = rng.choice([bytes, bytearray, memoryview])
            buf.append(kind(data))
            model += data
        elif op < 0.55:
            upto = model_seq + rng.randrange(-3, len(model) + 4)
            buf.release(upto)
            drop = min(max(upto - model_seq, 0), len(model))
            model = model[drop:]
            model_seq += drop
        elif op < 0.6:
            buf.clear()
            model_seq += len(model)
            model = b""
        elif model:
            off = rng.randrange(len(model))
            n = rng.randrange(1, len(model) - off + 1)
            if op < 0.8:
                got = buf.view(model_seq + off, n)
                assert bytes(got) == model[off : off + n]
                if rng.random() < 0.3:
                    held.append((got, model[off : off + n]))
            else:
                mss = rng.randrange(1, 50)
                runs = buf.runs(model_seq + off, n, mss)
                assert b"".join(runs) == model[off : off + n]
                for run in runs[:-1]:  # every piece but the last is whole segments
                    assert len(run) % mss == 0
        assert (buf.seq, buf.end, len(buf)) == (model_seq, model_seq + len(model), len(model))
    for view, expected in held:
        assert bytes(view) == expected
