"""Connections that are not HTTP/1.x on a traced port (HTTP/2 with prior knowledge,
h2c upgrade, TLS) are named and counted, never taken for transactions or garbage.

The bytes are what the protocols put first on the wire: the HTTP/2 connection
preface (RFC 9113 section 3.4) and a SETTINGS frame; a TLS ClientHello record
(type 22, version 3.1) and a ServerHello (3.3)."""
from __future__ import annotations

import random
import struct

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from netbpf.packet.http import H2_PREFACE, H2C_UPGRADE, TLS_HANDSHAKE, sniff
from netbpf.tools.http.cli import not_http1_text
from netbpf.tools.http.kernel import Counter
from netbpf.tools.http.metrics import HttpCollector, TransactionCounts
from netbpf.tools.http.tracer import HttpTracer, Transaction
from tests.http_frames import TcpFlow
from tests.unit.test_http_loss import send
from tests.unit.test_http_parser import CLIENT, SERVER, req, resp

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2_frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return struct.pack("!I", len(payload))[1:] + bytes([kind, flags]) + struct.pack("!I", stream) + payload


SETTINGS = h2_frame(4, 0, 0, struct.pack("!HI", 3, 100))
HEADERS = h2_frame(1, 5, 1, bytes([0x82, 0x86, 0x84]))  # :method GET, :scheme http, :path /


def tls_record(kind: int, version: tuple[int, int], body: bytes) -> bytes:
    return bytes([kind, *version]) + struct.pack("!H", len(body)) + body


CLIENT_HELLO = tls_record(22, (3, 1), bytes([1]) + struct.pack("!I", 60)[1:] + bytes([3, 3]) + bytes(57))
SERVER_HELLO = tls_record(22, (3, 3), bytes([2]) + struct.pack("!I", 50)[1:] + bytes([3, 3]) + bytes(47))

CASES = {
    "h2-prior-knowledge": ([(0, PREFACE + SETTINGS), (1, SETTINGS), (0, HEADERS),
                            (1, h2_frame(1, 4, 1, bytes([0x88])) + h2_frame(0, 1, 1, b"ok"))], H2_PREFACE, []),
    "tls": ([(0, CLIENT_HELLO), (1, SERVER_HELLO + tls_record(20, (3, 3), b"\x01")),
             (0, tls_record(23, (3, 3), b"GET / HTTP/1.1 encrypted")),
             (1, tls_record(23, (3, 3), b"HTTP/1.1 200 encrypted"))], TLS_HANDSHAKE, []),
    "h2c-upgrade": ([(0, req("GET", "/up", headers="Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                                                 "HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n")),
                     (1, b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
                      + SETTINGS + h2_frame(1, 4, 1, bytes([0x88])) + h2_frame(0, 1, 1, b"ok")),
                     (0, PREFACE + SETTINGS)], H2C_UPGRADE, [("/up", 101)]),
    # nginx answers an h2c upgrade offer in HTTP/1.1: that is a plain transaction.
    "h2c-offer-declined": ([(0, req("GET", "/d", headers="Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                                                        "HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n")),
                            (1, resp(200, b"plain", length=5)), (0, req("GET", "/d2")),
                            (1, resp(404, length=0))], "", [("/d", 200), ("/d2", 404)]),
}


def run(actions: list[tuple[int, bytes]], sizes: str, rng: random.Random) -> tuple[list[Transaction], HttpTracer]:
    flow = TcpFlow(CLIENT, SERVER).handshake()
    for direction, data in actions:
        send(flow, direction, data, sizes, rng)
    flow.fin(0).fin(1)
    out: list[Transaction] = []
    tracer = HttpTracer({8080}, out.append)
    for i, pkt in enumerate(flow.packets):
        tracer.feed(flow.render(pkt), ts=1000.0 + i * 0.001)
    tracer.close()
    return out, tracer


@pytest.mark.parametrize("sizes", ["whole", "bytes", "random"])
@pytest.mark.parametrize("name", list(CASES))
def test_named_not_counted(name: str, sizes: str) -> None:
    actions, protocol, transactions = CASES[name]
    for seed in range(3 if sizes == "random" else 1):
        out, tracer = run(actions, sizes, random.Random(f"{name}/{sizes}/{seed}"))
        stats = tracer.http
        assert [(t.exchange.request.target, t.exchange.response.status) for t in out] == transactions
        assert all(t.exchange.request.method != "PRI" and not t.exchange.error for t in out)
        assert stats.not_http1 == ({protocol: 1} if protocol else {})
        assert stats.orphan_responses == 0 and stats.unparseable_streams == 0 and stats.parse_errors == 0


def test_sniff_needs_only_what_tells() -> None:
    assert sniff(b"G") == "" and sniff(b"GET / HTTP/1.1\r\n") == ""
    assert sniff(b"P") is None and sniff(PREFACE[:23]) is None and sniff(PREFACE) == H2_PREFACE
    assert sniff(b"PRI * HTTP/1.1\r\n") == ""  # not the preface: the parser decides
    assert sniff(b"\x16") is None and sniff(b"\x16\x03") is None and sniff(b"\x16\x03\x01") == TLS_HANDSHAKE
    assert sniff(b"\x16\x02") == "" and sniff(b"\x16\x03\x09") == ""


def test_reported_in_the_exit_line_and_the_metrics() -> None:
    counts = {H2_PREFACE: 2, TLS_HANDSHAKE: 1}
    assert not_http1_text(counts) == ("3 connections are not HTTP/1.x (HTTP/2 preface: 2, "
                                      "HTTP/2 upgrade (h2c): 0, TLS handshake: 1)")
    assert not_http1_text({}).startswith("0 connections are not HTTP/1.x")
    registry = CollectorRegistry()
    registry.register(HttpCollector(TransactionCounts(), lambda: {
        "kernel": {c: 0 for c in Counter}, "ring_drops": 0, "flows": 0, "flows_opened": 3, "gaps": 0,
        "gap_bytes": 0, "unparseable": 0, "orphans": 0, "not_http": counts}))
    text = generate_latest(registry).decode()
    assert 'netbpf_http_not_http1_connections_total{protocol="http2_preface"} 2.0' in text
    assert 'netbpf_http_not_http1_connections_total{protocol="tls_handshake"} 1.0' in text
    assert 'method="PRI"' not in text
