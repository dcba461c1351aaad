"""Stage 1, step 2: the Dataset, which turns a list of faces into tensors the network can take.

Each line of train.txt or test.txt (written by gen_train_test.py) is one face: its photo, its
expanded box, and 21 points relative to that box.  For each face, ``FaceLandmarks``
  1. opens the photo with PIL and converts it to grayscale ("L": one channel),
  2. crops the expanded box and resizes it to 112x112,
  3. scales the points from the box into that 112x112 frame.
The transforms then make what the network takes:
  ``Normalize``: per image, mean 0 and standard deviation 1;
  ``ToTensor``:  a 1x112x112 float image (channels first) and 42 numbers x0, y0, x1, y1, ...

Run this file to draw a few samples after the transforms, to check them by eye:

    python stage1/data.py --data-root ../shared/data --num 8
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import Compose

from facial_keypoints.data.list_files import read_list  # parses each line and names the one that is wrong
from facial_keypoints.data.lists import check_photo_size, resolve_data_root
from facial_keypoints.drawing import draw_points, grid

STAGE_DIR = Path(__file__).resolve().parent
SIZE = 112  # the network's input is SIZE x SIZE


# The course's own transforms, on a sample dict.  torchvision's ToTensor and Normalize work on images
# alone (ToTensor also divides by 255; Normalize uses one fixed mean and std for every image).
class Normalize:
    """Standardise each image on its own: a dark photo and a bright one look alike to the network."""

    def __call__(self, sample: dict) -> dict:
        image = sample["image"].astype(np.float32)
        std = image.std()
        sample["image"] = (image - image.mean()) / (std if std > 1e-6 else 1.0)  # a flat image stays 0
        return sample


class ToTensor:
    """(H, W) array -> (1, H, W) tensor, the channels-first layout of PyTorch; (21, 2) points -> (42,)."""

    def __call__(self, sample: dict) -> dict:
        sample["image"] = torch.from_numpy(np.ascontiguousarray(sample["image"], np.float32)).unsqueeze(0)
        sample["keypoints"] = torch.from_numpy(np.asarray(sample["keypoints"], np.float32).reshape(-1))
        return sample


def default_transform():
    """Stage 1 trains on exactly what it tests on."""
    return Compose([Normalize(), ToTensor()])


class FaceLandmarks(Dataset):
    """The faces of a list as {"image": 1x112x112 tensor, "keypoints": 42 coordinates in the 112-px frame}."""

    def __init__(self, records, data_root, transform=None):
        self.records = records
        self.data_root = Path(data_root)
        self.transform = transform
        # Crop every face once, here: a photo can be 3,072 px wide, and decoding it again in
        # every epoch would make the data, not the network, the slow part of training.
        self.crops = [self.load_crop(record) for record in records]

    def load_crop(self, record) -> np.ndarray:
        """Steps 1 and 2: the photo in grayscale, the box cut out and resized to SIZE x SIZE."""
        path = self.data_root / record.image
        try:
            with Image.open(path) as photo:
                # A photo replaced since the list was made has other pixels under the list's boxes:
                # refuse it, naming the line (its size is read from the header, before decoding).
                check_photo_size(record, photo.size, path)
                gray = photo.convert("L")
        except OSError as error:  # missing, unreadable or truncated: name the list line that wants it
            raise OSError(f"{record.source}: cannot read {path}: {error}") from None
        # The crop is resize's ``box=`` argument: the region, in the photo's pixels, that PIL cuts out
        # and resizes to SIZE x SIZE in one step.
        crop = gray.resize((SIZE, SIZE), Image.Resampling.BILINEAR, box=tuple(float(v) for v in record.box))
        return np.asarray(crop, dtype=np.uint8)

    def frame_keypoints(self, record) -> np.ndarray:
        """Step 3: points relative to the box -> the 112x112 frame (x * 112 / box width, y * 112 / box height).
        Computed at each call, so stage 3 can override it for non-faces."""
        width, height = record.box[2] - record.box[0], record.box[3] - record.box[1]
        return (record.keypoints * [SIZE / width, SIZE / height]).astype(np.float32)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        # a copy, so no transform can change the stored crop
        sample = {"image": self.crops[index].copy(), "keypoints": self.frame_keypoints(self.records[index])}
        return self.transform(sample) if self.transform else sample


def sample_picture(sample: dict, scale: int = 2, points: bool = True) -> Image.Image:
    """A transformed sample back as a picture: the image stretched to 0..255, its points drawn."""
    image = sample["image"][0].numpy()
    image = (image - image.min()) / max(float(image.max() - image.min()), 1e-6) * 255
    picture = Image.fromarray(image.astype(np.uint8)).resize((image.shape[1] * scale, image.shape[0] * scale))
    if not points:
        return picture.convert("RGB")
    return draw_points(picture, sample["keypoints"].numpy().reshape(-1, 2) * scale)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="draw a few transformed samples",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-root", default=None, help="the data root (None: $FKD_DATA_ROOT, else data/)")
    parser.add_argument("--list", type=Path, default=STAGE_DIR / "train.txt", help="the list to draw from")
    parser.add_argument("--num", type=int, default=8, help="samples to draw")
    parser.add_argument("--out", type=Path, default=STAGE_DIR / "samples", help="output folder")
    args = parser.parse_args(argv)
    records = read_list(args.list)[: args.num]
    dataset = FaceLandmarks(records, resolve_data_root(args.data_root), default_transform())
    tiles = []
    for index in range(len(dataset)):
        sample = dataset[index]
        print(f"sample {index}: image {tuple(sample['image'].shape)} mean {sample['image'].mean():.3f} "
              f"std {sample['image'].std():.3f}; keypoints {tuple(sample['keypoints'].shape)} "
              f"in [{sample['keypoints'].min():.1f}, {sample['keypoints'].max():.1f}]")
        tiles.append(sample_picture(sample))
    args.out.mkdir(parents=True, exist_ok=True)
    grid(tiles).save(args.out / "samples.png")
    print(f"wrote {args.out / 'samples.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
