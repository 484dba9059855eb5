"""Prometheus counters for ``netbpf fault --metrics``: the fault's own counters map,
read at each scrape."""
from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric

from ...metrics import counter
from .kernel import ActiveFault


def families(active: ActiveFault) -> Iterator[Metric]:
    labels = [active.hook.interface, active.hook.direction, active.kind, active.fault.action.cli_name]
    yield counter("netbpf_fault_packets", "Packets at a netbpf fault's hook, by stage "
                  "(seen, matched, skipped, hit, errors)",
                  ["interface", "direction", "hook", "action", "stage"],
                  (([*labels, stage], value) for stage, value in active.counts().as_dict().items()))
