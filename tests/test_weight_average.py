"""--ema's weight average: the update rule, batch-norm buffers, and putting the average in and back out."""
import pytest
import torch

from facial_keypoints.training.weight_average import WeightAverage


def small_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))


def test_update_moves_the_average_by_one_minus_the_decay():
    model = small_model()
    average = WeightAverage(model, decay=0.99)
    start = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].num_batches_tracked.fill_(7)
    average.update(model)
    keep = min(0.99, 2 / 11)  # the ramp (1+t)/(10+t) at t=1 is below 0.99
    torch.testing.assert_close(average.weights["0.weight"], keep * start + (1 - keep) * (start + 1.0))
    assert average.weights["1.num_batches_tracked"].item() == 7  # integers are copied, not averaged
    for _ in range(5000):
        average.update(model)
    assert average.current_decay() == 0.99
    torch.testing.assert_close(average.weights["0.weight"], start + 1.0)  # it converges on fixed weights


def test_batch_norm_statistics_are_averaged():
    model = small_model()
    average = WeightAverage(model, decay=0.5)
    model.train()
    model(torch.randn(16, 3) * 4 + 2)
    average.update(model)
    assert not torch.equal(average.weights["1.running_mean"], torch.zeros(2))


def test_applied_to_swaps_the_average_in_and_the_weights_back():
    model = small_model()
    average = WeightAverage(model, decay=0.9)
    with torch.no_grad():
        model[0].bias.add_(5.0)
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    with average.applied_to(model) as own:
        torch.testing.assert_close(model[0].bias, average.weights["0.bias"])
        torch.testing.assert_close(own["0.bias"], trained["0.bias"])
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, trained[key])
    with pytest.raises(RuntimeError), average.applied_to(model):
        raise RuntimeError("validation failed")
    torch.testing.assert_close(model[0].bias, trained["0.bias"])  # restored even when the block fails


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5, 1.5])
def test_decay_outside_zero_one_is_refused(decay):
    with pytest.raises(ValueError, match="--ema"):
        WeightAverage(small_model(), decay)
