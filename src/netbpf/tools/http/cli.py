"""``netbpf http``: every HTTP request through a gateway, which backend got it, how it went."""
from __future__ import annotations

import argparse
import ctypes
import gc
import os
import sys
import time
from typing import Any

from ... import cliutil, netdev
from ...errors import NetbpfError, UsageError
from ...output import LiveView
from ...packet.http import H2_PREFACE, H2C_UPGRADE, TLS_HANDSHAKE
from ...run import Run, StopSignals
from .. import summary
from .counted import HEAD_MAX, KernelCollector, KernelSummary, read_backends
from .counted import accounting as kernel_accounting
from .kernel import (
    DEFAULT_VXLAN_PORTS,
    MAX_IFINDEXES,
    TAG_NAME_MAX,
    Counter,
    make_config,
    open_object,
    read_counters,
)
from .records import HOST_MAX, TAG_MAX, TARGET_MAX, RecordDecoder, RecordReader, ring_bytes
from .records import Record as _Record
from .report import Report
from .roles import LocalAddresses, Roles
from .summary import Summary
from .tracer import HttpTracer, Transaction

EXAMPLES = """\
examples:
  netbpf http -i any --port 8080
        every transaction to or from port 8080, one line each; the per-backend table at exit
  netbpf http -i b1,b2,b3 --port 8080 --summary --duration 60
        only the table: requests, share, status classes, latency per backend, and the
        verdict on the spread (max/min share, chi-square against an even spread);
        counted in the kernel, nothing per transaction crossing to user space
  netbpf http -i u1 --port 8080 --tag-header X-Test-Id --json | jq 'select(.tag)'
        tagged test requests, through VXLAN (the TUNNEL column shows the outer addresses)
  netbpf http -i any --port 8080 --metrics 0.0.0.0:9464
        Prometheus metrics for every gateway node; sum(netbpf_http_requests_total) in PromQL
        (:9464 alone listens on 127.0.0.1 only: the metrics carry request paths)
  netbpf --netns nb-gw http -i any --port 8080 -c 100
        inside a network namespace (a container's, a lab's)

  A real run on the lab's gateway (nginx proxying to three backends, weights 5:1:1):
  $ sudo netbpf --netns nb-gw http -i any --port 8080 --tag-header X-Test-Id -c 6
  TIME             CLIENT           BACKEND         METHOD  PATH              STATUS  REQ  RESP  LAT ms  TTFB ms  TAG
  16:00:45.804292  10.0.11.1:34232  10.0.11.2:8080  GET     /api/1?size=1000     200    0  1000    1.00     0.96  probe-1
  16:00:45.861149  10.0.12.1:39738  10.0.12.2:8080  GET     /api/3?size=3000     200    0  3000    4.58     4.40  probe-3
  (CLIENT is the gateway's side of the upstream connection; REQ/RESP are body bytes)
  ...and at exit, on stderr, the per-backend table:
  BACKEND         REQUESTS  SHARE    2XX  3XX  4XX  5XX  NO-RESP  P50 ms  P90 ms  P99 ms  ROLE
  10.0.11.2:8080     11533  71.4%  11533    0    0    0        0    0.44    1.61    5.62  backend
  10.0.12.2:8080      2307  14.3%   2307    0    0    0        0    0.23    0.95    3.70  backend
  10.0.13.2:8080      2306  14.3%   2306    0    0    0        0    0.26    0.92    3.49  backend
  balance: 3 backends, 16146 requests, max/min share 71.4%/14.3% = 5.00; chi-square 10544.8
  (df 2), p = < 1e-12: UNEVEN: the gateway does not spread requests evenly
  netbpf http: 16146 transactions (0 incomplete), ... 0 lost in the ring; 0 reassembly gaps ...

The kernel pairs requests and responses itself: --summary and --metrics read its counts,
lines and --json one fixed-size record per transaction (target cut to 128 bytes, Host and
tag to 64); what it cannot follow goes to user space, counted once, said at exit.
With -H or --counting user, frames are taken by a socket filter on an AF_PACKET socket (a
copy of each frame: the gateway's traffic is never touched), also inside IPIP and VXLAN;
pure ACKs and other ports are dropped in the kernel. TCP is reassembled (out of order, retransmissions,
gaps counted), HTTP/1.x parsed by llhttp (keep-alive, pipelining, chunked, HEAD, 1xx).
At exit: frames seen/kept/lost in the ring, gaps and unparseable streams, never hidden.
"""

