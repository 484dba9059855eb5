"""pcap and pcapng: file headers, records, and a reader for both.

pcap (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-03.html): a
24-byte file header, then per packet a 16-byte record header (seconds,
micro- or nanoseconds, captured length, original length) and the bytes.
pcapng (draft-ietf-opsawg-pcapng): blocks; netbpf writes a Section Header
Block, one Interface Description Block per interface (with ``if_name`` and
``if_tsresol``) and Enhanced Packet Blocks. tcpdump, tshark and Wireshark
read both.

Records may also be written by the kernel (netbpf dump writes them in BPF);
:func:`pcap_records` and :func:`pcapng_records` walk such spans of whole
records without copying them.
"""
from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple

LINKTYPE_ETHERNET = 1
PCAP_MAGIC_MICRO = 0xA1B2C3D4
PCAP_MAGIC_NANO = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_IDB = 0x00000001
PCAPNG_SPB = 0x00000003
PCAPNG_EPB = 0x00000006
PCAPNG_OPB = 0x00000002  # the obsolete Packet Block
PCAPNG_BYTE_ORDER = 0x1A2B3C4D
OPT_ENDOFOPT, OPT_COMMENT = 0, 1
SHB_USERAPPL = 4
IF_NAME, IF_TSRESOL = 2, 9

_record = struct.Struct("<IIII")
_epb = struct.Struct("<IIIIIII")


class PcapFormatError(ValueError):
    pass


def pcap_file_header(snaplen: int, linktype: int = LINKTYPE_ETHERNET, nano: bool = False) -> bytes:
    magic = PCAP_MAGIC_NANO if nano else PCAP_MAGIC_MICRO
    return struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + bytes(-len(value) % 4)


def _block(block_type: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)


def pcapng_file_header(interfaces: list[str], snaplen: int, linktype: int = LINKTYPE_ETHERNET,
                       nano: bool = False, application: str = "netbpf") -> bytes:
    """A Section Header Block and one Interface Description Block per interface
    (the interface id of a packet is its index in ``interfaces``)."""
    shb_options = _option(SHB_USERAPPL, application.encode()) + _option(OPT_ENDOFOPT, b"")
    out = _block(PCAPNG_SHB, struct.pack("<IHHq", PCAPNG_BYTE_ORDER, 1, 0, -1) + shb_options)
    for name in interfaces:
        out += pcapng_interface(name, snaplen, linktype, nano)
    return out


def pcapng_interface(name: str, snaplen: int, linktype: int = LINKTYPE_ETHERNET, nano: bool = False) -> bytes:
    """An Interface Description Block (with ``if_name`` and ``if_tsresol``)."""
    options = (_option(IF_NAME, name.encode()) + _option(IF_TSRESOL, bytes([9 if nano else 6]))
               + _option(OPT_ENDOFOPT, b""))
    return _block(PCAPNG_IDB, struct.pack("<HHI", linktype, 0, snaplen) + options)


def pcap_record(ts_ns: int, data: bytes, orig_len: int | None = None, nano: bool = False) -> bytes:
    sec, frac = divmod(ts_ns, 1_000_000_000)
    return _record.pack(sec, frac if nano else frac // 1000, len(data),
                        len(data) if orig_len is None else orig_len) + data


def pcapng_record(ts_ns: int, data: bytes, orig_len: int | None = None, nano: bool = False,
                  interface: int = 0, options: bytes = b"") -> bytes:
    """An Enhanced Packet Block; ``options`` as they stand in the block (padded, ended)."""
    units = ts_ns if nano else ts_ns // 1000
    padded = data + bytes(-len(data) % 4)
    length = 32 + len(padded) + len(options)
    return (_epb.pack(PCAPNG_EPB, length, interface, units >> 32, units & 0xFFFFFFFF, len(data),
                      len(data) if orig_len is None else orig_len) + padded + options + struct.pack("<I", length))


class Packet(NamedTuple):
    """One packet of a file (a tuple: a file's packets are made by the hundred thousand)."""

    ts_ns: int
    data: bytes
    orig_len: int
    interface: int = 0
    linktype: int = LINKTYPE_ETHERNET


# -- walking spans of records (as the kernel writes them: little-endian) -----------------

def pcap_records(span: memoryview | bytes, nano: bool) -> Iterator[tuple[int, int, int, int]]:
    """(ts_ns, offset of the data, captured length, original length) of each record."""
    pos, end = 0, len(span)
    unpack = _record.unpack_from
    scale = 1 if nano else 1000
    while pos + 16 <= end:
        sec, frac, caplen, length = unpack(span, pos)
        yield sec * 1_000_000_000 + frac * scale, pos + 16, caplen, length
        pos += 16 + caplen


