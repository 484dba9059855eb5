"""The fault program from Python: what to do (``Fault``), where (``Hook``), and
the running fault (``ActiveFault``): loaded, attached, counted, detached.

    fault = Fault(Action.TCP_FLAGS, set_flags=TCP_FLAGS["PSH"], expression="tcp port 5201",
                  selection=Selection(mode="sample", probability=0.1))
    with ActiveFault.start(fault, Hook("eth0", "egress")) as active:
        print(active.counts())

Egress runs in tc (tcx, else clsact + cls_bpf). Ingress runs in XDP where
the driver runs it natively and the hook is free; in tc ingress on a veth
(where XDP turns off the peer's GSO), on devices with only generic XDP, and
for ``duplicate``, which needs an skb. Every
attachment is a link or a netlink filter that ``close()`` removes, so the
fault never outlives its process unless it is pinned (``pin()``): then the
links stay under /sys/fs/bpf/netbpf/fault/NETNS/IFACE/DIRECTION until
``stop()`` or ``netbpf cleanup``.
"""
from __future__ import annotations

import ctypes
import enum
import errno as _errno
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ... import netdev, netns
from ...bpf import fs
from ...bpf.attach import tc, xdp
from ...bpf.attach.base import Attachment, Link
from ...bpf.maps import Map
from ...bpf.object import BpfObject, object_path
from ...bpf.program import Program
from ...errors import BpfError, NetbpfError, NotSupported, UsageError
from ...run import Run
from . import ifinfo

if TYPE_CHECKING:
    from ...packet.filter import CompiledFilter

BPF_OBJECT = "fault.bpf.o"
XDP_PROGRAM, TC_PROGRAM = "netbpf_faultxdp", "netbpf_fault_tc"
# cls_bpf filters (kernels without tcx) sit at this priority/handle, so that
# `netbpf fault stop` finds its own filter and nobody else's.
CLS_BPF_PRIORITY, CLS_BPF_HANDLE = 1, 0xFA17
PIN_SUBDIR = "fault"


class FaultFlow(ctypes.Structure):
    _c_name_ = "fault_flow"
    _fields_ = [
        ("addr_a", ctypes.c_uint32 * 4),
        ("addr_b", ctypes.c_uint32 * 4),
        ("port_a", ctypes.c_uint16),
        ("port_b", ctypes.c_uint16),
        ("family", ctypes.c_uint8),
        ("protocol", ctypes.c_uint8),
        ("_pad", ctypes.c_uint16),
    ]


SHARED_STRUCTS = (FaultFlow,)


class Counter(enum.IntEnum):
    SEEN = 0
    MATCHED = 1
    SKIPPED = 2
    HIT = 3
    ERRORS = 4


class Action(enum.IntEnum):
    TTL = 1
    TCP_FLAGS = 2
    DROP = 3
    CORRUPT = 4
    DUPLICATE = 5
    RST = 6

    @property
    def cli_name(self) -> str:
        return self.name.lower().replace("_", "-")


ACTIONS = {a.cli_name: a for a in Action}
TC_ONLY = {Action.DUPLICATE}

TCP_FLAGS = {"FIN": 0x01, "SYN": 0x02, "RST": 0x04, "PSH": 0x08, "ACK": 0x10, "URG": 0x20,
             "ECE": 0x40, "CWR": 0x80}
CONTROL_FLAGS = TCP_FLAGS["SYN"] | TCP_FLAGS["FIN"] | TCP_FLAGS["RST"]
TTL_RANDOM = 256
MAX_CORRUPT_BYTES = 64
DEFAULT_FLOWS = 65536


def parse_tcp_flags(text: str) -> int:
    """``PSH``, ``psh,ack``, ``SYN+ACK`` or ``none`` as a flag byte."""
    if text.strip().lower() == "none":
        return 0
    bits = 0
    for name in text.replace("+", ",").replace("|", ",").split(","):
        name = name.strip().upper()
        if name not in TCP_FLAGS:
            raise UsageError(f"unknown TCP flag {name!r} (use {' '.join(TCP_FLAGS)})")
        bits |= TCP_FLAGS[name]
    return bits


