"""``netbpf dump``'s side of attribution: the options, the capture object's
settings, and sinks that turn each record's owner into a comment or JSON.

With attribution on, the capture program looks up each packet's socket
(netbpf/attrib.h) and applies --pid, --comm, --cgroup, --container after the
tcpdump expression: a packet is kept only if it matches both. In pcapng
records (files, and internally for lines and JSON) it writes the owner as a
local-use option of the Enhanced Packet Block, which the sinks here decode;
a pcapng file gets an opt_comment written by the kernel itself (tshark:
``frame.comment``), from cgroup labels the tracker keeps in a map, so that a
file costs Python nothing per packet. A pcap file (no options in its format)
gets the filters, not the owners.
"""
from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from ...errors import NetbpfError, UsageError
from ...packet import pcap
from .sinks import Sink

if TYPE_CHECKING:  # imported where used: dump's parser (add_arguments) must not load libbpf
    from ...attrib.tracker import Owner, Owners, Selection, Tracker
    from ...bpf import BpfObject
    from ...packet.tcpdump import TcpdumpPrinter

OPTION_CODE = 0x8A77  # ATTRIB_OPTION_CODE
RECORD_SIZE = 48  # sizeof(struct attrib_record)
COMMENT_MAX = 640  # ATTRIB_COMMENT_MAX


def owner_option(record: bytes) -> bytes:
    """A packet's owner as dump.bpf.c writes it into the block: the option, then end of options."""
    return struct.pack("<HH", OPTION_CODE, len(record)) + record + bytes(4)
# Room after a packet: the binary owner (4 + RECORD_SIZE) or the comment, then opt_endofopt.
OPTIONS_BYTES = 4 + max(RECORD_SIZE, COMMENT_MAX) + 4
LABEL_MISSES = 5  # ATTRIB_LABEL_MISSES
COMM_LEN = 16
_epb = struct.Struct("<IIIIIII")


@dataclass(frozen=True, slots=True)
class AttribOptions:
    pid: int = 0
    comm: str = ""
    selection: Selection | None = None  # --cgroup / --container
    selection_text: str = ""  # as the user wrote it

    def __post_init__(self) -> None:
        if len(os.fsencode(self.comm)) >= COMM_LEN:
            raise UsageError(f"--comm {self.comm}: the kernel keeps {COMM_LEN - 1} bytes of a command")

    @property
    def filters(self) -> bool:
        return bool(self.pid or self.comm or self.selection)

    def describe(self) -> str:
        parts = [f"pid {self.pid}"] if self.pid else []
        parts += [f"comm {self.comm}"] if self.comm else []
        parts += [self.selection_text] if self.selection else []
        return " and ".join(parts)


def configure(obj: BpfObject, options: AttribOptions | None, tracker: Tracker | None, egress: bool,
              comments: bool) -> None:
    """Before load: the capture object's attribution globals and maps.
    ``comments``: the kernel writes each owner as opt_comment text (pcapng files)."""
    if options is None or tracker is None:
        for name in ("attrib_socks", "attrib_comms", "attrib_labels"):
            obj.set_map_size(name, 1)  # unused: no 64K-entry LRU per capture
        return
    obj.set_rodata(attrib=1, attrib_text=int(comments), want_pid=options.pid, want_comm=int(bool(options.comm)),
                   want_comm_name=os.fsencode(options.comm).ljust(COMM_LEN, b"\0"),
                   want_selected=int(options.selection is not None), egress=int(egress))
    tracker.share_maps(obj)


def attrib_counts(obj: BpfObject) -> dict[int, int]:
    """Kept packets by enum attrib_status (counted before the process filters)."""
    counters = obj.map("attrib_counters")
    return {status: counters.sum_u64(status) for status in range(LABEL_MISSES + 1)}


def summary(counts: dict[int, int]) -> str:
    """The exit line's attribution part: every packet's answer is counted."""
    from ...attrib.tracker import STATUS_TEXT

    text = ", ".join([f"{counts.get(0, 0)} with their process"]
                     + [f"{counts.get(s, 0)} {text}" for s, text in STATUS_TEXT.items()])
    if counts.get(LABEL_MISSES):
        text += (f"; {counts[LABEL_MISSES]} comments name a cgroup by its id "
                 "(made after the last walk of the cgroup tree)")
    return text


# -- records ------------------------------------------------------------------------------

def epb_records(span: memoryview | bytes, nano: bool) -> list[tuple[int, int, int, int, int, int]]:
    """(ts_ns, start, block length, caplen, orig_len, offset of the binary owner or -1) per EPB."""
    out = []
    pos, end = 0, len(span)
    scale = 1 if nano else 1000
    while pos + 32 <= end:
        block_type, length, _iface, high, low, caplen, orig = _epb.unpack_from(span, pos)
        if length < 12:
            raise pcap.PcapFormatError(f"pcapng block of length {length}")
        if block_type == pcap.PCAPNG_EPB:
            opt = pos + 28 + ((caplen + 3) & ~3)
            owner = -1
            if opt + 4 + RECORD_SIZE + 4 <= pos + length - 4:
                code, size = struct.unpack_from("<HH", span, opt)
                if code == OPTION_CODE and size == RECORD_SIZE:
                    owner = opt + 4
            out.append((((high << 32) | low) * scale, pos, length, caplen, orig, owner))
        pos += length
    return out