def pcapng_records(span: memoryview | bytes, nano: bool) -> Iterator[tuple[int, int, int, int]]:
    """The same for Enhanced Packet Blocks (other blocks are skipped)."""
    pos, end = 0, len(span)
    unpack = _epb.unpack_from
    scale = 1 if nano else 1000
    while pos + 32 <= end:
        block_type, length, _iface, high, low, caplen, orig = unpack(span, pos)
        if block_type == PCAPNG_EPB:
            yield ((high << 32) | low) * scale, pos + 28, caplen, orig
        if length < 12:
            raise PcapFormatError(f"pcapng block of length {length}")
        pos += length


def count_records(span: memoryview | bytes, pcapng: bool, limit: int) -> tuple[int, int]:
    """How many whole records (at most ``limit``) the span holds, and their bytes."""
    pos, end, n = 0, len(span), 0
    if pcapng:
        while n < limit and pos + 8 <= end:
            pos += struct.unpack_from("<I", span, pos + 4)[0]
            n += 1
    else:
        while n < limit and pos + 16 <= end:
            pos += 16 + struct.unpack_from("<I", span, pos + 8)[0]
            n += 1
    return n, pos


# -- reading files -------------------------------------------------------------------------
#
# A file is read as libpcap reads it: one record at a time (memory does not grow
# with the file), every whole record is handed out, and damage ends the reading
# with a reason and the offset where it was found (``Reader.stopped``), never an
# exception halfway through. Only a file whose start is not pcap/pcapng raises.

MAX_CAPLEN = 262144  # libpcap's largest snapshot length for Ethernet and most link types
MAX_BLOCK = 16 << 20  # libpcap's largest pcapng block
CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Interface:
    linktype: int
    snaplen: int
    unit_ns: int  # nanoseconds per time stamp unit
    name: str = ""


