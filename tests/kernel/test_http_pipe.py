"""`netbpf http ... | head`: when the reader goes away, the table and the exit line still
reach stderr, as dump's and drops' exit lines do (they were lost with the broken pipe)."""
from __future__ import annotations

import subprocess
import sys

from netbpf.lab import Lab


def test_exit_lines_survive_a_closed_pipe(pair: Lab) -> None:
    server = pair.popen(pair.gateway, sys.executable, "-m", "http.server", "8080",
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pair.wait_listening(pair.gateway, 8080)
        command = (f"{sys.executable} -m netbpf --netns {pair.gateway} http -i c0 --port 8080 | head -1")
        proc = subprocess.Popen(["bash", "-c", f"set -o pipefail; {command}"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        banner = proc.stderr.readline()
        assert "tracing HTTP" in banner, banner
        # Lines written before head has read its one may all fit in the pipe: requests go
        # on (a bounded number) until a line's write finds the pipe closed.
        for _ in range(100):
            pair.run(pair.client, "curl", "-s", "-o", "/dev/null", "http://10.0.1.1:8080/")
            try:
                proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
        out, err = proc.communicate(timeout=60)
    finally:
        server.kill()
    assert proc.returncode == 0, err
    assert out.startswith("TIME ") and out.count("\n") == 1
    assert "Traceback" not in err
    assert "balance:" in err and "netbpf http: kernel path: " in err, err
