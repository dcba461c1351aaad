"""Video with known keypoints: per-frame predict against tracking, with and without smoothing.

    python benchmarks/video.py --data-root ../shared/data            # 8 clips of 90 frames, 640x480

Synthetic video from test photos (stage3/test.txt's photos with one labelled face, none of which
training saw), so every frame has true keypoints: each photo fills a 640x480 frame and is held
still for 30 frames, moved for 30 by a smooth similarity transform (a pan, a zoom and a roll
together), then held still at the new pose for 30; every frame gets fresh sensor noise
(sigma 3 grey levels), and the clips follow each other with hard scene cuts.  For each system:

- frame recall: frames whose true face gets a predicted face at box IoU >= 0.5 (and, apart,
  the first two frames after every cut);
- ``nme_io`` on those frames (all 21 points, over the true outer-eye-corner distance);
- jitter: on still frames, the mean frame-to-frame motion of the points, in % of the
  interocular distance (the true points do not move);
- lag: on moving frames, the shift in frames (0-6) that best aligns the points with the truth;
- frames per second, the systems' calls only (making the frames is not timed), the systems
  taking turns frame by frame.

Writes benchmarks/results/video.md.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from common import machine, write_table  # noqa: E402  (benchmarks/common.py, beside this file)

from facial_keypoints.api import FaceLandmarker  # noqa: E402
from facial_keypoints.geometry import iou  # noqa: E402
from facial_keypoints.keypoints import LEFT_EYE_OUTER, RIGHT_EYE_OUTER  # noqa: E402
from facial_keypoints.data.labels import read_labels
from facial_keypoints.data.list_files import read_list  # noqa: E402
from facial_keypoints.data.lists import resolve_data_root, split_by_photo  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT, STILL, MOVING, FPS = 640, 480, 30, 30, 30.0


def clip_sources(root, photos, count: int, min_face: int = 60):
    """(photo path, face box, keypoints) of the first ``count`` of ``photos`` with one labelled face >= min_face px."""
    by_photo = defaultdict(list)
    for face in read_labels(root, skip_bad=True):
        by_photo[face.image].append(face)
    chosen = []
    for photo in photos:
        faces = by_photo[photo]
        if len(faces) == 1 and min(faces[0].box[2:] - faces[0].box[:2]) >= min_face:
            chosen.append((root / photo, faces[0].box, faces[0].keypoints))
        if len(chosen) == count:
            break
    return chosen


def fitted(path, box, keypoints):
    """The photo scaled to cover 640x480 around its face, and the face's box and points in that frame."""
    image = np.asarray(Image.open(path).convert("RGB"))
    h, w = image.shape[:2]
    scale = max(WIDTH / w, HEIGHT / h)
    centre = (np.asarray(box[:2]) + np.asarray(box[2:])) / 2 * scale
    offset = np.clip(centre - [WIDTH / 2, HEIGHT / 2], 0, [w * scale - WIDTH, h * scale - HEIGHT])
    matrix = np.float32([[scale, 0, -offset[0]], [0, scale, -offset[1]]])
    frame = cv2.warpAffine(image, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    corners = np.array([[box[0], box[1]], [box[2], box[3]]]) * scale - offset
    return frame, corners.reshape(-1), np.asarray(keypoints) * scale - offset


def pose(t: int) -> tuple[float, float, float, float]:
    """(dx, dy, zoom, roll degrees) at frame ``t`` of a clip: still, a smooth move, still at the end."""
    s = np.clip((t - STILL) / MOVING, 0.0, 1.0)
    s = 0.5 - 0.5 * np.cos(np.pi * s)  # eased: no jump in speed where the move starts and ends
    return 40 * s, -25 * s, 1 + 0.15 * s, 8 * s


def frames(sources, seed: int = 0):
    """Yield (clip, t, frame, true box, true keypoints) over every clip, frames made on the fly."""
    rng = np.random.default_rng(seed)
    for clip, (path, box, keypoints) in enumerate(sources):
        base, true_box, true_points = fitted(path, box, keypoints)
        for t in range(2 * STILL + MOVING):
            dx, dy, zoom, roll = pose(t)
            matrix = cv2.getRotationMatrix2D((WIDTH / 2, HEIGHT / 2), roll, zoom)
            matrix[:, 2] += (dx, dy)
            frame = cv2.warpAffine(base, matrix, (WIDTH, HEIGHT), borderMode=cv2.BORDER_REPLICATE)
            frame = np.clip(frame + rng.normal(0, 3, frame.shape), 0, 255).astype(np.uint8)
            points = true_points @ matrix[:, :2].T + matrix[:, 2]
            corners = np.array([[true_box[0], true_box[1]], [true_box[2], true_box[1]],
                                [true_box[0], true_box[3]], [true_box[2], true_box[3]]])
            corners = corners @ matrix[:, :2].T + matrix[:, 2]
            yield clip, t, frame, np.r_[corners.min(axis=0), corners.max(axis=0)], points


def run(systems: dict, sources) -> dict:
    """Every frame through each of ``systems`` (frame, time -> list of faces), the systems taking turns
    frame by frame, so the machine's drift falls on all alike; per system, the points of the true face
    per frame and the seconds its calls took."""
    results = {name: {"preds": [], "truths": [], "seconds": 0.0, "info": []} for name in systems}
    for clip, t, frame, box, points in frames(sources):
        for name, system in systems.items():
            started = time.perf_counter()
            faces = system(clip, frame, t / FPS)
            results[name]["seconds"] += time.perf_counter() - started
            overlaps = [iou(box, f.box[None])[0] for f in faces]
            best = int(np.argmax(overlaps)) if overlaps else -1
            found = best >= 0 and overlaps[best] >= 0.5
            results[name]["preds"].append(faces[best].keypoints.astype(np.float64) if found else None)
            results[name]["truths"].append(points)
            results[name]["info"].append((clip, t))
    return results


def figures(result) -> dict:
    preds, truths, info = result["preds"], result["truths"], result["info"]
    found = np.array([p is not None for p in preds])
    after_cut = np.array([t < 2 for _, t in info])
    io = np.array([np.linalg.norm(g[LEFT_EYE_OUTER] - g[RIGHT_EYE_OUTER]) for g in truths])
    nme = np.array([np.linalg.norm(p - g, axis=1).mean() / d * 100 if p is not None else np.nan
                    for p, g, d in zip(preds, truths, io)])
    jitter = []
    for n in range(1, len(preds)):
        same_clip_still = info[n][0] == info[n - 1][0] and pose(info[n][1]) == pose(info[n - 1][1])
        if same_clip_still and preds[n] is not None and preds[n - 1] is not None:
            jitter.append(np.linalg.norm(preds[n] - preds[n - 1], axis=1).mean() / io[n] * 100)
    moving = [n for n, (_, t) in enumerate(info) if STILL <= t < STILL + MOVING and preds[n] is not None]
    errors = {k: np.mean([np.linalg.norm(preds[n] - truths[n - k], axis=1).mean() / io[n] for n in moving
                          if n - k >= 0 and info[n - k][0] == info[n][0]]) for k in range(7)}
    return {"recall": found.mean() * 100, "recall_after_cut": found[after_cut].mean() * 100,
            "nme_io": float(np.nanmean(nme)), "jitter": float(np.mean(jitter)), "lag": min(errors, key=errors.get),
            "fps": len(preds) / result["seconds"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None, help="None: $FKD_DATA_ROOT, else data/")
    parser.add_argument("--photos", choices=("test", "validation"), default="test",
                        help="the test list's photos (to report), or the validation split of the training list "
                             "(to choose the smoothing on)")
    parser.add_argument("--smoothing", nargs="+", default=["0.5:20"], metavar="MIN_CUTOFF:BETA",
                        help="One-Euro settings, a tracking row each")
    parser.add_argument("--clips", type=int, default=8, help="clips (photos), 90 frames each")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--detect-every", type=int, default=10, help="the tracker's detector interval, frames")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "video.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    root = resolve_data_root(args.data_root)
    if args.photos == "test":
        photos = sorted({r.image for r in read_list(REPO / "stage3" / "test.txt") if r.is_face})
    else:  # the photos every training run holds out (--split-seed 1)
        photos = sorted({r.image for r in split_by_photo(read_list(REPO / "stage3" / "train.txt"), 0.1, 1)[1]})
    sources = clip_sources(root, photos, args.clips)
    landmarker = FaceLandmarker(threads=args.threads)

    def tracked(**smoothing):
        tracker = landmarker.track(detect_every=args.detect_every, **smoothing)

        def system(clip, frame, time_s):  # one tracker over the whole stream: the cuts are the tracker's to catch
            return tracker.update(frame, time_s + 1000 * clip)
        return system

    every = f"tracking, detector every {args.detect_every} frames"
    systems = {"per-frame predict (detector every frame)": lambda clip, frame, time_s: landmarker.detect(frame),
               f"{every}, no smoothing": tracked(smooth=False)}
    for setting in args.smoothing:
        min_cutoff, beta = (float(v) for v in setting.split(":"))
        systems[f"{every}, One-Euro min_cutoff {min_cutoff:g} Hz, beta {beta:g}"] = tracked(min_cutoff=min_cutoff,
                                                                                            beta=beta)
    rows = []
    for name, outcome in run(systems, sources).items():
        result = figures(outcome)
        rows.append(f"| {name} | {result['recall']:.1f} % | {result['recall_after_cut']:.1f} % | "
                    f"{result['nme_io']:.2f} % | {result['jitter']:.3f} % | {result['lag']} | {result['fps']:.1f} |")
        print(rows[-1], flush=True)
    lines = [f"Machine: {machine()}; {args.photos} photos; {len(sources)} clips of {2 * STILL + MOVING} frames "
             f"at {WIDTH}x{HEIGHT}, one face each, hard cuts between them; {args.threads} threads.", "",
             "| system | frame recall | recall, 2 frames after a cut | nme_io | jitter on still frames "
             "(% of interocular) | lag on moving frames (frames) | frames per second |",
             "|---|---:|---:|---:|---:|---:|---:|", *rows]
    write_table(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
