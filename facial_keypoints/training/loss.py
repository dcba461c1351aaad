"""The trainer's loss: named terms, each already weighted, summed by the loop.

``keypoints``  b · keypoint loss on the faces whose labels are trained
``face``       a · class-weighted cross entropy (two-headed models only)
``teacher``, ``heatmap``, ``embedding``, ``feature``  distillation (``--teacher``), see ``losses.TeacherLoss``

``best.pt`` is picked on the label terms alone (``labels_total``): a student that matches its
teacher more closely is not thereby better at the task.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from facial_keypoints.training.losses import KeypointLoss, TeacherLoss, trained_keypoints

LABEL_TERMS = ("keypoints", "face")


def total(terms: dict) -> torch.Tensor:
    return sum(terms.values())


def labels_total(terms: dict) -> torch.Tensor:
    return sum(value for name, value in terms.items() if name in LABEL_TERMS)


class TrainingLoss(torch.nn.Module):
    def __init__(self, kind: str = "wing", *, kp_weight: float = 1.0, cls_weight: float | None = None,
                 class_weights=(1.0, 1.0), teacher: TeacherLoss | None = None, teacher_input_size: int | None = None):
        """``cls_weight`` None: a one-headed model, no face term.  ``teacher_input_size``: the crop
        side the teacher was trained on (a batch of another size is refused)."""
        super().__init__()
        self.keypoints = KeypointLoss(kind)
        self.kind, self.kp_weight, self.cls_weight = kind, kp_weight, cls_weight
        self.register_buffer("class_weights", torch.tensor(class_weights, dtype=torch.float32))
        self.teacher, self.teacher_input_size = teacher, teacher_input_size

    @property
    def has_teacher(self) -> bool:
        return self.teacher is not None

    def describe(self) -> str:
        """What the loss curve's axis says."""
        text = f"{self.kp_weight:g}·{self.kind} loss"
        if self.cls_weight is not None:
            text = f"{self.cls_weight:g}·cross entropy + " + text
        return text + (" + teacher terms" if self.teacher is not None else "")

    def watch(self, model: torch.nn.Module) -> None:
        """Show the teacher's terms the model being trained (they read its inner layers)."""
        if self.teacher is not None:
            self.teacher.watch(model)

    def forward(self, keypoints, logits, batch: dict) -> dict[str, torch.Tensor]:
        mask = trained_keypoints(batch["face"], batch.get("keypoint_labelled"))
        terms = {"keypoints": self.kp_weight * self.keypoints(keypoints, batch["keypoints"], mask)}
        if self.cls_weight is not None:
            if logits is None:
                raise ValueError("the face/non-face term needs a two-headed model (--arch face_keypoints)")
            terms["face"] = self.cls_weight * F.cross_entropy(logits.float(), batch["face"].long(),
                                                              weight=self.class_weights.to(logits.device))
        if self.teacher is not None:
            size = batch["image"].shape[-1]
            if self.teacher_input_size is not None and size != self.teacher_input_size:
                raise ValueError(f"the teacher takes {self.teacher_input_size}-px crops, "
                                 f"the model trains on {size}-px ones")
            self.teacher.to(keypoints.device)
            terms.update(self.teacher(keypoints, logits, batch["image"], batch["face"]))
        return terms
