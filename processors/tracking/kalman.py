"""Constant-velocity Kalman filter for one box in centre/size form (pure numpy).

State: centre x, centre y, width, height and their velocities per update. Noise scales
with the box size, so small and large objects are tracked equally well.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float64]
Matrix = npt.NDArray[np.float64]

_POSITION_NOISE = 1.0 / 20.0
_VELOCITY_NOISE = 1.0 / 160.0

_TRANSITION = np.eye(8)
_TRANSITION[:4, 4:] = np.eye(4)
_OBSERVATION = np.eye(4, 8)


def xyxy_to_cxcywh(box: npt.ArrayLike) -> Vector:
    x1, y1, x2, y2 = np.asarray(box, dtype=np.float64)
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])


def cxcywh_to_xyxy(state: Vector) -> Vector:
    cx, cy, w, h = state[:4]
    w, h = max(w, 0.0), max(h, 0.0)
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


@dataclass
class BoxKalman:
    mean: Vector
    covariance: Matrix

    @classmethod
    def start(cls, box: npt.ArrayLike) -> BoxKalman:
        measurement = xyxy_to_cxcywh(box)
        w, h = measurement[2], measurement[3]
        std = np.array(
            [
                2 * _POSITION_NOISE * w,
                2 * _POSITION_NOISE * h,
                2 * _POSITION_NOISE * w,
                2 * _POSITION_NOISE * h,
                10 * _VELOCITY_NOISE * w,
                10 * _VELOCITY_NOISE * h,
                10 * _VELOCITY_NOISE * w,
                10 * _VELOCITY_NOISE * h,
            ]
        )
        return cls(np.concatenate([measurement, np.zeros(4)]), np.diag(np.square(std) + 1e-6))

    def predict(self) -> None:
        w, h = max(self.mean[2], 1.0), max(self.mean[3], 1.0)
        std = np.array(
            [_POSITION_NOISE * w, _POSITION_NOISE * h] * 2
            + [_VELOCITY_NOISE * w, _VELOCITY_NOISE * h] * 2
        )
        self.mean = _TRANSITION @ self.mean
        self.covariance = _TRANSITION @ self.covariance @ _TRANSITION.T + np.diag(np.square(std))

    def update(self, box: npt.ArrayLike) -> None:
        measurement = xyxy_to_cxcywh(box)
        w, h = max(self.mean[2], 1.0), max(self.mean[3], 1.0)
        noise = np.diag(np.square([_POSITION_NOISE * w, _POSITION_NOISE * h] * 2))
        projected = _OBSERVATION @ self.covariance @ _OBSERVATION.T + noise
        gain = np.linalg.solve(projected, _OBSERVATION @ self.covariance).T
        self.mean = self.mean + gain @ (measurement - _OBSERVATION @ self.mean)
        self.covariance = self.covariance - gain @ projected @ gain.T

    @property
    def box(self) -> Vector:
        return cxcywh_to_xyxy(self.mean)
