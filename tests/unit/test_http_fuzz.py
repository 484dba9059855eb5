"""Fuzz: 100,000+ random and mutated frames through decapsulation, reassembly and
HTTP parsing; no exception may escape and every memory bound must hold."""
from __future__ import annotations

import random
import struct

import pytest

from netbpf.packet.decap import decode_ethernet
from netbpf.packet.tcp import Limits
from netbpf.tools.http.tracer import HttpTracer
from tests.http_frames import ethernet, ethertype_of, ipip, plain, vxlan
from tests.unit.test_http_parser import CASES, build

FRAMES = 100_000


def corpus(rng: random.Random) -> list[bytes]:
    """Valid packets of every case, plain and in each tunnel, in random splits."""
    packets = []
    wraps = [plain, ipip(), ipip("2001:db8::1", "2001:db8::2"), vxlan(), vxlan(vlan=3)]
    for name, (actions, _) in CASES.items():
        if name.startswith("big"):
            continue
        for wrap in wraps:
            flow = build(actions, "random", rng)
            packets += [flow.render(p, wrap) for p in flow.packets]
    return packets


def mutate(packet: bytes, rng: random.Random) -> bytes:
    data = bytearray(packet)
    how = rng.randrange(7)
    if how == 0 and data:  # flip a few bytes anywhere
        for _ in range(rng.randint(1, 5)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif how == 1:  # cut short
        del data[rng.randrange(len(data) + 1):]
    elif how == 2:  # grow
        data += rng.randbytes(rng.randint(1, 100))
    elif how == 3 and len(data) > 40:  # flip bytes in the headers only
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(min(len(data), 120))] = rng.randrange(256)
    elif how == 4 and len(data) > 60:  # scramble the HTTP text
        start = rng.randrange(40, len(data))
        data[start:start + 8] = rng.choice([b"\r\n\r\n", b"\r\n", b"chunked", b"0\r\n\r\n", b"HTTP/1.1",
                                            b"GET / HT", b": ", b"\x00" * 8, b"ffffffff"])
    elif how == 5 and len(data) >= 28:  # random TCP sequence/flags in a plain IPv4 packet
        if data[0] >> 4 == 4:
            off = (data[0] & 0xF) * 4
            if len(data) >= off + 14:
                struct.pack_into("!I", data, off + 4, rng.getrandbits(32))
                data[off + 13] = rng.randrange(256)
    else:  # length fields lie
        if len(data) >= 4:
            struct.pack_into("!H", data, 2, rng.randrange(65536))
    return bytes(data)


@pytest.mark.parametrize("seed", [20251123, 4])
def test_fuzz_frames_never_raise_and_bounds_hold(seed: int) -> None:
    rng = random.Random(seed)
    valid = corpus(rng)
    limits = Limits(flow_buffer=64 << 10, total_buffer=256 << 10, max_flows=200, idle_timeout=5.0)
    transactions = []
    tracer = HttpTracer({8080, 80}, transactions.append, tag_header="X-Test-Id", keep_headers=True,
                        limits=limits)
    ts = 1000.0
    fed = 0
    while fed < FRAMES:
        roll = rng.random()
        if roll < 0.2:
            frame = rng.randbytes(rng.randint(0, 200))
            if rng.random() < 0.5 and frame:
                frame = bytes([rng.choice([0x45, 0x60])]) + frame[1:]
        elif roll < 0.6:
            frame = mutate(rng.choice(valid), rng)
        else:
            # Valid packets out of context: other flows' middles, replays, reorderings.
            frame = rng.choice(valid)
        ts += rng.random() * 0.01
        if rng.random() < 0.1:
            frame = ethernet(frame, ethertype_of(frame) if frame else 0x0800)
            seg = decode_ethernet(frame, ts)
            if seg is not None:
                tracer.feed_segment(seg)
        else:
            tracer.feed(frame, 0, rng.choice([0, 0x0800, 0x86DD]), ts)
        fed += 1
        if fed % 1000 == 0:
            tracer.tick(ts)
        assert tracer.reassembler.buffered <= limits.total_buffer
        assert tracer.active_flows <= limits.max_flows
    tracer.close(ts)
    assert fed >= FRAMES
    assert tracer.active_flows == 0 and tracer.reassembler.buffered == 0
    # The fuzz must reach deep: streams opened, messages parsed, gaps and errors met.
    stats = tracer.reassembler.stats
    assert stats.flows_opened > 100 and stats.gaps > 0
    assert tracer.http.requests > 100 and tracer.http.parse_errors > 0
    assert len(transactions) > 50
