"""netbpf fault's command line and configuration, without root or a kernel."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from netbpf.bpf import BpfObject
from netbpf.cli import build_parser
from netbpf.errors import UsageError
from netbpf.tools.fault import kernel
from netbpf.tools.fault.cli import fault_from_args
from netbpf.tools.fault.kernel import Action, Counter, Fault, Selection, default_skip, parse_tcp_flags

HEADER = Path(kernel.__file__).with_name("fault.h").read_text()


def parse(*argv: str) -> Fault:
    return fault_from_args(build_parser().parse_args(["fault", *argv]))


def test_tcp_flag_names() -> None:
    assert parse_tcp_flags("PSH") == 0x08
    assert parse_tcp_flags("psh,ack") == parse_tcp_flags("SYN+ACK") - 0x02 + 0x08 == 0x18
    assert parse_tcp_flags("fin|syn|rst|psh|ack|urg|ece|cwr") == 0xFF
    assert parse_tcp_flags("none") == 0
    with pytest.raises(UsageError, match="unknown TCP flag 'PUSH'"):
        parse_tcp_flags("PUSH")


def test_the_seed_skip_rule_is_the_default_for_set_psh() -> None:
    fault = parse("tcp-flags", "--set", "PSH", "--ratio", "10", "-i", "eth0", "--direction", "egress")
    assert fault.set_flags == 0x08 and fault.skip == 0x07  # SYN, FIN, RST (PSH ones change nothing)
    assert fault.selection == Selection("sample", probability=0.1)
    assert fault.selection.threshold == round(2**32 / 10)
    assert default_skip(0x04, 0) == 0  # --set RST names a control flag: nothing skipped
    assert parse("tcp-flags", "--set", "PSH", "--skip", "none", "-i", "x").skip == 0
    assert parse("tcp-flags", "--clear", "ack", "--skip", "fin", "-i", "x").skip == 0x01


@pytest.mark.parametrize("argv,selection", [
    (["drop", "-i", "x"], Selection()),
    (["drop", "-i", "x", "--probability", "0.3"], Selection("sample", probability=0.3)),
    (["drop", "-i", "x", "--every", "5", "--limit", "7"], Selection("every", every=5, limit=7)),
    (["drop", "-i", "x", "--first-per-flow", "--flows", "99"], Selection("first-per-flow", flows=99)),
    (["drop", "-i", "x", "--limit", "3"], Selection(limit=3)),
])
def test_selection_options(argv: list[str], selection: Selection) -> None:
    assert parse(*argv).selection == selection


def test_selections_exclude_each_other() -> None:
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["fault", "drop", "-i", "x", "--ratio", "3", "--every", "2"])
    assert e.value.code == 2


def test_expression_words_are_joined_as_tcpdump_does() -> None:
    fault = parse("drop", "-i", "eth0", "udp", "port", "53", "--probability", "0.5")
    assert fault.expression == "udp port 53" and fault.selection.probability == 0.5


def test_action_options() -> None:
    assert parse("ttl", "-i", "x").ttl is None
    assert parse("ttl", "-i", "x", "--value", "0x10").ttl == 16
    corrupt = parse("corrupt", "-i", "x", "--bytes", "8", "--keep-checksum")
    assert (corrupt.corrupt_bytes, corrupt.keep_checksum) == (8, True)
    for bad in (["ttl", "-i", "x", "--value", "256"], ["corrupt", "-i", "x", "--bytes", "65"],
                ["drop", "-i", "x", "--probability", "1.5"], ["drop", "-i", "x", "--ratio", "0"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["fault", *bad])


def test_usage_errors() -> None:
    with pytest.raises(UsageError, match="needs --set and/or --clear"):
        parse("tcp-flags", "-i", "x")
    with pytest.raises(UsageError, match="PSH both set and cleared"):
        parse("tcp-flags", "-i", "x", "--set", "psh", "--clear", "PSH,ACK")
    with pytest.raises(UsageError, match="received packets only"):
        kernel.Hook("eth0", "egress", "xdp")


def test_descriptions_read_like_the_command() -> None:
    fault = parse("tcp-flags", "--set", "PSH", "--ratio", "10", "-i", "x", "tcp", "port", "5201")
    assert fault.describe() == ("tcp-flags --set PSH (skipping FIN,SYN,RST segments), "
                                "on 1 in 10 packets matching 'tcp port 5201'")
    assert parse("ttl", "-i", "x", "--first-per-flow", "--limit", "5").describe() == (
        "ttl random in 1..current, on the first packet of each connection, at most 5")
    assert parse("drop", "-i", "x", "--probability", "0.3").describe() == "drop, on 30% of packets"
    assert parse("corrupt", "-i", "x", "--every", "3").describe() == (
        "corrupt 1 payload byte, bad checksum, on every 3rd packet")


def test_rodata_matches_the_objects_globals() -> None:
    with BpfObject.open(Path(kernel.__file__).with_name(kernel.BPF_OBJECT)) as obj:
        globals_ = obj.rodata_variables()
        values = Fault(Action.TTL).rodata(tc_ingress=True)
        assert set(values) <= set(globals_)
        obj.set_rodata(**values)  # sizes fit
        assert {kernel.XDP_PROGRAM, kernel.TC_PROGRAM} <= set(obj.programs)
        assert obj.program(kernel.XDP_PROGRAM).section == "netbpf/xdp"
        assert obj.program(kernel.TC_PROGRAM).section == "netbpf/tc"


def _c_enum(name: str) -> list[str]:
    body = re.search(rf"enum {name} \{{(.*?)\}};", HEADER, re.S).group(1)  # type: ignore[union-attr]
    return re.findall(r"^\s*(FAULT_\w+)", body, re.M)


def test_enums_match_the_header() -> None:
    assert [f"FAULT_{c.name}" for c in Counter] == _c_enum("fault_counter")[:-1]  # without FAULT_COUNTERS
    assert [f"FAULT_ACT_{a.name}" for a in Action] == _c_enum("fault_action")
    assert [int(a) for a in Action] == list(range(1, len(Action) + 1))


def test_filter_reach_from_the_classic_program() -> None:
    """tc makes linear only what the expression reads (libpcap's own programs)."""
    from netbpf.packet.cbpf import filter_reach
    from netbpf.packet.filter import compile_filter

    def reach(expression: str) -> dict[str, int]:
        return filter_reach(compile_filter(expression).classic.insns)

    # Ports: fixed offsets for IPv6 (54 + 4), after the IPv4 header length for IPv4 (14 + 4).
    assert reach("tcp port 80") == {"filter_abs_end": 58, "filter_ind_end": 18, "filter_x_max": 60,
                                    "filter_x_ipv4": 1, "filter_whole": 0}
    assert reach("tcp[20:4] = 1")["filter_ind_end"] == 14 + 20 + 4
    assert reach("udp")["filter_ind_end"] == 0 and reach("udp")["filter_whole"] == 0
    assert reach("greater 200")["filter_whole"] == 1  # `len` is the linear length in tc: see everything
    assert reach("ip6 protochain 6")["filter_whole"] == 1  # X computed by a loop
