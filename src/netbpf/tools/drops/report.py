"""What ``netbpf drops`` prints: one set of columns for text, JSON and CSV.

A streamed drop becomes a row (a dict); the columns turn it into an aligned
line or a JSON object. Rows for a flood come from caches: the part that
depends on (reason, location, namespace, interface) and the flow text are
computed once per distinct value, the time once per second.
"""
from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

from ...attrib.tracker import Owner
from ...output import Column, Table
from ...tracepoints.names import Clock, Names, endpoint, has_ports, protocol_name, tcp_flags
from .kallsyms import Kallsyms
from .kernel import SK_NONE, SK_RX, Drop, DropEvent, SummaryKey, decode
from .reasons import DropReasons

# Byte ranges of struct drop_event (drops.h), used as cache keys.
_ts = struct.Struct("<Q").unpack_from
_WHERE = slice(8, 28)  # location, reason, netns, ifindex
_FLOW = slice(28, 80)  # len, eth_proto ... ip_len, saddr, daddr: everything about the packet
_STACK_BYTES = slice(42, 44)
assert (DropEvent.location.offset, DropEvent.ifindex.offset + 4, DropEvent.len.offset,
        DropEvent.daddr.offset + 16, DropEvent.stack_bytes.offset) == (8, 28, 28, 80, 42)

STREAM_COLUMNS = [
    Column("time", "TIME", 15),
    Column("reason", "REASON", 16),
    Column("location", "LOCATION", 34),
    Column("netns", "NETNS", 10),
    Column("interface", "IFACE", 7),
    Column("protocol", "PROTO", 5),
    Column("len", "LEN", 5, ">"),
    Column("flow", "FLOW"),
]

SUMMARY_COLUMNS = [
    Column("count", "COUNT", align=">"),
    Column("rate", "PER_S", align=">", text=lambda v: f"{v:.0f}"),
    Column("bytes", "BYTES", align=">"),
    Column("reason", "REASON"),
    Column("location", "LOCATION"),
    Column("netns", "NETNS"),
    Column("interface", "IFACE"),
]
FLOW_COLUMNS = [Column("protocol", "PROTO"), Column("flow", "FLOW")]



def _cells(columns: list[Column], values: tuple[Any, ...]) -> str:
    """Cells as Table.text() aligns them, without its final rstrip (more columns follow)."""
    return "  ".join(f"{'-' if v is None or v == '' else c.text(v):{c.align}{c.width}}"
                     for c, v in zip(columns, values, strict=True))


