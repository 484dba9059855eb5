"""``netbpf dump``: tcpdump at XDP and tc, beside the XDP program already there."""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator

from ... import cliutil, privilege
from ...attrib.tracker import Owners
from ...bpf.errors import NotSupported, UsageError
from ...packet import pcap
from ...packet.tcpdump import TcpdumpPrinter
from . import attribution
from .capture import HOOKS, MAX_SNAPLEN, Capture, CaptureOptions, link_type
from .sinks import FileSink, JsonSink, Sink, TextSink, open_output

EXAMPLES = """\
examples:
  netbpf dump -i c0 icmp              tcpdump's lines, from XDP: also what an XDP program drops
  17:02:11.350224 IP 10.0.1.2 > 10.0.1.1: ICMP echo request, id 4110, seq 1, length 64
  17:02:11.550781 IP 10.0.1.2 > 10.0.1.1: ICMP echo request, id 4110, seq 2, length 64
  ^C
  2 packets captured, 2 matched in kernel, 0 lost

  netbpf dump -i c0 -w x.pcap 'tcp port 80'      pcap (x.pcapng: pcapng) for tcpdump, tshark, Wireshark
  netbpf dump -i c0 -w - | tshark -r -          stream pcap to another tool
  netbpf dump -i c0 --hook tc-egress -c 10      what leaves (XDP sees only what arrives)
  netbpf dump -i c0 --json udp | jq .dport      one JSON object per packet
  netbpf dump -r x.pcap 'tcp[tcpflags] & tcp-syn != 0'      read a file (no root needed)

The filter runs in the kernel (libpcap compiles it, netbpf translates it to
eBPF): packets that do not match are never copied. An XDP program already on
the interface keeps running: the capture program tail-calls it, and on exit
it is put back as it was (same program id, same mode).
The exit line counts what was written, what the kernel filter matched, and
what found no room in the buffer (-B): lost packets are counted, never guessed.
"""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = cliutil.add_parser(sub, "dump", "capture packets at XDP or tc with a tcpdump filter "
                           "(pcap, tcpdump lines, JSON)", EXAMPLES, run, needs_root=False)
    cliutil.add_interface(p, required=False)
    p.add_argument("--hook", choices=HOOKS, default="xdp",
                   help="where to capture: xdp (default: before the stack and any XDP program), "
                        "tc-ingress, tc-egress")
    p.add_argument("-w", dest="write", metavar="FILE",
                   help="write packets to FILE: pcap, or pcapng if it ends in .pcapng; - is stdout")
    p.add_argument("-r", dest="read", metavar="FILE", help="read packets from a pcap/pcapng file instead")
    cliutil.add_count(p, "packets")
    p.add_argument("-s", dest="snaplen", type=snaplen, default=MAX_SNAPLEN, metavar="SNAPLEN",
                   help=f"bytes kept of each packet (default and most: {MAX_SNAPLEN})")
    p.add_argument("-B", dest="buffer_kib", type=cliutil.positive_int, default=4096, metavar="KiB",
                   help="capture buffer per CPU, in KiB (default 4096)")
    p.add_argument("-U", "--packet-buffered", action="store_true",
                   help="with -w FILE: write each packet as soon as it arrives (else per block or second)")
    p.add_argument("-n", action="count", default=0, help="accepted for tcpdump's habits: output is always numeric")
    p.add_argument("-S", "--absolute-tcp-sequence-numbers", dest="absolute", action="store_true",
                   help="print absolute TCP sequence numbers (as tcpdump -S)")
    p.add_argument("--time-stamp-precision", choices=("micro", "nano"), default="micro",
                   help="time stamps in files and lines (as tcpdump)")
    p.add_argument("--xdp-mode", choices=("auto", "skb", "drv"), default="auto",
                   help="XDP mode when the interface has no XDP program (else the program's own mode)")
    p.add_argument("--verdict", action="store_true",
                   help="record each packet's XDP action (needs fexit on XDP programs)")
    attribution.add_arguments(p)
    cliutil.add_duration(p)
    cliutil.add_json(p)
    cliutil.add_metrics(p)
    cliutil.add_privileges(p)
    p.add_argument("expression", nargs="*", metavar="EXPRESSION",
                   help="a tcpdump filter expression (pcap-filter(7)), run in the kernel")


def snaplen(text: str) -> int:
    value = cliutil.positive_int(text)
    return min(value, MAX_SNAPLEN)


