"""Stage 2: stage 1's loop and phases, with everything that makes the model better.

What this stage changes, and where it is below:
  - the data: random flips (with the left/right swap), rotations, scales, shifts and lighting
    (stage2/data.py), with and without Normalize;
  - the optimizer: Adam for training, SGD for a finetune, and a learning-rate schedule;
  - the loss: Wing loss, which keeps a strong gradient for small errors;
  - the network: picked by name from the library's registry (batch norm, a ResNet, a compact
    ResNet, a heatmap head), instead of stage 1's Net written out.
The loop, the checkpoints and the test report are stage 1's (stage1/detector.py), imported.
The defaults are the best row of the ablation in stage2/README.md.

    python stage2/detector.py --phase train
    python stage2/detector.py --phase test
    python stage2/detector.py --phase finetune --lr 2e-3     # SGD at a tenth of --lr, from best.pt
    python stage2/detector.py --phase predict
    python stage2/detector.py --phase summary --arch compact_heatmap
"""
import math
import sys
from pathlib import Path

import torch

from facial_keypoints.models.checkpoint import load_checkpoint
from facial_keypoints.models.networks import MODELS, create_model, freeze as library_freeze, init_output

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for stage 1's files
from stage1 import detector as stage1  # noqa: E402
from stage2.data import eval_transform, train_transform  # noqa: E402

STAGE_DIR = Path(__file__).resolve().parent
# The registry's keypoint networks (face_keypoints is stage 3's two-headed model; test_* are the test suite's).
NETWORKS = sorted(name for name in MODELS if name != "face_keypoints" and not name.startswith("test_"))


# ---- the loss -------------------------------------------------------------------------------------
def wing(error, width: float = 10.0, curvature: float = 2.0):
    """Wing loss (Feng et al., CVPR 2018): w·ln(1 + |e|/ε) below w pixels, |e| - C above.

    Near 0 the log is steep, so errors of a pixel or two still get a strong push, where MSE's
    gradient (2e) fades; far out it is linear, so a few bad faces do not dominate as they do
    under MSE.  C makes the two pieces meet at |e| = w.
    """
    error = error.abs()
    c = width - width * math.log1p(width / curvature)
    return torch.where(error < width, width * torch.log1p(error / curvature), error - c)


def smooth_l1(error):
    """Quadratic below one pixel, linear above: MSE's smooth start without its pull towards outliers."""
    error = error.abs()
    return torch.where(error < 1.0, 0.5 * error.pow(2), error - 0.5)


PER_COORDINATE = {"mse": lambda error: error.pow(2), "smoothl1": smooth_l1, "wing": wing}


def make_keypoint_loss(kind: str):
    """The loss function the loop calls (as stage 1's keypoint_loss): ``kind`` of each coordinate's error, averaged."""
    return lambda output, batch: PER_COORDINATE[kind](output - batch["keypoints"]).mean()


# ---- the schedule ------------------------------------------------------------------------------------
def cosine_with_warmup(optimizer, args, steps_per_epoch: int):
    """The rate rises linearly over --warmup-epochs, then falls along half a cosine to 0 at the end.

    LambdaLR multiplies the optimizer's rate by the factor for the step it is at; the loop calls
    ``scheduler.step()`` after every batch.  A gentle start keeps Adam's first, poorly estimated
    steps small; the slow end lets the weights settle.
    """
    warmup = int(args.warmup_epochs * steps_per_epoch)
    total = args.epochs * steps_per_epoch

    def factor(step):
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(step - warmup, total - warmup) / max(total - warmup, 1)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# ---- the phases --------------------------------------------------------------------------------------
def config_of(args) -> dict:
    return {"arch": args.arch, "model_kwargs": {}, "input_size": stage1.SIZE, "expand_ratio": 0.25,
            "normalize": not args.no_normalize}


def optimizer_and_schedule(model, args, train_faces: int):
    if args.optimizer == "adam":  # a step size of its own per weight, from running averages of its gradients
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                                    weight_decay=args.weight_decay)
    steps_per_epoch = math.ceil(train_faces / args.batch_size)
    scheduler = cosine_with_warmup(optimizer, args, steps_per_epoch) if args.scheduler == "cosine" else None
    print(f"{args.arch}: {sum(p.numel() for p in model.parameters()):,} parameters; {train_faces} training samples; "
          f"{args.optimizer} at lr {args.lr:g}, {args.scheduler} schedule, {args.loss} loss")
    return optimizer, scheduler


