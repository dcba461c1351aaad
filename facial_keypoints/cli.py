"""``facial-keypoints COMMAND`` (or ``python -m facial_keypoints COMMAND``): predict, evaluate, export, quantize,
pack and train.

Every command works with the shipped model (no ``--checkpoint``) or any checkpoint this
project trains.  ``predict`` is a thin layer over ``FaceLandmarker``; ``export`` and
``quantize`` only write files, which ``runtime`` then finds beside the checkpoint (or,
for the shipped model, in the user cache: nothing is ever written into the package).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .face_detection import MIN_FACE
from .atomic import output_folder
from .bulk import RECYCLE_AFTER
from .errors import Terminated, run_reporting_errors
from .runtime import BACKENDS, OPSETS, derived_path, is_shipped
from .weights import DEFAULT_CHECKPOINT, WEIGHTS_DIR

BACKEND_HELP = ("auto: the checkpoint's int8 ONNX model where one was made from it (the shipped model has one), "
                "else its float ONNX model, else torch")


def writable_output(path: Path) -> Path:
    """``path`` for a file a command writes: never inside the package's shipped models."""
    if Path(path).resolve().parent == WEIGHTS_DIR:
        raise ValueError(f"{path}: the shipped models are read-only; write somewhere else")
    return Path(path)


def evaluation_dir(checkpoint) -> Path:
    """Where ``evaluate`` writes its figure without ``--out``: beside the checkpoint, except for the
    shipped models (their folder is no place for results): ./evaluation."""
    return Path("evaluation") if is_shipped(checkpoint) else Path(checkpoint).resolve().parent


def evaluate(args) -> int:
    from .engine import select_device
    from .evaluation import face_metrics, predict_records, records_from_labels
    from .labels import ParseStats, attach_face_boxes, read_list
    from .lists import resolve_data_root
    from .metrics import classification_metrics, json_summary, summary_table
    from .plots import plot_ced
    from .runtime import load
    out = output_folder(args.out or evaluation_dir(args.checkpoint))
    if args.cache_dir is not None:
        output_folder(args.cache_dir, "--cache-dir")
    model, payload, backend = load(args.checkpoint, args.backend)
    print(f"network: {args.checkpoint} ({backend})")
    device = select_device(args.no_cuda or backend != "torch")
    model.to(device)
    config = payload["config"]
    stats = ParseStats()
    if args.list is not None:  # a list's expanded boxes, relative to the data root
        root = resolve_data_root(None if args.data is None else str(args.data))
        records = read_list(args.list)
        attach_face_boxes(records, root)  # the labelled boxes, for nme_box
        source = f"{args.list} ({sum(r.is_face for r in records)} faces)"
    else:
        if args.data is None:
            raise ValueError("evaluate needs --data FOLDER (label.txt files) or --list FILE")
        root = args.data
        records = records_from_labels(args.data, config["expand_ratio"], skip_bad=args.skip_bad,
                                      negative=args.negative, stats=stats)
        source = f"{args.data} ({stats.summary()})"
    if not records:
        raise ValueError(f"no usable faces under {args.data} ({stats.summary()})")
    result = predict_records(model, config, records, root, device, batch_size=args.batch_size,
                             cache_dir=args.cache_dir, progress=not args.no_progress)
    metrics = face_metrics(records, result)
    extra = {}
    if result["face_prob"] is not None and not all(r.is_face for r in records):
        threshold = float(config.get("face_threshold", 0.5))
        c = extra["classifier"] = dict(classification_metrics([r.is_face for r in records], result["face_prob"],
                                                              threshold), threshold=threshold)
    ced = plot_ced({f"{config['arch']} on {args.list or args.data}": metrics["nme_io_per_face"]}, out / "ced.png")
    print(summary_table(metrics, f"{args.checkpoint} on {source}"))
    if extra:
        print(f"face/non-face on {c['samples']} crops at face probability >= {threshold:.2f}: accuracy "
              f"{c['accuracy']:.2f}%, face recall {c['face_recall']:.2f}%, non-face recall {c['non_face_recall']:.2f}% "
              "(keypoint metrics above: faces only)")
    print(f"cumulative error curve: {ced}")
    print(json.dumps(json_summary(metrics, checkpoint=str(args.checkpoint), backend=backend,
                                  data=str(args.list or args.data), label_counts=dict(stats.counts), **extra)))
    return 0


