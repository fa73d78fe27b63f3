"""The Allan deviation estimator on phase data whose answer is known."""

from __future__ import annotations

import random

import pytest

from appliance.clock.allan import overlapping_adev


def test_constant_frequency_has_zero_adev() -> None:
    phase = [3.0 + 25.0 * i for i in range(50)]
    assert overlapping_adev(phase, 5) == pytest.approx(0.0, abs=1e-15)


def test_white_frequency_noise_adev_falls_as_inverse_root_tau() -> None:
    rng = random.Random(1)
    phase, x = [], 0.0
    for _ in range(40_000):
        x += rng.gauss(0.0, 1.0)  # 1 ns per 1 s: white FM with sigma_y(1 s) = 1e-9
        phase.append(x)
    assert overlapping_adev(phase, 1) == pytest.approx(1e-9, rel=0.05)
    assert overlapping_adev(phase, 16) == pytest.approx(0.25e-9, rel=0.15)


def test_needs_enough_points() -> None:
    with pytest.raises(ValueError):
        overlapping_adev([0.0] * 10, 5)
