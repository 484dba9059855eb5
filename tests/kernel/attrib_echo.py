"""Echo server for the attribution tests: TCP and UDP, IPv4 and IPv6, one port.

    attrib_echo.py PORT [FD]     (prints "ready" once all four listen)

FD: a cgroup's cgroup.procs to join first (opened by the test).
"""
from __future__ import annotations

import os
import selectors
import socket
import sys


def main() -> None:
    port = int(sys.argv[1])
    if len(sys.argv) > 2:
        os.write(int(sys.argv[2]), str(os.getpid()).encode())
        os.close(int(sys.argv[2]))
    sel = selectors.DefaultSelector()
    for family, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            s = socket.socket(family, kind)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((addr, port))
            if kind == socket.SOCK_STREAM:
                s.listen(64)
            sel.register(s, selectors.EVENT_READ, kind)
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            assert isinstance(s, socket.socket)
            if key.data == socket.SOCK_DGRAM:
                data, peer = s.recvfrom(2048)
                s.sendto(data, peer)
            elif key.data == socket.SOCK_STREAM:
                conn, _ = s.accept()
                sel.register(conn, selectors.EVENT_READ, "conn")
            else:
                data = s.recv(2048)
                if data:
                    s.sendall(data)
                else:
                    sel.unregister(s)
                    s.close()


if __name__ == "__main__":
    main()
