import numpy as np
import pytest
import torch

from facial_keypoints.training.augment import (RandomAffine, RandomBrightnessContrast, RandomHorizontalFlip, affine_matrix,
                                      hflip, warp)
from facial_keypoints.keypoints import FLIP_INDEX, LEFT_EYE_OUTER, RIGHT_EYE_OUTER, POINT_NAMES


def marked_sample(rng, size=112):
    """A dark image with a small bright square on each of 21 well-separated keypoints."""
    image = np.zeros((size, size), np.uint8)
    points = []
    for i in range(21):
        cx, cy = 24 + (i % 7) * 11, 30 + (i // 7) * 22
        image[cy - 1:cy + 2, cx - 1:cx + 2] = 255
        points.append((cx + 0.5, cy + 0.5))  # the centre of the 3x3 square, continuous coordinates
    return {"image": image, "keypoints": np.array(points, np.float32), "face": 1.0}


def mark_centre(image, point, radius=5):
    """Centre of the brightness near ``point`` (continuous coordinates)."""
    x0, y0 = int(point[0]), int(point[1])
    ys, xs = np.mgrid[max(y0 - radius, 0):y0 + radius + 1, max(x0 - radius, 0):x0 + radius + 1]
    ys, xs = ys[(ys < image.shape[0]) & (xs < image.shape[1])], xs[(ys < image.shape[0]) & (xs < image.shape[1])]
    w = image[ys, xs].astype(float)
    return np.array([(xs * w).sum() / w.sum() + 0.5, (ys * w).sum() / w.sum() + 0.5])


def assert_marks_follow_points(sample, tolerance=1.0):
    """Every mark whose point stays inside the image (off the border) sits on its point."""
    inside = [i for i, p in enumerate(sample["keypoints"]) if (p > 4).all() and (p < 108).all()]
    assert len(inside) >= 15
    for i in inside:
        point = sample["keypoints"][i]
        np.testing.assert_allclose(mark_centre(sample["image"], point), point, atol=tolerance,
                                   err_msg=f"point {i} ({POINT_NAMES[i]})")


def test_flip_table_is_an_involution():
    assert [FLIP_INDEX[FLIP_INDEX[i]] for i in range(21)] == list(range(21))


def test_flipping_twice_is_the_identity():
    sample = marked_sample(np.random.default_rng(0))
    twice = hflip(hflip({k: np.copy(v) for k, v in sample.items()}))
    np.testing.assert_array_equal(twice["image"], sample["image"])
    np.testing.assert_allclose(twice["keypoints"], sample["keypoints"])


def test_flip_moves_the_left_eye_into_the_right_eye_slot():
    sample = marked_sample(np.random.default_rng(0))
    left_eye = sample["keypoints"][LEFT_EYE_OUTER].copy()
    flipped = hflip({k: np.copy(v) for k, v in sample.items()})
    # The mirrored image-left eye corner is now on the image right, in the right-eye slot.
    np.testing.assert_allclose(flipped["keypoints"][RIGHT_EYE_OUTER], (112 - left_eye[0], left_eye[1]))
    assert_marks_follow_points(flipped, tolerance=0.01)


@pytest.mark.parametrize("angle, scale, shift", [(0, 1, (0, 0)), (30, 1, (0, 0)), (-25, 1.2, (6, -4)),
                                                 (10, 0.8, (-8, 5))])
def test_affine_keeps_marks_and_points_together(angle, scale, shift):
    sample = marked_sample(np.random.default_rng(0))
    moved = warp(sample, affine_matrix((112, 112), angle, scale, shift))
    assert_marks_follow_points(moved, tolerance=1.0)


def test_random_transforms_keep_marks_and_points_together():
    torch.manual_seed(0)
    flip, affine = RandomHorizontalFlip(1.0), RandomAffine(30, 0.2, 0.05)
    for _ in range(5):
        assert_marks_follow_points(affine(flip(marked_sample(np.random.default_rng(0)))), tolerance=1.0)


def test_brightness_contrast_changes_pixels_not_points():
    torch.manual_seed(0)
    sample = marked_sample(np.random.default_rng(0))
    sample["image"] = (sample["image"] // 2 + 60).astype(np.uint8)
    points = sample["keypoints"].copy()
    out = RandomBrightnessContrast(0.3, 0.3)({k: np.copy(v) for k, v in sample.items()})
    np.testing.assert_array_equal(out["keypoints"], points)
    assert out["image"].dtype == np.uint8 and not np.array_equal(out["image"], sample["image"])


def test_augmentation_is_reproducible_from_the_torch_seed():
    transform = RandomAffine(30, 0.25, 0.1)
    torch.manual_seed(5)
    a = transform(marked_sample(np.random.default_rng(0)))["keypoints"]
    torch.manual_seed(5)
    b = transform(marked_sample(np.random.default_rng(0)))["keypoints"]
    np.testing.assert_array_equal(a, b)


def test_gamma_darkens_or_lightens_mid_tones_and_keeps_the_extremes():
    from facial_keypoints.training.augment import RandomGamma
    sample = {"image": np.array([[0, 64, 128, 255]], np.uint8), "keypoints": np.ones((21, 2), np.float32)}
    seen = set()
    for seed in range(20):
        torch.manual_seed(seed)
        out = RandomGamma(2.0, p=1.0)({k: np.copy(v) for k, v in sample.items()})["image"][0]
        assert out[0] == 0 and out[3] == 255 and out.dtype == np.uint8
        assert 255 * 0.5 ** 2 - 1 <= out[2] <= 255 * 0.5 ** 0.5 + 1  # gamma within [1/2, 2]
        seen.add(np.sign(int(out[2]) - 128))
    assert seen >= {-1, 1}  # both darker and lighter happen


def test_blur_and_noise_change_pixels_not_points():
    from facial_keypoints.training.augment import RandomBlurNoise
    torch.manual_seed(0)
    sample = marked_sample(np.random.default_rng(0))
    points = sample["keypoints"].copy()
    out = RandomBlurNoise(1.0, 4.0, p=1.0)({k: np.copy(v) for k, v in sample.items()})
    np.testing.assert_array_equal(out["keypoints"], points)
    assert out["image"].dtype == np.uint8 and not np.array_equal(out["image"], sample["image"])
    assert_marks_follow_points(out, tolerance=1.0)  # blur spreads a mark but keeps its centre


def test_motion_blur_smears_pixels_and_keeps_marks_in_place():
    from facial_keypoints.training.augment import RandomMotionBlur
    torch.manual_seed(1)
    sample = marked_sample(np.random.default_rng(0))
    points = sample["keypoints"].copy()
    out = RandomMotionBlur(9, p=1.0)({k: np.copy(v) for k, v in sample.items()})
    np.testing.assert_array_equal(out["keypoints"], points)
    assert out["image"].dtype == np.uint8 and out["image"].shape == sample["image"].shape
    assert not np.array_equal(out["image"], sample["image"])
    assert_marks_follow_points(out, tolerance=1.0)  # a centred kernel: smeared, not moved


def test_occlusion_covers_one_rectangle_and_nothing_else():
    from facial_keypoints.training.augment import RandomOcclusion
    image = np.full((40, 40), 7, np.uint8)
    for seed in range(10):
        torch.manual_seed(seed)
        out = RandomOcclusion(p=1.0, max_area=0.3)({"image": image.copy()})["image"]
        changed = np.argwhere(out != 7)
        assert len(changed) > 0 and np.array_equal(image, np.full((40, 40), 7, np.uint8))  # input untouched
        (top, left), (bottom, right) = changed.min(0), changed.max(0)
        box_area = (bottom - top + 1) * (right - left + 1)
        assert box_area <= 0.3 * 40 * 40 + 80  # one rectangle, at most max_area (+ rounding)
    torch.manual_seed(0)
    assert np.array_equal(RandomOcclusion(p=0.0)({"image": image.copy()})["image"], image)


def test_occlusion_and_motion_blur_flags_build_their_steps():
    import argparse
    from facial_keypoints.training.augment import add_augmentation_arguments, train_transform
    parser = argparse.ArgumentParser()
    add_augmentation_arguments(parser)
    names = [type(s).__name__ for s in train_transform(parser.parse_args(["--motion-blur", "11", "--occlude", "0.3"]),
                                                       {"normalize": True}).transforms]
    assert "RandomMotionBlur" in names and "RandomOcclusion" in names
    names = [type(s).__name__ for s in train_transform(parser.parse_args([]), {"normalize": True}).transforms]
    assert "RandomMotionBlur" not in names and "RandomOcclusion" not in names


def test_underexposure_darkens_into_few_noisy_grey_levels_and_keeps_the_points():
    from facial_keypoints.training.augment import RandomUnderexposure
    ys, xs = np.mgrid[0:64, 0:64]
    image = (20 + 2 * xs + ys).astype(np.uint8)  # a ramp of 190 grey levels (20..209)
    points = np.array([[10.5, 20.5], [30.0, 40.0]], np.float32)
    for seed in range(20):
        torch.manual_seed(seed)
        out = RandomUnderexposure(p=1.0, darkest=0.1, noise=3.0)({"image": image.copy(), "keypoints": points.copy()})
        dark = out["image"]
        assert dark.dtype == np.uint8 and dark.shape == image.shape
        np.testing.assert_array_equal(out["keypoints"], points)
        assert 0.1 * image.mean() - 2 < dark.mean() < 0.5 * image.mean() + 2  # gain in [0.1, 0.5]
        assert len(np.unique(dark)) < len(np.unique(image)) / 1.5  # the range shrinks: fewer levels
        # what is left follows the ramp: dark pixels are a scaled copy, not noise
        assert np.corrcoef(dark.ravel().astype(float), image.ravel().astype(float))[0, 1] > 0.8
    torch.manual_seed(0)
    same = RandomUnderexposure(p=0.0)({"image": image.copy(), "keypoints": points.copy()})
    np.testing.assert_array_equal(same["image"], image)


@pytest.mark.parametrize("flag, step", [("--underexpose", "RandomUnderexposure"), ("--low-res", "RandomLowResolution")])
def test_probability_flags_build_their_step(flag, step):
    import argparse
    from facial_keypoints.training.augment import add_augmentation_arguments, train_transform
    parser = argparse.ArgumentParser()
    add_augmentation_arguments(parser)
    steps = train_transform(parser.parse_args([flag, "0.2"]), {"normalize": True}).transforms
    assert [s.p for s in steps if type(s).__name__ == step] == [0.2]
    steps = train_transform(parser.parse_args([]), {"normalize": True}).transforms
    assert step not in [type(s).__name__ for s in steps]


def test_low_resolution_removes_fine_detail_keeps_the_layout_and_the_points():
    from facial_keypoints.training.augment import RandomLowResolution
    ys, xs = np.mgrid[0:112, 0:112]
    fine = ((xs // 2 + ys // 2) % 2) * 200  # a 2-px checkerboard: gone at any side <= 56
    coarse = (xs >= 56) * 50  # left half dark, right half bright: must survive
    image = (fine // 4 + coarse + 20).astype(np.uint8)
    points = np.array([[10.5, 20.5], [80.0, 90.0]], np.float32)
    for seed in range(10):
        torch.manual_seed(seed)
        out = RandomLowResolution(p=1.0, smallest=20)({"image": image.copy(), "keypoints": points.copy()})
        small = out["image"]
        assert small.dtype == np.uint8 and small.shape == image.shape
        np.testing.assert_array_equal(out["keypoints"], points)
        assert np.abs(np.diff(small.astype(float), axis=1))[:, :50].mean() < 0.2 * np.abs(
            np.diff(image.astype(float), axis=1))[:, :50].mean()  # the checkerboard is averaged away
        assert small[:, 70:].mean() - small[:, :40].mean() == pytest.approx(50, abs=3)  # the halves are kept
    torch.manual_seed(0)
    same = RandomLowResolution(p=0.0)({"image": image.copy(), "keypoints": points.copy()})
    np.testing.assert_array_equal(same["image"], image)

