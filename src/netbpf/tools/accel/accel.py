"""netbpf accel: sockops + sk_msg acceleration of local TCP, pinned so that it
outlives the command.

    enable(options)   load accel.bpf.o, attach sk_msg to the sockhash, then
                      sock_ops to the cgroup, pin everything under the pin dir
    disable()         stop redirecting, detach, unpin (idempotent)
    read_status()     what the pins say: where, how many sockets, counters

Nothing is remembered outside bpffs: status and disable read the pins, so
they work from any process, after any restart of netbpf.

Disabling never deletes sockets from the sockhash. Deleting one frees its
psock and with it the data other sockets already redirected into it and that
the application has not read yet (seen here: 100 KB lost). Instead
``disable`` sets ``draining`` (every later message takes TCP, which a reader
sees after the queued data, in order), detaches and unpins. The kernel frees
the programs and maps when the last accelerated socket closes; until then
they show as "draining" in ``status``.
"""
from __future__ import annotations

import ctypes
import enum
import errno as _errno
import ipaddress
import os
import socket
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...bpf import _libbpf as L
from ...bpf import fs
from ...bpf.attach import cgroup as cgroup_attach
from ...bpf.attach import sockmap as sockmap_attach
from ...bpf.errors import BpfError, NetbpfError, UsageError, check, from_errno
from ...bpf.info import (
    close_quietly,
    fd_by_id,
    link_info,
    map_info,
    prog_ids,
    prog_info,
    prog_map_ids,
)
from ...bpf.maps import Map
from ...bpf.object import BpfObject, object_path
from ...bpf.program import Program
from ...run import Run

BPF_OBJECT = "accel.bpf.o"
SOCKOPS_PROG, MSG_PROG = "netbpf_acc_ops", "netbpf_acc_msg"
BPF_SK_MSG_VERDICT = sockmap_attach.BPF_SK_MSG_VERDICT
BPF_MAP_TYPE_SOCKHASH = 18
MAX_PORTS = 64  # max_entries of accel_ports
SO_NETNS_COOKIE = 71

# What enable pins, by role; status and disable find everything from these names.
PINS = {
    "sockops": "prog_sockops",
    "sk_msg": "prog_sk_msg",
    "cgroup_link": "link_cgroup",
    "sk_msg_link": "link_sk_msg",
    "sockhash": "map_sockhash",
    "state": "map_state",
    "ports": "map_ports",
    "control": "map_control",
    "counters": "map_counters",
}
MAP_OF_ROLE = {"sockhash": "accel_sockhash", "state": "accel_state", "ports": "accel_ports",
               "control": "accel_control", "counters": "accel_counters"}


class AccelKey(ctypes.Structure):
    _c_name_ = "accel_key"
    _fields_ = [
        ("netns", ctypes.c_uint64),
        ("local_ip", ctypes.c_uint8 * 16),  # the C side reads it as 4 x __u32, network order
        ("remote_ip", ctypes.c_uint8 * 16),
        ("local_port", ctypes.c_uint32),
        ("remote_port", ctypes.c_uint32),
    ]


class SockState(ctypes.Structure):
    _c_name_ = "accel_sock_state"
    _fields_ = [("small_run", ctypes.c_uint32), ("tcp_only", ctypes.c_uint32),
                ("queued_at", ctypes.c_uint64)]


class Control(ctypes.Structure):
    _c_name_ = "accel_control"
    _fields_ = [("draining", ctypes.c_uint32), ("_pad", ctypes.c_uint32)]


SHARED_STRUCTS = (AccelKey, SockState, Control)


class Counter(enum.IntEnum):
    """enum accel_counter"""
    SOCKETS_ADDED = 0
    SOCKETS_FAILED = 1
    SOCKETS_NO_PEER = 2
    SOCKETS_SMALL = 3
    SOCKETS_BACKLOG = 4
    MSG_REDIRECTED = 5
    BYTES_REDIRECTED = 6
    MSG_TCP = 7
    BYTES_TCP = 8
    MAX_UNREAD = 9  # a maximum per CPU, not a sum


