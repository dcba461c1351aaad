"""Stage 2 data: the stage-1 Dataset with keypoint-aware online augmentation.

Run it to see what the network is trained on: each row shows one face several
times, augmented, with its points drawn (a flipped face must still have point 6,
"left eye outer", on the image-left eye; the drawing numbers a few points).

    python stage2/data.py --data-root ../shared/data --num 4 --repeats 6
"""
import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from facial_keypoints.augment import add_augmentation_arguments, augmented_dataset
from facial_keypoints.plots import draw_points, grid

STAGE_DIR = Path(__file__).resolve().parent


def picture(sample: dict, scale: int = 2) -> Image.Image:
    image = sample["image"][0].numpy()
    image = (image - image.min()) / max(float(image.max() - image.min()), 1e-6) * 255
    tile = Image.fromarray(image.astype(np.uint8)).resize((image.shape[1] * scale, image.shape[0] * scale))
    points = sample["keypoints"].numpy().reshape(-1, 2) * scale
    tile = draw_points(tile, points)
    # Mark the left-side points red, so a wrong flip swap shows at a glance.
    return draw_points(tile, points[[0, 1, 2, 6, 7, 16, 19]], color=(255, 40, 40), skeleton=False, radius=3)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="draw augmented samples", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-root", default=None, help="the data root (None: $FKD_DATA_ROOT, else data/)")
    parser.add_argument("--list", type=Path, default=STAGE_DIR / "train.txt", help="the list to draw from")
    parser.add_argument("--num", type=int, default=4, help="faces to draw")
    parser.add_argument("--repeats", type=int, default=6, help="augmented draws of each face")
    parser.add_argument("--out", type=Path, default=STAGE_DIR / "samples", help="output folder")
    add_augmentation_arguments(parser)
    args = parser.parse_args(argv)
    dataset = augmented_dataset(args.list, args.data_root, args)
    tiles = [picture(dataset[i]) for i in range(min(args.num, len(dataset))) for _ in range(args.repeats)]
    args.out.mkdir(parents=True, exist_ok=True)
    grid(tiles, columns=args.repeats).save(args.out / "augmented.png")
    print(f"wrote {args.out / 'augmented.png'} (red: image-left points 0,1,2,6,7,16,19)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
