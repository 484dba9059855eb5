"""``netbpf dump -i any``: every interface of the namespace, as ``tcpdump -i any``.

How: an AF_PACKET socket opened by libpcap (its "any" device), Linux cooked v2
out (LINKTYPE_LINUX_SLL2: interface index, packet type, ARPHRD type, protocol),
and the expression compiled by libpcap and attached to the socket as its
kernel filter, which is what tcpdump does. Not tc programs on every interface:

- nothing is attached to any interface, so traffic never depends on netbpf and
  nothing can be left behind (the socket goes with the process, even on SIGKILL);
- an interface that appears during the capture is in it, with no race to
  attach before its first packet, and one that goes away takes nothing with it;
- the counts are the kernel's own (PACKET_STATISTICS): what passed the filter
  and what found no room in the ring, exact.

libpcap drops two kinds of packets after the kernel filter passed them, and
they would be "matched" but never captured: a loopback packet's outgoing copy
(it is seen again incoming) and, with ``-Q``, the other direction. Both are
put into the kernel filter instead (``not (outbound and ifindex LO)``,
``inbound``/``outbound``), so matched = captured + lost + what was still in
the ring at the end (read before the summary).
"""
from __future__ import annotations

import argparse
import ctypes
import os
import select
import socket
import subprocess
import sys
import time
from ctypes import POINTER, Structure, c_char_p, c_int, c_uint, c_void_p

from ... import cliutil
from ...errors import FilterError, NetbpfError, OutputError, UsageError
from ...packet.libpcap import PCAP_NETMASK_UNKNOWN, BpfProgram, PktHdr, lib
from ...run import StopSignals

LINKTYPE_LINUX_SLL2 = 276
PCAP_D_IN, PCAP_D_OUT = 1, 2
PCAP_TSTAMP_PRECISION_NANO = 1
BLOCK_TIMEOUT_MS = 200  # a ring block not yet full is handed over after this long (tcpdump: 1000)

# pcap_handler: void (*)(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
Handler = ctypes.CFUNCTYPE(None, c_void_p, POINTER(PktHdr), POINTER(ctypes.c_ubyte))


class Stat(Structure):
    _fields_ = [("ps_recv", c_uint), ("ps_drop", c_uint), ("ps_ifdrop", c_uint)]


def _prototypes() -> ctypes.CDLL:
    p = lib()
    for name, restype, argtypes in (
            ("pcap_create", c_void_p, [c_char_p, c_char_p]),
            ("pcap_set_snaplen", c_int, [c_void_p, c_int]),
            ("pcap_set_promisc", c_int, [c_void_p, c_int]),
            ("pcap_set_timeout", c_int, [c_void_p, c_int]),
            ("pcap_set_buffer_size", c_int, [c_void_p, c_int]),
            ("pcap_set_immediate_mode", c_int, [c_void_p, c_int]),
            ("pcap_set_tstamp_precision", c_int, [c_void_p, c_int]),
            ("pcap_activate", c_int, [c_void_p]),
            ("pcap_statustostr", c_char_p, [c_int]),
            ("pcap_set_datalink", c_int, [c_void_p, c_int]),
            ("pcap_setfilter", c_int, [c_void_p, POINTER(BpfProgram)]),
            ("pcap_setnonblock", c_int, [c_void_p, c_int, c_char_p]),
            ("pcap_get_selectable_fd", c_int, [c_void_p]),
            ("pcap_dispatch", c_int, [c_void_p, c_int, c_void_p, c_void_p]),
            ("pcap_stats", c_int, [c_void_p, POINTER(Stat)]),
            ("pcap_dump_fopen", c_void_p, [c_void_p, c_void_p]),
            ("pcap_dump_flush", c_int, [c_void_p]),
            ("pcap_dump_close", None, [c_void_p])):
        fn = getattr(p, name)
        fn.restype, fn.argtypes = restype, argtypes
    return p