COUNTER_KEYS = {
    Counter.SOCKETS_ADDED: "sockets_added",
    Counter.SOCKETS_FAILED: "sockets_failed",
    Counter.SOCKETS_NO_PEER: "sockets_tcp_no_peer",
    Counter.SOCKETS_SMALL: "sockets_tcp_small_writes",
    Counter.SOCKETS_BACKLOG: "sockets_tcp_backlog",
    Counter.MSG_REDIRECTED: "messages_redirected",
    Counter.BYTES_REDIRECTED: "bytes_redirected",
    Counter.MSG_TCP: "messages_tcp",
    Counter.BYTES_TCP: "bytes_tcp",
    Counter.MAX_UNREAD: "max_unread_bytes",
}

TCP_REASONS = {0: "redirect", 1: "tcp (no peer)", 2: "tcp (small writes)", 3: "tcp (peer backlog)"}


def default_pin_dir() -> Path:
    return fs.PIN_ROOT / "accel"


# -- options ------------------------------------------------------------------------------

SMALL_BYTES = 16384
DEMOTE_AFTER = 64


@dataclass(frozen=True, slots=True)
class Options:
    cgroup: Path | None = None  # None: the cgroup v2 root
    ports: tuple[int, ...] = ()  # empty: every local connection
    small_bytes: int = SMALL_BYTES  # a message below this size is small
    demote_after: int = DEMOTE_AFTER  # small messages in a row that send a socket back to TCP; 0: never
    max_queued: int | None = None  # unread redirected bytes a peer may hold; None: as much as TCP

    def rodata(self) -> dict[str, int]:
        return {"filter_ports": int(bool(self.ports)), "small_bytes": self.small_bytes,
                "demote_after": self.demote_after,
                "queue_limit": tcp_max_buffered() if self.max_queued is None else self.max_queued}


def tcp_max_buffered() -> int:
    """The most unread data TCP lets one connection hold: the largest receive
    buffer plus the largest send buffer (tcp_rmem and tcp_wmem maxima)."""
    total = 0
    for name in ("tcp_rmem", "tcp_wmem"):
        try:
            total += int(Path(f"/proc/sys/net/ipv4/{name}").read_text().split()[2])
        except (OSError, IndexError, ValueError):
            total += 4 << 20
    return total


def parse_ports(text: str) -> tuple[int, ...]:
    """``"80,443,8000-8003"`` -> (80, 443, 8000, 8001, 8002, 8003), sorted, unique."""
    ports: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        low, sep, high = part.partition("-")
        try:
            first, last = int(low), int(high) if sep else int(low)
        except ValueError:
            raise UsageError(f"--ports: not a port or a range: {part!r}") from None
        if not (1 <= first <= 65535 and 1 <= last <= 65535) or first > last:
            raise UsageError(f"--ports: {part!r} is not within 1-65535")
        ports.update(range(first, last + 1))
        if len(ports) > MAX_PORTS:
            raise UsageError(f"--ports: at most {MAX_PORTS} ports")
    if not ports:
        raise UsageError("--ports: no port given")
    return tuple(sorted(ports))


def resolve_cgroup(path: str | Path | None) -> Path:
    """A cgroup v2 directory: absolute, or relative to the cgroup v2 mount."""
    root = fs.cgroup2_root()
    if path is None:
        return root
    p = Path(path)
    if not p.is_absolute():
        p = root / p
    return cgroup_attach.CgroupOptions(p.resolve()).resolved_path()


# -- keys ---------------------------------------------------------------------------------

def format_endpoint(ip: bytes, port: int) -> str:
    """``127.0.0.1:80`` for IPv4 (mapped) addresses, ``[::1]:80`` for IPv6."""
    addr = ipaddress.IPv6Address(bytes(ip))
    if addr.ipv4_mapped is not None:
        return f"{addr.ipv4_mapped}:{port}"
    return f"[{addr}]:{port}"


def key_of(local: tuple[str, int], remote: tuple[str, int], netns_cookie: int) -> AccelKey:
    """The sockhash key of the socket with this local and remote address (as the BPF side builds it)."""
    def v6(ip: str) -> bytes:
        addr = ipaddress.ip_address(ip)
        if addr.version == 4:
            return ipaddress.IPv6Address(f"::ffff:{addr}").packed
        return addr.packed
    key = AccelKey(netns=netns_cookie, local_port=local[1], remote_port=remote[1])
    key.local_ip[:] = list(v6(local[0]))
    key.remote_ip[:] = list(v6(remote[0]))
    return key


def netns_cookie_of_socket(sock: socket.socket) -> int:
    return int(struct.unpack("Q", sock.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8))[0])


