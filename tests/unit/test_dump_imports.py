"""dump's parser and its -r path import nothing of the live capture.

`netbpf dump -r F -w G` is timed against tcpdump (bench/dump_read.py): its
cost beyond libpcap's is Python's start-up and imports, so the capture's
modules (libbpf objects, maps, rings, the owner tracker) and the line
formatter are imported only by the live path that uses them.
"""
from __future__ import annotations

import subprocess
import sys

LIVE_ONLY = ("netbpf.tools.dump.kernel", "netbpf.tools.dump.ring", "netbpf.attrib.tracker",
             "netbpf.packet.tcpdump", "netbpf.bpf.maps", "netbpf.bpf.ringbuf")


def test_parser_and_file_path_import_nothing_of_the_capture(tmp_path: object) -> None:
    code = (
        "import argparse, sys\n"
        "from netbpf.tools.dump import cli, offline\n"
        "p = argparse.ArgumentParser(); sub = p.add_subparsers()\n"
        "cli.register(sub)\n"
        f"print(' '.join(m for m in {LIVE_ONLY!r} if m in sys.modules))\n"
    )
    # netbpf.errors still loads the bpf package here (until the errors move to the package
    # root, #13): its maps are then imported by it, not by dump; only dump's own are checked.
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    own = [m for m in loaded if m.startswith("netbpf.tools.dump") or m in ("netbpf.attrib.tracker",
                                                                          "netbpf.packet.tcpdump")]
    assert own == [], own


def test_the_parsers_constants_are_the_captures() -> None:
    from netbpf.tools.dump import cli, kernel

    assert cli.HOOKS == kernel.HOOKS
    assert cli.MAX_SNAPLEN == kernel.MAX_SNAPLEN