class OwnerDecodingSink(Sink):
    """Lines or JSON, each packet with its owner (records are pcapng here).

    A socket's packets carry the same owner record: it is decoded and made
    into text or JSON fields (:meth:`render`) once, then reused by its bytes."""

    SEEN_MAX = 4096  # owner records remembered

    def __init__(self, owners: Owners, count: int | None) -> None:
        from ...attrib.tracker import OWNER, Owner

        super().__init__(count)
        self.owners = owners
        self._owned = OWNER
        self._batch: list[tuple[int, bytes, int, Any]] = []
        self._seen: dict[bytes, Any] = {}
        self._none = self.render(Owner(-1))

    def _rendered(self, raw: bytes) -> Any:
        done = self._seen.get(raw)
        if done is None:
            who = self.owners.owner(raw)
            done = self.render(who)
            # A cgroup not found yet may be by the next walk of the tree: not kept.
            if who.status != self._owned or who.cgroup is not None:
                if len(self._seen) >= self.SEEN_MAX:
                    self._seen.clear()
                self._seen[raw] = done
        return done

    def write(self, span: memoryview) -> None:
        rendered, none = self._rendered, self._none
        for ts, start, _length, caplen, orig, owner in epb_records(span, True):
            who = rendered(bytes(span[owner:owner + RECORD_SIZE])) if owner >= 0 else none
            self._batch.append((ts, bytes(span[start + 28:start + 28 + caplen]), orig, who))

    def flush(self) -> None:
        batch, self._batch = self._batch, []
        batch.sort(key=lambda r: r[0])
        for i, (ts, data, length, who) in enumerate(batch):
            if self.done:
                break
            self.written += 1
            try:
                self.emit(ts, data, length, who)
            except BaseException:
                self._batch = batch[i + 1:]
                raise
        self.flush_output()

    def render(self, who: Owner) -> Any:
        """What :meth:`emit` writes of an owner (made once per owner record)."""
        raise NotImplementedError

    def emit(self, ts_ns: int, data: bytes, length: int, who: Any) -> None:
        raise NotImplementedError

    def flush_output(self) -> None:
        pass


class OwnerTextSink(OwnerDecodingSink):
    def __init__(self, printer: TcpdumpPrinter, stream: TextIO, owners: Owners, count: int | None) -> None:
        super().__init__(owners, count)
        self.printer, self.stream = printer, stream

    def render(self, who: Owner) -> str:
        return f" [{who.comment()}]\n"

    def emit(self, ts_ns: int, data: bytes, length: int, who: str) -> None:
        self.stream.write(self.printer.line(ts_ns, data, length) + who)

    def flush_output(self) -> None:
        self.stream.flush()


class OwnerJsonSink(OwnerDecodingSink):
    def __init__(self, printer: TcpdumpPrinter, stream: TextIO, owners: Owners, count: int | None,
                 context: dict[str, Any]) -> None:
        super().__init__(owners, count)
        self.printer, self.stream, self.context = printer, stream, context

    def render(self, who: Owner) -> dict[str, object]:
        return who.fields()

    def emit(self, ts_ns: int, data: bytes, length: int, who: dict[str, object]) -> None:
        from ...packet.tcpdump import format_time

        summary_text, fields = self.printer.describe(data, length)
        record = {"ts": ts_ns / 1e9, "time": format_time(ts_ns, nano=True), **self.context,
                  **fields, **who, "summary": summary_text}
        self.stream.write(json.dumps(record) + "\n")

    def flush_output(self) -> None:
        self.stream.flush()


# -- command line -------------------------------------------------------------------------

def add_arguments(parser: Any) -> None:
    g = parser.add_argument_group("process and container (attribution)")
    g.add_argument("--process", action="store_true",
                   help="show each packet's process, cgroup and container (lines, --json, pcapng comments)")
    g.add_argument("--pid", type=_pid, default=0, metavar="PID",
                   help="only packets of sockets that process PID made (or had open at start)")
    g.add_argument("--comm", default="", metavar="NAME", help="only packets of processes whose command is NAME")
    g.add_argument("--cgroup", metavar="PATH",
                   help="only packets of processes in cgroup PATH (v2, under its mount or from it) or below")
    g.add_argument("--container", metavar="ID",
                   help="only packets of the container ID (Docker, containerd, CRI-O, Podman; 4+ digits)")


def _pid(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        import argparse

        raise argparse.ArgumentTypeError(f"not a process id: {text!r}")
    return value


def options_from(args: Any) -> AttribOptions | None:
    """The attribution asked for on the command line, or None (the capture without it)."""
    if args.cgroup and args.container:
        raise UsageError("--cgroup and --container do not go together (a container is one cgroup)")
    if not (args.process or args.pid or args.comm or args.cgroup or args.container):
        return None
    if args.pid and not os.path.exists(f"/proc/{args.pid}"):
        # A mistyped pid would capture nothing, silently, until the capture ends.
        raise NetbpfError(f"--pid {args.pid}: no such process")
    from ...attrib.tracker import select_cgroup, select_container

    selection, text = None, ""
    if args.cgroup:
        selection, text = select_cgroup(args.cgroup), f"cgroup {args.cgroup}"
    elif args.container:
        selection, text = select_container(args.container), f"container {args.container}"
    return AttribOptions(args.pid, args.comm, selection, text)
