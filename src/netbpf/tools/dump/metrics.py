"""Prometheus gauges for ``netbpf dump --metrics``: the capture program's per-CPU
counters and what the output took, read at each scrape."""
from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric

from ...metrics import gauge
from .kernel import Capture
from .sinks import Sink


def families(capture: Capture, sink: Sink) -> Iterator[Metric]:
    if capture.obj is None:
        return
    seen, matched, lost = capture.counters()
    captured = sink.written if sink.counts_packets else matched - lost
    labels = [capture.options.interface, capture.options.hook]
    for name, value, text in (("seen", seen, "packets that reached the capture program"),
                              ("matched", matched, "packets the kernel filter matched"),
                              ("lost", lost, "matched packets that found no room"),
                              ("captured", captured, "packets written out (or in the buffer)")):
        yield gauge(f"netbpf_dump_{name}_packets", text, ["interface", "hook"], [(labels, value)])
