"""Load the capture program, put it on the hook, hand out the ring; undo it all on close.

At XDP, an interface may already run a program. The capture program then
stands in front of it: it takes the original by id (never reloading a file),
keeps it in slot 0 of its ``xdp_original`` PROG_ARRAY and tail-calls it after
each packet, and replaces it atomically (netlink XDP_FLAGS_REPLACE, or
bpf_link_update when a BPF link holds it), in the original's own mode. The
PROG_ARRAY is pinned, so a SIGKILL leaves the original running behind the
capture program, and ``netbpf cleanup`` puts it back. On close the original
goes back the same way: same program id, same mode, no moment without it.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ... import netdev, netns, privilege
from ...attrib.tracker import Tracker
from ...bpf import BpfObject, object_path
from ...bpf.attach import tc, xdp, xdp_front
from ...bpf.attach.base import Attachment
from ...bpf.fs import pin_dir, remove_empty_dirs
from ...bpf.maps import possible_cpus
from ...bpf.program import Program
from ...errors import InterfaceNotFound, NotSupported, UsageError
from ...run import Run
from .attribution import OPTIONS_BYTES, AttribOptions, configure
from .ring import BlockRing, DumpBlock, DumpRing, Geometry

BPF_OBJECT = "dump.bpf.o"
SHARED_STRUCTS = (DumpRing, DumpBlock)

Hook = Literal["xdp", "tc-ingress", "tc-egress"]
HOOKS = ("xdp", "tc-ingress", "tc-egress")
MAX_SNAPLEN = 262144
DUMP_PCAP, DUMP_PCAPNG = 0, 1
SEEN, MATCHED, LOST = 0, 1, 2
ARPHRD_ETHER, ARPHRD_LOOPBACK = 1, 772
_TAG_WORDS = {"vlan"}


@dataclass(frozen=True, slots=True)
class CaptureOptions:
    interface: str
    hook: Hook = "xdp"
    snaplen: int = MAX_SNAPLEN
    expression: str = ""
    pcapng: bool = False
    nano: bool = False
    buffer_bytes: int = 4 << 20  # per CPU
    xdp_mode: xdp.Mode = "auto"  # when the hook is empty; else the original's mode
    attribution: AttribOptions | None = None  # find each packet's process (attribution.py)
    owner_comments: bool = False  # pcapng: the kernel writes each owner as the packet's comment

    def __post_init__(self) -> None:
        if self.hook not in HOOKS:
            raise UsageError(f"--hook must be one of {', '.join(HOOKS)}")
        if self.hook != "xdp" and _TAG_WORDS & set(self.expression.replace("(", " ").replace(")", " ").split()):
            # On receive (and with TX offload) the kernel keeps the VLAN tag in the skb,
            # outside the frame a tc program's filter reads; libpcap compiles "vlan" for
            # tags inside it. The capture puts the tag back, the filter cannot see it.
            raise UsageError("at tc the kernel holds VLAN tags outside the frame, where the filter "
                             "cannot see them: use --hook xdp for vlan expressions")
        if self.snaplen <= 0:
            raise UsageError("snap length must be positive")

    @property
    def snap(self) -> int:
        return min(self.snaplen, MAX_SNAPLEN)


def compile_expression(expression: str, snaplen: int, hook: str = "xdp", interface: str = "") -> bytes | None:
    """The eBPF body for netbpf_filter(), or None to keep every packet."""
    if not expression.strip():
        return None
    from ...packet.filter import compile_filter, hook_facts  # libpcap, loaded only when needed

    try:
        index = netdev.ifindex(interface) if interface else 0
    except InterfaceNotFound:
        index = 0  # the attach says so, in its own words; "ifindex N" is then refused
    return compile_filter(expression, snaplen, ancillary=hook_facts(hook, index),
                          hook=f"at --hook {hook}").ebpf


def _reads_length(expression: str, snaplen: int) -> bool:
    """Whether the classic program loads the packet length (BPF_LD|BPF_LEN, BPF_LDX|BPF_LEN)."""
    from ...packet.libpcap import compile_classic

    return any(code & 0x07 in (0, 1) and code & 0xE0 == 0x80
               for code, _, _, _ in compile_classic(expression, snaplen).insns)


def link_type(interface: str) -> int:
    """Only Ethernet framing is captured (and filtered) as tcpdump's DLT_EN10MB."""
    try:
        arphrd = int(Path(f"/sys/class/net/{interface}/type").read_text())
    except (OSError, ValueError):
        return ARPHRD_ETHER  # sysfs of another namespace: the attach will tell
    if arphrd not in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
        raise UsageError(f"{interface} is not an Ethernet interface (ARPHRD {arphrd}): "
                         "netbpf dump captures Ethernet frames")
    return 1


