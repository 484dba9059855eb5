"""netbpf dump's live lines are tcpdump's, to the character; direction filters at tc.

tcpdump captures the same arriving packets (AF_PACKET, -Q in) into a file;
``tcpdump -nn -t [-v|-e] -r`` of that file is the reference, and netbpf's
live lines with the same flags must equal it line for line (time stamps are
left out with -t: the two capture points stamp the same packet differently).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netbpf.lab import Lab

from .test_dump import ARGV, TCP_SERVER, ping, start, stop, summary, tcpdump_in, traffic


@pytest.mark.parametrize("flags", [[], ["-v"], ["-e"], ["-vv", "-e"]])
def test_live_lines_equal_tcpdump_r_of_the_same_packets(pair: Lab, tmp_path: Path, flags: list[str]) -> None:
    reference = tmp_path / "in.pcap"
    expression = ["arp", "or", "host", pair.CLIENT_IP, "or", "host", pair.CLIENT_IP6]
    tcpdump = tcpdump_in(pair, reference, expression)
    proc = start(pair, "-i", "c0", "-t", *flags, *expression)
    traffic(pair, [(53, 12), (53, 50)])
    time.sleep(1)
    out, err = stop(proc)
    tcpdump.send_signal(signal.SIGINT)
    tcpdump.communicate(timeout=10)
    theirs = subprocess.run(["tcpdump", "-nn", "-t", *flags, "-r", str(reference)], capture_output=True,
                            text=True, check=True).stdout.splitlines()
    ours = out.decode().splitlines()
    # Packet by packet; in arrival order but for two packets that reached the hook on two
    # CPUs at once (a loaded machine): tcpdump's tap and the XDP hook may see those swapped.
    assert sorted(packets(ours)) == sorted(packets(theirs)), "\n".join([*ours, "--- tcpdump:", *theirs])
    text = "\n".join(ours)
    for what in ("who-has", "ICMP echo request", "ICMP6, echo request", "Flags [S]", "Flags [P.]", ".53: "):
        assert what in text, what
    captured, matched, lost = summary(err)
    assert lost == 0 and captured == matched >= 16


def packets(lines: list[str]) -> list[str]:
    """tcpdump's lines grouped by packet (-v and -X continue a packet on indented lines)."""
    grouped: list[str] = []
    for line in lines:
        if line[:1].isspace() and grouped:
            grouped[-1] += "\n" + line
        else:
            grouped.append(line)
    return grouped


def test_outbound_at_tc_egress_and_q_out(pair: Lab) -> None:
    """-Q out captures at tc-egress; 'outbound' matches there, 'inbound' never does."""
    for args, want_some in ((["-Q", "out", "icmp"], True), (["--hook", "tc-egress", "outbound and icmp"], True),
                            (["--hook", "tc-egress", "inbound"], False),
                            (["--hook", "tc-ingress", "inbound and icmp"], True)):
        proc = start(pair, "-i", "c0", *args)
        ping(pair, 3)
        time.sleep(0.5)
        _, err = stop(proc)
        captured, matched, lost = summary(err)
        assert (captured >= 3) == want_some and captured == matched and lost == 0, (args, err)


