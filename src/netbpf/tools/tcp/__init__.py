"""``netbpf tcp``: what TCP is doing, from the kernel's tcp:* and sock:* tracepoints.

    tcp.bpf.c / tcp.h / kernel.py    tcp:* and sock:inet_sock_set_state -> ring buffer and counters
    cli.py, metrics.py               the command and its Prometheus counters

Scope, names and the event stream are shared with ``netbpf drops``: ``netbpf.tracepoints``.
"""
