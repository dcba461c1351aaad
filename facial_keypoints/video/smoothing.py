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


def _rotation(angle: float) -> np.ndarray:
    cos, sin = math.cos(angle), math.sin(angle)
    return np.array([[cos, -sin], [sin, cos]])


class FaceMotionFilter:
    """Keypoints smoothed in the face's own frame: the head's motion and the face's shape apart.

    Each frame's points are split into a similarity transform (centre, scale, roll: how the head
    moved, fitted to all the points by least squares) and the shape left in the face's own frame (an
    expression, and the network's noise). Each part has its own One-Euro filter:

    - the motion filter (``min_cutoff`` Hz at rest, ``beta``): the transform is an average over every
      point, so it is steadier than any one point, and a high ``beta`` lets a turning head through
      without lag;
    - the shape filter (``shape_min_cutoff``, ``shape_beta``): the shape barely moves when the head
      turns, so it can be held steady without holding the head back.

    Both work in units of the face's size (``scale``), the roll in radians. On the moving stretches of
    ``benchmarks/video.py --photos validation`` this keeps per-frame predict's error with a quarter of
    its jitter at rest, where one One-Euro filter on the points either lags or keeps a third of it.
    """

    def __init__(self, min_cutoff: float = 0.5, beta: float = 50.0, shape_min_cutoff: float = 0.5,
                 shape_beta: float = 20.0):
        self.motion = OneEuroFilter(min_cutoff, beta, d_cutoff=5.0)  # a quick speed estimate: quick to follow
        self.shape = OneEuroFilter(shape_min_cutoff, shape_beta)
        self.reset()

    def reset(self) -> None:
        self.reference = self.angle = None
        self.motion.reset()
        self.shape.reset()

    def __call__(self, points, time_s: float, scale: float = 1.0) -> np.ndarray:
        """The filtered (K, 2) ``points`` at ``time_s`` seconds; ``scale`` (> 0) is the face's size."""
        points = np.asarray(points, dtype=np.float64)
        centre = points.mean(axis=0)
        centred = points - centre
        if self.reference is None:
            self.reference = centred
        # the least-squares similarity from the reference shape to this one (Procrustes, in closed form)
        along = float((self.reference * centred).sum())
        across = float((self.reference[:, 0] * centred[:, 1] - self.reference[:, 1] * centred[:, 0]).sum())
        size = math.hypot(along, across) / max(float((self.reference ** 2).sum()), 1e-12)
        if not size > 1e-6:  # every point in one place: nothing to align, start afresh
            self.reset()
            return points
        angle = math.atan2(across, along)
        if self.angle is not None:  # keep the roll continuous through +-180 degrees
            angle = self.angle + math.remainder(angle - self.angle, 2 * math.pi)
        shape = centred @ _rotation(angle) / size  # the rotation undone: rows times R is R transposed
        motion = self.motion(np.array([*(centre / scale), math.log(size), angle]), time_s)
        self.angle = float(motion[3])
        shape = self.shape(shape, time_s, scale)
        return math.exp(motion[2]) * shape @ _rotation(motion[3]).T + motion[:2] * scale
