"""netbpf accel without root: options, keys, the object's shape, output, the bench table."""
from __future__ import annotations

import argparse
import io
import json
import re
import threading
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from netbpf.bpf import BpfObject, UsageError
from netbpf.cli import build_parser
from netbpf.tools.accel import accel, bench, cli, loadgen

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
    values = {"stream_64k": (20.0, 30.0), "stream_64k_unlimited": (None, 31.0), "stream_1k": (2.0, 1.8),
              "stream_1k_every": (None, 1.0), "rr_rate": (30000, 45000), "rr_p50": (30.0, 20.0),
              "rr_p99": (60.0, 50.0)}
    for key, (without, with_) in values.items():
        if without is not None:
            s.add(key, "plain", without)
        s.add(key, "accel", with_)
    return s


def test_bench_rows_ratios_and_verdicts() -> None:
    rows = {r["key"]: r for r in bench.rows(_samples())}
    assert rows["stream_64k"]["ratio"] == 1.5 and rows["stream_64k"]["verdict"] == "holds"
    assert rows["stream_1k_every"]["ratio"] == 0.5  # against the 1 KiB run without acceleration
    assert rows["stream_1k"]["verdict"] == "below target, slower with acceleration"
    assert rows["rr_rate"]["verdict"] == "holds"
    assert rows["rr_p99"]["ratio"] == pytest.approx(50 / 60)
    assert rows["rr_p99"]["verdict"] == "below target"  # 0.83 > 0.8


def test_bench_markdown_and_summary() -> None:
    rows = bench.rows(_samples())
    md = bench.markdown(rows).splitlines()
    assert md[0].startswith("| measure | unit | without | with accel | ratio |")
    assert len(md) == 2 + len(bench.MEASURES)
    assert "| 1.50× |" in md[2]
    assert "Slower with acceleration: 1 KiB writes, stream (0.90×)" in bench.summary(rows, 3, 5)


def test_bench_median_resists_one_outlier() -> None:
    s = bench.Samples()
    for v in (20.0, 21.0, 2.0):
        s.add("x", "plain", v)
    assert s.median("x", "plain") == 20.0


# -- the request/response load ------------------------------------------------------------------------------

def test_loadgen_echo_and_round_trips() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = threading.Thread(target=loadgen.echo, args=(port, "127.0.0.1", 1024), daemon=True)
    out = io.StringIO()
    with redirect_stdout(out):
        server.start()
        for _ in range(100):
            if "listening" in out.getvalue():
                break
            threading.Event().wait(0.02)
        assert loadgen.rr("127.0.0.1", port, 1024, 0.3) == 0
    server.join(timeout=5)
    result = json.loads(out.getvalue().splitlines()[-1])
    assert result["round_trips"] > 100
    assert 0 < result["p50_us"] <= result["p99_us"]
