"""No secret in any output of ``netbpf http`` unless ``--show-secrets``: lines, JSON,
headers (-H), the per-backend and per-tag tables, ``--summary --json``, the metrics.

Transactions come from bytes through the tracer (as in a capture), then through
every output the command has."""
from __future__ import annotations

import json
import re

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from netbpf.tools.http.kernel import Counter
from netbpf.tools.http.metrics import HttpCollector, TransactionCounts
from netbpf.tools.http.report import Report
from netbpf.tools.http.summary import Summary
from netbpf.tools.http.tracer import HttpTracer, Transaction
from tests.http_frames import TcpFlow
from tests.unit.test_http_parser import CLIENT, SERVER, resp

SECRETS = ["s3cr3t-bearer", "dXNlcjpodW50ZXIy", "sess-cookie-value", "other-cookie-value",
           "set-cookie-value", "api-key-value", "proxy-pass-value", "csrf-token-value", "query-token-value"]


def request(n: int) -> bytes:
    return (f"GET /api/{n}?user=x&access_token=query-token-value HTTP/1.1\r\nHost: gw\r\n"
            f"Authorization: Bearer s3cr3t-bearer{n % 2}\r\n"
            "Proxy-Authorization: Basic dXNlcjpodW50ZXIy\r\n"
            "Cookie: session=sess-cookie-value; theme=other-cookie-value\r\n"
            "X-Api-Key: api-key-value\r\nX-CSRF-Token: csrf-token-value\r\n"
            "X-Proxy-Password: proxy-pass-value\r\nX-Test-Id: probe\r\n\r\n").encode()


def transactions(tag_header: str, show_secrets: bool) -> list[Transaction]:
    out: list[Transaction] = []
    tracer = HttpTracer({8080}, out.append, tag_header=tag_header, keep_headers=True, show_secrets=show_secrets)
    flow = TcpFlow(CLIENT, SERVER).handshake()
    for n in range(4):
        flow.send(0, request(n)).send(1, resp(200, b"ok", length=2,
                                              headers="Set-Cookie: id=set-cookie-value; Path=/; HttpOnly\r\n"))
    for i, pkt in enumerate(flow.packets):
        tracer.feed(flow.render(pkt), ts=1000.0 + i * 0.001)
    tracer.close()
    assert len(out) == 4
    return out


def every_output(txs: list[Transaction], tag_header: str, show_secrets: bool) -> str:
    """All the command prints for these transactions, in every mode, as one text."""
    parts = []
    for headers in (False, True):
        report = Report(True, headers, show_secrets, tag_header)
        parts.append(report.header_line())
        parts += [report.text(t) for t in txs] + [report.json(t) for t in txs]
    summary, counts = Summary(), TransactionCounts()
    for t in txs:
        summary.add(t)
        counts.add(t)
    parts.append(summary.text())
    parts += [json.dumps(row) for row in summary.json_rows()]
    registry = CollectorRegistry()
    registry.register(HttpCollector(counts, lambda: {
        "kernel": {c: 0 for c in Counter}, "ring_drops": 0, "flows": 0, "flows_opened": 1, "gaps": 0,
        "gap_bytes": 0, "unparseable": 0, "orphans": 0, "not_http": {}}))
    parts.append(generate_latest(registry).decode())
    return "\n".join(parts)


@pytest.mark.parametrize("tag_header", ["Authorization", "Cookie", "X-Api-Key", "X-Test-Id"])
def test_no_secret_in_any_output(tag_header: str) -> None:
    txs = transactions(tag_header, show_secrets=False)
    text = every_output(txs, tag_header, show_secrets=False)
    for secret in SECRETS:
        assert secret not in text, secret
    # Still told apart: two Authorization values, two marks; the per-tag table groups by them.
    if tag_header == "Authorization":
        tags = {t.exchange.request.tag for t in txs}
        assert len(tags) == 2 and all(re.fullmatch(r"Bearer <redacted #[0-9a-f]{8}>", tag) for tag in tags)
        summary = Summary()
        for t in txs:
            summary.add(t)
        assert sorted(r["requests"] for r in summary.tag_rows()) == [2, 2]
    # Not secret, so still shown: the path, the other query parameters, the plain tag.
    assert "/api/1?user=x&access_token=<redacted #" in text
    if tag_header == "X-Test-Id":
        assert "probe" in text


def test_show_secrets_shows_them() -> None:
    txs = transactions("Authorization", show_secrets=True)
    text = every_output(txs, "Authorization", show_secrets=True)
    for secret in SECRETS:
        assert secret in text, secret
