"""The evaluation protocol (SPEC section 5), on original-image pixels.

* nme_io : mean point-to-point error / distance between points 6 and 9, per face, averaged, %
* nme_box: the same error / sqrt(w*h) of the labelled face box, %
* fr_10  : % of faces with nme_io > 10 %
* auc_10 : area under the cumulative error curve of nme_io on [0, 10 %], as % of the full area
* the classifier's accuracy, face recall and non-face recall (``classification_metrics``)
"""
from __future__ import annotations

import numpy as np

from facial_keypoints.keypoints import LEFT_EYE_OUTER, POINT_NAMES, RIGHT_EYE_OUTER

THRESHOLD = 10.0  # percent


def point_errors(pred, gt) -> np.ndarray:
    """(N, K) Euclidean distance per face and point."""
    return np.linalg.norm(np.asarray(pred, np.float64) - np.asarray(gt, np.float64), axis=-1)


def interocular(gt) -> np.ndarray:
    gt = np.asarray(gt, np.float64)
    return np.linalg.norm(gt[:, LEFT_EYE_OUTER] - gt[:, RIGHT_EYE_OUTER], axis=-1)


def box_norm(face_boxes) -> np.ndarray:
    boxes = np.asarray(face_boxes, np.float64)
    return np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))


def failure_rate(nme_percent, threshold: float = THRESHOLD) -> float:
    return float(np.mean(np.asarray(nme_percent) > threshold) * 100.0)


def auc(nme_percent, threshold: float = THRESHOLD) -> float:
    """Exact area under the CED curve up to ``threshold``, in % of the full area.

    The fraction of faces with error <= t, integrated over t in [0, T], equals
    the mean over faces of max(0, T - e); divide by T for the fraction of the area.
    """
    e = np.asarray(nme_percent, np.float64)
    return float(np.mean(np.clip(threshold - e, 0.0, None)) / threshold * 100.0)


def keypoint_metrics(pred, gt, face_boxes=None) -> dict:
    """All metrics for (N, 21, 2) predictions and ground truth in original-image pixels.

    Faces whose outer eye corners coincide (interocular distance 0) cannot be
    normalised and are left out of nme_io/fr/auc (counted in ``faces_without_io``).
    """
    errors = point_errors(pred, gt)
    mean_error = errors.mean(axis=1)
    io = interocular(gt)
    valid = io > 1e-6
    nme_io = mean_error[valid] / io[valid] * 100.0
    result = {
        "faces": int(len(errors)),
        "nme_io": float(nme_io.mean()) if valid.any() else float("nan"),
        # The mean is dominated by near-profile faces (tiny eye distance); the median shows the typical face.
        "nme_io_median": float(np.median(nme_io)) if valid.any() else float("nan"),
        "nme_box": float("nan"),
        "fr_10": failure_rate(nme_io) if valid.any() else float("nan"),
        "auc_10": auc(nme_io) if valid.any() else float("nan"),
        "mean_error_px": float(mean_error.mean()),
        "faces_without_io": int((~valid).sum()),
        "per_point_px": {name: float(v) for name, v in zip(POINT_NAMES, errors.mean(axis=0))},
        "per_point_nme_io": {name: float(v) for name, v in zip(
            POINT_NAMES, (errors[valid] / io[valid, None]).mean(axis=0) * 100.0)},
    }
    if face_boxes is not None:
        norm = box_norm(face_boxes)
        known = np.isfinite(norm) & (norm > 0)
        if known.any():
            result["nme_box"] = float((mean_error[known] / norm[known]).mean() * 100.0)
    result["nme_io_per_face"] = nme_io
    return result


def summary_table(metrics: dict, title: str = "") -> str:
    """Human-readable table (headline numbers, then the per-point errors)."""
    lines = [title] if title else []
    lines.append(f"{'faces':<10}{metrics['faces']:>10d}")
    for key in ("nme_io", "nme_io_median", "nme_box", "fr_10", "auc_10"):
        lines.append(f"{key:<10}{metrics[key]:>9.2f}%")
    lines.append(f"{'mean err':<10}{metrics['mean_error_px']:>8.2f}px")
    lines.append("per point (mean px error / nme_io %):")
    for name in POINT_NAMES:
        lines.append(f"  {name:<20}{metrics['per_point_px'][name]:>8.2f}{metrics['per_point_nme_io'][name]:>8.2f}")
    return "\n".join(lines)


def json_summary(metrics: dict, **extra) -> dict:
    """The JSON-safe subset: the per-face array dropped, and a figure that has no value (nan: no face had
    both eye corners apart, say) as null, since JSON has no nan."""
    out = {k: v for k, v in metrics.items() if k != "nme_io_per_face"}
    out.update(extra)
    return _null_for_nan(out)


def _null_for_nan(value):
    if isinstance(value, dict):
        return {k: _null_for_nan(v) for k, v in value.items()}
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def classification_metrics(is_face, face_prob, threshold: float = 0.5) -> dict:
    """Accuracy, face recall and non-face recall over the whole set (counts, not batch averages), in %."""
    is_face = np.asarray(is_face, dtype=bool)
    said_face = np.asarray(face_prob) >= threshold
    return {
        "samples": int(len(is_face)),
        "accuracy": float((said_face == is_face).mean() * 100),
        "face_recall": float(said_face[is_face].mean() * 100) if is_face.any() else float("nan"),
        "non_face_recall": float((~said_face[~is_face]).mean() * 100) if (~is_face).any() else float("nan"),
    }
