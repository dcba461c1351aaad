"""Video with known keypoints and real motion: per-frame predict against tracking, with and without smoothing.

    python benchmarks/video.py --photos validation      # choose settings on these (about 10 min)
    python benchmarks/video.py                          # the test photos, once, after the choice
    python benchmarks/video.py --cli                    # adds predict clip.mp4 against predict FRAMES/

The scenes (benchmarks/video_clips.py) turn, get covered, half leave the frame, cut, and cross.
Per system, with every true face matched to the predicted face of highest IoU (>= 0.5) between the
boxes their points imply:

- recall: true faces matched, over all frames; in the 10 frames after each cut; on frames where a
  face is covered or half out ("hard");
- ``nme_io`` (all 21 points, over the true outer-eye-corner distance), on still and on moving frames
  (neither hard nor within 10 frames of a cut), after cuts, and on hard frames;
- jitter: the mean frame-to-frame change of each point's error (its motion, where the truth is still),
  in % of the interocular distance, on still and on moving frames;
- lag: on moving frames, the shift in frames that best aligns the points with the truth (to a tenth);
- id changes: a true face whose matched track id changes within a scene (two faces crossing swap
  ids, a lost track gets a new one);
- frames per second of the systems' calls (the systems take turns frame by frame).

``--cli`` also writes the first scenes as an mp4 and as PNG frames and times the two commands a user
would run on them: ``facial-keypoints predict clip.mp4`` (JSON lines and the annotated mp4) and
``facial-keypoints predict FRAMES/`` (one JSON per frame), side by side.

Writes benchmarks/results/video.md (or ``--out``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from common import machine, write_table  # noqa: E402  (benchmarks/common.py, beside this file)
from video_clips import FPS, HEIGHT, STILL, WIDTH, scenes, sources  # noqa: E402

from facial_keypoints.api import FaceLandmarker  # noqa: E402
from facial_keypoints.data.list_files import read_list  # noqa: E402
from facial_keypoints.data.lists import resolve_data_root, split_by_photo  # noqa: E402
from facial_keypoints.geometry import box_from_keypoints, iou  # noqa: E402
from facial_keypoints.keypoints import LEFT_EYE_OUTER, RIGHT_EYE_OUTER  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
AFTER_CUT = 10


def run(systems: dict, frames) -> tuple[list, dict]:
    """Every frame through each system (pixels, time_s -> faces); the frames' truths, and per system
    the faces it gave per frame as (id or None, box, points) and the seconds its calls took."""
    truths, outputs, seconds = [], {name: [] for name in systems}, dict.fromkeys(systems, 0.0)
    for n, frame in enumerate(frames):
        truths.append(frame)
        time_s = n / FPS  # one stream: the cuts are the tracker's to notice
        for name, system in systems.items():
            started = time.perf_counter()
            faces = system(frame.pixels, time_s)
            seconds[name] += time.perf_counter() - started
            outputs[name].append([(getattr(f, "id", None), np.asarray(f.box, float), f.keypoints.astype(float))
                                  for f in faces])
        frame.pixels = None  # the truth is all that is kept
    return truths, {name: (outputs[name], seconds[name]) for name in systems}


def matched(truths, predicted) -> dict:
    """{(frame number, scene face index): (id, points)} for every true face matched at IoU >= 0.5 of the
    boxes the true and the predicted points imply (the labels' box of a rolled face is no measure)."""
    pairs = {}
    for n, (truth, faces) in enumerate(zip(truths, predicted)):
        taken = set()
        for index, _, points in truth.faces:
            box = box_from_keypoints(points)
            overlaps = [iou(box, box_from_keypoints(f[2])[None])[0] if k not in taken else 0.0
                        for k, f in enumerate(faces)]
            best = int(np.argmax(overlaps)) if overlaps else -1
            if best >= 0 and overlaps[best] >= 0.5:
                taken.add(best)
                pairs[n, index] = faces[best][0], faces[best][2]
    return pairs


def figures(truths, predicted, seconds) -> dict:
    pairs = matched(truths, predicted)
    rows = [(n, index, points, truth) for n, truth in enumerate(truths) for index, _, points in truth.faces]
    io = {(n, i): np.linalg.norm(p[LEFT_EYE_OUTER] - p[RIGHT_EYE_OUTER]) / 100 for n, i, p, _ in rows}

    def error(n, i, shift=0):  # (21,) distances to the truth ``shift`` frames earlier, in % of interocular
        past = truths[n - shift].faces[i][2]
        return np.linalg.norm(pairs[n, i][1] - past, axis=1) / io[n, i]

    def clean(t):
        return not t.hard and t.t >= AFTER_CUT
    groups = {"still": lambda t: clean(t) and t.still, "moving": lambda t: clean(t) and not t.still,
              "cut": lambda t: t.t < AFTER_CUT, "hard": lambda t: t.hard}
    out = {"recall": 100 * len(pairs) / len(rows)}
    for group, test in groups.items():
        keys = [(n, i) for n, i, _, truth in rows if test(truth)]
        found = [k for k in keys if k in pairs]
        out[f"recall_{group}"] = 100 * len(found) / max(len(keys), 1)
        out[f"nme_{group}"] = float(np.mean([error(*k).mean() for k in found])) if found else np.nan
        steps = [np.linalg.norm((pairs[n, i][1] - truths[n].faces[i][2]) - (pairs[n - 1, i][1] - truths[n - 1].faces[i][2]),
                                axis=1).mean() / io[n, i] for n, i in found
                 if (n - 1, i) in pairs and truths[n - 1].scene == truths[n].scene]
        out[f"jitter_{group}"] = float(np.mean(steps)) if steps else np.nan
    moving = [(n, i) for n, i, _, t in rows if groups["moving"](t) and (n, i) in pairs and t.t >= STILL + 6]
    lags = np.arange(-3, 7)
    costs = np.array([np.mean([error(n, i, k).mean() for n, i in moving]) for k in lags])
    out["lag"] = float(lags[np.argmin(costs)])
    best = int(np.argmin(costs))
    if 0 < best < len(lags) - 1:  # a parabola through the best shift and its neighbours, for tenths
        a, b, c = costs[best - 1:best + 2]
        out["lag"] += 0.5 * (a - c) / (a - 2 * b + c)
    ids = {}
    out["id_changes"] = 0
    for (n, i), (track, _) in sorted(pairs.items()):
        key = truths[n].scene, i
        if track is not None and key in ids and ids[key] != track:
            out["id_changes"] += 1
        ids[key] = track
    out["fps"] = len(truths) / seconds
    return out


HEADER = ("| system | recall | recall, 10 frames after a cut | recall, covered or half out | nme_io still | "
          "nme_io moving | nme_io after a cut | nme_io covered or half out | jitter still | jitter moving | "
          "lag (frames) | id changes | frames/s |")


def row(name: str, f: dict, tracked: bool) -> str:
    return (f"| {name} | {f['recall']:.1f} % | {f['recall_cut']:.1f} % | {f['recall_hard']:.1f} % | "
            f"{f['nme_still']:.2f} | {f['nme_moving']:.2f} | {f['nme_cut']:.2f} | {f['nme_hard']:.2f} | "
            f"{f['jitter_still']:.3f} | {f['jitter_moving']:.3f} | {round(f['lag'], 1) + 0.0:.1f} | "
            f"{f['id_changes'] if tracked else '-'} | {f['fps']:.1f} |")


def scene_photos(split: str) -> list[str]:
    if split == "test":
        return sorted({r.image for r in read_list(REPO / "stage3" / "test.txt") if r.is_face})
    # the photos every training run holds out (--split-seed 1)
    return sorted({r.image for r in split_by_photo(read_list(REPO / "stage3" / "train.txt"), 0.1, 1)[1]})


def tracker_for(landmarker, spec: str, detect_every: int):
    """``default`` (the API's), ``none``, ``one-euro=MIN_CUTOFF,BETA,D_CUTOFF`` (one One-Euro filter on
    the points, for comparison), or ``FaceLandmarker.track`` arguments as ``NAME=VALUE,NAME=VALUE``."""
    if spec.startswith("one-euro="):
        from facial_keypoints.video.smoothing import OneEuroFilter
        from facial_keypoints.video.tracking import FaceTracker
        settings = [float(v) for v in spec.split("=", 1)[1].split(",")]
        return FaceTracker(landmarker.predictor, detect_every, OneEuroFilter(*settings))
    settings = {} if spec == "default" else {"smooth": False} if spec == "none" else {
        key: int(value) if key == "detect_every" else float(value)
        for key, value in (part.split("=") for part in spec.split(","))}
    return landmarker.track(**{"detect_every": detect_every, **settings})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None, help="None: $FKD_DATA_ROOT, else data/")
    parser.add_argument("--photos", choices=("test", "validation"), default="test",
                        help="the test list's photos (to report), or the validation split (to choose on)")
    parser.add_argument("--smoothing", nargs="+", metavar="SETTINGS",
                        default=["none", "default", "one-euro=0.5,20,1", "one-euro=0.5,50,5"],
                        help="a tracking row each: 'default' (the API's), 'none', 'one-euro=MIN_CUTOFF,BETA,D_CUTOFF' "
                             "(one One-Euro filter on the points), or track() arguments as NAME=VALUE,NAME=VALUE")
    parser.add_argument("--photo-count", type=int, default=25, help="photos: 3 of every 5 make a scene, 2 cross")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--detect-every", type=int, default=30,
                        help="the tracker's detector interval, frames (the API's default)")
    parser.add_argument("--cli", action="store_true", help="also time predict clip.mp4 against predict FRAMES/")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "video.md")
    args = parser.parse_args(argv)
    root = resolve_data_root(args.data_root)
    chosen = sources(root, scene_photos(args.photos), args.photo_count)
    landmarker = FaceLandmarker(threads=args.threads)

    def tracked(spec):
        tracker = tracker_for(landmarker, spec, args.detect_every)
        return lambda pixels, time_s: tracker.update(pixels, time_s)

    systems = {"per-frame predict": lambda pixels, time_s: landmarker.detect(pixels)}
    for spec in args.smoothing:
        name = "tracking, " + ("the default smoothing" if spec == "default" else
                               "no smoothing" if spec == "none" else spec)
        systems[name] = tracked(spec)
    truths, outputs = run(systems, scenes(chosen))
    kinds = {kind: len({t.scene for t in truths if t.kind == kind}) for kind in ("turn", "cover", "leave", "cross")}
    rows = []
    for name, (predicted, seconds) in outputs.items():
        rows.append(row(name, figures(truths, predicted, seconds), name != "per-frame predict"))
        print(rows[-1], flush=True)
    lines = [f"`python benchmarks/video.py --photos {args.photos}` on {machine()}; ONNX Runtime on {args.threads} threads: "
             f"{len(truths)} frames at {WIDTH}x{HEIGHT}, {FPS:g} fps, in {sum(kinds.values())} scenes "
             f"({', '.join(f'{v} {k}' for k, v in kinds.items())}); the tracker runs its detector every "
             f"{args.detect_every} frames. Errors and jitter in % of the interocular distance.", "",
             HEADER, "|---" + "|---:" * 12 + "|", *rows]
    if args.cli:
        from video_cli import compare_cli
        lines += ["", *compare_cli(scenes(chosen[:5]), args.threads)]
    write_table(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
