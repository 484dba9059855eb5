"""tcpdump expressions for netbpf's kernel programs.

    compiled = compile_filter("tcp port 80 or icmp", snaplen=262144)
    inject.set_code(obj.program("netbpf_dump"), compiled.ebpf)   # before obj.load()

libpcap compiles the expression exactly as tcpdump would (Ethernet link
type); :mod:`netbpf.packet.cbpf` translates the classic program into the
eBPF body of the ``netbpf_filter`` subprogram. An empty expression matches
every packet and keeps ``snaplen`` bytes.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import FilterError
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
                   linktype: int = DLT_EN10MB, ancillary: Mapping[int, int] | None = None,
                   hook: str = "") -> CompiledFilter:
    """Compile a tcpdump expression (words are joined, as tcpdump does) to eBPF.

    ``ancillary``: what the hook knows of every packet (see :func:`hook_facts`);
    ``hook`` names it in the message when an expression needs what it does not know.
    """
    if isinstance(expression, list):
        expression = " ".join(expression)
    expression = (expression or "").strip()
    classic = compile_classic(expression, snaplen, linktype)
    try:
        ebpf = cbpf.translate(classic.insns, ancillary)
    except cbpf.TranslationError as e:
        raise FilterError(expression, f"{e}{', ' + hook if hook else ''}") from e
    return CompiledFilter(expression, classic, ebpf)


def hook_facts(hook: str, ifindex: int) -> dict[int, int]:
    """The ancillary values a capture hook knows for every packet it sees.

    At tc the direction is the hook's own (egress: PACKET_OUTGOING, as Linux
    marks what it sends; ingress: never outgoing); XDP is not told the
    direction, so ``inbound``/``outbound`` are refused there. Every hook is on
    one interface, so ``ifindex`` is known everywhere (0: not known, refused).
    """
    facts = {cbpf.SKF_AD_IFINDEX: ifindex} if ifindex else {}
    if hook == "tc-egress":
        facts[cbpf.SKF_AD_PKTTYPE] = cbpf.PACKET_OUTGOING
    elif hook == "tc-ingress":
        facts[cbpf.SKF_AD_PKTTYPE] = cbpf.PACKET_HOST
    return facts
