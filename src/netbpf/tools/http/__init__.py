"""``netbpf http``: trace HTTP through a load-balancing gateway.

    http.bpf.c / http.h / kernel.py    the socket filter or tc program, its configuration and
                                       counters; count.h counts HTTP/1.x in the kernel, emit.h
                                       writes one record per transaction
    counted.py                         what the kernel counted, per backend (--summary, --metrics)
    records.py                         the kernel's per-transaction records (lines, --json)
    ring.py, tracer.py                 the user-space path: frames through a TPACKET_V3 ring,
                                       decapsulated, reassembled, parsed (netbpf.packet), paired
    summary.py, roles.py, report.py    tables, the balance verdict, lines and JSON
    owners.py                          --process: the local process on each side
    cli.py, metrics.py                 the command and its Prometheus families
"""
