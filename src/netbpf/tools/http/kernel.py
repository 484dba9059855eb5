"""The http tool's BPF object: its configuration (``struct http_config``), its counters, and
opening it configured for one hook (``open_object``)."""
from __future__ import annotations

import ctypes
import enum
from collections.abc import Iterable

from ...bpf import BpfObject
from ...bpf.features import has_may_goto
from ...bpf.maps import possible_cpus
from ...bpf.object import object_path
from ...errors import UsageError
from ...run import Run

BPF_OBJECT = "http.bpf.o"
BPF_LOOP_OBJECT = "http_bpf_loop.bpf.o"  # the head scan by bpf_loop(): kernels before 6.9 (no may_goto)
MAX_PORTS, MAX_IFINDEXES, MAX_VXLAN_PORTS = 16, 8, 4
TAG_NAME_MAX = 31  # --tag-header's name, found in the kernel (http.h)
DEFAULT_VXLAN_PORTS = (4789, 8472)  # IANA's, and Linux's/Flannel's default


class Counter(enum.IntEnum):
    """``enum http_counter`` of http.h."""

    FRAMES_SEEN = 0
    FRAMES_KEPT = 1
    BYTES_KEPT = 2
    ACKS_SKIPPED = 3
    OTHER_IFACE = 4
    KEPT_IPIP = 5
    KEPT_VXLAN = 6
    PROTO_TCP = 7
    PROTO_UDP = 8
    PROTO_ICMP = 9
    PROTO_OTHER = 10
    NOT_IP = 11
    MALFORMED = 12
    K_SEGMENTS = 13
    K_REQUESTS = 14
    K_RESPONSES = 15
    K_INTERIM = 16
    K_RETRANSMITTED = 17
    K_CONNECTIONS = 18
    K_MIDSTREAM = 19
    K_LOST_GAP = 20
    K_LOST_HEAD_SPLIT = 21
    K_LOST_HEAD_LONG = 22
    K_LOST_NOT_HTTP = 23
    K_LOST_LENGTH = 24
    K_LOST_CHUNK = 25
    K_LOST_PIPELINE = 26
    K_LOST_STEPS = 27
    K_LOST_UNSYNCED = 28
    K_ORPHANS = 29
    K_HTTP2 = 30
    K_TLS = 31
    K_TUNNELS = 32
    K_HANDED_OFF = 33
    K_RECORDS = 34
    K_RECORDS_LOST = 35
    K_RECORDS_MISSING = 36
    K_BACKENDS_FULL = 37


N_COUNTERS = len(Counter)


class Config(ctypes.Structure):
    """``struct http_config``: what the filter keeps, frozen at load."""

    _c_name_ = "http_config"
    _fields_ = [
        ("ports", ctypes.c_uint16 * MAX_PORTS),
        ("n_ports", ctypes.c_uint32),
        ("ifindexes", ctypes.c_uint32 * MAX_IFINDEXES),
        ("n_ifindexes", ctypes.c_uint32),
        ("vxlan_ports", ctypes.c_uint16 * MAX_VXLAN_PORTS),
        ("n_vxlan_ports", ctypes.c_uint32),
        ("keep_acks", ctypes.c_uint32),
        ("count_in_kernel", ctypes.c_uint32),
        ("hand_off", ctypes.c_uint32),
        ("records", ctypes.c_uint32),
        ("tag_len", ctypes.c_uint32),
        ("tag_name", ctypes.c_uint64 * ((TAG_NAME_MAX + 1) // 8)),
    ]


SHARED_STRUCTS = (Config,)


def make_config(ports: Iterable[int], ifindexes: Iterable[int] = (),
                vxlan_ports: Iterable[int] = DEFAULT_VXLAN_PORTS, keep_acks: bool = False,
                count_in_kernel: bool = False, hand_off: bool = False, records: bool = False,
                tag_header: str | None = None) -> Config:
    ports, ifindexes, vxlan_ports = list(dict.fromkeys(ports)), list(ifindexes), list(vxlan_ports)
    if not ports:
        raise UsageError("--port: at least one TCP port")
    if len(ports) > MAX_PORTS:
        raise UsageError(f"--port: at most {MAX_PORTS} ports")
    if len(ifindexes) > MAX_IFINDEXES:
        raise UsageError(f"-i: at most {MAX_IFINDEXES} interfaces (or any)")
    if len(vxlan_ports) > MAX_VXLAN_PORTS:
        raise UsageError(f"--vxlan-port: at most {MAX_VXLAN_PORTS} ports")
    if records and tag_header and len(tag_header) > TAG_NAME_MAX:
        raise UsageError(f"--tag-header: at most {TAG_NAME_MAX} characters when found in the kernel "
                         "(--counting user for longer names)")
    config = Config()
    config.n_ports = len(ports)
    for i, port in enumerate(ports):
        config.ports[i] = port
    config.n_ifindexes = len(ifindexes)
    for i, index in enumerate(ifindexes):
        config.ifindexes[i] = index
    config.n_vxlan_ports = len(vxlan_ports)
    for i, port in enumerate(vxlan_ports):
        config.vxlan_ports[i] = port
    config.keep_acks = int(keep_acks)
    config.count_in_kernel = int(count_in_kernel)
    config.hand_off = int(hand_off)
    config.records = int(records)
    if records and tag_header:
        # Matched in the kernel against the header line folded to lower case, colon included.
        name = (tag_header.lower() + ":").encode("ascii")
        config.tag_len = len(name)
        padded = name.ljust(TAG_NAME_MAX + 1, b"\0")
        for i in range(len(config.tag_name)):
            config.tag_name[i] = int.from_bytes(padded[i * 8:i * 8 + 8], "little")
    return config


PROGRAMS = {"socket": "netbpf_http", "tc": "netbpf_http_tc"}
MAX_BACKENDS = 1024  # HTTP_MAX_BACKENDS
BACKENDS_BUDGET = 64 << 20  # bytes of per-backend figures over all CPUs, preallocated


def backend_slots(cpus: int, value_size: int) -> int:
    """How many backends the per-CPU array ``backends`` holds: as many as 64 MiB over
    all CPUs allow (about 10 KB per backend and CPU), 1024 at most, 32 at least."""
    return max(32, min(MAX_BACKENDS, BACKENDS_BUDGET // max(1, cpus * value_size)))


def object_name(may_goto: bool | None = None) -> str:
    """The object this kernel verifies: the head scan bounded by may_goto where the
    verifier knows it (Linux 6.9), else by bpf_loop(), a call per header line."""
    return BPF_OBJECT if (has_may_goto() if may_goto is None else may_goto) else BPF_LOOP_OBJECT


def open_object(config: Config, hook: str = "socket", run: Run | None = None,
                may_goto: bool | None = None) -> BpfObject:
    """The socket filter (or, ``hook="tc"``, the tc program), configured, not yet loaded
    (closed with ``run``). ``may_goto``: which head scan (default: what the kernel has)."""
    run = run if run is not None else Run()
    with run.starting():
        obj = run.open(object_path(__file__, object_name(may_goto)))
        for kind, name in PROGRAMS.items():
            obj.program(name).set_autoload(kind == hook)  # verify only the one used
        obj.set_rodata(config=bytes(config))
        obj.set_map_size("backends", backend_slots(possible_cpus(), obj.map("backends").value_size))
    return obj


def read_counters(obj: BpfObject) -> dict[Counter, int]:
    counters = obj.map("counters")
    return {c: counters.sum_u64(int(c)) for c in Counter}
