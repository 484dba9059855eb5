"""``netbpf dump -r FILE``: read a capture file as tcpdump reads it.

Each packet is filtered by libpcap itself, compiled for the packet's own link
type (a pcapng file may hold interfaces of several types), then written to
``-w`` (filter a file into a file), printed by tcpdump (tcpdump_lines), or as
JSON. The file is streamed: memory does not grow with its size. A damaged
file gives every good packet first, then one line saying where and why the
reading stopped, and exit status 1, as tcpdump does.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from ...errors import NetbpfError, UsageError
from ...packet import pcap
from .sinks import open_output, write_all

if TYPE_CHECKING:
    from ...packet.tcpdump import TcpdumpPrinter

Match = Callable[[bytes, int], int]


class _Filters:
    """libpcap's verdict, with one compiled program per link type."""

    def __init__(self, expression: str, snaplen: int, big_endian: bool) -> None:
        self.expression, self.snaplen, self.big_endian = expression, snaplen, big_endian
        self._by_linktype: dict[int, Match] = {}

    def matches(self, packet: pcap.Packet) -> bool:
        return True if not self.expression else bool(self.matcher(packet.linktype)(packet.data, packet.orig_len))

    def matcher(self, linktype: int) -> Match:
        match = self._by_linktype.get(linktype)
        if match is None:
            from ...packet.libpcap import compile_classic, offline_matcher

            match = offline_matcher(compile_classic(self.expression, self.snaplen, file_linktype=linktype,
                                                    big_endian=self.big_endian))
            self._by_linktype[linktype] = match
        return match


class _FileWriter:
    """-w with -r: pcap (one link type) or pcapng (an interface description per interface)."""

    def __init__(self, path: str, reader: pcap.Reader, nano: bool) -> None:
        self.path, self.reader, self.nano = path, reader, nano
        self.pcapng = path.endswith(".pcapng")
        self.fd, self._close = open_output(path)
        self._out = bytearray()
        self._ifaces: dict[int, int] = {}  # input interface -> output interface (pcapng)
        if self.pcapng:
            self._out += pcap.pcapng_file_header([], 0, nano=nano)
        else:
            self._out += pcap.pcap_file_header(reader.snaplen or pcap.MAX_CAPLEN, reader.linktype, nano)

    def write(self, packet: pcap.Packet) -> None:
        if self.pcapng:
            out = self._ifaces.get(packet.interface)
            if out is None:
                info = self.reader.interfaces[packet.interface]
                out = self._ifaces[packet.interface] = len(self._ifaces)
                self._out += pcap.pcapng_interface(info.name or f"if{packet.interface}",
                                                   info.snaplen, info.linktype, self.nano)
            self._out += pcap.pcapng_record(packet.ts_ns, packet.data, packet.orig_len, self.nano, out)
        else:
            if packet.linktype != self.reader.linktype:
                raise NetbpfError(f"{self.path}: a pcap file holds one link type ({self.reader.linktype}); "
                                  f"this packet is of link type {packet.linktype}: write .pcapng")
            self._out += pcap.pcap_record(packet.ts_ns, packet.data, packet.orig_len, self.nano)
        if len(self._out) >= 1 << 20:
            self.flush()

    def flush(self) -> None:
        if self._out:
            write_all(self.fd, memoryview(self._out))
            self._out = bytearray()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._close()


def read_file(args: argparse.Namespace, expression: str, tcpdump_flags: list[str]) -> int:
    if _libpcap_can_copy(args):
        return _copy_with_libpcap(args, expression)  # imports nothing more: Python start-up is its cost
    from .file_lines import check_expression, tcpdump_path, tcpdump_reads

    tcpdump = tcpdump_path()
    if tcpdump and _is_pcap(args.read) and not args.write and not args.json:
        # One link type, lines: tcpdump reads the file itself (libpcap's filter, tcpdump's lines).
        # (Most such command lines never get here: file_lines.run_plain runs them first.)
        check_expression(args.read, expression, args.snaplen)
        return tcpdump_reads(tcpdump, args.read, expression, tcpdump_flags + (["-l"] if args.td_l else []),
                             args.count)
    try:
        reader, f = pcap.open_reader(args.read)
    except OSError as e:
        raise NetbpfError(f"{args.read}: {e.strerror}") from e
    except pcap.PcapFormatError as e:
        raise NetbpfError(f"{args.read}: {e}") from e
    filters = _Filters(expression, args.snaplen, reader.big_endian)
    if expression:
        # A bad expression is refused before any output, for the file's first link type.
        filters.matches(pcap.Packet(0, b"", 0, 0, reader.linktype))
    from ...packet.tcpdump import TcpdumpPrinter  # JSON, and lines without tcpdump

    printer = TcpdumpPrinter(absolute_seq=args.absolute, nano=args.time_stamp_precision == "nano")
    emit, close = _output(args, reader, printer, tcpdump_flags)
    shown = 0
    try:
        linktype, match = -1, None
        for packet in reader:
            if expression:
                if packet.linktype != linktype:  # one lookup per run of a link type, not per packet
                    linktype, match = packet.linktype, filters.matcher(packet.linktype)
                assert match is not None
                if not match(packet.data, packet.orig_len):
                    continue
            if not emit(packet):
                break  # the reader of our output went away
            shown += 1
            if args.count and shown >= args.count:
                break
    finally:
        try:
            close()
        finally:
            if f is not sys.stdin.buffer:
                f.close()
    if reader.stopped:
        print(f"netbpf: {args.read}: {reader.stopped}", file=sys.stderr)
        return 1
    return 0


