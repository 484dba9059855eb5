"""The HTTP framer alone (packet/http/framing.py), against h11 on the same bytes.

h11 (python-hyper, the model of the framer's receive_data()/next_event()) reads
the same byte stream, cut at the same random places; both must find the same
messages with the same decoded body sizes. The framer is driven as the pairing
side drives it: told how to frame each head, and for responses the method of
the request they answer.
"""
from __future__ import annotations

import random

import h11
import pytest

from netbpf.packet.http import HeadCache, HttpStats
from netbpf.packet.http.framing import Framer, Lost, RequestEnd, RequestHead, ResponseEnd, ResponseHead
from netbpf.packet.http.messages import Request, Response

REQUESTS = [
    b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /b?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world",
    b"PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    b"DELETE /d HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
]
RESPONSES = [  # (the request's method, the response)
    ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
    ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"),  # no body whatever its length says
    ("GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
    ("GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n"),
    ("GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n"),
    ("POST", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"),
]


def cut(data: bytes, rng: random.Random) -> list[bytes]:
    """The bytes in segments of random sizes, one byte to all of them."""
    out, pos = [], 0
    while pos < len(data):
        size = rng.choice([1, 2, 3, 7, 16, 64, len(data)])
        out.append(data[pos:pos + size])
        pos += size
    return out


def framed(segments: list[bytes], is_request: bool, methods: list[str], until_close: bool = False) -> list[tuple]:
    """(method or status, target or "", decoded body bytes) per message the framer ends."""
    framer = Framer(is_request, HeadCache(), HttpStats())
    framer.expect_responses = True
    pending = list(methods)
    found: list[tuple] = []

    def drain() -> None:
        event = framer.next_event()
        while event is not None:
            if isinstance(event, RequestHead):
                framer.frame_request()
            elif isinstance(event, ResponseHead):
                interim = 100 <= event.status < 200
                framer.frame_response("" if interim else pending.pop(0))
            elif isinstance(event, (RequestEnd, ResponseEnd)):
                message = event[0]
                found.append((message.method, message.target, message.body_size) if isinstance(message, Request)
                             else (message.status, "", message.body_size))
            elif isinstance(event, (Request, Response)):
                framer.decline_whole()  # as a pairer that takes nothing whole
            else:
                assert not isinstance(event, Lost), event
            event = framer.next_event()

    offset = 0
    for i, segment in enumerate(segments):
        framer.receive_data(segment, float(i), offset)
        offset += len(segment)
        drain()
    if until_close:
        framer.end(float(len(segments)))
        drain()
    return found


def h11_requests(data: bytes) -> list[tuple]:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    found: list[tuple] = []
    body = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            return found
        if isinstance(event, h11.Request):
            head, body = event, 0
        elif isinstance(event, h11.Data):
            body += len(event.data)
        elif isinstance(event, h11.EndOfMessage):
            found.append((head.method.decode(), head.target.decode(), body))
            conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
            conn.send(h11.EndOfMessage())
            conn.start_next_cycle()


def h11_response(method: str, data: bytes, close: bool) -> list[tuple]:
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    if close:
        conn.receive_data(b"")
    found: list[tuple] = []
    body = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA or event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
            return found
        if isinstance(event, h11.InformationalResponse):
            found.append((event.status_code, "", 0))
        elif isinstance(event, h11.Response):
            body = 0
            status = event.status_code
        elif isinstance(event, h11.Data):
            body += len(event.data)
        elif isinstance(event, h11.EndOfMessage):
            found.append((status, "", body))


@pytest.mark.parametrize("seed", range(20))
def test_pipelined_requests_are_cut_where_h11_cuts_them(seed: int) -> None:
    rng = random.Random(seed)
    stream = b"".join(rng.sample(REQUESTS, len(REQUESTS)))
    ours = framed(cut(stream, rng), True, [])
    assert ours == h11_requests(stream)
    assert len(ours) == len(REQUESTS)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("case", range(len(RESPONSES)))
def test_a_response_ends_where_h11_ends_it(case: int, seed: int) -> None:
    method, data = RESPONSES[case]
    theirs = h11_response(method, data, close=False)
    ours = framed(cut(data, random.Random(seed)), False, [method])
    interim = [m for m in theirs if 100 <= m[0] < 200]
    assert ours == [m for m in theirs if m not in interim]  # 1xx: kept by the pairing side, not framed


def test_a_response_without_length_runs_to_the_close_as_in_h11() -> None:
    data = b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\n" + b"z" * 3000
    ours = framed(cut(data, random.Random(1)), False, ["GET"], until_close=True)
    assert ours == h11_response("GET", data, close=True) == [(200, "", 3000)]
