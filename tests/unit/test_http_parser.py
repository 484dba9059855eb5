"""Decapsulation, TCP reassembly and HTTP pairing, fed from bytes (no root, no kernel).

Every case goes through the whole path (IP packets -> decap -> reassembly ->
HTTP -> transactions) whole, one byte per segment, in random splits, with
segments reordered and retransmitted, plain and inside each tunnel.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from netbpf.packet.decap import Tunnel
from netbpf.tools.http.tracer import HttpTracer, Transaction
from tests.http_frames import (
    TcpFlow,
    ipip,
    plain,
    random_sizes,
    reordered,
    retransmitted,
    vxlan,
)

CLIENT, SERVER = ("10.0.1.2", 40000), ("10.0.11.2", 8080)


@dataclass(frozen=True)
class Expect:
    method: str
    target: str
    status: int | None
    request_body: int
    response_body: int | None
    error: str = ""
    interim: tuple[int, ...] = ()
    tag: str | None = None
    host: str = "gw"


def req(method: str, target: str, body: bytes = b"", headers: str = "", chunks: list[bytes] | None = None,
        version: str = "1.1") -> bytes:
    head = f"{method} {target} HTTP/{version}\r\nHost: gw\r\n{headers}"
    if chunks is not None:
        return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + chunked(chunks)
    if body or method in ("POST", "PUT"):
        head += f"Content-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


def resp(status: int, body: bytes = b"", headers: str = "", chunks: list[bytes] | None = None,
         length: int | None = None, reason: str = "X") -> bytes:
    head = f"HTTP/1.1 {status} {reason}\r\n{headers}"
    if chunks is not None:
        return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + chunked(chunks)
    if length is not None:
        head += f"Content-Length: {length}\r\n"
    return (head + "\r\n").encode() + body


def chunked(chunks: list[bytes], trailers: str = "") -> bytes:
    out = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks if c)
    return out + b"0\r\n" + trailers.encode() + b"\r\n"


BIG = bytes(range(256)) * 4096  # 1 MiB

# name -> (actions, expected). Actions: ("c"|"s", bytes), ("fin", dir), ("rst", dir).
CASES: dict[str, tuple[list[tuple], list[Expect]]] = {
    "get": ([("c", req("GET", "/a")), ("s", resp(200, b"hello", length=5))],
            [Expect("GET", "/a", 200, 0, 5)]),
    "keepalive": ([("c", req("GET", "/1")), ("s", resp(200, b"x" * 10, length=10)),
                   ("c", req("POST", "/2", b"body")), ("s", resp(201, length=0)),
                   ("c", req("DELETE", "/3")), ("s", resp(404, b"nope", length=4))],
                  [Expect("GET", "/1", 200, 0, 10), Expect("POST", "/2", 201, 4, 0),
                   Expect("DELETE", "/3", 404, 0, 4)]),
    "pipelined": ([("c", req("GET", "/p1") + req("GET", "/p2") + req("POST", "/p3", b"abc")),
                   ("s", resp(200, b"one", length=3) + resp(500, b"", length=0)
                    + resp(200, chunks=[b"th", b"ree"]))],
                  [Expect("GET", "/p1", 200, 0, 3), Expect("GET", "/p2", 500, 0, 0),
                   Expect("POST", "/p3", 200, 3, 5)]),
    "head": ([("c", req("HEAD", "/h")), ("s", resp(200, length=1000)),
              ("c", req("GET", "/after")), ("s", resp(200, b"ok", length=2))],
             [Expect("HEAD", "/h", 200, 0, 0), Expect("GET", "/after", 200, 0, 2)]),
    "head-chunked": ([("c", req("HEAD", "/h") + req("GET", "/g")),
                      ("s", resp(200, headers="Transfer-Encoding: chunked\r\n") + resp(200, b"ab", length=2))],
                     [Expect("HEAD", "/h", 200, 0, 0), Expect("GET", "/g", 200, 0, 2)]),
    "continue": ([("c", b"POST /up HTTP/1.1\r\nHost: gw\r\nExpect: 100-continue\r\nContent-Length: 6\r\n\r\n"),
                  ("s", b"HTTP/1.1 100 Continue\r\n\r\n"), ("c", b"abcdef"),
                  ("s", resp(200, b"done", length=4))],
                 [Expect("POST", "/up", 200, 6, 4, interim=(100,))]),
    "no-body-statuses": ([("c", req("GET", "/204") + req("GET", "/304") + req("GET", "/103")),
                          ("s", resp(204) + resp(304, headers="Content-Length: 50\r\nETag: \"x\"\r\n")
                           + b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n" + resp(200, b"x", length=1))],
                         [Expect("GET", "/204", 204, 0, 0), Expect("GET", "/304", 304, 0, 0),
                          Expect("GET", "/103", 200, 0, 1, interim=(103,))]),
    "chunked": ([("c", req("POST", "/c", chunks=[b"a" * 10, b"b" * 300, b"c"])),
                 ("s", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                  b"4;ext=1\r\nwxyz\r\n10 \r\n0123456789abcdef\r\n0\r\nX-Trailer: t\r\n\r\n")],
                [Expect("POST", "/c", 200, 311, 20)]),
    "until-close": ([("c", req("GET", "/stream", headers="Connection: close\r\n")),
                     ("s", b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"z" * 5000),
                     ("fin", 1), ("fin", 0)],
                    [Expect("GET", "/stream", 200, 0, 5000)]),
    "http10": ([("c", req("GET", "/old", version="1.0")),
                ("s", b"HTTP/1.0 200 OK\r\n\r\nold school"), ("fin", 1), ("fin", 0)],
               [Expect("GET", "/old", 200, 0, 10)]),
    "big": ([("c", req("POST", "/big", BIG)), ("s", resp(200, BIG, length=len(BIG)))],
            [Expect("POST", "/big", 200, len(BIG), len(BIG))]),
    "big-chunked": ([("c", req("PUT", "/bc", chunks=[BIG[:300000], BIG[:1], BIG[:200000]])),
                     ("s", resp(201, chunks=[BIG[:65536]] * 3))],
                    [Expect("PUT", "/bc", 201, 500001, 196608)]),
    "upgrade": ([("c", req("GET", "/ws", headers="Connection: Upgrade\r\nUpgrade: websocket\r\n")),
                 ("s", b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
                 ("c", b"\x81\x05hello GET / HTTP/1.1\r\n\r\n"), ("s", b"\x81\x02hi HTTP/1.1 200 OK\r\n\r\n")],
                [Expect("GET", "/ws", 101, 0, 0)]),
    "connect": ([("c", b"CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n"),
                 ("s", b"HTTP/1.1 200 Connection established\r\n\r\n"),
                 ("c", b"\x16\x03\x01 tls bytes"), ("s", b"\x16\x03\x03 more")],
                [Expect("CONNECT", "db:5432", 200, 0, 0, host="db:5432")]),
    "tagged": ([("c", req("GET", "/t", headers="X-Test-Id: probe-7\r\nCookie: s=1\r\n")),
                ("s", resp(200, b"", length=0))],
               [Expect("GET", "/t", 200, 0, 0, tag="probe-7")]),
    "reset": ([("c", req("GET", "/slow")), ("s", resp(200, b"part", length=100)), ("rst", 1)],
              [Expect("GET", "/slow", 200, 0, 4, error="connection reset")]),
    "no-response": ([("c", req("GET", "/x")), ("fin", 0), ("fin", 1)],
                    [Expect("GET", "/x", None, 0, None, error="no response")]),
    "leading-crlf": ([("c", b"\r\n" + req("GET", "/crlf")), ("s", resp(200, b"", length=0))],
                     [Expect("GET", "/crlf", 200, 0, 0)]),
}


def build(actions: list[tuple], sizes: str, rng: random.Random) -> TcpFlow:
    flow = TcpFlow(CLIENT, SERVER).handshake()
    for action in actions:
        kind = action[0]
        if kind in ("c", "s"):
            data, direction = action[1], 0 if kind == "c" else 1
            if sizes == "whole":
                flow.send(direction, data, [60000] * (len(data) // 60000 + 1))
            elif sizes == "bytes":
                flow.send(direction, data, [1] * len(data))
            else:
                flow.send(direction, data, random_sizes(rng, len(data)))
        elif kind == "fin":
            flow.fin(action[1])
        elif kind == "rst":
            flow.rst(action[1])
    return flow


def run(flow: TcpFlow, order: list, wrap=plain, tag: str | None = "X-Test-Id") -> tuple[list[Transaction], HttpTracer]:
    out: list[Transaction] = []
    tracer = HttpTracer({8080}, out.append, tag_header=tag)
    for i, pkt in enumerate(order):
        tracer.feed(flow.render(pkt, wrap), ts=1000.0 + i * 0.001)
    tracer.close()
    return out, tracer


def check(out: list[Transaction], expected: list[Expect], tunnel_kind: str | None = None) -> None:
    got = [Expect(t.exchange.request.method, t.exchange.request.target,
                  t.exchange.response.status if t.exchange.response else None,
                  t.exchange.request.body_size,
                  t.exchange.response.body_size if t.exchange.response else None,
                  t.exchange.error, t.exchange.response.interim if t.exchange.response else (),
                  t.exchange.request.tag, t.exchange.request.host) for t in out]
    assert got == expected
    for t in out:
        assert t.client == "10.0.1.2:40000" and t.backend == "10.0.11.2:8080"
        assert (t.tunnel.kind if t.tunnel else None) == tunnel_kind
        if t.exchange.response and not t.exchange.error:
            assert 0 <= t.exchange.ttfb <= t.exchange.latency


SIZES = ["whole", "bytes", "random"]
VARIANTS = ["in-order", "reordered", "retransmitted"]


def _wire_bytes(name: str) -> int:
    return sum(len(a[1]) for a in CASES[name][0] if a[0] in ("c", "s"))


# One packet per byte for the 1 MiB cases would be 2 million packets (minutes here);
# test_case_byte_by_byte_at_the_http_layer feeds those byte by byte to the parser.
CASE_RUNS = [(name, sizes, variant) for name in CASES for sizes in SIZES for variant in VARIANTS
             if not (sizes == "bytes" and _wire_bytes(name) > 20000)]


@pytest.mark.parametrize("name,sizes,variant", CASE_RUNS)
def test_case(name: str, sizes: str, variant: str) -> None:
    actions, expected = CASES[name]
    for seed in range(3 if sizes == "random" or variant != "in-order" else 1):
        rng = random.Random(f"{name}/{sizes}/{variant}/{seed}")
        flow = build(actions, sizes, rng)
        order = flow.packets
        if variant == "reordered":
            order = reordered(order, rng)
        elif variant == "retransmitted":
            order = retransmitted(order, rng)
        out, tracer = run(flow, order)
        check(out, expected)
        assert tracer.reassembler.stats.gaps == 0
        assert tracer.http.unparseable_streams == 0
        if variant == "retransmitted":
            assert tracer.reassembler.stats.duplicate_bytes > 0 or len(flow.packets) < 6


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", list(CASES))
def test_fast_path_gives_what_the_general_path_gives(name: str, variant: str, monkeypatch) -> None:
    """Framer._whole_message is a shortcut: with it off, every transaction is the same."""
    import netbpf.packet.http.framing as http

    actions, expected = CASES[name]
    rng = random.Random(f"fast/{name}/{variant}")
    flow = build(actions, "whole", rng)
    # Twice the same conversation on two connections: the second one meets cached header blocks.
    second = TcpFlow(("10.0.1.2", 40001), SERVER)
    second.packets = list(flow.packets)
    order = flow.packets if variant == "in-order" else (
        reordered(flow.packets, rng) if variant == "reordered" else retransmitted(flow.packets, rng))
    results = []
    for fast in (True, False):
        monkeypatch.setattr(http, "FAST_PATH", fast)
        out: list[Transaction] = []
        tracer = HttpTracer({8080}, out.append, tag_header="X-Test-Id")
        for i, pkt in enumerate(order + order):
            tracer.feed((flow if i < len(order) else second).render(pkt), ts=1000.0 + i * 0.001)
        tracer.close()
        results.append((out, tracer.http))
    (fast_out, fast_stats), (slow_out, slow_stats) = results
    assert fast_out == slow_out and fast_stats == slow_stats
    check(fast_out[:len(expected)], expected)


@pytest.mark.parametrize("name", list(CASES))
def test_case_byte_by_byte_at_the_http_layer(name: str) -> None:
    """The HTTP layer alone, one byte per call: also the megabyte cases."""
    from netbpf.packet.http import HttpConversation

    actions, expected = CASES[name]
    exchanges = []
    conv = HttpConversation(exchanges.append, client_direction=0, tag_header="X-Test-Id")
    ts, fins = 0.0, set()
    for action in actions:
        kind = action[0]
        if kind in ("c", "s"):
            direction = 0 if kind == "c" else 1
            view = memoryview(action[1])
            for i in range(len(view)):
                ts += 1e-6
                conv.on_data(direction, view[i:i + 1], ts)
        elif kind == "fin":
            conv.on_end(action[1], ts)
            fins.add(action[1])
        elif kind == "rst":
            conv.on_close("reset", ts)
    conv.on_close("fin" if len(fins) == 2 else "shutdown", ts)
    got = [Expect(e.request.method, e.request.target, e.response.status if e.response else None,
                  e.request.body_size, e.response.body_size if e.response else None, e.error,
                  e.response.interim if e.response else (), e.request.tag, e.request.host)
           for e in exchanges]
    assert got == expected


TUNNELS = {"ipip": (ipip(), "ipip"), "ipip6": (ipip("2001:db8::1", "2001:db8::2"), "ipip"),
           "vxlan": (vxlan(), "vxlan"), "vxlan-vlan": (vxlan(vlan=7), "vxlan"),
           "vxlan-8472": (vxlan(port=8472), "vxlan"), "vxlan-ipip": (lambda p: vxlan()(ipip()(p)), "vxlan")}


@pytest.mark.parametrize("tunnel", list(TUNNELS))
@pytest.mark.parametrize("name", ["keepalive", "pipelined", "chunked", "head"])
def test_case_in_tunnels(name: str, tunnel: str) -> None:
    actions, expected = CASES[name]
    wrap, kind = TUNNELS[tunnel]
    rng = random.Random(name + tunnel)
    flow = build(actions, "random", rng)
    out, _ = run(flow, reordered(flow.packets, rng), wrap)
    check(out, expected, kind)
    assert str(out[0].tunnel).startswith(kind)


@pytest.mark.parametrize("client,server", [(("fd00:1::2", 40000), ("fd00:11::2", 8080)),
                                           (("10.0.1.2", 40000), ("10.0.11.2", 8080))])
def test_ipv6_and_ipv4_endpoints(client, server) -> None:
    flow = TcpFlow(client, server).handshake()
    flow.send(0, req("GET", "/six")).send(1, resp(200, b"6", length=1))
    out, _ = run(flow, flow.packets, ipip("192.0.2.1", "192.0.2.2"))
    assert len(out) == 1 and out[0].exchange.response.status == 200
    assert out[0].backend == (f"[{server[0]}]:8080" if ":" in server[0] else f"{server[0]}:8080")
    assert str(out[0].tunnel) == "ipip 192.0.2.1>192.0.2.2"


def test_vxlan_tunnel_names_outer_addresses_and_vni() -> None:
    flow = TcpFlow(CLIENT, SERVER).handshake()
    flow.send(0, req("GET", "/v")).send(1, resp(200, length=0))
    out, _ = run(flow, flow.packets, vxlan(vni=4242, outer_src="172.16.3.1", outer_dst="172.16.3.2"))
    assert out[0].tunnel == Tunnel("vxlan", bytes([172, 16, 3, 1]), bytes([172, 16, 3, 2]), 4242)
    assert str(out[0].tunnel) == "vxlan 172.16.3.1>172.16.3.2 vni 4242"


def test_gap_inside_a_content_length_body_keeps_the_exchange() -> None:
    flow = TcpFlow(CLIENT, SERVER).handshake()
    flow.send(0, req("GET", "/g1")).send(1, resp(200, b"b" * 10000, length=10000))
    flow.send(0, req("GET", "/g2")).send(1, resp(200, b"ok", length=2))
    body_segment = next(i for i, p in enumerate(flow.packets) if p.direction == 1 and p.payload[:4] == b"bbbb")
    order = flow.packets[:body_segment] + flow.packets[body_segment + 1:]
    out, tracer = run(flow, order)
    assert [(t.exchange.request.target, t.exchange.response.body_size, t.exchange.error) for t in out] == \
        [("/g1", 10000, ""), ("/g2", 2, "")]
    assert tracer.reassembler.stats.gaps == 1 and tracer.reassembler.stats.gap_bytes == 1460


def test_lost_request_is_not_paired_with_the_wrong_response() -> None:
    flow = TcpFlow(CLIENT, SERVER).handshake()
    for i in range(4):
        flow.send(0, req("GET", f"/r{i}")).send(1, resp(200 + i, length=0))
    lost = next(i for i, p in enumerate(flow.packets) if p.payload.startswith(b"GET /r1 "))
    out, tracer = run(flow, flow.packets[:lost] + flow.packets[lost + 1:])
    assert [(t.exchange.request.target, t.exchange.response.status) for t in out] == \
        [("/r0", 200), ("/r2", 202), ("/r3", 203)]
    assert tracer.http.orphan_responses == 1


def test_lost_response_is_reported_and_pairing_recovers() -> None:
    flow = TcpFlow(CLIENT, SERVER).handshake()
    for i in range(4):
        flow.send(0, req("GET", f"/r{i}")).send(1, resp(200 + i, b"x" * 3000, length=3000))
    lost = next(i for i, p in enumerate(flow.packets) if p.payload.startswith(b"HTTP/1.1 201"))
    out, _ = run(flow, flow.packets[:lost] + flow.packets[lost + 1:])
    got = [(t.exchange.request.target, t.exchange.response.status if t.exchange.response else None,
            t.exchange.error) for t in out]
    assert got[0] == ("/r0", 200, "")
    assert got[1][0] == "/r1" and got[1][2]  # reported, with why
    assert got[2:] == [("/r2", 202, ""), ("/r3", 203, "")]


def test_joining_an_open_connection_midway() -> None:
    flow = TcpFlow(CLIENT, SERVER).handshake()
    for i in range(5):
        flow.send(0, req("GET", f"/m{i}")).send(1, resp(200, b"y" * 2000, length=2000))
    # Start the capture in the middle of the second response's body.
    start = next(i for i, p in enumerate(flow.packets) if p.payload.startswith(b"GET /m1 ")) + 2
    out, _ = run(flow, flow.packets[start:])
    # /m2's answer is not proven: the part of the client's stream before the capture
    # may hide a request sent with /m2, answered first. From /m3 on, the ACKs prove it.
    assert [(t.exchange.request.target, t.exchange.response.status if t.exchange.response else None)
            for t in out] == [("/m2", None), ("/m3", 200), ("/m4", 200)]
    assert "not identified" in out[0].exchange.error


def test_client_found_from_ports_without_syn() -> None:
    flow = TcpFlow(CLIENT, SERVER).handshake()
    flow.send(0, req("GET", "/p")).send(1, resp(200, length=0))
    out, _ = run(flow, flow.packets[3:])
    assert out[0].client == "10.0.1.2:40000"


def test_syn_ack_seen_first_still_knows_the_client() -> None:
    flow = TcpFlow(CLIENT, SERVER).handshake()
    flow.send(0, req("GET", "/sa")).send(1, resp(200, length=0))
    out, _ = run(flow, flow.packets[1:])
    assert out[0].client == "10.0.1.2:40000" and out[0].exchange.response.status == 200


def test_port_reuse_starts_a_new_connection() -> None:
    first = TcpFlow(CLIENT, SERVER).handshake()
    first.send(0, req("GET", "/old")).send(1, resp(200, length=0))  # no FIN captured
    second = TcpFlow(CLIENT, SERVER, isn=(777777, 5555)).handshake()
    second.send(0, req("GET", "/new")).send(1, resp(201, length=0))
    out: list[Transaction] = []
    tracer = HttpTracer({8080}, out.append)
    for i, pkt in enumerate(first.packets):
        tracer.feed(first.render(pkt), ts=float(i))
    for i, pkt in enumerate(second.packets):
        tracer.feed(second.render(pkt), ts=100.0 + i)
    tracer.close()
    assert [(t.exchange.request.target, t.exchange.response.status) for t in out] == [("/old", 200), ("/new", 201)]
    assert tracer.reassembler.stats.flows_closed.get("reused") == 1


def test_a_hole_that_never_fills_becomes_a_gap_after_the_timeout() -> None:
    flow = TcpFlow(CLIENT, SERVER).handshake()
    flow.send(0, req("POST", "/up", b"q" * 5000))
    order = [p for p in flow.packets if not p.payload.startswith(b"q" * 10)] + \
        [p for p in flow.packets if p.payload.startswith(b"q" * 10)][1:]
    out: list[Transaction] = []
    tracer = HttpTracer({8080}, out.append)
    for i, pkt in enumerate(order):
        tracer.feed(flow.render(pkt), ts=10.0 + i * 0.01)
    assert tracer.reassembler.buffered > 0
    tracer.tick(10.5)
    assert tracer.reassembler.stats.gaps == 0  # younger than the hole timeout
    tracer.tick(12.0)
    assert tracer.reassembler.stats.gaps == 1 and tracer.reassembler.buffered == 0


def test_buffer_limits_are_enforced() -> None:
    from netbpf.packet.tcp import Limits

    flow = TcpFlow(CLIENT, SERVER).handshake()
    flow.send(0, req("POST", "/up", b"q" * 200000))
    order = [p for p in flow.packets if p is not flow.packets[4]]  # first body segment lost
    out: list[Transaction] = []
    tracer = HttpTracer({8080}, out.append, limits=Limits(flow_buffer=50000, total_buffer=80000))
    peak = 0
    for i, pkt in enumerate(order):
        tracer.feed(flow.render(pkt), ts=float(i))
        peak = max(peak, tracer.reassembler.buffered)
    assert peak <= 50000
    assert tracer.reassembler.stats.gaps >= 1


def test_flow_table_is_bounded() -> None:
    from netbpf.packet.tcp import Limits

    tracer = HttpTracer({8080}, lambda t: None, limits=Limits(max_flows=10))
    for port in range(100):
        flow = TcpFlow(("10.0.1.2", 20000 + port), SERVER).handshake()
        for i, pkt in enumerate(flow.packets):
            tracer.feed(flow.render(pkt), ts=port + i * 0.001)
    assert tracer.active_flows <= 10
    assert tracer.reassembler.stats.flows_closed["evicted"] == 90


def test_idle_flows_are_closed() -> None:
    out: list[Transaction] = []
    tracer = HttpTracer({8080}, out.append)
    flow = TcpFlow(CLIENT, SERVER).handshake()
    flow.send(0, req("GET", "/idle"))
    for pkt in flow.packets:
        tracer.feed(flow.render(pkt), ts=5.0)
    tracer.tick(5.0 + 121)
    assert tracer.active_flows == 0
    assert [(t.exchange.request.target, t.exchange.error) for t in out] == [("/idle", "connection idle")]


def test_garbage_on_the_port_is_counted_as_unparseable() -> None:
    flow = TcpFlow(CLIENT, SERVER).handshake()
    flow.send(0, b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n").send(1, resp(400, length=0))
    flow.send(0, req("GET", "/fine")).send(1, resp(200, length=0))
    out, tracer = run(flow, flow.packets)
    assert tracer.http.unparseable_streams == 1
    assert [(t.exchange.request.target, t.exchange.response.status) for t in out] == [("/fine", 200)]


def test_non_target_ports_and_non_tcp_are_ignored() -> None:
    flow = TcpFlow(CLIENT, ("10.0.11.2", 9999)).handshake()
    flow.send(0, req("GET", "/other")).send(1, resp(200, length=0))
    out, tracer = run(flow, flow.packets)
    assert out == [] and tracer.other_ports == len(flow.packets)
    tracer.feed(b"\x45" + bytes(30))
    assert tracer.undecodable == 1