class Reader:
    """Packets of a pcap or pcapng file, streamed. ``stopped`` says why it ended early.

        reader = Reader(open(path, "rb"))     # PcapFormatError: not a capture file at all
        for packet in reader: ...
        if reader.stopped: print(reader.stopped)     # "truncated record at offset 4242: ..."
    """

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self._buf = b""
        self._pos = 0  # into _buf
        self._base = 0  # file offset of _buf[0]
        self.stopped = ""
        self.interfaces: list[Interface] = []
        self.nano = False
        head = self._take(4)
        if len(head) < 4:
            raise PcapFormatError(f"truncated file: tried to read 4 file header bytes, only got {len(head)}")
        (magic,) = struct.unpack("<I", head)
        self.pcapng = magic == PCAPNG_SHB
        if self.pcapng:
            self._order = "<"
            self._first_section()
        else:
            self._pcap_header(head)

    # the file, through a buffer (one read() per CHUNK, not per record)
    def _take(self, n: int) -> bytes:
        if self._pos + n > len(self._buf):
            parts = [self._buf[self._pos:]]
            have = len(parts[0])
            # read1: what a pipe has now, so that a live stream is not held back for a chunk
            read = getattr(self._f, "read1", self._f.read)
            while have < n:
                more = read(max(CHUNK, n - have))
                if not more:
                    break
                parts.append(more)
                have += len(more)
            self._base += self._pos
            self._buf, self._pos = b"".join(parts), 0
        out = self._buf[self._pos:self._pos + n]
        self._pos += len(out)
        return out

    @property
    def big_endian(self) -> bool:
        """The byte order of the file (of its current section): libpcap compiles DLT_NULL's by it."""
        return self._order == ">"

    @property
    def offset(self) -> int:
        return self._base + self._pos

    @property
    def linktype(self) -> int:
        return self.interfaces[0].linktype if self.interfaces else LINKTYPE_ETHERNET

    @property
    def snaplen(self) -> int:
        return self.interfaces[0].snaplen if self.interfaces else MAX_CAPLEN

    # pcap
    def _pcap_header(self, head: bytes) -> None:
        for order in ("<", ">"):
            (magic,) = struct.unpack(order + "I", head)
            if magic in (PCAP_MAGIC_MICRO, PCAP_MAGIC_NANO):
                break
        else:
            raise PcapFormatError(f"unknown file format (magic {head.hex()})")
        rest = self._take(20)
        if len(rest) < 20:
            raise PcapFormatError(f"truncated file: tried to read 24 file header bytes, only got {4 + len(rest)}")
        self._order = order
        self.nano = magic == PCAP_MAGIC_NANO
        major, _minor, _zone, _sigfigs, snaplen, linktype = struct.unpack(order + "HHiIII", rest)
        if major != 2:
            raise PcapFormatError(f"pcap version {major} is not supported (2 is)")
        self.interfaces = [Interface(linktype & 0x0FFFFFFF, snaplen, 1 if self.nano else 1000)]

    def _pcap_packets(self) -> Iterator[Packet]:
        header = struct.Struct(self._order + "IIII")
        iface = self.interfaces[0]
        scale, linktype = iface.unit_ns, iface.linktype
        limit = max(MAX_CAPLEN, iface.snaplen)
        unpack = header.unpack_from
        while True:
            # Fast path: the whole records already in the buffer, without _take per record.
            buf, pos = self._buf, self._pos
            end = len(buf)
            while pos + 16 <= end:
                sec, frac, caplen, length = unpack(buf, pos)
                after = pos + 16 + caplen
                if caplen > limit or after > end:
                    break
                yield Packet(sec * 1_000_000_000 + frac * scale, buf[pos + 16:after], length, 0, linktype)
                pos = after
            self._pos = pos
            # One record across the end of the buffer (or damage), through _take.
            at = self.offset
            raw = self._take(16)
            if not raw:
                return
            if len(raw) < 16:
                self.stopped = (f"truncated record header at offset {at}: "
                                f"tried to read 16 header bytes, only got {len(raw)}")
                return
            sec, frac, caplen, length = header.unpack(raw)
            if caplen > limit:
                self.stopped = (f"bad record at offset {at}: captured length {caplen} "
                                f"is bigger than the largest snapshot length ({limit})")
                return
            data = self._take(caplen)
            if len(data) < caplen:
                self.stopped = (f"truncated record at offset {at}: "
                                f"tried to read {caplen} captured bytes, only got {len(data)}")
                return
            yield Packet(sec * 1_000_000_000 + frac * scale, data, length, 0, linktype)

    # pcapng
    def _block(self) -> tuple[int, bytes, int] | None:
        """(type, body, offset) of the next block; None at the end (``stopped`` set if damaged)."""
        at = self.offset
        raw = self._take(8)
        if not raw:
            return None
        if len(raw) < 8:
            self.stopped = f"truncated block at offset {at}: tried to read 8 bytes, only got {len(raw)}"
            return None
        block_type, length = struct.unpack(self._order + "II", raw)
        if block_type == PCAPNG_SHB:
            bom = self._take(4)
            if len(bom) < 4:
                self.stopped = f"truncated section header at offset {at}"
                return None
            self._order = "<" if struct.unpack("<I", bom)[0] == PCAPNG_BYTE_ORDER else ">"
            if struct.unpack(self._order + "I", bom)[0] != PCAPNG_BYTE_ORDER:
                self.stopped = f"bad section header at offset {at}: byte-order magic {bom.hex()}"
                return None
            block_type, length = struct.unpack(self._order + "II", raw)
            body_prefix = bom
        else:
            body_prefix = b""
        if length < 12 or length % 4 or length > MAX_BLOCK:
            self.stopped = f"bad block at offset {at}: block length {length}"
            return None
        rest = self._take(length - 8 - len(body_prefix))
        if len(rest) < length - 8 - len(body_prefix):
            self.stopped = (f"truncated block at offset {at}: tried to read {length} bytes, "
                            f"only got {8 + len(body_prefix) + len(rest)}")
            return None
        body = body_prefix + rest[:-4]
        (trailer,) = struct.unpack(self._order + "I", rest[-4:])
        if trailer != length:
            self.stopped = f"bad block at offset {at}: length {length} at its start, {trailer} at its end"
            return None
        return block_type, body, at

    def _first_section(self) -> None:
        self._pos = 0  # the magic again: it is the block type
        block = self._block()
        if block is None or block[0] != PCAPNG_SHB:
            raise PcapFormatError(self.stopped or "not a pcapng file")
        self._section(block[1], block[2])
        self._pending: list[tuple[int, bytes, int]] = []
        # Read up to the first packet so that the link type is known before any packet.
        while not self.stopped:
            block = self._block()
            if block is None:
                break
            if block[0] == PCAPNG_IDB:
                if not self._interface(block[1], block[2]):
                    break
            else:
                self._pending.append(block)
                if block[0] in (PCAPNG_EPB, PCAPNG_SPB, PCAPNG_OPB):
                    break

    def _section(self, body: bytes, at: int) -> None:
        if len(body) < 16:
            self.stopped = f"bad section header at offset {at}: {len(body) + 12} bytes"
            return
        major = struct.unpack_from(self._order + "H", body, 4)[0]
        if major != 1:
            self.stopped = f"bad section header at offset {at}: pcapng version {major}"
        self.interfaces = []

    def _interface(self, body: bytes, at: int) -> bool:
        if len(body) < 8:
            self.stopped = f"bad interface description at offset {at}: {len(body) + 12} bytes"
            return False
        linktype, _, snaplen = struct.unpack_from(self._order + "HHI", body)
        try:
            unit, name = _idb_options(body[8:], self._order)
        except PcapFormatError as e:
            self.stopped = f"bad interface description at offset {at}: {e}"
            return False
        self.interfaces.append(Interface(linktype, snaplen, unit, name))
        return True

    def _pcapng_packets(self) -> Iterator[Packet]:
        while not self.stopped:
            block = self._pending.pop(0) if self._pending else self._block()
            if block is None:
                return
            block_type, body, at = block
            if block_type == PCAPNG_SHB:
                self._section(body, at)
            elif block_type == PCAPNG_IDB:
                self._interface(body, at)
            elif block_type in (PCAPNG_EPB, PCAPNG_OPB):
                if len(body) < 20:
                    self.stopped = f"bad packet block at offset {at}: {len(body) + 12} bytes"
                    return
                if block_type == PCAPNG_EPB:
                    iface, high, low, caplen, orig = struct.unpack_from(self._order + "IIIII", body)
                else:  # obsolete Packet Block: 16-bit interface id and drops count
                    iface, _, high, low, caplen, orig = struct.unpack_from(self._order + "HHIIII", body)
                    body = body[4:]
                if iface >= len(self.interfaces):
                    self.stopped = (f"bad packet block at offset {at}: interface {iface} has no "
                                    f"interface description ({len(self.interfaces)} so far)")
                    return
                if caplen > len(body) - 20:
                    self.stopped = (f"bad packet block at offset {at}: captured length {caplen} "
                                    f"is longer than the block")
                    return
                info = self.interfaces[iface]
                yield Packet(((high << 32) | low) * info.unit_ns, body[20:20 + caplen], orig, iface,
                             info.linktype)
            elif block_type == PCAPNG_SPB:
                if not self.interfaces:
                    self.stopped = f"bad simple packet block at offset {at}: no interface description"
                    return
                if len(body) < 4:
                    self.stopped = f"bad simple packet block at offset {at}: {len(body) + 12} bytes"
                    return
                (orig,) = struct.unpack_from(self._order + "I", body)
                info = self.interfaces[0]
                caplen = min(orig, len(body) - 4, info.snaplen or orig)
                yield Packet(0, body[4:4 + caplen], orig, 0, info.linktype)
            # other blocks (statistics, name resolution, custom...) carry no packets

    def __iter__(self) -> Iterator[Packet]:
        if self.stopped:
            return iter(())
        return self._pcapng_packets() if self.pcapng else self._pcap_packets()


