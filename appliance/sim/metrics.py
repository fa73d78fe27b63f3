"""Figures of merit for simulation traces: convergence time, RMS and maximum time error.

Pure functions over sequences of time errors (ns), one per second as
:class:`appliance.sim.harness.Trace` holds them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def convergence_index(
    errors_ns: Sequence[float], bound_ns: float, start: int = 0, stop: int | None = None
) -> int | None:
    """The first index ``i`` in ``[start, stop)`` from which every ``|errors_ns[j]|`` (``j < stop``)
    stays within ``bound_ns``; None if the last point is outside."""
    stop = len(errors_ns) if stop is None else stop
    first = None
    for i in range(stop - 1, start - 1, -1):
        if abs(errors_ns[i]) > bound_ns:
            break
        first = i
    return first


def rms(values: Sequence[float]) -> float:
    """Root mean square of ``values`` (0 for none)."""
    if not values:
        return 0.0
    return math.sqrt(math.fsum(v * v for v in values) / len(values))


def max_abs(values: Sequence[float]) -> float:
    """Largest magnitude in ``values`` (0 for none)."""
    return max((abs(v) for v in values), default=0.0)