def pack(args) -> int:
    from .labels import read_list
    from .lists import resolve_data_root
    from .training.crop_pack import write_pack
    if args.cache_dir is not None:
        output_folder(args.cache_dir, "--cache-dir")
    records = read_list(args.list)
    path = write_pack(args.out, records, resolve_data_root(args.data_root), args.input_size, args.cache_dir,
                      progress=not args.no_progress, jpeg_quality=args.quality)
    print(f"packed the {len(records)} crops of {args.list} into {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0


def predict(args) -> int:
    """Whole photos: a JSON file and an annotated image per photo; a photo that fails is named and skipped."""
    from .api import FaceLandmarker
    from .images import naming, open_photo
    from .photos import find_photos, output_stems, write_outputs
    from .video import is_video
    for folder in (p for p in args.paths if p.is_dir()):
        if folder.resolve() == args.out.resolve():  # the drawings would be next run's photos
            raise ValueError(f"--out {args.out} is also an input folder: give predict another output folder")
    photos = find_photos(args.paths, skip=args.out)  # an output folder inside an input folder is not searched
    if args.camera is not None:
        photos.append(args.camera)
    if not photos:
        raise FileNotFoundError(f"no photos or videos under {' '.join(map(str, args.paths))}")
    if args.ray:
        return predict_ray(photos, args)
    if args.parquet is not None or args.ray_address is not None:
        raise ValueError("--parquet and --ray-address are for --ray")
    if args.jsonl is not None:
        return predict_jsonl(photos, args)
    if args.workers:
        raise ValueError("--workers runs with --jsonl FILE (one line per photo); without it predict runs in one "
                         "process")
    output_folder(args.out)
    landmarker = FaceLandmarker(**landmarker_settings(args, args.threads))
    print(f"network: {landmarker.checkpoint} ({landmarker.backend}); face detector: {landmarker.detector_name}")
    failed = 0
    for path, stem in zip(photos, output_stems(photos, args.out)):
        if is_video(path):
            failed += predict_video(landmarker, path, args, stem)
            continue
        try:
            image = open_photo(path)
            result = landmarker.process(image)
        except Exception as error:  # noqa: BLE001 - one photo's failure, whatever it is, must not stop the rest
            print(f"error: {naming(path, error)} (skipped)", file=sys.stderr)
            failed += 1
            continue
        record = result.as_json(str(path), str(landmarker.checkpoint), landmarker.detector_name)
        try:
            json_path, image_path = write_outputs(args.out, stem, image, result, record)
        except OSError as error:  # a full disk or a read-only folder: no later photo would fare better
            print(f"error: cannot write {error.filename or args.out / stem}: {error.strerror or error}; "
                  "stopped (every file written so far is whole)", file=sys.stderr)
            return 1
        print(f"{path}: {len(result.accepted)} face(s), {len(result.faces) - len(result.accepted)} rejected "
              f"candidate(s), {sum(result.timings_ms.values()):.0f} ms -> {json_path}, {image_path}")
    if failed:
        print(f"{failed} of {len(photos)} photo(s) and video(s) could not be processed", file=sys.stderr)
    return 1 if failed else 0


def landmarker_settings(args, threads: int | None) -> dict:
    """``FaceLandmarker``'s arguments from predict's flags (workers and actors load their own model)."""
    return dict(checkpoint=args.checkpoint, backend=args.backend, detector=args.detector, threads=threads,
                face_threshold=args.face_threshold, min_face=args.min_face, refine=not args.no_refine,
                detect_max_side=args.detect_max_side)


def predict_jsonl(photos: list, args) -> int:
    """Photos to one JSON-lines file, resumable, on ``--workers`` processes (``bulk``)."""
    from .bulk import JsonlWriter, WorkerDied, annotate, check_memory, done_photos, photo_key
    from .video import is_video
    videos = [p for p in photos if is_video(p)]
    if videos:
        raise ValueError(f"--jsonl is for photos; {videos[0]} is a video (predict it without --jsonl)")
    check_memory(args.workers)
    writer, counts = JsonlWriter(writable_output(args.jsonl)), {}  # the file's lock: one run per file
    try:
        done = {photo_key(image) for image in done_photos(args.jsonl)}
        todo = [p for p in photos if photo_key(p) not in done]
        if not todo:
            print(f"all {len(photos)} photo(s) are already in {args.jsonl}")
            return 0
        threads = args.threads or max(1, (os.cpu_count() or 1) // max(args.workers, 1))
        print(f"{len(photos) - len(todo)} of {len(photos)} photo(s) already in {args.jsonl}; {len(todo)} to go on "
              f"{args.workers or 'no'} worker process(es), {threads} thread(s) each")
        annotate(todo, writer, landmarker_settings(args, threads), workers=args.workers,
                 progress=not args.no_progress, counts=counts, recycle_after=args.recycle_after)
    except WorkerDied as error:
        print(f"error: {error}; stopped with {counts['written']} photo(s) written to {args.jsonl}; the same "
              "command goes on from there", file=sys.stderr)
        return 1
    except OSError as error:  # a full disk: no later photo would fare better
        print(f"error: cannot write {args.jsonl}: {error.strerror or error}; stopped with "
              f"{counts.get('written', 0)} photo(s) written, each line whole; the same command goes on from there",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:
        print(f"{'terminated' if isinstance(interrupt, Terminated) else 'interrupted'}: {counts.get('written', 0)} "
              f"photo(s) written to {args.jsonl}, each line whole; the same command goes on from there",
              file=sys.stderr)
        return 143 if isinstance(interrupt, Terminated) else 130
    finally:
        writer.close()
    print(f"{counts['written']} photo(s) written to {args.jsonl}"
          + (f"; {counts['failed']} could not be processed" if counts["failed"] else ""))
    return 1 if counts["failed"] else 0


def predict_ray(photos: list, args) -> int:
    """Photos through a pool of Ray actors (``ray_predict``), to --jsonl FILE or --parquet FOLDER."""
    from .video import is_video
    try:
        from .ray_predict import predict_with_ray
        import ray  # noqa: F401
    except ImportError:
        raise ValueError("--ray needs Ray Data: pip install '.[ray]'") from None
    if any(is_video(p) for p in photos):
        raise ValueError("--ray is for photos; predict videos without it")
    if (args.jsonl is None) == (args.parquet is None):
        raise ValueError("--ray writes to --jsonl FILE or to --parquet FOLDER: give one")
    workers = args.workers or max(1, os.cpu_count() or 1)
    settings = landmarker_settings(args, args.threads or 1)
    output = args.jsonl if args.jsonl is not None else args.parquet
    counts = predict_with_ray(photos, settings, jsonl=args.jsonl and writable_output(args.jsonl),
                              parquet=args.parquet, workers=workers, address=args.ray_address,
                              progress=not args.no_progress, recycle_after=args.recycle_after)
    print(f"{counts['written']} photo(s) written to {output} by {workers} Ray actor(s)"
          + (f", {counts['skipped']} already there" if counts["skipped"] else "")
          + (f"; {counts['failed']} could not be processed" if counts["failed"] else ""))
    return 1 if counts["failed"] else 0


def predict_video(landmarker, source, args, stem: str) -> int:
    """One video (or camera) through a ``FaceTracker``: STEM.jsonl, STEM.mp4 (and STEM.csv); 1 if it failed, else 0."""
    from .video import annotate_video
    tracker = landmarker.track(detect_every=args.detect_every, smooth=not args.no_smooth,
                               min_cutoff=args.min_cutoff, beta=args.beta)
    try:
        counts = annotate_video(tracker, source, args.out, stem, progress=not args.no_progress, csv=args.csv)
    except KeyboardInterrupt as interrupt:
        print(f"{'terminated' if isinstance(interrupt, Terminated) else 'interrupted'}: the frames done so far are "
              f"in {args.out / stem}.jsonl and .mp4{' and .csv' if args.csv else ''}", file=sys.stderr)
        raise SystemExit(143 if isinstance(interrupt, Terminated) else 130) from None
    except Exception as error:  # noqa: BLE001 - one video's failure must not stop the rest
        from .images import naming
        print(f"error: {naming(source, error)} (skipped)", file=sys.stderr)
        return 1
    if counts["letterboxed"]:
        print(f"note: {source}: {counts['letterboxed']} frame(s) of another size than the first were letterboxed "
              f"into its size in {counts['video']} (their points in the JSON lines are in their own pixels)")
    print(f"{source}: {counts['frames']} frames, {counts['faces']} faces, the detector on {counts['detections']}, "
          f"{counts['frames'] / max(counts['seconds'], 1e-9):.1f} frames/s -> {counts['jsonl']}, {counts['video']}"
          + (f", {counts['csv']}" if args.csv else ""))
    return 0


def quantize(args) -> int:
    import numpy as np
    import torch

    from .cache import load_crops
    from .checkpoint import load_model
    from .engine import model_outputs
    from .export import export_onnx, stamp_source
    from .labels import read_list
    from .lists import recorded_sizes, resolve_data_root
    from .quantize import quantize_onnx
    from .runtime import OnnxModel
    from .transforms import crops_to_batch
    out = not_an_input(writable_output(args.out or derived_path(args.checkpoint, "onnx-int8")), args.checkpoint,
                       args.list)
    if args.cache_dir is not None:
        output_folder(args.cache_dir, "--cache-dir")
    model, payload = load_model(args.checkpoint)
    config = payload["config"]
    records = read_list(args.list)
    step = max(1, len(records) // args.samples)
    records = records[::step][: args.samples]
    crops = load_crops([(r.image, r.box) for r in records], resolve_data_root(args.data_root), config["input_size"],
                       args.cache_dir, sources=[r.source for r in records], progress=not args.no_progress,
                       photo_sizes=recorded_sizes(records))
    out.parent.mkdir(parents=True, exist_ok=True)
    float_path = export_onnx(model, out.with_name(out.name.replace(".int8", "") + ".float.tmp.onnx"),
                             config["input_size"])
    try:
        quantize_onnx(float_path, out, crops, config["normalize"])
        stamp_source(out, args.checkpoint)
    finally:
        float_path.unlink(missing_ok=True)
    batch = crops_to_batch(crops, config["normalize"])
    with torch.no_grad():
        expected = model_outputs(model, batch)[0]
    got = model_outputs(OnnxModel(out), batch)[0]
    faces = np.array([r.is_face for r in records])
    shift = float(np.abs(expected.numpy() - got.numpy())[faces].mean()) if faces.any() else 0.0
    print(f"int8 vs float on the {int(faces.sum())} faces among the {len(crops)} calibration crops: "
          f"mean keypoint coordinate difference {shift:.3f} px (112-px frame)")
    print(f"wrote {out}")
    return 0


def export(args) -> int:
    import numpy as np
    import torch

    from .checkpoint import load_model
    from .export import export_onnx, stamp_source
    from .runtime import OnnxModel
    out = not_an_input(writable_output(args.out or derived_path(args.checkpoint, "onnx")), args.checkpoint)
    output_folder(out.parent)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give the .onnx file's path")
    model, payload = load_model(args.checkpoint)
    size = payload["config"]["input_size"]
    # Written and checked beside OUT, then renamed over it: a failed check leaves a previous OUT as it was.
    staged = out.with_name(f".{out.stem}.{os.getpid()}.checking.onnx")
    try:
        try:
            export_onnx(model, staged, size, args.opset)
        except Exception as error:  # noqa: BLE001 - torch's exporter refuses an op at this opset
            raise ValueError(f"cannot export {args.checkpoint} at opset {args.opset}: {str(error).splitlines()[0]}") \
                from None
        stamp_source(staged, args.checkpoint)
        if not args.no_check:
            images = torch.randn(8, 1, size, size, generator=torch.Generator().manual_seed(0))
            with torch.no_grad():
                expected = model(images)
            got = OnnxModel(staged)(images)
            pairs = zip(expected, got) if isinstance(expected, tuple) else [(expected, got)]
            # each output against its own scale: keypoints are pixels of a 112-px frame, logits are small
            worst = max(float(np.abs(e.numpy() - g.numpy()).max() / max(1.0, np.abs(e.numpy()).max()))
                        for e, g in pairs)
            print(f"onnxruntime vs torch on a seeded batch of 8: max difference {worst:.1e} of the output's scale")
            if worst > 1e-5:
                raise ValueError(f"{out}: ONNX Runtime differs from PyTorch by {worst:.1e} of the output's scale "
                                 "(> 1e-5); not written")
        os.replace(staged, out)
    finally:
        staged.unlink(missing_ok=True)
    print(f"wrote {out}")
    return 0


def not_an_input(out: Path, *inputs) -> Path:
    """``out``, unless it is one of the command's own input files, which writing would destroy."""
    for path in inputs:
        if path is not None and Path(out).resolve() == Path(path).resolve():
            raise ValueError(f"--out {out} is an input of this command; give another file")
    return Path(out)


def finite_float(low: float, high: float = float("inf"), low_open: bool = False):
    """An argparse type: a number in [low, high] ((low, high] with ``low_open``); nan and inf are refused."""
    def parse(text: str) -> float:
        import math
        value = float(text)
        if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
            bounds = f"{'(' if low_open else '['}{low:g}, " + (f"{high:g}]" if math.isfinite(high) else "∞)")
            raise argparse.ArgumentTypeError(f"must be a finite number in {bounds}, not {text}")
        return value
    return parse


def int_between(low: int, high: int):
    """An argparse type: a whole number in [low, high]."""
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}, not {value}")
        return value
    return parse


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog="facial-keypoints", description=__doc__.split("\n\n")[0], formatter_class=fmt)
    commands = parser.add_subparsers(dest="command", required=True)

    pr = commands.add_parser("predict", formatter_class=fmt,
                             help="keypoints on whole photos: a JSON file and an annotated image each")
    pr.add_argument("paths", nargs="*", type=Path, help="photos and videos, or folders searched recursively")
    pr.add_argument("--camera", type=int, default=None, metavar="N",
                    help="also run on live camera N (OpenCV's numbering) until Ctrl-C")
    pr.add_argument("--detect-every", type=positive_int, default=10,
                    help="videos: run the face detector at least every this many frames (and whenever a face is lost)")
    pr.add_argument("--no-smooth", action="store_true", help="videos: the raw per-frame points, no One-Euro filter")
    pr.add_argument("--min-cutoff", type=finite_float(0.0, low_open=True), default=0.5,
                    help="videos: the One-Euro filter's cut-off at rest, Hz (lower: steadier, more lag)")
    pr.add_argument("--beta", type=finite_float(0.0), default=20.0,
                    help="videos: how fast the cut-off rises with speed (higher: less lag in motion)")
    pr.add_argument("--csv", action="store_true",
                    help="videos: also STEM.csv, one row per face per frame (id, score, box, x and y of each point)")
    pr.add_argument("--no-progress", action="store_true", help="no progress bar (videos, --jsonl, --ray)")
    pr.add_argument("--out", type=Path, default=Path("predictions"), help="output folder")
    pr.add_argument("--jsonl", type=Path, default=None, metavar="FILE",
                    help="photos: append one JSON line per photo to FILE instead of NAME.json and NAME.jpg, in "
                         "the order they finish; photos already in FILE are skipped, so a rerun resumes")
    pr.add_argument("--workers", type=non_negative_int, default=0,
                    help="with --jsonl: worker processes, each with its own model (0: in this process); with "
                         "--ray: actors (0: one per CPU)")
    pr.add_argument("--recycle-after", type=positive_int, default=RECYCLE_AFTER, metavar="N",
                    help="with --workers or --ray: a worker is replaced by a fresh process after N photos, so "
                         "memory a library leaks stays bounded")
    pr.add_argument("--ray", action="store_true",
                    help="photos: run on Ray Data (pip install '.[ray]'), writing --jsonl FILE or --parquet FOLDER")
    pr.add_argument("--ray-address", default=None,
                    help="with --ray: the Ray cluster to join ('auto': the one this machine belongs to, "
                         "ray://HOST:10001: a remote one); without it a local Ray instance starts")
    pr.add_argument("--parquet", type=Path, default=None, metavar="FOLDER",
                    help="with --ray: write Parquet files (image, faces, record as JSON text, error) into FOLDER")
    pr.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="the model")
    pr.add_argument("--backend", choices=BACKENDS, default="auto", help=BACKEND_HELP)
    pr.add_argument("--detector", choices=("auto", "yunet", "mtcnn", "haar"), default="auto",
                    help="where candidate faces come from (each ships its weights in its package); auto: yunet "
                         "where pip install '.[yunet]' installed it, else mtcnn")
    pr.add_argument("--min-face", type=int_between(MIN_FACE, 4096), default=40,
                    help="smallest face the detector looks for, pixels")
    pr.add_argument("--face-threshold", type=finite_float(0.0, 1.0), default=None,
                    help="face probability a candidate needs (None: the checkpoint's, else 0.5)")
    pr.add_argument("--detect-max-side", type=int_between(64, 4096), default=None,
                    help="larger photos are shrunk to this for the detector (crops use full resolution); "
                         "default: the detector's own, 416 for yunet, 1280 for mtcnn and haar")
    pr.add_argument("--no-refine", action="store_true",
                    help="one network pass on the detector's box instead of a second one on the box the first "
                         "pass's keypoints imply")
    pr.add_argument("--threads", type=positive_int, default=None, help="CPU threads (None: all cores)")
    pr.set_defaults(func=predict)

    ev = commands.add_parser("evaluate", formatter_class=fmt,
                             help="the keypoint metrics of a model on a folder of label.txt files, or on a list")
    ev.add_argument("--data", type=Path, default=None,
                    help="a folder with label.txt files (searched recursively); with --list, the list's data root "
                         "(None: $FKD_DATA_ROOT, else data/)")
    ev.add_argument("--list", type=Path, default=None,
                    help="a list (stageN/test.txt) instead of label files: its faces' metrics, and the classifier's "
                         "where it has non-faces")
    ev.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="the model")
    ev.add_argument("--backend", choices=BACKENDS, default="auto", help=BACKEND_HELP)
    ev.add_argument("--out", type=Path, default=None,
                    help="folder for ced.png (None: beside the checkpoint; ./evaluation for the shipped model)")
    ev.add_argument("--batch-size", type=positive_int, default=256, help="faces per network call")
    ev.add_argument("--negative", choices=("clamp", "drop"), default="clamp",
                    help="label coordinates below 0: clamp them to 0, or drop the face")
    ev.add_argument("--skip-bad", action="store_true", help="count and skip bad lines and photos instead of stopping")
    ev.add_argument("--cache-dir", type=Path, default=None, help="crop cache (None: $FKD_CACHE_DIR or ~/.cache)")
    ev.add_argument("--no-cuda", action="store_true", help="stay on the CPU even if a GPU is present")
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")
    ev.set_defaults(func=evaluate)

    ex = commands.add_parser("export", formatter_class=fmt,
                             help="a checkpoint as ONNX (dynamic batch), checked against PyTorch")
    ex.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="the model")
    ex.add_argument("--out", type=Path, default=None,
                    help="the .onnx file (None: CHECKPOINT.onnx beside it; the user cache for the shipped model)")
    ex.add_argument("--opset", type=int_between(*OPSETS), default=17, help="ONNX opset")
    ex.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime parity check")
    ex.set_defaults(func=export)

    qu = commands.add_parser("quantize", formatter_class=fmt,
                             help="an int8 ONNX model of a checkpoint, calibrated on crops of a list")
    qu.add_argument("--list", required=True, type=Path, help="a list file whose crops calibrate (stage3/train.txt)")
    qu.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="the model")
    qu.add_argument("--data-root", default=None, help="the list's data root (None: $FKD_DATA_ROOT, else data/)")
    qu.add_argument("--samples", type=positive_int, default=212, help="calibration crops, spread over the list")
    qu.add_argument("--out", type=Path, default=None,
                    help="the .int8.onnx file (None: CHECKPOINT.int8.onnx beside it; the user cache for the "
                         "shipped model)")
    qu.add_argument("--cache-dir", type=Path, default=None, help="crop cache (None: $FKD_CACHE_DIR or ~/.cache)")
    qu.add_argument("--no-progress", action="store_true", help="no progress bar")
    qu.set_defaults(func=quantize)

    pa = commands.add_parser("pack", formatter_class=fmt,
                             help="a list's crops in one file, to train with --crops where the photos are not")
    pa.add_argument("--list", required=True, type=Path, help="the list whose crops to pack")
    pa.add_argument("--out", required=True, type=Path, help="the pack file (.npz)")
    pa.add_argument("--data-root", default=None, help="the list's data root (None: $FKD_DATA_ROOT, else data/)")
    pa.add_argument("--input-size", type=positive_int, default=112, help="crop side in pixels")
    pa.add_argument("--quality", type=int, default=None, metavar="Q",
                    help="store the crops as JPEGs of this quality (95: a third of the size, a mean change of 0.7 "
                         "grey levels) instead of losslessly")
    pa.add_argument("--cache-dir", type=Path, default=None, help="crop cache (None: $FKD_CACHE_DIR or ~/.cache)")
    pa.add_argument("--no-progress", action="store_true", help="no progress bar")
    pa.set_defaults(func=pack)
    # Listed here; its own parser (training/command.py) reads its flags, so --help stays light.
    commands.add_parser("train", add_help=False,
                        help="train a model on a list, or finetune a checkpoint (facial-keypoints train --help)")
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    if argv[:1] == ["train"]:
        from .training.command import main as train
        return train(argv[1:])
    args = build_parser().parse_args(argv)
    return run_reporting_errors(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
