import numpy as np
import torch

from facial_keypoints.data.dataset import FaceCrops
from facial_keypoints.data.lists import records_from_labels
from facial_keypoints.data.transforms import Normalize, eval_transform


def brightest(crop: np.ndarray) -> np.ndarray:
    """Centre (x, y) of the bright dot in continuous pixel coordinates."""
    ys, xs = np.nonzero(crop > crop.max() * 0.5)
    weights = crop[ys, xs].astype(float)
    return np.array([(xs * weights).sum() / weights.sum() + 0.5, (ys * weights).sum() / weights.sum() + 0.5])


def test_crops_and_keypoints_agree_in_the_frame(synthetic_root, tmp_path):
    root, faces = synthetic_root
    records = records_from_labels(root, 0.25)
    dataset = FaceCrops(records, root, size=112, cache_dir=tmp_path / "cache", progress=False)
    assert len(dataset) == len(faces)
    for index in range(len(dataset)):
        sample = dataset[index]
        assert sample["image"].shape == (112, 112) and sample["image"].dtype == np.uint8
        # The drawn dot is point 0: the crop's bright spot and the scaled keypoint coincide.
        np.testing.assert_allclose(brightest(sample["image"]), sample["keypoints"][0], atol=1.0)


def test_transforms_give_normalised_tensors(synthetic_root, tmp_path):
    root, _ = synthetic_root
    dataset = FaceCrops(records_from_labels(root, 0.25), root, transform=eval_transform(),
                        cache_dir=tmp_path / "cache", progress=False)
    sample = dataset[0]
    assert sample["image"].shape == (1, 112, 112) and sample["image"].dtype == torch.float32
    assert abs(sample["image"].mean().item()) < 1e-4 and abs(sample["image"].std(unbiased=False).item() - 1) < 1e-3
    assert sample["keypoints"].shape == (42,)
    flat = Normalize()({"image": np.full((4, 4), 7, np.uint8)})["image"]
    assert np.all(flat == 0)


def test_second_use_reads_the_cache_not_the_photos(synthetic_root, tmp_path):
    root, faces = synthetic_root
    records = records_from_labels(root, 0.25)
    first = FaceCrops(records, root, cache_dir=tmp_path / "cache", progress=False)
    for image, _, _ in faces:  # make every photo undecodable without changing its size/mtime key
        path = root / image
        stat = path.stat()
        path.write_bytes(b"\0" * stat.st_size)
        import os
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = FaceCrops(records, root, cache_dir=tmp_path / "cache", progress=False)
    np.testing.assert_array_equal(first.crops, second.crops)


def test_large_jpeg_is_draft_decoded_to_the_same_crop(tmp_path):
    """A big JPEG decoded at 1/4 scale must give (nearly) the crop a full decode gives."""
    from PIL import Image

    from facial_keypoints.data.crop_cache import load_crops
    from facial_keypoints.data.images import crop_resized
    rng = np.random.default_rng(0)
    # Smooth content, so JPEG scaling and resizing agree closely.
    ys, xs = np.mgrid[0:2400, 0:3200]
    pixels = (127 + 60 * np.sin(xs / 90.0) + 60 * np.cos(ys / 70.0) + rng.normal(0, 1, xs.shape)).clip(0, 255)
    Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / "big.jpg", quality=95)
    box = np.array([1000.0, 800, 1800, 1600])
    fast = load_crops([("big.jpg", box)], tmp_path, 112, cache_dir=tmp_path / "c", progress=False)[0]
    full = crop_resized(Image.open(tmp_path / "big.jpg").convert("L"), box, 112)
    assert np.abs(fast.astype(int) - full.astype(int)).mean() < 3.0
