"""What `accel enable` is asked for: scope (ports) and when to send a socket back to TCP."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ...errors import UsageError
from .layout import MAX_PORTS

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
