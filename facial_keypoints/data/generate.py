"""The body of every stage's gen_train_test.py: labels -> expanded boxes -> split by photo -> lists."""
from __future__ import annotations

import json
import math
from pathlib import Path

from facial_keypoints.data.lists import records_from_labels
from facial_keypoints.data.images import image_size, load_gray
from facial_keypoints.data.labels import ParseStats
from facial_keypoints.data.list_files import format_list, format_photo_size
from facial_keypoints.atomic import atomic_output, output_folder
from facial_keypoints.data.lists import blank_faces, photo_of, split_by_photo
from facial_keypoints.drawing import draw_points, grid


def add_list_arguments(parser, stage_dir: Path) -> None:
    parser.add_argument("--data-root", default=None,
                        help="folder holding I/, II/, ... each with label.txt (None: $FKD_DATA_ROOT, else data/)")
    parser.add_argument("--out-dir", type=Path, default=stage_dir, help="where train.txt/test.txt go")
    parser.add_argument("--expand-ratio", type=float, default=0.25,
                        help="grow each face box by this fraction of its width/height on every side")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="share of photos in the test list")
    parser.add_argument("--seed", type=int, default=1, help="the split's seed")
    parser.add_argument("--negative", choices=("clamp", "drop"), default="clamp",
                        help="what to do with faces that have slightly negative coordinates")
    parser.add_argument("--skip-bad", action="store_true",
                        help="count and skip malformed lines and missing images instead of stopping")
    parser.add_argument("--keep-blank-faces", action="store_true",
                        help="keep labelled faces whose box is one flat grey value (I/000421.jpg has one inside "
                             "a privacy blackout); by default they are left out of the lists")
    parser.add_argument("--verify", type=int, default=0, metavar="N",
                        help="draw N training crops with their points into OUT_DIR/verify/")


def generate_lists(args, photo_key=photo_of, extra_records=None, drop_from_test=None, face_label=None) -> dict:
    """Write ``train.txt``, ``test.txt`` and ``lists.json`` (the settings, counts and each photo's size).

    ``extra_records`` (stage 2's offline copies, stage 3's non-faces; a list, or a
    function of the face records) are split with their photos by ``photo_key``;
    those for which ``drop_from_test`` is true never enter the test list.
    ``face_label`` (stage 3: 1) is written at the end of every face line.
    Faces whose labelled box is one flat grey value (``data.lists.blank_faces``) are
    left out unless ``args.keep_blank_faces``, each named with its label line.
    The three files are replaced together, once all three are written: a full disk leaves the old
    ones (and no temporary files).  ``photo_sizes`` lets every reader of the lists refuse a photo
    replaced since (``data.lists.photo_size_problem``).
    """
    from facial_keypoints.data.lists import resolve_data_root
    if not math.isfinite(args.expand_ratio) or args.expand_ratio < 0:
        raise ValueError(f"--expand-ratio must be 0 or more (a share of the box added on every side), "
                         f"not {args.expand_ratio:g}")
    out = output_folder(args.out_dir, "--out-dir")
    root = resolve_data_root(args.data_root)
    stats = ParseStats()
    records = _all_records(args, root, stats, extra_records, face_label)
    left_out = set() if args.keep_blank_faces else _blank_lines(records, root, args.skip_bad, stats)
    # split first, leave out after: the photos and so every other line stay where they were
    train, test = split_by_photo(records, args.test_fraction, args.seed, photo_key)
    train = [r for r in train if id(r) not in left_out]
    test = [r for r in test if id(r) not in left_out and not (drop_from_test and drop_from_test(r.image))]
    summary = {
        "data_root": str(root), "expand_ratio": args.expand_ratio, "test_fraction": args.test_fraction,
        "seed": args.seed, "negative": args.negative, "counts": dict(stats.counts),
        "train_lines": len(train), "test_lines": len(test),
        "train_non_faces": sum(not r.is_face for r in train), "test_non_faces": sum(not r.is_face for r in test),
        "train_photos": len({photo_key(r.image) for r in train}),
        "test_photos": len({photo_key(r.image) for r in test}),
        "photo_sizes": _photo_sizes(train + test, root),
    }
    with atomic_output(out / "train.txt") as train_part, atomic_output(out / "test.txt") as test_part, \
            atomic_output(out / "lists.json") as meta_part:
        train_part.write_text(format_list(train), encoding="utf-8", newline="\n")
        test_part.write_text(format_list(test), encoding="utf-8", newline="\n")
        meta_part.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"read {stats['lines']} label lines under {root}: {stats.summary()}")
    print(f"wrote {out / 'train.txt'} ({_count(train)}, {summary['train_photos']} photos) and "
          f"{out / 'test.txt'} ({_count(test)}, {summary['test_photos']} photos)")
    if args.verify:
        path = verify_crops(train[: args.verify], root, out / "verify")
        print(f"drew {min(args.verify, len(train))} crops into {path}")
    return summary


