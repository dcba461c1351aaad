"""recipes/change_backbone.py: a checkpoint moved onto another backbone keeps every shared weight, and
--narrow keeps the strongest channels."""
import pytest
import torch

from conftest import load_script


def test_change_backbone_keeps_the_shared_weights_and_loads_strictly(tmp_path):
    from facial_keypoints.models.checkpoint import load_checkpoint, make_checkpoint, model_from_checkpoint, save_checkpoint
    from facial_keypoints.models.networks import create_model
    change = load_script("recipes", "change_backbone")
    torch.manual_seed(0)
    source = create_model("face_keypoints", input_size=112, backbone="compact_heatmap")
    config = {"arch": "face_keypoints", "model_kwargs": {"backbone": "compact_heatmap"}, "input_size": 112,
              "expand_ratio": 0.25, "normalize": True, "face_threshold": 0.4}
    save_checkpoint(make_checkpoint(source, config), tmp_path / "big.pt")
    assert change.main([str(tmp_path / "big.pt"), str(tmp_path / "lean.pt"), "--backbone", "test_lean_heatmap"]) == 0
    payload = load_checkpoint(tmp_path / "lean.pt")
    lean = model_from_checkpoint(payload, tmp_path / "lean.pt")  # strict: every weight present
    assert payload["config"]["model_kwargs"]["backbone"] == "test_lean_heatmap"
    assert payload["config"]["face_threshold"] == 0.4  # the rest of the config travels
    kept = source.state_dict()
    for name, value in lean.state_dict().items():
        assert torch.equal(value, kept[name]), name  # nothing shared starts fresh
    assert not any(k.startswith("body.trunk.layer1.1.") for k in lean.state_dict())
    assert any(k.startswith("body.trunk.layer1.1.") for k in kept)
    with pytest.raises(SystemExit, match="unknown backbone"):
        change.main([str(tmp_path / "big.pt"), str(tmp_path / "x.pt"), "--backbone", "no_such_model"])


def randomized_batch_norms(model):
    """Gives every batch norm of ``model`` random trained-looking statistics; returns (name, module) of each."""
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for _, module in found:
            module.weight.uniform_(0.5, 1.5)
            module.bias.uniform_(-0.2, 0.2)
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    return found


def narrowed_copy(wide, backbone: str, tmp_path):
    """``wide`` (a compact_heatmap face_keypoints model) saved, moved by change_backbone.py --narrow onto
    ``backbone``, and loaded back strictly, in eval mode."""
    from facial_keypoints.models.checkpoint import load_checkpoint, make_checkpoint, model_from_checkpoint, save_checkpoint
    config = {"arch": "face_keypoints", "model_kwargs": {"backbone": "compact_heatmap"}, "input_size": 112,
              "expand_ratio": 0.25, "normalize": True}
    save_checkpoint(make_checkpoint(wide, config), tmp_path / "wide.pt")
    out = tmp_path / f"{backbone}.pt"
    assert load_script("recipes", "change_backbone").main(
        [str(tmp_path / "wide.pt"), str(out), "--backbone", backbone, "--narrow"]) == 0
    return model_from_checkpoint(load_checkpoint(out), out).eval()


def test_change_backbone_narrow_keeps_the_strongest_channels_as_a_pruned_copy(tmp_path):
    """A wide model whose dropped 28x28 channels are dead (zero batch-norm scale and shift) computes
    exactly what its --narrow copy on slim_heatmap computes: the same channel subset was kept in every
    layer, and it is the subset with the largest batch-norm scales."""
    from facial_keypoints.models.checkpoint import load_checkpoint, model_from_checkpoint
    from facial_keypoints.models.networks import create_model
    change = load_script("recipes", "change_backbone")
    torch.manual_seed(0)
    wide = create_model("face_keypoints", input_size=112, backbone="compact_heatmap").eval()
    narrow_shapes = create_model("face_keypoints", input_size=112, backbone="test_slim_heatmap").state_dict()
    keep = torch.sort(torch.randperm(32)[:16]).values
    drop = torch.tensor([c for c in range(32) if c not in keep])
    batch_norms = randomized_batch_norms(wide)
    with torch.no_grad():
        for name, module in batch_norms:
            if narrow_shapes[f"{name}.weight"].shape != module.weight.shape:  # a layer slim narrows
                module.weight[drop] = 0
                module.bias[drop] = 0
        wide.body.lateral1.weight[drop] = 0  # its bias would revive the dead channels
        wide.body.lateral1.bias[drop] = 0
    slim = narrowed_copy(wide, "test_slim_heatmap", tmp_path)
    stem_bn = "body.trunk.stem.1.1.weight"
    assert torch.equal(slim.state_dict()[stem_bn], wide.state_dict()[stem_bn][keep])
    images = torch.rand(3, 1, 112, 112)
    with torch.no_grad():
        (wide_points, wide_logits), (slim_points, slim_logits) = wide(images), slim(images)
    assert torch.allclose(slim_points, wide_points, atol=1e-4) and torch.allclose(slim_logits, wide_logits, atol=1e-5)
    # without --narrow the narrower layers start fresh, and the output differs
    assert change.main([str(tmp_path / "wide.pt"), str(tmp_path / "fresh.pt"), "--backbone", "test_slim_heatmap"]) == 0
    fresh = model_from_checkpoint(load_checkpoint(tmp_path / "fresh.pt"), tmp_path / "fresh.pt").eval()
    with torch.no_grad():
        assert not torch.allclose(fresh(images)[0], wide_points, atol=1e-2)


def test_change_backbone_narrow_thins_each_block_by_its_own_strongest_channels(tmp_path):
    """A wide model whose residual blocks each have their own dead inner channels (zero batch-norm
    scale and shift: ReLU(0) feeds the second convolution nothing) computes exactly what its --narrow
    copy on thin_heatmap computes, although no two blocks share the subset they keep."""
    from facial_keypoints.models.networks import create_model
    torch.manual_seed(1)
    wide = create_model("face_keypoints", input_size=112, backbone="compact_heatmap").eval()
    thin_shapes = create_model("face_keypoints", input_size=112, backbone="test_thin_heatmap").state_dict()
    kept = {}
    batch_norms = randomized_batch_norms(wide)
    with torch.no_grad():
        for name, module in batch_norms:
            narrow = thin_shapes[f"{name}.weight"].shape[0]
            if narrow != module.weight.shape[0]:  # a block's inside that thin_heatmap halves
                keep = torch.sort(torch.randperm(module.weight.shape[0])[:narrow]).values
                dead = torch.ones(module.weight.shape[0], dtype=torch.bool)
                dead[keep] = False
                module.weight[dead], module.bias[dead] = 0, 0
                kept[name] = keep
    assert len(kept) == 4 and len({tuple(k.tolist()) for k in kept.values() if len(k) == 16}) == 2
    thin = narrowed_copy(wide, "test_thin_heatmap", tmp_path)
    for name, keep in kept.items():
        assert torch.equal(thin.state_dict()[f"{name}.bias"], wide.state_dict()[f"{name}.bias"][keep])
    images = torch.rand(3, 1, 112, 112)
    with torch.no_grad():
        (wide_points, wide_logits), (thin_points, thin_logits) = wide(images), thin(images)
    assert torch.allclose(thin_points, wide_points, atol=1e-4) and torch.allclose(thin_logits, wide_logits, atol=1e-5)
