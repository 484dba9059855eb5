"""netbpf's exceptions, one tree for the whole toolkit.

    NetbpfError                      every error netbpf raises on purpose
    ├── NotPermitted                 not root, or a capability (CAP_BPF, CAP_NET_ADMIN) missing
    ├── NotSupported                 this kernel lacks a feature (names the feature)
    ├── VerifierError                the verifier rejected a program (carries its log)
    ├── InterfaceNotFound            no such network interface (in this namespace)
    ├── BuildMissing                 a BPF object or a system library is not there: run the build
    ├── OutputError                  the output (-w FILE, stdout) cannot be opened or written
    ├── UsageError                   the user asked for something that cannot be done (exit 2)
    │   └── FilterError              a tcpdump expression libpcap refused (its own message)
    └── BpfError                     any other failed syscall: operation + errno

The CLI prints ``str(error)`` on one line and exits 1 (2 for UsageError).
Errors from the kernel and libraries are converted where they enter netbpf,
with ``raise ... from``, so that the original stays in ``__cause__``.
"""
from __future__ import annotations

import errno as _errno
import os
from collections.abc import Callable


class NetbpfError(Exception):
    """Base of every error netbpf raises on purpose."""

    exit_code = 1


class NotPermitted(NetbpfError):
    def __init__(self, operation: str, detail: str = "") -> None:
        self.operation = operation
        who = "root" if os.geteuid() != 0 else "CAP_BPF/CAP_NET_ADMIN"
        message = f"{operation}: permission denied (run as {who})"
        if detail:
            message += f": {detail}"
        super().__init__(message)


class NotSupported(NetbpfError):
    def __init__(self, feature: str, detail: str = "") -> None:
        self.feature = feature
        message = f"not supported by this kernel: {feature}"
        if detail:
            message += f" ({detail})"
        super().__init__(message)


class VerifierError(NetbpfError):
    def __init__(self, program: str, log: str, errno: int = 0) -> None:
        self.program = program
        self.log = log
        self.errno = errno
        last = next((line for line in reversed(log.splitlines()) if line.strip()), "")
        reason = os.strerror(errno) if errno else "rejected"
        message = f"verifier rejected program {program}: {reason}"
        if last:
            message += f": {last.strip()}"
        super().__init__(message + " (run with -v for the full verifier log)")


class InterfaceNotFound(NetbpfError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no such interface: {name}")


class BuildMissing(NetbpfError):
    pass


class OutputError(NetbpfError):
    """``-w FILE``: no such directory, read-only, a directory, the file system full..."""

    def __init__(self, name: str, error: OSError, detail: str = "") -> None:
        self.errno = error.errno
        super().__init__(f"{name}: {error.strerror or error}" + (f" ({detail})" if detail else ""))


class UsageError(NetbpfError):
    exit_code = 2


class FilterError(UsageError):
    def __init__(self, expression: str, message: str) -> None:
        self.expression = expression
        super().__init__(f"bad filter expression {expression!r}: {message}")


# libbpf's own error numbers (enum libbpf_errno), which os.strerror() calls "Unknown error 4001".
LIBBPF_ERRORS = {
    4000: "something wrong in libelf", 4001: "not a valid BPF object (ELF) file",
    4002: "'version' section incorrect or lost", 4003: "endian mismatch", 4004: "internal error in libbpf",
    4005: "relocation failed", 4006: "load program failed for unknown reason",
    4007: "kernel verifier blocks program loading", 4008: "program too big",
    4009: "incorrect kernel version", 4010: "kernel does not support this program type",
    4011: "wrong pid in netlink message", 4012: "invalid netlink sequence", 4013: "netlink parse error",
}


def strerror(errno: int) -> str:
    return LIBBPF_ERRORS.get(errno) or os.strerror(errno)


class BpfError(NetbpfError):
    def __init__(self, operation: str, errno: int, detail: str = "") -> None:
        self.operation = operation
        self.errno = errno
        message = f"{operation}: {strerror(errno)}"
        if detail:
            message += f" ({detail})"
        super().__init__(message)


def from_errno(operation: str, errno: int, detail: str = "") -> NetbpfError:
    """The netbpf error for a failed operation's errno."""
    if errno in (_errno.EPERM, _errno.EACCES) and os.geteuid() != 0:
        return NotPermitted(operation, detail)
    if errno == _errno.EPERM:
        return NotPermitted(operation, detail or "the kernel refused it (lockdown or seccomp?)")
    if errno in (_errno.EOPNOTSUPP, _errno.ENOTSUP):
        return NotSupported(operation, detail)
    return BpfError(operation, errno, detail)


def path_is(path: str | os.PathLike[str], kind: Callable[[int], bool], name: str) -> bool:
    """Path.is_dir() / is_file() for a path the user typed (``kind``: stat.S_ISDIR, S_ISREG):
    False where nothing of that kind is there, as they answer, but what they raise (a name
    too long, a directory not searchable) is one line naming ``name``, not a traceback."""
    try:
        return kind(os.stat(path).st_mode)
    except ValueError:  # an embedded NUL: no such file
        return False
    except OSError as e:
        if e.errno in (_errno.ENOENT, _errno.ENOTDIR, _errno.EBADF, _errno.ELOOP):
            return False
        raise NetbpfError(f"{name}: {e.strerror}") from e


def check(ret: int, operation: str, detail: str = "") -> int:
    """Raise the matching error when a libbpf call returned ``-errno``."""
    if ret < 0:
        raise from_errno(operation, -ret, detail)
    return ret


def check_ptr(ptr: int | None, operation: str, detail: str = "") -> int:
    """Raise when a libbpf call returned NULL (errno tells why)."""
    if not ptr:
        import ctypes

        err = ctypes.get_errno() or _errno.EINVAL
        raise from_errno(operation, err, detail)
    return ptr
