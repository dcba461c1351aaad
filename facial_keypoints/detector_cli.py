"""The ``--phase train|test|finetune|predict`` command line that every stage's detector.py runs.

A stage passes its defaults (model, optimizer, loss, ...) and, from stage 2 on,
the transforms it trains with; everything else is shared here.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from . import engine
from .checkpoint import CheckpointError, load_checkpoint, load_model, make_checkpoint, on_cpu, save_checkpoint
from .crop_pack import read_pack, write_pack
from .dataset import FaceCrops
from .distributed import Distributed
from .errors import USER_ERRORS
from .evaluation import attach_face_boxes, face_metrics, predict_records
from .labels import read_list
from .lists import resolve_data_root, split_by_photo
from .losses import KeypointLoss, trained_keypoints
from .metrics import json_summary, summary_table
from .models import MODELS, count_parameters, create_model, freeze, init_output
from .photos import face_threshold_of
from .plots import draw_points, grid, plot_ced, plot_loss_curves
from .runtime import BACKENDS, load as load_runtime
from .transforms import eval_transform
from .weight_average import WeightAverage

log = logging.getLogger("facial_keypoints")


def build_parser(stage_dir: Path, defaults: dict) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=f"{stage_dir.name} facial keypoint detector",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--phase", choices=("train", "test", "finetune", "predict", "pack"), default="train",
                   help="train a model, test it on the test list, finetune a checkpoint, draw its predictions, "
                        "or pack the training crops into one file")
    p.add_argument("--data-root", default=None, help="the data root (None: $FKD_DATA_ROOT, else data/)")
    p.add_argument("--train-list", type=Path, default=stage_dir / "train.txt", help="training list (gen_train_test.py)")
    p.add_argument("--test-list", type=Path, default=stage_dir / "test.txt", help="test list (gen_train_test.py)")
    p.add_argument("--arch", choices=sorted(MODELS), default=defaults.get("arch", "stage1"), help="the network")
    p.add_argument("--input-size", type=int, default=None,
                   help="crop side in pixels (None: 112 for train, the checkpoint's for finetune; a different "
                        "size carries the convolutional weights over to it)")
    p.add_argument("--batch-size", type=int, default=defaults.get("batch_size", 64),
                   help="training batch size (under torchrun: per process; the batch of a step is this times "
                        "the number of processes)")
    p.add_argument("--lr-scaling", choices=("linear", "none"), default="linear",
                   help="under torchrun: the learning rate for N processes' N-times batch (linear: --lr times N, "
                        "Goyal et al. 2017; none: --lr as given)")
    p.add_argument("--test-batch-size", type=int, default=256, help="batch size of validation and test")
    p.add_argument("--epochs", type=int, default=defaults.get("epochs", 40), help="training epochs")
    p.add_argument("--lr", type=float, default=None,
                   help=f"learning rate (None: {defaults.get('lr', 1e-3)} for train, a tenth of the checkpoint's "
                        "for finetune)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    p.add_argument("--clip-grad", type=float, default=defaults.get("clip_grad", 10.0),
                   help="clip the gradient norm to this (0: off); keeps SGD on pixel-scale targets stable")
    p.add_argument("--weight-decay", type=float, default=defaults.get("weight_decay", 0.0), help="weight decay")
    p.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default=defaults.get("optimizer", "sgd"),
                   help="optimizer")
    p.add_argument("--loss", choices=("mse", "smoothl1", "wing"), default=defaults.get("loss", "mse"),
                   help="keypoint loss, on the crop frame's pixel coordinates")
    p.add_argument("--no-cuda", action="store_true", help="train on the CPU even if a GPU is present")
    p.add_argument("--seed", type=int, default=1,
                   help="initialisation, shuffling and augmentation; also the validation split unless --split-seed")
    p.add_argument("--split-seed", type=int, default=None,
                   help="the validation split's seed (None: --seed), so a second training draw of a recipe "
                        "(another --seed) keeps the photos every other candidate was validated on")
    p.add_argument("--log-interval", type=int, default=20, help="batches between log lines")
    p.add_argument("--save-model", action=argparse.BooleanOptionalAction, default=True,
                   help="write last.pt/best.pt checkpoints")
    p.add_argument("--save-directory", type=Path, default=stage_dir / "trained_models",
                   help="where checkpoints, the log and the loss curve go")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="share of the training photos held apart for validation (never the test list)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="test/predict/finetune: checkpoint to load (None: SAVE_DIRECTORY/best.pt)")
    p.add_argument("--backend", choices=BACKENDS, default="torch",
                   help="test: run CHECKPOINT with torch, or on the CPU with its ONNX model (onnx, made by "
                        "facial-keypoints export) or its int8 model (onnx-int8, made by quantize); auto: the "
                        "int8 model where there is one, else the ONNX model, else torch")
    p.add_argument("--freeze", nargs="*", default=[], metavar="NAME",
                   help="finetune: layer names (or prefixes) to freeze, e.g. conv1_1 features")
    p.add_argument("--resume", action="store_true", help="train: continue from SAVE_DIRECTORY/last.pt")
    p.add_argument("--force-resume", action="store_true",
                   help="with --resume: continue even if the checkpoint was trained on another list or backbone")
    p.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="train/finetune: validate, checkpoint and ship an exponential moving average of the "
                        "weights (e.g. 0.999: about the last 1,000 steps; 0: off)")
    p.add_argument("--workers", type=int, default=defaults.get("workers", 0), help="DataLoader workers")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (None: all cores)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="crop cache (None: $FKD_CACHE_DIR, else ~/.cache/facial_keypoints)")
    p.add_argument("--crops", type=Path, default=None,
                   help="train/finetune: take the training list's crops from this pack (written by --phase pack) "
                        "instead of the photos, e.g. to train on a machine without the data")
    p.add_argument("--extra-list", type=Path, default=None,
                   help="train/finetune: more training crops, e.g. detector-framed ones from "
                        "stage3/detector_examples.py --new-only, for the face/non-face loss and a teacher's terms "
                        "only (their keypoint labels are not trained); lines of other photos than the training "
                        "split's are dropped")
    p.add_argument("--pack-quality", type=int, default=None, metavar="Q",
                   help="pack: store the crops as JPEGs of this quality (e.g. 95: a third of the size, a mean "
                        "change of 0.7 grey levels) instead of losslessly")
    p.add_argument("--extra-crops", type=Path, default=None,
                   help="with --crops: the --extra-list's pack (--phase pack --train-list EXTRA --crops FILE)")
    p.add_argument("--predict-dir", type=Path, default=stage_dir / "predictions", help="predict: where drawings go")
    p.add_argument("--num-predict", type=int, default=16, help="predict: faces to draw")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def setup_logging(save_dir: Path | None, quiet: bool = False) -> None:
    """INFO lines to stderr and ``save_dir/train.log``; ``quiet`` (a process other than rank 0): warnings only."""
    handlers = [logging.StreamHandler(sys.stderr)]
    if save_dir is not None:
        save_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(save_dir / "train.log"))
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(asctime)s %(message)s",
                        handlers=handlers, force=True)


def split_seed(args) -> int:
    """The seed of the photos held out for validation: --split-seed, else --seed."""
    return args.seed if getattr(args, "split_seed", None) is None else args.split_seed


def list_settings(list_path: Path) -> dict:
    """What gen_train_test.py wrote beside the lists (the expansion ratio, mostly)."""
    meta = Path(list_path).with_name("lists.json")
    return json.loads(meta.read_text()) if meta.is_file() else {}


def make_optimizer(name: str, params, lr: float, momentum: float, weight_decay: float):
    params = [p for p in params if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def keypoint_loss_fn(kind: str):
    """The stage-1/2 loss: keypoints only, masked to faces whose keypoint labels are trained (--extra-list)."""
    loss = KeypointLoss(kind)

    def keypoint_loss(keypoints, logits, batch):
        return loss(keypoints, batch["keypoints"], trained_keypoints(batch["face"], batch.get("keypoint_labelled")))
    keypoint_loss.label = f"{kind} loss"
    return keypoint_loss


def selection_loss(entry: dict) -> float:
    """The validation figure best.pt is picked on: the loss on the labels alone where a teacher's
    terms were added to training (``val_labels_loss``), else the validation loss."""
    return entry.get("val_labels_loss", entry["val_loss"])


def loss_label(loss_fn, args) -> str:
    """What the loss curve's axis says: the loss function's own ``label`` (stage 3's names its
    cross entropy and teacher terms), else the keypoint loss's name."""
    return getattr(loss_fn, "label", f"{args.loss} loss")


