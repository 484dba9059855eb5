"""HTTP pairing when the capture loses segments: never a wrong status.

A lost response and a lost request next to each other used to shift every
pairing after them by one (a GET reported 404, a 404 reported 200). The
tracer may say a response is lost or not identified; it may never pair a
request with another request's response. Every case is checked against the
ground truth the test wrote: each request has its own path and its true
status, and every segment carries the acknowledgement number its sender
would have sent (TcpFlow: what the peer really sent, captured or not).
"""
from __future__ import annotations

import os
import random

import pytest

from netbpf.tools.http.tracer import HttpTracer, Transaction
from tests.http_frames import Pkt, TcpFlow, random_sizes, reordered, retransmitted
from tests.unit.test_http_parser import CLIENT, SERVER, req, resp

SIZES = ["whole", "bytes", "random"]
SEEDS = int(os.environ.get("NETBPF_HTTP_LOSS_SEEDS", "60"))  # connections per pattern; more for a long run


def send(flow: TcpFlow, direction: int, data: bytes, sizes: str, rng: random.Random) -> list[Pkt]:
    """Send ``data``; return the segments it took (to drop them)."""
    before = len(flow.packets)
    if sizes == "whole":
        flow.send(direction, data, [len(data)])
    elif sizes == "bytes":
        flow.send(direction, data, [1] * len(data))
    else:
        flow.send(direction, data, random_sizes(rng, len(data), 700))
    return flow.packets[before:]


def trace(packets: list[Pkt], flow: TcpFlow) -> tuple[list[Transaction], HttpTracer]:
    out: list[Transaction] = []
    tracer = HttpTracer({8080}, out.append)
    for i, pkt in enumerate(packets):
        tracer.feed(flow.render(pkt), ts=1000.0 + i * 0.001)
    tracer.close()
    return out, tracer


def reported(out: list[Transaction]) -> list[tuple[str, int | None, str]]:
    return [(t.exchange.request.target, t.exchange.response.status if t.exchange.response else None,
             t.exchange.error) for t in out]


@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("seed", range(4))
def test_lost_response_then_lost_request_is_not_a_shifted_pairing(sizes: str, seed: int) -> None:
    """The case of issue 12: R1 GET /a -> 200 (response lost), R2 GET /b (request
    lost) -> 404, R3 GET /c -> 200. Before: /a was reported 404."""
    if sizes != "random" and seed:
        pytest.skip("one run is enough for whole and byte-by-byte segments")
    rng = random.Random(f"aba/{sizes}/{seed}")
    flow = TcpFlow(CLIENT, SERVER).handshake()
    lost: list[Pkt] = []
    send(flow, 0, req("GET", "/a"), sizes, rng)
    lost += send(flow, 1, resp(200, b"a" * 120, length=120), sizes, rng)
    lost += send(flow, 0, req("GET", "/b"), sizes, rng)
    send(flow, 1, resp(404, b"no such thing", length=13), sizes, rng)
    send(flow, 0, req("GET", "/c"), sizes, rng)
    send(flow, 1, resp(200, b"c" * 30, length=30), sizes, rng)
    flow.fin(0)
    flow.fin(1)
    out, tracer = trace([p for p in flow.packets if p not in lost], flow)
    got = reported(out)
    assert [(path, status) for path, status, _ in got] == [("/a", None), ("/c", 200)]
    assert "response lost" in got[0][2] and got[1][2] == ""
    assert tracer.http.orphan_responses == 1  # the 404: a response without its request (/b)
    assert tracer.reassembler.stats.gaps == 2


def test_response_the_server_sent_before_the_request_is_not_its_answer() -> None:
    """A 408 sent on an idle keep-alive connection before the next request arrived:
    its ACK does not cover that request, so it is not that request's answer."""
    flow = TcpFlow(CLIENT, SERVER).handshake()
    flow.send(0, req("GET", "/1")).send(1, resp(200, length=0))
    flow.send(1, resp(408, length=0, headers="Connection: close\r\n"))
    flow.send(0, req("GET", "/2"))
    flow.fin(1)
    flow.fin(0)
    out, tracer = trace(flow.packets, flow)
    assert [(p, s) for p, s, _ in reported(out)] == [("/1", 200), ("/2", None)]
    assert tracer.http.orphan_responses == 1


