"""``netbpf dump``: tcpdump at XDP and tc, beside the XDP program already there."""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ... import cliutil
from ...errors import NetbpfError, NotSupported, OutputError, UsageError
from .. import summary
from . import attribution
from .file_lines import tcpdump_flags
from .sinks import FileSink, JsonSink, Sink, TcpdumpSink, TextSink, open_output

if TYPE_CHECKING:
    from ...packet.tcpdump import TcpdumpPrinter
    from ...run import StopSignals
    from .kernel import Capture, CaptureOptions

# Imported where used, not here: `netbpf dump -r F -w G` starts Python, parses, and hands the
# file to libpcap; the capture's modules (libbpf, maps, rings) and the line formatter would
# be most of its time (python -X importtime).
HOOKS = ("xdp", "tc-ingress", "tc-egress")  # capture.Hook
MAX_SNAPLEN = 262144  # capture.MAX_SNAPLEN, pcap.MAX_CAPLEN

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
  netbpf dump -i any -w all.pcap icmp           every interface, Linux cooked v2 (as tcpdump -i any)
  netbpf dump -i c0 --json udp | jq .dport      one JSON object per packet
  netbpf dump -r x.pcap 'tcp[tcpflags] & tcp-syn != 0'      read a file (no root needed)
  netbpf dump -r any.pcap -w syn.pcap 'tcp[13] = 2'         filter a file into a file (any link type)