class Capture:
    """One capture session. ``start()``, then ``ring``/``counters()``; ``stop()`` detaches."""

    def __init__(self, options: CaptureOptions) -> None:
        self.options = options
        extra = OPTIONS_BYTES if options.attribution is not None and options.pcapng else 0
        self.geometry = Geometry(options.snap, options.buffer_bytes, possible_cpus(), extra)
        self.tracker: Tracker | None = None
        self.ring: BlockRing | None = None
        self.obj: BpfObject | None = None
        self.original: Program | None = None  # the XDP program we stand in front of
        self.original_mode = ""
        self.attachment: Attachment | None = None
        self.pin_path: Path | None = None
        self.ifindex = 0  # the interface as it was at start: a new one of the same name is not ours
        self.left = ""  # how the capture program left the XDP path (netbpf.bpf.attach.xdp_front)
        self._run = Run()
        self._code = compile_expression(options.expression, options.snap, options.hook, options.interface)
        self._reads_length = bool(options.expression.strip()) and _reads_length(options.expression, options.snap)

    # -- loading ------------------------------------------------------------------------
    def _open(self, expected_attach_type: int | None = None) -> BpfObject:
        o, g = self.options, self.geometry
        run = Run()  # the caller closes the object
        with run.starting():
            obj = run.open(object_path(__file__, BPF_OBJECT))
            name = "netbpf_dump_xdp" if o.hook == "xdp" else "netbpf_dump_tc"
            obj.load_only(name)
            prog = obj.program(name)
            obj.set_rodata(snap=g.snap, fill_limit=g.fill_limit, block_mask=g.blocks_per_cpu - 1,
                           format=DUMP_PCAPNG if o.pcapng else DUMP_PCAP, nano=int(o.nano),
                           pull_len=self._pull_len())
            configure(obj, o.attribution, self.tracker, o.hook == "tc-egress", o.owner_comments)
            obj.set_map_size("rings", g.cpus)
            obj.set_map_size("blocks", g.cpus * g.blocks_per_cpu)
            obj.set_value_size("blocks", g.block_size)
            if self._code is not None:
                from ...bpf.inject import set_code

                set_code(prog, self._code)
            if expected_attach_type is not None:
                prog.set_expected_attach_type(expected_attach_type)
            obj.load()
        return obj

    def interrupt(self) -> None:
        """Wake a wait on the ring (a stop signal): the loop then looks at why."""
        if self.ring is not None:
            self.ring.interrupt()

    def _pull_len(self) -> int:
        """tc: how many bytes the filter may read, made linear before it runs (0: none).

        The filter reads only linear data, and libpcap's ``len`` (also ``less`` and
        ``greater``) is the packet's whole length: then the whole packet is made linear.
        """
        if self._code is None or self.options.hook == "xdp":
            return 0
        return 0xFFFFFFFF if self._reads_length else self.geometry.snap

    def load_only(self) -> BpfObject:
        """The capture object loaded but attached nowhere (for probes); the caller closes it."""
        return self._open()

    @property
    def program(self) -> Program:
        assert self.obj is not None
        return self.obj.program("netbpf_dump_xdp" if self.options.hook == "xdp" else "netbpf_dump_tc")

    def start(self) -> Capture:
        run = self._run
        with run.starting():  # a failure undoes what was made so far, last first
            if self.options.attribution is not None:
                # Before the capture program: it shares the tracker's maps.
                sel = self.options.attribution.selection
                self.tracker = run.enter(Tracker(sel))
                if self.options.owner_comments:
                    self.tracker.keep_labels()
            if self.options.hook == "xdp":
                self._start_xdp()
            else:
                self._start_tc()
            assert self.obj is not None
            self.ring = run.reader(BlockRing(self.obj.map("rings"), self.obj.map("blocks"),
                                             self.obj.map("wakeups"), self.geometry))
        return self

    def _loaded(self, obj: BpfObject) -> BpfObject:
        self.obj = obj
        self._run.callback(obj.close)
        self._run.callback(self.stop)  # detach (and unpin) before the object closes
        return obj

    def _start_tc(self) -> None:
        self.ifindex = netdev.ifindex(self.options.interface)
        self._loaded(self._open())
        direction: tc.Direction = "ingress" if self.options.hook == "tc-ingress" else "egress"
        self.attachment = tc.attach_tc(self.program, tc.TcOptions(self.options.interface, direction))

    def _start_xdp(self) -> None:
        iface = self.options.interface
        self.ifindex = netdev.ifindex(iface)
        state = xdp.query(self.ifindex)
        if not state.prog_id:
            self._loaded(self._open())
            self.attachment = xdp_front.stand_in_front(self.program, state, None, self.options.xdp_mode)
            return
        if state.mode not in ("drv", "skb"):
            raise NotSupported(f"capture in front of an XDP program attached in {state.mode} mode")
        self.original = Program.from_id(state.prog_id)
        self._run.callback(self.original.close)
        self.original_mode = state.mode
        self._loaded(xdp_front.load_in_front(self._open, self.original)[0])
        self.pin_path = self._pin_original()
        self.attachment = xdp_front.stand_in_front(self.program, state, self.original)

    def _pin_original(self) -> Path:
        """Pin xdp_original in this process's own directory (see xdp_front.pin_original)."""
        assert self.obj is not None
        index = netdev.ifindex(self.options.interface)
        label = netns.label(netns.current_inode()).replace("/", "_")
        directory = pin_dir("dump", f"{label}_{self.options.interface}_{index}_{os.getpid()}")
        return xdp_front.pin_original(self.obj.map("xdp_original"), directory)

    # -- running --------------------------------------------------------------------------
    def counters(self) -> tuple[int, int, int]:
        """(seen, matched, lost) so far, exact (per-CPU counters of the program)."""
        assert self.obj is not None
        counters = self.obj.map("counters")
        return counters.sum_u64(SEEN), counters.sum_u64(MATCHED), counters.sum_u64(LOST)

    def interface_present(self) -> bool:
        """Is the interface we capture on still there (deleted: its hooks went with it)?"""
        try:
            return netdev.ifindex(self.ifindex) == self.ifindex
        except InterfaceNotFound:
            return False

    def stop(self) -> None:
        """Detach (XDP: put the original back as it was, or step out from behind
        whoever stands in front of us now). Records already committed stay in
        the ring for a last drain."""
        if self.attachment is not None and not self.attachment.closed:
            if not self.interface_present():
                self.attachment.release()  # the kernel detached everything with the interface
                self.left = f"{self.options.interface} is gone (deleted while capturing)"
            elif self.options.hook == "xdp":
                assert self.obj is not None
                try:
                    self.left = xdp_front.leave(self.ifindex, self.program, self.obj.map("xdp_original"))
                finally:
                    self.attachment.release()
            else:
                self.attachment.close()
            # A program that started before the detach may still be writing
            # its record on another CPU: let it finish before the last drain.
            time.sleep(0.05)
        if self.pin_path is not None:
            # The pin directory is root's (0700): after -Z, only CAP_DAC_OVERRIDE unpins.
            with privilege.raised(privilege.CAP_DAC_OVERRIDE):
                shutil.rmtree(self.pin_path.parent, ignore_errors=True)  # this process's own directory
                remove_empty_dirs(self.pin_path.parent.parent)  # dump/, netbpf/, unless others live there
            self.pin_path = None

    def close(self) -> None:
        """After ``stop()`` and the last drain: the ring, the object, the original's fd, the tracker."""
        self._run.close()
        self.tracker = self.ring = self.obj = self.original = None

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            self.close()