def kernel_expression(expression: str, direction: str | None) -> str:
    """The expression as the kernel runs it: the user's, less what libpcap would drop after it."""
    parts = []
    try:
        lo = socket.if_nametoindex("lo")
        parts.append(f"not (outbound and ifindex {lo})")  # libpcap drops these (seen again incoming)
    except OSError:
        pass
    if direction:
        parts.append("inbound" if direction == "in" else "outbound")
    if expression:
        parts.append(f"({expression})")
    return " and ".join(parts)


def refuse_other_options(args: argparse.Namespace) -> None:
    """What -i any does not have, in one line each, before anything is opened."""
    given = set(sys.argv)
    if "--hook" in given or any(a.startswith("--hook=") for a in given):
        raise UsageError("-i any captures from an AF_PACKET socket on every interface (as tcpdump): "
                         "--hook goes with one interface")
    if args.json:
        raise UsageError("-i any gives Linux cooked frames: lines or -w, not --json")
    if args.write and args.write.endswith(".pcapng"):
        raise UsageError("-i any writes pcap with Linux cooked v2 headers (as tcpdump -i any): -w a .pcap file")
    if args.verdict or args.metrics:
        raise UsageError(f"{'--verdict' if args.verdict else '--metrics'} goes with one interface, not -i any")
    if any(getattr(args, name, None) for name in ("process", "pid", "comm", "cgroup", "container")):
        raise UsageError("owners of packets (--process, --pid...) go with one interface, not -i any")


class AnyCapture:
    """libpcap's "any" device: an AF_PACKET socket with the kernel filter on it."""

    def __init__(self, snaplen: int, buffer_bytes: int, expression: str, direction: str | None,
                 immediate: bool, nano: bool) -> None:
        self.p = _prototypes()
        errbuf = ctypes.create_string_buffer(256)
        self.handle = self.p.pcap_create(b"any", errbuf)
        if not self.handle:
            raise NetbpfError(f"-i any: {errbuf.value.decode(errors='replace')}")
        self.captured = 0
        self._base = (0, 0)
        try:
            self._open(snaplen, buffer_bytes, expression, direction, immediate, nano)
        except BaseException:
            self.close()
            raise

    def _open(self, snaplen: int, buffer_bytes: int, expression: str, direction: str | None,
              immediate: bool, nano: bool) -> None:
        p, h = self.p, self.handle
        p.pcap_set_snaplen(h, snaplen)
        p.pcap_set_promisc(h, 0)  # the any device has no promiscuous mode (tcpdump -i any neither)
        p.pcap_set_timeout(h, BLOCK_TIMEOUT_MS)
        p.pcap_set_buffer_size(h, buffer_bytes)
        p.pcap_set_immediate_mode(h, int(immediate))
        if nano:
            p.pcap_set_tstamp_precision(h, PCAP_TSTAMP_PRECISION_NANO)
        status = p.pcap_activate(h)
        if status < 0:
            raise NetbpfError(f"-i any: {self._error(status)}")
        if p.pcap_set_datalink(h, LINKTYPE_LINUX_SLL2) != 0:
            raise NetbpfError(f"-i any: Linux cooked v2: {self._geterr()}")
        prog = BpfProgram()
        text = kernel_expression(expression, direction)
        if p.pcap_compile(h, ctypes.byref(prog), os.fsencode(text), 1, PCAP_NETMASK_UNKNOWN) != 0:
            raise FilterError(expression, self._geterr())
        try:
            if p.pcap_setfilter(h, ctypes.byref(prog)) != 0:
                raise FilterError(expression, self._geterr())
        finally:
            p.pcap_freecode(ctypes.byref(prog))
        errbuf = ctypes.create_string_buffer(256)
        if p.pcap_setnonblock(h, 1, errbuf) != 0:
            raise NetbpfError(f"-i any: {errbuf.value.decode(errors='replace')}")
        self.fd = p.pcap_get_selectable_fd(h)
        self._base = self._stats()  # from here on: packets the kernel filter decided on

    def _geterr(self) -> str:
        return (self.p.pcap_geterr(self.handle) or b"").decode(errors="replace")

    def _error(self, status: int) -> str:
        text = self._geterr()
        return text or (self.p.pcap_statustostr(status) or b"").decode(errors="replace")

    def _stats(self) -> tuple[int, int]:
        st = Stat()
        if self.p.pcap_stats(self.handle, ctypes.byref(st)) != 0:
            raise NetbpfError(f"-i any: statistics: {self._geterr()}")
        return st.ps_recv, st.ps_drop

    def counters(self) -> tuple[int, int]:
        """(matched by the kernel filter, lost for want of room) since the filter was set."""
        recv, drop = self._stats()
        return recv - self._base[0], drop - self._base[1]

    def wait(self, timeout: float) -> None:
        try:
            select.select([self.fd], [], [], timeout)
        except InterruptedError:
            pass

    def dispatch(self, limit: int, callback: c_void_p, user: c_void_p | None) -> int:
        """Hand what the ring holds to ``callback`` (at most ``limit``, 0: all); how many."""
        n = self.p.pcap_dispatch(self.handle, limit or -1, callback, user)
        if n < 0:
            raise NetbpfError(f"-i any: {self._geterr()}")
        self.captured += n
        return int(n)

    def close(self) -> None:
        if self.handle:
            self.p.pcap_close(self.handle)
            self.handle = None


