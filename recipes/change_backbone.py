"""Move a trained two-headed checkpoint onto another backbone, keeping every weight whose name and shape fit.

    python recipes/change_backbone.py results/teacher.pt results/student_start.pt --backbone thin_deep48_heatmap --narrow

For shrinking a trained model (dropping a residual block, say) before a
finetune: the layers both networks share start trained, the rest start fresh.
With ``--narrow``, a layer the new backbone has with fewer channels (say
16 at 28x28 against 32) starts from the trained layer's
channels with the largest batch-norm scales instead of fresh: the same subset
everywhere that width shrinks, so residual sums and skips stay aligned and the
narrow network starts as a pruned copy of the wide one.  Inside a residual
block (``thin_deep48_heatmap``'s narrower insides) nothing else has to line up, so
each block keeps its own strongest channels: batch-norm scale times the size
of the weights that read the channel.  Prints what was
dropped, narrowed and new.  The result has no optimizer state, so
``facial-keypoints train --finetune OUT`` starts from it.
"""
import argparse
import sys
from pathlib import Path

import torch

from facial_keypoints.models.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from facial_keypoints.models.networks import MODELS, create_model


INSIDE = ".body.0.1.weight"  # a residual block's inner batch norm (models.ResidualBlock): its channels are the block's own


def narrowed_channels(source: dict, target: dict) -> dict:
    """Kept channel indices, in their original order, for each width that shrinks.

    Key (wide, narrow): the ``narrow`` channels whose batch-norm scales (|weight|, summed over
    every batch norm that shrinks from ``wide`` to ``narrow``) are largest — one subset for
    the whole network, so residual sums and skips stay aligned.  Key (block, wide, narrow) for
    a residual block's inside: its own channels, by |scale| times the norm of the second
    convolution's weights that read each one."""
    scores, keep = {}, {}
    for name, value in target.items():
        wide = source.get(name)
        if not (name.endswith(".weight") and value.dim() == 1 and wide is not None and wide.dim() == 1
                and len(value) < len(wide) and f"{name[:-len('weight')]}running_var" in target):
            continue
        if name.endswith(INSIDE):
            block = name[:-len(INSIDE)]
            reads = source[f"{block}.body.1.weight"].transpose(0, 1).flatten(1).norm(dim=1)
            keep[(block, len(wide), len(value))] = torch.sort(torch.topk(wide.abs() * reads, len(value)).indices).values
        else:
            key = (len(wide), len(value))
            scores[key] = scores.get(key, 0) + wide.abs()
    keep.update({key: torch.sort(torch.topk(score, key[1]).indices).values for key, score in scores.items()})
    return keep


def narrow(wide: torch.Tensor, shape: torch.Size, keep: dict, name: str = ""):
    """``wide`` cut down to ``shape`` along the dimensions that shrink, or None if some cannot be.
    A tensor inside a residual block (``name`` "BLOCK.body....") uses its block's own subset where it has one."""
    if wide.dim() != len(shape):
        return None
    block = name.split(".body.")[0] if ".body." in name else None
    for dim, (have, want) in enumerate(zip(wide.shape, shape)):
        if have != want:
            subset = keep.get((block, have, want), keep.get((have, want)))
            if subset is None:
                return None
            wide = wide.index_select(dim, subset)
    return wide.clone()


def change_backbone(payload: dict, backbone: str, narrow_layers: bool = False):
    """(new model, its config, dropped names, new names, narrowed names) with the shared weights of ``payload``.

    ``narrow_layers``: tensors with fewer channels in the new model start from a channel subset of
    the trained ones (``narrowed_channels``) instead of fresh."""
    config = dict(payload["config"])
    if config.get("arch") != "face_keypoints":
        raise SystemExit(f"only two-headed (face_keypoints) checkpoints have a backbone; this is {config.get('arch')!r}")
    if backbone not in MODELS:
        raise SystemExit(f"unknown backbone {backbone!r}; registered: {', '.join(sorted(MODELS))}")
    config["model_kwargs"] = dict(config.get("model_kwargs", {}), backbone=backbone)
    model = create_model(config["arch"], input_size=config["input_size"], **config["model_kwargs"])
    target = model.state_dict()
    source = payload["model"]
    fits = {k: v for k, v in source.items() if k in target and target[k].shape == v.shape}
    narrowed = {}
    if narrow_layers:
        keep = narrowed_channels(source, target)
        for name in set(source) & set(target) - set(fits):
            cut = narrow(source[name], target[name].shape, keep, name)
            if cut is not None:
                narrowed[name] = cut
    model.load_state_dict({**fits, **narrowed}, strict=False)
    loaded = set(fits) | set(narrowed)
    return model, config, sorted(set(source) - loaded), sorted(set(target) - loaded), sorted(narrowed)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a trained two-headed checkpoint")
    parser.add_argument("out", type=Path, help="the new checkpoint")
    parser.add_argument("--backbone", required=True, help="the registered backbone to move onto")
    parser.add_argument("--narrow", action="store_true",
                        help="start narrower layers from the trained channels with the largest batch-norm scales")
    args = parser.parse_args(argv)
    payload = load_checkpoint(args.checkpoint)
    model, config, dropped, new, narrowed = change_backbone(payload, args.backbone, args.narrow)
    save_checkpoint(make_checkpoint(model, config, args={"changed_from": args.checkpoint.name, "backbone": args.backbone},
                                    metrics={}), args.out)
    print(f"{args.out}: backbone {args.backbone}; kept {len(model.state_dict()) - len(new) - len(narrowed)} tensors, "
          f"dropped {len(dropped)} ({', '.join(sorted({k.rsplit('.', 2)[0] for k in dropped})) or 'none'}), "
          f"narrowed {len(narrowed)}, "
          f"new {len(new)} ({', '.join(sorted({k.rsplit('.', 2)[0] for k in new})) or 'none'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