def flag_names(bits: int) -> str:
    return ",".join(name for name, bit in TCP_FLAGS.items() if bits & bit) or "none"


def default_skip(set_flags: int, clear_flags: int) -> int:
    """Segments left alone unless the user says otherwise: SYN, FIN and RST ones,
    as in the seed's program (which also skipped PSH segments: setting PSH on
    them would change nothing, so they never count as matched anyway), unless
    the change itself names one of those flags."""
    return 0 if (set_flags | clear_flags) & CONTROL_FLAGS else CONTROL_FLAGS


@dataclass(frozen=True, slots=True)
class Selection:
    """Which of the matched packets are hit."""

    mode: Literal["all", "sample", "every", "first-per-flow"] = "all"
    probability: float = 1.0  # sample: each matched packet is hit with this probability
    every: int = 1  # every: the Nth, 2Nth, ... matched packet (counted across CPUs)
    limit: int = 0  # stop hitting after this many (0: never)
    flows: int = DEFAULT_FLOWS  # first-per-flow: connections remembered (LRU)

    def __post_init__(self) -> None:
        if self.mode not in ("all", "sample", "every", "first-per-flow"):
            raise UsageError(f"unknown selection {self.mode!r}")
        if not 0.0 <= self.probability <= 1.0:
            raise UsageError("--probability must be between 0 and 1")
        if self.every < 1 or self.limit < 0 or self.flows < 1:
            raise UsageError("--every, --limit and --flows take positive numbers")

    @property
    def threshold(self) -> int:
        """bpf_get_prandom_u32() below this hits; 2**32 always does."""
        return min(1 << 32, round(self.probability * (1 << 32)))

    def describe(self, expression: str = "") -> str:
        """Which packets, in words: "1 in 10 packets matching 'tcp'"."""
        matching = f" matching '{expression}'" if expression else ""
        if self.mode == "sample":
            p = self.probability
            if p and abs(1 / p - round(1 / p)) < 1e-9 and round(1 / p) > 1:
                text = f"1 in {round(1 / p)} packets{matching}"
            else:
                text = f"{100 * p:.4g}% of packets{matching}"
        elif self.mode == "every" and self.every > 1:
            text = f"every {_ordinal(self.every)} packet{matching}"
        elif self.mode == "first-per-flow":
            text = f"the first packet{matching} of each connection"
        else:
            text = f"every packet{matching}"
        if self.limit:
            text += f", at most {self.limit}"
        return text


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