def keypoint_loss_from_args(args):
    return keypoint_loss_fn(args.loss)


def classification_metrics(is_face, face_prob, threshold: float = 0.5) -> dict:
    """Accuracy, face recall and non-face recall over the whole set (counts, not batch averages), in %."""
    is_face = np.asarray(is_face, dtype=bool)
    said_face = np.asarray(face_prob) >= threshold
    return {
        "samples": int(len(is_face)),
        "accuracy": float((said_face == is_face).mean() * 100),
        "face_recall": float(said_face[is_face].mean() * 100) if is_face.any() else float("nan"),
        "non_face_recall": float((~said_face[~is_face]).mean() * 100) if (~is_face).any() else float("nan"),
    }


def resize_input(model, config: dict, size: int, path="checkpoint"):
    """The same weights in a model built for ``size`` x ``size`` crops.

    Convolutional weights do not depend on the image size, so a smaller input
    (less arithmetic per face) can start from a trained model and be finetuned;
    models with size-bound layers (stage 1's fully connected ones) refuse.
    """
    try:
        resized = create_model(config["arch"], input_size=size, **config["model_kwargs"])
        resized.load_state_dict(model.state_dict())
    except (ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path}: cannot move {config['arch']} to {size}x{size} inputs: "
                              f"{str(error).splitlines()[0]}") from None
    return resized


