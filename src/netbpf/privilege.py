"""Run as little as possible as root: once attached, become an unprivileged user (``-Z``).

The long-running tools (dump, http, fault, drops, tcp) parse packets and
HTTP that anyone on the network can shape. As tcpdump does, they need root
only to set up: load, attach, open the ring. After that they call ``drop()``,
which becomes USER (``-Z USER``; default: a ``netbpf`` user if the system has
one, else ``tcpdump``'s, else ``nobody``; ``-Z root`` stays root) and keeps
only the capabilities that the way out needs, and only in this thread:

  CAP_NET_ADMIN     to take a program off a hook over netlink (XDP attached
                    without a BPF link, a cls_bpf filter) and put the original
                    back. Links need nothing: closing the fd detaches them.
  CAP_DAC_OVERRIDE  permitted but not effective: raised (``raised()``) only to
                    open ``-w FILE`` (as tcpdump does: the user's file, in any
                    directory root could write), then given up; or, kept
                    that way to the end, to unlink a pin the tool made in
                    netbpf's root-only (0700) pin directory (dump's
                    PROG_ARRAY in front of a program).
  CAP_BPF           only on kernels that gate every bpf() call behind it
                    (before Linux 6.5, with unprivileged BPF disabled): probed.

Reading maps and rings through fds already open needs no capability. The
bounding set is emptied and no_new_privs set, so that no exec (a setuid
binary) gives anything back. Other threads started before the drop (a
metrics server) keep no capability at all: setuid takes them from every
thread that did not ask to keep them.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno as _errno
import importlib
import importlib.machinery
import importlib.util
import os
import pkgutil
import platform
import pwd
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import NetbpfError, OutputError
from .libc import libc

CAP_DAC_OVERRIDE, CAP_SETGID, CAP_SETUID, CAP_SETPCAP = 1, 6, 7, 8
CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF = 12, 21, 39
CAP_NAMES = {CAP_DAC_OVERRIDE: "CAP_DAC_OVERRIDE", CAP_NET_ADMIN: "CAP_NET_ADMIN",
             CAP_SYS_ADMIN: "CAP_SYS_ADMIN", CAP_BPF: "CAP_BPF"}
PR_SET_KEEPCAPS, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 8, 24, 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
CAP_LAST = 63
LINUX_CAPABILITY_VERSION_3 = 0x20080522
DEFAULT_USERS = ("netbpf", "tcpdump", "nobody")
NR_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
BPF_OBJ_GET_INFO_BY_FD = 15


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def default_user() -> str:
    for name in DEFAULT_USERS:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    return "root"  # no unprivileged account at all: nothing to drop to (said in -v)


def user_arg(text: str) -> str:
    """argparse type of ``-Z``: a user that exists (checked before anything is attached)."""
    try:
        pwd.getpwnam(text)
    except KeyError:
        raise argparse.ArgumentTypeError(f"no such user: {text!r}") from None
    return text


def add_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-Z", "--relinquish-privileges", dest="user", type=user_arg, metavar="USER",
                        help="once attached, run as USER with only the capabilities needed to "
                             f"detach (default: the first of {', '.join(DEFAULT_USERS)} that "
                             "exists; -Z root keeps root)")


def _capset(effective: int, permitted: int) -> None:
    header = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        data[i].effective = (effective >> (32 * i)) & 0xFFFFFFFF
        data[i].permitted = (permitted >> (32 * i)) & 0xFFFFFFFF
    if libc.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise NetbpfError(f"capset: {os.strerror(err)}")


def _capget() -> tuple[int, int]:
    header = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise NetbpfError(f"capget: {os.strerror(ctypes.get_errno())}")
    return (data[0].effective | data[1].effective << 32, data[0].permitted | data[1].permitted << 32)


def _mask(caps: Iterable[int]) -> int:
    return sum(1 << c for c in set(caps))


def _prctl(option: int, arg: int, what: str, arg3: int = 0) -> None:
    if libc.prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(arg3), ctypes.c_ulong(0),
                  ctypes.c_ulong(0)) != 0:
        err = ctypes.get_errno()
        if not (option == PR_CAPBSET_DROP and err == _errno.EINVAL):  # a cap this kernel lacks
            raise NetbpfError(f"{what}: {os.strerror(err)}")


def _bpf_is_gated() -> bool:
    """True when this kernel refuses every bpf() command without CAP_BPF (before
    Linux 6.5 with kernel.unprivileged_bpf_disabled): then reading maps through
    open fds needs it. Asked of the kernel itself: an info query on fd -1 says
    EBADF where no gate stands, EPERM where one does."""
    nr = NR_BPF.get(platform.machine())
    if nr is None:
        return True  # cannot ask: keep CAP_BPF rather than lose the counters
    attr = (ctypes.c_uint32 * 4)(0xFFFFFFFF, 0, 0, 0)  # bpf_fd = -1, info_len, info
    ret = libc.syscall(ctypes.c_long(nr), ctypes.c_int(BPF_OBJ_GET_INFO_BY_FD), ctypes.byref(attr),
                       ctypes.c_uint(ctypes.sizeof(attr)))
    return ret != 0 and ctypes.get_errno() == _errno.EPERM


class Dropped:
    """What ``drop()`` did, for the banner and the tests."""

    def __init__(self, user: str, uid: int, kept: set[int], on_demand: set[int]) -> None:
        self.user, self.uid, self.kept, self.on_demand = user, uid, kept, on_demand

    def describe(self) -> str:
        if self.uid == 0:
            return "running as root (-Z root)"
        names = [CAP_NAMES.get(c, str(c)) for c in sorted(self.kept)]
        names += [f"{CAP_NAMES.get(c, str(c))} (raised only to unpin)" for c in sorted(self.on_demand)]
        return f"running as {self.user}, keeping {', '.join(names) if names else 'no capability'}"


def drop(user: str | None, keep: Iterable[int] = (), on_demand: Iterable[int] = ()) -> Dropped:
    """Become ``user`` keeping ``keep`` effective and ``on_demand`` permitted only.

    Call it after everything is attached and opened, before the first packet
    is parsed. Not root to begin with: nothing to drop."""
    name = user or default_user()
    entry = pwd.getpwnam(name)
    if name == "root" or entry.pw_uid == 0 or os.geteuid() != 0:
        return Dropped(name, os.geteuid(), set(), set())
    keep_set, demand_set = set(keep), set(on_demand) - set(keep)
    _import_the_rest_if_unreadable(entry)
    try:
        # While root: nothing outside what we may keep can come back, by any exec.
        for cap in range(CAP_LAST + 1):
            if cap not in keep_set | demand_set | {CAP_BPF}:
                _prctl(PR_CAPBSET_DROP, cap, "drop from the bounding set")
        _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, "clear ambient capabilities")
        _prctl(PR_SET_KEEPCAPS, 1, "keep capabilities across setuid")
        os.setgroups([])
        os.setresgid(entry.pw_gid, entry.pw_gid, entry.pw_gid)
        os.setresuid(entry.pw_uid, entry.pw_uid, entry.pw_uid)
        _prctl(PR_SET_KEEPCAPS, 0, "stop keeping capabilities")
        # CAP_BPF permitted, not effective, while the kernel is asked whether it is needed.
        _capset(_mask(keep_set), _mask(keep_set | demand_set | {CAP_BPF}))
        if _bpf_is_gated():
            keep_set.add(CAP_BPF)
        _capset(_mask(keep_set), _mask(keep_set | demand_set))
        _prctl(PR_SET_NO_NEW_PRIVS, 1, "set no_new_privs")
    except OSError as e:
        raise NetbpfError(f"cannot become user {name}: {e.strerror}") from e
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:
        raise NetbpfError(f"became user {name}, but setuid(0) still works: refusing to go on")
    return Dropped(name, entry.pw_uid, keep_set, demand_set)


PACKAGE = Path(__file__).resolve().parent
LATE_IMPORTS = ("prometheus_client.core",)  # imported inside a function by a tool


def may_enter(directory: Path, uid: int, gids: set[int]) -> bool:
    """Whether uid (with gids) may list ``directory`` and pass every directory above it,
    by their mode bits (ACLs aside: where they grant more, the cost is an early import)."""
    for path, want in [*((p, 1) for p in reversed(directory.parents)), (directory, 5)]:
        st = path.stat()
        bits = st.st_mode >> 6 if st.st_uid == uid else st.st_mode >> 3 if st.st_gid in gids else st.st_mode
        if bits & want != want:
            return False
    return True


def _import_the_rest_if_unreadable(entry: pwd.struct_passwd) -> None:
    """A tool imports some modules late (the line printer, the report at exit). Where USER
    cannot read the installation (a checkout or venv under /root, mode 0700), such an
    import after the drop would end the run in ModuleNotFoundError: then import, while
    still root, every netbpf module and the late third-party ones."""
    gids = {entry.pw_gid, *os.getgrouplist(entry.pw_name, entry.pw_gid)}
    # Found by its top-level package: find_spec("a.b") would import "a" on every drop.
    late = {name: spec.origin for name in LATE_IMPORTS
            if (spec := _find_spec(name.partition(".")[0])) and spec.origin}
    if all(may_enter(d, entry.pw_uid, gids) for d in {PACKAGE, *(Path(o).parent for o in late.values())}):
        return
    for module in pkgutil.walk_packages([str(PACKAGE)], "netbpf."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    for name in late:
        importlib.import_module(name)


def _find_spec(name: str) -> importlib.machinery.ModuleSpec | None:
    try:
        return importlib.util.find_spec(name)
    except ImportError:
        return None


def to_detach(*attachments: object) -> set[int]:
    """The capabilities that taking these attachments off needs: CAP_NET_ADMIN
    for netlink ones (XDP without a link, cls_bpf); nothing for BPF links."""
    from .bpf.attach.base import NetlinkAttachment

    return {CAP_NET_ADMIN} if any(isinstance(a, NetlinkAttachment) for a in attachments) else set()


@contextlib.contextmanager
def raised(cap: int) -> Iterator[None]:
    """``cap`` in the effective set for the block, if it is permitted (else nothing)."""
    try:
        effective, permitted = _capget()
    except NetbpfError:
        yield
        return
    if not permitted >> cap & 1 or effective >> cap & 1:
        yield
        return
    _capset(effective | 1 << cap, permitted)
    try:
        yield
    finally:
        _capset(effective, permitted)


def forget(cap: int) -> None:
    """Give ``cap`` up for good (effective and permitted)."""
    try:
        effective, permitted = _capget()
    except NetbpfError:
        return
    if permitted >> cap & 1:
        _capset(effective & ~(1 << cap), permitted & ~(1 << cap))


def open_output(path: str) -> int:
    """``-w FILE`` for writing, created by the user the tool now runs as.

    As tcpdump: the file is opened after the drop, with CAP_DAC_OVERRIDE raised
    for that one call (so that ``sudo netbpf dump -w /root/x.pcap`` works and
    the file is the user's), then given up. Never through a symlink
    (O_NOFOLLOW), never another user's file (refused, not truncated):
    truncated only once it is known to be ours."""
    try:
        with raised(CAP_DAC_OVERRIDE):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as e:
        if e.errno == _errno.ELOOP:
            raise NetbpfError(f"-w {path}: is a symlink: refusing to write through it") from e
        raise OutputError(f"-w {path}", e) from e
    try:
        st = os.fstat(fd)
        import stat

        if stat.S_ISREG(st.st_mode):
            if st.st_uid != os.geteuid():
                owner = _user_name(st.st_uid)
                raise NetbpfError(f"-w {path}: belongs to {owner}, not to {_user_name(os.geteuid())}: "
                                 "refusing to overwrite another user's file")
            os.ftruncate(fd, 0)
        elif stat.S_ISDIR(st.st_mode):
            raise OutputError(f"-w {path}", OSError(_errno.EISDIR, os.strerror(_errno.EISDIR)))
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_output(path: str, user: str | None) -> None:
    """Before anything is attached: the -w FILE that ``open_output`` will open
    after the drop is not refused for a reason known now."""
    import stat

    directory = os.path.dirname(os.path.abspath(path))
    try:  # (a name too long, a directory missing or not searchable: the error says which)
        if not stat.S_ISDIR(os.stat(directory).st_mode):
            raise OutputError(f"-w {path}", OSError(_errno.ENOTDIR, os.strerror(_errno.ENOTDIR)))
        if os.statvfs(directory).f_flag & os.ST_RDONLY:
            raise OutputError(f"-w {path}", OSError(_errno.EROFS, os.strerror(_errno.EROFS)))
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
    except OSError as e:
        raise OutputError(f"-w {path}", e) from e
    if stat.S_ISLNK(st.st_mode):
        raise NetbpfError(f"-w {path}: is a symlink: refusing to write through it")
    if stat.S_ISDIR(st.st_mode):
        raise OutputError(f"-w {path}", OSError(_errno.EISDIR, os.strerror(_errno.EISDIR)))
    name = user or default_user()
    uid = pwd.getpwnam(name).pw_uid if os.geteuid() == 0 else os.geteuid()
    if stat.S_ISREG(st.st_mode) and st.st_uid != uid:
        raise NetbpfError(f"-w {path}: belongs to {_user_name(st.st_uid)}, not to {_user_name(uid)} "
                         "(the user netbpf writes as; see -Z): refusing to overwrite another user's file")


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"
