"""netbpf dump on live lab traffic, checked with tcpdump, tshark and iproute2.

The central case is the seed's: an XDP program that somebody else loaded
(here: drops ICMP, built with clang, attached with iproute2) hides packets
from tcpdump. netbpf dump must see them all, leave that program acting, and
put it back exactly as it was: same id, same mode, also after a SIGKILL
(then through ``netbpf cleanup``).
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netbpf.bpf.fs import PIN_ROOT
from netbpf.lab import Lab
from netbpf.packet import pcap

from .conftest import build_progs, netbpf, settled

HERE = Path(__file__).resolve().parent
ARGV = [sys.executable, "-m", "netbpf"]
N = 6  # pings per case


# -- helpers ---------------------------------------------------------------------------------

def start(lab: Lab, *args: str, stdout: int | None = subprocess.PIPE) -> subprocess.Popen[bytes]:
    """Start `netbpf --netns GW dump ...` and wait until it says it captures."""
    proc = subprocess.Popen([*ARGV, "--netns", lab.gateway, "dump", *args], stdout=stdout,
                            stderr=subprocess.PIPE)
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    line = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.5)
        if ready:
            line = proc.stderr.readline()
            if b"capturing on" in line or not line:
                break
    if b"capturing on" not in line:
        proc.kill()
        raise AssertionError(f"netbpf dump did not start: {line!r} {proc.stderr.read()!r}")
    return proc


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> tuple[bytes, str]:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return out, err.decode()


def summary(stderr: str) -> tuple[int, int, int]:
    """(captured, matched, lost) from the exit line."""
    for line in stderr.splitlines():
        if "packets captured" in line:
            words = line.replace(",", "").split()
            return int(words[0]), int(words[3]), int(words[7])
    raise AssertionError(f"no summary line in {stderr!r}")


def xdp_state(lab: Lab, dev: str = "c0") -> tuple[int, int]:
    """(program id, attach mode: 1 drv, 2 generic) as iproute2 reports it."""
    out = lab.run(lab.gateway, "ip", "-j", "-d", "link", "show", "dev", dev).stdout
    xdp = json.loads(out)[0].get("xdp", {})
    return int(xdp.get("prog", {}).get("id", 0)), int(xdp.get("mode", 0))


def ping(lab: Lab, count: int = N, dst: str | None = None, size: int = 56) -> int:
    dst = dst or lab.GATEWAY_IP
    out = lab.run(lab.client, "ping", "-c", str(count), "-i", "0.2", "-W", "1", "-s", str(size), dst,
                  check=False).stdout
    for line in out.splitlines():
        if "received" in line:
            return int(line.split(",")[1].split()[0])
    return 0


def tshark(path: Path, display_filter: str, field: str = "frame.number") -> list[str]:
    out = subprocess.run(["tshark", "-r", str(path), "-Y", display_filter, "-T", "fields", "-e", field],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def dump_programs() -> set[int]:
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True, check=True)
    return {int(p["id"]) for p in json.loads(out.stdout or "[]") if p.get("name") == "netbpf_dump_xdp"
            or p.get("name") == "netbpf_dump_tc"}


def our_pins(lab: Lab) -> list[str]:
    """The dump pins of the lab's gateway (other tests pin beside ours at the same time)."""
    root = PIN_ROOT / "dump"
    return sorted(str(p) for p in root.glob(f"{lab.gateway}_*/*") if p.is_file()) if root.exists() else []


def wait_gone(ids: set[int], timeout: float = 5) -> set[int]:
    deadline = time.monotonic() + timeout
    while ids & dump_programs() and time.monotonic() < deadline:
        time.sleep(0.1)
    return ids & dump_programs()


# -- the program that is there before us ---------------------------------------------------------

