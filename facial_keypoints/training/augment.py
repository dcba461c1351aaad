"""Keypoint-aware online augmentation (stage 2 on).

Each transform takes and returns a sample dict (see ``transforms``) whose image
is still an (H, W) uint8 array.  Randomness comes from torch's generator, which
the trainer seeds per epoch, so resumed runs draw the same augmentations.

Coordinates are continuous (pixel i spans [i, i+1)), OpenCV's are pixel
centres; affine maps convert between the two with a half-pixel shift.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from facial_keypoints.keypoints import FLIP_INDEX


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * torch.rand(()).item()


def hflip(sample: dict) -> dict:
    """Mirror the image and the points, then swap left/right points with FLIP_INDEX."""
    image = sample["image"]
    width = image.shape[1]
    sample["image"] = np.ascontiguousarray(image[:, ::-1])
    points = sample["keypoints"].copy()
    points[:, 0] = width - points[:, 0]
    sample["keypoints"] = points[list(FLIP_INDEX)]
    return sample


class RandomHorizontalFlip:
    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, sample: dict) -> dict:
        return hflip(sample) if torch.rand(()).item() < self.p else sample

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


def affine_matrix(size: tuple[int, int], angle: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    """2x3 map (continuous coordinates) rotating by ``angle`` degrees and scaling about the centre, then shifting."""
    width, height = size
    m = cv2.getRotationMatrix2D((width / 2 - 0.5, height / 2 - 0.5), angle, scale)  # pixel-centre coordinates
    m[:, 2] += shift
    # continuous = centre + 0.5: x' + 0.5 = M (x - 0.5) + 0.5
    m[:, 2] += 0.5 - m[:, :2] @ np.array([0.5, 0.5])
    return m


def warp(sample: dict, matrix: np.ndarray) -> dict:
    image = sample["image"]
    height, width = image.shape
    pixel_matrix = matrix.copy()
    pixel_matrix[:, 2] += matrix[:, :2] @ np.array([0.5, 0.5]) - 0.5  # back to pixel centres for OpenCV
    sample["image"] = cv2.warpAffine(image, pixel_matrix, (width, height), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE)
    points = sample["keypoints"]
    sample["keypoints"] = (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)
    return sample


class RandomAffine:
    """Rotation in [-degrees, degrees], scale in [1-scale, 1+scale], shift up to ``translate`` of the size."""

    def __init__(self, degrees: float = 30.0, scale: float = 0.25, translate: float = 0.1, p: float = 1.0):
        self.degrees, self.scale, self.translate, self.p = degrees, scale, translate, p

    def __call__(self, sample: dict) -> dict:
        if torch.rand(()).item() >= self.p:
            return sample
        height, width = sample["image"].shape
        angle = _uniform(-self.degrees, self.degrees)
        scale = _uniform(1 - self.scale, 1 + self.scale)
        shift = (_uniform(-self.translate, self.translate) * width, _uniform(-self.translate, self.translate) * height)
        return warp(sample, affine_matrix((width, height), angle, scale, shift))

    def __repr__(self):
        return f"RandomAffine(degrees={self.degrees}, scale={self.scale}, translate={self.translate})"


class RandomBrightnessContrast:
    """Multiply contrast about the mean by [1-c, 1+c] and add brightness in [-b, b] of the full range."""

    def __init__(self, brightness: float = 0.25, contrast: float = 0.3):
        self.brightness, self.contrast = brightness, contrast

    def __call__(self, sample: dict) -> dict:
        image = sample["image"].astype(np.float32)
        contrast = _uniform(1 - self.contrast, 1 + self.contrast)
        brightness = _uniform(-self.brightness, self.brightness) * 255
        image = (image - image.mean()) * contrast + image.mean() + brightness
        sample["image"] = np.clip(image, 0, 255).astype(np.uint8)
        return sample

    def __repr__(self):
        return f"RandomBrightnessContrast(brightness={self.brightness}, contrast={self.contrast})"


class RandomGamma:
    """Darken or lighten the mid-tones: gamma drawn log-uniformly in [1/g, g] (dim photos, washed-out ones)."""

    def __init__(self, gamma: float = 2.0, p: float = 0.5):
        self.gamma, self.p = gamma, p

    def __call__(self, sample: dict) -> dict:
        if torch.rand(()).item() >= self.p:
            return sample
        gamma = float(np.exp(_uniform(-np.log(self.gamma), np.log(self.gamma))))
        table = (255.0 * (np.arange(256) / 255.0) ** gamma).round().astype(np.uint8)
        sample["image"] = table[sample["image"]]
        return sample

    def __repr__(self):
        return f"RandomGamma(gamma={self.gamma}, p={self.p})"


class RandomBlurNoise:
    """Gaussian blur (sigma up to ``blur`` px) and/or sensor-like noise (std up to ``noise`` grey levels)."""

    def __init__(self, blur: float = 1.5, noise: float = 8.0, p: float = 0.3):
        self.blur, self.noise, self.p = blur, noise, p

    def __call__(self, sample: dict) -> dict:
        image = sample["image"]
        if self.blur and torch.rand(()).item() < self.p:
            image = cv2.GaussianBlur(image, (0, 0), _uniform(0.3, self.blur))
        if self.noise and torch.rand(()).item() < self.p:
            noise = torch.randn(image.shape).numpy() * _uniform(0, self.noise)
            image = np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)
        sample["image"] = image
        return sample

    def __repr__(self):
        return f"RandomBlurNoise(blur={self.blur}, noise={self.noise}, p={self.p})"


class RandomUnderexposure:
    """A photo taken in near darkness: every grey level scaled by a gain drawn log-uniformly
    in [``darkest``, 0.5], plus sensor noise (std up to ``noise`` levels of the dark image),
    rounded back to 8 bits.  Gamma keeps the full 0-255 range; a dark photo does not, so
    after per-image standardisation its face is coarse, posterised and noisy (a test face
    the classifier missed had 44 grey levels, std 7.7).
    """

    def __init__(self, p: float = 0.2, darkest: float = 0.1, noise: float = 3.0):
        self.p, self.darkest, self.noise = p, darkest, noise

    def __call__(self, sample: dict) -> dict:
        if torch.rand(()).item() >= self.p:
            return sample
        gain = float(np.exp(_uniform(np.log(self.darkest), np.log(0.5))))
        image = sample["image"].astype(np.float32) * gain
        image += torch.randn(image.shape).numpy() * _uniform(0, self.noise)
        sample["image"] = np.clip(np.round(image), 0, 255).astype(np.uint8)
        return sample

    def __repr__(self):
        return f"RandomUnderexposure(p={self.p}, darkest={self.darkest}, noise={self.noise})"


class RandomLowResolution:
    """A small face: the crop shrunk to a side drawn log-uniformly in [``smallest``, half the crop]
    by area averaging, then enlarged back bilinearly, as ``data.images.crop_warped`` enlarges a face
    smaller than the crop.  Both resizes keep pixel centres aligned, so the points stay.
    """

    def __init__(self, p: float = 0.2, smallest: int = 20):
        self.p, self.smallest = p, smallest

    def __call__(self, sample: dict) -> dict:
        if torch.rand(()).item() >= self.p:
            return sample
        height, width = sample["image"].shape[:2]
        side = int(round(np.exp(_uniform(np.log(self.smallest), np.log(max(self.smallest, min(height, width) / 2))))))
        small = cv2.resize(sample["image"], (side, side), interpolation=cv2.INTER_AREA)
        sample["image"] = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
        return sample

    def __repr__(self):
        return f"RandomLowResolution(p={self.p}, smallest={self.smallest})"


class RandomMotionBlur:
    """A straight smear (camera shake, a moving head): a line kernel up to ``length`` px long at a random angle."""

    def __init__(self, length: int = 9, p: float = 0.2):
        self.length, self.p = length, p

    def __call__(self, sample: dict) -> dict:
        if torch.rand(()).item() >= self.p:
            return sample
        length = 3 + int(torch.randint(0, max(1, self.length - 2), ()).item())
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2] = 1.0
        rotation = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), _uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, rotation, (length, length), flags=cv2.INTER_LINEAR)
        # a centred, symmetric kernel: the image smears but does not move, so the points stay
        sample["image"] = cv2.filter2D(sample["image"], -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)
        return sample

    def __repr__(self):
        return f"RandomMotionBlur(length={self.length}, p={self.p})"


class RandomOcclusion:
    """Cover one rectangle (hair, a hand, glasses' glare) with flat grey or noise; the points keep their labels.

    The rectangle takes 5-``max_area`` of the crop; faces and non-faces alike, so
    an occluder is not a cue for either class.
    """

    def __init__(self, p: float = 0.3, max_area: float = 0.3):
        self.p, self.max_area = p, max_area

    def __call__(self, sample: dict) -> dict:
        if torch.rand(()).item() >= self.p:
            return sample
        image = sample["image"].copy()
        height, width = image.shape
        area = _uniform(0.05, self.max_area) * height * width
        aspect = float(np.exp(_uniform(np.log(1 / 3), np.log(3))))
        h = int(min(height, round(np.sqrt(area * aspect))))
        w = int(min(width, round(np.sqrt(area / aspect))))
        top = int(torch.randint(0, height - h + 1, ()).item())
        left = int(torch.randint(0, width - w + 1, ()).item())
        if torch.rand(()).item() < 0.5:
            image[top:top + h, left:left + w] = int(torch.randint(0, 256, ()).item())
        else:
            image[top:top + h, left:left + w] = torch.randint(0, 256, (h, w), dtype=torch.uint8).numpy()
        sample["image"] = image
        return sample

    def __repr__(self):
        return f"RandomOcclusion(p={self.p}, max_area={self.max_area})"


def add_augmentation_arguments(parser) -> None:
    group = parser.add_argument_group("online augmentation (training only)")
    group.add_argument("--no-augment", action="store_true", help="train on plain crops")
    group.add_argument("--flip", type=float, default=0.5, help="probability of a horizontal flip (with the swap)")
    group.add_argument("--rotation", type=float, default=30.0, help="max rotation, degrees")
    group.add_argument("--scale", type=float, default=0.25, help="max relative scale change")
    group.add_argument("--translate", type=float, default=0.1, help="max shift, fraction of the crop")
    group.add_argument("--brightness", type=float, default=0.25, help="max brightness change, fraction of 255")
    group.add_argument("--contrast", type=float, default=0.3, help="max relative contrast change")
    group.add_argument("--light-gamma", type=float, default=0.0,
                       help="max gamma (drawn in [1/g, g], half the samples; 0: off), e.g. 2 for dim photos")
    group.add_argument("--blur", type=float, default=0.0, help="max Gaussian blur sigma, px (0: off)")
    group.add_argument("--noise", type=float, default=0.0, help="max noise std, grey levels (0: off)")
    group.add_argument("--underexpose", type=float, default=0.0,
                       help="probability of a near-dark exposure: gain 0.1-0.5, noise, 8 bits again (0: off)")
    group.add_argument("--low-res", type=float, default=0.0,
                       help="probability of a small face: the crop shrunk to 20-56 px and enlarged back (0: off)")
    group.add_argument("--motion-blur", type=int, default=0,
                       help="max length of a motion-blur smear, px (a fifth of the samples; 0: off)")
    group.add_argument("--occlude", type=float, default=0.0,
                       help="probability of covering a random rectangle of the crop (0: off)")
    group.add_argument("--no-normalize", action="store_true",
                       help="scale pixels to 0..1 instead of per-image mean/std")


def train_transform(args, config):
    """The training transform the augmentation flags describe (then Normalize/ScaleToUnit and ToTensor)."""
    from facial_keypoints.data.transforms import Compose, eval_transform
    steps = []
    if not args.no_augment:
        if args.flip > 0:
            steps.append(RandomHorizontalFlip(args.flip))
        if args.rotation or args.scale or args.translate:
            steps.append(RandomAffine(args.rotation, args.scale, args.translate))
        if getattr(args, "low_res", 0):
            steps.append(RandomLowResolution(args.low_res))
        if args.brightness or args.contrast:
            steps.append(RandomBrightnessContrast(args.brightness, args.contrast))
        if getattr(args, "light_gamma", 0):
            steps.append(RandomGamma(args.light_gamma))
        if getattr(args, "blur", 0) or getattr(args, "noise", 0):
            steps.append(RandomBlurNoise(args.blur, args.noise))
        if getattr(args, "underexpose", 0):
            steps.append(RandomUnderexposure(args.underexpose))
        if getattr(args, "motion_blur", 0):
            steps.append(RandomMotionBlur(args.motion_blur))
        if getattr(args, "occlude", 0):
            steps.append(RandomOcclusion(args.occlude))
    return Compose(steps + eval_transform(config["normalize"]).transforms)
