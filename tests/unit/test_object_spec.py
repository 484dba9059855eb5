"""Opening an object needs no root and no kernel: names, sections and globals are there."""
from __future__ import annotations

import os
import pickle

import pytest

from netbpf.bpf import BpfObject, selftest
from netbpf.errors import BuildMissing, NotPermitted
from tests.conftest import skip_unless_nobody_can_run_netbpf


def as_nobody(fn):  # type: ignore[no-untyped-def]
    """Run fn in a child process with uid/gid nobody when we are root; else directly."""
    if os.geteuid() != 0:
        return fn()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            payload = pickle.dumps(("ok", fn()))
        except BaseException as e:  # handed back to the parent
            payload = pickle.dumps(("error", repr(e), type(e).__name__))
        os.write(w, payload)
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.waitpid(pid, 0)
    result = pickle.loads(data)
    if result[0] == "error":
        raise AssertionError(f"{result[2]}: {result[1]}")
    return result[1]


def describe() -> dict[str, object]:
    with selftest.open_object() as obj:
        return {
            "programs": {p.name: (p.section, p.type_name) for p in obj.programs.values()},
            "maps": sorted(obj.maps),
            "rodata": obj.rodata_variables(),
        }


def test_open_needs_no_root() -> None:
    skip_unless_nobody_can_run_netbpf()
    d = as_nobody(describe)
    assert d["programs"]["netbpf_st_xdp"] == ("xdp", "xdp")
    assert d["programs"]["netbpf_st_tc"] == ("tc", "sched_cls")
    assert d["programs"]["netbpf_st_tpbtf"] == ("tp_btf/kfree_skb", "tracing")
    assert d["programs"]["netbpf_st_tp"] == ("tracepoint/skb/kfree_skb", "tracepoint")
    assert {"counters", "records", "records_lost", "xdp_original", "samples"} <= set(d["maps"])  # type: ignore[arg-type]
    assert d["rodata"] == {"xdp_verdict": 4, "match_reason": 4, "netbpf_filter_default": 4}
    assert d["programs"]["netbpf_st_filt"] == ("netbpf/xdp", "xdp")


def test_set_rodata_checks_names_and_sizes() -> None:
    with selftest.open_object() as obj:
        obj.set_rodata(xdp_verdict=1, match_reason=b"\x03\0\0\0")
        with pytest.raises(KeyError, match="no const volatile global named 'nope'"):
            obj.set_rodata(nope=1)
        with pytest.raises(ValueError, match="2 bytes given, variable has 4"):
            obj.set_rodata(xdp_verdict=b"ab")


def test_load_as_non_root_is_not_permitted() -> None:
    def load() -> str:
        with selftest.open_object() as obj:
            try:
                obj.load()
            except NotPermitted as e:
                return str(e)
        return "loaded"

    if os.geteuid() != 0:
        pytest.skip("checks a child dropped from root to nobody")
    skip_unless_nobody_can_run_netbpf()
    assert "permission denied (run as root)" in as_nobody(load)


def test_missing_object_says_run_the_build(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BuildMissing, match="make build"):
        BpfObject.open(tmp_path / "nope.bpf.o")


def test_unknown_program_and_map_names_list_the_real_ones() -> None:
    with selftest.open_object() as obj:
        with pytest.raises(KeyError, match="has: netbpf_st_xdp"):
            obj.program("nope")
        with pytest.raises(KeyError, match="counters"):
            obj.map("nope")