@pytest.fixture(scope="session")
def drop_icmp_object(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_progs(tmp_path_factory.mktemp("progs"), ["xdp_drop_icmp"])["xdp_drop_icmp"]


# Loads a raw "drop ICMP" program with expected attach type 0 (as loaders that never set
# it do) and attaches it over netlink: netbpf's tail call must then be loaded the same way.
RAW_LOADER = r"""
import ctypes, sys
from netbpf import netns
netns.enter(sys.argv[1])
from netbpf.bpf import _libbpf as L
from netbpf.bpf.attach import xdp
from netbpf.bpf.program import Program
# r2 = data; r3 = data_end; if data + 24 > data_end: pass; if h_proto != IPv4 or
# protocol != ICMP: pass; else drop
code = bytes.fromhex(
    "61120000000000006113040000000000bf2400000000000007040000180000002d34060000000000"
    "69250c0000000000550504000800000071251700000000005505020001000000b700000001000000"
    "9500000000000000b7000000020000009500000000000000")
insns = (L.BpfInsn * (len(code) // 8)).from_buffer_copy(code)
opts = L.ProgLoadOpts(sz=ctypes.sizeof(L.ProgLoadOpts), expected_attach_type=0)
fd = L.lib.bpf_prog_load(6, b"raw_drop_icmp", b"GPL", insns, len(code) // 8, ctypes.byref(opts))
assert fd >= 0, fd
xdp.attach_xdp_netlink(Program("raw_drop_icmp", fd=fd), xdp.XdpOptions("c0", mode=sys.argv[2]), None)
"""

# Holds the program in a BPF link (pinned outside netbpf's directory, as another tool would).
LINK_LOADER = r"""
import sys
from netbpf import netns
netns.enter(sys.argv[1])
from netbpf.bpf import BpfObject
from netbpf.bpf.attach import xdp
obj = BpfObject.open(sys.argv[2]); obj.load()
link = xdp.attach_xdp(obj.program("drop_icmp"), xdp.XdpOptions("c0", mode=sys.argv[4]))
link.pin(sys.argv[3])
"""

LOADERS = ["iproute2-drv", "iproute2-generic", "raw-attach-type-0", "bpf-link-skb"]


@pytest.fixture(params=LOADERS)
def original(request: pytest.FixtureRequest, pair: Lab, drop_icmp_object: Path) -> Iterator[tuple[int, int]]:
    """An ICMP-dropping XDP program on the gateway's c0: (its id, its mode)."""
    kind = request.param
    link_pin = Path(f"/sys/fs/bpf/netbpf-test-dump-link-{os.getpid()}")
    env = {**os.environ, "PYTHONPATH": str(HERE.parents[1] / "src")}
    if kind.startswith("iproute2"):
        mode = "xdpdrv" if kind.endswith("drv") else "xdpgeneric"
        pair.run(pair.gateway, "ip", "link", "set", "dev", "c0", mode, "obj", str(drop_icmp_object), "sec", "xdp")
    elif kind == "raw-attach-type-0":
        subprocess.run([sys.executable, "-c", RAW_LOADER, pair.gateway, "drv"], check=True, env=env)
    else:
        subprocess.run([sys.executable, "-c", LINK_LOADER, pair.gateway, str(drop_icmp_object),
                        str(link_pin), "skb"], check=True, env=env)
    state = xdp_state(pair)
    assert state[0] and ping(pair, 2) == 0  # it drops ICMP
    yield state
    if link_pin.exists():
        link_pin.unlink()
    pair.run(pair.gateway, "ip", "link", "set", "dev", "c0", "xdp", "off", check=False)


# -- the seed's case -------------------------------------------------------------------------------

def test_capture_in_front_of_a_program_that_drops_icmp(pair: Lab, original: tuple[int, int],
                                                       tmp_path: Path) -> None:
    before = dump_programs()
    tcpdump_file, ours = tmp_path / "tcpdump.pcap", tmp_path / "x.pcap"
    tcpdump = pair.popen(pair.gateway, "tcpdump", "-i", "c0", "-U", "-w", str(tcpdump_file), "icmp",
                         stderr=subprocess.PIPE)
    proc = start(pair, "-i", "c0", "-w", str(ours), "icmp")
    assert xdp_state(pair)[0] != original[0]  # the capture program stands in front
    assert ping(pair, N) == 0  # the original still acts: every ping fails
    assert ping(pair, 2, pair.GATEWAY_IP6) == 2  # and only ICMP over IPv4 is dropped
    _, err = stop(proc)
    time.sleep(0.5)
    tcpdump.send_signal(signal.SIGINT)
    tcpdump.communicate(timeout=10)

    assert tcpdump_file.exists() and tshark(tcpdump_file, "icmp.type == 8") == []  # tcpdump saw none
    requests = tshark(ours, "icmp.type == 8", "icmp.seq")
    assert sorted(map(int, requests)) == list(range(1, N + 1))  # every echo request, once
    assert len(tshark(ours, "icmp")) == N  # and nothing the filter did not match
    captured, matched, lost = summary(err)
    assert (captured, matched, lost) == (N, N, 0)
    assert xdp_state(pair) == original  # the same program, in the same mode
    assert ping(pair, 2) == 0
    assert not wait_gone(dump_programs() - before) and our_pins(pair) == []


@pytest.mark.parametrize("original", ["iproute2-drv", "bpf-link-skb"], indirect=True)
def test_sigkill_keeps_the_original_running_and_cleanup_restores_it(pair: Lab, original: tuple[int, int]) -> None:
    proc = start(pair, "-i", "c0", "icmp", stdout=subprocess.DEVNULL)
    front = xdp_state(pair)[0]
    assert front != original[0]
    proc.kill()
    proc.wait()
    # The capture program stays, and the original still runs behind it through the
    # pinned tail call: ICMP is dropped, everything else passes.
    assert xdp_state(pair)[0] == front
    assert ping(pair, 3) == 0 and ping(pair, 3, pair.GATEWAY_IP6) == 3
    assert len(our_pins(pair)) == 1
    status = netbpf("status", "--json", check=True).stdout
    mine = [json.loads(line) for line in status.splitlines() if f'"prog_id": {front},' in line]
    assert mine and mine[0]["restores"] == original[0]

    result = netbpf("cleanup", "--this-netns", netns=pair.gateway, check=True)
    assert f"restored XDP program id {original[0]} on c0" in result.stdout
    assert xdp_state(pair) == original
    assert ping(pair, 2) == 0 and ping(pair, 2, pair.GATEWAY_IP6) == 2
    assert our_pins(pair) == []
    assert not wait_gone({front})


def test_empty_hook_passes_everything_and_is_empty_again(pair: Lab, tmp_path: Path) -> None:
    proc = start(pair, "-i", "c0", "-w", str(tmp_path / "x.pcapng"), "icmp or icmp6")
    assert ping(pair, 3) == 3 and ping(pair, 3, pair.GATEWAY_IP6) == 3
    _, err = stop(proc, signal.SIGTERM)
    assert xdp_state(pair) == (0, 0)
    assert len(tshark(tmp_path / "x.pcapng", "icmp.type == 8 or icmpv6.type == 128")) == 6
    assert summary(err)[2] == 0


# -- outputs ------------------------------------------------------------------------------------

def test_pcapng_time_stamps_interface_and_snap_length(pair: Lab, tmp_path: Path) -> None:
    path = tmp_path / "x.pcapng"
    t0 = time.time()
    proc = start(pair, "-i", "c0", "-s", "100", "--time-stamp-precision", "nano", "-w", str(path), "icmp")
    ping(pair, 3, size=1000)
    stop(proc)
    t1 = time.time()
    rows = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "frame.time_epoch",
                           "-e", "frame.len", "-e", "frame.cap_len", "-e", "frame.interface_name"],
                          capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(rows) == 3
    for row in rows:
        epoch, length, caplen, name = row.split("\t")
        assert t0 <= float(epoch) <= t1  # wall clock, converted from the kernel's monotonic clock
        assert (int(length), int(caplen), name) == (1042, 100, "c0")
    packets = pcap.read(str(path))
    assert any(p.ts_ns % 1000 for p in packets)  # nanoseconds are really there (each is 0 once in 1000)


