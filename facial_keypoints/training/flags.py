"""The flags of ``facial-keypoints train``, by group, and the check that refuses numbers no run can use."""
from __future__ import annotations

import argparse
from pathlib import Path

from facial_keypoints.models.networks import MODELS
from facial_keypoints.training.augment import add_augmentation_arguments
from facial_keypoints.training.schedules import add_schedule_arguments

TWO_HEADED = "face_keypoints"


def build_parser(prog: str = "facial-keypoints train") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="train a model on a list, or finetune a checkpoint (--finetune)",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--train-list", type=Path, required=True, help="training list (stageN/gen_train_test.py)")
    p.add_argument("--save-directory", type=Path, required=True, help="where checkpoints, the log and the loss curve go")
    p.add_argument("--finetune", type=Path, default=None, metavar="CHECKPOINT",
                   help="continue this checkpoint's network instead of a new one (lr: a tenth of its own unless --lr)")
    p.add_argument("--resume", action="store_true", help="continue SAVE_DIRECTORY/last.pt where it stopped")
    p.add_argument("--force-resume", action="store_true",
                   help="with --resume: continue even if the checkpoint was trained on another list or backbone")
    p.add_argument("--data-root", default=None, help="the data root (None: $FKD_DATA_ROOT, else data/)")
    _model_flags(p.add_argument_group("model"))
    _optimisation_flags(p.add_argument_group("optimisation"))
    _loss_flags(p.add_argument_group("loss"))
    _distillation_flags(p.add_argument_group("distillation"))
    _data_flags(p.add_argument_group("data"))
    add_augmentation_arguments(p)
    _running_flags(p.add_argument_group("running"))
    return p


def _model_flags(model) -> None:
    model.add_argument("--arch", choices=sorted(MODELS), default=TWO_HEADED,
                       help="the network (face_keypoints: a keypoint backbone with a face/non-face head)")
    model.add_argument("--backbone", choices=sorted(set(MODELS) - {TWO_HEADED}), default="compact_heatmap",
                       help="face_keypoints: the keypoint network under the two heads")
    model.add_argument("--input-size", type=int, default=None,
                       help="crop side in pixels (None: 112, or the checkpoint's with --finetune, where another "
                            "size carries the convolutional weights over to it)")
    model.add_argument("--freeze", nargs="*", default=[], metavar="NAME",
                       help="layer names (or prefixes) to freeze, e.g. body.trunk.stem classifier")


def _optimisation_flags(opt) -> None:
    opt.add_argument("--epochs", type=int, default=40, help="training epochs")
    opt.add_argument("--batch-size", type=int, default=32,
                     help="training batch size (under torchrun: per process; a step's batch is this times the "
                          "number of processes)")
    opt.add_argument("--lr", type=float, default=None,
                     help="learning rate (None: 2e-3, or a tenth of the checkpoint's with --finetune)")
    opt.add_argument("--lr-scaling", choices=("linear", "none"), default="linear",
                     help="under torchrun: the rate for N processes' N-times batch (linear: --lr times N, "
                          "Goyal et al. 2017; none: --lr as given)")
    opt.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="adam", help="optimizer")
    opt.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    opt.add_argument("--weight-decay", type=float, default=1e-4, help="weight decay")
    opt.add_argument("--clip-grad", type=float, default=10.0, help="clip the gradient norm to this (0: off)")
    add_schedule_arguments(opt)
    opt.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                     help="validate, checkpoint and ship an exponential moving average of the weights "
                          "(e.g. 0.999: about the last 1,000 steps; 0: off)")


def _loss_flags(loss) -> None:
    loss.add_argument("--loss", choices=("mse", "smoothl1", "wing"), default="wing",
                      help="keypoint loss, on the crop frame's pixel coordinates")
    loss.add_argument("--cls-weight", type=float, default=5.0, help="a: weight of the face/non-face cross entropy")
    loss.add_argument("--kp-weight", type=float, default=1.0, help="b: weight of the keypoint loss")
    loss.add_argument("--class-weights", type=float, nargs=2, default=(1.0, 1.0), metavar=("NON_FACE", "FACE"),
                      help="per-class cross-entropy weights (raise one to balance uneven lists)")


def _distillation_flags(teacher) -> None:
    teacher.add_argument("--teacher", type=Path, default=None,
                         help="also match this checkpoint's outputs (distillation into a smaller model)")
    teacher.add_argument("--teacher-weight", type=float, default=1.0, help="weight of the teacher's points and KL")
    teacher.add_argument("--teacher-heatmap-weight", type=float, default=0.0,
                         help="weight of the KL between the teacher's and the model's heatmaps (heatmap backbones)")
    teacher.add_argument("--teacher-embedding-weight", type=float, default=0.0,
                         help="weight of the mean squared error to the teacher's pooled features")
    teacher.add_argument("--teacher-feature-weight", type=float, default=0.0,
                         help="weight of the squared error to the teacher's trunk maps at every level, each relative "
                              "to the teacher's scale (a student with the teacher's map shapes)")
    teacher.add_argument("--teacher-temperature", type=float, default=1.0,
                         help="softmax temperature of the face/non-face KL to the teacher")


def _data_flags(data) -> None:
    data.add_argument("--val-fraction", type=float, default=0.1,
                      help="share of the training photos held apart for validation (never the test list)")
    data.add_argument("--seed", type=int, default=1,
                      help="initialisation, shuffling and augmentation; also the validation split unless --split-seed")
    data.add_argument("--split-seed", type=int, default=None,
                      help="the validation split's seed (None: --seed), so another training draw (--seed) keeps "
                           "the photos every other candidate was validated on")
    data.add_argument("--extra-list", type=Path, default=None,
                      help="more training crops for the face/non-face loss and a teacher's terms only (their keypoint "
                           "labels are not trained); lines of photos outside the training split are dropped")
    data.add_argument("--crops", type=Path, default=None,
                      help="take the training list's crops from this pack (facial-keypoints pack) instead of the photos")
    data.add_argument("--extra-crops", type=Path, default=None, help="with --crops: the --extra-list's pack")
    data.add_argument("--cache-dir", type=Path, default=None,
                      help="crop cache (None: $FKD_CACHE_DIR, else ~/.cache/facial_keypoints)")


def _running_flags(run) -> None:
    run.add_argument("--test-batch-size", type=int, default=256, help="batch size of validation")
    run.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    run.add_argument("--threads", type=int, default=None, help="torch CPU threads (None: all cores)")
    run.add_argument("--no-cuda", action="store_true", help="train on the CPU even if a GPU is present")
    run.add_argument("--log-interval", type=int, default=20, help="batches between log lines (0: epochs only)")
    run.add_argument("--save-model", action=argparse.BooleanOptionalAction, default=True,
                     help="write last.pt/best.pt checkpoints")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")


def check_numbers(args) -> None:
    """One clear line for a setting no run can use, before any work starts."""
    for flag, minimum in (("epochs", 1), ("batch_size", 1), ("test_batch_size", 1), ("workers", 0)):
        if getattr(args, flag) < minimum:
            raise ValueError(f"--{flag.replace('_', '-')} must be at least {minimum}, not {getattr(args, flag)}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be at least 1, not {args.threads}")
    if args.lr is not None and not args.lr > 0:
        raise ValueError(f"--lr must be above 0, not {args.lr:g}")
    if args.input_size is not None and args.input_size < 16:
        raise ValueError(f"--input-size must be at least 16 pixels, not {args.input_size}")
    if args.resume and args.finetune:
        raise ValueError("--resume continues SAVE_DIRECTORY/last.pt; --finetune starts a new run from a checkpoint: "
                         "give one of them")