class DropFormatter:
    def __init__(self, reasons: DropReasons, kallsyms: Kallsyms, names: Names | None = None) -> None:
        self.reasons = reasons
        self.kallsyms = kallsyms
        self.names = names or Names()
        self.clock = Clock()
        self.table = Table(STREAM_COLUMNS)
        self._where: dict[tuple[int, int, int, int], tuple[str, str, str, str]] = {}
        self._flows: dict[tuple[Any, ...], tuple[str, str]] = {}
        # The stream's columns in two runs: where the drop happened, and what was dropped.
        self._flow_table = Table(STREAM_COLUMNS[5:])
        self._offset_ns = self.clock.offset_ns
        self._seconds: dict[int, str] = {}
        self._where_text_cache: dict[bytes, str] = {}
        self._flow_text_cache: dict[bytes, str] = {}
        self._where_json_cache: dict[bytes, str] = {}
        self._flow_json_cache: dict[bytes, str] = {}
        # --process: the owner of the packet's socket (netbpf.attrib), else None.
        self.socket_owner: Callable[[int], Owner] | None = None

    def owner_fields(self, d: Drop) -> dict[str, Any]:
        """--process: which socket (rx_sk: the receiving one; skb->sk: the packet's own, the
        sender's or, after early demux, the receiver's) and its process."""
        assert self.socket_owner is not None
        if d.sk_side == SK_NONE:
            return {"socket": None, "owner": "no socket", "pid": None, "comm": None, "cgroup": None,
                    "container": None}
        who = self.socket_owner(d.sk_cookie)
        return {"socket": "rx_sk" if d.sk_side == SK_RX else "skb->sk", **who.fields()}

    def owner_text(self, d: Drop) -> str:
        assert self.socket_owner is not None
        if d.sk_side == SK_NONE:
            return "[no socket]"
        side = "rx_sk" if d.sk_side == SK_RX else "skb->sk"
        return f"[{side}: {self.socket_owner(d.sk_cookie).comment()}]"

    def where(self, reason: int, location: int, netns: int, ifindex: int) -> tuple[str, str, str, str]:
        """(reason, location, netns, interface) as text."""
        key = (reason, location, netns, ifindex)
        cached = self._where.get(key)
        if cached is None:
            cached = (self.reasons.name(reason), self.kallsyms.symbolise(location),
                      self.names.netns(netns), self.names.interface(netns, ifindex))
            if len(self._where) > 100_000:
                self._where.clear()
            self._where[key] = cached
        return cached

    def flow(self, family: int, l4: int, eth: int, saddr: bytes, sport: int, daddr: bytes, dport: int,
             flags: int) -> tuple[str, str]:
        """(protocol, "src > dst [flags]") as text."""
        key = (family, l4, eth, saddr, sport, daddr, dport, flags)
        cached = self._flows.get(key)
        if cached is None:
            proto = protocol_name(family, l4, eth)
            if not family:
                text = ""
            elif has_ports(l4):
                text = f"{endpoint(saddr, sport)} > {endpoint(daddr, dport)}"
                if l4 == 6:
                    text += f" [{tcp_flags(flags) or 'none'}]"
            else:
                text = f"{endpoint(saddr, 0, False)} > {endpoint(daddr, 0, False)}"
                if l4 in (1, 58):
                    text += f" type {sport} code {dport}"
            cached = (proto, text)
            if len(self._flows) > 100_000:
                self._flows.clear()
            self._flows[key] = cached
        return cached

    def row(self, d: Drop) -> dict[str, Any]:
        reason, location, netns, interface = self.where(d.reason, d.location, d.netns, d.ifindex)
        proto, flow = self.flow(d.family, d.l4_proto, d.eth_proto, d.saddr, d.sport, d.daddr, d.dport,
                                d.tcp_flags)
        row: dict[str, Any] = {
            "time": self.clock.text(d.ts_ns), "reason": reason, "location": location,
            "netns": netns, "interface": interface, "protocol": proto,
            "len": d.ip_len or d.length, "flow": flow,
        }
        if d.stack:
            row["stack"] = [self.kallsyms.symbolise(a) for a in d.stack]
        return row

    # -- the fast path: one line from cached pieces --------------------------------------------
    # A flood repeats a few (reason, location, namespace, interface) and a few flows: each
    # piece of the line (or of the JSON object) is made once, with the same columns and
    # keys as row() and json_object(), which the unit tests hold them to. The cache keys
    # are slices of the record itself (see drops.h): no decoding until a piece is new.

    def _new_where_text(self, raw: bytes) -> str:
        d = decode(raw)
        text = _cells(STREAM_COLUMNS[1:5], self.where(d.reason, d.location, d.netns, d.ifindex))
        self._remember(self._where_text_cache, raw[_WHERE], text)
        return text

    def _new_flow_text(self, raw: bytes) -> str:
        d = decode(raw)
        proto, flow = self.flow(d.family, d.l4_proto, d.eth_proto, d.saddr, d.sport, d.daddr, d.dport,
                                d.tcp_flags)
        text = self._flow_table.text({"protocol": proto, "len": d.ip_len or d.length, "flow": flow})
        self._remember(self._flow_text_cache, raw[_FLOW], text)
        return text

    @staticmethod
    def _remember(cache: dict[bytes, str], key: bytes, text: str) -> None:
        if len(cache) > 100_000:
            cache.clear()
        cache[key] = text

    def text(self, raw: bytes) -> str:
        where = self._where_text_cache.get(raw[_WHERE]) or self._new_where_text(raw)
        flow = self._flow_text_cache.get(raw[_FLOW]) or self._new_flow_text(raw)
        second, ns = divmod(self._offset_ns + _ts(raw)[0], 1_000_000_000)
        clock = self._seconds.get(second) or self._new_second(second)  # Clock.text(), inlined
        line = f"{clock}.{ns // 1000:06d}  {where}  {flow}"
        if self.socket_owner is not None:
            line += "  " + self.owner_text(decode(raw))
        if raw[_STACK_BYTES] != b"\0\0":
            line += "".join(f"\n        {self.kallsyms.symbolise(a)}" for a in decode(raw).stack)
        return line

    def _new_second(self, second: int) -> str:
        if len(self._seconds) > 1000:
            self._seconds.clear()
        text = self._seconds[second] = self.clock.text(second * 1_000_000_000 - self._offset_ns)[:-7]
        return text

    def _new_where_json(self, raw: bytes) -> str:
        d = decode(raw)
        text = json.dumps(self._where_object(d.reason, d.location, d.netns, d.ifindex))[1:-1]
        self._remember(self._where_json_cache, raw[_WHERE], text)
        return text

    def _new_flow_json(self, raw: bytes) -> str:
        d = decode(raw)
        obj = self._flow_object(d.family, d.l4_proto, d.eth_proto, d.saddr, d.sport, d.daddr, d.dport,
                                d.tcp_flags)
        obj.update(len=d.ip_len or d.length, skb_len=d.length)
        text = json.dumps(obj)[1:-1]
        self._remember(self._flow_json_cache, raw[_FLOW], text)
        return text

    def json_line(self, raw: bytes) -> str:
        """json.dumps(self.json_object(raw)), made from cached pieces."""
        if raw[_STACK_BYTES] != b"\0\0" or self.socket_owner is not None:
            return json.dumps(self.json_object(raw))
        where = self._where_json_cache.get(raw[_WHERE]) or self._new_where_json(raw)
        flow = self._flow_json_cache.get(raw[_FLOW]) or self._new_flow_json(raw)
        return f'{{"time": {round(self.clock.epoch(_ts(raw, 0)[0]), 6)}, {where}, {flow}}}'

    def _where_object(self, reason: int, location: int, netns: int, ifindex: int) -> dict[str, Any]:
        reason_name, location_text, netns_name, interface = self.where(reason, location, netns, ifindex)
        return {"reason": reason_name, "reason_code": reason, "location": location_text,
                "netns": netns_name, "netns_inode": netns or None, "interface": interface or None,
                "ifindex": ifindex or None}

    def _flow_object(self, family: int, l4: int, eth: int, saddr: bytes, sport: int, daddr: bytes,
                     dport: int, flags: int) -> dict[str, Any]:
        proto, _ = self.flow(family, l4, eth, saddr, sport, daddr, dport, flags)
        ports = has_ports(l4)
        obj: dict[str, Any] = {
            "protocol": proto or None,
            "src": endpoint(saddr, 0, False) or None, "sport": sport if ports else None,
            "dst": endpoint(daddr, 0, False) or None, "dport": dport if ports else None,
            "tcp_flags": tcp_flags(flags) if l4 == 6 and family else None,
        }
        if l4 in (1, 58) and family:
            obj["icmp_type"], obj["icmp_code"] = sport, dport
        return obj

    def json_object(self, raw: bytes) -> dict[str, Any]:
        d = decode(raw)
        obj: dict[str, Any] = {"time": round(self.clock.epoch(d.ts_ns), 6)}
        obj.update(self._where_object(d.reason, d.location, d.netns, d.ifindex))
        obj.update(self._flow_object(d.family, d.l4_proto, d.eth_proto, d.saddr, d.sport, d.daddr,
                                     d.dport, d.tcp_flags))
        obj.update(len=d.ip_len or d.length, skb_len=d.length)
        if d.stack:
            obj["stack"] = [self.kallsyms.symbolise(a) for a in d.stack]
        if self.socket_owner is not None:
            obj.update(self.owner_fields(d))
        return obj

    def summary_row(self, key: SummaryKey, packets: int, nbytes: int, rate: float,
                    stack: tuple[int, ...] = ()) -> dict[str, Any]:
        reason, location, netns, interface = self.where(key.reason, key.location, key.netns, key.ifindex)
        row: dict[str, Any] = {
            "count": packets, "rate": round(rate, 1), "bytes": nbytes, "reason": reason,
            "reason_code": key.reason, "location": location, "netns": netns,
            "netns_inode": key.netns or None, "interface": interface, "ifindex": key.ifindex or None,
        }
        if key.family or key.l4_proto:
            proto, flow = self.flow(key.family, key.l4_proto, 0, key.saddr, key.sport, key.daddr,
                                    key.dport, 0)
            ports = has_ports(key.l4_proto)
            row.update(protocol=proto, flow=flow.removesuffix(" [none]"),
                       src=endpoint(key.saddr, 0, False) or None, sport=key.sport if ports else None,
                       dst=endpoint(key.daddr, 0, False) or None, dport=key.dport if ports else None)
        if stack:
            row["stack"] = [self.kallsyms.symbolise(a) for a in stack]
        return row