# -- random loss against the ground truth --------------------------------------------------
STATUSES = [(200, 2000), (200, 0), (201, 17), (204, None), (302, 0), (404, 9), (500, 300),
            (200, 5000), (304, None)]


def conversation(rng: random.Random, requests: int, pipelining: str, sizes: str
                 ) -> tuple[TcpFlow, dict[str, int], list[list[Pkt]]]:
    """A keep-alive connection; returns the flow, each path's true status, and the
    segments of each message (what a loss may take)."""
    flow = TcpFlow(CLIENT, SERVER).handshake()
    truth: dict[str, int] = {}
    messages: list[list[Pkt]] = []
    i = 0
    while i < requests:
        batch = 1 if pipelining == "never" else rng.randint(1, 4) if pipelining == "always" \
            else rng.choice([1, 1, 1, 2, 3])
        answers = []
        for _ in range(min(batch, requests - i)):
            path = f"/t{i}"
            method = rng.choice(["GET", "GET", "GET", "POST", "HEAD"])
            status, length = rng.choice(STATUSES)
            truth[path] = status
            body = bytes(rng.randrange(97, 123) for _ in range(rng.randint(1, 800))) if method == "POST" else b""
            messages.append(send(flow, 0, req(method, path, body), sizes, rng))
            if status in (204, 304) or length is None:
                answer = resp(status, headers="ETag: \"x\"\r\n" if status == 304 else "")
            elif method == "HEAD":
                answer = resp(status, length=length)
            elif rng.random() < 0.3 and length:
                answer = resp(status, chunks=[b"z" * (length // 2), b"y" * (length - length // 2)])
            else:
                answer = resp(status, b"x" * length, length=length)
            answers.append(answer)
            i += 1
        messages.extend(send(flow, 1, answer, sizes, rng) for answer in answers)
    flow.fin(0)
    flow.fin(1)
    return flow, truth, messages


def check_against_truth(out: list[Transaction], truth: dict[str, int]) -> tuple[int, int]:
    """No wrong status, no request twice; returns (paired, reported without a response)."""
    paired = unpaired = 0
    seen = set()
    for tx in out:
        ex = tx.exchange
        path = ex.request.target
        assert path in truth and path not in seen, path
        seen.add(path)
        if ex.response is not None and ex.response.status == truth[path]:
            paired += 1
        else:
            # Either no response, or a response kept with its own error (lost midway):
            # then its status must still be right.
            assert ex.response is None, (path, ex.response.status, truth[path], ex.error)
            assert "lost" in ex.error or "not identified" in ex.error or "capture" in ex.error, ex.error
            unpaired += 1
    return paired, unpaired


@pytest.mark.parametrize("pipelining", ["never", "always", "sometimes"])
@pytest.mark.parametrize("loss", ["segments", "messages"])
def test_random_loss_never_gives_a_wrong_status(pipelining: str, loss: str) -> None:
    totals = {"paired": 0, "unpaired": 0, "requests": 0}
    for seed in range(SEEDS):
        rng = random.Random(f"{pipelining}/{loss}/{seed}")
        sizes = rng.choice(["whole", "random"])
        flow, truth, messages = conversation(rng, rng.randint(3, 25), pipelining, sizes)
        if loss == "messages":  # whole messages lost (each ~10%)
            dropped = {id(p) for m in messages if rng.random() < 0.1 for p in m}
        else:  # single segments lost (each ~5%)
            dropped = {id(p) for m in messages for p in m if rng.random() < 0.05}
        kept = [p for p in flow.packets if id(p) not in dropped]
        variant = rng.random()  # and what was captured, reordered or retransmitted
        if variant < 0.25:
            kept = reordered(kept, rng)
        elif variant < 0.5:
            kept = retransmitted(kept, rng)
        out, _ = trace(kept, flow)
        paired, unpaired = check_against_truth(out, truth)
        totals["paired"] += paired
        totals["unpaired"] += unpaired
        totals["requests"] += len(truth)
    # The test would pass on a tracer that pairs nothing: most answers must still be given.
    # A client that pipelines leaves fewer proofs after a loss (which of the requests
    # sent together did the server answer first?), so fewer are paired there.
    share = 0.6 if pipelining == "never" else 0.2
    assert totals["paired"] > share * totals["requests"], totals
