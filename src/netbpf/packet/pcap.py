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
from typing import BinaryIO

LINKTYPE_ETHERNET = 1
PCAP_MAGIC_MICRO = 0xA1B2C3D4
PCAP_MAGIC_NANO = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_IDB = 0x00000001
PCAPNG_SPB = 0x00000003
PCAPNG_EPB = 0x00000006
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
        options = (_option(IF_NAME, name.encode()) + _option(IF_TSRESOL, bytes([9 if nano else 6]))
                   + _option(OPT_ENDOFOPT, b""))
        out += _block(PCAPNG_IDB, struct.pack("<HHI", linktype, 0, snaplen) + options)
    return out


def pcap_record(ts_ns: int, data: bytes, orig_len: int | None = None, nano: bool = False) -> bytes:
    sec, frac = divmod(ts_ns, 1_000_000_000)
    return _record.pack(sec, frac if nano else frac // 1000, len(data),
                        len(data) if orig_len is None else orig_len) + data


def pcapng_record(ts_ns: int, data: bytes, orig_len: int | None = None, nano: bool = False,
                  interface: int = 0) -> bytes:
    units = ts_ns if nano else ts_ns // 1000
    padded = data + bytes(-len(data) % 4)
    length = 32 + len(padded)
    return _epb.pack(PCAPNG_EPB, length, interface, units >> 32, units & 0xFFFFFFFF, len(data),
                     len(data) if orig_len is None else orig_len) + padded + struct.pack("<I", length)


@dataclass(frozen=True, slots=True)
class Packet:
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

def read(source: bytes | BinaryIO | str) -> list[Packet]:
    """Every packet of a pcap or pcapng file (path, open file or bytes)."""
    if isinstance(source, str):
        with open(source, "rb") as f:
            data = f.read()
    elif isinstance(source, bytes | bytearray):
        data = bytes(source)
    else:
        data = source.read()
    if len(data) < 4:
        raise PcapFormatError("not a pcap file: too short")
    (magic,) = struct.unpack_from("<I", data)
    if magic == PCAPNG_SHB:
        return list(_read_pcapng(data))
    return list(_read_pcap(data))


def _read_pcap(data: bytes) -> Iterator[Packet]:
    for order in ("<", ">"):
        (magic,) = struct.unpack_from(order + "I", data)
        if magic in (PCAP_MAGIC_MICRO, PCAP_MAGIC_NANO):
            break
    else:
        raise PcapFormatError(f"not a pcap file: magic {data[:4].hex()}")
    scale = 1 if magic == PCAP_MAGIC_NANO else 1000
    linktype = struct.unpack_from(order + "I", data, 20)[0] & 0x0FFFFFFF
    header = struct.Struct(order + "IIII")
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, caplen, length = header.unpack_from(data, pos)
        pos += 16
        if pos + caplen > len(data):
            raise PcapFormatError(f"truncated record at offset {pos - 16}")
        yield Packet(sec * 1_000_000_000 + frac * scale, data[pos:pos + caplen], length, 0, linktype)
        pos += caplen


def _read_pcapng(data: bytes) -> Iterator[Packet]:
    pos, order = 0, "<"
    interfaces: list[tuple[int, int]] = []  # (linktype, ns per unit)
    while pos + 12 <= len(data):
        block_type, length = struct.unpack_from(order + "II", data, pos)
        if block_type == PCAPNG_SHB:
            (bom,) = struct.unpack_from("<I", data, pos + 8)
            order = "<" if bom == PCAPNG_BYTE_ORDER else ">"
            block_type, length = struct.unpack_from(order + "II", data, pos)
            interfaces = []
        if length < 12 or pos + length > len(data):
            raise PcapFormatError(f"bad pcapng block at offset {pos}")
        body = data[pos + 8:pos + length - 4]
        if block_type == PCAPNG_IDB:
            linktype = struct.unpack_from(order + "H", body)[0]
            interfaces.append((linktype, _tsresol_ns(body[8:], order)))
        elif block_type == PCAPNG_EPB:
            iface, high, low, caplen, orig = struct.unpack_from(order + "IIIII", body)
            linktype, unit = interfaces[iface]
            yield Packet(((high << 32) | low) * unit, body[20:20 + caplen], orig, iface, linktype)
        elif block_type == PCAPNG_SPB:
            (orig,) = struct.unpack_from(order + "I", body)
            linktype, _ = interfaces[0]
            yield Packet(0, body[4:4 + orig], orig, 0, linktype)
        pos += length


def _tsresol_ns(options: bytes, order: str) -> int:
    pos = 0
    while pos + 4 <= len(options):
        code, length = struct.unpack_from(order + "HH", options, pos)
        if code == OPT_ENDOFOPT:
            break
        if code == IF_TSRESOL and length >= 1:
            value = options[pos + 4]
            if value & 0x80:
                raise PcapFormatError("binary if_tsresol is not supported")
            return max(1, 10 ** (9 - value)) if value <= 9 else 1
        pos += 4 + length + (-length % 4)
    return 1000  # default: microseconds