@dataclass(frozen=True, slots=True)
class Fault:
    """What to do to which packets."""

    action: Action
    expression: str = ""
    selection: Selection = field(default_factory=Selection)
    ttl: int | None = None  # ttl: the value; None: random in 1..current
    set_flags: int = 0
    clear_flags: int = 0
    skip_flags: int | None = None  # None: default_skip()
    corrupt_bytes: int = 1
    keep_checksum: bool = False

    def __post_init__(self) -> None:
        if self.ttl is not None and not 0 <= self.ttl <= 255:
            raise UsageError("--value must be 0..255")
        if self.action == Action.TCP_FLAGS:
            if not self.set_flags and not self.clear_flags:
                raise UsageError("tcp-flags needs --set and/or --clear (e.g. --set PSH)")
            if self.set_flags & self.clear_flags:
                raise UsageError(f"{flag_names(self.set_flags & self.clear_flags)} both set and cleared")
        if not 1 <= self.corrupt_bytes <= MAX_CORRUPT_BYTES:
            raise UsageError(f"--bytes must be 1..{MAX_CORRUPT_BYTES}")

    @property
    def skip(self) -> int:
        if self.skip_flags is not None:
            return self.skip_flags
        return default_skip(self.set_flags, self.clear_flags)

    def rodata(self, tc_ingress: bool) -> dict[str, int]:
        sel = self.selection
        mode = {"all": 0, "sample": 1, "every": 2, "first-per-flow": 3}[sel.mode]
        return {
            "fault_action": int(self.action),
            "select_mode": mode,
            "sample_threshold": sel.threshold,
            "every_nth": sel.every,
            "hit_limit": sel.limit,
            "ttl_value": TTL_RANDOM if self.ttl is None else self.ttl,
            "tcp_set": self.set_flags,
            "tcp_clear": self.clear_flags,
            "tcp_skip": self.skip,
            "corrupt_len": self.corrupt_bytes,
            "corrupt_keep_csum": int(self.keep_checksum),
            "tc_ingress": int(tc_ingress),
        }

    def describe(self) -> str:
        """The action in the words of the command line."""
        a = self.action
        if a == Action.TTL:
            what = "ttl " + ("random in 1..current" if self.ttl is None else f"set to {self.ttl}")
        elif a == Action.TCP_FLAGS:
            parts = []
            if self.set_flags:
                parts.append(f"--set {flag_names(self.set_flags)}")
            if self.clear_flags:
                parts.append(f"--clear {flag_names(self.clear_flags)}")
            what = "tcp-flags " + " ".join(parts)
            if self.skip:
                what += f" (skipping {flag_names(self.skip)} segments)"
        elif a == Action.CORRUPT:
            what = (f"corrupt {self.corrupt_bytes} payload byte{'s' if self.corrupt_bytes > 1 else ''}, "
                    + ("checksum kept valid" if self.keep_checksum else "bad checksum"))
        else:
            what = a.cli_name
        return f"{what}, on {self.selection.describe(self.expression)}"


@dataclass(frozen=True, slots=True)
class Hook:
    """Where a fault is attached. ``kind`` "auto": see ActiveFault.start."""

    interface: str
    direction: Literal["ingress", "egress"] = "ingress"
    kind: Literal["auto", "xdp", "tc"] = "auto"
    xdp_mode: xdp.Mode = "auto"
    tc_mode: tc.TcMode = "auto"

    def __post_init__(self) -> None:
        if self.direction not in ("ingress", "egress"):
            raise UsageError("--direction is ingress or egress")
        if self.kind == "xdp" and self.direction == "egress":
            raise UsageError("XDP sees received packets only: egress faults run in tc (--hook tc)")


@dataclass(frozen=True, slots=True)
class Counts:
    seen: int = 0
    matched: int = 0
    skipped: int = 0
    hit: int = 0
    errors: int = 0

    @classmethod
    def read(cls, counters: Map) -> Counts:
        return cls(*(counters.sum_u64(int(c)) for c in Counter))

    def as_dict(self) -> dict[str, int]:
        return {"seen": self.seen, "matched": self.matched, "skipped": self.skipped,
                "hit": self.hit, "errors": self.errors}

    def summary(self) -> str:
        share = f" ({100 * self.hit / self.matched:.1f}% of matched)" if self.matched else ""
        return (f"{self.seen} seen, {self.matched} matched, {self.hit} hit{share}, "
                f"{self.skipped} skipped, {self.errors} errors")


def compile_expression(expression: str) -> CompiledFilter:
    """The tcpdump expression, compiled for netbpf_filter()."""
    from ...packet.filter import compile_filter

    return compile_filter(expression, snaplen=65535)


def open_object(fault: Fault, kind: Literal["xdp", "tc"], tc_ingress: bool = False,
                run: Run | None = None) -> BpfObject:
    """The fault object, configured for one hook kind, not loaded yet (closed with ``run``)."""
    if kind == "xdp" and fault.action in TC_ONLY:
        raise UsageError(f"{fault.action.cli_name} needs an skb: it runs in tc only (--hook tc)")
    run = run if run is not None else Run()
    with run.starting():
        obj = run.open(object_path(__file__, BPF_OBJECT))
        obj.set_rodata(**fault.rodata(tc_ingress))
        first_per_flow = fault.selection.mode == "first-per-flow"
        obj.set_map_size("flows", fault.selection.flows if first_per_flow else 1)
        keep = XDP_PROGRAM if kind == "xdp" else TC_PROGRAM
        for name, prog in obj.programs.items():
            prog.set_autoload(name == keep)
        if fault.expression:
            from ...bpf.inject import set_code

            compiled = compile_expression(fault.expression)
            set_code(obj.program(keep), compiled.ebpf)
            if kind == "tc":
                from ...packet.cbpf import filter_reach

                obj.set_rodata(**filter_reach(compiled.classic.insns))
    return obj


