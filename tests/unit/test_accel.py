"""netbpf accel without root: options, keys, the object's shape, output, the bench table."""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from netbpf.bpf import BpfObject
from netbpf.cli import build_parser
from netbpf.errors import UsageError
from netbpf.tools.accel import accel, bench, cli, clients

HEADER = Path(accel.__file__).with_name("accel.h")


# -- options ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text,ports", [
    ("80", (80,)),
    ("443,80,80", (80, 443)),
    ("8000-8003, 22", (22, 8000, 8001, 8002, 8003)),
    ("65535", (65535,)),
])
def test_parse_ports(text: str, ports: tuple[int, ...]) -> None:
    assert accel.parse_ports(text) == ports


@pytest.mark.parametrize("text,message", [
    ("0", "1-65535"), ("65536", "1-65535"), ("90-80", "1-65535"), ("http", "not a port"),
    ("", "no port"), ("1-100", "at most 64"),
])
def test_parse_ports_refuses(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        accel.parse_ports(text)


def test_ports_read_back_compactly() -> None:
    assert accel.compress_ports([8002, 80, 8000, 8001, 443]) == "80,443,8000-8002"
    assert accel.describe_scope([]) == "all local connections"
    assert accel.describe_scope([6379]) == "local connections from or to port 6379"


def test_default_unread_limit_is_what_tcp_allows() -> None:
    rmem = int(Path("/proc/sys/net/ipv4/tcp_rmem").read_text().split()[2])
    wmem = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    assert accel.Options().rodata()["queue_limit"] == rmem + wmem
    assert accel.Options(max_queued=0).rodata()["queue_limit"] == 0
    assert accel.Options(ports=(80,)).rodata()["filter_ports"] == 1


@pytest.mark.parametrize("text,value", [("1M", 1 << 20), ("64KiB", 64 << 10), ("0", 0), ("1g", 1 << 30),
                                        ("4096", 4096)])
def test_sizes(text: str, value: int) -> None:
    assert cli._size(text) == value


def test_bad_size() -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        cli._size("lots")


@pytest.mark.parametrize("argv", [
    ["accel", "enable", "--ports", "0"],
    ["accel", "enable", "--small-bytes", "-1"],
    ["accel", "frobnicate"],
    ["accel"],
])
def test_cli_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv)
    assert e.value.code == 2


def test_pin_dir_must_be_in_bpffs() -> None:
    with pytest.raises(UsageError, match="/sys/fs/bpf"):
        accel.check_pin_dir("/tmp/accel")
    assert accel.check_pin_dir("/sys/fs/bpf/netbpf/x") == Path("/sys/fs/bpf/netbpf/x")


# -- keys ---------------------------------------------------------------------------------------

def test_ipv4_and_its_mapped_form_are_one_key() -> None:
    """The dual-stack fix: the kernel shows an IPv4 client of a dual-stack server as
    ::ffff:a.b.c.d on the server's side; both spellings must give the same key."""
    a = accel.key_of(("127.0.0.1", 5201), ("127.0.0.1", 40000), 7)
    b = accel.key_of(("::ffff:127.0.0.1", 5201), ("::ffff:127.0.0.1", 40000), 7)
    assert bytes(a) == bytes(b)
    raw = bytes(a)
    assert raw[:8] == (7).to_bytes(8, "little")
    assert raw[8:24] == bytes(10) + b"\xff\xff" + bytes([127, 0, 0, 1])  # network order
    assert raw[40:44] == (5201).to_bytes(4, "little")  # host order, as skops->local_port
    assert accel.format_endpoint(bytes(a.local_ip), a.local_port) == "127.0.0.1:5201"


def test_ipv6_endpoints() -> None:
    k = accel.key_of(("::1", 8080), ("::1", 5555), 1)
    assert accel.format_endpoint(bytes(k.local_ip), k.local_port) == "[::1]:8080"
    assert accel.format_endpoint(bytes(k.remote_ip), k.remote_port) == "[::1]:5555"


# -- the BPF object, opened without root ------------------------------------------------------------

def test_object_shape() -> None:
    with BpfObject.open(accel.object_path(accel.__file__, accel.BPF_OBJECT)) as obj:
        assert {p.name: p.section for p in obj.programs.values()} == {
            "netbpf_acc_ops": "sockops", "netbpf_acc_msg": "sk_msg"}
        assert set(accel.MAP_OF_ROLE.values()) <= set(obj.maps)
        assert set(accel.Options().rodata()) <= set(obj.rodata_variables())
        assert obj.map("accel_sockhash").key_size == 48


