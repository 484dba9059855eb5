"""What the tracepoint tools (``drops``, ``tcp``) share, a floor below them.

    scope.py     which namespace, address or port to watch: flags and the C filter's rodata
                 (``bpf/include/netbpf/scope.h``; ``kernel.h`` there declares what they read)
    names.py     protocols, TCP states and flags, endpoints, namespace names, the kernel clock
    stream.py    print events until stopped (Ctrl-C, SIGTERM, -c N), losses counted
"""
