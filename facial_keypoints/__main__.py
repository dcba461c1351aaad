"""``python -m facial_keypoints COMMAND``: commands that work with any checkpoint of this project."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .checkpoint import load_model
from .errors import run_reporting_errors
from .export import BACKENDS, export_onnx, load_backend, resolve_backend
from .engine import model_outputs, select_device
from .evaluation import face_metrics, predict_records, records_from_labels
from .labels import ParseStats
from .metrics import json_summary, summary_table
from .plots import plot_ced
from .weights import DEFAULT_CHECKPOINT, WEIGHTS_DIR


def evaluation_dir(checkpoint) -> Path:
    """Where ``evaluate`` writes its figure without ``--out``: beside the checkpoint, except for the models
    shipped inside the package (their folder may be read-only, and is no place for results): ./evaluation."""
    folder = Path(checkpoint).resolve().parent
    return Path("evaluation") if folder == WEIGHTS_DIR.resolve() else folder


def evaluate(args) -> int:
    backend = resolve_backend(args.checkpoint, args.backend)
    model, payload = load_backend(args.checkpoint, backend)
    print(f"network: {args.checkpoint} ({backend})")
    device = select_device(args.no_cuda or backend != "torch")
    model.to(device)
    config = payload["config"]
    stats = ParseStats()
    records = records_from_labels(args.data, config["expand_ratio"], skip_bad=args.skip_bad,
                                  negative=args.negative, stats=stats)
    if not records:
        raise ValueError(f"no usable faces under {args.data} ({stats.summary()})")
    result = predict_records(model, config, records, args.data, device, batch_size=args.batch_size,
                             cache_dir=args.cache_dir, progress=not args.no_progress)
    metrics = face_metrics(records, result)
    out = args.out or evaluation_dir(args.checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    ced = plot_ced({f"{config['arch']} on {args.data}": metrics["nme_io_per_face"]}, out / "ced.png")
    print(summary_table(metrics, f"{args.checkpoint} on {args.data} ({stats.summary()})"))
    print(f"cumulative error curve: {ced}")
    print(json.dumps(json_summary(metrics, checkpoint=str(args.checkpoint), backend=backend, data=str(args.data),
                                  label_counts=dict(stats.counts))))
    return 0


def predict(args) -> int:
    """Whole photos: JSON + annotated image per photo; an unreadable photo is reported and skipped."""
    import torch
    from .face_detection import create_detector
    from .images import ImageError
    from .photos import PhotoPredictor, find_photos, write_outputs
    if args.threads:
        torch.set_num_threads(args.threads)
    backend = resolve_backend(args.checkpoint, args.backend)
    model, payload = load_backend(args.checkpoint, backend, threads=args.threads)
    print(f"network: {args.checkpoint} ({backend})")
    predictor = PhotoPredictor(model.eval(), payload["config"], create_detector(args.detector, min_face=args.min_face),
                               args.face_threshold, args.detect_max_side, refine=not args.no_refine)
    photos = find_photos(args.paths)
    if not photos:
        raise FileNotFoundError(f"no photos under {' '.join(map(str, args.paths))}")
    failed, stems = 0, set()
    for path in photos:
        try:
            image, result = predictor.predict_file(path)
        except ImageError as error:
            print(f"error: {error} (skipped)", file=sys.stderr)
            failed += 1
            continue
        stem = path.stem
        while stem in stems:  # two inputs with one name (from different folders) keep both outputs
            stem += "_"
        stems.add(stem)
        record = result.as_json(str(path), str(args.checkpoint), args.detector)
        json_path, image_path = write_outputs(args.out, stem, image, result, record)
        print(f"{path}: {len(result.accepted)} face(s), {len(result.faces) - len(result.accepted)} rejected "
              f"candidate(s), {sum(result.timings_ms.values()):.0f} ms -> {json_path}, {image_path}")
    if failed:
        print(f"{failed} of {len(photos)} photo(s) could not be read", file=sys.stderr)
    return 1 if failed else 0


def quantize(args) -> int:
    import numpy as np
    import torch
    from .cache import load_crops
    from .labels import read_list
    from .lists import resolve_data_root
    from .quantize import int8_path, quantize_onnx, stamp_source
    from .export import OnnxModel
    from .transforms import crops_to_batch
    model, payload = load_model(args.checkpoint)
    config = payload["config"]
    records = read_list(args.list)
    step = max(1, len(records) // args.samples)
    records = records[::step][: args.samples]
    crops = load_crops([(r.image, r.box) for r in records], resolve_data_root(args.data_root), config["input_size"],
                       args.cache_dir, sources=[r.source for r in records], progress=not args.no_progress)
    out = args.out or int8_path(args.checkpoint)
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
    model, payload = load_model(args.checkpoint)
    path = export_onnx(model, args.out, payload["config"]["input_size"], args.opset)
    if not args.no_check:
        import numpy as np
        import torch
        from .export import OnnxModel
        images = torch.randn(8, 1, payload["config"]["input_size"], payload["config"]["input_size"])
        with torch.no_grad():
            expected = model(images)
        got = OnnxModel(path)(images)
        pairs = zip(expected, got) if isinstance(expected, tuple) else [(expected, got)]
        worst = max(float(np.abs(e.numpy() - g.numpy()).max()) for e, g in pairs)
        print(f"onnxruntime vs torch on a batch of 8: max abs difference {worst:.2e}")
        if worst > 1e-4:
            raise ValueError(f"{path}: ONNX Runtime differs from PyTorch by {worst:.2e} (> 1e-4)")
    print(f"wrote {path}")
    referee = payload["config"].get("referee")
    if referee:  # the file is the student's network alone; load_backend pairs the two
        print(f"note: {args.checkpoint} names the referee {referee['checkpoint']} for face probabilities in "
              f"{tuple(referee.get('band', ()))}; {path} holds the student only: export the referee too and "
              "let it decide those crops")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m facial_keypoints")
    commands = parser.add_subparsers(dest="command", required=True)
    ev = commands.add_parser("evaluate", help="SPEC section-5 metrics of a checkpoint on a folder of label.txt files")
    ev.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT,
                    help="default: the model shipped inside the package")
    ev.add_argument("--data", required=True, type=Path, help="a folder with label.txt files (searched recursively)")
    ev.add_argument("--out", type=Path, default=None,
                    help="where ced.png goes (default: beside the checkpoint; ./evaluation for the shipped models)")
    ev.add_argument("--batch-size", type=int, default=256)
    ev.add_argument("--negative", choices=("clamp", "drop"), default="clamp")
    ev.add_argument("--skip-bad", action="store_true", help="count and skip bad lines/images instead of stopping")
    ev.add_argument("--cache-dir", type=Path, default=None)
    ev.add_argument("--no-cuda", action="store_true")
    ev.add_argument("--no-progress", action="store_true")
    ev.add_argument("--backend", choices=BACKENDS, default="auto",
                    help="auto: the int8 model beside CHECKPOINT if it was made from it (the shipped one has "
                         "one), else torch; onnx: run with ONNX Runtime (exports CHECKPOINT.onnx beside it when "
                         "missing)")
    ev.set_defaults(func=evaluate)

    pr = commands.add_parser("predict", help="keypoints on whole photos: a JSON file and an annotated image each")
    pr.add_argument("paths", nargs="+", type=Path, help="photos, or folders searched recursively")
    pr.add_argument("--out", type=Path, default=Path("predictions"), help="output folder")
    pr.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT,
                    help="default: the model shipped inside the package")
    pr.add_argument("--backend", choices=BACKENDS, default="auto",
                    help="auto: the 8-bit model beside CHECKPOINT if it was made from it (the shipped one has "
                         "it; made by the quantize command), else torch")
    pr.add_argument("--detector", choices=("mtcnn", "haar"), default="mtcnn",
                    help="candidate boxes (both ship their weights in their packages)")
    pr.add_argument("--min-face", type=int, default=40, help="smallest face the detector looks for, pixels")
    pr.add_argument("--face-threshold", type=float, default=None,
                    help="keep a candidate when the classifier's face probability reaches this "
                         "(default: the checkpoint's calibrated threshold, else 0.5)")
    pr.add_argument("--detect-max-side", type=int, default=1280,
                    help="larger photos are shrunk to this for the detector (crops use full resolution)")
    pr.add_argument("--no-refine", action="store_true",
                    help="one network pass on the detector's box (default: a second pass on the box the first "
                         "pass's keypoints imply)")
    pr.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    pr.set_defaults(func=predict)

    qu = commands.add_parser("quantize", help="an int8 ONNX model of a checkpoint (CHECKPOINT.int8.onnx), "
                                              "calibrated on crops of a list")
    qu.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    qu.add_argument("--list", required=True, type=Path,
                    help="a list file whose crops calibrate (e.g. stage3/train.txt)")
    qu.add_argument("--data-root", default=None, help="default: $FKD_DATA_ROOT or data/")
    qu.add_argument("--samples", type=int, default=212, help="calibration crops, spread over the list")
    qu.add_argument("--out", type=Path, default=None)
    qu.add_argument("--cache-dir", type=Path, default=None)
    qu.add_argument("--no-progress", action="store_true")
    qu.set_defaults(func=quantize)

    ex = commands.add_parser("export", help="a checkpoint as ONNX (dynamic batch), checked against PyTorch")
    ex.add_argument("--checkpoint", required=True, type=Path)
    ex.add_argument("--out", required=True, type=Path)
    ex.add_argument("--opset", type=int, default=17)
    ex.add_argument("--no-check", action="store_true", help="skip the onnxruntime parity check")
    ex.set_defaults(func=export)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_reporting_errors(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