def test_counter_indexes_match_the_header() -> None:
    text = HEADER.read_text()
    body = re.search(r"enum accel_counter \{(.*?)\};", text, re.S).group(1)  # type: ignore[union-attr]
    names = re.findall(r"^\s*ACCEL_(\w+),", body, re.M)
    assert names[-1] == "COUNTERS"
    python = {c.name: c.value for c in accel.Counter}
    assert {n: i for i, n in enumerate(names[:-1])} == python
    reasons = dict(re.findall(r"ACCEL_(?:TCP_|REDIRECTING)(\w*) = (\d)", text))
    assert len(reasons) == len(accel.TCP_REASONS)


# -- status output ------------------------------------------------------------------------------------

def _status(enabled: bool = True) -> accel.Status:
    counters = {key: 0 for key in accel.COUNTER_KEYS.values()}
    counters |= {"messages_redirected": 72916, "bytes_redirected": 4777575224, "sockets_added": 4}
    return accel.Status(enabled=enabled, pin_dir="/sys/fs/bpf/netbpf/accel", cgroup="/sys/fs/cgroup/unified",
                        ports=[5201], small_bytes=16384, demote_after=64, queue_limit=37748736, sockets=2,
                        counters=counters, programs={"netbpf_acc_ops": 10, "netbpf_acc_msg": 11},
                        links={"cgroup": 3, "sk_msg": 4}, sk_msg_attach="link",
                        draining=[accel.Draining(prog_id=7, sockets=2)])


def test_status_text() -> None:
    text = cli.render_status(_status())
    assert re.search(r"^accel\s+on$", text, re.M)
    assert re.search(r"^redirected\s+72,916 messages  4\.4 GiB$", text, re.M)
    assert "local connections from or to port 5201" in text
    assert "36.0 MiB redirected and unread" in text
    assert "2 sockets of a disabled instance (sk_msg prog id 7)" in text


def test_status_when_off_shows_only_what_is_true() -> None:
    status = _status(enabled=False)
    text = cli.render_status(status)
    assert re.search(r"^accel\s+off$", text, re.M) and "redirected" not in text
    d = status.as_dict()
    assert d["enabled"] is False and "bytes_redirected" not in d and "cgroup" not in d
    json.dumps(d)


def test_status_json_has_every_counter() -> None:
    d = _status().as_dict()
    assert set(accel.COUNTER_KEYS.values()) <= set(d)
    assert d["ports"] == [5201] and d["programs"]["netbpf_acc_msg"] == 11


# -- the bench table ------------------------------------------------------------------------------------

def _samples() -> bench.Samples:
    s = bench.Samples()
    values = {"stream64k": (20.0, 30.0, 32.0), "stream1k": (2.0, 1.8, 1.0),
              "pp1k_rate": (30000, 45000, 40000), "pp1k_p50": (30.0, 20.0, 22.0),
              "pp1k_p99": (60.0, 50.0, 40.0), "web": (10000, 12000, None)}
    for key, values_of_mode in values.items():
        for mode, v in zip(bench.MODES, values_of_mode, strict=True):
            if v is not None:
                s.add(key, mode, v)
    s.failed["web"] = "wrk: 3 non-2xx/3xx responses"
    s.redirected["stream64k"] = [0.25]
    return s


def test_bench_rows_ratios_and_verdicts() -> None:
    rows = {r["key"]: r for r in bench.rows(_samples())}
    assert rows["stream64k"]["ratio"] == 1.5 and rows["stream64k"]["redirected"] == 0.25
    assert rows["stream64k"]["vs_seed"] == pytest.approx(30 / 32)
    assert rows["stream64k"]["verdict"] == "holds, behind the seed"
    assert rows["stream1k"]["verdict"] == "below target, slower with netbpf"
    assert rows["stream1k"]["seed_ratio"] == 0.5
    assert rows["pp1k_rate"]["verdict"] == "holds"
    assert rows["pp1k_p99"]["ratio"] == pytest.approx(50 / 60)
    assert rows["pp1k_p99"]["verdict"] == "below target, behind the seed"  # 0.83 > 0.75; 50 > 40 µs
    assert rows["web"]["seed"] == "fails" and rows["web"]["vs_seed"] is None
    assert "pp64_rate" not in rows  # not measured: no row rather than a made-up one


