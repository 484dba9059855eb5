"""tcpdump expressions for netbpf's kernel programs.

    compiled = compile_filter("tcp port 80 or icmp", snaplen=262144)
    inject.set_code(obj.program("netbpf_dump"), compiled.ebpf)   # before obj.load()

libpcap compiles the expression exactly as tcpdump would (Ethernet link
type); :mod:`netbpf.packet.cbpf` translates the classic program into the
eBPF body of the ``netbpf_filter`` subprogram. An empty expression matches
every packet and keeps ``snaplen`` bytes.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..bpf.errors import FilterError
from . import cbpf
from .libpcap import DLT_EN10MB, ClassicProgram, compile_classic


@dataclass(frozen=True, slots=True)
class CompiledFilter:
    expression: str
    classic: ClassicProgram
    ebpf: bytes

    def matches(self, packet: bytes) -> int:
        """libpcap's own verdict for ``packet`` (for checks and tests)."""
        return self.classic.matches(packet)


def compile_filter(expression: str | list[str] | None, snaplen: int = 262144,
                   linktype: int = DLT_EN10MB) -> CompiledFilter:
    """Compile a tcpdump expression (words are joined, as tcpdump does) to eBPF."""
    if isinstance(expression, list):
        expression = " ".join(expression)
    expression = (expression or "").strip()
    classic = compile_classic(expression, snaplen, linktype)
    try:
        ebpf = cbpf.translate(classic.insns)
    except cbpf.TranslationError as e:
        raise FilterError(expression, str(e)) from e
    return CompiledFilter(expression, classic, ebpf)
