"""Prometheus metrics for ``--metrics HOST:PORT``, on a registry of netbpf's own.

Each gateway or host runs its own netbpf; Prometheus scrapes them all and
sums over instances, which is how many nodes are observed from one place.

The socket is bound by ``bind()`` before the tool touches the kernel (the CLI
does it right after parsing), so that a busy or unassignable address is one
error line with nothing attached; the tool's ``serve()`` then fills that
registry and says where it listens. ``:PORT`` means loopback (see
``cliutil.host_port``): the metrics carry request paths and flows.
"""
from __future__ import annotations

import errno
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from .errors import UsageError

_bound: dict[tuple[str, int], CollectorRegistry] = {}


def url(address: tuple[str, int]) -> str:
    host, port = address
    return f"http://[{host}]:{port}/metrics" if ":" in host else f"http://{host}:{port}/metrics"


def bind(address: tuple[str, int]) -> CollectorRegistry:
    """Bind the exporter's socket and start serving (nothing yet) in a background thread."""
    if address in _bound:
        return _bound[address]
    registry = CollectorRegistry(auto_describe=True)
    host, port = address
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise UsageError(f"--metrics {where}: address already in use") from e
        raise UsageError(f"--metrics {where}: {e.strerror or e}") from e
    except (ValueError, UnicodeError) as e:  # a host name the resolver cannot even encode
        raise UsageError(f"--metrics {where}: not a host name or address") from e
    _bound[address] = registry
    return registry


def serve(address: tuple[str, int]) -> CollectorRegistry:
    """The registry to fill, its socket bound (now, if ``bind()`` was not called); one line
    on stderr says where it listens."""
    registry = bind(address)
    print(f"netbpf: serving metrics on {url(address)}", file=sys.stderr, flush=True)
    return registry


class _Collector:
    """A collector is anything with collect(); this one calls the tool's function."""

    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self.collect = collect


def export(address: tuple[str, int], collect: Callable[[], Iterable[Metric]]) -> None:
    """Serve the families ``collect()`` returns, called at every scrape: each tool's
    metrics are read from its counters then (the kernel's, mostly), never kept twice."""
    serve(address).register(_Collector(collect))


Rows = Iterable[tuple[Sequence[str], float]]


F = TypeVar("F", CounterMetricFamily, GaugeMetricFamily)


def _family(kind: type[F], name: str, doc: str, labels: Sequence[str], rows: Rows, value: float | None) -> F:
    """One ``value``, or one row per label set."""
    if value is not None:
        return kind(name, doc, value=value)
    family = kind(name, doc, labels=list(labels))
    for values, v in rows:
        family.add_metric(list(values), v)
    return family


def counter(name: str, doc: str, labels: Sequence[str] = (), rows: Rows = (),
            value: float | None = None) -> CounterMetricFamily:
    """A counter family: one ``value``, or one row per label set."""
    return _family(CounterMetricFamily, name, doc, labels, rows, value)


def gauge(name: str, doc: str, labels: Sequence[str] = (), rows: Rows = (),
          value: float | None = None) -> GaugeMetricFamily:
    """A gauge family: one ``value``, or one row per label set."""
    return _family(GaugeMetricFamily, name, doc, labels, rows, value)