VXLAN_HELP = ",".join(map(str, DEFAULT_VXLAN_PORTS))
RECORD_SIZE = ctypes.sizeof(_Record)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = cliutil.add_parser(sub, "http", summary("http"), EXAMPLES, run)
    p.add_argument("-i", "--interface", required=True, metavar="IFACE",
                   help=f"interface, comma-separated interfaces (at most {MAX_IFINDEXES}) or any")
    p.add_argument("--port", required=True, type=port_list, metavar="PORT[,PORT...]",
                   help="TCP port(s) of the HTTP servers to trace (the backends' port)")
    p.add_argument("--tag-header", metavar="NAME", type=header_name,
                   help="show this request header's value (test requests) and which backend served it; "
                        f"counted in the kernel, the name is at most {TAG_NAME_MAX} characters and found "
                        f"in a head whole in one segment of at most {HEAD_MAX} bytes, its value cut to "
                        f"{TAG_MAX} bytes (a cut value ends with \u2026)")
    cliutil.add_json(p)
    cliutil.add_summary(p, "print only the per-backend table (refreshed on a terminal), not each transaction")
    cliutil.add_count(p, "transactions")
    cliutil.add_duration(p)
    cliutil.add_metrics(p)
    cliutil.add_privileges(p)
    p.add_argument("-H", "--headers", action="store_true", help="print request and response headers")
    p.add_argument("--process", action="store_true",
                   help="the local process and container on each side (client, backend) when that side is "
                        "a socket of this host, in any of its network namespaces; 'no local socket' otherwise")
    p.add_argument("--show-secrets", action="store_true",
                   help="do not redact secrets (Authorization, Proxy-Authorization, Cookie, Set-Cookie, "
                        "headers and query parameters named like token/secret/key/password) "
                        "in lines, JSON, the tables and the metrics")
    p.add_argument("--backends", type=backend_list, metavar="ADDR:PORT,...",
                   default=[], help="backends expected to serve (counted in the balance test even "
                                    "when they get nothing), as printed in BACKEND")
    p.add_argument("--front-port", type=port_list, metavar="PORT[,PORT...]", default=[],
                   help="port(s) of the gateway's own front end, left out of the balance verdict "
                        "(found without it when its address is this host's and its clients are not)")
    p.add_argument("--vxlan-port", type=port_list, metavar="PORT[,PORT...]", default=list(DEFAULT_VXLAN_PORTS),
                   help=f"UDP ports carrying VXLAN (default {VXLAN_HELP})")
    p.add_argument("-B", "--buffer-size", type=cliutil.int_in(1, MAX_RING_KIB, "a packet ring's 4 GiB"),
                   default=65536, metavar="KiB",
                   help=f"size of the capture ring in KiB (default 65536, at most {MAX_RING_KIB})")

    p.add_argument("--hook", choices=("socket", "tc"), default="socket",
                   help="counted in the kernel: a socket filter on a packet socket "
                        "(default; hands connections it cannot follow to user space) or tc (tcx) "
                        "ingress and egress of the named Ethernet interfaces (no packet socket, "
                        "so no copy of each frame; no hand-off: what it cannot follow is counted lost)")
    p.add_argument("--counting", choices=("kernel", "user"), default="kernel",
                   help="count and pair in the kernel (default): --summary and --metrics read its maps, "
                        "lines and --json come from one fixed-size record per transaction (method, "
                        f"target cut to {TARGET_MAX} bytes, Host cut to {HOST_MAX}, tag, status, body "
                        "sizes, times, endpoints); connections it cannot follow (joined after their SYN, "
                        "a head split over segments, a body length it cannot tell, a gap) go to the "
                        "user-space path, each transaction counted by one path only. user: reassemble "
                        "every stream in user space (as -H always does)")
    p.add_argument("--record-buffer", type=cliutil.int_in(4, 1 << 20, "1 GiB"), default=16384, metavar="KiB",
                   help="size of the kernel's transaction-record ring in KiB (default 16384, rounded up "
                        f"to a power of two; a record is {RECORD_SIZE} bytes); records it cannot take are "
                        "counted lost, per backend")


