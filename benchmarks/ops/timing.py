"""A stopwatch for the measured part of an operation, garbage collection held off.

A collection triggered by the 100k objects of ``bulk_create`` can land in one variant's
run and not another's; ``timeit`` disables it for the same reason.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Elapsed:
    seconds: float = 0.0


@contextmanager
def stopwatch() -> Iterator[Elapsed]:
    elapsed = Elapsed()
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    start = time.perf_counter()
    try:
        yield elapsed
    finally:
        elapsed.seconds = time.perf_counter() - start
        if was_enabled:
            gc.enable()
