"""Move a trained two-headed checkpoint onto another backbone, keeping every weight whose name and shape fit.

    python scripts/change_backbone.py facial_keypoints/weights/default.pt results/lean_start.pt --backbone lean_heatmap

For shrinking a trained model (dropping a residual block, say) before a
finetune: the layers both networks share start trained, the rest start fresh.
Prints what was dropped and what is new.  The result has no optimizer state,
so ``--phase finetune --checkpoint OUT`` starts from it.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from facial_keypoints.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint  # noqa: E402
from facial_keypoints.models import MODELS, create_model  # noqa: E402


def change_backbone(payload: dict, backbone: str):
    """(new model, its config, dropped names, new names) with the shared weights of ``payload``."""
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
    model.load_state_dict(fits, strict=False)
    return model, config, sorted(set(source) - set(fits)), sorted(set(target) - set(fits))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--backbone", required=True)
    args = parser.parse_args(argv)
    payload = load_checkpoint(args.checkpoint)
    model, config, dropped, new = change_backbone(payload, args.backbone)
    save_checkpoint(make_checkpoint(model, config, args={**payload.get("args", {}), "changed_from": str(args.checkpoint)},
                                    metrics={}), args.out)
    print(f"{args.out}: backbone {args.backbone}; kept {len(model.state_dict()) - len(new)} tensors, "
          f"dropped {len(dropped)} ({', '.join(sorted({k.rsplit('.', 2)[0] for k in dropped})) or 'none'}), "
          f"new {len(new)} ({', '.join(sorted({k.rsplit('.', 2)[0] for k in new})) or 'none'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
