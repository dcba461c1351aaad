"""facial-keypoints train: train a model on a list, or finetune a checkpoint (--finetune).

The shipped model's recipes (recipes/README.md) run on it: any registered network, two heads
by default, online augmentation, schedules, a weight average, distillation from a teacher,
crop packs, ``--resume``, and torchrun.  The parsed flags are read, never changed: what a run
derives from them (its learning rate, its folder) is passed on as values.
"""
from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from facial_keypoints.models.checkpoint import CheckpointError, load_model
from facial_keypoints.evaluation.engine import select_device
from facial_keypoints.errors import USER_ERRORS, Terminated, terminate_as_interrupt
from facial_keypoints.data.lists import resolve_data_root
from facial_keypoints.models.networks import count_parameters, create_model, freeze, init_output
from facial_keypoints.training.augment import train_transform
from facial_keypoints.training.data import list_settings, training_sets
from facial_keypoints.training.distributed import Distributed
from facial_keypoints.training.flags import TWO_HEADED, build_parser, check_numbers
from facial_keypoints.training.loop import NonFiniteLossError, Progress, fit
from facial_keypoints.training.loss import TrainingLoss
from facial_keypoints.training.losses import TeacherLoss
from facial_keypoints.training.run_folder import RunFolder, SaveDirectoryBusy, save_directory_lock
from facial_keypoints.training.schedules import make_scheduler
from facial_keypoints.training.weight_average import WeightAverage

log = logging.getLogger("facial_keypoints")


def new_model_config(args) -> dict:
    """What rebuilds the network a new run trains (stored in every checkpoint)."""
    return {"arch": args.arch, "model_kwargs": {"backbone": args.backbone} if args.arch == TWO_HEADED else {},
            "input_size": args.input_size or 112,
            "expand_ratio": list_settings(args.train_list).get("expand_ratio", 0.25),
            "normalize": not args.no_normalize}


def make_optimizer(args, params, lr: float):
    params = [p for p in params if p.requires_grad]
    if args.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=args.momentum, weight_decay=args.weight_decay)
    if args.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=args.weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=args.weight_decay)


def make_loss(args, config: dict) -> TrainingLoss:
    """The labels' terms, a face/non-face term for two-headed networks, and the teacher's terms with --teacher."""
    teacher, teacher_size = None, None
    if args.teacher is not None:
        teacher_model, payload = load_model(args.teacher)
        teacher = TeacherLoss(teacher_model, args.loss, args.teacher_weight, args.teacher_heatmap_weight,
                              args.teacher_temperature, args.teacher_embedding_weight, args.teacher_feature_weight)
        teacher_size = payload["config"]["input_size"]
    return TrainingLoss(args.loss, kp_weight=args.kp_weight,
                        cls_weight=args.cls_weight if config["arch"] == TWO_HEADED else None,
                        class_weights=tuple(args.class_weights), teacher=teacher, teacher_input_size=teacher_size)


def resize_input(model, config: dict, size: int, path="checkpoint"):
    """The same weights in a model built for ``size`` x ``size`` crops.

    Convolutional weights do not depend on the image size, so a smaller input (less arithmetic
    per face) can start from a trained model; models with size-bound layers (stage 1's fully
    connected ones) refuse.
    """
    try:
        resized = create_model(config["arch"], input_size=size, **config["model_kwargs"])
        resized.load_state_dict(model.state_dict())
    except (ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path}: cannot move {config['arch']} to {size}x{size} inputs: "
                              f"{str(error).splitlines()[0]}") from None
    return resized


def setup_logging(save_dir: Path | None, quiet: bool = False) -> None:
    """INFO lines to stderr and ``save_dir/train.log``; ``quiet`` (a process other than rank 0): warnings only."""
    handlers = [logging.StreamHandler(sys.stderr)]
    if save_dir is not None:
        save_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(save_dir / "train.log"))
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(asctime)s %(message)s",
                        handlers=handlers, force=True)


def new_model(args, train_set, config: dict):
    """A freshly initialised network whose regression output starts at the training faces' mean."""
    model = create_model(config["arch"], input_size=config["input_size"], **config["model_kwargs"])
    labelled_faces = train_set.face_mask() & train_set.keypoint_labelled
    init_output(model, torch.from_numpy(train_set.frame_keypoints[labelled_faces].mean(axis=0)))
    return model


def run_folder_of(args) -> Path:
    """--save-directory; with --finetune never the checkpoint's own folder, whose best.pt it would overwrite."""
    if args.finetune is not None and args.save_directory.resolve() == args.finetune.resolve().parent:
        return args.save_directory / "finetune"
    return args.save_directory