class _Dumper:
    """pcap_dump (libpcap writes each packet, in C) into an fd: -w FILE, -w -, or tcpdump's input."""

    def __init__(self, capture: AnyCapture, fd: int, name: str) -> None:
        self.p, self.name = capture.p, name
        libc = ctypes.CDLL(None, use_errno=True)
        libc.fdopen.restype, libc.fdopen.argtypes = c_void_p, [c_int, c_char_p]
        own = os.dup(fd)
        stream = libc.fdopen(own, b"wb")
        if not stream:
            os.close(own)
            raise OutputError(name, OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno())))
        self.dumper = self.p.pcap_dump_fopen(capture.handle, stream)  # writes the file header
        if not self.dumper:
            raise OutputError(name, OSError(0, (capture.p.pcap_geterr(capture.handle) or b"").decode()))
        self.callback = ctypes.cast(self.p.pcap_dump, c_void_p)

    def flush(self) -> bool:
        """False when a write failed (a full disk, or tcpdump gone)."""
        return not self.dumper or self.p.pcap_dump_flush(self.dumper) == 0

    def close(self, check: bool = True) -> None:
        """Flush and close; ``check``: a failed write is said (not when tcpdump went away)."""
        if self.dumper:
            ok = self.flush()
            self.p.pcap_dump_close(self.dumper)
            self.dumper = None
            if check and not ok:
                raise OutputError(self.name, OSError(5, "write failed"), "capture stopped, the file is cut short")


def _tcpdump(flags: list[str]) -> subprocess.Popen[bytes]:
    from .file_lines import tcpdump_path

    tcpdump = tcpdump_path()
    if tcpdump is None:
        raise UsageError("-i any: its lines are tcpdump's (Linux cooked v2), and tcpdump is not installed: use -w")
    sys.stdout.flush()
    # A process group of its own, as in tcpdump_lines: Ctrl-C stops the capture, then tcpdump
    # prints all it was given. tcpdump resolves each packet's interface index to its name here.
    return subprocess.Popen([tcpdump, "-nn", "-l", *flags, "-r", "-"], stdin=subprocess.PIPE,
                            stderr=subprocess.PIPE, close_fds=True, process_group=0)


