"""Keypoint losses on frame-pixel coordinates, masked so non-faces (stage 3) contribute nothing."""
from __future__ import annotations

import math

import torch


def _mse(diff):
    return diff.pow(2)


def _smooth_l1(diff, beta: float = 1.0):
    a = diff.abs()
    return torch.where(a < beta, 0.5 * a.pow(2) / beta, a - 0.5 * beta)


def _wing(diff, width: float = 10.0, curvature: float = 2.0):
    """Wing loss (Feng et al., CVPR 2018): log-shaped near 0 so small errors keep a strong gradient."""
    a = diff.abs()
    c = width - width * math.log1p(width / curvature)
    return torch.where(a < width, width * torch.log1p(a / curvature), a - c)


ELEMENTWISE = {"mse": _mse, "smoothl1": _smooth_l1, "wing": _wing}


class KeypointLoss(torch.nn.Module):
    """Mean over coordinates of each face, then over faces with mask 1.

    With every mask 1 and ``kind='mse'`` this equals ``nn.MSELoss()``.
    """

    def __init__(self, kind: str = "mse"):
        super().__init__()
        if kind not in ELEMENTWISE:
            raise KeyError(f"unknown loss {kind!r}; choose from {', '.join(ELEMENTWISE)}")
        self.kind = kind
        self.elementwise = ELEMENTWISE[kind]

    def forward(self, pred, target, mask=None):
        per_face = self.elementwise(pred - target).mean(dim=1)
        if mask is None:
            return per_face.mean()
        return (per_face * mask).sum() / mask.sum().clamp(min=1.0)


class FaceAndKeypointLoss(torch.nn.Module):
    """Stage 3: ``a * class-weighted cross entropy + b * keypoint loss on faces only``.

    ``class_weights`` = (non-face, face) weigh the cross entropy against the
    imbalance of the lists; the keypoint loss is masked by the face label, so a
    non-face's (meaningless) keypoint output is never trained.
    """

    def __init__(self, kind: str = "wing", a: float = 1.0, b: float = 1.0, class_weights=(1.0, 1.0)):
        super().__init__()
        self.keypoints = KeypointLoss(kind)
        self.a, self.b = a, b
        self.register_buffer("class_weights", torch.tensor(class_weights, dtype=torch.float32))

    def forward(self, keypoints, logits, target_keypoints, is_face):
        ce = torch.nn.functional.cross_entropy(logits.float(), is_face.long(),
                                               weight=self.class_weights.to(logits.device))
        return self.a * ce + self.b * self.keypoints(keypoints, target_keypoints, is_face)


class TeacherLoss(torch.nn.Module):
    """Knowledge distillation for a smaller two-headed model: match a frozen teacher on the same batch.

    ``weight * (keypoint loss to the teacher's points on faces + KL to its face/non-face
    probabilities)``, added to the labels' loss by the caller.  The teacher sees the
    same augmented images as the student, so it gives a target for every augmentation.
    """

    def __init__(self, teacher: torch.nn.Module, kind: str = "wing", weight: float = 1.0):
        super().__init__()
        self.teacher = teacher.eval()
        for parameter in self.teacher.parameters():
            parameter.requires_grad_(False)
        self.keypoints = KeypointLoss(kind)
        self.weight = weight

    def forward(self, keypoints, logits, images, is_face):
        with torch.no_grad():
            self.teacher.eval()  # the trainer's model.train() does not reach the teacher
            teacher_keypoints, teacher_logits = self.teacher(images)
        kl = torch.nn.functional.kl_div(torch.log_softmax(logits.float(), dim=1),
                                        torch.softmax(teacher_logits.float(), dim=1), reduction="batchmean")
        return self.weight * (self.keypoints(keypoints, teacher_keypoints, is_face) + kl)