def _all_records(args, root: Path, stats: ParseStats, extra_records, face_label) -> list:
    """Every face of the label files under ``root`` (labelled ``face_label`` where given), then the extra
    records; never none, so empty lists never replace the old ones."""
    records = records_from_labels(root, args.expand_ratio, skip_bad=args.skip_bad, negative=args.negative,
                                  stats=stats)
    if not records:
        raise ValueError(f"no usable faces under {root} ({stats.summary()}); the lists were not written")
    if face_label is not None:
        for record in records:
            record.label = face_label
    if callable(extra_records):
        extra_records = extra_records(records, root, stats)  # a blank face still keeps non-faces away
    return records + list(extra_records or [])


def _blank_lines(records, root, skip_bad: bool, stats: ParseStats) -> set[int]:
    """ids of the records to leave out: blank faces, and with ``skip_bad`` every line of a photo
    whose header reads but whose pixels do not (the blank check is what decodes them)."""
    unreadable = [] if skip_bad else None
    blank = blank_faces(records, root, unreadable=unreadable)
    for record in blank:
        print(f"left out {record.source}: the face box {record.face_box.tolist()} of {record.image} "
              "is one flat grey value (no face to see)")
    stats.add("blank_faces_left_out", len(blank))
    left_out = {id(r) for r in blank}
    if unreadable:  # every line of such a photo goes, its non-faces too
        stats.add("skipped_image_or_box", len(unreadable))
        lost = {r.image for r in unreadable}
        left_out |= {id(r) for r in records if r.image in lost}
    return left_out


def _photo_sizes(records, root) -> dict[str, str]:
    """{photo: "WIDTHxHEIGHT"} of every photo the lists name, sorted; face records carry the size
    read when their labels were checked, others cost one header read a photo."""
    sizes = {}
    for record in records:
        if record.image not in sizes:
            sizes[record.image] = record.photo_size or image_size(Path(root) / record.image)
    return {image: format_photo_size(sizes[image]) for image in sorted(sizes)}


def _count(records) -> str:
    non_faces = sum(not r.is_face for r in records)
    faces = f"{len(records) - non_faces} faces"
    return f"{faces} + {non_faces} non-faces" if non_faces else faces


def verify_crops(records, data_root, out_dir, size: int = 224) -> Path:
    """Each crop at ``size`` px with its points (numbered), one PNG per face plus a contact sheet."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tiles = []
    for n, record in enumerate(records):
        image, factor = load_gray(Path(data_root) / record.image)
        crop = image.crop(tuple(int(v) for v in record.box)).resize((size, size))
        scale = size / (record.box[2:] - record.box[:2])
        tile = draw_points(crop, record.keypoints * scale, numbers=True) if record.is_face else crop.convert("RGB")
        tile.save(out_dir / f"{n:03d}.png")
        tiles.append(tile)
    grid(tiles).save(out_dir / "sheet.png")
    return out_dir
