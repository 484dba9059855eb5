"""libpcap through ctypes: compile tcpdump expressions, run its own interpreter.

``pcap_compile`` on a "dead" handle for the link type gives exactly the
classic BPF that tcpdump would use; ``pcap_offline_filter`` is libpcap's own
interpreter, the reference the translated eBPF is tested against.
"""
from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from ctypes import POINTER, Structure, c_char_p, c_int, c_long, c_uint, c_uint8, c_uint16, c_uint32, c_void_p
from dataclasses import dataclass

from ..errors import BuildMissing, FilterError

DLT_EN10MB = 1
# File link types (LINKTYPE_*) are DLT_* values but for a few that differ between
# systems; libpcap's pcap-common.c maps these to Linux's DLT values.
_LINKTYPE_TO_DLT = {100: 11, 101: 12, 102: 15, 103: 16}


def dlt_of(linktype: int) -> int:
    """The DLT value (what pcap_open_dead takes) of a file's LINKTYPE value."""
    return _LINKTYPE_TO_DLT.get(linktype, linktype)
PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF


class CInsn(Structure):
    """A classic BPF instruction (``struct bpf_insn`` of libpcap)."""

    _fields_ = [("code", c_uint16), ("jt", c_uint8), ("jf", c_uint8), ("k", c_uint32)]


class BpfProgram(Structure):
    _fields_ = [("bf_len", c_uint), ("bf_insns", POINTER(CInsn))]


class Timeval(Structure):
    _fields_ = [("tv_sec", c_long), ("tv_usec", c_long)]


class PktHdr(Structure):
    _fields_ = [("ts", Timeval), ("caplen", c_uint32), ("len", c_uint32)]


def _load() -> ctypes.CDLL:
    # find_library runs ldconfig (a process): only when the usual names are not there.
    for name in ("libpcap.so.0.8", "libpcap.so.1", None):
        if name is None:
            from ctypes.util import find_library

            name = find_library("pcap")
        if name:
            try:
                return ctypes.CDLL(name)
            except OSError:
                continue
    raise BuildMissing("libpcap not found (apt-get install libpcap0.8)")


_lib: ctypes.CDLL | None = None
_lock = threading.Lock()  # pcap_compile was not thread-safe before libpcap 1.8


def lib() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        pcap = _load()
        pcap.pcap_open_dead.restype = c_void_p
        pcap.pcap_open_dead.argtypes = [c_int, c_int]
        pcap.pcap_compile.restype = c_int
        pcap.pcap_compile.argtypes = [c_void_p, POINTER(BpfProgram), c_char_p, c_int, c_uint32]
        pcap.pcap_geterr.restype = c_char_p
        pcap.pcap_geterr.argtypes = [c_void_p]
        pcap.pcap_freecode.argtypes = [POINTER(BpfProgram)]
        pcap.pcap_close.argtypes = [c_void_p]
        pcap.pcap_offline_filter.restype = c_int
        pcap.pcap_offline_filter.argtypes = [POINTER(BpfProgram), POINTER(PktHdr), c_char_p]
        pcap.pcap_lib_version.restype = c_char_p
        pcap.pcap_open_offline.restype = c_void_p
        pcap.pcap_open_offline.argtypes = [c_char_p, c_char_p]
        _lib = pcap
    return _lib


@dataclass(frozen=True, slots=True)
class ClassicProgram:
    expression: str
    linktype: int
    snaplen: int
    insns: tuple[tuple[int, int, int, int], ...]  # (code, jt, jf, k)

    def to_c(self) -> BpfProgram:
        array = (CInsn * len(self.insns))(*[CInsn(*i) for i in self.insns])
        prog = BpfProgram(len(self.insns), array)
        prog._keep = array
        return prog

    def matches(self, packet: bytes, wire_len: int | None = None) -> int:
        """libpcap's own verdict for a packet: 0, or how many bytes to keep."""
        hdr = PktHdr(Timeval(0, 0), len(packet), wire_len if wire_len is not None else len(packet))
        return int(lib().pcap_offline_filter(ctypes.byref(self.to_c()), ctypes.byref(hdr), packet))


def offline_matcher(classic: ClassicProgram) -> Callable[[bytes, int], int]:
    """``match(packet, wire_len)``: libpcap's verdict, with the program built once (for files)."""
    prog = classic.to_c()
    hdr = PktHdr(Timeval(0, 0), 0, 0)
    run, prog_ref, hdr_ref = lib().pcap_offline_filter, ctypes.byref(prog), ctypes.byref(hdr)

    def match(packet: bytes, wire_len: int) -> int:
        hdr.caplen, hdr.len = len(packet), wire_len
        return int(run(prog_ref, hdr_ref, packet))

    return match


