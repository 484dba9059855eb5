"""A process for the attribution tests: joins a cgroup, names itself, opens sockets, talks.

    attrib_worker.py FD COMM PEER4 PEER6 PORT

FD is the cgroup's cgroup.procs, opened by the test (``ip netns exec``
mounts a sysfs of its own, without the cgroup file systems).

Joins the cgroup first (so that its sockets are made there), sets its command
with prctl(PR_SET_NAME), opens one TCP and one UDP socket to each peer
(IPv4, IPv6), prints its pid and local ports as one JSON line, then for each
line on stdin: "open" opens the same set again, "send N" sends N messages on
every socket and reads the echoes, "quit" ends (sockets closed last).
"""
from __future__ import annotations

import ctypes
import json
import os
import socket
import sys

PR_SET_NAME = 15


def main() -> None:
    procs, comm, peer4, peer6, port = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    os.write(int(procs), str(os.getpid()).encode())
    os.close(int(procs))
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NAME, comm.encode(), 0, 0, 0)
    socks: list[tuple[str, socket.socket]] = []

    def open_set() -> None:
        for family, peer in ((socket.AF_INET, peer4), (socket.AF_INET6, peer6)):
            for kind, name in ((socket.SOCK_STREAM, "tcp"), (socket.SOCK_DGRAM, "udp")):
                s = socket.socket(family, kind)
                s.settimeout(5)
                s.connect((peer, port))
                socks.append((name, s))

    def report() -> None:
        ports = [{"proto": name, "port": s.getsockname()[1]} for name, s in socks]
        print(json.dumps({"pid": os.getpid(), "sockets": ports}), flush=True)

    open_set()
    report()
    for line in sys.stdin:
        words = line.split()
        if words[0] == "open":
            open_set()
        elif words[0] == "send":
            for i in range(int(words[1])):
                for name, s in socks:
                    message = f"{name} {i}\n".encode()
                    s.sendall(message)
                    got = b""
                    while len(got) < len(message):
                        got += s.recv(100)
        elif words[0] == "quit":
            break
        report()


if __name__ == "__main__":
    main()
