"""Stage 1, step 3: the network, its training loop, and the phases that use it.

    python stage1/detector.py --phase summary    # each layer's output shape and parameter count
    python stage1/detector.py --phase train      # -> stage1/trained_models/best.pt, last.pt, loss_curve.png
    python stage1/detector.py --phase test       # loss and nme_io, nme_box, fr_10, auc_10 on test.txt (*)
    python stage1/detector.py --phase finetune --freeze conv1_1 conv2_1   # a lower rate, some layers frozen
    python stage1/detector.py --phase predict    # trained_models/predictions/sheet.png: green predicted, red true

(*) The error measures, in the photo's pixels: nme_io, the mean point error over the distance between
the outer eye corners; nme_box, over the face box's size; fr_10, the share of faces above 10 % nme_io;
auc_10, the area under the curve of nme_io up to 10 % (the top README has them in full).

The file reads top to bottom: the network, the loop that trains it, the phases, the command line.
A few arguments only later stages use are marked (stage 2) or (stage 3).
From the library it takes only what is not the lesson: reading the lists, the metrics, the
plots and the checkpoint format (so `facial-keypoints evaluate` reads what this file saves).
"""
import argparse
import json
import os
import sys
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from facial_keypoints.models.checkpoint import CheckpointError, load_checkpoint, make_checkpoint, save_checkpoint
from facial_keypoints.data.labels import LabelError
from facial_keypoints.data.list_files import attach_face_boxes, read_list
from facial_keypoints.data.lists import resolve_data_root, split_by_photo
from facial_keypoints.evaluation.metrics import json_summary, keypoint_metrics, summary_table
from facial_keypoints.evaluation.plots import plot_ced, plot_loss_curves, prediction_sheet

# The repository root on the path: this file imports stage1/data.py as stage1.data, which also works
# when stage 2 and 3 import this file.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stage1.data import SIZE, FaceLandmarks, default_transform  # noqa: E402

STAGE_DIR = Path(__file__).resolve().parent


# ---- the network ---------------------------------------------------------------------------
# PyTorch images are N x C x H x W: N faces in a batch, C channels (1: gray), H x W pixels.
# nn.Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0) gives
#   H_out = (H + 2 * padding - kernel_size) // stride + 1.
# nn.AvgPool2d(2, 2, ceil_mode=True) averages 2x2 windows and rounds odd sizes up (23 -> 12).
# nn.PReLU() is max(0, x) + a * min(0, x), with the slope a learned (one per layer, from 0.25).
# nn.Linear(in_features, out_features) is y = x W^T + b.
class Net(nn.Module):
    """The course's stage-1 network: four conv blocks (seven convolutions), three fully connected layers."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(OrderedDict([             # N x 1 x 112 x 112 in
            ("conv1_1", nn.Conv2d(1, 8, 5, stride=2)),          # N x 8 x 54 x 54
            ("prelu1_1", nn.PReLU()),
            ("pool1", nn.AvgPool2d(2, 2, ceil_mode=True)),      # N x 8 x 27 x 27
            ("conv2_1", nn.Conv2d(8, 16, 3)),                   # N x 16 x 25 x 25
            ("prelu2_1", nn.PReLU()),
            ("conv2_2", nn.Conv2d(16, 16, 3)),                  # N x 16 x 23 x 23
            ("prelu2_2", nn.PReLU()),
            ("pool2", nn.AvgPool2d(2, 2, ceil_mode=True)),      # N x 16 x 12 x 12
            ("conv3_1", nn.Conv2d(16, 24, 3)),                  # N x 24 x 10 x 10
            ("prelu3_1", nn.PReLU()),
            ("conv3_2", nn.Conv2d(24, 24, 3)),                  # N x 24 x 8 x 8
            ("prelu3_2", nn.PReLU()),
            ("pool3", nn.AvgPool2d(2, 2, ceil_mode=True)),      # N x 24 x 4 x 4
            ("conv4_1", nn.Conv2d(24, 40, 3, padding=1)),       # N x 40 x 4 x 4
            ("prelu4_1", nn.PReLU()),
            ("conv4_2", nn.Conv2d(40, 80, 3, padding=1)),       # N x 80 x 4 x 4
            ("prelu4_2", nn.PReLU()),
        ]))
        self.head = nn.Sequential(OrderedDict([                 # N x 1280 in
            ("ip1", nn.Linear(80 * 4 * 4, 128)),                # N x 128
            ("preluip1", nn.PReLU()),
            ("ip2", nn.Linear(128, 128)),                       # N x 128
            ("preluip2", nn.PReLU()),
            ("ip3", nn.Linear(128, 42)),                        # N x 42: x0, y0, x1, y1, ... x20, y20
        ]))

    def forward(self, x):
        x = self.features(x)        # N x 80 x 4 x 4
        x = x.view(x.size(0), -1)   # N x 1280: each face's maps as one row (a new view of the same memory, no copy)
        return self.head(x)         # N x 42 coordinates in the 112x112 frame


def initialise(model: Net, mean_keypoints: torch.Tensor) -> None:
    """Two things without which this small net does not train (stage1/README.md measures both).

    PyTorch's default initialisation shrinks the signal at every layer: the output barely depends
    on the input, and training settles on the mean face.  He initialisation, made for (P)ReLU
    layers, keeps it.  And the last layer starts *at* the mean face of the training set (its bias;
    its weights a tenth), so the first errors are a few pixels, not tens, and SGD does not blow up.
    """
    for layer in model.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(layer.weight, a=0.25, nonlinearity="leaky_relu")
            nn.init.zeros_(layer.bias)
    with torch.no_grad():
        model.head.ip3.bias.copy_(mean_keypoints)
        model.head.ip3.weight.mul_(0.1)


# ---- the training loop ------------------------------------------------------------------------
def keypoint_loss(output, batch):
    """Stage 1's loss: the mean squared error between predicted and true coordinates (112-px frame)."""
    return nn.functional.mse_loss(output, batch["keypoints"])