def test_inbound_is_refused_at_xdp_in_one_line(pair: Lab) -> None:
    run = subprocess.run([sys.executable, "-m", "netbpf", "--netns", pair.gateway, "dump", "-i", "c0", "inbound"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "direction is not known" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.flood
def test_rotation_c1_w3_on_a_flood_leaves_three_files_none_over_the_size(pair: Lab, tmp_path: Path) -> None:
    """-C 1 -W 3 as tcpdump: a ring of x.pcap0..2, each readable by tshark, none over 1,000,000 bytes."""
    import json
    import shutil

    from netbpf import netns
    from netbpf.tools.dump.flood import open_flood, udp_frame

    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    base = tmp_path / "x.pcap"
    proc = start(pair, "-i", "c0", "-w", str(base), "-C", "1", "-W", "3", "udp port 9999")
    mac = bytes.fromhex(json.loads(pair.run(pair.gateway, "ip", "-j", "link", "show", "c0").stdout)[0]
                        ["address"].replace(":", ""))

    def flood() -> None:
        f = open_flood("eth0")
        try:
            f.run([(udp_frame(bytes(6), mac, pair.CLIENT_IP, pair.GATEWAY_IP, 1234, 9999, size=500), 1000)], 30_000)
        finally:
            f.close()

    netns.run_in(f"/run/netns/{pair.client}", flood)  # ~16 MB of records: the ring turns 5 times
    time.sleep(1)
    _, err = stop(proc)
    captured, matched, lost = summary(err)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["x.pcap0", "x.pcap1", "x.pcap2"], files
    sizes = {name: (tmp_path / name).stat().st_size for name in files}
    assert all(size <= 1_000_000 for size in sizes.values()), sizes
    assert sum(size > 999_000 for size in sizes.values()) >= 2, sizes  # full, but for the one being written
    total = 0
    for name in files:
        run = subprocess.run(["tshark", "-r", str(tmp_path / name)], capture_output=True, text=True)
        complaints = [line for line in run.stderr.splitlines() if "Running as user" not in line]
        assert run.returncode == 0 and not complaints, run.stderr  # "cut short in the middle" would be here
        total += len(run.stdout.splitlines())
    assert captured == matched - lost and captured > total > 0


def test_rotation_g2_for_7_seconds_gives_four_files(pair: Lab, tmp_path: Path) -> None:
    """-G 2 as tcpdump: a new file at the first packet 2 s after the last file began."""
    pattern = str(tmp_path / "g-%s.pcap")
    run = subprocess.Popen([sys.executable, "-m", "netbpf", "--netns", pair.gateway, "dump", "-i", "c0",
                            "-w", pattern, "-G", "2", "--duration", "7", "icmp"], stderr=subprocess.PIPE)
    pinger = pair.popen(pair.client, "ping", "-i", "0.1", "-w", "9", pair.GATEWAY_IP, stdout=subprocess.DEVNULL)
    _, err = run.communicate(timeout=60)
    pinger.wait(timeout=20)
    assert run.returncode == 0, err
    files = sorted(tmp_path.iterdir())
    assert len(files) == 4, [p.name for p in files]
    assert all(subprocess.run(["tcpdump", "-r", str(p)], capture_output=True).returncode == 0 for p in files)


def test_z_runs_the_command_on_each_file_a_rotation_closes(pair: Lab, tmp_path: Path) -> None:
    """-z gzip with -G 1, as tcpdump: every file but the last (closed at exit) is gzipped,
    and each .gz holds a pcap tcpdump reads. (gzip runs as the -Z user, as tcpdump's does:
    root here, since the dropped user cannot write in pytest's directory.)"""
    pattern = str(tmp_path / "z-%s.pcap")
    run = subprocess.Popen([sys.executable, "-m", "netbpf", "--netns", pair.gateway, "dump", "-i", "c0",
                            "-w", pattern, "-G", "1", "-z", "gzip", "-Z", "root", "--duration", "4", "icmp"],
                           stderr=subprocess.PIPE)
    pinger = pair.popen(pair.client, "ping", "-i", "0.1", "-w", "6", pair.GATEWAY_IP, stdout=subprocess.DEVNULL)
    _, err = run.communicate(timeout=60)
    pinger.wait(timeout=20)
    assert run.returncode == 0, err
    for _ in range(100):  # gzip runs on its own, not waited for (as tcpdump's -z)
        if sum(p.name.endswith(".pcap") for p in tmp_path.iterdir()) <= 1:
            break
        time.sleep(0.1)
    names = sorted(p.name for p in tmp_path.iterdir())
    plain = [n for n in names if n.endswith(".pcap")]
    zipped = [n for n in names if n.endswith(".pcap.gz")]
    assert len(plain) == 1 and len(zipped) >= 2 and len(names) == len(plain) + len(zipped), names
    assert max(names, key=lambda n: int(n[2:].split(".")[0])) == plain[0], names  # the last one stays
    for name in zipped:
        data = subprocess.run(["gzip", "-dc", str(tmp_path / name)], capture_output=True, check=True).stdout
        read = subprocess.run(["tcpdump", "-nn", "-r", "-"], input=data, capture_output=True)
        assert read.returncode == 0 and b"ICMP echo" in read.stdout, read.stderr


def test_z_without_rotation_or_with_a_missing_command_is_one_line(pair: Lab, tmp_path: Path) -> None:
    for args, said in ((["-w", str(tmp_path / "a.pcap"), "-z", "gzip"], "-z goes with -C or -G"),
                       (["-w", str(tmp_path / "a.pcap"), "-G", "1", "-z", "no-such-cmd-x"], "no such command")):
        run = subprocess.run([sys.executable, "-m", "netbpf", "--netns", pair.gateway, "dump", "-i", "c0", *args],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 2 and said in run.stderr and len(run.stderr.splitlines()) == 1, run.stderr
    assert list(tmp_path.iterdir()) == []


def test_len_is_the_packets_length_at_tc_even_with_a_small_snap(pair: Lab) -> None:
    """A TCP socket's segments leave with their data in page fragments, outside the linear
    bytes a tc filter reads; libpcap's 'greater 1000' is about the whole packet."""
    pair.run(pair.gateway, "ethtool", "-K", "c0", "tso", "off", "gso", "off", check=False)
    proc = start(pair, "-i", "c0", "--hook", "tc-egress", "-s", "96", "tcp src port 8000 and greater 1000")
    server = pair.popen(pair.gateway, sys.executable, "-c", TCP_SERVER, pair.GATEWAY_IP, stdout=subprocess.PIPE)
    assert server.stdout is not None and b"ready" in server.stdout.readline()
    for _ in range(2):
        pair.run(pair.client, "curl", "-s", "-o", "/dev/null", f"http://{pair.GATEWAY_IP}:8000/", check=False)
    server.wait(timeout=10)
    time.sleep(0.5)
    out, err = stop(proc)
    captured, matched, lost = summary(err)
    assert captured == matched
    assert captured >= 2 and lost == 0, (out, err)  # 3,000 bytes a response: at least one full segment each
    assert all("length 0" not in line for line in out.decode().splitlines())


def test_ctrl_c_to_the_whole_process_group_keeps_every_line(pair: Lab) -> None:
    """A terminal's Ctrl-C signals the foreground process group, tcpdump (which prints
    the lines) included: the capture must still end by the book, every line out, exit 0,
    not with tcpdump's "Interrupted system call" from the middle of its read."""
    for _ in range(3):  # tcpdump was hit in its read() on some runs, not all
        proc = subprocess.Popen([*ARGV, "--netns", pair.gateway, "dump", "-i", "c0", "icmp"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        assert proc.stderr is not None
        assert b"capturing on" in proc.stderr.readline()
        assert ping(pair, 3) == 3
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0 and "Interrupted" not in err.decode(), err.decode()
        assert len([ln for ln in out.decode().splitlines() if "ICMP echo request" in ln]) == 3, out.decode()
        assert summary(err.decode())[0] == 3  # the requests: XDP sees what arrives
