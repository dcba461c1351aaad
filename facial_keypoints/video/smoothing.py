"""The One-Euro filter (Casiez, Roussel and Vogel, CHI 2012): steady points when still, little lag when moving.

A low-pass filter whose cut-off frequency rises with the signal's speed: at rest a low cut-off
removes jitter, in motion a higher one follows the movement.  Per coordinate:

    alpha(fc, dt) = 1 / (1 + 1 / (2 pi fc dt))
    dx  = smoothed (x - x_prev_smoothed) / dt     (its own filter, cut-off ``d_cutoff``)
    fc  = min_cutoff + beta * |dx|
    x_s = x_prev_s + alpha(fc, dt) * (x - x_prev_s)

Written here because the filter is a dozen lines and no maintained package offers it for arrays.
Keypoints are filtered in units of the face's size (``scale``), so one ``beta`` suits small and
large faces alike.
"""
from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    return 1.0 / (1.0 + 1.0 / (2 * math.pi * cutoff * dt))


class OneEuroFilter:
    """Filters arrays of one shape over time; ``reset()`` forgets the past (a lost or new track).

    Args:
        min_cutoff: the cut-off frequency at rest, Hz: lower is steadier and lags more.
        beta: how fast the cut-off rises with speed (per face size per second): higher lags less.
        d_cutoff: the cut-off of the speed estimate, Hz.
    """

    def __init__(self, min_cutoff: float = 0.5, beta: float = 20.0, d_cutoff: float = 1.0):
        if not all(map(math.isfinite, (min_cutoff, beta, d_cutoff))) or min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError(f"min_cutoff ({min_cutoff}) and d_cutoff ({d_cutoff}) must be finite and above 0, "
                             f"beta ({beta}) finite and at least 0")
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.reset()

    def reset(self) -> None:
        self.value = self.speed = self.time = None

    def __call__(self, x, time_s: float, scale: float = 1.0) -> np.ndarray:
        """The filtered ``x`` at ``time_s`` seconds; ``scale`` (> 0) is the unit of ``x``'s motion."""
        x = np.asarray(x, dtype=np.float64) / scale
        if self.value is None or time_s <= self.time:
            self.value, self.speed, self.time = x, np.zeros_like(x), time_s
            return x * scale
        dt = time_s - self.time
        speed = (x - self.value) / dt
        self.speed = self.speed + _alpha(self.d_cutoff, dt) * (speed - self.speed)
        cutoff = self.min_cutoff + self.beta * np.abs(self.speed)
        self.value = self.value + _alpha(cutoff, dt) * (x - self.value)
        self.time = time_s
        return self.value * scale