def _check_link_layer(interface: str) -> None:
    # The expression and the parser read an Ethernet header (lo has a zeroed one).
    try:
        kind = ifinfo.link_type(interface)
    except OSError:
        return  # the attach will tell
    if kind not in (ifinfo.ARPHRD_ETHER, ifinfo.ARPHRD_LOOPBACK):
        raise UsageError(f"{interface} has no Ethernet header (ARPHRD {kind}): netbpf fault "
                         "handles Ethernet interfaces only")


def checksum_note(fault: Fault, hook: Hook) -> str:
    """Why a bad checksum may go unnoticed here, when it may."""
    if fault.action != Action.CORRUPT or fault.keep_checksum or ifinfo.driver(hook.interface) != "veth":
        return ""
    if hook.direction == "egress" and not ifinfo.tx_checksum(hook.interface):
        return ""
    return ("on a veth, packets from local sockets carry only a partial checksum (CHECKSUM_PARTIAL) "
            "that the receiving namespace never verifies, so they arrive damaged rather than dropped; "
            "the sender computes real checksums after `ethtool -K <its veth> tx off`")


class ActiveFault:
    """A fault loaded and attached; ``close()`` detaches it and unloads it."""

    def __init__(self, fault: Fault, hook: Hook, kind: str, run: Run, obj: BpfObject,
                 attachment: Attachment, note: str = "") -> None:
        self.fault, self.hook, self.kind = fault, hook, kind
        self.obj, self.attachment, self.note = obj, attachment, note
        self.pinned_at: Path | None = None
        self._run = run
        run.callback(self._detach)  # before the run's own close of the attachment and the object
        try:  # the index, not the name: a new interface of the same name is not ours
            self.ifindex = netdev.ifindex(hook.interface)
        except NetbpfError:
            self.ifindex = 0  # deleted right after the attach: the kernel detached it

    def interface_present(self) -> bool:
        """Still there? Deleting an interface takes its hooks (and our program) along."""
        try:
            return netdev.ifindex(self.ifindex) == self.ifindex
        except NetbpfError:
            return False

    @classmethod
    def start(cls, fault: Fault, hook: Hook) -> ActiveFault:
        netdev.ifindex(hook.interface)  # InterfaceNotFound before anything is loaded
        _check_link_layer(hook.interface)
        if hook.kind == "xdp" and fault.action in TC_ONLY:
            raise UsageError(f"{fault.action.cli_name} needs an skb: it runs in tc only (--hook tc)")
        notes = [checksum_note(fault, hook)]
        kind = hook.kind
        if kind == "auto":
            kind = "tc" if hook.direction == "egress" or fault.action in TC_ONLY else "xdp"
            if kind == "xdp" and ifinfo.driver(hook.interface) == "veth":
                kind = "tc"
                notes.append(f"{hook.interface} is a veth, where XDP turns off the peer's GSO and copies every "
                             "frame (an empty XDP program costs most of a TCP flow's throughput): using tc "
                             "ingress, which runs after tcpdump sees the packet; --hook xdp forces XDP")
        if kind == "xdp":
            # auto: native XDP only; generic XDP would copy every GSO packet, tc is cheaper.
            mode = hook.xdp_mode if hook.kind == "xdp" else "drv"
            run = Run()
            try:
                with run.starting():  # a refused attach undoes the load before the tc try
                    obj = open_object(fault, "xdp", run=run)
                    obj.load()
                    link = run.attach(xdp.attach_xdp(obj.program(XDP_PROGRAM), xdp.XdpOptions(hook.interface, mode)))
                    state = xdp.query(hook.interface)
                    return cls(fault, hook, f"xdp {state.mode}", run, obj, link, "; ".join(filter(None, notes)))
            except BaseException as e:
                if hook.kind == "xdp":
                    if isinstance(e, BpfError) and e.errno == _errno.EBUSY:
                        state = xdp.query(hook.interface)
                        raise UsageError(f"the XDP hook of {hook.interface} holds program id {state.prog_id}: "
                                         "--hook tc runs after it") from e
                    raise
                if isinstance(e, BpfError) and e.errno == _errno.EBUSY:
                    state = xdp.query(hook.interface)
                    notes.append(f"the XDP hook of {hook.interface} holds program id {state.prog_id}: "
                                 "using tc ingress, which sees what that program passes")
                elif isinstance(e, NotSupported):
                    notes.append(f"{hook.interface} has no native XDP: using tc ingress "
                                 "(--hook xdp --xdp-mode skb forces generic XDP)")
                else:
                    raise
                kind = "tc"
        run = Run()
        with run.starting():
            obj = open_object(fault, "tc", tc_ingress=hook.direction == "ingress", run=run)
            obj.load()
            att = run.attach(tc.attach_tc(obj.program(TC_PROGRAM),
                                          tc.TcOptions(hook.interface, hook.direction, hook.tc_mode,
                                                       priority=CLS_BPF_PRIORITY, handle=CLS_BPF_HANDLE)))
            return cls(fault, hook, att.kind, run, obj, att, "; ".join(filter(None, notes)))

    @property
    def where(self) -> str:
        return f"{self.hook.interface} {self.hook.direction} ({self.kind})"

    def counts(self) -> Counts:
        return Counts.read(self.obj.map("counters"))

    def pin(self) -> Path:
        """Keep the fault after this process exits (``stop()`` removes it)."""
        directory = check_pin_free(self.hook.interface, self.hook.direction)
        fs.owned_dir(directory)  # root's, 0700, every level: else refused
        try:
            if isinstance(self.attachment, Link):
                self.attachment.pin(directory / "link")
            else:  # cls_bpf: the filter stays by itself; pin the program to find it again
                self.obj.program(TC_PROGRAM).pin(str(directory / "prog"))
            self.obj.map("counters").pin(directory / "counters")
        except BaseException:
            _remove_dir(directory)
            raise
        self.pinned_at = directory
        return directory

    def close(self) -> None:
        """Detach (a pinned fault stays) and unload."""
        self._run.close()

    def _detach(self) -> None:
        if self.pinned_at is None and not self.interface_present():
            self.attachment.release()  # the kernel detached it with the interface
        elif self.pinned_at is None:
            self.attachment.close()
        elif isinstance(self.attachment, Link):
            os.close(self.attachment.fd)  # the pin holds the link now
            self.attachment.closed = True
        else:
            self.attachment.release()  # cls_bpf: the filter stays by itself, found by its pinned program

    def __enter__(self) -> ActiveFault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- pinned faults ------------------------------------------------------------------

