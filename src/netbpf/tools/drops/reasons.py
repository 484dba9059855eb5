"""Drop reason names of the running kernel, never a copied table.

``enum skb_drop_reason`` changes between kernels (values are renumbered as
reasons are added), so names come from the kernel itself: its BTF, or where
there is none, the ``print fmt`` of the ``skb:kfree_skb`` tracepoint, whose
``__print_symbolic`` lists every value with its name.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import NotSupported, UsageError

PREFIX = "SKB_DROP_REASON_"
# Values of the enum that mean "not a drop": a normal free.
NOT_DROPS = ("SKB_NOT_DROPPED_YET", "SKB_CONSUMED")
# Reasons this kernel frees packets with that are not packet loss: nothing on its way
# somewhere failed to get there. `drops` hides them unless --all (or --reason names them),
# and counts what it hid. (Names from include/net/dropreason-core.h; a kernel without
# one of them simply has nothing to hide under that name.)
NOT_LOSS = {
    "QUEUE_PURGE": "a queue freed in bulk as its socket is destroyed (every closed TCP "
                   "connection: the FIN, data never read)",
    "TCP_OLD_DATA": "a TCP segment whose data had already arrived (a spurious retransmission)",
    "TCP_OFOMERGE": "a TCP segment whose data was already in the out-of-order queue",
    "UNIX_DISCONNECT": "an AF_UNIX socket's receive queue, freed as it disconnects",
    "UNIX_SKIP_OOB": "an AF_UNIX out-of-band byte that recv() skipped",
}
_SYMBOLIC = re.compile(r"\{\s*(\d+)\s*,\s*\"([A-Z0-9_]+)\"\s*\}")


@dataclass(frozen=True)
class DropReasons:
    """Value <-> name (without the SKB_DROP_REASON_ prefix) for this kernel."""

    by_value: dict[int, str]
    not_drops: tuple[int, ...] = ()
    source: str = "btf"
    by_name: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {n: v for v, n in self.by_value.items()})

    def name(self, value: int) -> str:
        name = self.by_value.get(value)
        if name is not None:
            return name
        if value >> 16:
            # Subsystem reasons (mac80211, openvswitch...) live in other enums.
            return f"SUBSYS{value >> 16}:{value & 0xFFFF}"
        return f"REASON_{value}"

    def value(self, name: str) -> int:
        key = name.upper().removeprefix(PREFIX)
        if key in self.by_name:
            return self.by_name[key]
        close = difflib.get_close_matches(key, self.by_name, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(f"unknown drop reason {name!r}{hint}; `netbpf drops --list-reasons` lists them")

    @property
    def not_loss(self) -> tuple[int, ...]:
        """Values of the reasons in NOT_LOSS that this kernel has."""
        return tuple(self.by_name[n] for n in NOT_LOSS if n in self.by_name)

    def drop_names(self) -> list[str]:
        return [n for v, n in sorted(self.by_value.items()) if v not in self.not_drops]


def from_enum(values: dict[str, int], source: str = "btf") -> DropReasons:
    by_value: dict[int, str] = {}
    not_drops = []
    for name, value in values.items():
        if name in NOT_DROPS:
            not_drops.append(value)
            by_value.setdefault(value, name.removeprefix("SKB_"))
        elif name.startswith(PREFIX):
            by_value.setdefault(value, name.removeprefix(PREFIX))
    return DropReasons(by_value, tuple(not_drops), source)


def from_format(text: str) -> DropReasons:
    """Parse a tracefs format file: ``__print_symbolic(REC->reason, { 2, "NOT_SPECIFIED" }, ...)``."""
    _, sep, symbolic = text.partition("__print_symbolic(REC->reason")
    if not sep:
        raise NotSupported("drop reasons in the skb:kfree_skb format", "kernel older than 5.17")
    by_value = {int(v): n for v, n in _SYMBOLIC.findall(symbolic)}
    # The list starts at the first real drop: the values below it are
    # SKB_NOT_DROPPED_YET and SKB_CONSUMED, which are not drops.
    not_drops = tuple(range(min(by_value))) if by_value else ()
    return DropReasons(by_value, not_drops, "tracefs")


def load() -> DropReasons:
    from ...bpf.btf import vmlinux
    from ...bpf.fs import ensure_tracefs

    try:
        return from_enum(vmlinux().enum_values("skb_drop_reason"))
    except (KeyError, NotSupported):
        pass
    fmt = Path(ensure_tracefs()) / "events" / "skb" / "kfree_skb" / "format"
    try:
        return from_format(fmt.read_text())
    except FileNotFoundError:
        raise NotSupported("tracepoint skb:kfree_skb", "not in this kernel's tracefs") from None
