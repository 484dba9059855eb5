"""What ``netbpf http`` prints: lines, JSON, the per-backend table, the balance verdict,
secrets redacted, Prometheus metrics (no root)."""
from __future__ import annotations

import collections
import json
import math
import random
import re

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from netbpf.packet.decap import Tunnel
from netbpf.packet.http import Exchange, Request, Response
from netbpf.tools.http.kernel import Counter
from netbpf.tools.http.metrics import HttpCollector, TransactionCounts
from netbpf.tools.http.report import COLUMNS, Report
from netbpf.tools.http.summary import Summary, chi2_sf, percentile
from netbpf.tools.http.tracer import Transaction


def tx(backend: str = "10.0.11.2:8080", status: int | None = 200, latency: float = 0.01,
       tag: str | None = None, error: str = "", path: str = "/x", headers: tuple = (),
       response_headers: tuple = (), tunnel: Tunnel | None = None, interim: tuple = ()) -> Transaction:
    request = Request("GET", path, "1.1", "gw", headers, 5, 80, False, 1000.0, 1000.001, tag)
    response = None if status is None else Response(status, "OK", "1.1", response_headers, 7, 90, False,
                                                    1000.0 + latency / 2, 1000.0 + latency, interim)
    return Transaction(Exchange(request, response, error), "10.0.1.2:40000", backend, tunnel)


def test_fast_json_is_exactly_json_dumps_of_the_row() -> None:
    rng = random.Random(1)
    report = Report(tag=True, headers=False, show_secrets=False, tag_header="X-Test-Id")
    for _ in range(500):
        t = tx(status=rng.choice([None, 200, 304, 503]), latency=rng.random(),
               tag=rng.choice([None, "t\u00e9st", 'q"uote', "\\back"]), error=rng.choice(["", "capture gap"]),
               path=rng.choice(["/", "/a b", "/\u2603?x=\"1\"", "/%00\x01"]),
               tunnel=rng.choice([None, Tunnel("vxlan", b"\xac\x10\x01\x01", b"\xac\x10\x01\x02", 101)]),
               interim=rng.choice([(), (100,), (100, 103)]))
        fast = report.json(t)
        assert fast == json.dumps(report.row(t)), fast
        assert list(json.loads(fast)) == [c.key for c in COLUMNS if not c.key.endswith("_headers")]


def test_secrets_are_redacted_unless_asked() -> None:
    headers = (("Authorization", "Bearer abc"), ("Cookie", "s=1; t=2"), ("X-Test-Id", "t1"),
               ("Proxy-Authorization", "Basic x"), ("X-Api-Key", "k1"))
    t = tx(headers=headers, response_headers=(("Set-Cookie", "s=2; Path=/; HttpOnly"), ("Server", "nginx")))
    shown = json.loads(Report(True, True, False, "X-Test-Id").json(t))
    mark = r"<redacted #[0-9a-f]{8}>"
    got = shown["request_headers"]
    assert re.fullmatch(f"Bearer {mark}", got["Authorization"])
    assert re.fullmatch(f"s={mark}; t={mark}", got["Cookie"])
    assert re.fullmatch(f"Basic {mark}", got["Proxy-Authorization"])
    assert re.fullmatch(mark, got["X-Api-Key"]) and got["X-Test-Id"] == "t1"
    assert re.fullmatch(f"s={mark}; Path=/; HttpOnly", shown["response_headers"]["Set-Cookie"])
    assert shown["response_headers"]["Server"] == "nginx"
    text = Report(True, True, False, "X-Test-Id").text(t)
    assert "abc" not in text and "s=1" not in text and "k1" not in text and "> X-Test-Id: t1" in text
    assert "Bearer abc" in Report(True, True, True, "X-Test-Id").text(t)
    # A tag header that is a secret is redacted too; equal values, equal marks.
    a, b = tx(tag="Bearer abc"), tx(tag="Bearer abd")
    marks = [json.loads(Report(True, False, False, "Authorization").json(x))["tag"] for x in (a, a, b)]
    assert marks[0] == marks[1] != marks[2] and all(re.fullmatch(f"Bearer {mark}", m) for m in marks)
    assert marks[0] in Report(True, False, False, "Authorization").text(a)
    assert json.loads(Report(True, False, True, "Authorization").json(a))["tag"] == "Bearer abc"


def test_text_line_has_the_columns() -> None:
    report = Report(tag=True, headers=False, show_secrets=False, tag_header="X-Test-Id")
    header = report.header_line().split()
    assert header[:5] == ["TIME", "CLIENT", "BACKEND", "METHOD", "PATH"] and "TAG" in header
    line = report.text(tx(tag="probe", latency=0.0123))
    assert "10.0.11.2:8080" in line and " GET " in line and " 200 " in line and "12.30" in line
    assert "probe" in line
    assert "TAG" not in Report(False, False, False, None).header_line()


@pytest.mark.parametrize("x,df,expected", [(3.841, 1, 0.05), (5.991, 2, 0.05), (9.210, 2, 0.01),
                                           (0.0, 2, 1.0), (1.0, 1, 0.3173), (50.0, 2, 1.389e-11),
                                           (11.07, 5, 0.05)])