def pin_root() -> Path:
    return fs.PIN_ROOT / PIN_SUBDIR


def pin_path(interface: str, direction: str) -> Path:
    label = netns.label(netns.current_inode())
    fs.ensure_bpffs()
    return pin_root() / label / interface / direction


def check_pin_free(interface: str, direction: str) -> Path:
    """The pin directory for a fault there; UsageError if one is pinned there already."""
    directory = pin_path(interface, direction)
    try:
        fs.owned_dir(directory, create=False)
    except FileNotFoundError:
        return directory
    if any(directory.iterdir()):
        raise UsageError(f"a pinned fault is already on {interface} {direction}: "
                         f"netbpf fault stop -i {interface} first")
    return directory


@dataclass(frozen=True, slots=True)
class PinnedFault:
    path: Path
    netns: str
    interface: str
    direction: str

    @property
    def where(self) -> str:
        where = f"{self.interface} {self.direction}"
        return where if self.netns == "host" else f"{where} in {self.netns}"


def pinned() -> list[PinnedFault]:
    root = pin_root()
    try:
        fs.owned_dir(root, create=False)  # NotOurs: another user's directory, not read
    except FileNotFoundError:
        return []
    found = []
    for directory in sorted(root.glob("*/*/*")):
        if directory.is_dir():
            label, interface, direction = directory.relative_to(root).parts
            found.append(PinnedFault(directory, label, interface, direction))
    return found