def netns_cookies() -> dict[int, str]:
    """Network namespace cookie -> label (host, ip-netns name, netns:[inode])."""
    from ... import netns

    def cookie() -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            return netns_cookie_of_socket(s)
    found: dict[int, str] = {}
    for inode, path in netns.all_namespaces().items():
        try:
            found[netns.run_in(path, cookie)] = netns.label(inode)
        except (NetbpfError, OSError):
            continue
    return found


# -- pins ---------------------------------------------------------------------------------

def _obj_get(path: Path) -> int:
    """An fd for the object pinned at ``path``, or -1 when nothing is pinned there."""
    fd = L.lib.bpf_obj_get(str(path).encode())
    if fd < 0:
        if -fd == _errno.ENOENT:
            return -1
        raise from_errno(f"open pin {path}", -fd)
    return int(fd)


def check_pin_dir(pin_dir: str | Path) -> Path:
    p = Path(pin_dir).resolve()
    if fs.BPFFS not in p.parents:
        raise UsageError(f"--pin-dir {pin_dir}: must be a directory under {fs.BPFFS}")
    return p


class PinsHidden(NetbpfError):
    """The pins cannot be seen from this mount namespace: neither "on" nor "off" is known."""


def _bpffs_visible(pin_dir: Path) -> bool:
    return any(fstype == "bpf" and (Path(point) == pin_dir or Path(point) in pin_dir.parents)
               for _, point, fstype in fs.mounts())


def _private_mount_ns() -> bool:
    """True in a mount namespace other than an ancestor's, e.g. under `ip netns
    exec`, which mounts a /sys of its own without bpffs. Ancestors, because
    pid 1's namespace links may not be readable (a container)."""
    try:
        mine = os.readlink("/proc/self/ns/mnt")
    except OSError:
        return False
    pid = os.getppid()
    for _ in range(64):
        try:
            if os.readlink(f"/proc/{pid}/ns/mnt") != mine:
                return True
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state: ppid
        if pid <= 0:
            return False
    return False


def check_pins_visible(pin_dir: Path) -> None:
    """Refuse to answer from a mount namespace where bpffs is not mounted: the
    pins may well exist in init's, and "not enabled" would be a guess."""
    if not _bpffs_visible(pin_dir) and _private_mount_ns():
        raise PinsHidden(f"no bpffs above {pin_dir} in this mount namespace (`ip netns exec` mounts "
                         "a /sys of its own): whether accel is enabled cannot be seen from here; "
                         "run `netbpf --netns NAME accel ...` instead")


def _present(pin_dir: Path) -> dict[str, Path]:
    """The pins there, by role; NotOurs when the directory is not netbpf's
    (another user's directory could hold anything, and they could unlink it)."""
    try:
        fs.owned_dir(pin_dir, create=False)
    except FileNotFoundError:
        check_pins_visible(pin_dir)
        return {}
    return {role: pin_dir / name for role, name in PINS.items() if (pin_dir / name).exists()}


# -- enable -------------------------------------------------------------------------------

def enable(options: Options, pin_dir: Path | None = None) -> tuple[Status, bool]:
    """Attach and pin; returns (status, True if it was already enabled the same way)."""
    pin_dir = pin_dir or default_pin_dir()
    group = resolve_cgroup(options.cgroup)
    # A bpffs mounted now in a private mount namespace would vanish, pins and
    # all, when this command exits: "enabled" would be a lie.
    check_pins_visible(pin_dir)
    fs.ensure_bpffs()
    if _present(pin_dir):
        current = read_status(pin_dir)
        same = (current.enabled and current.cgroup == str(group) and tuple(current.ports) == options.ports
                and current.small_bytes == options.small_bytes
                and current.demote_after == options.demote_after
                and current.queue_limit == options.rodata()["queue_limit"])
        if same:
            return current, True
        if not current.enabled:
            raise UsageError(f"an incomplete accel instance is pinned at {pin_dir}: "
                             "run `netbpf accel disable` first")
        where = current.cgroup or "an unknown cgroup"
        raise UsageError(f"accel is already enabled at {pin_dir} (on {where}, "
                         f"{describe_scope(current.ports)}): run `netbpf accel disable` first")
    undo = Run()  # what a failure takes back, last first: links, pins, the directory
    with Run() as held, undo.starting():  # held: closed either way (pinned links stay attached)
        undo.callback(_rmdir, pin_dir)
        obj = held.open(object_path(__file__, BPF_OBJECT))
        obj.set_rodata(**options.rodata())
        obj.load()
        for port in options.ports:
            obj.map("accel_ports").update(port, b"\x01")
        fs.owned_dir(pin_dir)  # root's, 0700, every level: else refused

        def pin(role: str, thing: Any) -> None:
            path = pin_dir / PINS[role]
            thing.pin(str(path))
            undo.callback(path.unlink, True)

        for role, map_name in MAP_OF_ROLE.items():
            pin(role, obj.map(map_name))
        pin("sockops", obj.program(SOCKOPS_PROG))
        pin("sk_msg", obj.program(MSG_PROG))
        # The verdict program first: a socket stored before it is attached
        # would never redirect.
        msg = undo.attach(sockmap_attach.attach_sk_msg(obj.program(MSG_PROG), obj.map("accel_sockhash")),
                          quiet=True)
        if isinstance(msg, sockmap_attach.SockmapLink):
            held.attach(msg)  # a prog_attach'ed sk_msg program stays as long as the pinned map lives
            pin("sk_msg_link", msg)
        ops = undo.attach(cgroup_attach.attach_cgroup(obj.program(SOCKOPS_PROG), cgroup_attach.CgroupOptions(group)),
                          quiet=True)
        held.attach(ops)
        pin("cgroup_link", ops)
    return read_status(pin_dir), False