def _file_handle(linktype: int, snaplen: int, big_endian: bool) -> int:
    """A libpcap handle reading a file of this link type (a pcap header, no packets).

    libpcap compiles some primitives differently for a file than for a live
    capture: on DLT_NULL, ``ip6`` tests the BSD address family values a file
    may come from (and their byte order is the file's), where Linux's live
    value is 10. tcpdump -r compiles on such a handle; so does this.
    """
    import struct
    import tempfile

    order = ">" if big_endian else "<"
    with tempfile.NamedTemporaryFile(prefix="netbpf-linktype-", suffix=".pcap") as f:
        f.write(struct.pack(order + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype))
        f.flush()
        errbuf = ctypes.create_string_buffer(256)
        handle = lib().pcap_open_offline(os.fsencode(f.name), errbuf)
    if not handle:
        raise FilterError("", f"libpcap cannot read link type {linktype}: {errbuf.value.decode(errors='replace')}")
    return int(handle)


def compile_classic(expression: str, snaplen: int = 262144, linktype: int = DLT_EN10MB,
                    optimize: bool = True, file_linktype: int | None = None,
                    big_endian: bool = False) -> ClassicProgram:
    """Compile a tcpdump expression as tcpdump would; FilterError carries libpcap's message.

    ``file_linktype``: compile as ``tcpdump -r`` does for a file of that LINKTYPE
    (and byte order), instead of for a live capture of ``linktype``.
    """
    pcap = lib()
    with _lock:
        if file_linktype is not None:
            handle = _file_handle(file_linktype, snaplen, big_endian)
            linktype = dlt_of(file_linktype)
        else:
            handle = pcap.pcap_open_dead(linktype, snaplen)
        if not handle:
            raise FilterError(expression, "libpcap could not open a handle for this link type")
        try:
            prog = BpfProgram()
            if pcap.pcap_compile(handle, ctypes.byref(prog), os.fsencode(expression), int(optimize),
                                 PCAP_NETMASK_UNKNOWN) != 0:
                raise FilterError(expression, (pcap.pcap_geterr(handle) or b"").decode(errors="replace"))
            try:
                insns = tuple((prog.bf_insns[i].code, prog.bf_insns[i].jt, prog.bf_insns[i].jf,
                               prog.bf_insns[i].k) for i in range(prog.bf_len))
            finally:
                pcap.pcap_freecode(ctypes.byref(prog))
        finally:
            pcap.pcap_close(handle)
    return ClassicProgram(expression, linktype, snaplen, insns)


def version() -> str:
    return (lib().pcap_lib_version() or b"").decode()


def filter_savefile(source: str, destination: str, expression: str, count: int = 0,
                    nano: bool = False) -> str:
    """``tcpdump -r SOURCE -w DESTINATION EXPRESSION``, done by libpcap as tcpdump does it.

    pcap_loop with pcap_dump as the callback: every packet stays in C. Returns
    libpcap's error where the reading stopped ("" when the file ended cleanly). Raises
    FilterError for a bad expression, OSError when a file cannot be opened.
    """
    pcap = lib()
    for name, restype, argtypes in (
            ("pcap_open_offline_with_tstamp_precision", c_void_p, [c_char_p, c_uint, c_char_p]),
            ("pcap_setfilter", c_int, [c_void_p, POINTER(BpfProgram)]),
            ("pcap_dump_open", c_void_p, [c_void_p, c_char_p]),
            ("pcap_dump_close", None, [c_void_p]),
            ("pcap_dump_flush", c_int, [c_void_p]),
            ("pcap_loop", c_int, [c_void_p, c_int, c_void_p, c_void_p])):
        fn = getattr(pcap, name)
        fn.restype, fn.argtypes = restype, argtypes
    errbuf = ctypes.create_string_buffer(256)
    handle = pcap.pcap_open_offline_with_tstamp_precision(os.fsencode(source), int(nano), errbuf)
    if not handle:
        raise OSError(0, errbuf.value.decode(errors="replace"))
    try:
        prog = BpfProgram()
        if pcap.pcap_compile(handle, ctypes.byref(prog), os.fsencode(expression), 1, PCAP_NETMASK_UNKNOWN) != 0:
            raise FilterError(expression, (pcap.pcap_geterr(handle) or b"").decode(errors="replace"))
        try:
            if pcap.pcap_setfilter(handle, ctypes.byref(prog)) != 0:
                raise FilterError(expression, (pcap.pcap_geterr(handle) or b"").decode(errors="replace"))
        finally:
            pcap.pcap_freecode(ctypes.byref(prog))
        dumper = pcap.pcap_dump_open(handle, os.fsencode(destination))
        if not dumper:
            raise OSError(0, (pcap.pcap_geterr(handle) or b"").decode(errors="replace"))
        try:
            status = pcap.pcap_loop(handle, count or -1, ctypes.cast(pcap.pcap_dump, c_void_p), dumper)
        finally:
            pcap.pcap_dump_close(dumper)
        error = (pcap.pcap_geterr(handle) or b"").decode(errors="replace") if status == -1 else ""
        return error
    finally:
        pcap.pcap_close(handle)