def run(args: argparse.Namespace) -> int:
    expression = " ".join(args.expression)
    nano = args.time_stamp_precision == "nano"
    printer = TcpdumpPrinter(absolute_seq=args.absolute, nano=nano)
    if args.read:
        return _read_file(args, expression, printer)
    cliutil.require(args.interface is not None, "netbpf dump: -i IFACE is required (or -r FILE)")
    if args.write and args.json:
        raise UsageError("-w and --json do not go together")
    if os.geteuid() != 0:
        from ...bpf.errors import NotPermitted

        raise NotPermitted("netbpf dump")
    pcapng_out = bool(args.write and args.write.endswith(".pcapng"))
    owners = attribution.options_from(args)
    options = CaptureOptions(args.interface, hook=args.hook, snaplen=args.snaplen, expression=expression,
                             # lines and JSON read the owner from pcapng records
                             pcapng=pcapng_out or (owners is not None and not args.write),
                             nano=nano if args.write else True,
                             buffer_bytes=args.buffer_kib << 10, xdp_mode=args.xdp_mode,
                             attribution=owners, owner_comments=owners is not None and pcapng_out)
    linktype = link_type(args.interface)
    capture = Capture(options)  # compiles the filter: a bad one stops here (exit 2)
    if args.verdict:
        _verdict_unsupported(capture)  # before anything is attached
    close_output: Callable[[], None] = _nothing
    if args.write and args.write != "-":
        privilege.check_output(args.write, args.user)  # what can be known before attaching
    sink: Sink = _NoSink()
    started = False
    try:
        capture.start()
        started = True
        # As tcpdump: drop to -Z USER once attached, then open -w FILE as that user.
        to_file = bool(args.write and args.write != "-")
        cliutil.relinquish(args, keep=privilege.to_detach(capture.attachment),
                           on_demand={privilege.CAP_DAC_OVERRIDE} if capture.pin_path or to_file else ())
        if args.write:
            fd, close_output = open_output(args.write)
            if not capture.pin_path:
                privilege.forget(privilege.CAP_DAC_OVERRIDE)  # the file is open: no more use for it
            header = (pcap.pcapng_file_header([args.interface], options.snap, linktype, nano)
                      if pcapng_out else pcap.pcap_file_header(options.snap, linktype, nano))
            sink = FileSink(fd, header, pcapng_out, args.count)  # with owners: the kernel's comments
            immediate = args.write == "-" or args.packet_buffered
        elif args.json and owners is not None:
            sink = attribution.OwnerJsonSink(printer, sys.stdout, Owners(), args.count,
                                             {"ifname": args.interface, "hook": args.hook})
            immediate = True
        elif args.json:
            sink = JsonSink(printer, sys.stdout, True, False, args.count,
                            {"ifname": args.interface, "hook": args.hook})
            immediate = True
        elif owners is not None:
            sink = attribution.OwnerTextSink(printer, sys.stdout, Owners(), args.count)
            immediate = True
        else:
            sink = TextSink(printer, sys.stdout, True, False, args.count)
            immediate = True
        cliutil.stderr(f"netbpf: capturing on {args.interface} at {args.hook}"
                       f"{_in_front_of(capture)}, link-type EN10MB (Ethernet), "
                       f"snapshot length {options.snap} bytes{_owners_note(options)}")
        metrics = _metrics(args.metrics, capture, sink) if args.metrics else None
        with _StopSignals(capture) as stop:
            _loop(capture, sink, cliutil.Deadline(args.duration), immediate, metrics, stop)
    except KeyboardInterrupt:
        pass
    finally:
        capture.stop()
        try:
            if capture.ring is not None and not sink.done:
                capture.ring.drain(sink.write)
                sink.flush()
            if started and capture.obj is not None and not isinstance(sink, _NoSink):
                _, matched, lost = capture.counters()
                captured = sink.written if sink.counts_packets else matched - lost
                cliutil.stderr(f"{captured} packets captured, {matched} matched in kernel, {lost} lost")
                if owners is not None:
                    cliutil.stderr("netbpf: owners of the packets the expression matched: "
                                   + attribution.summary(attribution.attrib_counts(capture.obj)))
        finally:
            capture.close()
            close_output()
    return 0


def _owners_note(options: CaptureOptions) -> str:
    a = options.attribution
    if a is None:
        return ""
    text = f", only packets of {a.describe()}" if a.filters else ", with each packet's process"
    if options.hook == "tc-egress":
        return text
    return text + " (received packets: the socket they are for)"


def _nothing() -> None:
    pass


class _NoSink(Sink):
    """Until the output is open (after the privilege drop): takes nothing."""

    def __init__(self) -> None:
        super().__init__(0)

    def write(self, span: memoryview) -> None:
        pass


def _in_front_of(capture: Capture) -> str:
    if capture.original is None:
        return ""
    return (f" (in front of XDP program {capture.original.name or '?'} "
            f"id {capture.original.id}, {capture.original_mode} mode)")


