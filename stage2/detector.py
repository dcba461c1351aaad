"""Stage 2: the same phases as stage 1, with everything that makes the model better.

What stage 2 adds (flags): online keypoint-aware augmentation (--no-augment,
--flip, --rotation, --scale, --translate, --brightness, --contrast,
--no-normalize), learning-rate schedules (--scheduler step|cosine|none,
--warmup-epochs), and the choices already in the shared command line:
--optimizer sgd|adam|adamw, --loss mse|smoothl1|wing, --arch from the model
registry (stage1, stage1_bn, resnet18, mobilenet_v3, compact_resnet,
compact_heatmap).  The defaults are the best configuration of the ablation
(stage2/README.md).

    python stage2/detector.py --phase train
    python stage2/detector.py --phase test
    python stage2/detector.py --phase finetune --optimizer sgd --lr 1e-3   # Adam-trained -> SGD finetune
    python stage2/detector.py --phase predict
"""
import sys
from pathlib import Path

from facial_keypoints.augment import train_transform
from facial_keypoints.detector_cli import Detector
from facial_keypoints.schedules import add_training_arguments, make_scheduler

STAGE_DIR = Path(__file__).resolve().parent

DEFAULTS = {"arch": "compact_heatmap", "optimizer": "adam", "loss": "wing", "lr": 2e-3, "epochs": 40,
            "batch_size": 32, "weight_decay": 1e-4}


def detector() -> Detector:
    return Detector(STAGE_DIR, DEFAULTS, train_transform=train_transform, scheduler_factory=make_scheduler,
                    add_arguments=add_training_arguments)


if __name__ == "__main__":
    sys.exit(detector().main())
