#!/usr/bin/env python3
"""Which flood generator is fastest from Python: live XDP frames, sendmmsg, a TX ring.

netbpf/tools/dump/flood.py falls back to an AF_PACKET socket where the kernel refuses
live frames; this measures its two ways (sendmmsg(2) of 1024 frames per call, and a
TPACKET_V2 TX ring filled by one memmove and sent by one send(2)) against live frames.
The lab client sends 64-byte UDP frames out of eth0 (CPU 0) to the gateway's c0, which
runs an XDP_PASS program; each round runs every generator once, in a random order.

- rate: frames per second of wall time, as the sender saw it;
- CPU ns/frame: the sending thread's own CPU time (user + system; the peer's receive
  softirq runs on the same CPU and is charged to it: the whole path, per frame);
- at hook: frames c0's XDP hook ran on (ethtool -S, a few frames of the lab's own IPv6
  traffic included) against what the generator counted as sent.

Ratios are per round against sendmmsg (the anchor), then their median: the machine is
shared and its load drifts between rounds.

    sudo .venv/bin/python bench/flood_generators.py [--frames 300000] [--rounds 5]
"""
from __future__ import annotations

import argparse
import ctypes
import errno as _errno
import json
import mmap
import os
import random
import resource
import socket
import statistics
import struct
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from netbpf import netdev, netns  # noqa: E402
from netbpf.bpf import features  # noqa: E402
from netbpf.bpf.attach import xdp  # noqa: E402
from netbpf.bpf.program import Program  # noqa: E402
from netbpf.errors import BpfError, NetbpfError, UsageError, from_errno  # noqa: E402
from netbpf.lab import Lab  # noqa: E402
from netbpf.tools.dump import flood as floods  # noqa: E402

# -- the TX ring, measured here against flood.py's sendmmsg --------------------------------------
PACKET_VERSION, PACKET_TX_RING, TPACKET_V2 = 10, 13, 1
TP_STATUS_SEND_REQUEST = 1
TPACKET2_DATA = 32  # TPACKET_ALIGN(sizeof(struct tpacket2_hdr)): where a frame's bytes start