def _rmdir(path: Path) -> None:
    if path.is_relative_to(fs.PIN_ROOT):
        fs.remove_empty_dirs(path)
    else:  # --pin-dir elsewhere in bpffs: only its own directory
        try:
            path.rmdir()
        except OSError:
            pass


# -- disable ------------------------------------------------------------------------------

@dataclass
class DisableResult:
    was_enabled: bool
    cgroup: str = ""
    removed: list[str] = field(default_factory=list)
    draining_sockets: int = 0


def disable(pin_dir: Path | None = None) -> DisableResult:
    """Stop accelerating new data, detach, unpin. Idempotent; partial pins are fine."""
    pin_dir = pin_dir or default_pin_dir()
    present = _present(pin_dir)
    if not present:
        _rmdir(pin_dir)
        return DisableResult(False)
    result = DisableResult(True, cgroup=_cgroup_of_link(present.get("cgroup_link")))
    # 1. From now on every message of every stored socket takes TCP.
    if "control" in present:
        with _pinned_map(present["control"]) as control:
            control.update(0, Control(draining=1))
    if "sockhash" in present:
        with _pinned_map(present["sockhash"]) as sockhash:
            result.draining_sockets = count_keys(sockhash)
    # 2. No new socket is stored: detach the sock_ops link, then the sk_msg one
    #    (sockets already stored keep their own reference to the program).
    for role in ("cgroup_link", "sk_msg_link"):
        if role in present:
            fd = _obj_get(present[role])
            if fd >= 0:
                try:
                    check(L.lib.bpf_link_detach(fd), f"detach {present[role]}")
                finally:
                    close_quietly(fd)
                result.removed.append(f"detached {role.replace('_', ' ')}")
    if "sk_msg_link" not in present and "sk_msg" in present and "sockhash" in present:
        _prog_detach_sk_msg(present["sk_msg"], present["sockhash"])  # kernels without sockmap links
    # 3. Unpin; nothing of ours is left in bpffs.
    for path in present.values():
        path.unlink(missing_ok=True)
        result.removed.append(f"unpinned {path}")
    _rmdir(pin_dir)
    return result


def _prog_detach_sk_msg(prog_pin: Path, map_pin: Path) -> None:
    prog_fd, map_fd = _obj_get(prog_pin), _obj_get(map_pin)
    try:
        if prog_fd >= 0 and map_fd >= 0:
            ret = L.lib.bpf_prog_detach2(prog_fd, map_fd, BPF_SK_MSG_VERDICT)
            if ret < 0 and -ret != _errno.ENOENT:
                raise from_errno("detach sk_msg program from the sockhash", -ret)
    finally:
        for fd in (prog_fd, map_fd):
            if fd >= 0:
                close_quietly(fd)


def map_keys(m: Map) -> Iterator[bytes]:
    """The keys of a BPF map (one BPF_MAP_GET_NEXT_KEY each; a map, not a dict)."""
    return m.keys()


def count_keys(m: Map) -> int:
    return sum(1 for _ in map_keys(m))