def train_one_epoch(model, loader, optimizer, criterion, device, epoch, log_interval, scheduler=None) -> float:
    # Training mode: batch norm (stage 2) and dropout (stage 3) behave as in training. This Net has
    # neither, so here model.train() and model.eval() change nothing; the habit matters from stage 2 on.
    model.train()
    total = 0.0
    for step, batch in enumerate(loader):
        batch = {name: value.to(device) for name, value in batch.items()}  # image N x 1 x 112 x 112, keypoints N x 42
        optimizer.zero_grad()                     # backward() adds to .grad: clear the last batch's gradients
        loss = criterion(model(batch["image"]), batch)  # the forward pass records the graph of operations ...
        if not torch.isfinite(loss):
            raise ValueError(f"epoch {epoch}, batch {step}: the loss became {loss.item()}; try a lower --lr")
        loss.backward()                           # ... and backpropagation walks it, filling each parameter's .grad
        nn.utils.clip_grad_norm_(model.parameters(), 10.0)  # a rare huge gradient cannot throw the weights away
        optimizer.step()                          # the update; SGD with momentum: v = momentum * v + grad, p -= lr * v
        if scheduler is not None:                 # stage 2: a learning rate that changes batch by batch
            scheduler.step()
        total += loss.item() * len(batch["image"])
        if log_interval and step % log_interval == 0:
            print(f"train epoch {epoch} [{step * loader.batch_size}/{len(loader.dataset)}] loss {loss.item():.4f}")
    return total / len(loader.dataset)


@torch.no_grad()  # no graph is recorded: less memory and time, and no way to train by mistake
def predict_all(model, loader, criterion, device):
    """(the outputs of every batch, in order; the batches' losses averaged, weighted by their sizes).

    An output is what the model returns: a tensor here, a (keypoints, logits) pair in stage 3."""
    model.eval()  # evaluation mode: the opposite of model.train()
    outputs, total = [], 0.0
    for batch in loader:
        batch = {name: value.to(device) for name, value in batch.items()}
        output = model(batch["image"])
        total += criterion(output, batch).item() * len(batch["image"])
        outputs.append(output)
    return outputs, total / len(loader.dataset)


