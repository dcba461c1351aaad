"""Stage 3: one backbone, two heads — 21 keypoints, and whether the crop is a face at all.

What this stage adds to stage 2 (whose optimizer, schedule, losses and augmentation it keeps):
  - the network: a keypoint backbone from the registry (--arch, default compact_heatmap) whose
    pooled features also feed a small face/non-face classifier, so one forward pass gives both;
  - the loss: a·cross entropy + b·keypoint loss, the keypoint term on faces only;
  - the test: accuracy, face recall and non-face recall, beside the keypoint metrics on faces.

    python stage3/not_face_generate.py --verify 16     # look at the non-faces first
    python stage3/gen_train_test.py                    # faces end in 1, non-faces in 0
    python stage3/detector.py --phase train
    python stage3/detector.py --phase test
"""
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from facial_keypoints.models.checkpoint import load_checkpoint
from facial_keypoints.models.networks import create_model, init_output

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for the earlier stages
from stage1 import detector as stage1  # noqa: E402
from stage2 import detector as stage2  # noqa: E402
from stage2.data import eval_transform, train_transform  # noqa: E402
from stage3.data import FacesAndNonFaces  # noqa: E402

STAGE_DIR = Path(__file__).resolve().parent


class FaceKeypointNet(nn.Module):
    """A registry backbone's keypoints, and face/non-face logits from the features they came from
    (its embedding: for compact_heatmap the pooled 7x7 maps, for stage1 the 128 values before ip3)."""

    def __init__(self, backbone: str = "compact_heatmap"):
        super().__init__()
        self.body = create_model(backbone)  # gives (N x 42 keypoints, N x D features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.body.embedding_dim, 2))  # non-face, face

    def forward(self, x):
        keypoints, features = self.body.forward_with_embedding(x)
        return keypoints, self.classifier(features)  # N x 42, N x 2


def face_and_keypoint_loss(kind: str, a: float, b: float, class_weights):
    """a·CE + b·keypoint loss: the cross entropy weighted per class (--class-weights NON_FACE FACE),
    the keypoint loss (stage 2's ``kind``) averaged over faces only (a non-face has no points to learn)."""
    class_weights = torch.tensor(class_weights)
    per_coordinate = stage2.PER_COORDINATE[kind]

    def loss(output, batch):
        keypoints, logits = output
        is_face = batch["face"]  # 1.0 face, 0.0 non-face
        ce = F.cross_entropy(logits, is_face.long(), weight=class_weights.to(logits.device))
        per_face = per_coordinate(keypoints - batch["keypoints"]).mean(dim=1)
        keypoint_term = (per_face * is_face).sum() / is_face.sum().clamp(min=1)
        return a * ce + b * keypoint_term
    return loss


def loss_of(settings) -> callable:
    """The loss the flags (or a checkpoint's stored flags) describe."""
    return face_and_keypoint_loss(settings["loss"], settings["cls_weight"], settings["kp_weight"],
                                  settings["class_weights"])


def config_of(args) -> dict:
    """The library knows this network as "face_keypoints" with the backbone's name."""
    return {"arch": "face_keypoints", "model_kwargs": {"backbone": args.arch}, "input_size": stage1.SIZE,
            "expand_ratio": 0.25, "normalize": not args.no_normalize}


def train(args):
    train_set, val_set = stage1.training_sets(args, train_transform(not args.no_augment, not args.no_normalize),
                                              eval_transform(not args.no_normalize), FacesAndNonFaces)
    model = FaceKeypointNet(args.arch)
    init_output(model.body, stage1.mean_face(train_set))  # regression backbones start at the mean face
    faces = sum(r.is_face for r in train_set.records)
    print(f"{faces} faces and {len(train_set) - faces} non-faces to train on")
    optimizer, scheduler = stage2.optimizer_and_schedule(model.to(stage1.device_of(args)), args, len(train_set))
    stage1.fit(model, train_set, val_set, optimizer, loss_of(vars(args)), config_of(args), args,
               args.save_directory, scheduler)


