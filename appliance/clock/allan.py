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


class WanderEstimator:
    """The oscillator's RWFM diffusion ``D`` (ppb^2/s) measured from free-running offsets.

    (The discipline no longer steers by it: at 1 us of jitter its long lags
    need hours to tell a quiet oscillator from a Pi crystal; the discipline
    compares how well loops of each bandwidth predict the samples instead.)

    Fed the discipline's free-running offset ``z`` (ns) at each sample, it
    keeps, for lags of ``m`` = 16, 64, 128, 256, 512 and 1024 samples, the mean square
    of the second difference ``d = z[n] - 2 z[n-m] + z[n-2m]``. Over a span
    ``tau`` (the mean of the two intervals, s) its expectation is the Allan
    variance times ``2 tau^2`` plus the white phase noise of three samples:

        E[d^2] = (2/3) D tau^3 + 6 r        (RWFM plus white PM; r = jitter^2)

    so each lag gives ``D_m = (E[d^2] - 6 r) / ((2/3) tau^3)`` with an
    uncertainty of about ``(D + 6 r / ((2/3) tau^3)) sqrt(4 m / count)``
    (``count / 2m`` independent differences), taken at the current estimate
    ``D``, not at the lag's own value (a lag that happens to read low must
    not weigh more: that biased the estimate low for a wandering
    oscillator, a tenth of its true ``D`` in one seed). The estimate
    combines the lags and the prior (``prior_wander``, uncertain by
    :data:`PRIOR_SPREAD` times its value: a guess, which the data override
    within minutes) by inverse variance, and never goes below
    ``floor_wander**2``. Short lags see the jitter, long ones the
    wander: a quiet oscillator's ``D`` falls towards the floor as the long
    lags fill, a wandering one's settles on its own value.
    """

    LAGS = (16, 64, 128, 256, 512, 1024)
    #: The prior's 1-sigma uncertainty, in multiples of its value.
    PRIOR_SPREAD = 3.0

    def __init__(self, prior_wander: float, floor_wander: float = 0.003) -> None:
        self._prior = prior_wander**2
        self._floor = floor_wander**2
        self._z: list[tuple[int, float]] = []  # (t ns, z ns), the last 2 * max(LAGS) + 1
        self._sum = [0.0] * len(self.LAGS)
        self._tau3 = [0.0] * len(self.LAGS)
        self._count = [0] * len(self.LAGS)
        self._value = max(self._prior, self._floor)

    def add(self, t_ns: int, z_ns: float, r_ns2: float) -> None:
        """Take the free-running offset ``z_ns`` at ``t_ns`` with the measurement variance ``r_ns2``."""
        zs = self._z
        zs.append((t_ns, z_ns))
        keep = 2 * self.LAGS[-1] + 1
        if len(zs) > 2 * keep:
            del zs[: len(zs) - keep]
        n = len(zs) - 1
        weights = 1.0 / (self.PRIOR_SPREAD * max(self._prior, self._floor)) ** 2
        total = self._prior * weights
        current = self._value
        for i, m in enumerate(self.LAGS):
            if n >= 2 * m:
                (t0, z0), (_, z1), (t2, z2) = zs[n - 2 * m], zs[n - m], zs[n]
                tau = (t2 - t0) / 2e9
                d = z2 - 2.0 * z1 + z0
                self._sum[i] += d * d - 6.0 * r_ns2
                self._tau3[i] += (2.0 / 3.0) * tau**3
                self._count[i] += 1
            count = self._count[i]
            if count >= 8:
                mean_tau3 = self._tau3[i] / count
                d_m = self._sum[i] / count / mean_tau3
                sigma = (current + 6.0 * r_ns2 / mean_tau3) * math.sqrt(4.0 * m / count)
                w = 1.0 / max(sigma, 1e-12) ** 2
                total += d_m * w
                weights += w
        self._value = max(self._floor, total / weights)

    @property
    def diffusion(self) -> float:
        """The estimate of ``D`` (ppb^2/s): ``wander**2``."""
        return self._value