def stop(interface: str | None = None, direction: str | None = None) -> list[tuple[PinnedFault, Counts]]:
    """Remove pinned faults (all, or those on ``interface`` in this namespace)."""
    here = netns.label(netns.current_inode())
    chosen = [p for p in pinned()
              if (interface is None or (p.interface == interface and p.netns == here))
              and (direction is None or p.direction == direction)]
    for p in chosen:  # all checked before any is touched
        front = _standing_in_front(p.path / "link")
        if front:
            raise NetbpfError(f"the fault on {p.interface} {p.direction} has {front} standing in front of it "
                              "in its XDP link (a netbpf dump or xdp chain): stop that first (`netbpf status` "
                              "names who holds it), then `netbpf fault stop`")
    stopped = []
    for p in chosen:
        counts = Counts()
        if (p.path / "counters").exists():
            with Map.from_pin(p.path / "counters") as counters:
                counts = Counts.read(counters)
        if (p.path / "link").exists():
            _detach_pinned_link(p.path / "link")
        if (p.path / "prog").exists():
            _delete_cls_bpf(p)
        _remove_dir(p.path)
        stopped.append((p, counts))
    return stopped


def _standing_in_front(path: Path) -> str:
    """The program a netbpf dump or chain put in a pinned XDP fault's link, in front of the
    fault, which it tail-calls ("" if the fault's own program is there). Detaching the link
    would take that program off the hook with the fault, leaving a live dump capturing
    nothing and never told."""
    if not path.exists():
        return ""
    with Link.from_pin(path) as link:
        info = link.info()
    if info.type != "xdp":
        return ""
    try:
        prog = Program.from_id(info.prog_id)
    except NetbpfError:
        return ""  # gone in between: nothing stands there
    try:
        name = prog.name
    finally:
        prog.close()
    return "" if name.startswith("netbpf_fault") else f"XDP program {name} id {info.prog_id}"


def _detach_pinned_link(path: Path) -> None:
    with Link.from_pin(path) as link:
        link.description = f"pinned fault {path}"
        link.detach(gone_ok=True)


def _namespace_path(label: str) -> str:
    if label == "host":
        return "/proc/1/ns/net"
    if label.startswith("netns:["):
        inode = int(label[7:-1])
        path = netns.all_namespaces().get(inode)
        if path is None:
            raise NetbpfError(f"network namespace {label} is gone")
        return path
    return str(netns.NETNS_RUN_DIR / label)


def _delete_cls_bpf(p: PinnedFault) -> None:
    prog = Program.from_pin(str(p.path / "prog"))
    try:
        prog_id = prog.id
    finally:
        prog.close()

    def delete() -> None:
        out = subprocess.run(["tc", "-j", "filter", "show", "dev", p.interface, p.direction],
                             capture_output=True, text=True, check=False).stdout
        for f in json.loads(out or "[]"):
            options = f.get("options") or {}
            if (options.get("prog") or {}).get("id") == prog_id:
                subprocess.run(["tc", "filter", "del", "dev", p.interface, p.direction, "pref",
                                str(f["pref"]), "handle", str(options["handle"]), "bpf"],
                               capture_output=True, text=True, check=True)
    if not shutil.which("tc"):
        raise NetbpfError("tc (iproute2) is needed to remove a cls_bpf fault")
    netns.run_in(_namespace_path(p.netns), delete)


def _remove_dir(directory: Path) -> None:
    for f in directory.iterdir():
        f.unlink()
    fs.remove_empty_dirs(directory)
