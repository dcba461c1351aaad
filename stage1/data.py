"""Stage 1, step 2: the Dataset.

``FaceCrops`` (in the library, shared by every stage) reads a list, cuts each
expanded box out of its photo with PIL, converts it to grayscale, resizes it to
112x112 and scales the points into that frame.  The crops are decoded once and
cached, so epochs never decode the photos again.  Stage 1 transforms are
``Normalize`` (per-image mean/std) then ``ToTensor``.

Run this file to draw a few samples, after the transforms, to check them by eye:

    python stage1/data.py --data-root ../shared/data --num 8
"""
import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from facial_keypoints.dataset import FaceCrops
from facial_keypoints.lists import resolve_data_root
from facial_keypoints.plots import draw_points, grid
from facial_keypoints.transforms import eval_transform

STAGE_DIR = Path(__file__).resolve().parent


def train_transform(args=None, config=None):
    """Stage 1 trains on exactly what it tests on: Normalize, ToTensor."""
    return eval_transform(normalize=True)


def sample_picture(sample: dict, scale: int = 2) -> Image.Image:
    """A transformed sample back as a picture: the normalised image stretched to 0..255, points drawn."""
    image = sample["image"][0].numpy()
    image = (image - image.min()) / max(float(image.max() - image.min()), 1e-6) * 255
    picture = Image.fromarray(image.astype(np.uint8)).resize((image.shape[1] * scale, image.shape[0] * scale))
    return draw_points(picture, sample["keypoints"].numpy().reshape(-1, 2) * scale)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="draw a few transformed samples", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-root", default=None, help="the data root (None: $FKD_DATA_ROOT, else data/)")
    parser.add_argument("--list", type=Path, default=STAGE_DIR / "train.txt", help="the list to draw from")
    parser.add_argument("--num", type=int, default=8, help="samples to draw")
    parser.add_argument("--out", type=Path, default=STAGE_DIR / "samples", help="output folder")
    args = parser.parse_args(argv)
    dataset = FaceCrops.from_list(args.list, resolve_data_root(args.data_root), transform=train_transform())
    args.out.mkdir(parents=True, exist_ok=True)
    tiles = []
    for index in range(min(args.num, len(dataset))):
        sample = dataset[index]
        print(f"sample {index}: image {tuple(sample['image'].shape)} mean {sample['image'].mean():.3f} "
              f"std {sample['image'].std():.3f}; keypoints {tuple(sample['keypoints'].shape)} "
              f"in [{sample['keypoints'].min():.1f}, {sample['keypoints'].max():.1f}]")
        tiles.append(sample_picture(sample))
    grid(tiles).save(args.out / "samples.png")
    print(f"wrote {args.out / 'samples.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
