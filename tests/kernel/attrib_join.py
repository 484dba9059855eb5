"""attrib_join.py FD COMMAND [ARG...]: join the cgroup whose cgroup.procs is FD, then exec COMMAND.

For the attribution tests: a program that cannot join a cgroup itself (nginx,
curl) joins it before it starts, so every process and socket it makes is there.
FD is opened by the test (``ip netns exec`` mounts a sysfs of its own, without
the cgroup file systems). exec keeps the pid: the test's Popen.pid is the program's.
"""
from __future__ import annotations

import os
import sys

fd = int(sys.argv[1])
os.write(fd, str(os.getpid()).encode())
os.close(fd)
os.execvp(sys.argv[2], sys.argv[2:])
