"""MTCNN (Zhang et al., 2016) on ONNX Runtime and OpenCV: the face detector that needs no torch.

Three small networks in cascade, their weights facenet-pytorch's (MIT), exported once to ONNX and
shipped in ``weights/`` (``recipes/export_mtcnn.py``):

1. PNet slides over an image pyramid (each level 0.709 of the last, the first scaled so that
   ``min_face`` pixels become PNet's 12-pixel window) and proposes windows where a face is likely;
2. RNet looks again at each proposal, squared and resized to 24x24, and refines its box;
3. ONet does the same at 48x48 and gives the final boxes and scores.

Between the stages, boxes are refined by the offsets each network predicts and overlapping ones
are suppressed. Written here because no maintained package runs MTCNN without torch or
TensorFlow; the steps follow the paper and facenet-pytorch's conventions (pixel values
(x - 127.5) / 128, area resampling, crops clipped to the photo), so its boxes match that package's.
"""
from __future__ import annotations

import numpy as np

from facial_keypoints.weights import WEIGHTS_DIR

SCALE_STEP = 0.709  # between pyramid levels
STRIDE, CELL = 2, 12  # PNet's output stride and window, in pixels of its level


class Mtcnn:
    """``mtcnn(rgb)`` -> (boxes (N, 4) x1 y1 x2 y2, scores (N,)) on an RGB uint8 array."""

    def __init__(self, min_face: int = 40, thresholds=(0.5, 0.6, 0.6), threads: int | None = None):
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.nets = {name: ort.InferenceSession(str(WEIGHTS_DIR / f"mtcnn_{name}.onnx"), options,
                                                providers=["CPUExecutionProvider"])
                     for name in ("pnet", "rnet", "onet")}
        self.min_face, self.thresholds = min_face, tuple(thresholds)

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        image = np.ascontiguousarray(rgb, dtype=np.uint8)
        sampler = AreaSampler(image)
        boxes = self._proposals(image, sampler)
        for stage, size in (("rnet", 24), ("onet", 48)):
            if not len(boxes):
                break
            boxes = self._refine(image.shape[:2], sampler, boxes, stage, size)
        if not len(boxes):
            return np.zeros((0, 4)), np.zeros(0)
        return boxes[:, :4], boxes[:, 4]

    def _run(self, name: str, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(box offsets, face probability) of network ``name`` on a (N, 3, H, W) float32 batch."""
        session = self.nets[name]
        outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"image": batch})))
        return outputs["box_offsets"], outputs["face_probability"]

    def _proposals(self, image: np.ndarray, sampler: "AreaSampler") -> np.ndarray:
        """PNet's windows over the pyramid: (N, 5) x1 y1 x2 y2 score, refined and squared."""
        height, width = image.shape[:2]
        found = []
        for scale in pyramid(height, width, self.min_face):
            level = sampler.region(0, height, 0, width, int(height * scale + 1), int(width * scale + 1))
            offsets, probability = self._run("pnet", to_input(level[None]))
            boxes = windows(probability[0, 1], offsets[0], scale, self.thresholds[0])
            found.append(boxes[nms(boxes, 0.5)])
        boxes = np.concatenate(found) if found else np.zeros((0, 9))
        boxes = boxes[nms(boxes, 0.7)]
        return squared(refined(boxes[:, :5], boxes[:, 5:9]))

    def _refine(self, shape, sampler: "AreaSampler", boxes: np.ndarray, stage: str, size: int) -> np.ndarray:
        """RNet's or ONet's look at each box, cropped and resized to ``size``: the boxes it keeps, refined."""
        crops = np.stack([sampler.region(*clipped(box, shape), size, size) for box in boxes])
        offsets, probability = self._run(stage, to_input(crops))
        keep = probability[:, 1] > self.thresholds[1 if stage == "rnet" else 2]
        boxes, offsets = np.concatenate([boxes[keep, :4], probability[keep, 1:2]], axis=1), offsets[keep]
        if stage == "rnet":  # suppress, then refine and square for ONet
            kept = nms(boxes, 0.7)
            return squared(refined(boxes[kept], offsets[kept], inclusive=True))
        # ONet: refine, then suppress the boxes mostly inside a better one
        boxes = refined(boxes, offsets, inclusive=True)
        return boxes[nms(boxes, 0.7, by_smaller=True)]


def pyramid(height: int, width: int, min_face: int) -> list[float]:
    """The scales at which PNet's 12-pixel window sees faces from ``min_face`` pixels up."""
    scale, side, scales = 12.0 / min_face, min(height, width) * 12.0 / min_face, []
    while side >= 12:
        scales.append(scale)
        scale, side = scale * SCALE_STEP, side * SCALE_STEP
    return scales


class AreaSampler:
    """Resampling by area averaging as adaptive average pooling does it (output pixel i the mean of input
    pixels floor(i n / m) to ceil((i + 1) n / m)), the resampling MTCNN's weights were used with; OpenCV's
    INTER_AREA weighs partial pixels instead, which moved boxes near the thresholds. One integral image
    of the photo serves every pyramid level and every crop."""

    def __init__(self, image: np.ndarray):
        import cv2
        self.integral = cv2.integral(np.ascontiguousarray(image), sdepth=cv2.CV_64F)  # (H + 1, W + 1, 3)

    def region(self, top: int, bottom: int, left: int, right: int, height: int, width: int) -> np.ndarray:
        """Rows [top, bottom) and columns [left, right) of the photo, resampled to (height, width, 3) float32."""
        ys, ye = _bounds(top, bottom, height)
        xs, xe = _bounds(left, right, width)
        table = self.integral
        sums = (table[np.ix_(ye, xe)] - table[np.ix_(ys, xe)] - table[np.ix_(ye, xs)] + table[np.ix_(ys, xs)])
        return (sums / ((ye - ys)[:, None, None] * (xe - xs)[None, :, None])).astype(np.float32)


def _bounds(start: int, stop: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    n, i = stop - start, np.arange(size)
    return start + i * n // size, start + -(-(i + 1) * n // size)


def to_input(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) pixel values -> (N, 3, H, W) float32 in MTCNN's range, (x - 127.5) / 128."""
    return np.ascontiguousarray(((images.astype(np.float32) - 127.5) * 0.0078125).transpose(0, 3, 1, 2))


def windows(face: np.ndarray, offsets: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """PNet's output map -> (N, 9) x1 y1 x2 y2 score dx1 dy1 dx2 dy2, in the photo's pixels."""
    ys, xs = np.nonzero(face >= threshold)
    cells = np.stack([xs, ys], axis=1).astype(np.float64)
    top_left = np.floor((STRIDE * cells + 1) / scale)
    bottom_right = np.floor((STRIDE * cells + CELL) / scale)
    return np.concatenate([top_left, bottom_right, face[ys, xs][:, None], offsets[:, ys, xs].T], axis=1)


def refined(boxes: np.ndarray, offsets: np.ndarray, inclusive: bool = False) -> np.ndarray:
    """Boxes moved by a network's offsets (fractions of the box's width and height; ``inclusive``: sizes
    counted in whole pixels, x2 - x1 + 1, as RNet's and ONet's offsets were trained); scores kept."""
    out = boxes.copy()
    extra = 1.0 if inclusive else 0.0
    size = np.stack([boxes[:, 2] - boxes[:, 0] + extra, boxes[:, 3] - boxes[:, 1] + extra] * 2, axis=1)
    out[:, :4] = boxes[:, :4] + offsets[:, :4] * size
    return out


def squared(boxes: np.ndarray) -> np.ndarray:
    """Each box made a square of its longer side, about its centre."""
    out = boxes.copy()
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(width, height)
    out[:, 0] = boxes[:, 0] + width * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + height * 0.5 - side * 0.5
    out[:, 2:4] = out[:, :2] + side[:, None]
    return out


def clipped(box: np.ndarray, shape) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) rows and columns of ``box`` (1-based, inclusive, as MTCNN's boxes are,
    truncated toward zero) within a photo of ``shape``; at least one pixel."""
    height, width = shape
    x1, y1, x2, y2 = (int(v) for v in box[:4])
    top, left = min(max(y1, 1), height) - 1, min(max(x1, 1), width) - 1
    return top, max(min(y2, height), top + 1), left, max(min(x2, width), left + 1)


def nms(boxes: np.ndarray, threshold: float, by_smaller: bool = False) -> np.ndarray:
    """Indices of the boxes kept, best score first, dropping any that overlaps a kept one by more than
    ``threshold`` (intersection over union, or over the smaller box)."""
    order, kept = np.argsort(-boxes[:, 4], kind="stable"), []
    extra = 1.0 if by_smaller else 0.0  # the final, smaller-box suppression counts whole pixels
    area = (boxes[:, 2] - boxes[:, 0] + extra) * (boxes[:, 3] - boxes[:, 1] + extra)
    while len(order):
        best, rest = order[0], order[1:]
        kept.append(best)
        w = np.clip(np.minimum(boxes[best, 2], boxes[rest, 2]) - np.maximum(boxes[best, 0], boxes[rest, 0]) + extra,
                    0, None)
        h = np.clip(np.minimum(boxes[best, 3], boxes[rest, 3]) - np.maximum(boxes[best, 1], boxes[rest, 1]) + extra,
                    0, None)
        inter = w * h
        base = np.minimum(area[best], area[rest]) if by_smaller else area[best] + area[rest] - inter
        order = rest[inter / np.maximum(base, 1e-12) <= threshold]
    return np.array(kept, dtype=int)
