"""Prometheus metrics for ``--metrics HOST:PORT``, on a registry of netbpf's own.

Each gateway or host runs its own netbpf; Prometheus scrapes them all and
sums over instances, which is how many nodes are observed from one place.
"""
from __future__ import annotations

import errno

from prometheus_client import CollectorRegistry, start_http_server

from .bpf.errors import UsageError


def serve(address: tuple[str, int]) -> CollectorRegistry:
    """Start the exporter in a background thread; return the registry to fill."""
    registry = CollectorRegistry(auto_describe=True)
    host, port = address
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise UsageError(f"--metrics {host}:{port}: address already in use") from e
        raise UsageError(f"--metrics {host}:{port}: {e.strerror}") from e
    return registry
