"""The kernel's latency histogram (count.h's buckets, read by kernel.py): fine
enough for p50/p90/p99 within 2% of the exact nearest-rank value."""
from __future__ import annotations

import math
import random

from netbpf.tools.http.counted import BUCKETS, bucket_of, bucket_value, hist_percentile


def test_buckets_hold_their_values() -> None:
    for ns in [0, 1, 31, 32, 33, 63, 64, 1000, 123456, 10**9, 2**42, 2**42 + 5]:
        b = bucket_of(ns)
        assert 0 <= b < BUCKETS
        assert abs(bucket_value(b) - ns) <= max(0.5, ns / 64), ns
    assert bucket_of(2**50) == BUCKETS - 1
    # Monotonic: a larger latency never falls in an earlier bucket.
    prev = 0
    for ns in range(0, 200000, 7):
        assert bucket_of(ns) >= prev
        prev = bucket_of(ns)


def test_percentiles_within_two_percent_of_exact() -> None:
    rng = random.Random(1)
    for mu, sigma in ((13, 1.5), (9, 0.3), (16, 2.5)):  # ~0.4 ms wide, ~8 us narrow, ~9 ms heavy tail
        values = sorted(int(rng.lognormvariate(mu, sigma)) for _ in range(20000))
        hist = [0] * BUCKETS
        for v in values:
            hist[bucket_of(v)] += 1
        for q in (50, 90, 99):
            exact = values[max(1, math.ceil(q / 100 * len(values))) - 1]
            got = hist_percentile(hist, q)
            assert got is not None and abs(got - exact) <= 0.016 * exact + 1, (mu, q, got, exact)
    assert hist_percentile([0] * BUCKETS, 50) is None