class PacketRing(floods.Paced):
    """Frames out of ``interface`` from an AF_PACKET TX ring (TPACKET_V2, PACKET_QDISC_BYPASS):
    slots are filled by one memmove from a prepared image, and one send(2) sends them all.

    The kernel takes slots in order from its head. A frame the driver refuses (a veth
    whose peer's ring is full) comes back to the slot as "available" with the head
    left on it and send(2) says ENOBUFS: that slot is asked again, so that every frame
    counted as sent was taken by the driver, exactly once. Not flood.py's generator: about
    0.86x sendmmsg's CPU per frame here, but where xmit fails with the skb still referenced
    the kernel counts the frame as sent ("dropped but not destructed yet"): no exact count.
    """

    generator = "tx ring"

    def __init__(self, interface: str, slots: int = 1024, slot_size: int = 2048) -> None:
        self.ifindex = netdev.ifindex(interface)
        self.sock = floods.packet_socket()
        try:
            self.sock.setsockopt(floods.SOL_PACKET, PACKET_VERSION, TPACKET_V2)
            self.sock.setsockopt(floods.SOL_PACKET, floods.PACKET_QDISC_BYPASS, 1)
            block = 4096 * 16  # the ring's blocks: whole pages, a whole number of slots
            self.sock.setsockopt(floods.SOL_PACKET, PACKET_TX_RING,
                                 struct.pack("IIII", block, slots * slot_size // block, slot_size, slots))
            # The bound protocol is the skbs' protocol: receiving is off (no rx ring, no reads).
            self.sock.bind((interface, socket.htons(floods.ETH_P_IP)))
            self.ring = mmap.mmap(self.sock.fileno(), slots * slot_size)
        except OSError as e:
            self.sock.close()
            raise from_errno(f"set up an AF_PACKET TX ring on {interface}", e.errno or _errno.EINVAL) from e
        self.slots, self.slot_size = slots, slot_size
        self.head = 0  # the next slot the kernel takes
        self.refused = 0
        self._base = ctypes.addressof(ctypes.c_char.from_buffer(self.ring))
        self._images: dict[bytes, ctypes.Array[ctypes.c_char]] = {}
        self._libc = ctypes.CDLL(None, use_errno=True)

    def _image(self, frame: bytes) -> ctypes.Array[ctypes.c_char]:
        """The whole ring, every slot holding ``frame`` and asked to be sent."""
        if frame not in self._images:
            if len(frame) > self.slot_size - TPACKET2_DATA:
                raise UsageError(f"a {len(frame)}-byte frame does not fit a {self.slot_size}-byte slot")
            image = bytearray(self.slots * self.slot_size)
            for i in range(self.slots):
                at = i * self.slot_size
                struct.pack_into("=II", image, at, TP_STATUS_SEND_REQUEST, len(frame))  # tp_status, tp_len
                image[at + TPACKET2_DATA:at + TPACKET2_DATA + len(frame)] = frame
            self._images = {frame: ctypes.create_string_buffer(bytes(image), len(image))}
        return self._images[frame]

    def _status(self, slot: int) -> int:
        return int(struct.unpack_from("=I", self.ring, slot * self.slot_size)[0])

    def send(self, frame: bytes, count: int) -> int:
        image = self._image(frame)
        fd, sent = self.sock.fileno(), 0
        while sent < count:
            n = min(self.slots - self.head, count - sent)
            at = self.head * self.slot_size
            ctypes.memmove(self._base + at, ctypes.addressof(image) + at, n * self.slot_size)
            self._kick(fd, self.head, n)
            self.head = (self.head + n) % self.slots
            sent += n
        return sent

    def _kick(self, fd: int, first: int, n: int) -> None:
        """send(2) until slots first..first+n-1 are all taken (blocking: it returns once
        every frame it took has left the driver)."""
        stalled = 0.0
        while True:
            if self._libc.send(fd, None, 0, 0) >= 0:
                if self._status(first + n - 1) != TP_STATUS_SEND_REQUEST:
                    return
                continue
            err = ctypes.get_errno()
            if err not in (_errno.ENOBUFS, _errno.EAGAIN, _errno.EINTR):
                raise from_errno("send frames (AF_PACKET TX ring)", err)
            if err == _errno.ENOBUFS:
                # The refused frame is the slot before the first still asked for (or the last).
                pending = next((i for i in range(first, first + n)
                                if self._status(i) == TP_STATUS_SEND_REQUEST), first + n)
                struct.pack_into("=I", self.ring, (pending - 1) * self.slot_size, TP_STATUS_SEND_REQUEST)
                self.refused += 1
            now = time.monotonic()
            stalled = stalled or now
            if now - stalled > floods.STALL_SECONDS:
                raise BpfError("send frames (AF_PACKET TX ring)", err, f"none accepted for {floods.STALL_SECONDS:.0f} s")
            os.sched_yield()

    def close(self) -> None:
        self.ring.close()
        self.sock.close()


SENDER_CPU = 0
MAKERS = {
    "xdp-live": lambda: floods.LiveFrames("eth0"),
    "sendmmsg": lambda: floods.PacketSocket("eth0"),
    "tx ring": lambda: PacketRing("eth0"),
}


def xdp_packets(lab: Lab) -> int:
    stats = lab.run(lab.gateway, "ethtool", "-S", "c0").stdout
    return sum(int(line.split(":")[1]) for line in stats.splitlines()
               if line.strip().startswith("rx_queue_") and line.split(":")[0].endswith("_xdp_packets"))


def one(lab: Lab, name: str, frame: bytes, frames: int) -> dict[str, float]:
    def send() -> tuple[int, float, float, int]:
        os.sched_setaffinity(0, {SENDER_CPU})
        gen = MAKERS[name]()
        try:
            before = resource.getrusage(resource.RUSAGE_THREAD)
            result = gen.run([(frame, frames)], frames, batch=10_000)
            after = resource.getrusage(resource.RUSAGE_THREAD)
        finally:
            gen.close()
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        return result.sent, result.seconds, cpu, getattr(gen, "refused", 0)

    before = xdp_packets(lab)
    sent, seconds, cpu, refused = netns.run_in(f"/run/netns/{lab.client}", send)
    time.sleep(0.3)  # c0's NAPI finishes what is in its ring
    return {"sent": sent, "rate": sent / seconds, "cpu_ns": cpu / sent * 1e9, "refused": refused,
            "at_hook": xdp_packets(lab) - before}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    names = [n for n in MAKERS if n != "xdp-live" or features.has_xdp_live_frames()]
    print(f"generators: {', '.join(names)}"
          + ("" if "xdp-live" in names else " (live frames refused by this kernel)") + "\n", flush=True)
    lab = Lab(f"fg{os.getpid() % 10000}", backends=0).up()
    try:
        lab.wait_reachable()
        prog = Program("bench_pass", fd=features.load_trivial(6, 37, verdict=2, name="bench_pass"), owns_fd=True)
        netns.run_in(f"/run/netns/{lab.gateway}",
                     lambda: xdp.attach_xdp_netlink(prog, xdp.XdpOptions("c0", "drv"), None))
        mac = bytes.fromhex(json.loads(lab.run(lab.gateway, "ip", "-j", "link", "show", "c0").stdout)[0]
                            ["address"].replace(":", ""))
        frame = floods.udp_frame(bytes.fromhex("020000000002"), mac, lab.CLIENT_IP, lab.GATEWAY_IP, 1234, 5678)
        print(f"{args.frames:,} frames of 64 bytes per run, sender on CPU {SENDER_CPU}; shared machine\n")
        print("| round | generator | frames/s | CPU ns/frame | refused sends (resent) | sent | at c0's hook "
              "| rate / sendmmsg | CPU / sendmmsg |")
        print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
        rng = random.Random(7)
        ratios: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
        for i in range(args.rounds):
            order = names[:]
            rng.shuffle(order)
            runs = {n: one(lab, n, frame, args.frames) for n in order}
            anchor = runs["sendmmsg"]
            for n in names:
                r = runs[n]
                ratios[n].append((r["rate"] / anchor["rate"], r["cpu_ns"] / anchor["cpu_ns"]))
                print(f"| {i + 1} | {n} | {r['rate']:,.0f} | {r['cpu_ns']:,.0f} | {r['refused']:,} | "
                      f"{r['sent']:,} | {r['at_hook']:,} | {ratios[n][-1][0]:.2f} | {ratios[n][-1][1]:.2f} |",
                      flush=True)
        print("\n| generator | rate / sendmmsg (median) | CPU per frame / sendmmsg (median) |")
        print("|---|---:|---:|")
        for n in names:
            print(f"| {n} | {statistics.median(r for r, _ in ratios[n]):.2f} "
                  f"| {statistics.median(c for _, c in ratios[n]):.2f} |")
        return 0
    except NetbpfError as e:
        print(f"flood_generators: {e}", file=sys.stderr)
        return 1
    finally:
        lab.down()


if __name__ == "__main__":
    sys.exit(main())
