"""Stage 3: one backbone, two heads — 21 keypoints and face/non-face.

Loss ``a·CE + b·keypoint loss``: cross entropy weighted per class
(--class-weights NON_FACE FACE), the keypoint loss only on faces (the mask comes
from the list's last field).  Test reports accuracy, face recall and non-face
recall over the whole test list, and the keypoint metrics on its faces.  The
stage-2 options (augmentation, schedules, losses) all apply.

    python stage3/not_face_generate.py --verify 16     # look at the non-faces first
    python stage3/gen_train_test.py
    python stage3/detector.py --phase train
    python stage3/detector.py --phase test
"""
import sys
from pathlib import Path

from facial_keypoints.augment import train_transform
from facial_keypoints.checkpoint import load_model
from facial_keypoints.detector_cli import Detector
from facial_keypoints.losses import FaceAndKeypointLoss, TeacherLoss
from facial_keypoints.models import MODELS
from facial_keypoints.schedules import add_training_arguments, make_scheduler

STAGE_DIR = Path(__file__).resolve().parent

DEFAULTS = {"arch": "face_keypoints", "optimizer": "adam", "loss": "wing", "lr": 2e-3, "epochs": 40,
            "batch_size": 32, "weight_decay": 1e-4}


def add_arguments(parser):
    add_training_arguments(parser)
    group = parser.add_argument_group("face/non-face head")
    group.add_argument("--backbone", choices=sorted(set(MODELS) - {"face_keypoints"}), default="compact_heatmap",
                       help="the keypoint network under the two heads")
    group.add_argument("--cls-weight", type=float, default=5.0, help="a: weight of the cross entropy")
    group.add_argument("--kp-weight", type=float, default=1.0, help="b: weight of the keypoint loss")
    group.add_argument("--class-weights", type=float, nargs=2, default=(1.0, 1.0), metavar=("NON_FACE", "FACE"),
                       help="per-class cross-entropy weights (raise one to balance uneven lists)")
    group.add_argument("--teacher", type=Path, default=None,
                       help="train/finetune: also match this checkpoint's outputs (distillation into a smaller model)")
    group.add_argument("--teacher-weight", type=float, default=1.0, help="weight of the teacher's term")
    group.add_argument("--teacher-heatmap-weight", type=float, default=0.0,
                       help="weight of the KL between the teacher's and the model's heatmaps (heatmap backbones)")
    group.add_argument("--teacher-embedding-weight", type=float, default=0.0,
                       help="weight of the mean squared error to the teacher's pooled features (the classifier's input)")
    group.add_argument("--teacher-feature-weight", type=float, default=0.0,
                       help="weight of the squared error to the teacher's trunk maps at every level, each relative "
                            "to the teacher's scale (a student with the teacher's map shapes, e.g. thin_deep48_heatmap)")
    group.add_argument("--teacher-temperature", type=float, default=1.0,
                       help="softmax temperature of the face/non-face KL to the teacher")


def loss_factory(args):
    loss = FaceAndKeypointLoss(args.loss, args.cls_weight, args.kp_weight, tuple(args.class_weights))

    def labels_loss(keypoints, logits, batch):
        return loss(keypoints, logits, batch["keypoints"], batch["face"], batch.get("keypoint_labelled"))
    labels_loss.label = f"{args.cls_weight:g}·cross entropy + {args.kp_weight:g}·{args.loss} loss"
    if getattr(args, "teacher", None) is None or args.phase not in ("train", "finetune"):
        return labels_loss
    teacher_model, payload = load_model(args.teacher)
    teacher = TeacherLoss(teacher_model, args.loss, args.teacher_weight,
                          getattr(args, "teacher_heatmap_weight", 0.0), getattr(args, "teacher_temperature", 1.0),
                          getattr(args, "teacher_embedding_weight", 0.0), getattr(args, "teacher_feature_weight", 0.0))
    teacher_size = payload["config"]["input_size"]

    def with_teacher(keypoints, logits, batch):
        if batch["image"].shape[-1] != teacher_size:
            raise ValueError(f"--teacher {args.teacher} takes {teacher_size}-px crops, "
                             f"the model trains on {batch['image'].shape[-1]}-px ones")
        teacher.to(keypoints.device)
        return (labels_loss(keypoints, logits, batch)
                + teacher(keypoints, logits, batch["image"], batch["face"]))
    with_teacher.watch = teacher.watch  # the trainer shows it the model it trains
    # What best.pt is judged on: the labels alone.  The teacher's terms only steer training, and a
    # student that matches its teacher more closely is not thereby better at the task.
    with_teacher.labels_loss = labels_loss
    with_teacher.label = labels_loss.label + " + teacher terms"
    return with_teacher


def detector() -> Detector:
    return Detector(STAGE_DIR, DEFAULTS, train_transform=train_transform, loss_factory=loss_factory,
                    scheduler_factory=make_scheduler, add_arguments=add_arguments)


if __name__ == "__main__":
    sys.exit(detector().main())
