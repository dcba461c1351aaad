"""``facial-keypoints predict``: photos and videos to JSON and drawings, or a collection to JSON lines
(worker processes, Ray), through ``FaceLandmarker``."""
from __future__ import annotations

import os
import sys

from facial_keypoints.atomic import output_folder
from facial_keypoints.cli.model_files import writable_output
from facial_keypoints.errors import Terminated


def predict(args) -> int:
    """Whole photos: a JSON file and an annotated image per photo; a photo that fails is named and skipped."""
    photos = inputs_of(args)
    if args.aligned is not None and (args.ray or args.jsonl is not None):
        raise ValueError("--aligned writes beside each photo's own outputs; it does not go with --jsonl or --ray")
    if args.ray:
        return predict_ray(photos, args)
    if args.parquet is not None or args.ray_address is not None:
        raise ValueError("--parquet and --ray-address are for --ray")
    if args.jsonl is not None:
        return predict_jsonl(photos, args)
    if args.workers:
        raise ValueError("--workers runs with --jsonl FILE (one line per photo); without it predict runs in one "
                         "process")
    return predict_files(photos, args)


def inputs_of(args) -> list:
    """The photos and videos (and camera) predict's arguments name, checked before any work."""
    from facial_keypoints.cli.outputs import find_photos
    for folder in (p for p in args.paths if p.is_dir()):
        if folder.resolve() == args.out.resolve():  # the drawings would be next run's photos
            raise ValueError(f"--out {args.out} is also an input folder: give predict another output folder")
    check_aligned(args)
    photos = find_photos(args.paths, skip=args.out)  # an output folder inside an input folder is not searched
    if args.camera is not None:
        photos.append(args.camera)
    if not photos:
        raise FileNotFoundError(f"no photos or videos under {' '.join(map(str, args.paths))}")
    return photos


def check_aligned(args) -> None:
    """``--aligned`` must be a folder of its own: not ``--out`` (a crop and a drawing could share a name),
    not an input folder or one inside it (the crops would be the next run's photos), not the folder of
    an input photo."""
    if args.aligned is None:
        return
    aligned, out = args.aligned.resolve(), args.out.resolve()
    if aligned == out:
        raise ValueError(f"--aligned {args.aligned} is also --out: give the crops a folder of their own")
    for path in args.paths:
        folder = path.resolve() if path.is_dir() else path.resolve().parent
        if aligned == folder or (path.is_dir() and aligned.is_relative_to(folder) and not aligned.is_relative_to(out)):
            raise ValueError(f"--aligned {args.aligned} is in the input folder {folder}: the crops would be read as "
                             "photos next time; give another folder")


def predict_files(photos: list, args) -> int:
    """NAME.json and NAME.jpg per photo, NAME.jsonl and NAME.mp4 per video, in --out; 1 if any failed."""
    from facial_keypoints.api import FaceLandmarker
    from facial_keypoints.cli.outputs import output_stems
    from facial_keypoints.media import is_video
    output_folder(args.out)
    if args.aligned is not None:
        output_folder(args.aligned, "--aligned")
    landmarker = FaceLandmarker(**landmarker_settings(args, args.threads))
    print(f"network: {landmarker.checkpoint} ({landmarker.backend}); face detector: {landmarker.detector_name}")
    failed = 0
    for path, stem in zip(photos, output_stems(photos, args.out)):
        if is_video(path):
            failed += predict_video(landmarker, path, args, stem)
            continue
        status = predict_photo(landmarker, path, args.out, stem, args.aligned, args.aligned_size)
        if status == "stop":
            return 1
        failed += status == "failed"
    if failed:
        print(f"{failed} of {len(photos)} photo(s) and video(s) could not be processed", file=sys.stderr)
    return 1 if failed else 0


def predict_photo(landmarker, path, out, stem: str, aligned=None, aligned_size: int = 112) -> str:
    """One photo to OUT/STEM.json and OUT/STEM.jpg (and each face's aligned crop in ``aligned``): "done",
    "failed" (named, the rest go on) or "stop" (the outputs cannot be written: a full disk or a read-only
    folder, where no later photo would fare better)."""
    from facial_keypoints.alignment import write_aligned
    from facial_keypoints.cli.outputs import write_outputs
    from facial_keypoints.data.images import naming, open_photo
    try:
        image = open_photo(path)
        result = landmarker.process(image)
    except Exception as error:  # noqa: BLE001 - one photo's failure, whatever it is, must not stop the rest
        print(f"error: {naming(path, error)} (skipped)", file=sys.stderr)
        return "failed"
    record = photo_json(landmarker, result, str(path))
    try:
        json_path, image_path = write_outputs(out, stem, image, result, record)
        if aligned is not None:
            write_aligned(aligned, [f"{stem}_{k}" for k in range(len(result.accepted))], image, result.accepted,
                          aligned_size)
    except OSError as error:
        print(f"error: cannot write {error.filename or out / stem}: {error.strerror or error}; "
              "stopped (every file written so far is whole)", file=sys.stderr)
        return "stop"
    print(f"{path}: {len(result.accepted)} face(s), {len(result.faces) - len(result.accepted)} rejected "
          f"candidate(s), {sum(result.timings_ms.values()):.0f} ms -> {json_path}, {image_path}")
    return "done"