def test_stream_to_tshark_through_a_pipe(pair: Lab) -> None:
    dump = start(pair, "-i", "c0", "-w", "-", "-c", "4", "icmp")  # the pipe holds what comes before tshark reads
    reader = subprocess.Popen(["tshark", "-r", "-", "-T", "fields", "-e", "icmp.seq"], stdin=dump.stdout,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert dump.stdout is not None
    dump.stdout.close()
    ping(pair, 5)  # -c 4 ends the capture
    out, _ = reader.communicate(timeout=30)
    dump.wait(timeout=30)
    assert dump.returncode == 0
    assert [int(s) for s in out.split()] == [1, 2, 3, 4]
    assert "4 packets captured" in dump.stderr.read().decode()  # type: ignore[union-attr]


@pytest.mark.parametrize("hook,icmp_type,ip_src", [("tc-ingress", 8, Lab.CLIENT_IP),
                                                   ("tc-egress", 0, Lab.GATEWAY_IP)])
def test_tc_hooks_json_lines(pair: Lab, hook: str, icmp_type: int, ip_src: str) -> None:
    proc = start(pair, "-i", "c0", "--hook", hook, "--json", "-c", "3", "icmp")
    ping(pair, 4)
    out, err = proc.communicate(timeout=30)
    records = [json.loads(line) for line in out.decode().splitlines()]
    assert len(records) == 3
    for r in records:
        assert (r["hook"], r["proto"], r["icmp_type"], r["src"], r["len"]) == (hook, "icmp", icmp_type, ip_src, 98)
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert summary(err.decode())[0] == 3
    filters = pair.run(pair.gateway, "tc", "filter", "show", "dev", "c0", "ingress").stdout
    assert "netbpf" not in filters and not pair.run(pair.gateway, "bpftool", "net", "show", "dev", "c0",
                                                    check=False).stdout.count("netbpf_dump")


TCP_SERVER = r"""
import socket, sys
s = socket.create_server((sys.argv[1], 8000)); print("ready", flush=True)
for _ in range(2):
    c, _ = s.accept(); c.recv(1000); c.sendall(b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 3000); c.close()
"""


def traffic(lab: Lab, datagrams: list[tuple[int, int]]) -> None:
    """ARP, ICMP, ICMPv6 with neighbour discovery, TCP with options (handshake, data,
    FIN) from the client to the gateway, then UDP ``datagrams`` (port, size)."""
    server = lab.popen(lab.gateway, sys.executable, "-c", TCP_SERVER, lab.GATEWAY_IP, stdout=subprocess.PIPE)
    assert server.stdout is not None and b"ready" in server.stdout.readline()
    lab.run(lab.client, "ip", "neigh", "flush", "dev", "eth0")
    ping(lab, 2)
    ping(lab, 2, lab.GATEWAY_IP6)
    for _ in range(2):
        lab.run(lab.client, "curl", "-s", "-o", "/dev/null", f"http://{lab.GATEWAY_IP}:8000/", check=False)
    lab.run(lab.client, sys.executable, "-c", "import socket; s=socket.socket(socket.AF_INET, "
            f"socket.SOCK_DGRAM); [s.sendto(b'u' * n, ('{lab.GATEWAY_IP}', port)) for port, n in {datagrams!r}]")
    server.wait(timeout=10)


def tcpdump_in(lab: Lab, path: Path, expression: list[str]) -> subprocess.Popen[bytes]:
    """tcpdump writing what arrives on the gateway's c0 to ``path``, listening when this returns.
    GRO is off: it would merge segments after XDP, before tcpdump's socket."""
    lab.run(lab.gateway, "ethtool", "-K", "c0", "gro", "off", check=False)
    tcpdump = lab.popen(lab.gateway, "tcpdump", "-i", "c0", "-Q", "in", "--immediate-mode", "-U",
                        "-w", str(path), *expression, stderr=subprocess.PIPE)
    assert tcpdump.stderr is not None and b"listening on" in tcpdump.stderr.readline()
    return tcpdump


def test_live_lines_match_tcpdump_on_the_same_packets(pair: Lab, tmp_path: Path) -> None:
    """netbpf's lines at XDP and tcpdump's of the same arriving packets agree field by field."""
    from tests.unit.test_dump_text import same_fields

    tcpdump_file = tmp_path / "in.pcap"
    # The lab's own traffic only (not the kernel's link-local chatter, which may come
    # before one of the two is listening); the same expression for both.
    expression = ["arp", "or", "host", pair.CLIENT_IP, "or", "host", pair.CLIENT_IP6]
    tcpdump = tcpdump_in(pair, tcpdump_file, expression)
    proc = start(pair, "-i", "c0", *expression)
    traffic(pair, [(40005, 5), (40050, 50)])
    time.sleep(1)
    out, _ = stop(proc)
    tcpdump.send_signal(signal.SIGINT)
    tcpdump.communicate(timeout=10)
    ours = [line.split(" ", 1)[1] for line in out.decode().splitlines()]
    theirs = [line.split(" ", 1)[1] for line in subprocess.run(
        ["tcpdump", "-nn", "-r", str(tcpdump_file)], capture_output=True, text=True, check=True).stdout.splitlines()
        if not line.startswith("\t")]
    assert len(ours) >= 16 and len(ours) == len(theirs), "\n".join([*ours, "---", *theirs])
    for mine, reference in zip(ours, theirs, strict=True):
        assert same_fields(mine, reference), f"\n netbpf: {mine}\ntcpdump: {reference}"
    text = "\n".join(ours)
    assert "Flags [S]" in text and "ICMP6, echo request" in text and "UDP, length 50" in text


# -- errors, limits, losses ------------------------------------------------------------------------

def test_bad_expression_is_libpcaps_message_and_exit_2(pair: Lab) -> None:
    result = netbpf("dump", "-i", "c0", "tcp", "prot", "80", netns=pair.gateway)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "netbpf: bad filter expression 'tcp prot 80': can't parse filter expression: syntax error"]
    assert xdp_state(pair) == (0, 0)