def test_chi_square_tail_matches_tables(x: float, df: int, expected: float) -> None:
    assert math.isclose(chi2_sf(x, df), expected, rel_tol=2e-3, abs_tol=1e-20)


@pytest.mark.parametrize("df", [2, 4, 10, 30])
@pytest.mark.parametrize("x", [0.5, 3.0, 12.0, 40.0, 100.0, 400.0])
def test_chi_square_tail_matches_the_closed_form_for_even_df(x: float, df: int) -> None:
    # For even df: P(X >= x) = exp(-x/2) * sum_{i < df/2} (x/2)^i / i!
    half = x / 2
    exact = math.exp(-half) * sum(half ** i / math.factorial(i) for i in range(df // 2))
    assert math.isclose(chi2_sf(x, df), exact, rel_tol=1e-9, abs_tol=1e-300)


def test_percentiles_are_nearest_rank() -> None:
    from array import array

    values = array("d", range(1, 101))
    assert (percentile(values, 50), percentile(values, 90), percentile(values, 99)) == (50, 90, 99)
    assert percentile(array("d"), 50) is None


def test_summary_counts_shares_statuses_and_verdict() -> None:
    summary = Summary(expected_backends=["10.0.13.2:8080"])
    for _ in range(60):
        summary.add(tx("10.0.11.2:8080", latency=0.002))
    for _ in range(30):
        summary.add(tx("[fd00:12::2]:8080", status=503, latency=0.004))
    for _ in range(10):
        summary.add(tx("[fd00:12::2]:8080", status=None, error="no response"))
    rows = {r["backend"]: r for r in summary.backend_rows()}
    assert rows["10.0.11.2:8080"]["requests"] == 60 and rows["10.0.11.2:8080"]["share"] == 0.6
    assert rows["[fd00:12::2]:8080"]["5xx"] == 30 and rows["[fd00:12::2]:8080"]["unanswered"] == 10
    assert rows["[fd00:12::2]:8080"]["p50_ms"] == 4.0
    assert rows["10.0.13.2:8080"]["requests"] == 0
    balance = summary.balance()
    assert balance.backends == 3 and not balance.even and balance.min_share == 0
    assert "UNEVEN" in summary.text()
    even = Summary()
    for i in range(300):
        even.add(tx(f"10.0.1{i % 3 + 1}.2:8080"))
    assert even.balance().even and even.balance().chi2 == 0 and "even" in even.balance().text()


def test_a_verdict_over_counts_that_miss_requests_says_it_is_unknown_for_all() -> None:
    """Frames lost before user space, gaps, connections not followed at tc: any number of
    requests may be there, so the verdict speaks only for those counted."""
    missed = [""]
    summary = Summary(uncounted=lambda: missed[0])
    for i in range(300):
        summary.add(tx(f"10.0.1{i % 3 + 1}.2:8080"))
    assert summary.balance().known and summary.balance().row()["even"] is True
    missed[0] = "12 frames lost before user space read them"
    balance = summary.balance()
    assert not balance.known and balance.even  # even among those counted
    row = balance.row()
    assert row["even"] is None and row["even_among_counted"] is True and row["uncounted"] == missed[0]
    text = balance.text()
    assert "even among the requests counted; for all requests UNKNOWN: 12 frames lost" in text, text
    assert "no evidence of a skew" not in text


def test_tags_say_which_backend_served_them() -> None:
    summary = Summary()
    summary.add(tx("10.0.11.2:8080", tag="probe-1"))
    summary.add(tx("10.0.12.2:8080", tag="probe-1", status=502))
    summary.add(tx("10.0.12.2:8080", tag="probe-2"))
    rows = {r["tag"]: r for r in summary.tag_rows()}
    assert rows["probe-1"]["backends"] == "10.0.11.2:8080, 10.0.12.2:8080"
    assert rows["probe-1"]["statuses"] == "200, 502" and rows["probe-2"]["requests"] == 1
    assert "probe-2" in summary.text()


def test_prometheus_metrics() -> None:
    counts = TransactionCounts()
    for latency in (0.0004, 0.003, 0.2):
        counts.add(tx(latency=latency))
    counts.add(tx(status=None, error="no response"))
    kernel = {c: 0 for c in Counter}
    kernel[Counter.FRAMES_SEEN], kernel[Counter.FRAMES_KEPT], kernel[Counter.PROTO_TCP] = 100, 40, 90
    registry = CollectorRegistry()
    registry.register(HttpCollector(counts, lambda: {
        "kernel": kernel, "ring_drops": 2, "flows": 3, "flows_opened": 9, "gaps": 1, "gap_bytes": 1460,
        "unparseable": 0, "orphans": 0}))
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    requests = {tuple(sorted(s.labels.items())): s.value for s in families["netbpf_http_requests"].samples
                if s.name.endswith("_total")}
    assert requests == {(("backend", "10.0.11.2:8080"), ("method", "GET"), ("status", "200")): 3.0,
                        (("backend", "10.0.11.2:8080"), ("method", "GET"), ("status", "none")): 1.0}
    hist = {s.labels.get("le"): s.value for s in families["netbpf_http_request_duration_seconds"].samples
            if s.name.endswith("_bucket")}
    assert hist["0.0005"] == 1 and hist["0.005"] == 2 and hist["0.25"] == 3 and hist["+Inf"] == 3
    assert families["netbpf_http_frames_lost"].samples[0].value == 2
    assert families["netbpf_http_frames_seen"].samples[0].value == 100
    protocols = {s.labels["protocol"]: s.value for s in families["netbpf_http_frames_by_protocol"].samples
                 if s.name.endswith("_total")}
    assert protocols["tcp"] == 90
    assert families["netbpf_http_flows"].samples[0].value == 3


def test_fast_text_is_exactly_the_table_line() -> None:
    rng = random.Random(2)
    for tag in (True, False):
        report = Report(tag=tag, headers=False, show_secrets=False, tag_header="X-Test-Id" if tag else None)
        for _ in range(300):
            t = tx(status=rng.choice([None, 200, 503]), latency=rng.random(), tag=rng.choice([None, "", "x"]),
                   error=rng.choice(["", "capture gap"]), path=rng.choice(["/", "/" + "p" * 50]),
                   tunnel=rng.choice([None, Tunnel("ipip", b"\x01\x02\x03\x04", b"\x05\x06\x07\x08")]))
            assert report.text(t) == report.text_table.text(report.row(t))


def test_the_gateways_own_front_end_is_not_a_backend() -> None:
    """Both legs traced: the front end (a local address with remote clients) is listed
    but left out of the shares and the verdict; an even spread over the backends is even."""
    from netbpf.tools.http.roles import Roles

    local = {"10.0.1.1", "fd00:1::1", "127.0.0.1"}
    summary = Summary(roles=Roles(is_local=local.__contains__))
    for i in range(300):
        summary.add(tx(f"10.0.1{i % 3 + 1}.2:8080"))  # upstream leg: the gateway is the client
        front = tx("10.0.1.1:80" if i % 2 else "[fd00:1::1]:80")
        summary.add(front._replace(client="10.0.1.2:40000" if i % 2 else "[fd00:1::2]:40000"))
    for _ in range(5):  # a backend on the gateway itself, reached from it: which is it? unsure
        summary.add(tx("127.0.0.1:9000")._replace(client="127.0.0.1:50000"))
    rows = {r["backend"]: r for r in summary.backend_rows()}
    assert rows["10.0.1.1:80"]["role"] == rows["[fd00:1::1]:80"]["role"] == "front end"
    assert rows["10.0.1.1:80"]["type"] == "front" and rows["10.0.1.1:80"]["share"] is None
    assert rows["127.0.0.1:9000"]["role"] == "backend?" and rows["10.0.11.2:8080"]["role"] == "backend"
    assert rows["10.0.11.2:8080"]["share"] == 100 / 305
    balance = summary.balance()
    assert balance.backends == 4 and balance.front == ("10.0.1.1:80", "[fd00:1::1]:80")
    assert "not compared: front end 10.0.1.1:80, [fd00:1::1]:80" in summary.text()
    assert "backend?" in summary.text() and "front end" in summary.text()
    # Without the unsure one, the three real backends are even: before, the front end
    # (with three times their count) made the verdict UNEVEN.
    even = Summary(roles=Roles(is_local=local.__contains__))
    for i in range(300):
        even.add(tx(f"10.0.1{i % 3 + 1}.2:8080"))
        even.add(tx("10.0.1.1:80")._replace(client="10.0.1.2:40000"))
    assert even.balance().even and even.balance().backends == 3
    assert not Summary().balance().front
    # Named by port, with nothing known of the host (replayed traffic).
    named = Summary(roles=Roles(front_ports=[80]))
    named.add(tx("10.0.1.1:80"))
    named.add(tx("10.0.11.2:8080"))
    assert [r["role"] for r in named.backend_rows()] == ["backend", "front end"]


def test_local_addresses_are_asked_of_the_kernel() -> None:
    from netbpf.tools.http.roles import LocalAddresses

    is_local = LocalAddresses()
    assert is_local("127.0.0.1") and not is_local("192.0.2.77")  # TEST-NET-1 is nobody's
    assert not is_local("2001:db8::77")


def test_what_the_capture_cannot_tell_is_unknown_not_unanswered() -> None:
    """An exchange whose response is unproven (a connection joined mid-stream) or lost in a
    capture gap is "unknown" in the table, its JSON row and the metrics; NO-RESP ("none")
    is only for a connection closed or reset with the request unanswered."""
    summary, counts = Summary(), TransactionCounts()
    for error in ("response lost in a capture gap or not identified", "response lost in a capture gap",
                  "no response", "connection reset", "capture ended"):
        summary.add(tx(status=None, error=error))
        counts.add(tx(status=None, error=error))
    (row,) = summary.backend_rows()
    assert (row["unanswered"], row["unknown"]) == (2, 3)
    assert "UNKNOWN" in summary.text()
    assert collections.Counter({status: n for (_, _, status), n in counts.requests.items()}) == \
        {"none": 2, "unknown": 3}
