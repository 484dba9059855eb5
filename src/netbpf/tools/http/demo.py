"""The demo scene of ``netbpf http``: the seed's question on live lab traffic.

nginx on the gateway balances over the lab's backends with skewed weights;
the tool shows each request with the backend that served it, then the
per-backend table that says the spread is uneven; the weights are evened
out and the verdict changes.
"""
from __future__ import annotations

import time
from typing import Any

from ...lab.servers import Backend, NginxGateway


def _wait_ready(proc: Any, seconds: float = 3.0) -> None:
    time.sleep(seconds)  # the BPF load and the ring take about a second


def scene(demo: Any) -> None:
    lab = demo.lab
    if len(lab.backends) < 2:
        return
    n = len(lab.backends)
    weights = [5] + [1] * (n - 1)
    demo.title("netbpf http: which backend served each request, and is the spread even?")
    demo.say(f"nginx on {lab.gateway} balances port 80 over {n} backends (port 8080) with weights "
             f"{':'.join(map(str, weights))}: a bad spread, as in the seed")
    backends = [Backend(lab, i) for i in range(1, n + 1)]
    gateway = NginxGateway(lab, weights=weights)
    try:
        for b in backends:
            b.start()
        gateway.start()
        demo.say("Every transaction between the gateway and the backends, with a test tag:")
        proc = demo.start(["netbpf", "http", "-i", "any", "--port", "8080", "--tag-header", "X-Test-Id",
                           "-c", "6"], netns=lab.gateway)
        _wait_ready(proc)
        demo.run(["bash", "-c", "for i in 1 2 3 4 5 6; do curl -s -o /dev/null -H \"X-Test-Id: probe-$i\" "
                  f"\"http://{lab.GATEWAY_IP}/api/$i?size=$((i * 1000))\"; done"], netns=lab.client)
        demo.finish(proc)

        demo.say("Only the table, under load (wrk through the gateway for 3 seconds):")
        proc = demo.start(["netbpf", "http", "-i", "any", "--port", "8080", "--summary", "--duration", "6"],
                          netns=lab.gateway)
        _wait_ready(proc, 2.0)
        demo.run(["wrk", "-t1", "-c8", "-d3s", f"http://{lab.GATEWAY_IP}/"], netns=lab.client, max_lines=4)
        demo.finish(proc)

        demo.say("The weights evened out (nginx reloaded), the same command again:")
        gateway.set_weights([1] * n)
        proc = demo.start(["netbpf", "http", "-i", "any", "--port", "8080", "--summary", "--duration", "6"],
                          netns=lab.gateway)
        _wait_ready(proc, 2.0)
        demo.run(["wrk", "-t1", "-c8", "-d3s", f"http://{lab.GATEWAY_IP}/"], netns=lab.client, max_lines=4)
        demo.finish(proc)
    finally:
        gateway.stop()
        for b in backends:
            b.stop()