def test_unknown_interface_and_unsupported_verdict(pair: Lab) -> None:
    result = netbpf("dump", "-i", "nosuch0", netns=pair.gateway)
    assert (result.returncode, result.stderr.strip()) == (1, "netbpf: no such interface: nosuch0")
    result = netbpf("dump", "-i", "c0", "--verdict", netns=pair.gateway)
    # This kernel refuses fexit (EPERM); where it allows it, the message says what is missing.
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "not supported by this kernel" in result.stderr and "--verdict" in result.stderr
    assert xdp_state(pair) == (0, 0)


@pytest.mark.flood
def test_every_lost_packet_is_counted(pair: Lab) -> None:
    """Text output is slow; under a flood the ring fills. captured + lost == matched, exactly.

    The flood is the one the chooser gives (netbpf.tools.dump.flood): live XDP frames where
    the kernel allows them; NETBPF_FLOOD=socket forces the AF_PACKET generator, the one a
    machine that refuses live frames gets (CI runs this test both ways)."""
    from netbpf import netns
    from netbpf.tools.dump.flood import open_flood, udp_frame

    # The truth, from nftables: frames to port 9999 that c0's XDP hook passed up (netdev
    # ingress runs right after it), whichever generator sent them and whatever it dropped.
    pair.run(pair.gateway, "nft", "add table netdev netbpf_t; "
             "add chain netdev netbpf_t in { type filter hook ingress device c0 priority 0; }; "
             "add rule netdev netbpf_t in udp dport 9999 counter")
    proc = start(pair, "-i", "c0", "-B", "1", "udp port 9999")
    mac = bytes.fromhex(json.loads(pair.run(pair.gateway, "ip", "-j", "link", "show", "c0").stdout)[0]
                        ["address"].replace(":", ""))

    def xdp_packets() -> int:
        """Frames c0's XDP hook has run on (ethtool -S): it stops moving once all are through."""
        stats = pair.run(pair.gateway, "ethtool", "-S", "c0").stdout
        return sum(int(line.split(":")[1]) for line in stats.splitlines()
                   if line.strip().startswith("rx_queue_") and line.split(":")[0].endswith("_xdp_packets"))

    def passed() -> int:
        out = pair.run(pair.gateway, "nft", "-j", "list", "table", "netdev", "netbpf_t").stdout
        rules = [item["rule"] for item in json.loads(out)["nftables"] if "rule" in item]
        return sum(e["counter"]["packets"] for r in rules for e in r["expr"] if "counter" in e)

    def flood(frame: bytes, count: int) -> str:
        with open_flood("eth0") as f:
            f.run([(frame, 1000)], count)
            return f.generator

    client = f"/run/netns/{pair.client}"
    generator = netns.run_in(client, lambda: flood(
        udp_frame(bytes(6), mac, pair.CLIENT_IP, pair.GATEWAY_IP, 1234, 9999), 200_000))
    netns.run_in(client, lambda: flood(udp_frame(bytes(6), mac, pair.CLIENT_IP, pair.GATEWAY_IP, 1234, 9998),
                                       20_000))
    # Let c0's NAPI run the hook on all of them: its XDP packet counter stops moving.
    settled(xdp_packets, timeout=10)
    out, err = stop(proc)
    arrived = passed()  # 200,000 unless the gateway's veth ring overflowed (live frames)
    captured, matched, lost = summary(err)
    lines = out.decode().count("\n")
    assert arrived >= 50_000, generator  # enough to overflow one block many times over
    assert matched == arrived, generator  # the filter ran in the kernel: the 20,000 others never matched
    assert lost > 0 and captured + lost == matched and captured == lines


