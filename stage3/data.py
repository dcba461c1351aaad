"""Stage 3 data: stage 1's Dataset, with stage 2's augmentation, over a list of faces *and* non-faces.

A stage-3 list line ends in 1 for a face and in 0 for a non-face (a crop of the same photos
that overlaps no face, see not_face_generate.py).  Each sample gets a ``face`` label, 1.0 or
0.0; a non-face has no points, so it gets placeholder points (zeros, moved about by the
augmentation like any others) that the loss masks out with that label.  Non-faces are augmented like faces, so that a flip or a rotation tells neither apart.
Run it to see both kinds as the network sees them, faces with their points and non-faces
framed in red:

    python stage3/data.py --data-root ../shared/data --num 12
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from facial_keypoints.data.list_files import read_list
from facial_keypoints.data.lists import resolve_data_root
from facial_keypoints.drawing import grid

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for the earlier stages
from stage1.data import FaceLandmarks, sample_picture  # noqa: E402
from stage2.data import train_transform  # noqa: E402

STAGE_DIR = Path(__file__).resolve().parent


class FacesAndNonFaces(FaceLandmarks):
    """Stage 1's Dataset, plus the label: {"image", "keypoints" (zeros for a non-face), "face": 1.0 or 0.0}."""

    def frame_keypoints(self, record) -> np.ndarray:
        return super().frame_keypoints(record) if record.is_face else np.zeros((21, 2), np.float32)

    def __getitem__(self, index: int) -> dict:
        sample = super().__getitem__(index)
        sample["face"] = torch.tensor(1.0 if self.records[index].is_face else 0.0)
        return sample


def picture(sample: dict, scale: int = 2) -> Image.Image:
    """Stage 1's picture of a sample; a non-face without its (placeholder) points, framed in red."""
    if float(sample["face"]) > 0.5:
        return sample_picture(sample, scale)
    tile = sample_picture(sample, scale, points=False)
    ImageDraw.Draw(tile).rectangle([0, 0, tile.width - 1, tile.height - 1], outline=(255, 40, 40), width=4)
    return tile


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="draw augmented faces and non-faces of a stage-3 list",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-root", default=None, help="the data root (None: $FKD_DATA_ROOT, else data/)")
    parser.add_argument("--list", type=Path, default=STAGE_DIR / "train.txt", help="the list to draw from")
    parser.add_argument("--num", type=int, default=12, help="crops to draw, half faces, half non-faces")
    parser.add_argument("--seed", type=int, default=0, help="which crops and augmentations")
    parser.add_argument("--out", type=Path, default=STAGE_DIR / "samples", help="output folder")
    args = parser.parse_args(argv)
    records = read_list(args.list)
    rng = np.random.default_rng(args.seed)
    faces = [r for r in records if r.is_face]
    non_faces = [r for r in records if not r.is_face]
    picks = list(rng.choice(len(faces), min(args.num // 2, len(faces)), replace=False))
    chosen = [faces[i] for i in picks] + [non_faces[i] for i in rng.choice(
        len(non_faces), min(args.num - len(picks), len(non_faces)), replace=False)]
    torch.manual_seed(args.seed)
    dataset = FacesAndNonFaces(chosen, resolve_data_root(args.data_root), train_transform())
    args.out.mkdir(parents=True, exist_ok=True)
    grid([picture(dataset[i]) for i in range(len(dataset))], columns=6).save(args.out / "faces_and_non_faces.png")
    print(f"wrote {args.out / 'faces_and_non_faces.png'} ({len(faces)} faces, {len(non_faces)} non-faces in "
          f"{args.list}; non-faces framed in red)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