def fit(model, train_set, val_set, optimizer, criterion, config, args, save_dir: Path, scheduler=None) -> list:
    """Train for --epochs, validate after each, keep last.pt and the best.pt of the validation loss.

    ``config`` is what a checkpoint needs to rebuild the network (CONFIG below); ``args`` the flags."""
    device = next(model.parameters()).device
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True)  # a new order every epoch
    val_loader = DataLoader(val_set, batch_size=args.test_batch_size)
    history, best = [], float("inf")
    save_dir.mkdir(parents=True, exist_ok=True)
    for epoch in range(1, args.epochs + 1):
        started = time.perf_counter()
        train_loss = train_one_epoch(model, train_loader, optimizer, criterion, device, epoch, args.log_interval,
                                     scheduler)
        _, val_loss = predict_all(model, val_loader, criterion, device)
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
        print(f"epoch {epoch}: train loss {train_loss:.4f}, validation loss {val_loss:.4f} "
              f"({time.perf_counter() - started:.1f}s)")
        plot_loss_curves(history, save_dir / "loss_curve.png", "loss (112-px frame)")
        if args.save_model:  # model.state_dict() and optimizer.state_dict(), with the config, flags and history
            checkpoint = make_checkpoint(model, config, optimizer=optimizer, args=vars(args), epoch=epoch,
                                         history=history, metrics={"val_loss": val_loss})
            save_checkpoint(checkpoint, save_dir / "last.pt")  # written to a temporary file, then renamed
            if val_loss < best:  # chosen on validation, never on the test list
                best = val_loss
                save_checkpoint(checkpoint, save_dir / "best.pt")
    print(f"best validation loss {best:.4f}; checkpoints in {save_dir}")
    return history


# ---- the phases ---------------------------------------------------------------------------------
# What rebuilds the network from a checkpoint: the library's "stage1" is this Net, layer for layer.
CONFIG = {"arch": "stage1", "model_kwargs": {}, "input_size": SIZE, "expand_ratio": 0.25, "normalize": True}


def device_of(args):
    return torch.device("cuda" if torch.cuda.is_available() and not args.no_cuda else "cpu")


def training_sets(args, train_transform, val_transform, dataset=FaceLandmarks):
    """The training list's faces, 10 % of its photos held apart for validation (never the test list).
    (stage 2 passes its augmentation as ``train_transform``; stage 3 its own ``dataset`` class)"""
    train_records, val_records = split_by_photo(read_list(args.lists / "train.txt"), 0.1, args.seed,
                                                flag="validation")
    root = resolve_data_root(args.data_root)
    return dataset(train_records, root, train_transform), dataset(val_records, root, val_transform)


def mean_face(train_set) -> torch.Tensor:
    """The average of the training faces' 42 coordinates (stage 3's lists also hold non-faces)."""
    faces = [train_set.frame_keypoints(r) for r in train_set.records if r.is_face]
    return torch.from_numpy(np.mean(faces, axis=0).reshape(-1))


def train(args):
    train_set, val_set = training_sets(args, default_transform(), default_transform())
    model = Net()
    initialise(model, mean_face(train_set))
    model.to(device_of(args))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    print(f"{len(train_set)} training and {len(val_set)} validation faces; "
          f"{sum(p.numel() for p in model.parameters()):,} parameters; SGD at lr {args.lr:g}")
    fit(model, train_set, val_set, optimizer, keypoint_loss, CONFIG, args, args.save_directory)


def load_weights(model, args):
    """``model`` with the weights of --checkpoint (default: SAVE_DIRECTORY/best.pt), on the device."""
    path = args.checkpoint or args.save_directory / "best.pt"
    checkpoint = load_checkpoint(path)  # torch.load(..., weights_only=True): tensors and plain values only
    # A state_dict maps each parameter's name ("features.conv1_1.weight", ...) to its tensor;
    # the checkpoint holds it (never the model object), so the weights load into a fresh network.
    model.load_state_dict(checkpoint["model"])
    print(f"loaded {path} (epoch {checkpoint['epoch']})")
    return model.to(device_of(args))