def test_count_stops_and_second_dump_chains_behind_the_first(pair: Lab, tmp_path: Path) -> None:
    first = start(pair, "-i", "c0", "-w", str(tmp_path / "a.pcap"), "icmp")
    front = xdp_state(pair)[0]
    second = start(pair, "-i", "c0", "-c", "2", "icmp")
    ping(pair, 3)
    out, err = second.communicate(timeout=30)
    assert second.returncode == 0 and out.decode().count("ICMP echo") == 2 and summary(err.decode())[0] == 2
    assert xdp_state(pair)[0] == front  # the first one is back in front
    _, err = stop(first)
    assert summary(err)[0] == 3  # every request (XDP sees arrivals), also through the second one
    assert xdp_state(pair) == (0, 0)


@pytest.mark.parametrize("attach_type", [0, 37], ids=["attach-type-0", "BPF_XDP"])
def test_front_program_takes_the_originals_expected_attach_type(attach_type: int) -> None:
    """The kernel refuses (EINVAL) a PROG_ARRAY entry loaded with another expected attach
    type than its user; the capture program is loaded to match the original."""
    from netbpf.bpf import features
    from netbpf.bpf.attach import xdp_front
    from netbpf.bpf.program import Program
    from netbpf.tools.dump.kernel import Capture, CaptureOptions

    original = Program("orig", fd=features.load_trivial(6, attach_type, verdict=2, name="orig"))
    try:
        obj, _ = xdp_front.load_in_front(Capture(CaptureOptions("lo"))._open, original)
        assert obj.program("netbpf_dump_xdp").expected_attach_type == attach_type
        assert int.from_bytes(obj.map("xdp_original").lookup(0), "little") == original.id
        obj.close()
    finally:
        original.close()