def train(args):
    train_set, val_set = stage1.training_sets(args, train_transform(not args.no_augment, not args.no_normalize),
                                              eval_transform(not args.no_normalize))
    model = create_model(args.arch)  # a network from the library's registry, by name, He-initialised there
    if init_output(model, stage1.mean_face(train_set)):  # regression outputs start at the mean face, as in stage 1
        print("the output layer starts at the training faces' mean (heatmap models need no such start)")
    optimizer, scheduler = optimizer_and_schedule(model.to(stage1.device_of(args)), args, len(train_set))
    stage1.fit(model, train_set, val_set, optimizer, make_keypoint_loss(args.loss), config_of(args), args,
               args.save_directory, scheduler)


def load(args):
    """(the checkpoint's network, rebuilt from the registry by the name it was saved with; its config;
    the flags it was trained with)."""
    path = args.checkpoint or args.save_directory / "best.pt"
    checkpoint = load_checkpoint(path)
    return stage1.load_weights(create_model(checkpoint["config"]["arch"]), args), checkpoint["config"], \
        checkpoint["args"]


def freeze(model, layers):
    """Stage 1's freeze, and also batch norm: a frozen BatchNorm layer must keep its running mean and
    variance too, so the library's freeze keeps such layers in evaluation mode."""
    frozen = library_freeze(model, layers) if layers else []
    print(f"frozen: {len(frozen)} parameter tensors of {', '.join(layers) or 'nothing'}")
    return [p for p in model.parameters() if p.requires_grad]


def finetune(args):
    """An Adam-trained checkpoint continued with SGD (momentum) at a tenth of --lr, --freeze layers fixed."""
    model, config, trained = load(args)
    optimizer = torch.optim.SGD(freeze(model, args.freeze), lr=args.lr / 10, momentum=args.momentum,
                                weight_decay=args.weight_decay)
    train_set, val_set = stage1.training_sets(args, train_transform(not args.no_augment, config["normalize"]),
                                              eval_transform(config["normalize"]))
    stage1.fit(model, train_set, val_set, optimizer, make_keypoint_loss(args.loss), config, args,
               args.save_directory / "finetune")


def test(args):
    model, config, trained = load(args)
    loss = make_keypoint_loss(trained["loss"])  # the loss the checkpoint was trained with
    records, outputs, mean_loss = stage1.test_outputs(model, args, eval_transform(config["normalize"]), loss)
    print(f"mean loss ({trained['loss']}, 112-px frame): {mean_loss:.4f}")
    stage1.report(records, stage1.in_photo(records, outputs), args, loss=mean_loss, arch=config["arch"])


def predict(args):
    model, config, trained = load(args)
    records, outputs, _ = stage1.test_outputs(model, args, eval_transform(config["normalize"]),
                                              make_keypoint_loss(trained["loss"]))
    stage1.draw(records, stage1.in_photo(records, outputs), args)


def summary(args):
    """The output shape and parameter count of each block, as a batch of one face passes through."""
    model = create_model(args.arch).eval()
    rows = []
    for name, block in model.named_modules():
        if name and name.removeprefix("net.").count(".") <= 1:  # two levels (torchvision's models sit in .net)
            # ``name=name`` keeps each hook's own name (a plain closure would see the loop's last one)
            block.register_forward_hook(lambda block, inputs, out, name=name: rows.append((name, out, block)))
    with torch.no_grad():
        model(torch.zeros(1, 1, stage1.SIZE, stage1.SIZE))
    for name, out, block in rows:
        if any(other.startswith(name + ".") for other, _, _ in rows):
            continue  # a container whose blocks have their own rows
        shape = " x ".join(map(str, out.shape)) if torch.is_tensor(out) else f"{len(out)} maps"
        print(f"{name:<22}{shape:<24}{sum(p.numel() for p in block.parameters()):>10,}")
    print(f"{args.arch}: {sum(p.numel() for p in model.parameters()):,} parameters")


PHASES = {"summary": summary, "train": train, "test": test, "finetune": finetune, "predict": predict}


def build_parser(stage_dir=STAGE_DIR, description="stage 2: augmentation, Adam, schedules, Wing loss, networks",
                 phases=PHASES):
    p = stage1.build_parser(stage_dir, description, phases)
    p.set_defaults(lr=2e-3)
    p.add_argument("--arch", choices=NETWORKS, default="compact_heatmap", help="the network, from the registry")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam", help="train: the optimizer")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="weight decay (an L2 pull towards 0)")
    p.add_argument("--scheduler", choices=("cosine", "none"), default="cosine", help="learning-rate schedule")
    p.add_argument("--warmup-epochs", type=float, default=1.0, help="cosine: epochs of linear warm-up")
    p.add_argument("--loss", choices=sorted(PER_COORDINATE), default="wing", help="keypoint loss")
    p.add_argument("--no-augment", action="store_true", help="train on the plain crops")
    p.add_argument("--no-normalize", action="store_true", help="pixels scaled to 0..1 instead of Normalize")
    return p


if __name__ == "__main__":
    sys.exit(stage1.main(build_parser(), PHASES))