The filter runs in the kernel (libpcap compiles it, netbpf translates it to
eBPF): packets that do not match are never copied. An XDP program already on
the interface keeps running: the capture program tail-calls it, and on exit
it is put back as it was (same program id, same mode).
Lines are tcpdump's own (tcpdump prints them; -e -v -X -A -q -t... as in
tcpdump). protochain follows at most 440 extension headers (300 each when an
expression has several): a packet with a longer chain is kept, never missed.
inbound/outbound need --hook tc-ingress or tc-egress.
The exit line counts what was written, what the kernel filter matched, and
what found no room in the buffer (-B): lost packets are counted, never guessed.
"""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = cliutil.add_parser(sub, "dump", summary("dump"), EXAMPLES, run, needs_root=False)
    cliutil.add_interface(p, required=False)
    p.add_argument("--hook", choices=HOOKS, default="xdp",
                   help="where to capture: xdp (default: before the stack and any XDP program), "
                        "tc-ingress, tc-egress")
    p.add_argument("-w", dest="write", metavar="FILE",
                   help="write packets to FILE: pcap, or pcapng if it ends in .pcapng; - is stdout")
    p.add_argument("-r", dest="read", metavar="FILE", help="read packets from a pcap/pcapng file instead")
    cliutil.add_count(p, "packets")
    p.add_argument("-s", dest="snaplen", type=snaplen, default=MAX_SNAPLEN, metavar="SNAPLEN",
                   help=f"bytes kept of each packet (default and most: {MAX_SNAPLEN}; 0: the same, "
                        "as in tcpdump)")
    p.add_argument("-B", dest="buffer_kib", type=cliutil.int_in(1, MAX_BUFFER_KIB, "1 GiB per CPU"),
                   default=4096, metavar="KiB", help=f"capture buffer per CPU, in KiB (default 4096, "
                                                     f"at most {MAX_BUFFER_KIB})")
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
    add_tcpdump_flags(p)
    p.add_argument("expression", nargs="*", metavar="EXPRESSION",
                   help="a tcpdump filter expression (pcap-filter(7)), run in the kernel")


MAX_BUFFER_KIB = 1 << 20


def add_tcpdump_flags(p: argparse.ArgumentParser) -> None:
    """tcpdump's everyday flags, with tcpdump's meaning: tcpdump itself prints the lines."""
    p.add_argument("-e", dest="td_e", action="store_true", help="print the link-level header (as tcpdump -e)")
    p.add_argument("-v", dest="td_v", action="count", default=0,
                   help="more detail, -vv still more (as tcpdump; netbpf's own -v goes before 'dump')")
    p.add_argument("-X", dest="td_X", action="store_true", help="hex and ASCII of each packet (as tcpdump -X)")
    p.add_argument("-A", dest="td_A", action="store_true", help="each packet in ASCII (as tcpdump -A)")
    p.add_argument("-q", dest="td_q", action="store_true", help="less protocol detail (as tcpdump -q)")
    p.add_argument("-t", dest="td_t", action="count", default=0,
                   help="-t no time stamp, -tt seconds, -ttt delta, -tttt date and time (as tcpdump)")
    p.add_argument("-l", dest="td_l", action="store_true", help="line-buffered lines (live lines always are; with -r, as tcpdump: only with -l)")
    p.add_argument("-F", dest="filter_file", metavar="FILE",
                   help="read the filter expression from FILE (an expression on the command line is then ignored)")
    p.add_argument("-Q", dest="direction", choices=("in", "out"),
                   help="in: what arrives (XDP, or tc-ingress); out: what leaves (--hook tc-egress)")
    p.add_argument("-D", dest="list_interfaces", action="store_true",
                   help="list the interfaces netbpf dump can capture on, and exit")
    p.add_argument("-C", dest="file_size", type=file_size, metavar="SIZE",
                   help="with -w: a new file before one would pass SIZE millions of bytes "
                        "(k, m, g: KiB, MiB, GiB), named FILE, FILE1, FILE2... (as tcpdump)")
    p.add_argument("-W", dest="file_count", type=cliutil.positive_int, metavar="COUNT",
                   help="with -C: a ring of COUNT files (FILE0...); with -G: stop after COUNT files")
    p.add_argument("-G", dest="rotate_seconds", type=cliutil.positive_int, metavar="SECONDS",
                   help="with -w: a new file every SECONDS (FILE may hold strftime %%-codes)")
    p.add_argument("-z", dest="post_rotate", metavar="CMD",
                   help="with -C or -G: run CMD FILE on each file a rotation closes (e.g. gzip), as tcpdump")


def file_size(text: str) -> int:
    """tcpdump's -C: millions of bytes, or a number with k, m or g (binary units)."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    unit = units.get(text[-1:].lower())
    try:
        value = float(text[:-1] if unit else text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None
    if not math.isfinite(value):  # inf, nan: no file size
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    size = int(value * (unit or 1_000_000))
    if size <= 0:
        raise argparse.ArgumentTypeError(f"not a positive size: {text!r}")
    if size > cliutil.U64_MAX:
        raise argparse.ArgumentTypeError(f"at most {cliutil.U64_MAX} bytes: {text!r}")
    return size


def rotating_sink(args: argparse.Namespace, header: bytes, pcapng_out: bool) -> Sink | None:
    """-C/-G/-W: tcpdump's rotation of -w files; None when not asked."""
    if not (args.file_size or args.rotate_seconds):
        if args.file_count or args.post_rotate:
            raise UsageError(f"{'-W' if args.file_count else '-z'} goes with -C or -G")
        return None
    if not args.write or args.write == "-":
        raise UsageError("-C and -G rotate files: they need -w FILE")
    from .sinks import RotatingFileSink

    return RotatingFileSink(args.write, header, pcapng_out, args.count, args.file_size, args.file_count,
                            args.rotate_seconds, args.post_rotate)


def post_rotate_command(args: argparse.Namespace) -> None:
    """-z CMD: said before attaching when CMD cannot be run (tcpdump finds out at the first rotation)."""
    if not args.post_rotate:
        return
    import shutil

    if not (args.file_size or args.rotate_seconds):
        raise UsageError("-z goes with -C or -G")
    if shutil.which(args.post_rotate) is None:
        raise UsageError(f"-z {args.post_rotate}: no such command (it is run as CMD FILE)")


def expression_of(args: argparse.Namespace) -> str:
    """The filter: from -F FILE (as tcpdump: the command line's is then ignored), else the words."""
    if not args.filter_file:
        return " ".join(args.expression)
    try:
        with open(args.filter_file, encoding="utf-8", errors="replace") as f:
            lines = [line.split("#", 1)[0] for line in f]  # tcpdump drops '#' comments
    except OSError as e:
        raise UsageError(f"-F {args.filter_file}: {e.strerror}") from e
    return " ".join(" ".join(lines).split())


def hook_for_direction(args: argparse.Namespace) -> None:
    """-Q: tcpdump's direction, as the hook that sees it."""
    if args.direction == "out":
        if args.hook == "xdp" and "--hook" not in sys.argv:
            args.hook = "tc-egress"
        if args.hook != "tc-egress":
            raise UsageError(f"-Q out: what leaves is seen at --hook tc-egress, not {args.hook}")
    elif args.direction == "in" and args.hook == "tc-egress":
        raise UsageError("-Q in: what arrives is seen at --hook xdp or tc-ingress, not tc-egress")


def list_interfaces() -> int:
    """-D: as tcpdump -D, the interfaces of this namespace (index.name), Ethernet and loopback, then any."""
    import socket

    from .kernel import link_type

    for index, name in socket.if_nameindex():
        try:
            link_type(name)
        except UsageError:
            continue
        print(f"{index}.{name}")
    print("any (every interface, Linux cooked v2, as tcpdump -i any)")  # no index: not an interface
    return 0


def text_sink_possible(args: argparse.Namespace) -> None:
    """Before attaching: tcpdump-only flags refused where tcpdump is not installed."""
    from .file_lines import tcpdump_path

    only_tcpdump = [flag for flag in tcpdump_flags(args) if flag not in ("-S", "--time-stamp-precision=nano")]
    if only_tcpdump and tcpdump_path() is None:
        raise UsageError(f"{' '.join(only_tcpdump)}: tcpdump prints these, and it is not installed")


def text_sink(args: argparse.Namespace, printer: TcpdumpPrinter, linktype: int) -> Sink:
    """Lines: tcpdump's own (it prints them), else netbpf's formatter (no tcpdump flags then)."""
    from .file_lines import tcpdump_path
    from .tcpdump_lines import TcpdumpLines

    flags = tcpdump_flags(args)
    tcpdump = tcpdump_path()
    if tcpdump is not None:
        return TcpdumpSink(TcpdumpLines(flags, tcpdump), linktype, True, False, args.count)
    only_tcpdump = [flag for flag in flags if flag not in ("-S", "--time-stamp-precision=nano")]
    if only_tcpdump:
        raise UsageError(f"{' '.join(only_tcpdump)}: tcpdump prints these, and it is not installed")
    return TextSink(printer, sys.stdout, True, False, args.count)


def snaplen(text: str) -> int:
    # tcpdump's -s 0 means its default, the most it keeps: typed out of habit, it must
    # not be refused.
    try:
        if int(text, 0) == 0:
            return MAX_SNAPLEN
    except ValueError:
        pass  # positive_int says what is wrong with it
    value = cliutil.positive_int(text)
    return min(value, MAX_SNAPLEN)


def run(args: argparse.Namespace) -> int:
    if args.list_interfaces:
        return list_interfaces()
    expression = expression_of(args)
    nano = args.time_stamp_precision == "nano"
    if args.read:
        from .offline import read_file

        if args.file_size or args.rotate_seconds or args.post_rotate:
            raise UsageError("-C, -G and -z rotate the files of a live capture; with -r, -w writes one file")

        return read_file(args, expression, tcpdump_flags(args))
    if args.interface == "any":
        from . import any as any_device

        post_rotate_command(args)
        if args.file_size or args.rotate_seconds:
            raise UsageError("-i any writes one file: -C and -G go with one interface")
        return any_device.run(args, expression, tcpdump_flags(args))
    hook_for_direction(args)
    cliutil.require(args.interface is not None, "-i IFACE is required (or -r FILE)")
    cliutil.require(args.write != "", "-w needs a file name (- for stdout)")
    if args.write and args.json:
        raise UsageError("-w and --json do not go together")
    post_rotate_command(args)
    if os.geteuid() != 0:
        from ...errors import NotPermitted

        raise NotPermitted("dump")
    return _live(args, expression, nano)


def _live(args: argparse.Namespace, expression: str, nano: bool) -> int:
    from ... import privilege
    from ...attrib.tracker import Owners
    from ...packet import pcap
    from ...packet.tcpdump import TcpdumpPrinter
    from ...run import StopSignals
    from .kernel import Capture, CaptureOptions, link_type

    printer = TcpdumpPrinter(absolute_seq=args.absolute, nano=nano)
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
    cliutil.check_memory(f"-B {args.buffer_kib} x {capture.geometry.cpus} CPUs",
                         capture.geometry.total_bytes)
    if args.verdict:
        _verdict_unsupported(capture)  # before anything is attached
    close_output: Callable[[], None] = _nothing
    if args.write and args.write != "-":
        privilege.check_output(args.write, args.user)  # what can be known before attaching
    if not args.write and not args.json:
        text_sink_possible(args)  # tcpdump's flags need tcpdump: said before attaching
    sink: Sink = _NoSink()
    started = False
    failed = False  # the output could not be written: its error says where it stopped
    try:
        capture.start()
        started = True
        # As tcpdump: drop to -Z USER once attached, then open -w FILE as that user.
        to_file = bool(args.write and args.write != "-")
        keep = privilege.to_detach(capture.attachment)
        if args.hook == "xdp":
            # At XDP, leaving may mean splicing out of a stack of front programs
            # (xdp_front.leave), which opens programs and maps by id (CAP_SYS_ADMIN)
            # and may put the successor back over netlink (CAP_NET_ADMIN).
            keep |= {privilege.CAP_SYS_ADMIN, privilege.CAP_NET_ADMIN}
        cliutil.relinquish(args, keep=keep,
                           on_demand={privilege.CAP_DAC_OVERRIDE} if capture.pin_path or to_file else ())
        if args.write:
            header = (pcap.pcapng_file_header([args.interface], options.snap, linktype, nano)
                      if pcapng_out else pcap.pcap_file_header(options.snap, linktype, nano))
            rotating = rotating_sink(args, header, pcapng_out)  # opens each file as open_output does
            if rotating is not None:
                sink, close_output = rotating, rotating.close  # type: ignore[attr-defined]
            else:
                fd, close_output = open_output(args.write)
                sink = FileSink(fd, header, pcapng_out, args.count, f"-w {args.write}")
            if not capture.pin_path and rotating is None:
                privilege.forget(privilege.CAP_DAC_OVERRIDE)  # the file is open: no more use for it
            immediate = args.write == "-" or args.packet_buffered or bool(args.rotate_seconds)  # -G: at packets
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
            sink = text_sink(args, printer, linktype)  # tcpdump, if it prints, runs as -Z USER too
            immediate = True
        cliutil.stderr(f"netbpf: capturing on {args.interface} at {args.hook}"
                       f"{_in_front_of(capture)}, link-type EN10MB (Ethernet), "
                       f"snapshot length {options.snap} bytes{_owners_note(options)}")
        if args.metrics:
            from ... import metrics
            from .metrics import families

            metrics.export(args.metrics, lambda: families(capture, sink))
        # Ctrl-C and SIGTERM end the capture between two batches, not in the middle of
        # writing a packet (so that the count of what was written is exact); a second
        # signal interrupts at once.
        with StopSignals(capture.interrupt, second_interrupts=True) as stop:
            _loop(capture, sink, cliutil.Deadline(args.duration), immediate, stop)
    except KeyboardInterrupt:
        pass
    except OutputError:
        failed = True
        raise
    finally:
        capture.stop()
        if capture.left.startswith("stepped out"):
            cliutil.stderr(f"netbpf: {capture.left}")  # someone stands in front of us: said so
        try:
            if capture.ring is not None and not sink.done and not failed:
                capture.ring.drain(sink.write)
                sink.flush()
            if started and capture.obj is not None and not isinstance(sink, _NoSink) and not failed:
                _, matched, lost = capture.counters()
                captured = sink.written if sink.counts_packets else matched - lost
                if isinstance(sink, TcpdumpSink):
                    sink.close()  # tcpdump's last lines before netbpf's summary
                cliutil.stderr(f"{captured} packets captured, {matched} matched in kernel, {lost} lost")
                if owners is not None:
                    cliutil.stderr("netbpf: owners of the packets the expression matched: "
                                   + attribution.summary(attribution.attrib_counts(capture.obj)))
        finally:
            capture.close()
            close_output()
    if started and not capture.interface_present():
        raise NetbpfError(f"{args.interface} was deleted while capturing: stopped, nothing of netbpf left on it")
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


FLUSH_INTERVAL = 2.0  # -w FILE: a partly filled block goes out after this long at most
IDLE_CHECK = 5.0  # nothing arriving: look anyway this often (a wake-up can be missed)


def _loop(capture: Capture, sink: Sink, deadline: cliutil.Deadline, immediate: bool,
          stop: StopSignals) -> None:
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
    while not sink.done and not deadline.expired() and not stop.stopped.is_set() and capture.interface_present():
        if immediate or not got:
            ring.wait(deadline.remaining(1.0 if immediate else IDLE_CHECK), immediate=True)
        else:
            ring.wait(deadline.remaining(FLUSH_INTERVAL), immediate=False)
        got = ring.drain(sink.write)
        sink.flush()
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
