"""How fast this machine multiplies matrices now: the yardstick benchmarks print their GFLOP/s against."""

from __future__ import annotations

import time

import tensorflow as tf


def matmul_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Best float32 matmul throughput of this machine over ``repeats`` products of ``size`` x ``size``, in GFLOP/s."""
    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    tf.matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        tf.matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9
