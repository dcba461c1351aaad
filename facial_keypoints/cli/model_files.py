"""``facial-keypoints export`` and ``quantize``: the ONNX files of a checkpoint, never over their inputs."""
from __future__ import annotations

import os
from pathlib import Path

from facial_keypoints.atomic import output_folder
from facial_keypoints.errors import require_train
from facial_keypoints.runtime.loading import derived_path
from facial_keypoints.weights import WEIGHTS_DIR


def writable_output(path: Path) -> Path:
    """``path`` for a file a command writes: never inside the package's shipped models."""
    if Path(path).resolve().parent == WEIGHTS_DIR:
        raise ValueError(f"{path}: the shipped models are read-only; write somewhere else")
    return Path(path)


def quantize(args) -> int:
    require_train("facial-keypoints quantize")
    import numpy as np
    import torch

    from facial_keypoints.data.crop_cache import load_crops
    from facial_keypoints.models.checkpoint import load_model
    from facial_keypoints.outputs import KeypointOutput
    from facial_keypoints.runtime.export import export_onnx, stamp_source
    from facial_keypoints.data.list_files import read_list
    from facial_keypoints.data.lists import recorded_sizes, resolve_data_root
    from facial_keypoints.runtime.quantize import quantize_onnx
    from facial_keypoints.runtime.loading import OnnxModel
    from facial_keypoints.data.transforms import crops_to_batch
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
        expected = KeypointOutput.of(model(batch)).keypoints
    got = OnnxModel(out)(batch).keypoints
    faces = np.array([r.is_face for r in records])
    shift = float(np.abs(expected.numpy() - got.numpy())[faces].mean()) if faces.any() else 0.0
    print(f"int8 vs float on the {int(faces.sum())} faces among the {len(crops)} calibration crops: "
          f"mean keypoint coordinate difference {shift:.3f} px (112-px frame)")
    print(f"wrote {out}")
    return 0


def export(args) -> int:
    require_train("facial-keypoints export")
    import numpy as np
    import torch

    from facial_keypoints.models.checkpoint import load_model
    from facial_keypoints.runtime.export import export_onnx, stamp_source
    from facial_keypoints.outputs import InferenceOutput
    from facial_keypoints.runtime.loading import OnnxModel
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
            from facial_keypoints.models.two_heads import for_inference
            with torch.no_grad():
                expected = InferenceOutput.of(for_inference(model)(images))
            got = OnnxModel(staged)(images)
            # each output against its own scale: keypoints are pixels of a 112-px frame, logits are small
            worst = max(float(np.abs(e.numpy() - g.numpy()).max() / max(1.0, np.abs(e.numpy()).max()))
                        for e, g in zip(expected, got) if e is not None)
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
