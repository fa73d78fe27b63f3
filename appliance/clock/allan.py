"""Oscillator stability: the Allan deviation and the random-walk wander model.

The discipline and the simulated oscillator describe a crystal's frequency
wander as random-walk frequency modulation (RWFM): the fractional frequency
``y`` diffuses, its variance growing by ``D`` per second. For RWFM the Allan
variance is (IEEE Std 1139; Barnes et al., NBS TN 394)

    sigma_y^2(tau) = D * tau / 3

so an oscillator is described by one number, its *wander*
``sqrt(D) * 1e9`` in ppb/sqrt(s). A Raspberry Pi crystal with ADEV 1e-8 at
100 s has a wander of sqrt(3) = 1.73 ppb/sqrt(s) (:data:`PI_CRYSTAL_WANDER_PPB`).

:func:`overlapping_adev` estimates the Allan deviation from phase (time
error) samples, the usual overlapping estimator:

    sigma_y^2(m * tau0) = sum_i (x[i+2m] - 2 x[i+m] + x[i])^2 / (2 (m tau0)^2 (N - 2m))
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def wander_for_adev(adev: float, tau_s: float) -> float:
    """Return the RWFM wander (ppb/sqrt(s)) whose Allan deviation at ``tau_s`` seconds is ``adev``."""
    if adev < 0 or tau_s <= 0:
        raise ValueError("adev must be >= 0 and tau > 0")
    return adev * 1e9 * math.sqrt(3.0 / tau_s)


def adev_for_wander(wander_ppb_per_sqrt_s: float, tau_s: float) -> float:
    """Return the Allan deviation at ``tau_s`` seconds of an RWFM wander in ppb/sqrt(s)."""
    return wander_ppb_per_sqrt_s * 1e-9 * math.sqrt(tau_s / 3.0)


#: The wander of a Raspberry Pi crystal: ADEV 1e-8 at 100 s, in ppb/sqrt(s).
PI_CRYSTAL_WANDER_PPB = wander_for_adev(1e-8, 100.0)


def overlapping_adev(phase_ns: Sequence[float], m: int, tau0_s: float = 1.0) -> float:
    """Return the overlapping Allan deviation at ``tau = m * tau0_s`` (dimensionless).

    ``phase_ns`` are time-error samples (ns) taken every ``tau0_s`` seconds;
    at least ``2 m + 1`` are needed.
    """
    n = len(phase_ns)
    if m < 1 or n < 2 * m + 1:
        raise ValueError(f"need at least {2 * m + 1} phase samples for m={m}, got {n}")
    total = 0.0
    for i in range(n - 2 * m):
        d = phase_ns[i + 2 * m] - 2.0 * phase_ns[i + m] + phase_ns[i]
        total += d * d
    tau_ns = m * tau0_s * 1e9
    return math.sqrt(total / (2.0 * tau_ns * tau_ns * (n - 2 * m)))