def test_bench_verdict_says_when_rounds_disagree() -> None:
    s = bench.Samples()
    for r, (plain, netbpf, seed) in enumerate([(100, 90, 80), (100, 120, 130), (100, 95, 90)]):
        for mode, v in zip(bench.MODES, (plain, netbpf, seed), strict=True):
            s.add("web", mode, v, r)
    row = bench.rows(s)[0]
    assert row["ratio"] == 0.95 and row["ratio_rounds"] == (0.9, 1.2)
    assert row["vs_seed_rounds"] == pytest.approx((120 / 130, 90 / 80))
    assert row["verdict"] == "below target, slower with netbpf (not in every round)"
    assert "| 0.90–1.20× |" in bench.markdown([row])
    assert "(0.95×, not in every round)" in bench.summary([row], {}, 2, 3)


def test_bench_markdown_and_summary() -> None:
    rows = bench.rows(_samples())
    md = bench.markdown(rows).splitlines()
    assert md[0].startswith("| measure | unit | plain | netbpf | netbpf/plain | per round | bytes redirected | "
                            "seed |")
    assert len(md) == 2 + len(rows)
    web = next(line for line in md if line.startswith("| nginx"))
    assert "| fails |" in web
    text = bench.summary(rows, {"web": "wrk: 3 non-2xx/3xx responses"}, 3, 5)
    assert "Slower with netbpf than plain: iperf3 stream, 1 KiB writes (0.90×)" in text
    assert "The seed fails at web: wrk: 3 non-2xx/3xx responses" in text


SOCKPERF_OUT = """\
sockperf: [Valid Duration] RunTime=1.549 sec; SentMessages=29099; ReceivedMessages=29099
sockperf: ====> avg-latency=26.595 (std-dev=195.733)
sockperf: # dropped messages = 0; # duplicated messages = 0; # out-of-order messages = 0
sockperf: ---> percentile 99.000 =   62.441
sockperf: ---> percentile 90.000 =   15.028
sockperf: ---> percentile 50.000 =   10.114
"""


def test_parse_sockperf_round_trips_are_twice_its_latency() -> None:
    r = clients.parse_sockperf(SOCKPERF_OUT)
    assert r["rate"] == pytest.approx(29099 / 1.549)
    assert r["p50"] == pytest.approx(20.228) and r["p99"] == pytest.approx(124.882)


def test_parse_sockperf_refuses_loss_and_silence() -> None:
    with pytest.raises(clients.ClientError, match="dropped"):
        clients.parse_sockperf(SOCKPERF_OUT.replace("# dropped messages = 0", "# dropped messages = 2"))
    with pytest.raises(clients.ClientError, match="no statistics"):
        clients.parse_sockperf("sockperf: ERROR: connect failed")


WRK_OUT = """\
Running 2s test @ http://127.0.0.1:20001/small
  1 threads and 8 connections
  41234 requests in 2.00s, 50.00MB read
Requests/sec:  20617.00
Transfer/sec:     25.00MB
"""


def test_parse_wrk_counts_every_error() -> None:
    assert clients.parse_wrk(WRK_OUT)["rate"] == 20617.0
    with pytest.raises(clients.ClientError, match="5 non-2xx"):
        clients.parse_wrk(WRK_OUT + "  Non-2xx or 3xx responses: 5\n")
    with pytest.raises(clients.ClientError, match="read 3"):
        clients.parse_wrk(WRK_OUT + "  Socket errors: connect 0, read 3, write 0, timeout 0\n")
    assert clients.parse_wrk(WRK_OUT + "  Socket errors: connect 0, read 0, write 0, timeout 0\n")


def test_bench_median_resists_one_outlier() -> None:
    s = bench.Samples()
    for v in (20.0, 21.0, 2.0):
        s.add("x", "plain", v)
    assert s.median("x", "plain") == 20.0


def test_bench_cells_are_chosen_by_name() -> None:
    assert [c.key for c in bench.select_cells("web, pp1k")] == ["pp1k", "web"]
    with pytest.raises(UsageError, match="unknown cell pp2k"):
        bench.select_cells("pp2k,web")
    with pytest.raises(UsageError):
        bench.select_cells(",")
