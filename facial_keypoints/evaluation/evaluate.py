"""Evaluate a model on faces, in original-image pixels (SPEC section 5).

Used by ``facial-keypoints evaluate`` (a list, or any folder of label.txt files) and the benchmarks.
"""
from __future__ import annotations

import numpy as np

from facial_keypoints.data.dataset import FaceCrops
from facial_keypoints.evaluation.engine import make_loader, run_inference
from facial_keypoints.geometry import frame_to_image
from facial_keypoints.evaluation.metrics import keypoint_metrics
from facial_keypoints.data.transforms import eval_transform


def predict_records(model, config: dict, records, data_root, device, *, batch_size: int = 256,
                    cache_dir=None, workers: int = 2, progress: bool = True) -> dict:
    """Run the model on the records' crops; adds predictions in original-image pixels."""
    dataset = FaceCrops(records, data_root, size=config["input_size"],
                        transform=eval_transform(config.get("normalize", True)),
                        cache_dir=cache_dir, workers=workers, progress=progress)
    result = run_inference(model, make_loader(dataset, batch_size, shuffle=False), device)
    boxes = np.stack([r.box for r in records])
    result["pred_image"] = frame_to_image(result["pred"], boxes, config["input_size"])
    result["crops"] = dataset.crops
    return result


def face_metrics(records, result) -> dict:
    """Section-5 metrics over the faces among ``records`` (non-faces are left out)."""
    faces = [i for i, r in enumerate(records) if r.is_face]
    if not faces:
        raise ValueError("no faces to evaluate")
    gt = np.stack([records[i].absolute_keypoints() for i in faces])
    face_boxes = np.stack([records[i].face_box if records[i].face_box is not None else np.full(4, np.nan)
                           for i in faces])
    return keypoint_metrics(result["pred_image"][faces], gt, face_boxes)