# The kernel refuses a packet ring of more than 4 GiB (tp_block_size * tp_block_nr
# must fit in an unsigned int): 16383 blocks of 256 KiB.
MAX_RING_KIB = ((1 << 32) - 1) // (256 << 10) * 256


def port_list(text: str) -> list[int]:
    ports = []
    for part in text.split(","):
        if not part.isdigit() or not 0 < int(part) < 65536:
            raise argparse.ArgumentTypeError(f"not a TCP port: {part!r}")
        ports.append(int(part))
    return ports


def backend_list(text: str) -> list[str]:
    """ADDR:PORT or [V6]:PORT, comma-separated, written as BACKEND prints them."""
    import ipaddress

    backends = []
    for part in text.split(","):
        host, sep, port = part.strip().rpartition(":")
        bracketed = host.startswith("[") and host.endswith("]")
        try:
            ip = ipaddress.ip_address(host[1:-1] if bracketed else host)
        except ValueError:
            ip = None
        if (not sep or ip is None or bracketed != (ip.version == 6) or not port.isascii()
                or not port.isdigit() or not 0 < int(port) < 65536):
            raise argparse.ArgumentTypeError(f"not ADDR:PORT (10.0.0.2:8080, [fd00::2]:8080): {part!r}")
        backends.append(f"{ip}:{int(port)}" if ip.version == 4 else f"[{ip}]:{int(port)}")
    return backends


_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def header_name(text: str) -> str:
    """An HTTP field name (RFC 9110 token): anything else could never match."""
    if not text or not set(text) <= _TCHAR:
        raise argparse.ArgumentTypeError(f"not an HTTP header name: {text!r}")
    return text


def resolve_interfaces(text: str) -> tuple[int, list[int]]:
    """(ifindex to bind, ifindexes for the filter): one interface is bound, several
    are chosen in the filter on a socket bound to all."""
    if text == "any":
        return 0, []
    names = [n for n in text.split(",") if n]
    if not names:
        raise UsageError("-i: an interface name, a comma-separated list, or any")
    if "any" in names:
        raise UsageError("-i: any cannot be combined with other interfaces")
    if len(names) > MAX_IFINDEXES:
        raise UsageError(f"-i: at most {MAX_IFINDEXES} interfaces (or any)")
    indexes = [netdev.ifindex(name) for name in names]
    return (indexes[0], []) if len(indexes) == 1 else (0, indexes)