def run(args: argparse.Namespace, expression: str, flags: list[str]) -> int:
    """``netbpf dump -i any``: capture, write or print, then the summary line."""
    from ... import privilege
    from .sinks import open_output

    refuse_other_options(args)
    if os.geteuid() != 0:
        from ...errors import NotPermitted

        raise NotPermitted("dump -i any")
    to_file = bool(args.write and args.write != "-")
    if to_file:
        privilege.check_output(args.write, args.user)
    immediate = not to_file or args.packet_buffered
    nano = args.time_stamp_precision == "nano" or not args.write  # lines: tcpdump rounds
    capture = AnyCapture(args.snaplen, args.buffer_kib << 10, expression, args.direction, immediate, nano)
    dumper: _Dumper | None = None
    close_output = None
    tcpdump = None
    try:
        cliutil.relinquish(args, keep=(), on_demand={privilege.CAP_DAC_OVERRIDE} if to_file else ())
        if args.write:
            fd, close_output = open_output(args.write)
            privilege.forget(privilege.CAP_DAC_OVERRIDE)
            dumper = _Dumper(capture, fd, f"-w {args.write}")
        else:
            tcpdump = _tcpdump(flags)
            assert tcpdump.stdin is not None
            dumper = _Dumper(capture, tcpdump.stdin.fileno(), "tcpdump")
        direction = {"in": ", arriving only (-Q in)", "out": ", leaving only (-Q out)"}.get(args.direction or "", "")
        cliutil.stderr(f"netbpf: capturing on any (every interface, an AF_PACKET socket as tcpdump){direction}, "
                       f"link-type LINUX_SLL2 (Linux cooked v2), snapshot length {args.snaplen} bytes")
        deadline = cliutil.Deadline(args.duration)
        with StopSignals(second_interrupts=True) as stop:
            try:
                for timeout in stop.rounds(deadline, 0.5):
                    if args.count and capture.captured >= args.count:
                        break
                    capture.wait(timeout)
                    if capture.dispatch(args.count - capture.captured if args.count else 0,
                                        dumper.callback, dumper.dumper) and immediate and not dumper.flush():
                        break  # tcpdump's reader went away (| head), or the file could not be written
                    if tcpdump is not None and tcpdump.poll() is not None:
                        break
                _drain(capture, dumper, args.count)
            except BrokenPipeError:
                pass
        dumper.close(check=tcpdump is None or tcpdump.poll() is None)  # tcpdump gone (| head): no error
        dumper = None
        if tcpdump is not None:
            _finish_tcpdump(tcpdump)
            tcpdump = None
        matched, lost = capture.counters()
        cliutil.stderr(f"{capture.captured} packets captured, {matched} matched in kernel, {lost} lost")
    finally:
        try:
            if dumper is not None:
                dumper.close(check=False)  # already failing: the first error is the one said
        finally:
            capture.close()
            if tcpdump is not None:
                _finish_tcpdump(tcpdump)
            if close_output is not None:
                close_output()
    return 0


def _drain(capture: AnyCapture, dumper: _Dumper, count: int | None) -> None:
    """At the end: what the kernel matched and is still in the ring (a block not yet
    handed over, up to BLOCK_TIMEOUT_MS), read before the counts are said."""
    end = time.monotonic() + BLOCK_TIMEOUT_MS / 1000 * 3
    while time.monotonic() < end and not (count and capture.captured >= count):
        matched, lost = capture.counters()
        if capture.captured + lost >= matched:
            break
        capture.wait(0.05)
        capture.dispatch(count - capture.captured if count else 0, dumper.callback, dumper.dumper)


def _finish_tcpdump(proc: subprocess.Popen[bytes]) -> None:
    """Close tcpdump's input, let it print what it was given, and relay its complaints."""
    assert proc.stdin is not None and proc.stderr is not None
    try:
        proc.stdin.close()
    except BrokenPipeError:
        pass
    err = proc.stderr.read()
    proc.wait()
    for line in err.decode(errors="replace").splitlines():
        # tcpdump warns that names of a file's interface indexes are looked up here: they are,
        # in the namespace the packets were captured in, as tcpdump -i any does.
        if line and not line.startswith(("reading from file -", "Warning: interface names might be incorrect")):
            cliutil.stderr(line)
