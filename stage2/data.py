"""Stage 2 data: stage 1's Dataset, with keypoint-aware augmentation in front of its transforms.

Every training epoch shows each face changed at random: mirrored, rotated, scaled, shifted,
brighter or darker.  A geometric change must move the points with the pixels, and a mirror
must also *swap* them: after a flip, the image-left eye is the person's other eye, so point 6
(left eye, outer corner) takes the values of point 9.  ``FLIP_INDEX`` is that table.

Run it to see what the network is trained on: each row is one face drawn several times, with
the image-left points in red (after a flip they must still be on the image left):

    python stage2/data.py --data-root ../shared/data --num 4 --repeats 6
"""
import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torchvision.transforms import Compose

from facial_keypoints.keypoints import FLIP_INDEX
from facial_keypoints.data.list_files import read_list
from facial_keypoints.data.lists import resolve_data_root
from facial_keypoints.drawing import draw_points, grid

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for stage 1's files
from stage1.data import FaceLandmarks, Normalize, ToTensor, sample_picture  # noqa: E402

STAGE_DIR = Path(__file__).resolve().parent


def uniform(low: float, high: float) -> float:
    """A random number from torch's generator, which the training script seeds: runs repeat."""
    return low + (high - low) * torch.rand(()).item()


class RandomFlip:
    """Mirror the image left to right with probability ``p``; mirror the points and swap left and right."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, sample: dict) -> dict:
        if torch.rand(()).item() >= self.p:
            return sample
        width = sample["image"].shape[1]
        sample["image"] = np.ascontiguousarray(sample["image"][:, ::-1])
        points = sample["keypoints"].copy()
        points[:, 0] = width - points[:, 0]                  # x -> width - x (pixel i spans [i, i+1))
        sample["keypoints"] = points[list(FLIP_INDEX)]       # point i of the flipped face is point FLIP_INDEX[i]
        return sample


class RandomAffine:
    """Rotate by up to ``degrees``, scale by 1 +- ``scale`` and shift by up to ``translate`` of the size."""

    def __init__(self, degrees: float = 30.0, scale: float = 0.25, translate: float = 0.1):
        self.degrees, self.scale, self.translate = degrees, scale, translate

    def __call__(self, sample: dict) -> dict:
        size = sample["image"].shape[0]
        # One 2x3 matrix moves pixels and points alike: rotation and scale about the centre, then a shift.
        matrix = cv2.getRotationMatrix2D((size / 2, size / 2), uniform(-self.degrees, self.degrees),
                                         uniform(1 - self.scale, 1 + self.scale))
        matrix[:, 2] += [uniform(-self.translate, self.translate) * size for _ in range(2)]
        # OpenCV places a pixel's value at its centre (i + 0.5 here): shift into its coordinates and back.
        pixels = matrix.copy()
        pixels[:, 2] += matrix[:, :2] @ [0.5, 0.5] - 0.5
        sample["image"] = cv2.warpAffine(sample["image"], pixels, (size, size), flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_REPLICATE)
        sample["keypoints"] = (sample["keypoints"] @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)
        return sample


class RandomBrightnessContrast:
    """Contrast about the mean times 1 +- ``contrast``, brightness +- ``brightness`` of the full range."""

    def __init__(self, brightness: float = 0.25, contrast: float = 0.3):
        self.brightness, self.contrast = brightness, contrast

    def __call__(self, sample: dict) -> dict:
        image = sample["image"].astype(np.float32)
        mean = image.mean()
        image = (image - mean) * uniform(1 - self.contrast, 1 + self.contrast) + mean
        image += uniform(-self.brightness, self.brightness) * 255
        sample["image"] = np.clip(image, 0, 255).astype(np.uint8)
        return sample


class ScaleToUnit:
    """Instead of Normalize: pixels 0..255 -> 0..1, so the network sees each photo's own brightness."""

    def __call__(self, sample: dict) -> dict:
        sample["image"] = sample["image"].astype(np.float32) / 255.0
        return sample


def eval_transform(normalize: bool = True):
    """What validation and test see: stage 1's transforms (or ScaleToUnit in place of Normalize)."""
    return Compose([Normalize() if normalize else ScaleToUnit(), ToTensor()])


def train_transform(augment: bool = True, normalize: bool = True):
    """What training sees: the random changes first, on the 8-bit crop, then ``eval_transform``."""
    steps = [RandomFlip(), RandomAffine(), RandomBrightnessContrast()] if augment else []
    return Compose(steps + eval_transform(normalize).transforms)


IMAGE_LEFT = [0, 1, 2, 6, 7, 10, 16, 19]  # brow, eye corners, nose wing, pupil, mouth corner on the image left


def picture(sample: dict, scale: int = 2) -> Image.Image:
    """Stage 1's picture of a sample, the image-left points in red: a flip without the swap shows at a glance."""
    points = sample["keypoints"].numpy().reshape(-1, 2) * scale
    return draw_points(sample_picture(sample, scale), points[IMAGE_LEFT], color=(255, 40, 40), skeleton=False,
                       radius=3)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="draw augmented samples",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-root", default=None, help="the data root (None: $FKD_DATA_ROOT, else data/)")
    parser.add_argument("--list", type=Path, default=STAGE_DIR / "train.txt", help="the list to draw from")
    parser.add_argument("--num", type=int, default=4, help="faces to draw")
    parser.add_argument("--repeats", type=int, default=6, help="augmented draws of each face")
    parser.add_argument("--out", type=Path, default=STAGE_DIR / "samples", help="output folder")
    args = parser.parse_args(argv)
    dataset = FaceLandmarks(read_list(args.list)[: args.num], resolve_data_root(args.data_root), train_transform())
    tiles = [picture(dataset[i]) for i in range(len(dataset)) for _ in range(args.repeats)]
    args.out.mkdir(parents=True, exist_ok=True)
    grid(tiles, columns=args.repeats).save(args.out / "augmented.png")
    print(f"wrote {args.out / 'augmented.png'} (red: the image-left points {IMAGE_LEFT})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