class _pinned_map:
    def __init__(self, path: Path) -> None:
        self.map = Map.from_pin(path)

    def __enter__(self) -> Map:
        return self.map

    def __exit__(self, *exc: object) -> None:
        self.map.close()


# -- status -------------------------------------------------------------------------------

@dataclass
class Draining:
    """A disabled instance the kernel keeps until its last accelerated socket closes."""
    prog_id: int
    sockets: int


@dataclass
class Status:
    enabled: bool
    pin_dir: str
    cgroup: str = ""
    ports: list[int] = field(default_factory=list)
    small_bytes: int = 0
    demote_after: int = 0
    queue_limit: int = 0
    sockets: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    programs: dict[str, int] = field(default_factory=dict)
    links: dict[str, int] = field(default_factory=dict)
    sk_msg_attach: str = ""  # link, or prog_attach on kernels before 6.10
    draining: list[Draining] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "enabled": self.enabled, "cgroup": self.cgroup or None, "ports": self.ports or "all",
            "sockets": self.sockets, **self.counters,
            "small_bytes": self.small_bytes, "demote_after": self.demote_after,
            "queue_limit": self.queue_limit, "pin_dir": self.pin_dir, "programs": self.programs, "links": self.links,
            "draining": [{"prog_id": d.prog_id, "sockets": d.sockets} for d in self.draining],
        }
        if not self.enabled:
            for k in ("cgroup", "ports", "small_bytes", "demote_after", "queue_limit",
                      *COUNTER_KEYS.values()):
                d.pop(k, None)
        return d


def read_status(pin_dir: Path | None = None) -> Status:
    pin_dir = pin_dir or default_pin_dir()
    present = _present(pin_dir)
    status = Status(enabled=bool(present), pin_dir=str(pin_dir))
    if present:
        if "cgroup_link" in present:
            status.cgroup = _cgroup_of_link(present["cgroup_link"])
        if "ports" in present:
            with _pinned_map(present["ports"]) as ports:
                status.ports = sorted(int.from_bytes(k, "little") for k in map_keys(ports))
        if "sockhash" in present:
            with _pinned_map(present["sockhash"]) as sockhash:
                status.sockets = count_keys(sockhash)
        if "counters" in present:
            with _pinned_map(present["counters"]) as counters:
                status.counters = {COUNTER_KEYS[c]: counters.sum_u64(int(c)) for c in Counter
                                   if c != Counter.MAX_UNREAD}
                status.counters["max_unread_bytes"] = max(
                    (int.from_bytes(v[:8], "little") for v in counters.lookup_percpu(int(Counter.MAX_UNREAD))),
                    default=0)
        for role in ("sockops", "sk_msg"):
            if role in present:
                prog = Program.from_pin(str(present[role]))
                try:
                    status.programs[prog.name] = prog.id
                    if role == "sk_msg":
                        config = _rodata(prog.fd)
                        status.small_bytes = config.get("small_bytes", 0)
                        status.demote_after = config.get("demote_after", 0)
                        status.queue_limit = config.get("queue_limit", 0)
                finally:
                    prog.close()
        for role in ("cgroup_link", "sk_msg_link"):
            if role in present:
                fd = _obj_get(present[role])
                if fd >= 0:
                    try:
                        status.links[role.removesuffix("_link")] = link_info(fd).id
                    finally:
                        close_quietly(fd)
        status.sk_msg_attach = "link" if "sk_msg_link" in present else "prog_attach"
        # Complete only with both attachments: anything less is a leftover to disable.
        status.enabled = "cgroup_link" in present and "sockhash" in present
    status.draining = find_draining()
    return status


def _cgroup_of_link(pin: Path | None) -> str:
    if pin is None:
        return ""
    fd = _obj_get(pin)
    if fd < 0:
        return ""
    try:
        info = link_info(fd)
    finally:
        close_quietly(fd)
    return cgroup_path(int(info.target.split()[-1]))


def cgroup_path(cgroup_id: int) -> str:
    """A cgroup v2 directory from its id (the directory's inode number)."""
    root = fs.cgroup2_root()
    stack = [str(root)]
    while stack:
        path = stack.pop()
        try:
            if os.stat(path).st_ino == cgroup_id:
                return path
            with os.scandir(path) as entries:
                stack.extend(e.path for e in entries if e.is_dir(follow_symlinks=False))
        except OSError:
            continue
    return f"cgroup id {cgroup_id}"


