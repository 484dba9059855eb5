"""Per-transaction records from the kernel (``emit.h``): the lines and ``--json``
without reassembling a stream in user space.

When the kernel follows a connection, each paired transaction reaches user
space as one fixed-size ``struct http_record`` read from the ``records`` ring
buffer: method, the target cut to ``TARGET_MAX`` bytes, Host (``HOST_MAX``),
the ``--tag-header`` value (``TAG_MAX``, the name found in the first
``HEAD_MAX`` bytes of a head that is whole in one segment), status, body
sizes, the kernel's timestamps and the endpoints with the outermost tunnel.
A cut string ends with ``…`` (never in a request line on the wire): what is
shown is a prefix, never presented as the whole. Secrets are redacted here
as the user-space path redacts them (``netbpf.packet.redact``) unless
``--show-secrets``. What the ring could not take is counted by the kernel
(``records_lost``), per backend too.
"""
from __future__ import annotations

import ctypes
import struct
import time
from collections.abc import Callable

from ...bpf import BpfObject
from ...bpf.ringbuf import RingBuffer
from ...packet.decap import Tunnel, format_endpoint
from ...packet.http import Exchange, Request, Response
from ...packet.redact import redact, redact_target
from .kernel import BPF_OBJECT as BPF_OBJECT  # test_layouts checks Record against it
from .tracer import Transaction

METHOD_MAX, TARGET_MAX, HOST_MAX, TAG_MAX = 8, 128, 64, 64
TARGET_CUT, HOST_CUT, TAG_CUT, HAS_TAG, REQ_BODY_UNKNOWN, HAS_HOST, NOT_FOLLOWED = 1, 2, 4, 8, 16, 32, 64
CUT = "\u2026"
NO_RESPONSE = "connection closed unanswered"  # the server's FIN or a reset, request outstanding
CLOSED_MID_RESPONSE = "connection closed mid-response"  # its status was seen, not its end
# The kernel lost track of the connection (a gap, reordering) after counting the request:
# its status is unknown (UNPAIRED in the table).
RESPONSE_NOT_FOLLOWED = "response not followed (the kernel lost track of the connection)"
UNKNOWN = -1  # a size the kernel does not keep: shown as "-" / null (report.py)
ENCAP = {1: "ipip", 2: "vxlan"}


class Record(ctypes.Structure):
    """``struct http_record`` (http.h)."""

    _c_name_ = "http_record"
    _fields_ = [("req_ts", ctypes.c_uint64), ("resp_ts", ctypes.c_uint64), ("end_ts", ctypes.c_uint64),
                ("req_body", ctypes.c_uint64), ("resp_body", ctypes.c_uint64),
                ("client", ctypes.c_uint8 * 16), ("server", ctypes.c_uint8 * 16),
                ("outer_src", ctypes.c_uint8 * 16), ("outer_dst", ctypes.c_uint8 * 16),
                ("isn", ctypes.c_uint32), ("vni", ctypes.c_uint32),
                ("cport", ctypes.c_uint16), ("sport", ctypes.c_uint16), ("status", ctypes.c_uint16),
                ("target_len", ctypes.c_uint16),
                ("family", ctypes.c_uint8), ("encap", ctypes.c_uint8), ("outer_family", ctypes.c_uint8),
                ("flags", ctypes.c_uint8), ("method_len", ctypes.c_uint8), ("host_len", ctypes.c_uint8),
                ("tag_len", ctypes.c_uint8), ("pad", ctypes.c_uint8),
                ("method", ctypes.c_char * METHOD_MAX), ("target", ctypes.c_char * TARGET_MAX),
                ("host", ctypes.c_char * HOST_MAX), ("tag", ctypes.c_char * TAG_MAX)]


SHARED_STRUCTS = (Record,)
# The same layout for struct.unpack_from: a record is decoded in one call.
_RECORD = struct.Struct(f"<5Q16s16s16s16sIIHHHHBBBBBBBx{METHOD_MAX}s{TARGET_MAX}s{HOST_MAX}s{TAG_MAX}s")
assert _RECORD.size == ctypes.sizeof(Record)