@pytest.mark.parametrize("hook", ["xdp", "tc-ingress"])
def test_vlan_tagged_frames_are_captured_as_sent(pair: Lab, hook: str, tmp_path: Path) -> None:
    """802.1Q and QinQ frames, byte for byte (at tc the kernel may hold the outer tag
    outside the frame: netbpf puts it back where tcpdump shows it)."""
    import socket

    from netbpf import netns
    from tests.unit import packets as P

    mac = bytes.fromhex(json.loads(pair.run(pair.gateway, "ip", "-j", "link", "show", "c0").stdout)[0]
                        ["address"].replace(":", ""))
    frames = [P.ether(P.ipv4("10.0.100.2", "10.0.100.1", 1, P.echo(77, i)), 0x0800, vlans=vlans, dst=mac)
              for i, vlans in enumerate([(100,), (200, 100)])]
    frames[1] = frames[1][:12] + b"\x88\xa8" + frames[1][14:]  # outer tag: 802.1ad
    path = tmp_path / "vlan.pcap"
    client_mac = json.loads(pair.run(pair.client, "ip", "-j", "link", "show", "eth0").stdout)[0]["address"]
    proc = start(pair, "-i", "c0", "--hook", hook, "-w", str(path), "-c", "2", "ether", "src", client_mac,
                 "and", "not", "ip6", "and", "not", "arp")

    def send() -> None:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
            s.bind(("eth0", 0))
            for frame in frames:
                s.send(frame[:6] + s.getsockname()[4] + frame[12:])

    netns.run_in(f"/run/netns/{pair.client}", send)
    proc.communicate(timeout=30)
    got = [p.data for p in pcap.read(str(path))]
    assert [g[12:] for g in got] == [f[12:] for f in frames]
    assert tshark(path, "vlan.id == 100", "icmp.seq") == ["0", "1"]


def test_vlan_expressions_at_tc_are_refused(pair: Lab) -> None:
    result = netbpf("dump", "-i", "c0", "--hook", "tc-ingress", "vlan", "100", netns=pair.gateway)
    assert result.returncode == 2 and "use --hook xdp" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_metrics_are_read_from_the_kernel_at_each_scrape(pair: Lab) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    port = 19000 + os.getpid() % 1000
    proc = start(pair, "-i", "c0", "-w", "/dev/null", "--metrics", f"127.0.0.1:{port}", "icmp")
    ping(pair, 3)
    text = pair.run(pair.gateway, "curl", "-s", f"http://127.0.0.1:{port}/metrics").stdout
    values = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples
              if s.name.startswith("netbpf_dump_")}
    assert values["netbpf_dump_matched_packets"] == 3 and values["netbpf_dump_lost_packets"] == 0
    assert values["netbpf_dump_seen_packets"] >= 3
    _, err = stop(proc)
    assert summary(err) == (3, 3, 0)