def check_numbers(args) -> None:
    """One clear line for a setting no run can use, before any work starts."""
    for flag, minimum in (("epochs", 1), ("batch_size", 1), ("test_batch_size", 1), ("num_predict", 0),
                          ("workers", 0)):
        if getattr(args, flag) < minimum:
            raise ValueError(f"--{flag.replace('_', '-')} must be at least {minimum}, not {getattr(args, flag)}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be at least 1, not {args.threads}")
    if args.lr is not None and not args.lr > 0:
        raise ValueError(f"--lr must be above 0, not {args.lr:g}")
    if args.input_size is not None and args.input_size < 16:
        raise ValueError(f"--input-size must be at least 16 pixels, not {args.input_size}")


class SaveDirectoryBusy(RuntimeError):
    pass


@contextlib.contextmanager
def save_directory_lock(folder: Path):
    """Hold ``folder/.lock`` (with this process's pid) while a run trains into ``folder``.

    A second run into a folder a live run holds is refused: the last to finish would silently
    overwrite the other's best.pt.  A lock whose process is gone (a crash, a kill) is taken over.
    """
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / ".lock"
    while True:
        try:
            handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            try:
                holder = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                holder = 0
            if holder and holder != os.getpid() and _alive(holder):
                raise SaveDirectoryBusy(f"{folder} is in use by another training run (pid {holder}, {lock}); "
                                        "wait for it, or give --save-directory another folder") from None
            lock.unlink(missing_ok=True)  # left by a run that no longer exists
    os.write(handle, str(os.getpid()).encode())
    os.close(handle)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Detector:
    """One stage's phases.  Stages customise by passing ``train_transform`` and ``loss_factory``."""

    def __init__(self, stage_dir: Path, defaults: dict | None = None, train_transform=None,
                 loss_factory=keypoint_loss_from_args, scheduler_factory=None, add_arguments=None):
        self.stage_dir = Path(stage_dir)
        self.defaults = defaults or {}
        self.train_transform = train_transform
        self.loss_factory = loss_factory
        self.scheduler_factory = scheduler_factory
        self.add_arguments = add_arguments

    # ---- command line -------------------------------------------------------------
    def parser(self) -> argparse.ArgumentParser:
        parser = build_parser(self.stage_dir, self.defaults)
        if self.add_arguments:
            self.add_arguments(parser)
        return parser

    def main(self, argv=None) -> int:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = self.parser().parse_args(argv)
        args.given = {a.split("=")[0] for a in argv if a.startswith("--")}  # flags the user typed
        try:
            check_numbers(args)
            return self.run(args)
        except (*USER_ERRORS, KeyError, OSError, engine.NonFiniteLossError, SaveDirectoryBusy) as error:
            message = error.args[0] if isinstance(error, KeyError) and error.args else error
            print(f"error: {message}", file=sys.stderr)
            return 2

    def run(self, args) -> int:
        if args.threads:
            torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed)
        np.random.seed(args.seed)
        self.args = args
        training = args.phase in ("train", "finetune")
        self.dist = Distributed.from_environment(args.no_cuda)
        try:
            if self.dist.enabled and not training:
                raise ValueError(f"--phase {args.phase} runs in one process; torchrun is for train and finetune")
            self.device = self.dist.device(engine.select_device(args.no_cuda))
            # Training from a crop pack needs no photos (and so no data root).
            packed = args.crops is not None and training
            self.root = None if packed else resolve_data_root(args.data_root)
            setup_logging(args.save_directory if training and self.dist.is_main else None,
                          quiet=not self.dist.is_main)
            phase = getattr(self, f"phase_{args.phase}")
            result = phase()
            return 0 if result is None else result
        finally:
            self.dist.close()

    def check_heads(self, arch: str, source) -> None:
        """Stage 3 trains two-headed models (its loss needs the face/non-face logits)."""
        if self.defaults.get("arch") == "face_keypoints" and arch != "face_keypoints":
            raise ValueError(f"{source}: stage 3 trains two-headed face_keypoints models, not {arch!r} (one head: "
                             "keypoints only); choose the network with --backbone, or use stage 1 or 2")

    # ---- data ---------------------------------------------------------------------
    def config(self) -> dict:
        self.check_heads(self.args.arch, "--arch")
        settings = list_settings(self.args.train_list)
        backbone = getattr(self.args, "backbone", None)
        return {"arch": self.args.arch, "model_kwargs": {"backbone": backbone} if backbone else {},
                "input_size": self.args.input_size or 112,
                "expand_ratio": settings.get("expand_ratio", 0.25),
                "normalize": not getattr(self.args, "no_normalize", False)}

    def datasets(self, config: dict):
        records = read_list(self.args.train_list)
        train, val = split_by_photo(records, self.args.val_fraction, split_seed(self.args), flag="--val-fraction")
        transform = self.train_transform(self.args, config) if self.train_transform else eval_transform(
            config["normalize"])
        common = dict(data_root=self.root, size=config["input_size"], cache_dir=self.args.cache_dir,
                      progress=not self.args.no_progress)
        extra_records, keep = self.extra_records({r.image for r in train})
        train_crops = val_crops = None
        if self.args.crops:
            packed = read_pack(self.args.crops, records, config["input_size"])
            row = {id(record): n for n, record in enumerate(records)}
            train_crops = packed[[row[id(r)] for r in train]]
            val_crops = packed[[row[id(r)] for r in val]]
            if keep:
                if self.args.extra_crops is None:
                    raise ValueError("--crops with --extra-list needs --extra-crops (the extra list's pack)")
                extra = read_pack(self.args.extra_crops, extra_records, config["input_size"])[keep]
                train_crops = np.concatenate([train_crops, extra])
        kept = [extra_records[n] for n in keep]
        labelled = np.r_[np.ones(len(train), dtype=bool), np.zeros(len(kept), dtype=bool)]
        return (FaceCrops(train + kept, transform=transform, crops=train_crops, keypoint_labelled=labelled, **common),
                FaceCrops(val, transform=eval_transform(config["normalize"]), crops=val_crops, **common))

    def extra_records(self, train_photos: set) -> tuple[list, list]:
        """(the --extra-list's records, the rows kept): those of the training split's photos only, so
        neither a validation nor a test photo enters training through it."""
        if getattr(self.args, "extra_list", None) is None:
            return [], []
        records = read_list(self.args.extra_list)
        keep = [n for n, r in enumerate(records) if r.image in train_photos]
        log.info("%s: %d of %d lines added (keypoints not trained), %d of other photos dropped",
                 self.args.extra_list, len(keep), len(records), len(records) - len(keep))
        return records, keep

    # ---- phases -------------------------------------------------------------------
    def phase_train(self, model=None, config=None, lr=None):
        # under torchrun only rank 0 writes into the save directory, so only it holds the lock
        with save_directory_lock(self.args.save_directory) if self.dist.is_main else contextlib.nullcontext():
            return self.train_loop(model, config, lr)

    def train_loop(self, model=None, config=None, lr=None):
        args = self.args
        config = config or self.config()
        train_set, val_set = self.datasets(config)
        if model is None:
            model = create_model(config["arch"], input_size=config["input_size"], **config["model_kwargs"])
            labelled_faces = train_set.face_mask() & train_set.keypoint_labelled
            init_output(model, torch.from_numpy(train_set.frame_keypoints[labelled_faces].mean(axis=0)))
        # ``model`` runs the training steps (DistributedDataParallel under torchrun); ``net`` is the network
        # itself, which checkpoints, the weight average, validation and hooks see.
        net = model.to(self.device)
        model = self.dist.wrap(net, self.device)
        lr = lr if lr is not None else (args.lr if args.lr is not None else self.defaults.get("lr", 1e-3))
        args.base_lr = lr  # before scaling for torchrun's processes: what a finetune starts from
        if self.dist.enabled:
            world, scaled = self.dist.world_size, lr * (self.dist.world_size if args.lr_scaling == "linear" else 1)
            log.info("torchrun: %d processes (%s); batch %d per process, %d per step; lr %g -> %g (%s)", world,
                     self.dist.backend, args.batch_size, args.batch_size * world, lr, scaled,
                     "linear scaling rule: lr times the processes" if args.lr_scaling == "linear"
                     else "--lr-scaling none: as given")
            lr = scaled
        args.lr = lr  # the checkpoint records the rate actually used
        optimizer = make_optimizer(args.optimizer, net.parameters(), lr, args.momentum, args.weight_decay)
        per_process = -(-len(train_set) // self.dist.world_size)
        steps_per_epoch = (per_process + args.batch_size - 1) // args.batch_size
        scheduler = self.scheduler_factory(args, optimizer, steps_per_epoch) if self.scheduler_factory else None
        loss_fn = self.loss_factory(args)
        if hasattr(loss_fn, "watch"):  # a loss that reads the model's inner layers (heatmap distillation)
            loss_fn.watch(net)
        average = WeightAverage(net, args.ema) if getattr(args, "ema", 0.0) else None
        labels_loss = getattr(loss_fn, "labels_loss", None)  # distillation: best.pt is judged without the teacher
        history, start_epoch, best = [], 1, float("inf")
        save_dir = args.save_directory

        if args.resume:
            payload = load_checkpoint(save_dir / "last.pt")
            if payload["config"]["arch"] != config["arch"]:
                raise CheckpointError(f"{save_dir / 'last.pt'} holds a {payload['config']['arch']!r} model, "
                                      f"not {config['arch']!r}")
            resumed_from = payload.get("args", {})
            changed = [f"--{key.replace('_', '-')} {resumed_from.get(key)} -> {getattr(args, key)}"
                       for key in ("train_list", "backbone") if key in resumed_from and hasattr(args, key)
                       and str(resumed_from[key]) != str(getattr(args, key))]
            if changed and not args.force_resume:
                raise CheckpointError(f"{save_dir / 'last.pt'} was trained with other settings ({'; '.join(changed)}); "
                                      "resuming would mix two runs: give the same flags, or --force-resume")
            if (average is None) != (payload.get("ema") is None):
                how = "with" if payload.get("ema") else "without"
                raise CheckpointError(f"{save_dir / 'last.pt'} was trained {how} --ema: resume it the same way")
            if average is not None:  # "model" holds the average; the trained weights are beside it
                average.load_state_dict(payload["ema"], payload["model"])
            net.load_state_dict(payload["raw_model"] if average is not None else payload["model"])
            optimizer.load_state_dict(payload["optimizer"])
            if scheduler is not None and payload.get("scheduler"):
                scheduler.load_state_dict(payload["scheduler"])
            history = payload["history"]
            start_epoch = payload["epoch"] + 1
            best = min((selection_loss(h) for h in history), default=float("inf"))
            log.info("resumed from %s at epoch %d", save_dir / "last.pt", start_epoch)

        def after_step():
            if scheduler is not None:
                scheduler.step()
            if average is not None:
                average.update(net)

        log.info("model %s: %d parameters; %d train / %d validation faces; device %s; lr %g",
                 config["arch"], count_parameters(net), len(train_set), len(val_set), self.device, lr)
        val_loader = engine.make_loader(val_set, args.test_batch_size, shuffle=False)
        generator = torch.Generator()
        # Under torchrun each process takes every N-th sample of the permutation one process would draw.
        sampler = self.dist.sampler(train_set, seed=args.seed * 100003) if self.dist.enabled else None
        for epoch in range(start_epoch, args.epochs + 1):
            # Seeded per epoch, so a resumed run shuffles (and augments) like an uninterrupted one.
            generator.manual_seed(args.seed * 100003 + epoch)
            torch.manual_seed(args.seed * 100003 + epoch + 1_000_003 * self.dist.rank)  # each process augments anew
            if sampler is not None:
                sampler.set_epoch(epoch)
            train_loader = engine.make_loader(train_set, args.batch_size, shuffle=True, workers=args.workers,
                                              generator=generator, sampler=sampler)
            started = time.perf_counter()
            try:
                stats = engine.train_one_epoch(model, train_loader, optimizer, loss_fn, self.device, epoch,
                                               log=log.info, log_interval=args.log_interval,
                                               clip_grad=args.clip_grad, after_step=after_step)
            except engine.NonFiniteLossError as error:
                lines = ", ".join(train_set.records[i].source or f"sample {i}" for i in error.indices[:8])
                raise engine.NonFiniteLossError(
                    f"{error}. The batch's list lines: {lines}{' ...' if len(error.indices) > 8 else ''}. "
                    "Look at those labels first (gen_train_test.py checks them against their photos); if they "
                    "are right, a lower --lr or --clip-grad keeps the steps smaller") from None
            stats["loss"] = self.dist.mean(stats["loss"] * stats["faces"], stats["faces"])
            if not self.dist.is_main:
                continue  # rank 0 validates and writes; the others go on to the next epoch's first step
            with average.applied_to(net) if average else contextlib.nullcontext() as own_weights:
                val = engine.run_inference(net, val_loader, self.device, loss_fn,
                                           extra_losses={"labels": labels_loss} if labels_loss else None)
                history.append({"epoch": epoch, "train_loss": stats["loss"], "val_loss": val["loss"],
                                **({"val_labels_loss": val["labels_loss"]} if labels_loss else {}),
                                "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - started,
                                "loader_wait_seconds": stats["wait_seconds"]})
                log.info("epoch %d: train loss %.4f, validation loss %.4f%s%s (%.1fs)", epoch, stats["loss"],
                         val["loss"], f" (labels alone {val['labels_loss']:.4f})" if labels_loss else "",
                         " (weight average)" if average else "", history[-1]["seconds"])
                self.write_history(history, save_dir, loss_label(loss_fn, args))
                if args.save_model:
                    payload = make_checkpoint(net, config, optimizer=optimizer, scheduler=scheduler,
                                              args=vars(args), epoch=epoch,
                                              metrics={k: v for k, v in history[-1].items() if k.startswith("val_")},
                                              history=history)
                    if average is not None:
                        payload.update(raw_model=on_cpu(own_weights),
                                       ema=average.state_dict())
                    save_checkpoint(payload, save_dir / "last.pt")
                    if selection_loss(history[-1]) < best:
                        best = selection_loss(history[-1])
                        save_checkpoint(payload, save_dir / "best.pt")
        self.dist.barrier()  # every process ends after rank 0's last checkpoint
        total = sum(h["seconds"] for h in history)
        log.info("trained %d epochs in %.1f min; best validation loss %.4f%s; checkpoints in %s",
                 len(history), total / 60, best, " (labels alone)" if labels_loss else "", save_dir)
        return 0

    def write_history(self, history: list[dict], save_dir: Path, label: str) -> None:
        save_dir.mkdir(parents=True, exist_ok=True)
        with open(save_dir / "loss_history.csv", "w", newline="") as handle:
            # every key of any epoch (a run resumed from an older checkpoint may add one)
            writer = csv.DictWriter(handle, fieldnames=list(dict.fromkeys(k for h in history for k in h)))
            writer.writeheader()
            writer.writerows(history)
        plot_loss_curves(history, save_dir / "loss_curve.png", f"{label} (112-px frame)")

    def checkpoint_path(self) -> Path:
        """--checkpoint, else this stage's best.pt: what test, predict and finetune load."""
        return self.args.checkpoint or self.args.save_directory / "best.pt"

    def load(self):
        """The checkpoint's torch model for test/predict."""
        path = self.checkpoint_path()
        model, payload = load_model(path)
        return model.to(self.device), payload, path

    def phase_test(self):
        path = self.checkpoint_path()
        model, payload, backend = load_runtime(path, self.args.backend)
        self.check_heads(payload["config"]["arch"], path)
        if backend == "torch":
            model = model.to(self.device)
        else:  # ONNX Runtime runs on the CPU; the crops and metrics are the same code
            self.device = torch.device("cpu")
        records = read_list(self.args.test_list)
        attach_face_boxes(records, self.root)
        loss_fn = self.loss_factory(self.args)
        result = predict_records(model, payload["config"], records, self.root, self.device,
                                 batch_size=self.args.test_batch_size, cache_dir=self.args.cache_dir,
                                 loss_fn=loss_fn, progress=not self.args.no_progress)
        metrics = face_metrics(records, result)
        extra = {}
        if result["face_prob"] is not None:
            threshold = face_threshold_of(payload["config"])
            is_face = [r.is_face for r in records]
            extra["classifier"] = dict(classification_metrics(is_face, result["face_prob"], threshold),
                                       threshold=threshold)
        out = self.args.save_directory
        out.mkdir(parents=True, exist_ok=True)
        label = f"{payload['config']['arch']} ({self.stage_dir.name}{'' if backend == 'torch' else ', ' + backend})"
        plot_ced({label: metrics["nme_io_per_face"]},
                 out / "test_ced.png")
        print(summary_table(metrics, f"test list {self.args.test_list} with {path}"))
        if extra:
            c = extra["classifier"]
            print(f"face/non-face on {c['samples']} crops at face probability >= {c['threshold']:.2f}: "
                  f"accuracy {c['accuracy']:.2f}%, face recall {c['face_recall']:.2f}%, "
                  f"non-face recall {c['non_face_recall']:.2f}% (keypoint metrics above: faces only)")
        print(f"mean loss (112-px frame): {result['loss']:.4f}")
        print(f"cumulative error curve: {out / 'test_ced.png'}")
        print(json.dumps(json_summary(metrics, loss=result["loss"], checkpoint=str(path), **extra)))
        return 0

    def phase_finetune(self):
        path = self.checkpoint_path()
        model, payload = load_model(path)
        model.to(self.device)
        config = payload["config"]
        if "--arch" in self.args.given and self.args.arch != config["arch"]:
            raise ValueError(f"--arch {self.args.arch}: {path} holds a {config['arch']!r} model, and finetune "
                             "continues the checkpoint's own network (recipes/change_backbone.py moves a trained "
                             "model onto another backbone)")
        self.check_heads(config["arch"], path)
        if self.args.input_size and self.args.input_size != config["input_size"]:
            model = resize_input(model, config, self.args.input_size, path).to(self.device)
            config = dict(config, input_size=self.args.input_size)
            log.info("input size %d -> %d", payload["config"]["input_size"], self.args.input_size)
        frozen = freeze(model, self.args.freeze) if self.args.freeze else []
        if frozen:
            log.info("frozen: %s", ", ".join(frozen))
        trained = payload["args"]
        lr = self.args.lr if self.args.lr is not None else (trained.get("base_lr") or trained.get("lr")
                                                            or self.defaults.get("lr", 1e-3))
        if self.args.lr is None:
            lr = lr * 0.1
        if self.args.save_directory == path.parent:
            self.args.save_directory = path.parent / "finetune"
        log.info("finetuning %s at lr %g with %s into %s", path, lr, self.args.optimizer, self.args.save_directory)
        return self.phase_train(model=model, config=config, lr=lr)

    def phase_pack(self):
        if self.args.crops is None:
            raise ValueError("--phase pack needs --crops FILE.npz (where to write the pack)")
        records = read_list(self.args.train_list)
        path = write_pack(self.args.crops, records, self.root, self.config()["input_size"],
                          self.args.cache_dir, progress=not self.args.no_progress,
                          jpeg_quality=self.args.pack_quality)
        print(f"packed the {len(records)} crops of {self.args.train_list} into {path} "
              f"({path.stat().st_size / 2**20:.1f} MiB)")
        return 0

    def phase_predict(self):
        model, payload, path = self.load()
        records = read_list(self.args.test_list)[: self.args.num_predict]
        result = predict_records(model, payload["config"], records, self.root, self.device,
                                 batch_size=self.args.test_batch_size, cache_dir=self.args.cache_dir,
                                 progress=not self.args.no_progress)
        out = self.args.predict_dir
        out.mkdir(parents=True, exist_ok=True)
        tiles = []
        for n, record in enumerate(records):
            tile = draw_face(self.root, record, result["pred_image"][n])
            tile.save(out / f"{n:03d}.png")
            tiles.append(tile)
        grid(tiles).save(out / "sheet.png")
        print(f"drew {len(records)} faces (green: predicted, red: ground truth) into {out}")
        return 0


def draw_face(data_root, record, predicted, size: int = 224):
    """The crop of ``record`` at ``size`` px in colour, ground truth in red, prediction in green."""
    from PIL import Image
    with Image.open(Path(data_root) / record.image) as photo:
        crop = photo.convert("RGB").crop(tuple(int(v) for v in record.box)).resize((size, size))
    scale = size / (record.box[2:] - record.box[:2])
    if record.is_face:
        crop = draw_points(crop, record.keypoints * scale, color=(255, 40, 40), skeleton=False)
    return draw_points(crop, (predicted - record.box[:2]) * scale, color=(40, 255, 40))
