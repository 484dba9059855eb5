"""``netbpf drops``: why packets are lost.

    drops.bpf.c / drops.h / kernel.py    skb:kfree_skb -> ring buffer and in-kernel summary
    reasons.py                           drop reason names from the running kernel
    kallsyms.py                          kernel addresses -> function+offset
    report.py                            text and JSON of a drop
    cli.py, metrics.py                   the command and its Prometheus counters

Scope, names and the event stream are shared with ``netbpf tcp``: ``netbpf.tracepoints``.
"""
