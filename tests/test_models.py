import pytest
import torch

from facial_keypoints.training.losses import KeypointLoss
from facial_keypoints.models.networks import MODELS, create_model, freeze, init_output


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_forward_backward(name):
    """timm-style: output shape, finite values, and a gradient for every parameter."""
    torch.manual_seed(0)
    model = create_model(name)
    x = torch.randn(3, 1, 112, 112)
    out = model(x)
    keypoints = out[0] if isinstance(out, tuple) else out
    assert keypoints.shape == (3, 42)
    assert torch.isfinite(keypoints).all()
    loss = sum(o.float().pow(2).mean() for o in (out if isinstance(out, tuple) else (out,)))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no or non-finite gradient: {missing}"


def test_stage1_layout():
    model = create_model("stage1")
    assert model.features(torch.zeros(1, 1, 112, 112)).shape == (1, 80, 4, 4)
    assert [m.out_features for m in model.head if isinstance(m, torch.nn.Linear)] == [128, 128, 42]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_few_steps_lower_the_loss_on_a_tiny_batch(name):
    torch.manual_seed(0)
    model = create_model(name)
    x = torch.randn(4, 1, 112, 112)
    y = torch.rand(4, 42) * 60 + 26
    init_output(model, y.mean(0))
    loss_fn = KeypointLoss("mse")
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    first = None
    for _ in range(15):
        optimizer.zero_grad()
        out = model(x)
        loss = loss_fn(out[0] if isinstance(out, tuple) else out, y)
        loss.backward()
        optimizer.step()
        first = loss.item() if first is None else first
    assert loss.item() < 0.9 * first


def test_freeze_by_name():
    model = create_model("stage1")
    frozen = freeze(model, ["conv1_1", "ip1"])
    assert frozen == ["features.conv1_1.weight", "features.conv1_1.bias", "head.ip1.weight", "head.ip1.bias"]
    assert not model.features.conv1_1.weight.requires_grad and model.features.conv2_1.weight.requires_grad
    with pytest.raises(KeyError, match="no layer named 'conv9'"):
        freeze(model, ["conv9"])


def test_losses_agree_with_torch():
    pred, target = torch.randn(4, 42) * 5, torch.randn(4, 42) * 5
    assert KeypointLoss("mse")(pred, target).item() == pytest.approx(torch.nn.functional.mse_loss(pred, target).item())
    assert KeypointLoss("smoothl1")(pred, target).item() == pytest.approx(
        torch.nn.functional.smooth_l1_loss(pred, target).item())
    mask = torch.tensor([1.0, 0, 1, 0])
    assert KeypointLoss("mse")(pred, target, mask).item() == pytest.approx(
        torch.nn.functional.mse_loss(pred[[0, 2]], target[[0, 2]]).item(), rel=1e-6)
    # Wing is log-shaped below its width (10) and linear above it, continuous at the join.
    wing = KeypointLoss("wing")
    just_below = wing(torch.full((1, 42), 9.999), torch.zeros(1, 42)).item()
    just_above = wing(torch.full((1, 42), 10.001), torch.zeros(1, 42)).item()
    assert just_above == pytest.approx(just_below, abs=1e-2)
