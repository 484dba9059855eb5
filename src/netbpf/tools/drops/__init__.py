"""``netbpf drops`` and ``netbpf tcp``: why packets are lost and what TCP is doing.

    drops.bpf.c / drops.h / kernel.py    skb:kfree_skb -> ring buffer and in-kernel summary
    tcp.bpf.c / tcp.h / tcpevents.py     tcp:* and sock:inet_sock_set_state tracepoints
    reasons.py                           drop reason names from the running kernel
    kallsyms.py                          kernel addresses -> function+offset
    names.py, report.py, scope.py        text, JSON and filters shared by both commands
    cli.py, tcpcli.py, metrics.py        the two commands and their Prometheus counters
"""