class _StopSignals:
    """Ctrl-C and SIGTERM end the capture between two batches, not in the middle
    of writing a packet (so that the count of what was written is exact); a
    second signal interrupts at once."""

    def __init__(self, capture: Capture) -> None:
        self.capture = capture
        self.requested = False
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self.capture.ring is not None:
            self.capture.ring.interrupt()  # wakes the wait

    def __enter__(self) -> _StopSignals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]


FLUSH_INTERVAL = 2.0  # -w FILE: a partly filled block goes out after this long at most
IDLE_CHECK = 5.0  # nothing arriving: look anyway this often (a wake-up can be missed)


def _loop(capture: Capture, sink: Sink, deadline: cliutil.Deadline, immediate: bool,
          metrics: object | None, stop: _StopSignals) -> None:
    """Sleep until there is something to write, like a TPACKET_V3 reader.

    Lines and pipes (``immediate``) are woken by the next record. A file is
    written when a block fills or, while packets arrive, every FLUSH_INTERVAL;
    once they stop, the next record wakes the loop again. No packets, no
    wake-ups (but for IDLE_CHECK).
    """
    ring = capture.ring
    assert ring is not None
    clock_set = time.monotonic()
    got = 0
    while not sink.done and not deadline.expired() and not stop.requested:
        if immediate or not got:
            ring.wait(deadline.remaining(1.0 if immediate else IDLE_CHECK), immediate=True)
        else:
            ring.wait(deadline.remaining(FLUSH_INTERVAL), immediate=False)
        got = ring.drain(sink.write)
        sink.flush()
        if metrics is not None:
            metrics.update()  # type: ignore[attr-defined]
        if time.monotonic() - clock_set > 10:  # follow NTP's adjustments of the wall clock
            ring.set_clock()
            clock_set = time.monotonic()


def _verdict_unsupported(capture: Capture) -> None:
    from .verdict import probe_fexit

    if capture.options.hook != "xdp":
        raise UsageError("--verdict records XDP actions: it goes with --hook xdp")
    with capture.load_only() as obj:
        refused = probe_fexit(obj.program("netbpf_dump_xdp"))
    if refused:
        raise NotSupported("fexit on XDP programs, which --verdict needs", refused)
    raise NotSupported("--verdict", "this kernel allows fexit on XDP programs, "
                       "but this netbpf version does not record verdicts yet")


def _read_file(args: argparse.Namespace, expression: str, printer: TcpdumpPrinter) -> int:
    from ...packet.filter import compile_filter

    try:
        packets = pcap.read(args.read)
    except OSError as e:
        raise UsageError(f"{args.read}: {e.strerror}") from e
    except pcap.PcapFormatError as e:
        raise UsageError(f"{args.read}: {e}") from e
    classic = compile_filter(expression, args.snaplen).classic if expression else None
    shown = 0
    for packet in packets:
        if classic is not None and not classic.matches(packet.data, packet.orig_len):
            continue
        if args.json:
            summary, fields = printer.describe(packet.data, packet.orig_len)
            import json

            print(json.dumps({"ts": packet.ts_ns / 1e9, **fields, "summary": summary}))
        else:
            print(printer.line(packet.ts_ns, packet.data, packet.orig_len))
        shown += 1
        if args.count and shown >= args.count:
            break
    return 0


class _Metrics:
    """Prometheus gauges read from the kernel's counters at each scrape."""

    def __init__(self, address: tuple[str, int], capture: Capture, sink: Sink) -> None:
        from ... import metrics

        self.capture, self.sink = capture, sink
        metrics.serve(address).register(self)  # type: ignore[arg-type]

    def collect(self) -> Iterator[object]:
        from prometheus_client.core import GaugeMetricFamily

        if self.capture.obj is None:
            return
        seen, matched, lost = self.capture.counters()
        captured = self.sink.written if self.sink.counts_packets else matched - lost
        labels = [self.capture.options.interface, self.capture.options.hook]
        for name, value, text in (("seen", seen, "packets that reached the capture program"),
                                  ("matched", matched, "packets the kernel filter matched"),
                                  ("lost", lost, "matched packets that found no room"),
                                  ("captured", captured, "packets written out (or in the buffer)")):
            family = GaugeMetricFamily(f"netbpf_dump_{name}_packets", text, labels=["interface", "hook"])
            family.add_metric(labels, value)
            yield family

    def update(self) -> None:
        pass  # read at each scrape


def _metrics(address: tuple[str, int], capture: Capture, sink: Sink) -> _Metrics:
    return _Metrics(address, capture, sink)
