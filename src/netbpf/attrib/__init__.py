"""Which process owns a packet: socket cookie -> pid, command, cgroup, container.

Built on hooks this kernel allows without kprobes or fentry (see
``netbpf/attrib.h`` and ``tracker.py``); the container comes from the cgroup
path alone (``container.py``).
"""