def photo_json(landmarker, result, image: str) -> dict:
    """The record predict writes for one photo (NAME.json), its photo called ``image``; ``serve``'s /v1/detect
    answers with it too."""
    return result.as_json(image, str(landmarker.checkpoint), landmarker.detector_name)


def landmarker_settings(args, threads: int | None) -> dict:
    """``FaceLandmarker``'s arguments from predict's flags (workers and actors load their own model)."""
    return dict(checkpoint=args.checkpoint, backend=args.backend, detector=args.detector, threads=threads,
                face_threshold=args.face_threshold, min_face=args.min_face, refine=not args.no_refine,
                detect_max_side=args.detect_max_side, device=args.device)


def predict_jsonl(photos: list, args) -> int:
    """Photos to one JSON-lines file, resumable, on ``--workers`` processes (``bulk``)."""
    from facial_keypoints.bulk.jsonl import JsonlWriter
    from facial_keypoints.bulk.workers import check_memory
    from facial_keypoints.media import is_video
    videos = [p for p in photos if is_video(p)]
    if videos:
        raise ValueError(f"--jsonl is for photos; {videos[0]} is a video (predict it without --jsonl)")
    check_memory(args.workers)
    writer, counts = JsonlWriter(writable_output(args.jsonl)), {}  # the file's lock: one run per file
    try:
        return _append_photos(photos, writer, counts, args)
    except KeyboardInterrupt as interrupt:
        print(f"{'terminated' if isinstance(interrupt, Terminated) else 'interrupted'}: {counts.get('written', 0)} "
              f"photo(s) written to {args.jsonl}, each line whole; the same command goes on from there",
              file=sys.stderr)
        return 143 if isinstance(interrupt, Terminated) else 130
    finally:
        writer.close()


def _append_photos(photos: list, writer, counts: dict, args) -> int:
    """The photos not yet in the results file, appended to it by ``bulk.workers.annotate``."""
    from facial_keypoints.bulk.jsonl import done_photos, photo_key
    from facial_keypoints.bulk.workers import WorkerDied, annotate
    done = {photo_key(image) for image in done_photos(args.jsonl)}
    todo = [p for p in photos if photo_key(p) not in done]
    if not todo:
        print(f"all {len(photos)} photo(s) are already in {args.jsonl}")
        return 0
    threads = args.threads or max(1, (os.cpu_count() or 1) // max(args.workers, 1))
    print(f"{len(photos) - len(todo)} of {len(photos)} photo(s) already in {args.jsonl}; {len(todo)} to go on "
          f"{args.workers or 'no'} worker process(es), {threads} thread(s) each")
    try:
        annotate(todo, writer, landmarker_settings(args, threads), workers=args.workers,
                 progress=not args.no_progress, counts=counts, recycle_after=args.recycle_after)
    except (WorkerDied, OSError) as error:  # a dead worker, or a full disk: no later photo would fare better
        reason = error if isinstance(error, WorkerDied) else f"cannot write {args.jsonl}: {error.strerror or error}"
        print(f"error: {reason}; stopped with {counts.get('written', 0)} photo(s) written to {args.jsonl}, each "
              "line whole; the same command goes on from there", file=sys.stderr)
        return 1
    print(f"{counts['written']} photo(s) written to {args.jsonl}"
          + (f"; {counts['failed']} could not be processed" if counts["failed"] else ""))
    return 1 if counts["failed"] else 0


def predict_ray(photos: list, args) -> int:
    """Photos through a pool of Ray actors (``ray_predict``), to --jsonl FILE or --parquet FOLDER."""
    from facial_keypoints.media import is_video
    try:
        from facial_keypoints.bulk.ray_predict import predict_with_ray
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
    from facial_keypoints.video.annotate import annotate_video
    tracker = landmarker.track(detect_every=args.detect_every, smooth=not args.no_smooth,
                               min_cutoff=args.min_cutoff, beta=args.beta,
                               shape_min_cutoff=args.shape_min_cutoff, shape_beta=args.shape_beta)
    try:
        counts = annotate_video(tracker, source, args.out, stem, progress=not args.no_progress, csv=args.csv,
                                aligned=args.aligned and (args.aligned, args.aligned_size))
    except KeyboardInterrupt as interrupt:
        print(f"{'terminated' if isinstance(interrupt, Terminated) else 'interrupted'}: the frames done so far are "
              f"in {args.out / stem}.jsonl and .mp4{' and .csv' if args.csv else ''}", file=sys.stderr)
        raise SystemExit(143 if isinstance(interrupt, Terminated) else 130) from None
    except Exception as error:  # noqa: BLE001 - one video's failure must not stop the rest
        from facial_keypoints.data.images import naming
        print(f"error: {naming(source, error)} (skipped)", file=sys.stderr)
        return 1
    if counts["letterboxed"]:
        print(f"note: {source}: {counts['letterboxed']} frame(s) of another size than the first were letterboxed "
              f"into its size in {counts['video']} (their points in the JSON lines are in their own pixels)")
    print(f"{source}: {counts['frames']} frames, {counts['faces']} faces, the detector on {counts['detections']}, "
          f"{counts['frames'] / max(counts['seconds'], 1e-9):.1f} frames/s -> {counts['jsonl']}, {counts['video']}"
          + (f", {counts['csv']}" if args.csv else ""))
    return 0
