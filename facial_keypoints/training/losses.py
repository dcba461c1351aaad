"""The loss kernels of ``facial-keypoints train``: keypoint losses on frame-pixel coordinates (masked,
so non-faces contribute nothing) and the teacher's terms of distillation.  ``loss.TrainingLoss``
names and weighs them."""
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


def trained_keypoints(is_face, keypoint_labelled=None):
    """The keypoint loss's mask: the faces, less those whose labels are not trained (``--extra-list`` crops)."""
    return is_face if keypoint_labelled is None else is_face * keypoint_labelled


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


class OutputTap:
    """Keeps the last output of a model's one module named ``layer`` (a forward hook)."""

    layer = purpose = hint = ""

    def __init__(self, model: torch.nn.Module):
        layers = [m for name, m in model.named_modules() if name.split(".")[-1] == self.layer]
        if len(layers) != 1:
            raise ValueError(f"{self.purpose} needs a model with one {self.layer!r} layer ({self.hint})")
        self.output = None
        self.handle = layers[0].register_forward_hook(self._keep)

    def _keep(self, module, inputs, output):
        self.output = output


class HeatmapTap(OutputTap):
    """A heatmap model's ``heatmaps`` convolution: the 21 maps' logits."""

    layer, purpose, hint = "heatmaps", "heatmap distillation", "a *_heatmap backbone"


class TrunkTap(OutputTap):
    """A model's ``trunk`` (models.CompactTrunk): its 28x28, 14x14 and 7x7 maps."""

    layer, purpose, hint = "trunk", "feature distillation", "a compact_* backbone"


class EmbeddingTap:
    """Keeps the last input of a two-headed model's face/non-face ``classifier`` (a forward pre-hook)."""

    def __init__(self, model: torch.nn.Module):
        if not isinstance(getattr(model, "classifier", None), torch.nn.Module):
            raise ValueError("embedding distillation needs a two-headed model (one with a classifier)")
        self.output = None
        self.handle = model.classifier.register_forward_pre_hook(self._keep)

    def _keep(self, module, inputs):
        self.output = inputs[0]


def feature_mse(student_levels, teacher_levels) -> torch.Tensor:
    """Mean over the trunk's levels of the squared error to the teacher's maps, each divided by the
    teacher's mean square there, so the three levels weigh alike whatever their scales."""
    terms = []
    for student, teacher in zip(student_levels, teacher_levels):
        if student.shape != teacher.shape:
            raise ValueError(f"feature distillation needs the teacher's map shapes: {tuple(student.shape)[1:]} "
                             f"against {tuple(teacher.shape)[1:]}")
        teacher = teacher.float()
        terms.append(torch.mean((student.float() - teacher) ** 2) / teacher.pow(2).mean().clamp_min(1e-12))
    return torch.stack(terms).mean()


def heatmap_kl(student_maps, teacher_maps, mask) -> torch.Tensor:
    """KL(teacher || student) of each point's softmax over its map, mean over points, then over faces (mask 1).

    A teacher with finer maps (a whole multiple of the student's size) has its
    probabilities summed over the cells each student cell covers.
    """
    n, k, h, w = student_maps.shape
    log_student = torch.log_softmax(student_maps.float().reshape(n, k, -1), dim=-1)
    teacher = torch.softmax(teacher_maps.float().reshape(n, k, -1), dim=-1)
    big_h, big_w = teacher_maps.shape[-2:]
    if (big_h, big_w) != (h, w):
        if big_h % h or big_w % w or big_h // h != big_w // w:
            raise ValueError(f"teacher maps {big_h}x{big_w} do not pool onto the student's {h}x{w}")
        factor = big_h // h
        teacher = torch.nn.functional.avg_pool2d(teacher.reshape(n, k, big_h, big_w), factor).reshape(n, k, -1)
        teacher = teacher * (factor * factor)
    per_face = (teacher * (torch.log(teacher.clamp(min=1e-12)) - log_student)).sum(-1).mean(-1)
    return (per_face * mask).sum() / mask.sum().clamp(min=1.0)


