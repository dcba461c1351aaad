import numpy as np
import pytest

from facial_keypoints.evaluation.metrics import auc, failure_rate, keypoint_metrics


def face(eye_distance=100.0):
    gt = np.zeros((21, 2))
    gt[:, 0] = np.linspace(0, eye_distance, 21)
    gt[6] = (0, 0)
    gt[9] = (eye_distance, 0)
    return gt


def test_nme_io_and_nme_box_by_hand():
    gt = np.stack([face(100), face(50)])
    pred = gt.copy()
    pred[0, :, 0] += 3.0           # every point 3 px off, eyes 100 apart -> 3 %
    pred[1, :, 1] += 4.0           # every point 4 px off, eyes 50 apart -> 8 %
    boxes = np.array([[0, 0, 100, 100], [0, 0, 40, 40]], float)  # sqrt(w h): 100 and 40 -> 3 % and 10 %
    m = keypoint_metrics(pred, gt, boxes)
    assert m["faces"] == 2
    assert m["nme_io"] == pytest.approx((3 + 8) / 2)
    assert m["nme_io_median"] == pytest.approx((3 + 8) / 2)
    assert m["nme_box"] == pytest.approx((3 + 10) / 2)
    assert m["fr_10"] == 0.0
    assert m["auc_10"] == pytest.approx(((10 - 3) + (10 - 8)) / 2 / 10 * 100)
    assert m["per_point_px"]["nose_tip"] == pytest.approx(3.5)


def test_one_point_wrong():
    gt = face(100)[None]
    pred = gt.copy()
    pred[0, 18] += (0, 42.0)       # one of 21 points 42 px off -> mean 2 px -> 2 %
    m = keypoint_metrics(pred, gt)
    assert m["nme_io"] == pytest.approx(2.0)
    assert np.isnan(m["nme_box"])


def test_failure_rate_and_auc_exact():
    errors = np.array([0.0, 5.0, 20.0, 10.0])
    assert failure_rate(errors) == pytest.approx(25.0)   # only 20 is > 10
    assert auc(errors) == pytest.approx((10 + 5 + 0 + 0) / 4 / 10 * 100)
    assert auc(np.zeros(3)) == pytest.approx(100.0)
    # The closed form equals a numerical integral of the CED curve.
    xs = np.linspace(0, 10, 100001)
    ced = (errors[None, :] <= xs[:, None]).mean(axis=1)
    assert auc(errors) == pytest.approx(np.trapezoid(ced, xs) / 10 * 100, abs=1e-3)


def test_degenerate_eye_distance_is_left_out_not_infinite():
    gt = np.stack([face(100), np.zeros((21, 2))])
    m = keypoint_metrics(gt + 1.0, gt)
    assert m["faces_without_io"] == 1 and np.isfinite(m["nme_io"])