def _output(args: argparse.Namespace, reader: pcap.Reader, printer: TcpdumpPrinter,
            tcpdump_flags: list[str]) -> tuple[Callable[[pcap.Packet], bool], Callable[[], None]]:
    """(emit a packet, close) for -w, --json, or tcpdump's lines."""
    import json

    from . import tcpdump_lines
    from .file_lines import tcpdump_path

    if args.write:
        if args.json:
            raise UsageError("-w and --json do not go together")
        writer = _FileWriter(args.write, reader, nano=reader.nano or args.time_stamp_precision == "nano")

        def write(packet: pcap.Packet) -> bool:
            writer.write(packet)
            return True

        return write, writer.close
    if args.json:
        def as_json(packet: pcap.Packet) -> bool:
            if packet.linktype != pcap.LINKTYPE_ETHERNET:  # netbpf's decoder knows Ethernet only
                raise NetbpfError(f"--json decodes Ethernet frames; this packet is of link type "
                                  f"{packet.linktype} (tcpdump's lines or -w read any)")
            summary, fields = printer.describe(packet.data, packet.orig_len)
            print(json.dumps({"ts": packet.ts_ns / 1e9, **fields, "summary": summary}))
            return True

        return as_json, sys.stdout.flush
    tcpdump = tcpdump_path()
    if tcpdump is None:
        return _fallback_lines(printer, tcpdump_flags)
    lines = tcpdump_lines.TcpdumpLines(tcpdump_flags, tcpdump)

    def to_tcpdump(packet: pcap.Packet) -> bool:
        snaplen = reader.interfaces[packet.interface].snaplen if reader.interfaces else 0
        return lines.write(packet.linktype, tcpdump_lines.record(packet.ts_ns, packet.data, packet.orig_len),
                           snaplen or pcap.MAX_CAPLEN)

    return to_tcpdump, lines.close


def _fallback_lines(printer: TcpdumpPrinter,
                    tcpdump_flags: list[str]) -> tuple[Callable[[pcap.Packet], bool], Callable[[], None]]:
    only_tcpdump = [flag for flag in tcpdump_flags if flag not in ("-S", "--time-stamp-precision=nano")]
    if only_tcpdump:
        raise UsageError(f"{' '.join(only_tcpdump)}: tcpdump prints these, and it is not installed")

    def line(packet: pcap.Packet) -> bool:
        if packet.linktype != pcap.LINKTYPE_ETHERNET:
            raise NetbpfError(f"link type {packet.linktype}: without tcpdump, only Ethernet is printed")
        sys.stdout.write(printer.line(packet.ts_ns, packet.data, packet.orig_len) + "\n")
        return True

    return line, lambda: (sys.stdout.flush(), None)[1]



def _libpcap_can_copy(args: argparse.Namespace) -> bool:
    """pcap in, pcap out: libpcap filters the file into the file in C, as tcpdump -r -w does.
    (pcapng in is read here: libpcap 1.10 stops at an interface of a second link type.)"""
    if not args.write or args.write == "-" or args.write.endswith(".pcapng") or args.json:
        return False
    return _is_pcap(args.read)


def _is_pcap(path: str) -> bool:
    """A pcap file (not pcapng, not standard input)."""
    if path == "-":
        return False
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError:
        return False
    magics = (pcap.PCAP_MAGIC_MICRO, pcap.PCAP_MAGIC_NANO)
    return len(magic) == 4 and (int.from_bytes(magic, "little") in magics or int.from_bytes(magic, "big") in magics)


def _copy_with_libpcap(args: argparse.Namespace, expression: str) -> int:
    from ...packet.libpcap import filter_savefile

    try:
        error = filter_savefile(args.read, args.write, expression, args.count or 0,
                                nano=args.time_stamp_precision == "nano")
    except OSError as e:
        raise NetbpfError(f"{args.read}: {e.strerror or e}") from e
    if error:
        print(f"netbpf: {args.read}: {error}", file=sys.stderr)
        return 1
    return 0