def freeze(model, layers):
    """Stop training the parameters of the named layers (conv1_1, or a path such as body.trunk in
    stage 3); returns the parameters that still train.  A conv's PReLU is a layer of its own
    (prelu1_1): freeze it too to keep the whole block."""
    def in_layer(name, layer):  # "features.conv1_1.weight" is in conv1_1, and in features
        return f".{layer}." in f".{name}"
    names = [name for name, _ in model.named_parameters()]
    unknown = [layer for layer in layers if not any(in_layer(name, layer) for name in names)]
    if unknown:
        raise ValueError(f"--freeze: no layer named {', '.join(unknown)}; layers: "
                         f"{', '.join(sorted({name.rsplit('.', 1)[0] for name in names}))}")
    for name, parameter in model.named_parameters():
        if any(in_layer(name, layer) for layer in layers):
            parameter.requires_grad = False  # no gradient is computed for it, so the optimizer never moves it
    trainable = [p for p in model.parameters() if p.requires_grad]
    print(f"frozen: {', '.join(layers) or 'nothing'}; {sum(p.numel() for p in trainable):,} parameters train")
    return trainable


def finetune(args):
    """Continue a checkpoint at a tenth of --lr, with the --freeze layers fixed."""
    model = load_weights(Net(), args)
    optimizer = torch.optim.SGD(freeze(model, args.freeze), lr=args.lr / 10, momentum=args.momentum)
    train_set, val_set = training_sets(args, default_transform(), default_transform())
    fit(model, train_set, val_set, optimizer, keypoint_loss, CONFIG, args, args.save_directory / "finetune")


def test_outputs(model, args, transform, criterion, dataset=FaceLandmarks):
    """(the test list's records, the model's outputs on them batch by batch, the mean loss)."""
    test_set = dataset(read_list(args.lists / "test.txt"), resolve_data_root(args.data_root), transform)
    outputs, loss = predict_all(model, DataLoader(test_set, batch_size=args.test_batch_size), criterion,
                                device_of(args))
    return test_set.records, outputs, loss


def in_photo(records, frame_points):
    """(N, 42) coordinates in the 112-px frame, batch by batch -> (N, 21, 2) in the photos' pixels."""
    points = torch.cat(frame_points).cpu().numpy().reshape(-1, 21, 2)  # N x 21 x 2, in the 112-px frame
    boxes = np.stack([r.box for r in records])                           # N x 4: x1 y1 x2 y2 of each crop
    corner, size = boxes[:, None, :2], boxes[:, None, 2:] - boxes[:, None, :2]  # N x 1 x 2 each
    return points * size / SIZE + corner  # back through each crop box


def report(records, predicted, args, **extra):
    """nme_io, nme_box, fr_10, auc_10 of the faces among ``records`` (stage 3's lists also hold non-faces):
    a table, a cumulative error curve, and one JSON line last."""
    attach_face_boxes(records, resolve_data_root(args.data_root))  # the labelled boxes (r.face_box), for nme_box
    faces = [n for n, r in enumerate(records) if r.is_face]
    truth = np.stack([records[n].absolute_keypoints() for n in faces])
    boxes = np.stack([records[n].face_box if records[n].face_box is not None else np.full(4, np.nan) for n in faces])
    metrics = keypoint_metrics(predicted[faces], truth, boxes)
    args.save_directory.mkdir(parents=True, exist_ok=True)
    curve = plot_ced({args.lists.name: metrics["nme_io_per_face"]}, args.save_directory / "test_ced.png")
    print(summary_table(metrics, f"{args.lists / 'test.txt'}"))
    print(f"cumulative error curve: {curve}")
    print(json.dumps(json_summary(metrics, **extra)))


