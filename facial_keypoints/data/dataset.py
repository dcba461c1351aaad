"""The Dataset: list records + cached crops -> transformed samples."""
from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset

from facial_keypoints.data.crop_cache import load_crops
from facial_keypoints.geometry import to_frame
from facial_keypoints.keypoints import NUM_POINTS
from facial_keypoints.data.labels import LabelError
from facial_keypoints.data.list_files import ListRecord, read_list
from facial_keypoints.data.lists import recorded_sizes


class FaceCrops(Dataset):
    """Faces (and, in stage 3, non-faces) of a list, as ``size x size`` grayscale crops.

    The crops are decoded once (see ``data.crop_cache.load_crops``); ``__getitem__`` only
    copies a crop, scales its keypoints into the frame and applies ``transform``.
    """

    def __init__(self, records: list[ListRecord], data_root, size: int = 112, transform=None,
                 cache_dir=None, workers: int = 2, progress: bool = True, crops: np.ndarray | None = None,
                 keypoint_labelled: np.ndarray | None = None):
        """``keypoint_labelled`` (one bool per record, default all True): False for faces whose
        keypoint labels must not be trained (crops framed by a detector rather than the labels)."""
        self.records = records
        self.size = size
        self.transform = transform
        if crops is not None:  # from a crop pack: no photos needed
            if crops.shape != (len(records), size, size):
                raise ValueError(f"{len(records)} records need crops of shape {(len(records), size, size)}, "
                                 f"got {crops.shape}")
            self.crops = crops
        else:
            self.crops = load_crops([(r.image, r.box) for r in records], data_root, size, cache_dir,
                                    workers=workers, sources=[r.source for r in records], progress=progress,
                                    photo_sizes=recorded_sizes(records))
        self.frame_keypoints = np.stack([
            to_frame(r.keypoints, r.box, size) if r.is_face else np.zeros((NUM_POINTS, 2))
            for r in records]).astype(np.float32)
        # A point more than half the crop outside it is a wrong number, which would poison the loss.
        far = np.flatnonzero(np.abs(self.frame_keypoints - size / 2).max(axis=(1, 2)) > size)
        if len(far):
            record = records[int(far[0])]
            raise LabelError(record.source, f"a keypoint lies far outside its crop box {record.box.tolist()} "
                                            f"({len(far)} such line(s) in the list); regenerate the list")
        self.keypoint_labelled = (np.ones(len(records), dtype=bool) if keypoint_labelled is None
                                  else np.asarray(keypoint_labelled, dtype=bool))
        if self.keypoint_labelled.shape != (len(records),):
            raise ValueError(f"keypoint_labelled needs one flag per record ({len(records)}), "
                             f"got shape {self.keypoint_labelled.shape}")

    def face_mask(self) -> np.ndarray:
        return np.array([r.is_face for r in self.records], dtype=bool)

    @classmethod
    def from_list(cls, list_path, data_root, **kwargs) -> "FaceCrops":
        return cls(read_list(list_path), data_root, **kwargs)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        sample = {
            "image": self.crops[index].copy(),
            "keypoints": self.frame_keypoints[index].copy(),
            "face": 1.0 if record.is_face else 0.0,
            "keypoint_labelled": 1.0 if self.keypoint_labelled[index] else 0.0,
            "index": index,
        }
        return self.transform(sample) if self.transform else sample
