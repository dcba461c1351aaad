"""Stage 3 data: the stage-2 Dataset over a list of faces *and* non-faces.

A non-face sample has label 0 (``face`` = 0.0), all-zero keypoints, and is
augmented like a face; its keypoints never reach the loss (the mask comes from
the label).  Run it to see both kinds as the network sees them, faces with
their points and non-faces framed in red:

    python stage3/data.py --data-root ../shared/data --num 12
"""
import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from facial_keypoints.augment import add_augmentation_arguments, augmented_dataset
from facial_keypoints.plots import draw_points, grid

STAGE_DIR = Path(__file__).resolve().parent


def picture(sample: dict, scale: int = 2) -> Image.Image:
    image = sample["image"][0].numpy()
    image = (image - image.min()) / max(float(image.max() - image.min()), 1e-6) * 255
    tile = Image.fromarray(image.astype(np.uint8)).resize((image.shape[1] * scale, image.shape[0] * scale))
    if float(sample["face"]) > 0.5:
        return draw_points(tile, sample["keypoints"].numpy().reshape(-1, 2) * scale)
    tile = tile.convert("RGB")
    ImageDraw.Draw(tile).rectangle([0, 0, tile.width - 1, tile.height - 1], outline=(255, 40, 40), width=4)
    return tile


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="draw augmented faces and non-faces of a stage-3 list",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-root", default=None, help="the data root (None: $FKD_DATA_ROOT, else data/)")
    parser.add_argument("--list", type=Path, default=STAGE_DIR / "train.txt", help="the list to draw from")
    parser.add_argument("--num", type=int, default=12, help="crops to draw")
    parser.add_argument("--seed", type=int, default=0, help="which crops and augmentations")
    parser.add_argument("--out", type=Path, default=STAGE_DIR / "samples", help="output folder")
    add_augmentation_arguments(parser)
    args = parser.parse_args(argv)
    dataset = augmented_dataset(args.list, args.data_root, args)
    faces = np.flatnonzero(dataset.face_mask())
    non_faces = np.flatnonzero(~dataset.face_mask())
    rng = np.random.default_rng(args.seed)
    half = args.num // 2
    picks = list(rng.choice(faces, min(half, len(faces)), replace=False)) + \
        list(rng.choice(non_faces, min(args.num - half, len(non_faces)), replace=False))
    args.out.mkdir(parents=True, exist_ok=True)
    grid([picture(dataset[int(i)]) for i in picks], columns=6).save(args.out / "faces_and_non_faces.png")
    print(f"wrote {args.out / 'faces_and_non_faces.png'} ({len(faces)} faces, {len(non_faces)} non-faces in "
          f"{args.list}; non-faces framed in red)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