def test(args):
    model = load_weights(Net(), args)
    records, outputs, loss = test_outputs(model, args, default_transform(), keypoint_loss)
    print(f"mean loss (MSE, 112-px frame): {loss:.4f}")
    report(records, in_photo(records, outputs), args, loss=loss)


def draw(records, predicted, args):
    """The first 16 test crops: predicted points green, true points red."""
    sheet = prediction_sheet(records, predicted, resolve_data_root(args.data_root),
                             args.save_directory / "predictions" / "sheet.png")
    print(f"drew {min(16, len(records))} faces (green: predicted, red: true) into {sheet}")


def predict(args):
    model = load_weights(Net(), args)
    records, outputs, _ = test_outputs(model, args, default_transform(), keypoint_loss)
    draw(records, in_photo(records, outputs), args)


def summary(args):
    """Each layer's output shape and parameter count, for one 1x1x112x112 input."""
    model = Net()
    x = torch.zeros(1, 1, SIZE, SIZE)
    print(f"{'layer':<10}{'output N x C x H x W':<24}{'parameters':>10}")
    print(f"{'input':<10}{' x '.join(map(str, x.shape)):<24}")
    for part in (model.features, "view", model.head):
        if part == "view":
            x = x.view(x.size(0), -1)
            print(f"{'view':<10}{' x '.join(map(str, x.shape)):<24}")
            continue
        for name, layer in part.named_children():
            x = layer(x)
            print(f"{name:<10}{' x '.join(map(str, x.shape)):<24}{sum(p.numel() for p in layer.parameters()):>10,}")
    print(f"total parameters: {sum(p.numel() for p in model.parameters()):,}")
    weights = model.state_dict()  # every parameter (and buffer) by name: what a checkpoint stores
    print(f"state_dict: {len(weights)} tensors, " + ", ".join(f"{name} {tuple(tensor.shape)}"
                                                       for name, tensor in list(weights.items())[:3]) + ", ...")


PHASES = {"summary": summary, "train": train, "test": test, "finetune": finetune, "predict": predict}


# ---- the command line ---------------------------------------------------------------------------------
def build_parser(stage_dir=STAGE_DIR, description="stage 1: the small CNN", phases=PHASES):
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--phase", choices=phases, default="train", help="what to do")
    p.add_argument("--data-root", default=None, help="the data root (None: $FKD_DATA_ROOT, else data/)")
    p.add_argument("--lists", type=Path, default=stage_dir, help="folder of train.txt and test.txt")
    p.add_argument("--batch-size", type=int, default=32, help="training batch size")
    p.add_argument("--test-batch-size", type=int, default=256, help="validation and test batch size")
    p.add_argument("--epochs", type=int, default=40, help="training epochs")
    p.add_argument("--lr", type=float, default=3e-3, help="learning rate (finetune: a tenth of it)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    p.add_argument("--no-cuda", action="store_true", help="stay on the CPU even if a GPU is present")
    p.add_argument("--seed", type=int, default=1, help="initialisation, shuffling, and the validation photos")
    p.add_argument("--log-interval", type=int, default=20, help="batches between log lines (0: epochs only)")
    p.add_argument("--save-model", action=argparse.BooleanOptionalAction, default=True, help="write checkpoints")
    p.add_argument("--save-directory", type=Path, default=stage_dir / "trained_models", help="checkpoints and plots")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="test, finetune, predict: the checkpoint (None: SAVE_DIRECTORY/best.pt)")
    p.add_argument("--freeze", nargs="*", default=[], metavar="LAYER", help="finetune: layers to freeze, e.g. conv1_1")
    return p


def main(parser, phases, argv=None) -> int:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        print("error: the course trains in one process; under torchrun, use facial-keypoints train", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or args.test_batch_size < 1 or not args.lr > 0:
        parser.error("--epochs, --batch-size and --test-batch-size must be at least 1, and --lr above 0")
    torch.manual_seed(args.seed)  # the same seed, the same run (on one machine)
    try:
        phases[args.phase](args)
    except (LabelError, CheckpointError, OSError, ValueError) as error:  # bad input: one line, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(build_parser(), PHASES))