def _rodata(prog_fd: int) -> dict[str, int]:
    """The const volatile globals the program was loaded with, read back from the kernel."""
    with BpfObject.open(object_path(__file__, BPF_OBJECT), log_buffer=False) as obj:
        variables = obj.btf().datasec_variables(".rodata")
    for map_id in prog_map_ids(prog_fd):
        fd = fd_by_id("map", map_id)
        try:
            if not map_info(fd).name.decode().endswith(".rodata"):
                continue
            m = Map.from_fd(fd, owns_fd=False)
            raw = m.lookup(0) or b""
            return {name: int.from_bytes(raw[v.offset:v.offset + v.size], "little")
                    for name, v in variables.items() if v.offset + v.size <= len(raw)}
        finally:
            close_quietly(fd)
    return {}


def pinned_prog_ids() -> set[int]:
    """Ids of every program pinned anywhere under /sys/fs/bpf/netbpf."""
    ids: set[int] = set()
    if not fs.PIN_ROOT.is_dir():
        return ids
    for dirpath, _, files in os.walk(fs.PIN_ROOT):
        for name in files:
            if not name.startswith("prog_"):
                continue
            try:
                fd = _obj_get(Path(dirpath) / name)
            except NetbpfError:
                continue
            if fd >= 0:
                try:
                    ids.add(prog_info(fd).id)
                except NetbpfError:
                    pass
                finally:
                    close_quietly(fd)
    return ids


def find_draining() -> list[Draining]:
    """sk_msg programs of disabled instances, kept alive by sockets still in their map."""
    pinned = pinned_prog_ids()
    found = []
    for pid in prog_ids():
        if pid in pinned:
            continue
        try:
            fd = fd_by_id("prog", pid)
        except BpfError:
            continue
        try:
            if prog_info(fd).name.decode(errors="replace") != MSG_PROG:
                continue
            found.append(Draining(pid, _sockets_in_maps(prog_map_ids(fd))))
        finally:
            close_quietly(fd)
    return found


def _sockets_in_maps(map_ids: Iterable[int]) -> int:
    for map_id in map_ids:
        try:
            m = Map.from_id(map_id)
        except BpfError:
            continue
        try:
            if m.type == BPF_MAP_TYPE_SOCKHASH:
                return count_keys(m)
        finally:
            m.close()
    return 0


# -- connections ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Socket:
    netns: str
    local: str
    remote: str
    sends: str  # redirect / tcp (reason)
    small_run: int


def sockets(pin_dir: Path | None = None) -> list[Socket]:
    """Every socket in the sockhash, with how it sends now."""
    pin_dir = pin_dir or default_pin_dir()
    present = _present(pin_dir)
    if "sockhash" not in present:
        return []
    labels = netns_cookies()
    with _pinned_map(present["sockhash"]) as sockhash:
        keys = [AccelKey.from_buffer_copy(k) for k in map_keys(sockhash)]
    states: dict[bytes, SockState] = {}
    if "state" in present:
        with _pinned_map(present["state"]) as state_map:
            for k in keys:
                raw = state_map.lookup(k)
                if raw is not None:
                    states[bytes(k)] = SockState.from_buffer_copy(raw)
    out = []
    for k in sorted(keys, key=lambda k: (k.netns, min(k.local_port, k.remote_port), k.local_port)):
        st = states.get(bytes(k))
        out.append(Socket(
            netns=labels.get(k.netns, f"cookie {k.netns}"),
            local=format_endpoint(bytes(k.local_ip), k.local_port),
            remote=format_endpoint(bytes(k.remote_ip), k.remote_port),
            sends=TCP_REASONS.get(st.tcp_only, str(st.tcp_only)) if st else "tcp (no state)",
            small_run=st.small_run if st else 0,
        ))
    return out


def describe_scope(ports: Iterable[int]) -> str:
    ports = list(ports)
    if not ports:
        return "all local connections"
    return "local connections from or to port" + ("s " if len(ports) > 1 else " ") + compress_ports(ports)


def compress_ports(ports: Iterable[int]) -> str:
    """[80, 8000, 8001, 8002] -> "80,8000-8002"."""
    out: list[str] = []
    run: list[int] = []
    for p in sorted(set(ports)):
        if run and p == run[-1] + 1:
            run.append(p)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [p]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(out)
