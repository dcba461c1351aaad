"""``facial-keypoints evaluate`` (a model's metrics on label files or a list) and ``pack`` (a list's crops in one file)."""
from __future__ import annotations

import json
from pathlib import Path

from facial_keypoints.atomic import output_folder
from facial_keypoints.errors import require_train
from facial_keypoints.runtime.loading import is_shipped


def evaluation_dir(checkpoint) -> Path:
    """Where ``evaluate`` writes its figure without ``--out``: beside the checkpoint, except for the
    shipped models (their folder is no place for results): ./evaluation."""
    return Path("evaluation") if is_shipped(checkpoint) else Path(checkpoint).resolve().parent


def evaluate(args) -> int:
    """The keypoint metrics (and the classifier's, where the list has non-faces) of a model, printed as a
    table and one JSON line, and the cumulative error curve as OUT/ced.png."""
    require_train("facial-keypoints evaluate")
    from facial_keypoints.data.labels import ParseStats
    from facial_keypoints.evaluation.engine import select_device
    from facial_keypoints.evaluation.evaluate import face_metrics, predict_records
    from facial_keypoints.evaluation.metrics import json_summary, summary_table
    from facial_keypoints.evaluation.plots import plot_ced
    from facial_keypoints.runtime.loading import load
    out = output_folder(args.out or evaluation_dir(args.checkpoint))
    if args.cache_dir is not None:
        output_folder(args.cache_dir, "--cache-dir")
    model, payload, backend = load(args.checkpoint, args.backend)
    print(f"network: {args.checkpoint} ({backend})")
    device = select_device(args.no_cuda or backend != "torch")
    model.to(device)
    config, stats = payload["config"], ParseStats()
    records, root, source = records_to_evaluate(args, config, stats)
    result = predict_records(model, config, records, root, device, batch_size=args.batch_size,
                             cache_dir=args.cache_dir, progress=not args.no_progress)
    metrics = face_metrics(records, result)
    extra = classifier_figures(records, result, config)
    ced = plot_ced({f"{config['arch']} on {args.list or args.data}": metrics["nme_io_per_face"]}, out / "ced.png")
    print(summary_table(metrics, f"{args.checkpoint} on {source}"))
    print(f"cumulative error curve: {ced}")
    print(json.dumps(json_summary(metrics, checkpoint=str(args.checkpoint), backend=backend,
                                  data=str(args.list or args.data), label_counts=dict(stats.counts), **extra),
                     allow_nan=False))
    return 0


def records_to_evaluate(args, config: dict, stats) -> tuple[list, Path, str]:
    """(records, their data root, how to name them): a list's crops, or every face of --data's label files."""
    from facial_keypoints.data.list_files import attach_face_boxes, read_list
    from facial_keypoints.data.lists import records_from_labels, resolve_data_root
    if args.list is not None:  # a list's expanded boxes, relative to the data root
        root = resolve_data_root(None if args.data is None else str(args.data))
        records = read_list(args.list)
        attach_face_boxes(records, root)  # the labelled boxes, for nme_box
        return records, root, f"{args.list} ({sum(r.is_face for r in records)} faces)"
    if args.data is None:
        raise ValueError("evaluate needs --data FOLDER (label.txt files) or --list FILE")
    records = records_from_labels(args.data, config["expand_ratio"], skip_bad=args.skip_bad, negative=args.negative,
                                  stats=stats)
    if not records:
        raise ValueError(f"no usable faces under {args.data} ({stats.summary()})")
    return records, args.data, f"{args.data} ({stats.summary()})"


def classifier_figures(records, result, config: dict) -> dict:
    """{"classifier": accuracy, face and non-face recall at the model's face threshold} where the records hold
    non-faces and the model has a face head (printed here), else {}."""
    from facial_keypoints.evaluation.metrics import classification_metrics
    if result["face_prob"] is None or all(r.is_face for r in records):
        return {}
    threshold = float(config.get("face_threshold", 0.5))
    c = dict(classification_metrics([r.is_face for r in records], result["face_prob"], threshold), threshold=threshold)
    print(f"face/non-face on {c['samples']} crops at face probability >= {threshold:.2f}: accuracy "
          f"{c['accuracy']:.2f}%, face recall {c['face_recall']:.2f}%, non-face recall {c['non_face_recall']:.2f}% "
          "(keypoint metrics below: faces only)")
    return {"classifier": c}


def pack(args) -> int:
    require_train("facial-keypoints pack")
    from facial_keypoints.data.list_files import read_list
    from facial_keypoints.data.lists import resolve_data_root
    from facial_keypoints.training.crop_pack import write_pack
    if args.cache_dir is not None:
        output_folder(args.cache_dir, "--cache-dir")
    records = read_list(args.list)
    path = write_pack(args.out, records, resolve_data_root(args.data_root), args.input_size, args.cache_dir,
                      progress=not args.no_progress, jpeg_quality=args.quality)
    print(f"packed the {len(records)} crops of {args.list} into {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0