class Capture:
    """The running tool: kernel filter, ring, tracer and outputs."""

    def __init__(self, args: argparse.Namespace) -> None:
        from .metrics import HttpCollector, TransactionCounts
        from .ring import PacketRing

        self.args = args
        bind_ifindex, filter_ifindexes = resolve_interfaces(args.interface)
        # Deleting one of them ends the trace with one line (a packet socket bound to a
        # deleted interface just stops receiving).
        self.watched = {i: netdev.ifname(i) for i in (bind_ifindex, *filter_ifindexes) if i}
        self.gone = ""
        # Counting in the kernel: --summary needs nothing of each transaction but its counts
        # (and the tag, if asked: from the records); lines and JSON need one record each.
        # -H (every header) is the user-space path's alone.
        self.in_kernel = (args.counting == "kernel" and not args.headers
                          and not (args.summary and args.count))
        self.records = self.in_kernel and (not args.summary or bool(args.tag_header))
        if args.hook == "tc" and not self.in_kernel:
            raise UsageError("--hook tc: only counted in the kernel (not with -H, --counting user, --summary -c)")
        if args.hook == "tc" and args.interface == "any":
            raise UsageError("--hook tc: name the interfaces (-i a,b), not any")
        tc = args.hook == "tc"
        if args.process and args.summary:
            raise UsageError("--process names each transaction's processes: not with --summary")
        self.owners: Any = None
        self.record_reader: RecordReader | None = None
        self.ring: PacketRing | None = None
        self._run = Run()
        with self._run.starting():  # a failure undoes what was made so far, last first
            self.obj = open_object(make_config(args.port, [] if tc else filter_ifindexes, args.vxlan_port,
                                               count_in_kernel=self.in_kernel,
                                               hand_off=self.in_kernel and not tc,
                                               records=self.records, tag_header=args.tag_header),
                                   args.hook, run=self._run)
            # Without records, their ring and hash take (almost) no memory.
            self.obj.set_map_size("records", ring_bytes(args.record_buffer) if self.records else 4096)
            if not self.records:
                self.obj.set_map_size("requests", 1)
            self.obj.load()
            roles = Roles(args.front_port, LocalAddresses())
            self.summary = (KernelSummary(self.obj, args.backends, roles, records=self.records,
                                          hand_off=not tc, uncounted=self.uncounted)
                            if self.in_kernel else Summary(args.backends, roles, self.uncounted))
            self.counts = TransactionCounts()
            self.report = Report(bool(args.tag_header), args.headers, args.show_secrets, args.tag_header)
            self.tracer = HttpTracer(args.port, self.on_transaction, args.tag_header, args.headers,
                                     args.vxlan_port, show_secrets=args.show_secrets)
            self.printed = 0
            self.records_shown = 0
            self.stop = False
            self.live: LiveView | None = None
            if args.metrics:
                from ... import metrics

                metrics.export(args.metrics, KernelCollector(self.summary, self.snapshot).collect
                               if isinstance(self.summary, KernelSummary)
                               else HttpCollector(self.counts, self.snapshot).collect)
            if args.process:
                from .owners import HttpOwners

                self.owners = HttpOwners()  # before the first frame: a process made meanwhile is known
                self._run.callback(self.owners.close)
            if self.records:
                self.record_reader = RecordReader(self.obj, RecordDecoder(args.tag_header, args.show_secrets))
                self._run.callback(self.record_reader.close)
            if tc:
                from ...bpf.attach.tc import TcOptions, attach_tc

                prog = self.obj.program("netbpf_http_tc")
                for name in args.interface.split(","):
                    for direction in ("ingress", "egress"):
                        self._run.attach(attach_tc(prog, TcOptions(name, direction)))
            else:
                self.ring = PacketRing(self.obj.program("netbpf_http"), bind_ifindex,
                                       ring_bytes=args.buffer_size << 10)
                self._run.callback(self.ring.close)

    def on_transaction(self, tx: Transaction) -> None:
        args = self.args
        if args.count and self.printed >= args.count:
            return
        self.printed += 1
        self.summary.add(tx)
        self.counts.add(tx)
        if not args.summary:
            self.show(tx)
        if args.count and self.printed >= args.count:
            self.stop = True

    def show(self, tx: Transaction) -> None:
        """One line (or JSON object), from either path; with --process, each side's owner."""
        line = self.report.json(tx) if self.args.json else self.report.text(tx)
        if self.owners is not None:
            line = (self.owners.json if self.args.json else self.owners.text)(line, tx.client, tx.backend)
        sys.stdout.write(line + "\n")

    def on_record(self, tx: Transaction) -> None:
        """A transaction the kernel paired (records.py): counted there, so only shown here."""
        args = self.args
        if args.count and self.printed >= args.count:
            return
        self.printed += 1
        self.records_shown += 1
        self.summary.add_tag(tx)
        if not args.summary:
            self.show(tx)
        if args.count and self.printed >= args.count:
            self.stop = True

    def snapshot(self) -> dict[str, Any]:
        stats = self.tracer.reassembler.stats
        return {"kernel": read_counters(self.obj), "ring_drops": self.ring.drops if self.ring else 0,
                "flows": self.tracer.active_flows, "flows_opened": stats.flows_opened,
                "gaps": stats.gaps, "gap_bytes": stats.gap_bytes,
                "unparseable": self.tracer.http.unparseable_streams,
                "orphans": self.tracer.http.orphan_responses, "not_http": dict(self.tracer.http.not_http1)}

    def loop(self) -> None:
        # Per-frame work allocates many small objects; collections of everything
        # set up so far (libbpf, argparse, prometheus) would only cost time.
        gc.freeze()
        gc.set_threshold(20000, 50, 100)
        args = self.args
        deadline = cliutil.Deadline(args.duration)
        live = LiveView(sys.stdout) if args.summary and not args.json and sys.stdout.isatty() else None
        self.live = live
        if not args.summary and not args.json:
            header = self.report.header_line()
            sys.stdout.write((header if self.owners is None else self.owners.header(header)) + "\n")
        feed = self.tracer.feed
        ports = ",".join(map(str, args.port))
        cliutil.stderr(f"netbpf http: tracing HTTP on TCP port {ports}, interface {args.interface} "
                       "(Ctrl-C to stop)")
        last_tick = time.monotonic()
        records = self.record_reader
        while not self.stop and not deadline.expired():
            busy = False
            if records is not None:
                before = records.read
                # Not waiting here while frames may come: the packet ring's read below waits.
                records.poll(self.on_record, 0 if self.ring is not None else deadline.remaining(0.1))
                busy = records.read > before
            if self.ring is None:
                if records is None:
                    time.sleep(deadline.remaining(0.1))  # tc: nothing comes to user space
            else:
                self.ring.read(feed, 0 if busy else deadline.remaining(0.05 if records else 0.1))
            sys.stdout.flush()
            now = time.monotonic()
            if now - last_tick >= 1.0:
                last_tick = now
                self.tracer.tick(time.time())
                if self.ring is not None:
                    self.ring.update_stats()
                self.gone = ", ".join(name for i, name in self.watched.items() if not _present(i))
                if self.gone:
                    return
                if live is not None:
                    live.show(self.summary.text())
                elif isinstance(self.summary, KernelSummary):
                    self.summary.refresh()  # each second's client samples tell front ends apart

    def finish(self) -> None:
        """Take what is still in the ring, report open exchanges, print the summary."""
        if self.ring is not None:
            if not (self.gone and self.ring.ifindex):  # bound to a deleted interface: nothing comes
                self.ring.stop()
            if not (self.args.count and self.printed >= self.args.count):
                self.ring.drain(self.tracer.feed)
            self.ring.update_stats()
        if self.record_reader is not None and not (self.args.count and self.printed >= self.args.count):
            self.record_reader.drain(self.on_record)
        self.tracer.close(time.time())
        sys.stdout.flush()
        args = self.args
        if args.summary:
            if args.json:
                for row in self.summary.json_rows():
                    sys.stdout.write(_json(row) + "\n")
            elif self.live is not None:
                self.live.show(self.summary.text())  # the last refresh is the final table
            else:
                sys.stdout.write(self.summary.text() + "\n")
            sys.stdout.flush()
        else:
            cliutil.stderr(self.summary.text())
        cliutil.stderr(self.accounting())

    def uncounted(self) -> str:
        """What user space missed so far, in words ("" when nothing): requests may hide
        in frames the ring lost and in reassembly gaps, so the verdict cannot speak for them."""
        drops = self.ring.drops if self.ring else 0
        gaps = self.tracer.reassembler.stats.gaps
        missed = [f"{drops} frame{'s' if drops > 1 else ''} lost before user space read them"] if drops else []
        if gaps:
            missed.append(f"{gaps} reassembly gap{'s' if gaps > 1 else ''}")
        return " and ".join(missed)

    def accounting(self) -> str:
        k = read_counters(self.obj)
        t, r, h = self.tracer, self.tracer.reassembler.stats, self.tracer.http
        drops = self.ring.drops if self.ring else 0
        incomplete = h.incomplete
        not_http1 = dict(h.not_http1)
        if isinstance(self.summary, KernelSummary):
            # One count of what is not HTTP/1.x: the kernel's and the handed-off connections'.
            not_http1[H2_PREFACE] = not_http1.get(H2_PREFACE, 0) + k[Counter.K_HTTP2]
            not_http1[TLS_HANDSHAKE] = not_http1.get(TLS_HANDSHAKE, 0) + k[Counter.K_TLS]
            records = self.records_shown if self.records else None
            head = (f"netbpf http: {kernel_accounting(k, self.printed - self.records_shown, incomplete, r.flows_opened, read_backends(self.obj), records)}")
        else:
            head = (f"netbpf http: {self.printed} transactions ({incomplete} incomplete), "
                    f"{r.flows_opened} connections")
        return (
            f"{head}; frames: {k[Counter.FRAMES_SEEN]} seen by the filter "
            f"(tcp {k[Counter.PROTO_TCP]}, udp {k[Counter.PROTO_UDP]}, icmp {k[Counter.PROTO_ICMP]}, "
            f"other {k[Counter.PROTO_OTHER]}, not IP {k[Counter.NOT_IP]}), {k[Counter.FRAMES_KEPT]} kept "
            f"({k[Counter.KEPT_IPIP]} via IPIP, {k[Counter.KEPT_VXLAN]} via VXLAN; "
            f"{k[Counter.ACKS_SKIPPED]} bare ACKs skipped), {drops} lost in the ring; "
            f"{r.gaps} reassembly gaps ({r.gap_bytes} bytes), {h.unparseable_streams} unparseable "
            f"streams, {h.orphan_responses} responses without their request, "
            f"{t.undecodable} undecodable frames; {not_http1_text(not_http1)}")

    def close(self) -> None:
        self._run.close()  # the ring or the tc links, then the object