def _ip(raw: bytes, family: int) -> bytes:
    return raw[:4] if family == 4 else raw


def _text(raw: bytes, n: int, cut: bool) -> str:
    text = raw[:n].decode("latin-1")  # as the user-space path decodes heads
    return text + CUT if cut else text


class RecordDecoder:
    """Raw records to :class:`Transaction` objects, as the user-space path makes them."""

    def __init__(self, tag_header: str | None, show_secrets: bool) -> None:
        self.tag_header = tag_header
        self.show_secrets = show_secrets
        # bpf_ktime_get_ns() is CLOCK_MONOTONIC: its offset to the wall clock, once.
        self.offset = time.time() - time.clock_gettime(time.CLOCK_MONOTONIC)
        self._names: dict[tuple[bytes, int], str] = {}

    def _endpoint(self, raw: bytes, family: int, port: int) -> str:
        key = (raw, port)
        name = self._names.get(key)
        if name is None:
            if len(self._names) > 65536:
                self._names.clear()
            name = self._names[key] = format_endpoint(_ip(raw, family), port)
        return name

    def transaction(self, raw: bytes) -> Transaction:
        (req_ts, resp_ts, end_ts, req_body, resp_body, client, server, outer_src, outer_dst, _isn, vni,
         cport, sport, status, target_len, family, encap, outer_family, flags, method_len, host_len,
         tag_len, method, target, host, tag) = _RECORD.unpack_from(raw)
        off = self.offset
        first, head, last = req_ts / 1e9 + off, resp_ts / 1e9 + off, end_ts / 1e9 + off
        path = _text(target, target_len, bool(flags & TARGET_CUT))
        value: str | None = None
        if flags & HAS_TAG:
            value = _text(tag, tag_len, bool(flags & TAG_CUT)).strip(" \t")
        if not self.show_secrets:
            path = redact_target(path)
            if value is not None and self.tag_header:
                value = redact(self.tag_header, value)
        request = Request(method[:method_len].decode("latin-1"), path, "HTTP/1",
                          _text(host, host_len, bool(flags & HOST_CUT)).strip(" \t"), (),
                          UNKNOWN if flags & REQ_BODY_UNKNOWN else req_body, UNKNOWN, False, first, first, value)
        # end_ts 0: the connection closed before the response ended (or began: status 0).
        response = Response(status, "", "HTTP/1", (), resp_body, UNKNOWN, False, head, last) \
            if end_ts else None
        error = ("" if end_ts else RESPONSE_NOT_FOLLOWED if flags & NOT_FOLLOWED
                 else CLOSED_MID_RESPONSE if status else NO_RESPONSE)
        tunnel = None
        if encap:
            tunnel = Tunnel(ENCAP[encap], _ip(outer_src, outer_family), _ip(outer_dst, outer_family),
                            vni if encap == 2 else None)
        return Transaction(Exchange(request, response, error), self._endpoint(client, family, cport),
                           self._endpoint(server, family, sport), tunnel)


class RecordReader:
    """The ``records`` ring of a loaded object, decoded."""

    def __init__(self, obj: BpfObject, decoder: RecordDecoder) -> None:
        self.ring = RingBuffer(obj.map("records"), obj.map("records_lost"))
        self.decoder = decoder
        self.read = 0

    def poll(self, on_transaction: Callable[[Transaction], None], timeout: float) -> None:
        batch = self.ring.poll(timeout, max_bytes=4 << 20)
        decode = self.decoder.transaction
        for raw in batch:
            on_transaction(decode(raw))
        self.read += len(batch)

    def drain(self, on_transaction: Callable[[Transaction], None]) -> None:
        while self.ring.pending():
            before = self.read
            self.poll(on_transaction, 0)
            if self.read == before:
                break

    def close(self) -> None:
        self.ring.release()


def ring_bytes(kib: int) -> int:
    """A ring buffer's size: a power of two of at least one page."""
    size = max(kib << 10, 4096)
    return 1 << (size - 1).bit_length()

