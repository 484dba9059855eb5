"""What accel.bpf.c and Python share: the object, its programs, structs and counters."""
from __future__ import annotations

import ctypes
import enum

from ...bpf.attach import sockmap as sockmap_attach

BPF_OBJECT = "accel.bpf.o"
SOCKOPS_PROG, MSG_PROG = "netbpf_acc_ops", "netbpf_acc_msg"
BPF_SK_MSG_VERDICT = sockmap_attach.BPF_SK_MSG_VERDICT
BPF_MAP_TYPE_SOCKHASH = 18
MAX_PORTS = 64  # max_entries of accel_ports
SO_NETNS_COOKIE = 71


class AccelKey(ctypes.Structure):
    _c_name_ = "accel_key"
    _fields_ = [
        ("netns", ctypes.c_uint64),
        ("local_ip", ctypes.c_uint8 * 16),  # the C side reads it as 4 x __u32, network order
        ("remote_ip", ctypes.c_uint8 * 16),
        ("local_port", ctypes.c_uint32),
        ("remote_port", ctypes.c_uint32),
    ]


class SockState(ctypes.Structure):
    _c_name_ = "accel_sock_state"
    _fields_ = [("small_run", ctypes.c_uint32), ("tcp_only", ctypes.c_uint32),
                ("queued_at", ctypes.c_uint64)]


class Control(ctypes.Structure):
    _c_name_ = "accel_control"
    _fields_ = [("draining", ctypes.c_uint32), ("_pad", ctypes.c_uint32)]


SHARED_STRUCTS = (AccelKey, SockState, Control)


class Counter(enum.IntEnum):
    """enum accel_counter"""
    SOCKETS_ADDED = 0
    SOCKETS_FAILED = 1
    SOCKETS_NO_PEER = 2
    SOCKETS_SMALL = 3
    SOCKETS_BACKLOG = 4
    MSG_REDIRECTED = 5
    BYTES_REDIRECTED = 6
    MSG_TCP = 7
    BYTES_TCP = 8
    MAX_UNREAD = 9  # a maximum per CPU, not a sum


COUNTER_KEYS = {
    Counter.SOCKETS_ADDED: "sockets_added",
    Counter.SOCKETS_FAILED: "sockets_failed",
    Counter.SOCKETS_NO_PEER: "sockets_tcp_no_peer",
    Counter.SOCKETS_SMALL: "sockets_tcp_small_writes",
    Counter.SOCKETS_BACKLOG: "sockets_tcp_backlog",
    Counter.MSG_REDIRECTED: "messages_redirected",
    Counter.BYTES_REDIRECTED: "bytes_redirected",
    Counter.MSG_TCP: "messages_tcp",
    Counter.BYTES_TCP: "bytes_tcp",
    Counter.MAX_UNREAD: "max_unread_bytes",
}

TCP_REASONS = {0: "redirect", 1: "tcp (no peer)", 2: "tcp (small writes)", 3: "tcp (peer backlog)"}
