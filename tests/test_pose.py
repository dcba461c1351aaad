"""Head pose from the 21 points: the mean face seen through the same camera, at known angles."""
from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from facial_keypoints.keypoints import FLIP_INDEX, POINT_NAMES
from facial_keypoints.pose import MEAN_FACE_3D, angles_from_rotation, camera_matrix, head_pose, rotation_from_angles

WIDTH, HEIGHT = 640, 480
CENTRE = np.array([WIDTH / 2, HEIGHT / 2])


def project(yaw=0.0, pitch=0.0, roll=0.0, offset=(0.0, 0.0), distance=600.0):
    """The mean face at (yaw, pitch, roll), ``distance`` mm in front of the camera, shifted by ``offset`` mm."""
    head = MEAN_FACE_3D @ rotation_from_angles(yaw, pitch, roll).T + [*offset, distance]
    image = head @ camera_matrix(WIDTH, HEIGHT).T
    return image[:, :2] / image[:, 2:]


def rotate(points, degrees, centre):
    """Points turned clockwise as seen in the photo by ``degrees`` about ``centre`` (cv2's angle is
    counter-clockwise as seen, so it gets the negative)."""
    matrix = cv2.getRotationMatrix2D(tuple(map(float, centre)), -degrees, 1.0)
    return points @ matrix[:, :2].T + matrix[:, 2]


def test_the_frontal_mean_face_reads_zero():
    np.testing.assert_allclose(head_pose(project(), WIDTH, HEIGHT), 0.0, atol=0.5)


def test_the_mean_face_is_symmetric_and_upright():
    assert MEAN_FACE_3D.shape == (21, 3)
    mirrored = MEAN_FACE_3D[list(FLIP_INDEX)] * [-1, 1, 1]
    np.testing.assert_allclose(mirrored, MEAN_FACE_3D, atol=1e-9)
    named = dict(zip(POINT_NAMES, MEAN_FACE_3D))
    assert named["left_eye_outer"][0] < named["left_eye_inner"][0] < 0  # x: image-left to image-right
    assert named["left_brow_middle"][1] < named["left_pupil"][1] < named["nose_tip"][1] < named["mouth_centre"][1]
    assert named["nose_tip"][2] < named["left_eye_outer"][2]  # z: away from the camera


@pytest.mark.parametrize("yaw, pitch, roll", list(itertools.product((-25, -10, 0, 10, 25), repeat=3)))
def test_known_angles_are_recovered(yaw, pitch, roll):
    found = head_pose(project(yaw, pitch, roll), WIDTH, HEIGHT)
    assert found.dtype == np.float32 and found.shape == (3,)
    np.testing.assert_allclose(found, [yaw, pitch, roll], atol=1.0)


def test_the_signs_follow_the_face_in_the_photo():
    frontal = project()
    nose, eyes = 18, [16, 17]
    # yaw > 0: the nose tip moves to the image's right of the eyes' midpoint
    turned = project(yaw=20)
    assert turned[nose, 0] - turned[eyes, 0].mean() > frontal[nose, 0] - frontal[eyes, 0].mean() + 5
    # pitch > 0 (looking up): the nose tip comes closer to the eyes in the photo
    up = project(pitch=20)
    assert up[nose, 1] - up[eyes, 1].mean() < frontal[nose, 1] - frontal[eyes, 1].mean() - 5
    # roll > 0: clockwise as seen, so the image-right eye sits lower (y down) than the image-left one
    tilted = project(roll=10)
    assert tilted[17, 1] > tilted[16, 1] + 5


def test_a_clockwise_turn_of_the_frontal_face_reads_plus_ten_roll():
    turned = rotate(project(), 10, CENTRE)
    np.testing.assert_allclose(head_pose(turned, WIDTH, HEIGHT), [0, 0, 10], atol=0.5)


@pytest.mark.parametrize("yaw, pitch", [(0, 0), (20, -10), (-25, 15)])
@pytest.mark.parametrize("theta", [-30, -10, 10, 30])
def test_turning_the_points_about_the_face_centre_changes_roll_only(yaw, pitch, theta):
    points = project(yaw, pitch, 5)
    before = head_pose(points, WIDTH, HEIGHT)
    after = head_pose(rotate(points, theta, points.mean(axis=0)), WIDTH, HEIGHT)
    np.testing.assert_allclose(after - before, [0, 0, theta], atol=0.25)


@pytest.mark.parametrize("theta", [-30, 15])
def test_turning_the_photo_about_its_centre_adds_to_roll_exactly(theta):
    points = project(20, -10, 5, offset=(80, -60))  # a face away from the photo's centre
    before = head_pose(points, WIDTH, HEIGHT)
    after = head_pose(rotate(points, theta, CENTRE), WIDTH, HEIGHT)
    np.testing.assert_allclose(after - before, [0, 0, theta], atol=0.01)


@pytest.mark.parametrize("yaw, pitch, roll, offset", [(20, -10, 5, (0, 0)), (-25, 15, -20, (90, 40)),
                                                      (10, 25, 30, (-50, -70))])
def test_a_mirrored_photo_negates_yaw_and_roll_and_keeps_pitch(yaw, pitch, roll, offset):
    points = project(yaw, pitch, roll, offset)
    mirrored = np.stack([WIDTH - points[:, 0], points[:, 1]], axis=1)[list(FLIP_INDEX)]
    before, after = head_pose(points, WIDTH, HEIGHT), head_pose(mirrored, WIDTH, HEIGHT)
    np.testing.assert_allclose(after, before * [-1, 1, -1], atol=0.01)


def test_a_batch_gives_a_row_per_face_and_nan_where_a_point_is_not_finite():
    faces = np.stack([project(10, 0, 0), project(0, -10, 0), project(0, 0, 25)])
    faces[1, 4, 0] = np.nan
    faces = np.concatenate([faces, np.full((1, 21, 2), np.inf)])
    poses = head_pose(faces, WIDTH, HEIGHT)
    assert poses.shape == (4, 3) and poses.dtype == np.float32
    np.testing.assert_allclose(poses[[0, 2]], [[10, 0, 0], [0, 0, 25]], atol=1.0)
    assert np.isnan(poses[1]).all() and np.isnan(poses[3]).all()
    assert head_pose(np.zeros((0, 21, 2)), WIDTH, HEIGHT).shape == (0, 3)
    assert np.isnan(head_pose(np.full((21, 2), 50.0), WIDTH, HEIGHT)).all()  # every point in one place


def test_angles_lie_in_the_half_open_interval():
    np.testing.assert_allclose(angles_from_rotation(rotation_from_angles(0, 0, -180)), [0, 0, 180], atol=1e-9)
    upside_down = head_pose(rotate(project(), 180, CENTRE), WIDTH, HEIGHT)
    assert -180 < upside_down[2] <= 180 and abs(abs(upside_down[2]) - 180) < 0.5