def load(args):
    """(the checkpoint's two-headed network, its config, the flags it was trained with)."""
    path = args.checkpoint or args.save_directory / "best.pt"
    checkpoint = load_checkpoint(path)
    config = checkpoint["config"]
    if config["arch"] != "face_keypoints":
        raise ValueError(f"{path} holds a one-headed {config['arch']!r} model; stage 3 tests two-headed ones")
    return stage1.load_weights(FaceKeypointNet(config["model_kwargs"]["backbone"]), args), config, checkpoint["args"]


def finetune(args):
    """SGD at a tenth of --lr from a checkpoint, the --freeze layers (e.g. body.trunk) fixed."""
    model, config, _ = load(args)
    optimizer = torch.optim.SGD(stage2.freeze(model, args.freeze), lr=args.lr / 10, momentum=args.momentum,
                                weight_decay=args.weight_decay)
    train_set, val_set = stage1.training_sets(args, train_transform(not args.no_augment, config["normalize"]),
                                              eval_transform(config["normalize"]), FacesAndNonFaces)
    stage1.fit(model, train_set, val_set, optimizer, loss_of(vars(args)), config, args,
               args.save_directory / "finetune")


def two_head_outputs(args):
    """(records, keypoint batches, face probabilities, mean loss) on the test list."""
    model, config, trained = load(args)
    records, outputs, loss = stage1.test_outputs(model, args, eval_transform(config["normalize"]), loss_of(trained),
                                                 FacesAndNonFaces)
    face_probability = torch.cat([torch.softmax(logits, dim=1)[:, 1] for _, logits in outputs]).cpu().numpy()
    return records, [keypoints for keypoints, _ in outputs], face_probability, loss


def test(args):
    records, keypoints, face_probability, loss = two_head_outputs(args)
    is_face = np.array([r.is_face for r in records])
    said_face = face_probability >= 0.5
    classifier = {"samples": len(records), "accuracy": float((said_face == is_face).mean() * 100),
                  "face_recall": float(said_face[is_face].mean() * 100),           # faces called faces
                  "non_face_recall": float((~said_face[~is_face]).mean() * 100)}   # non-faces called non-faces
    print(f"face/non-face on {len(records)} crops: accuracy {classifier['accuracy']:.2f}%, face recall "
          f"{classifier['face_recall']:.2f}%, non-face recall {classifier['non_face_recall']:.2f}%")
    print(f"mean loss (the training loss, batch by batch): {loss:.4f}; the keypoint metrics of the faces:")
    stage1.report(records, stage1.in_photo(records, keypoints), args, loss=loss, classifier=classifier)


def predict(args):
    records, keypoints, _, _ = two_head_outputs(args)
    stage1.draw(records, stage1.in_photo(records, keypoints), args)


def summary(args):
    stage2.summary(args)
    print(f"classifier: dropout, linear {create_model(args.arch).embedding_dim} -> 2 "
          f"({sum(p.numel() for p in FaceKeypointNet(args.arch).classifier.parameters()):,} parameters)")


PHASES = {"summary": summary, "train": train, "test": test, "finetune": finetune, "predict": predict}


def build_parser():
    p = stage2.build_parser(STAGE_DIR, "stage 3: two heads, keypoints and face/non-face", PHASES)
    p.add_argument("--cls-weight", type=float, default=5.0, help="a: weight of the cross entropy")
    p.add_argument("--kp-weight", type=float, default=1.0, help="b: weight of the keypoint loss")
    p.add_argument("--class-weights", type=float, nargs=2, default=(1.0, 1.0), metavar=("NON_FACE", "FACE"),
                   help="per-class cross-entropy weights (raise one to balance uneven lists)")
    return p


if __name__ == "__main__":
    sys.exit(stage1.main(build_parser(), PHASES))
