"""Whose pin directory is this? status and cleanup read it from the path alone."""
from __future__ import annotations

from netbpf.bpf.fs import PIN_ROOT
from netbpf.pin_owners import pin_owner

PLACES = {"nb-gw": {(2, "c0"), (5, "eth_1")}, "host": {(1, "lo")}}


def test_a_dump_directory_names_namespace_interface_index_and_pid() -> None:
    owner = pin_owner(PIN_ROOT / "dump" / "nb-gw_c0_2_4711" / "xdp_original", PLACES)
    assert owner is not None
    assert (owner.tool, owner.netns, owner.interface, owner.pid, owner.present) == ("dump", "nb-gw", "c0", 4711, True)
    assert owner.directory == PIN_ROOT / "dump" / "nb-gw_c0_2_4711"


def test_interface_names_with_underscores_and_a_new_index_of_the_same_name() -> None:
    owner = pin_owner(PIN_ROOT / "dump" / "nb-gw_eth_1_5_9" / "xdp_original", PLACES)
    assert owner is not None and (owner.interface, owner.present) == ("eth_1", True)
    moved = pin_owner(PIN_ROOT / "dump" / "nb-gw_c0_7_9" / "xdp_original", PLACES)
    assert moved is not None and not moved.present  # c0 is index 2 now: that one was deleted


def test_a_chain_being_built_and_a_chain_on_a_deleted_interface() -> None:
    building = pin_owner(PIN_ROOT / "xdp" / "nb-gw" / "c0:new:812" / "dispatcher", PLACES)
    assert building is not None
    assert (building.tool, building.interface, building.pid, building.present) == ("xdp chain", "c0", 812, True)
    assert building.directory == PIN_ROOT / "xdp" / "nb-gw" / "c0:new:812"
    gone = pin_owner(PIN_ROOT / "xdp" / "nb-gw" / "u0" / "xdp_chain", PLACES)
    assert gone is not None and (gone.pid, gone.present) == (0, False)


def test_a_pinned_fault_and_what_is_nobodys() -> None:
    fault = pin_owner(PIN_ROOT / "fault" / "nb-gw" / "u0" / "ingress" / "link", PLACES)
    assert fault is not None and (fault.tool, fault.interface, fault.present) == ("fault", "u0", False)
    assert fault.directory == PIN_ROOT / "fault" / "nb-gw" / "u0" / "ingress"
    assert pin_owner(PIN_ROOT / "accel" / "sockhash", PLACES) is None
    assert pin_owner(PIN_ROOT / "dump" / "other-ns_c0_2_1" / "xdp_original", PLACES) is None