def open_reader(path: str) -> tuple[Reader, BinaryIO]:
    """A Reader on ``path`` (``-``: standard input) and the file to close after it."""
    import sys

    f: BinaryIO = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115 - closed by caller
    try:
        return Reader(f), f
    except BaseException:
        if f is not sys.stdin.buffer:
            f.close()
        raise


def read(source: bytes | BinaryIO | str) -> list[Packet]:
    """Every packet of a pcap or pcapng file (path, open file or bytes); damage raises."""
    import io

    if isinstance(source, str):
        with open(source, "rb") as f:
            return read(f)
    if isinstance(source, bytes | bytearray):
        source = io.BytesIO(bytes(source))
    reader = Reader(source)
    packets = list(reader)
    if reader.stopped:
        raise PcapFormatError(reader.stopped)
    return packets


def _idb_options(options: bytes, order: str) -> tuple[int, str]:
    """(ns per time stamp unit, if_name) from an Interface Description Block's options."""
    pos, unit, name = 0, 1000, ""
    while pos + 4 <= len(options):
        code, length = struct.unpack_from(order + "HH", options, pos)
        if code == OPT_ENDOFOPT:
            break
        value = options[pos + 4:pos + 4 + length]
        if len(value) < length:
            raise PcapFormatError(f"option {code} runs past the block")
        if code == IF_TSRESOL and length >= 1:
            exponent = value[0] & 0x7F
            if value[0] & 0x80:  # a power of 2
                if exponent > 30:
                    raise PcapFormatError(f"time stamp resolution 2^-{exponent} is not supported")
                unit = max(1, 1_000_000_000 >> exponent)
            elif exponent > 9:
                raise PcapFormatError(f"time stamp resolution 10^-{exponent} is finer than nanoseconds")
            else:
                unit = 10 ** (9 - exponent)
        elif code == IF_NAME:
            name = value.decode(errors="replace")
        pos += 4 + length + (-length % 4)
    return unit, name
