"""netbpf accel: sockops + sk_msg acceleration of local TCP, pinned so that it
outlives the command.

    enable(options)   load accel.bpf.o, attach sk_msg to the sockhash, then
                      sock_ops to the cgroup, pin everything under the pin dir
    disable()         stop redirecting, detach, unpin (idempotent)
    read_status()     what the pins say: where, how many sockets, counters

Nothing is remembered outside bpffs: status and disable read the pins, so
they work from any process, after any restart of netbpf.

Disabling never deletes sockets from the sockhash. Deleting one frees its
psock and with it the data other sockets already redirected into it and that
the application has not read yet (seen here: 100 KB lost). Instead
``disable`` sets ``draining`` (every later message takes TCP, which a reader
sees after the queued data, in order), detaches and unpins. The kernel frees
the programs and maps when the last accelerated socket closes; until then
they show as "draining" in ``status``.

The code lives by role; this module gathers the API the CLI, bench and
tests use:

    layout.py    what accel.bpf.c and Python share (structs, counters)
    options.py   what enable is asked for (ports, thresholds)
    pins.py      the pin directory, read back from any process
    cgroups.py   the cgroup v2 directory, from a path or an id
    sockets.py   sockhash keys and the accelerated sockets
    enable.py, disable.py, status.py
"""
from __future__ import annotations

from ...bpf.maps import Map  # tests read pinned maps through here
from ...bpf.object import object_path
from .cgroups import cgroup_path, resolve_cgroup
from .disable import DisableResult, disable
from .enable import enable
from .layout import (
    BPF_MAP_TYPE_SOCKHASH,
    BPF_OBJECT,
    BPF_SK_MSG_VERDICT,
    COUNTER_KEYS,
    MAX_PORTS,
    MSG_PROG,
    SO_NETNS_COOKIE,
    SOCKOPS_PROG,
    TCP_REASONS,
    AccelKey,
    Control,
    Counter,
    SockState,
)
from .options import (
    DEMOTE_AFTER,
    SMALL_BYTES,
    Options,
    compress_ports,
    describe_scope,
    parse_ports,
    tcp_max_buffered,
)
from .pins import (
    MAP_OF_ROLE,
    PINS,
    PinsHidden,
    check_pin_dir,
    check_pins_visible,
    count_keys,
    default_pin_dir,
    map_keys,
)
from .sockets import Socket, format_endpoint, key_of, netns_cookie_of_socket, netns_cookies, sockets
from .status import Draining, Status, find_draining, pinned_prog_ids, read_status

__all__ = [
    "BPF_MAP_TYPE_SOCKHASH",
    "BPF_OBJECT",
    "BPF_SK_MSG_VERDICT",
    "COUNTER_KEYS",
    "DEMOTE_AFTER",
    "MAP_OF_ROLE",
    "MAX_PORTS",
    "MSG_PROG",
    "PINS",
    "SMALL_BYTES",
    "SOCKOPS_PROG",
    "SO_NETNS_COOKIE",
    "TCP_REASONS",
    "AccelKey",
    "Control",
    "Counter",
    "DisableResult",
    "Draining",
    "Map",
    "Options",
    "PinsHidden",
    "SockState",
    "Socket",
    "Status",
    "cgroup_path",
    "check_pin_dir",
    "check_pins_visible",
    "compress_ports",
    "count_keys",
    "default_pin_dir",
    "describe_scope",
    "disable",
    "enable",
    "find_draining",
    "format_endpoint",
    "key_of",
    "map_keys",
    "netns_cookie_of_socket",
    "netns_cookies",
    "object_path",
    "parse_ports",
    "pinned_prog_ids",
    "read_status",
    "resolve_cgroup",
    "sockets",
    "tcp_max_buffered",
]
