"""Stage 2, offline augmentation: colour-changed copies of every labelled photo, with their label files.

For each label.txt under the data root, writes OUT/<same folder>/<photo>__aug<k>.jpg
(saturation, brightness and contrast each changed by a random factor) and
OUT/<same folder>/label.txt with the same boxes and points.  The geometry is
unchanged, so the labels stay valid.  OUT must be outside the data root, so a
later run never reads copies as originals.

    python stage2/data_augmentation.py --data-root ../shared/data --out stage2/augmented --copies 1
    python stage2/gen_train_test.py --data-root ../shared/data --augmented stage2/augmented
"""
import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from facial_keypoints.data.labels import LabelError, find_label_files, text_lines
from facial_keypoints.data.lists import resolve_data_root

STAGE_DIR = Path(__file__).resolve().parent
COPY_MARK = "__aug"


def colour_copy(image: Image.Image, rng: np.random.Generator, strength: float) -> Image.Image:
    image = image.convert("RGB")
    for enhance in (ImageEnhance.Color, ImageEnhance.Brightness, ImageEnhance.Contrast):
        image = enhance(image).enhance(float(rng.uniform(1 - strength, 1 + strength)))
    return image


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-root", default=None, help="the data root (None: $FKD_DATA_ROOT, else data/)")
    parser.add_argument("--out", type=Path, default=STAGE_DIR / "augmented",
                        help="output folder for the copies and their label.txt files (outside the data root)")
    parser.add_argument("--copies", type=int, default=1, help="copies per photo")
    parser.add_argument("--strength", type=float, default=0.4, help="factors drawn from [1-s, 1+s]")
    parser.add_argument("--seed", type=int, default=1, help="the random factors' seed")
    args = parser.parse_args(argv)
    try:
        root = resolve_data_root(args.data_root).resolve()
        out = args.out.resolve()
        if out == root or root in out.parents:
            raise ValueError(f"--out {out} is inside the data root {root}; choose a folder outside it")
        rng = np.random.default_rng(args.seed)
        written = 0
        for label_file in find_label_files(root):
            folder = out / label_file.parent.relative_to(root)
            folder.mkdir(parents=True, exist_ok=True)
            lines_by_photo = defaultdict(list)
            for _, line in text_lines(label_file):  # a byte that is not UTF-8 is named with its line
                if line.strip():
                    lines_by_photo[line.split()[0]].append(line.split()[1:])
            out_lines = []
            for photo, rows in lines_by_photo.items():
                path = label_file.parent / photo
                try:
                    with Image.open(path) as image:
                        image.load()
                        for k in range(args.copies):
                            name = f"{Path(photo).stem}{COPY_MARK}{k}.jpg"
                            colour_copy(image, rng, args.strength).save(folder / name, quality=95)
                            out_lines += [" ".join([name, *row]) for row in rows]
                            written += 1
                except OSError as error:
                    raise LabelError(f"{label_file}", f"cannot read {path}: {error}") from None
            (folder / "label.txt").write_text("\r\n".join(out_lines) + "\r\n")
        print(f"wrote {written} copies with their label.txt files under {out}")
    except (LabelError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
