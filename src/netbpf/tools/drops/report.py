"""What ``netbpf drops`` prints: one set of columns for text, JSON and CSV.

A streamed drop becomes a row (a dict); the columns turn it into an aligned
line or a JSON object. Rows for a flood come from caches: the part that
depends on (reason, location, namespace, interface) and the flow text are
computed once per distinct value, the time once per second.
"""
from __future__ import annotations

from typing import Any

from ...output import Column, Table
from .events import Drop, SummaryKey, decode
from .kallsyms import Kallsyms
from .names import Clock, Names, endpoint, has_ports, protocol_name, tcp_flags
from .reasons import DropReasons

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

# Keys of the JSON object of a streamed drop (beyond the text columns).
JSON_KEYS = ["time", "reason", "reason_code", "location", "netns", "netns_inode", "interface",
             "ifindex", "protocol", "src", "sport", "dst", "dport", "tcp_flags", "len", "skb_len"]


class DropFormatter:
    def __init__(self, reasons: DropReasons, kallsyms: Kallsyms, names: Names | None = None) -> None:
        self.reasons = reasons
        self.kallsyms = kallsyms
        self.names = names or Names()
        self.clock = Clock()
        self.table = Table(STREAM_COLUMNS)
        self._where: dict[tuple[int, int, int, int], tuple[str, str, str, str]] = {}
        self._flows: dict[tuple[Any, ...], tuple[str, str]] = {}

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

    def text(self, raw: bytes) -> str:
        d = decode(raw)
        line = self.table.text(self.row(d))
        if d.stack:
            line += "".join(f"\n        {self.kallsyms.symbolise(a)}" for a in d.stack)
        return line

    def json_object(self, raw: bytes) -> dict[str, Any]:
        d = decode(raw)
        reason, location, netns, interface = self.where(d.reason, d.location, d.netns, d.ifindex)
        proto, _ = self.flow(d.family, d.l4_proto, d.eth_proto, d.saddr, d.sport, d.daddr, d.dport,
                             d.tcp_flags)
        ports = has_ports(d.l4_proto)
        obj: dict[str, Any] = {
            "time": round(self.clock.epoch(d.ts_ns), 6), "reason": reason, "reason_code": d.reason,
            "location": location, "netns": netns, "netns_inode": d.netns or None,
            "interface": interface or None, "ifindex": d.ifindex or None, "protocol": proto or None,
            "src": endpoint(d.saddr, 0, False) or None, "sport": d.sport if ports else None,
            "dst": endpoint(d.daddr, 0, False) or None, "dport": d.dport if ports else None,
            "tcp_flags": tcp_flags(d.tcp_flags) if d.l4_proto == 6 and d.family else None,
            "len": d.ip_len or d.length, "skb_len": d.length,
        }
        if d.l4_proto in (1, 58) and d.family:
            obj["icmp_type"], obj["icmp_code"] = d.sport, d.dport
        if d.stack:
            obj["stack"] = [self.kallsyms.symbolise(a) for a in d.stack]
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