def not_http1_text(counts: dict[str, int]) -> str:
    """'N connections are not HTTP/1.x (HTTP/2 preface: a, ...)': never traced as transactions."""
    kinds = ", ".join(f"{kind}: {counts.get(kind, 0)}" for kind in (H2_PREFACE, H2C_UPGRADE, TLS_HANDSHAKE))
    total = sum(counts.values())
    return f"{total} connection{'' if total == 1 else 's'} {'is' if total == 1 else 'are'} not HTTP/1.x ({kinds})"


def _json(row: dict[str, Any]) -> str:
    import json

    return json.dumps(row)


def run(args: argparse.Namespace) -> int:
    unserved = [b for b in args.backends if int(b.rpartition(":")[2]) not in args.port]
    cliutil.require(not unserved, f"--backends {unserved[0]}: not on --port "
                                  f"{','.join(map(str, args.port))}" if unserved else "")
    cliutil.check_memory(f"-B {args.buffer_size}", max(args.buffer_size, 512) << 10)
    capture = Capture(args)

    def stop() -> None:
        capture.stop = True  # the loop ends within 0.1 s; what is in the ring is still read

    try:
        with StopSignals(stop):
            cliutil.relinquish(args)  # the socket and its ring are open: nothing to keep
            try:
                capture.loop()
            except BrokenPipeError:
                _reader_gone()
            capture.finish()  # the exit lines go to stderr, as dump's and drops' do
    finally:
        capture.close()
    if capture.gone:
        raise NetbpfError(f"{capture.gone} was deleted while tracing: stopped")
    return 0


def _reader_gone() -> None:
    """`| head` closed the pipe: what is left for stdout goes to /dev/null, so that the
    table and the exit line (stderr) are still written and the exit is as after Ctrl-C."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _present(ifindex: int) -> bool:
    try:
        return netdev.ifindex(ifindex) == ifindex
    except NetbpfError:
        return False