class TeacherLoss(torch.nn.Module):
    """Knowledge distillation for a smaller two-headed model: match a frozen teacher on the same batch.

    ``weight * (keypoint loss to the teacher's points on faces + KL to its face/non-face
    probabilities)``, returned with the other terms by name; ``loss.TrainingLoss`` adds them
    to the labels' terms.  The teacher sees the
    same augmented images as the student, so it gives a target for every augmentation.
    With ``heatmap_weight`` > 0 and a student shown to ``watch``, the student's
    heatmaps also match the teacher's (``heatmap_weight`` * KL per point): where
    a point may be, not just where its mean lies; with ``embedding_weight`` > 0 the
    pooled features the face/non-face head reads match the teacher's (mean squared
    error), so a student can keep the teacher's classifier.  ``temperature`` softens both
    face/non-face distributions before their KL, so a student also learns how sure
    the teacher is on crops it calls with 0.999.  With ``feature_weight`` > 0 the student's
    trunk maps at every level match the teacher's (``feature_mse``): for a student pruned from
    the teacher inside its blocks (same map shapes), the most direct way back to its features.
    """

    def __init__(self, teacher: torch.nn.Module, kind: str = "wing", weight: float = 1.0,
                 heatmap_weight: float = 0.0, temperature: float = 1.0, embedding_weight: float = 0.0,
                 feature_weight: float = 0.0):
        super().__init__()
        self.teacher = teacher.eval()
        for parameter in self.teacher.parameters():
            parameter.requires_grad_(False)
        self.keypoints = KeypointLoss(kind)
        self.weight, self.heatmap_weight, self.temperature = weight, heatmap_weight, temperature
        self.embedding_weight, self.feature_weight = embedding_weight, feature_weight
        self.teacher_maps = HeatmapTap(teacher) if heatmap_weight > 0 else None
        self.teacher_embedding = EmbeddingTap(teacher) if embedding_weight > 0 else None
        self.teacher_trunk = TrunkTap(teacher) if feature_weight > 0 else None
        self.student_maps = self.student_embedding = self.student_trunk = None

    def watch(self, student: torch.nn.Module) -> None:
        """Tap the student's heatmaps, embedding and trunk maps (those whose weights are > 0)."""
        if self.heatmap_weight > 0:
            self.student_maps = HeatmapTap(student)
        if self.embedding_weight > 0:
            self.student_embedding = EmbeddingTap(student)
        if self.feature_weight > 0:
            self.student_trunk = TrunkTap(student)

    def forward(self, keypoints, logits, images, is_face) -> dict[str, torch.Tensor]:
        """The teacher's terms by name: ``teacher`` (its points on faces and its face/non-face
        probabilities), and ``heatmap``, ``embedding``, ``feature`` where their weights are > 0."""
        with torch.no_grad():
            self.teacher.eval()  # the trainer's model.train() does not reach the teacher
            teacher_keypoints, teacher_logits = self.teacher(images)
        t = self.temperature  # > 1 softens the teacher's near-certain probabilities (Hinton et al.); t^2 keeps the scale
        kl = torch.nn.functional.kl_div(torch.log_softmax(logits.float() / t, dim=1),
                                        torch.softmax(teacher_logits.float() / t, dim=1), reduction="batchmean") * t * t
        terms = {"teacher": self.weight * (self.keypoints(keypoints, teacher_keypoints, is_face) + kl)}
        if self.heatmap_weight > 0:
            terms["heatmap"] = self.heatmap_weight * heatmap_kl(self._tapped(self.student_maps, "heatmap"),
                                                                self.teacher_maps.output, is_face.float())
        if self.embedding_weight > 0:
            # what the face/non-face head reads, on faces and non-faces alike
            terms["embedding"] = self.embedding_weight * torch.nn.functional.mse_loss(
                self._tapped(self.student_embedding, "embedding").float(), self.teacher_embedding.output.float())
        if self.feature_weight > 0:
            terms["feature"] = self.feature_weight * feature_mse(self._tapped(self.student_trunk, "feature"),
                                                                 self.teacher_trunk.output)
        return terms

    @staticmethod
    def _tapped(tap, what: str):
        if tap is None or tap.output is None:
            raise RuntimeError(f"{what} distillation: call watch(student) before training")
        return tap.output
