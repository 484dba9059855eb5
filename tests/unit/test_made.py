"""The record of what netbpf loaded: read back exactly, and only for this boot."""
from __future__ import annotations

from netbpf.bpf import made


def test_parse_reads_programs_by_id_and_tag_and_maps() -> None:
    into = made.Made()
    progs, maps = made.parse("boot B\nprog 12 0011223344556677\nmap 7\nmap 9\n", "B", into)
    assert progs == {12} and maps == {7, 9}
    assert into.has_prog(12, "0011223344556677")
    assert not into.has_prog(12, "ffffffffffffffff")  # same id, another program: not ours
    assert not into.has_prog(13, "0011223344556677")
    assert into.has_map(7) and not into.has_map(8)


def test_parse_ignores_another_boot_and_a_line_cut_short() -> None:
    into = made.Made()
    assert made.parse("boot OLD\nprog 12 00\nmap 7\n", "NEW", into) == (set(), set())
    assert not into.progs and not into.maps
    progs, maps = made.parse("boot NEW\nmap 7\nprog 1", "NEW", into)  # SIGKILL mid-line
    assert progs == set() and maps == {7}
    assert made.parse("", "NEW", into) == (set(), set())