def finetune_start(args):
    """(model, config, lr) for --finetune: the checkpoint's network, perhaps at another input size,
    its rate divided by ten unless --lr."""
    path = args.finetune
    model, payload = load_model(path)
    config = payload["config"]
    if args.arch != TWO_HEADED and args.arch != config["arch"]:
        raise ValueError(f"--arch {args.arch}: {path} holds a {config['arch']!r} model, and --finetune continues "
                         "the checkpoint's own network (recipes/change_backbone.py moves a trained model onto "
                         "another backbone)")
    if args.input_size and args.input_size != config["input_size"]:
        model = resize_input(model, config, args.input_size, path)
        log.info("input size %d -> %d", config["input_size"], args.input_size)
        config = dict(config, input_size=args.input_size)
    trained = payload["args"]
    lr = args.lr if args.lr is not None else 0.1 * (trained.get("base_lr") or trained.get("lr") or 2e-3)
    log.info("finetuning %s at lr %g with %s", path, lr, args.optimizer)
    return model, config, lr


def datasets_of(args, config: dict):
    """The training and validation sets of --train-list (photos, or a crop pack) with their augmentation."""
    data_root = None if args.crops is not None else resolve_data_root(args.data_root)  # a pack needs no photos
    return training_sets(
        args.train_list, data_root, config, val_fraction=args.val_fraction,
        split_seed=args.seed if args.split_seed is None else args.split_seed,
        train_transform=train_transform(args, config), cache_dir=args.cache_dir, crops=args.crops,
        extra_list=args.extra_list, extra_crops=args.extra_crops, progress=not args.no_progress)


def optimisation(args, model, samples: int, lr: float, dist: Distributed):
    """(optimizer, schedule, learning rate): under torchrun the rate follows --lr-scaling, and the schedule
    counts each process's steps."""
    scaled = lr * (dist.world_size if args.lr_scaling == "linear" else 1)
    if dist.enabled:
        log.info("torchrun: %d processes (%s); batch %d per process, %d per step; lr %g -> %g (%s)",
                 dist.world_size, dist.backend, args.batch_size, args.batch_size * dist.world_size, lr, scaled,
                 "linear scaling rule: lr times the processes" if args.lr_scaling == "linear"
                 else "--lr-scaling none: as given")
    optimizer = make_optimizer(args, model.parameters(), scaled)
    per_process = -(-samples // dist.world_size)  # ceiling divisions
    steps_per_epoch = -(-per_process // args.batch_size)
    return optimizer, make_scheduler(args, optimizer, steps_per_epoch), scaled


def train(args, dist: Distributed, device) -> int:
    """A new network (or, with --finetune, a checkpoint's) trained on the list's training photos."""
    save_dir = run_folder_of(args)
    setup_logging(save_dir if dist.is_main else None, quiet=not dist.is_main)
    model, config, lr = (finetune_start(args) if args.finetune is not None else
                         (None, new_model_config(args), args.lr or 2e-3))
    train_set, val_set = datasets_of(args, config)
    model = model if model is not None else new_model(args, train_set, config)
    frozen = freeze(model, args.freeze) if args.freeze else []
    if frozen:
        log.info("frozen: %s", ", ".join(frozen))
    model.to(device)
    optimizer, scheduler, scaled = optimisation(args, model, len(train_set), lr, dist)
    loss = make_loss(args, config)
    average = WeightAverage(model, args.ema) if args.ema else None
    # base_lr (before torchrun's scaling) is what a later --finetune divides by ten
    settings = dict(vars(args), lr=scaled, base_lr=lr, save_directory=save_dir)
    run = RunFolder(save_dir, config, settings, loss.describe(), save_model=args.save_model)
    progress = Progress()
    with save_directory_lock(save_dir) if dist.is_main else contextlib.nullcontext():
        if args.resume:
            progress = run.resume(model, optimizer, scheduler, average, force=args.force_resume)
            log.info("resumed from %s at epoch %d", save_dir / "last.pt", progress.start_epoch)
        log.info("model %s: %d parameters; %d train / %d validation faces; device %s; lr %g", config["arch"],
                 count_parameters(model), len(train_set), len(val_set), device, scaled)
        history = fit(model, train_set, val_set, loss, optimizer, epochs=args.epochs, batch_size=args.batch_size,
                      device=device, seed=args.seed, scheduler=scheduler, average=average,
                      run=run if dist.is_main else None, progress=progress, dist=dist, clip_grad=args.clip_grad,
                      log_interval=args.log_interval, workers=args.workers, val_batch_size=args.test_batch_size)
    if dist.is_main:
        best = Progress(history).best
        log.info("trained %d epochs in %.1f min; best validation loss %.4f%s; checkpoints in %s",
                 len(history), sum(h["seconds"] for h in history) / 60, best,
                 " (labels alone)" if loss.has_teacher else "", save_dir)
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    terminate_as_interrupt()  # SIGTERM unwinds as Ctrl-C does: the lock released, no temporary file left
    try:
        check_numbers(args)
        if args.threads:
            torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed)
        np.random.seed(args.seed)
        dist = Distributed.from_environment(args.no_cuda)
        try:
            return train(args, dist, dist.device(select_device(args.no_cuda)))
        finally:
            dist.close()
    except (*USER_ERRORS, KeyError, OSError, NonFiniteLossError, SaveDirectoryBusy) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        print(f"{'terminated' if isinstance(interrupt, Terminated) else 'interrupted'}: the checkpoints saved so "
              f"far are in {args.save_directory}; --resume goes on from the last one", file=sys.stderr)
        return 143 if isinstance(interrupt, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
